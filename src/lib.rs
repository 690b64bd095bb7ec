//! A portable Direct Preference Optimization trainer on burn.
//!
//! One library does the work (this crate); the `dpo` command line, the wasm API and the web
//! page are thin shells over it. The backend is a run-time `burn::tensor::Device`, chosen
//! once at the edge (`device.rs` natively, the browser's init in `web.rs`).
//!
//! - `data`: preference pairs (JSONL in TRL's three formats), tokenizers, TRL's tokenization.
//! - `model`: GPT-2 and the Llama family with Hugging Face parameter names.
//! - `dpo`: completion log-probs, the DPO loss family, implicit rewards and metrics.
//! - `train`: the one run driver (`train::Run`: SFT, reference, DPO, generations, evaluation)
//!   and its setup from settings, a model source and pair files; AdamW as PyTorch has it.
//! - `generate`: sampling and scoring text.
//! - `io`: Hugging Face model folders, atomic writes, checkpoints.
//! - `task`: the shipped task: its pairs and its ground-truth reward.
//! - `jobs`: the command line's jobs: a run folder around the driver, `eval`, `generate`, and
//!   `handoff` (a run folder as TRL + accelerate files) (native).
//! - `bench`: the benchmark workloads timed through the driver (native).
//! - `frontier`: the reward-vs-KL experiment on the shipped task (native).
//! - `charts`: a run's training charts as an SVG picture (plotters) (native).
//!
//! ARCHITECTURE.md at the repository's root draws the layers and follows one training step.

pub mod config;
pub mod data;
pub mod dpo;
pub mod generate;
pub mod io;
pub mod model;
pub mod task;
pub mod train;

#[cfg(test)]
mod testing;

#[cfg(not(target_family = "wasm"))]
pub mod bench;
#[cfg(not(target_family = "wasm"))]
pub mod charts;
#[cfg(not(target_family = "wasm"))]
pub mod device;
#[cfg(not(target_family = "wasm"))]
pub mod frontier;
#[cfg(not(target_family = "wasm"))]
pub mod jobs;
#[cfg(target_family = "wasm")]
pub mod web;

/// What can go wrong, split by who must act: `Input` is the user's to fix (the command line
/// exits 2), `Runtime` is ours or the machine's (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("{0}")]
    Runtime(String),
    /// Training produced a NaN or an infinity (exit 1, as `Runtime`).
    #[error("{0}")]
    Diverged(String),
}

impl Error {
    pub fn is_input(&self) -> bool {
        matches!(self, Error::Input(_) | Error::Data(_))
    }
}
