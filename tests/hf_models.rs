//! Hugging Face folders in and out: the committed GPT-2, Llama, Qwen2, Qwen3 and Mistral
//! fixtures (written by transformers) load, save back in the same layout, train, and generate
//! through the CLI.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, read_sync};
use dpo::io::hf;
use safetensors::SafeTensors;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// name -> (shape, little-endian f32 bytes) of a safetensors file.
fn tensors(bytes: &[u8]) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

/// Loading and exporting gives back transformers' own file: the same tensor names (Conv1D
/// layouts, tied or separate heads), shapes and bytes, and the config's fields.
fn export_is_identical(family: &str) {
    let device = Device::flex();
    let dir = fixture(family);
    let files = hf::read_dir(&dir).unwrap();
    let (info, model) = hf::load(&files, family, &device).unwrap();
    let exported = read_sync(hf::export(&model, &info)).unwrap();
    let (ours, theirs) = (tensors(&exported.weights), tensors(&files.weights));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{family}: tensor names"
    );
    for (name, tensor) in &theirs {
        assert!(ours[name] == *tensor, "{family}: {name} differs");
    }
    let config = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    assert_eq!(
        config(&exported.config),
        config(&files.config),
        "{family}: config.json"
    );
}

#[test]
fn gpt2_export_is_identical() {
    export_is_identical("gpt2");
}

#[test]
fn llama_export_is_identical() {
    export_is_identical("llama");
}

#[test]
fn relatives_export_is_identical() {
    for family in ["qwen2", "qwen3", "mistral", "llama3"] {
        export_is_identical(family);
    }
}

/// Sequences beyond Mistral's sliding window would attend differently; they are refused by
/// the field that sets the limit, not computed wrongly.
#[test]
fn a_sliding_window_limits_the_length() {
    let eval = common::dpo_cli(&[
        "eval",
        "--model",
        fixture("mistral").to_str().unwrap(),
        "--data",
        fixture("pairs.jsonl").to_str().unwrap(),
        "--max-length",
        "64",
        "--backend",
        "cpu",
    ]);
    assert_eq!(eval.status, 2, "{}", eval.stderr);
    assert!(
        eval.stderr
            .contains("mistral/config.json: field `sliding_window`: the model covers 48 positions"),
        "{}",
        eval.stderr
    );
}

#[test]
fn llama_shapes_that_disagree_with_the_config_are_refused() {
    let device = Device::flex();
    let files = hf::read_dir(&fixture("llama")).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    config["num_key_value_heads"] = 4.into();
    let bad = hf::ModelFiles {
        config: serde_json::to_vec(&config).unwrap(),
        ..files.clone()
    };
    let error = hf::load(&bad, "llama", &device)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("model.layers.0.self_attn.k_proj.weight") && error.contains("[32, 32]"),
        "{error}"
    );
    config["num_key_value_heads"] = 3.into();
    let bad = hf::ModelFiles {
        config: serde_json::to_vec(&config).unwrap(),
        ..files
    };
    let error = hf::load(&bad, "llama", &device)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("config.json") && error.contains("num_key_value_heads"),
        "{error}"
    );
}

/// `dpo train --model <fixture>` trains SFT then DPO, writes folders that load back into
/// `dpo eval`, keep the family's layout, and generate text.
fn trains_evaluates_and_generates(family: &str, max_length: usize) {
    let out = common::temp_dir(&format!("hf-train-{family}"));
    let pairs = fixture("pairs.jsonl");
    let run = common::dpo_cli(&[
        "train",
        "--model",
        fixture(family).to_str().unwrap(),
        "--data",
        pairs.to_str().unwrap(),
        "--sft-steps",
        "3",
        "--steps",
        "8",
        "--batch",
        "4",
        "--lr",
        "1e-3",
        "--max-length",
        &max_length.to_string(),
        "--backend",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let final_dir = out.join("final");
    let eval = common::dpo_cli(&[
        "eval",
        "--model",
        final_dir.to_str().unwrap(),
        "--ref",
        out.join("sft").to_str().unwrap(),
        "--data",
        pairs.to_str().unwrap(),
        "--backend",
        "cpu",
        "--json",
    ]);
    assert_eq!(eval.status, 0, "{}", eval.stderr);
    let metrics: serde_json::Value = serde_json::from_str(&eval.stdout).unwrap();
    // Eight DPO steps on eight pairs move the policy towards the chosen answers.
    assert!(
        metrics["rewards/margins"].as_f64().unwrap() > 0.0,
        "{metrics}"
    );
    assert!(
        metrics["loss"].as_f64().unwrap() < std::f64::consts::LN_2,
        "{metrics}"
    );
    let saved = tensors(&std::fs::read(final_dir.join(hf::WEIGHTS)).unwrap());
    let original = tensors(&std::fs::read(fixture(family).join(hf::WEIGHTS)).unwrap());
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>()
    );
    let generated = common::dpo_cli(&[
        "generate",
        "--model",
        final_dir.to_str().unwrap(),
        "--prompt",
        "The capital of Italy is",
        "--max-new-tokens",
        "8",
        "--backend",
        "cpu",
    ]);
    assert_eq!(generated.status, 0, "{}", generated.stderr);
    assert!(
        generated.stdout.starts_with("The capital of Italy is"),
        "{}",
        generated.stdout
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn gpt2_folder_trains_evaluates_and_generates() {
    trains_evaluates_and_generates("gpt2", 64);
}

#[test]
fn llama_folder_trains_evaluates_and_generates() {
    trains_evaluates_and_generates("llama", 64);
}

#[test]
fn qwen3_folder_trains_evaluates_and_generates() {
    trains_evaluates_and_generates("qwen3", 64);
}

#[test]
fn mistral_folder_trains_evaluates_and_generates() {
    trains_evaluates_and_generates("mistral", 48);
}

#[test]
fn pickle_checkpoints_are_refused_with_the_conversion() {
    let dir = common::temp_dir("pickle");
    for name in [hf::CONFIG, hf::TOKENIZER, "pytorch_model.bin"] {
        std::fs::write(dir.join(name), b"{}").unwrap();
    }
    let out = common::dpo_cli(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    let line = out.stderr.lines().last().unwrap();
    assert!(
        line.contains("pytorch_model.bin") && line.contains("safe_serialization=True"),
        "{line}"
    );
}
