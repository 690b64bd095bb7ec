//! Where a case's memory figures come from: the device allocator's own high-water marks on
//! backends that keep pools (wgpu, through cubecl), the process's peak RSS everywhere.

use burn::tensor::Device;

/// (peak, largest allocation) of the device's dynamic pools, `None` where the backend keeps
/// none (the CPU backend). The peak sums each pool's page size x most pages held: what the
/// allocator reserved at its high-water mark, an upper bound if the pools peaked at
/// different moments. burn leaves out pools whose allocations own their pages, which the
/// default (adaptive) configuration does not use for ordinary tensors.
pub fn device_pools(device: &Device) -> (Option<u64>, Option<u64>) {
    let Some(pools) = device.memory_pool_report().filter(|p| !p.is_empty()) else {
        return (None, None);
    };
    let peak = pools.iter().map(|p| p.page_size * p.pages_peak).sum();
    let largest = pools.iter().map(|p| p.largest_alloc).max();
    (Some(peak), largest)
}

/// The process's peak resident set size so far.
#[cfg(unix)]
pub fn peak_rss_bytes() -> Option<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes the struct it is given, which is large enough.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: zero-initialised, then filled by a successful getrusage.
    let max = unsafe { usage.assume_init() }.ru_maxrss as u64;
    // macOS counts bytes, Linux and the BSDs kibibytes.
    Some(if cfg!(target_os = "macos") {
        max
    } else {
        max * 1024
    })
}

#[cfg(not(unix))]
pub fn peak_rss_bytes() -> Option<u64> {
    None
}
