//! The language model: GPT-2 with Hugging Face-compatible parameter names.

pub mod config;
pub mod gpt2;
pub mod weights;

pub use config::{Gpt2Config, Preset};
pub use gpt2::Gpt2;
