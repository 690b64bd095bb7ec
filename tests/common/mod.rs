//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use burn::tensor::{Device, read_sync};
use dpo::config::TrainConfig;
use dpo::dpo::Metrics;
use dpo::io::{Saved, hf};
use dpo::model::{CausalLm, ModelInfo, Preset};
use dpo::task::SHIPPED_TRAIN;
use dpo::train::{self, Event, ModelSource, PairsFile, Prepared, Report, Run, RunSpec};

/// The tests' settings: a few steps of a small batch, seed 7.
pub fn small_config(preset: Preset) -> TrainConfig {
    TrainConfig {
        preset,
        seed: 7,
        batch: 4,
        sft_steps: 2,
        steps: 3,
        max_length: 64,
        ..TrainConfig::default()
    }
}

/// A run of `config` on the first `pairs` shipped training pairs, all of them trained on:
/// the shipped held-out file is the held-out one, and nothing is sampled or evaluated.
pub fn shipped_run(config: TrainConfig, pairs: usize) -> Prepared {
    let lines: String = SHIPPED_TRAIN
        .1
        .lines()
        .take(pairs)
        .map(|line| format!("{line}\n"))
        .collect();
    train::prepare(RunSpec {
        config,
        model: ModelSource::Preset,
        train: PairsFile::new("shipped", lines),
        heldout: Some(PairsFile::shipped_heldout()),
        adapter: None,
        report: Report {
            prompts: 0,
            eval_pairs: Some(0),
            ..Report::default()
        },
    })
    .unwrap()
}

/// A fresh model of `preset` (tokenizer trained on 16 shipped pairs) on `device`.
pub fn fresh_model(preset: Preset, device: &Device) -> (ModelInfo, CausalLm) {
    let config = small_config(preset);
    let info = shipped_run(config.clone(), 16).info().clone();
    let model = info.config.random_weights(config.seed, device);
    (info, model)
}

/// Drives `run` to its end; the metrics of its steps.
pub fn run_to_end(run: &mut Run) -> Vec<Metrics> {
    let mut out = Vec::new();
    while let Some(event) = read_sync(run.next()).unwrap() {
        if let Event::Step { metrics } = event {
            out.push(metrics);
        }
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

/// A model's Hugging Face folder files.
pub fn export_files(info: &ModelInfo, model: &CausalLm) -> hf::ModelFiles {
    read_sync(hf::export(model, info)).unwrap()
}

/// Writes a fresh micro model folder (HF layout) to `dir`.
pub fn write_model_folder(dir: &Path) {
    let (info, model) = fresh_model(Preset::Micro, &Device::flex());
    Saved::Model(export_files(&info, &model))
        .write_dir(dir)
        .unwrap();
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

/// The metrics TRL's `DPOTrainer.evaluate()` reports, as `dpo eval --json` names them.
pub const TRL_METRICS: [&str; 7] = [
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
];

/// tests/fixtures/hf: the models, adapters and numbers `scripts/gen_reference.py` wrote.
pub fn hf_fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

/// A JSON file of the fixtures.
pub fn fixture_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(hf_fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `dpo eval --json` with `args` on the fixtures' pairs, once per loss type TRL was run with
/// (`expected`: loss name -> TRL's metrics and its `label_smoothing`); each metric more than
/// 1e-4 relative (absolute below 1e-3) from TRL's is a failure, returned as a line.
pub fn eval_against_trl(expected: &serde_json::Value, args: &[&str]) -> Vec<String> {
    let data = hf_fixtures().join("pairs.jsonl");
    let mut failures = Vec::new();
    for (loss, theirs) in expected.as_object().unwrap() {
        let smoothing = theirs["label_smoothing"].as_f64().unwrap().to_string();
        let mut all = vec!["eval", "--data", data.to_str().unwrap(), "--loss", loss];
        all.extend(["--label-smoothing", &smoothing, "--beta", "0.1"]);
        all.extend(["--backend", "cpu", "--json"]);
        all.extend_from_slice(args);
        let out = dpo_cli(&all);
        assert_eq!(out.status, 0, "dpo {}: {}", all.join(" "), out.stderr);
        let ours: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        for metric in TRL_METRICS {
            let (a, b) = (
                ours[metric].as_f64().unwrap(),
                theirs[metric].as_f64().unwrap(),
            );
            if (a - b).abs() > 1e-4 * b.abs().max(1e-3) {
                failures.push(format!("{loss} {metric}: dpo {a} vs trl {b}"));
            }
        }
    }
    failures
}
