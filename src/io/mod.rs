//! Files in and out: Hugging Face model folders, safetensors headers, atomic writes and
//! checkpoints.

#[cfg(not(target_family = "wasm"))]
pub mod atomic;
#[cfg(not(target_family = "wasm"))]
pub mod checkpoint;
pub mod header;
pub mod hf;
pub mod json;
