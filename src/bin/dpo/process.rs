//! Process-wide settings, made in `main` and before a run starts.

use dpo::config::TrainConfig;

/// Probing Vulkan adapters makes Mesa's drivers try Wayland, and libwayland prints an
/// "error:" line to stderr when XDG_RUNTIME_DIR is unset (headless machines, CI). Point it at
/// an empty private folder so the probe fails quietly and our own error line stays the only one.
pub fn quiet_wayland_probe() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("dpo-xdg-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            // SAFETY: first thing in main, before any other thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}

/// burn's default device would be wgpu. Nothing here computes on it (devices are chosen in
/// `device.rs`), but burn loads a saved optimizer state onto it before the first step moves
/// the state to the parameters' device: a resumed run would initialise a GPU it does not use
/// (slow, and failing on machines without one). The CPU backend is always there.
pub fn cpu_default_device() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: called from main before any other thread exists.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
}

/// Unless the run saves memory ([`TrainConfig::saves_memory`]), lets glibc's allocator keep up
/// to `KEPT` of freed memory for the next allocation instead of handing it back to the kernel
/// at once.
///
/// The CPU backend allocates a fresh buffer for every tensor op's result and frees it soon
/// after. By default glibc serves each buffer over 32 MiB with its own mmap, and returns the
/// heap's free top to the kernel once it exceeds twice the largest buffer freed so far: a
/// training step then takes new pages from the kernel for every large result, each zeroed
/// and faulted in on first touch (a fifth of `tiny`'s CPU step). Buffers up to `KEPT` now come
/// from the heap, and up to `KEPT` of free heap stays mapped between steps, so the next step's
/// buffers reuse pages already faulted in: 0.8x `tiny`'s step time. The price is a higher
/// peak: freed buffers of one size are not always reusable for the next of another, which
/// raised a LoRA run's peak by a quarter (BENCHMARKS.md), so a run that chose to spend time
/// for memory keeps glibc's defaults. A `GLIBC_TUNABLES` in the environment is the user's
/// own tuning: it is left alone. Called before the run starts its threads.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu")),
    allow(unused_variables)
)]
pub fn tune_allocator(config: &TrainConfig) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !config.saves_memory() && std::env::var_os("GLIBC_TUNABLES").is_none() {
        const KEPT: libc::c_int = 256 << 20;
        // SAFETY: mallopt only sets the allocator's parameters; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, KEPT);
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT);
        }
    }
}
