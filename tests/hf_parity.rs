//! Parity with Hugging Face: `dpo eval` on the committed fixtures (tests/fixtures/hf, written by
//! scripts/gen_reference.py with PyTorch, transformers and TRL) reports TRL's metrics, and the
//! models' per-token log-probs equal transformers'. GPT-2 and the Llama family (grouped-query
//! attention, untied head, a BOS-prepending tokenizer) in expected.json; its relatives Qwen2,
//! Qwen3, Mistral and a Llama 3 with llama3 rope scaling in expected_families.json.

mod common;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData, read_sync};
use dpo::io::hf;
use dpo::model::CausalLm;

/// The file of TRL's numbers for `family`'s fixtures.
fn expected_file(family: &str) -> &'static str {
    match family {
        "gpt2" | "llama" => "expected.json",
        _ => "expected_families.json",
    }
}

/// `dpo eval --json` for every loss type TRL was run with, against TRL's numbers.
fn eval_matches_trl(family: &str) {
    let dir = common::hf_fixtures();
    let (model, reference) = (dir.join(family), dir.join(format!("{family}-ref")));
    let expected = &common::fixture_json(expected_file(family))[family];
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--ref",
        reference.to_str().unwrap(),
    ];
    let failures = common::eval_against_trl(expected, &args);
    assert!(
        expected.as_object().unwrap().len() >= 3,
        "several loss types"
    );
    assert!(failures.is_empty(), "{family}:\n{}", failures.join("\n"));
}

#[test]
fn gpt2_eval_matches_trl() {
    eval_matches_trl("gpt2");
}

#[test]
fn llama_eval_matches_trl() {
    eval_matches_trl("llama");
}

#[test]
fn qwen2_eval_matches_trl() {
    eval_matches_trl("qwen2");
}

#[test]
fn qwen3_eval_matches_trl() {
    eval_matches_trl("qwen3");
}

#[test]
fn mistral_eval_matches_trl() {
    eval_matches_trl("mistral");
}

#[test]
fn llama3_rope_scaling_eval_matches_trl() {
    eval_matches_trl("llama3");
}

/// log p(token | prefix) for every token after the first, through the library.
fn token_logps(model: &CausalLm, ids: &[i64], device: &Device) -> Vec<f32> {
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), device);
    let hidden = model.hidden(input);
    let [_, seq, width] = hidden.dims();
    let logits = hidden
        .reshape([seq, width])
        .matmul(model.head().transpose());
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(ids[1..].to_vec(), [seq - 1]), device);
    let picked =
        log_softmax(logits.narrow(0, 0, seq - 1), 1).gather(1, targets.reshape([seq - 1, 1]));
    read_sync(picked.into_data_async())
        .unwrap()
        .try_to_vec()
        .unwrap()
}

fn token_logps_match(family: &str) {
    let device = Device::flex();
    let (info, model) = hf::load_dir(&common::hf_fixtures().join(family), &device).unwrap();
    let cases =
        common::fixture_json(expected_file(family))[format!("{family}_token_logps")].clone();
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<i64> = serde_json::from_value(case["ids"].clone()).unwrap();
        let theirs: Vec<f32> = serde_json::from_value(case["logps"].clone()).unwrap();
        // The tokenizer gives transformers' ids (BOS included for the Llama fixture).
        let ours_ids: Vec<i64> = info
            .tokenizer
            .encode_text(text)
            .iter()
            .map(|&i| i as i64)
            .collect();
        assert_eq!(ours_ids, ids, "{family}: token ids of {text:?}");
        let ours = token_logps(&model, &ids, &device);
        assert_eq!(ours.len(), theirs.len());
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{family} {text:?} token {i}: dpo {a} vs transformers {b}"
            );
        }
    }
}

#[test]
fn gpt2_token_logps_match_transformers() {
    token_logps_match("gpt2");
}

#[test]
fn llama_token_logps_match_transformers() {
    token_logps_match("llama");
}

#[test]
fn relatives_token_logps_match_transformers() {
    for family in ["qwen2", "qwen3", "mistral", "llama3"] {
        token_logps_match(family);
    }
}
