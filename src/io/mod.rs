//! Files in and out: Hugging Face model folders and atomic checkpoints.

#[cfg(not(target_family = "wasm"))]
pub mod atomic;
pub mod hf;
