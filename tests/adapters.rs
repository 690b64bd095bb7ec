//! LoRA adapters as PEFT and TRL define them: `dpo eval --adapter` reports TRL's metrics for a
//! PEFT model (fixtures from scripts/gen_reference.py: GPT-2 and Llama with non-zero factors,
//! PEFT's own files, the reference being the base), an adapter written here has PEFT's names,
//! shapes and values, and adapter runs train, merge and resume exactly.

mod common;

use std::path::Path;

use burn::tensor::{Device, read_sync};
use dpo::io::Saved;
use dpo::io::peft::{self, AdapterFiles};
use dpo::model::lora::attach;
use safetensors::SafeTensors;
use serde_json::Value;

use common::{TRL_METRICS as METRICS, hf_fixtures as fixtures};

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn eval_json(args: &[&str]) -> Value {
    let mut all = vec!["eval", "--backend", "cpu", "--json"];
    all.extend_from_slice(args);
    let out = common::dpo_cli(&all);
    assert_eq!(out.status, 0, "dpo {}: {}", all.join(" "), out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `dpo eval --model BASE --adapter DIR` (the base is the default reference) for every loss
/// type TRL was run with, against TRL's numbers for the PEFT model.
fn eval_matches_trl(family: &str) {
    let (base, adapter) = (
        fixtures().join(family),
        fixtures().join(format!("{family}-lora")),
    );
    let expected = &common::fixture_json("expected_lora.json")[family];
    let args = [
        "--model",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
    ];
    let failures = common::eval_against_trl(expected, &args);
    assert!(failures.is_empty(), "{family}:\n{}", failures.join("\n"));
}

#[test]
fn gpt2_adapter_eval_matches_trl() {
    eval_matches_trl("gpt2");
}

#[test]
fn llama_adapter_eval_matches_trl() {
    eval_matches_trl("llama");
}

/// PEFT's adapter loaded here and written back: the same tensor names, shapes and values.
#[test]
fn adapters_are_written_in_peft_layout() {
    let device = Device::flex();
    for family in ["gpt2", "llama"] {
        let dir = fixtures().join(format!("{family}-lora"));
        let Saved::Adapter(files) = Saved::read_dir(&dir).unwrap() else {
            panic!("{family}-lora is an adapter folder");
        };
        let (info, base) = dpo::io::hf::load_dir(&fixtures().join(family), &device).unwrap();
        let mut adapter = peft::read(&files, &path(&dir), &info.config).unwrap();
        let lora = adapter.lora.clone();
        let model = attach(base, &mut adapter).unwrap();
        let written: AdapterFiles =
            read_sync(peft::export(&model, &lora, &info.config, "base")).unwrap();
        let (theirs, ours) = (
            SafeTensors::deserialize(&files.weights).unwrap(),
            SafeTensors::deserialize(&written.weights).unwrap(),
        );
        let mut names = ours.names();
        names.sort();
        let mut expected = theirs.names();
        expected.sort();
        assert_eq!(names, expected, "{family}");
        for name in names {
            let (a, b) = (ours.tensor(name).unwrap(), theirs.tensor(name).unwrap());
            assert_eq!(a.shape(), b.shape(), "{family} {name}");
            assert_eq!(a.data(), b.data(), "{family} {name}");
        }
        let config: Value = serde_json::from_slice(&written.config).unwrap();
        assert_eq!(config["peft_type"], "LORA");
        assert_eq!(config["r"], 4);
        let targets: Value = serde_json::from_slice(&files.config).unwrap();
        assert_eq!(config["target_modules"], targets["target_modules"]);
    }
}

fn train(out: &Path, args: &str) -> String {
    let mut all: Vec<String> = args.split_whitespace().map(String::from).collect();
    all.extend(["--out".into(), path(out), "--backend".into(), "cpu".into()]);
    all.extend(["--samples".into(), "0".into(), "--resume".into()]);
    let (code, _, stderr) = common::dpo(&all);
    assert_eq!(code, 0, "dpo {}: {stderr}", all.join(" "));
    stderr
}

fn metrics(run: &Path) -> String {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            // Step times differ between runs; everything else must not.
            let mut value: Value = serde_json::from_str(line).unwrap();
            value.as_object_mut().unwrap().remove("ms");
            format!("{value}\n")
        })
        .collect()
}

/// Runs `first`, then resumes it with `then` in a folder beside `whole` (the uninterrupted run
/// of `then`), and checks that both wrote the same metrics. Returns the resumed run's folder.
fn resumed_like(whole: &Path, dir: &Path, first: String, then: String) -> std::path::PathBuf {
    let cut = dir.join("cut");
    train(&cut, &first);
    train(&cut, &then);
    assert_eq!(
        metrics(whole),
        metrics(&cut),
        "metrics differ after resuming"
    );
    cut
}

