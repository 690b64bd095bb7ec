//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::tensor::{Device, read_sync};
use dpo::config::TrainConfig;
use dpo::data::{ChatTemplate, TokenizedPair};
use dpo::dpo::Metrics;
use dpo::io::hf::LoadedModel;
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

/// What one run of the `dpo` binary did.
pub struct CliOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `dpo` binary built for these tests.
pub fn dpo_cli(args: &[&str]) -> CliOutput {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args)
        .output()
        .unwrap();
    CliOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
