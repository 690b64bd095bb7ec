//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use burn::tensor::{Device, read_sync};
use dpo::config::TrainConfig;
use dpo::data::{ChatTemplate, TokenizedPair};
use dpo::dpo::Metrics;
use dpo::io::hf::{self, LoadedModel};
use dpo::run::SHIPPED_TRAIN;
use dpo::session;
use dpo::train::Trainer;

/// A fresh model of `preset` and the first `pairs` shipped training pairs tokenized for it.
pub fn shipped_setup(
    preset: &str,
    pairs: usize,
    device: &Device,
) -> (LoadedModel, Vec<TokenizedPair>, TrainConfig) {
    let config = TrainConfig {
        preset: preset.into(),
        seed: 7,
        batch: 4,
        sft_steps: 2,
        steps: 3,
        max_length: 64,
        ..TrainConfig::default()
    };
    let all = dpo::data::parse_pairs(
        SHIPPED_TRAIN.0,
        SHIPPED_TRAIN.1.as_bytes(),
        &ChatTemplate::default_plain(),
    )
    .unwrap();
    let pairs = &all[..pairs];
    let model = session::from_scratch(pairs, &config, device).unwrap();
    let tokenized = session::tokenize(&model, "shipped", pairs, config.max_length).unwrap();
    (model, tokenized, config)
}

/// Steps `trainer` to the end, the initial policy of DPO becoming its reference.
pub fn run_to_end(trainer: &mut Trainer) -> Vec<Metrics> {
    let mut out = Vec::new();
    while !trainer.is_done() {
        out.push(read_sync(trainer.advance()).unwrap());
    }
    out
}

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dpo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Equal within `tol`, relative to the larger magnitude when that is above 1.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// Runs the `dpo` binary: (exit status, stdout, stderr). A panic's backtrace would show.
pub fn dpo<S: AsRef<OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A model's Hugging Face folder files (its tokenizer config left out).
pub fn export_files(model: &LoadedModel) -> hf::ModelFiles {
    read_sync(hf::export(
        &model.model,
        &model.config,
        &model.tokenizer,
        None,
    ))
    .unwrap()
}

/// Writes a fresh micro model folder (HF layout) to `dir`.
pub fn write_model_folder(dir: &Path) {
    let device = Device::flex();
    let (model, _, _) = shipped_setup("micro", 16, &device);
    hf::write_dir(dir, &export_files(&model), &[]).unwrap();
}

/// Rewrites the JSON header of the safetensors file at `path` with `edit`, keeping the data.
pub fn edit_safetensors_header(
    path: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let bytes = std::fs::read(path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    edit(&mut header);
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[8 + length..]);
    std::fs::write(path, out).unwrap();
}

/// What one run of the `dpo` binary did, by name.
pub struct CliOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// [`dpo`] with its output in named fields.
pub fn dpo_cli(args: &[&str]) -> CliOutput {
    let (status, stdout, stderr) = dpo(args);
    CliOutput {
        status,
        stdout,
        stderr,
    }
}
