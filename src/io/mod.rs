//! Files in and out: Hugging Face model folders and atomic checkpoints.

pub mod atomic;
pub mod hf;
