//! Trainer properties on the CPU backend: gradient accumulation, gradient checkpointing and
//! precomputed reference log-probs change memory, not results; bf16 products change results by bf16 rounding only;
//! model folders round-trip exactly in HF layout.

mod common;

use std::path::Path;

use burn::tensor::Device;
use dpo::charts::RunMetrics;
use dpo::config::TrainConfig;
use dpo::dpo::Metrics;
use dpo::io::hf;
use dpo::model::weights::named_tensors;
use dpo::model::{LoraConfig, Precision, Preset};
use dpo::train::Start;

/// DPO from step 0 (the initial model is the reference) for `steps` steps.
fn dpo_metrics(adjust: impl Fn(&mut TrainConfig)) -> Vec<Metrics> {
    let mut config = common::small_config(Preset::Micro);
    config.sft_steps = 0;
    config.steps = 3;
    adjust(&mut config);
    let prepared = common::shipped_run(config, 16);
    let mut run = prepared.start(&Device::flex(), Start::Fresh).unwrap();
    common::run_to_end(&mut run)
}

fn assert_same(a: &[Metrics], b: &[Metrics], what: &str) {
    for (x, y) in a.iter().zip(b) {
        for (name, u, v) in [
            ("loss", Some(x.loss), Some(y.loss)),
            ("rewards/margins", x.rewards_margins, y.rewards_margins),
            ("logps/chosen", x.logps_chosen, y.logps_chosen),
            ("grad_norm", x.grad_norm, y.grad_norm),
        ] {
            // SFT steps have no rewards.
            assert_eq!(
                u.is_some(),
                v.is_some(),
                "{what}: {name} at step {}",
                x.step
            );
            let (Some(u), Some(v)) = (u, v) else { continue };
            assert!(
                common::close(u, v, 1e-4),
                "{what}: {name} at step {}: {u} vs {v}",
                x.step
            );
        }
    }
}

#[test]
fn gradient_accumulation_equals_one_big_batch() {
    let whole = dpo_metrics(|_| {});
    let split = dpo_metrics(|c| c.grad_accum = 2);
    assert_same(&whole, &split, "grad_accum 2");
}

/// Each layer recomputed in the backward pass gives the gradients of the whole backward: on
/// GPT-2 through SFT (every weight) and DPO (LoRA adapters with dropout, whose masks the
/// recomputed forward must draw again), in two micro-batches a step.
#[test]
fn gradient_checkpointing_equals_a_whole_backward() {
    let adjust = |c: &mut TrainConfig| {
        c.sft_steps = 2;
        c.grad_accum = 2;
        c.lora = Some(LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            ..LoraConfig::default()
        });
    };
    let whole = dpo_metrics(adjust);
    let checkpointed = dpo_metrics(|c| {
        adjust(c);
        c.gradient_checkpointing = true;
    });
    assert_eq!(whole.len(), 5);
    assert_same(&whole, &checkpointed, "gradient checkpointing on GPT-2");
}

/// The same on a Llama folder (rotary positions, a separate head), every weight trained,
/// through the command line.
#[test]
fn gradient_checkpointing_on_llama_from_the_command_line() {
    let dir = common::temp_dir("checkpointing-llama");
    let fixtures = common::hf_fixtures();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let (model, data) = (fixtures.join("llama"), fixtures.join("pairs.jsonl"));
        let mut args = vec!["train".into(), "--model".into(), model.into_os_string()];
        args.extend(["--data".into(), data.into_os_string()]);
        let rest = "--sft-steps 2 --steps 3 --batch 4 --max-length 64 --lr 1e-3 --samples 0 \
                    --backend cpu --out";
        args.extend(rest.split_whitespace().map(Into::into));
        args.push(out.clone().into_os_string());
        args.extend(extra.iter().map(Into::into));
        let (code, _, stderr) = common::dpo(&args);
        assert_eq!(code, 0, "{stderr}");
        RunMetrics::read(&out).unwrap().metrics
    };
    let whole = run("whole", &[]);
    let checkpointed = run("checkpointed", &["--gradient-checkpointing"]);
    assert_eq!(whole.len(), 5);
    assert_same(&whole, &checkpointed, "gradient checkpointing on Llama");
}

