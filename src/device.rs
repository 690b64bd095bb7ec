//! Choosing the backend, once, at the edge of the program (native targets).
//!
//! `auto` trains on wgpu when a hardware GPU adapter exists and on burn's CPU backend (flex)
//! otherwise: a software rasteriser (llvmpipe/lavapipe, SwiftShader, WARP) runs the GPU
//! kernels far slower than flex runs the same math. `cuda` exists in builds with the `cuda`
//! feature; it is only ever chosen by name.

use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};

use crate::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Auto,
    Wgpu,
    Cpu,
    Cuda,
}

impl Backend {
    pub const NAMES: [&'static str; 4] = ["auto", "wgpu", "cpu", "cuda"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Wgpu => "wgpu",
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }

    pub fn parse(name: &str) -> Option<Backend> {
        [Backend::Auto, Backend::Wgpu, Backend::Cpu, Backend::Cuda]
            .into_iter()
            .find(|b| b.name() == name)
    }
}

/// The chosen device (without autodiff), what it is in words and why it was chosen.
pub struct Selected {
    pub device: Device,
    /// `cpu (flex)`, `wgpu on NVIDIA GeForce RTX 4090 (Vulkan, DiscreteGpu)`, `cuda on GPU 0`.
    pub backend: String,
    pub why: String,
}

impl Selected {
    /// The line the commands print: `backend: … — why`.
    pub fn description(&self) -> String {
        format!("backend: {} — {}", self.backend, self.why)
    }
}

pub fn select(backend: Backend) -> Result<Selected, Error> {
    let cpu = |why: String| Selected {
        device: Device::flex(),
        backend: "cpu (flex)".into(),
        why,
    };
    match backend {
        Backend::Cpu => Ok(cpu("requested with --backend cpu".into())),
        Backend::Cuda => cuda(),
        Backend::Wgpu => {
            let adapter = adapters().into_iter().min_by_key(|a| rank(a.device_type));
            let Some(adapter) = adapter else {
                return Err(Error::Input(
                    "--backend wgpu: no GPU adapter found (is a Vulkan, Metal or DX12 driver installed?)"
                        .into(),
                ));
            };
            Ok(wgpu_device(&adapter, "requested with --backend wgpu"))
        }
        Backend::Auto => {
            let found = adapters();
            match found
                .iter()
                .filter(|a| is_hardware(a.device_type))
                .min_by_key(|a| rank(a.device_type))
            {
                Some(adapter) => Ok(wgpu_device(adapter, "a hardware GPU adapter was found")),
                None => match found.first() {
                    Some(software) => Ok(cpu(format!(
                        "the only GPU adapter, {}, is a software rasteriser, slower than the CPU backend",
                        software.name
                    ))),
                    None => Ok(cpu("no GPU adapter was found".into())),
                },
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Selected, Error> {
    Ok(Selected {
        device: Device::cuda(0),
        backend: "cuda on GPU 0".into(),
        why: "requested with --backend cuda".into(),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Selected, Error> {
    Err(Error::Input(
        "--backend cuda: this build has no CUDA backend (build with `cargo build --release --features cuda`)"
            .into(),
    ))
}

fn wgpu_device(adapter: &wgpu::AdapterInfo, why: &str) -> Selected {
    Selected {
        device: Device::wgpu(match adapter.device_type {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(0),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(0),
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(0),
            wgpu::DeviceType::Cpu => DeviceKind::Cpu,
            wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
        }),
        backend: format!(
            "wgpu on {} ({:?}, {:?})",
            adapter.name, adapter.backend, adapter.device_type
        ),
        why: why.into(),
    }
}

fn adapters() -> Vec<wgpu::AdapterInfo> {
    // Not GL: its path deadlocks during training on llvmpipe (burn's default picks Vulkan
    // first anyway), and probing it prints EGL noise on headless machines.
    let apis = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: apis,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = burn::tensor::read_sync(instance.enumerate_adapters(apis));
    adapters.iter().map(|a| a.get_info()).collect()
}

fn is_hardware(kind: wgpu::DeviceType) -> bool {
    matches!(
        kind,
        wgpu::DeviceType::DiscreteGpu
            | wgpu::DeviceType::IntegratedGpu
            | wgpu::DeviceType::VirtualGpu
    )
}

/// Preference order, the one wgpu's high-performance heuristic uses.
fn rank(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}