/// An adapter run on a Hugging Face folder trains only the adapters in both phases (the
/// SFT adapter is DPO's reference), writes PEFT folders and a merged model that scores the
/// same, and, stopped and resumed, ends where an uninterrupted run ends.
#[test]
fn adapter_runs_on_a_model_folder_merge_and_resume() {
    let dir = common::temp_dir("lora-folder");
    let model = fixtures().join("llama");
    let data = fixtures().join("pairs.jsonl");
    let args = |steps: usize| {
        format!(
            "train --model {} --data {} --lora-r 4 --lora-alpha 8 --lora-targets all-linear \
             --sft-steps 2 --steps {steps} --batch 4 --max-length 64 --lr 1e-3 --save-every 1 \
             --merge",
            path(&model),
            path(&data)
        )
    };
    let whole = dir.join("whole");
    let stderr = train(&whole, &args(4));
    assert!(
        stderr.contains("LoRA r 4 alpha 8 on all-linear: training"),
        "{stderr}"
    );
    for folder in ["sft", "final", "checkpoints/step-000006"] {
        let config = whole.join(folder).join("adapter_config.json");
        assert!(config.exists(), "{} missing", config.display());
    }
    // The merged model against the base scores as the adapter on the base does.
    let data_arg = path(&fixtures().join("pairs.jsonl"));
    let adapter = eval_json(&[
        "--model",
        &path(&model),
        "--adapter",
        &path(&whole.join("final")),
        "--data",
        &data_arg,
    ]);
    let merged = eval_json(&[
        "--model",
        &path(&whole.join("final-merged")),
        "--ref",
        &path(&model),
        "--data",
        &data_arg,
    ]);
    for metric in METRICS {
        let (a, b) = (
            adapter[metric].as_f64().unwrap(),
            merged[metric].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
            "{metric}: {a} vs merged {b}"
        );
    }
    assert!(
        adapter["rewards/margins"].as_f64().unwrap().abs() > 1e-4,
        "{adapter}"
    );

    let cut = resumed_like(&whole, &dir, args(1), args(4));
    let weights = |run: &Path| std::fs::read(run.join("final/adapter_model.safetensors")).unwrap();
    assert!(weights(&whole) == weights(&cut), "final adapters differ");
    std::fs::remove_dir_all(dir).unwrap();
}

/// On a fresh model SFT trains every weight, and the adapters (with dropout, drawn from the
/// seed and step) go on the SFT model for DPO; resumed inside DPO, the run ends where an
/// uninterrupted one does.
#[test]
fn adapter_runs_on_a_fresh_model_put_adapters_on_the_sft_model_and_resume() {
    fresh_model_adapters("lora-fresh", "");
}

/// The same with the SFT model's linear weights held in f16 once SFT is over: DPO's reference
/// is that same rounded base (the first DPO step finds no margin between policy and
/// reference), the saved SFT model holds it, and a resumed run ends where an uninterrupted one
/// does.
#[test]
fn a_half_base_on_a_fresh_model_is_the_reference_and_resumes() {
    let lines = fresh_model_adapters("lora-fresh-f16", "--base-precision f16");
    let first_dpo: Value = serde_json::from_str(lines.lines().nth(3).unwrap()).unwrap();
    assert_eq!(first_dpo["phase"], "dpo", "{first_dpo}");
    assert_eq!(first_dpo["rewards/margins"], 0.0, "{first_dpo}");
}

/// Trains a fresh micro model, SFT then DPO with adapters, and resumed; returns the
/// uninterrupted run's metrics.
fn fresh_model_adapters(name: &str, extra: &str) -> String {
    let dir = common::temp_dir(name);
    let args = |steps: usize| {
        format!(
            "train --preset micro --sft-steps 3 --steps {steps} --batch 4 --lora-r 4 \
             --lora-dropout 0.1 --lr 1e-3 --save-every 1 {extra}"
        )
    };
    let whole = dir.join("whole");
    let stderr = train(&whole, &args(4));
    assert!(
        stderr.contains("every weight in SFT, then adapters"),
        "{stderr}"
    );
    assert!(
        whole.join("sft/model.safetensors").exists(),
        "the SFT model is a full model"
    );
    assert!(whole.join("final/adapter_model.safetensors").exists());
    resumed_like(&whole, &dir, args(2), args(4));
    // The adapter evaluates on its base, the SFT model.
    let metrics = eval_json(&[
        "--model",
        &path(&whole.join("sft")),
        "--adapter",
        &path(&whole.join("final")),
        "--data",
        &path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/heldout.jsonl")),
    ]);
    assert!(metrics["loss"].as_f64().unwrap().is_finite(), "{metrics}");
    let lines = self::metrics(&whole);
    std::fs::remove_dir_all(dir).unwrap();
    lines
}

/// Continuing an existing PEFT adapter: as in TRL 1.16, DPO's reference is the adapter as
/// loaded, so the first step (before any update) finds the policy equal to its reference;
/// with log-probs precomputed as well.
#[test]
fn a_loaded_adapter_is_its_own_reference() {
    let dir = common::temp_dir("lora-continue");
    for (name, extra) in [("model", ""), ("precomputed", " --precompute-ref")] {
        let run = dir.join(name);
        let args = format!(
            "train --model {} --adapter {} --data {} --sft-steps 0 --steps 2 --batch 4 \
             --max-length 64{extra}",
            path(&fixtures().join("gpt2")),
            path(&fixtures().join("gpt2-lora")),
            path(&fixtures().join("pairs.jsonl")),
        );
        let stderr = train(&run, &args);
        assert!(
            stderr.contains("LoRA r 4 alpha 8 on c_attn, c_fc, c_proj"),
            "{stderr}"
        );
        let first: Value = serde_json::from_str(metrics(&run).lines().next().unwrap()).unwrap();
        // Precomputed log-probs come from other batches (other padding): equal to rounding.
        for reward in ["rewards/chosen", "rewards/rejected"] {
            assert!(
                first[reward].as_f64().unwrap().abs() < 1e-5,
                "{name}: {first}"
            );
        }
        assert!(run.join("final/adapter_config.json").exists());
    }
    std::fs::remove_dir_all(dir).unwrap();
}