/// The linear layers' weights held in half precision under adapters compute exactly as f32 on
/// the rounded weights: a Llama folder trained with `--base-precision bf16` (and `f16`), SFT
/// and DPO, with checkpointing, gives the metrics of an f32 run on a copy of the folder whose
/// linear weights were rounded beforehand.
#[test]
fn a_half_base_trains_as_f32_on_its_rounded_weights() {
    let dir = common::temp_dir("half-base");
    let fixtures = common::hf_fixtures();
    let data = fixtures.join("pairs.jsonl");
    let run = |name: &str, model: &Path, extra: &str| {
        let out = dir.join(name);
        let args = format!(
            "train --model {} --data {} --sft-steps 1 --steps 2 --batch 4 --max-length 64 \
             --lr 1e-3 --samples 0 --backend cpu --lora-r 4 --gradient-checkpointing --out {} \
             {extra}",
            model.display(),
            data.display(),
            out.display()
        );
        let (code, _, stderr) = common::dpo(&args.split_whitespace().collect::<Vec<_>>());
        assert_eq!(code, 0, "{stderr}");
        RunMetrics::read(&out).unwrap().metrics
    };
    let llama = fixtures.join("llama");
    let f32 = run("f32", &llama, "");
    let rounders: [(&str, fn(f32) -> f32); 2] = [
        ("bf16", |x: f32| half::bf16::from_f32(x).to_f32()),
        ("f16", |x: f32| half::f16::from_f32(x).to_f32()),
    ];
    for (dtype, round) in rounders {
        let half = run(dtype, &llama, &format!("--base-precision {dtype}"));
        let rounded_folder = dir.join(format!("llama-{dtype}"));
        round_linear_weights(&llama, &rounded_folder, round);
        let rounded = run(&format!("rounded-{dtype}"), &rounded_folder, "");
        assert_eq!(half.len(), 3);
        assert_same(&half, &rounded, &format!("a {dtype} base"));
        // Against the unrounded weights the log-probs move by the rounding, no more.
        let (u, v) = (half[0].loss, f32[0].loss);
        assert!(
            u != v && common::close(u, v, 1e-2),
            "{dtype}: {u} vs f32 {v}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A copy of model folder `from` whose linear layers' weights (2-D, not the embedding or the
/// head) went through `round`.
fn round_linear_weights(from: &Path, to: &Path, round: fn(f32) -> f32) {
    use safetensors::{Dtype, SafeTensors, tensor::TensorView};
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let bytes = std::fs::read(from.join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name}");
            let linear = view.shape().len() == 2
                && !name.contains("embed_tokens")
                && !name.contains("lm_head");
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .flat_map(|x| if linear { round(x) } else { x }.to_le_bytes())
                .collect();
            (name, view.shape().to_vec(), data)
        })
        .collect();
    let views = tensors.iter().map(|(name, shape, data)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), data).unwrap();
        (name.as_str(), view)
    });
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(to.join("model.safetensors"), out).unwrap();
}

#[test]
fn precomputed_reference_equals_a_reference_model() {
    let model = dpo_metrics(|_| {});
    let precomputed = dpo_metrics(|c| c.precompute_ref = true);
    assert_same(&model, &precomputed, "precompute_ref");
    assert!(
        model[2].rewards_margins.unwrap().abs() > 0.0,
        "training moved the policy"
    );
}

#[test]
fn bf16_products_track_f32_within_rounding() {
    let f32 = dpo_metrics(|_| {});
    let bf16 = dpo_metrics(|c| c.precision = Precision::Bf16);
    for (x, y) in f32.iter().zip(&bf16) {
        for (name, u, v, tolerance) in [
            ("logps/chosen", x.logps_chosen, y.logps_chosen, 1e-2),
            ("grad_norm", x.grad_norm, y.grad_norm, 5e-2),
        ] {
            let (u, v) = (u.unwrap(), v.unwrap());
            assert!(
                common::close(u, v, tolerance),
                "{name} at step {}: f32 {u} vs bf16 {v}",
                x.step
            );
        }
    }
    // Equal log-probs would mean the products never left f32.
    let (u, v) = (f32[0].logps_chosen.unwrap(), bf16[0].logps_chosen.unwrap());
    assert_ne!(u, v, "bf16 run computed exactly the f32 log-probs");
}

#[test]
fn model_folders_use_hf_names_and_round_trip_exactly() {
    let device = Device::flex();
    let (info, model) = common::fresh_model(Preset::Micro, &device);
    let names: Vec<String> = named_tensors(&model).into_iter().map(|t| t.name).collect();
    for expected in [
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.h.0.ln_1.weight",
        "transformer.h.0.ln_1.bias",
        "transformer.h.0.attn.c_attn.weight",
        "transformer.h.0.attn.c_attn.bias",
        "transformer.h.0.attn.c_proj.weight",
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.h.1.mlp.c_proj.bias",
        "transformer.ln_f.weight",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(
        names.len(),
        4 + 12 * 2,
        "GPT-2 has 4 + 12 tensors per layer"
    );

    let files = common::export_files(&info, &model);
    let (_, loaded) = hf::load(&files, "roundtrip", &device).unwrap();
    for (a, b) in named_tensors(&model)
        .into_iter()
        .zip(named_tensors(&loaded))
    {
        assert_eq!(a.name, b.name);
        assert_eq!(a.tensor.into_data(), b.tensor.into_data(), "{}", a.name);
    }

    // A config that disagrees with the weights is refused, naming the tensor.
    let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    config["n_embd"] = 32.into();
    config["n_head"] = 2.into();
    let bad = hf::ModelFiles {
        config: serde_json::to_vec(&config).unwrap(),
        ..files
    };
    let error = hf::load(&bad, "bad", &device)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("transformer.wte.weight") && error.contains("shape"),
        "{error}"
    );
}
