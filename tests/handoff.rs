//! `dpo handoff`: a hand-made run folder (train_config.json, run_inputs.json, sft/ from the
//! GPT-2 fixture) mapped onto TRL's names, and the errors for a missing or bad settings file.
//! No training: CPU, fast. scripts/check_handoff.py checks the files against TRL itself.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use dpo::config::TrainConfig;
use dpo::dpo::loss::LossType;
use dpo::jobs::handoff::{self, Handoff, HandoffOptions, RunInputs};
use dpo::model::LoraConfig;

fn run_folder(name: &str, config: &TrainConfig) -> PathBuf {
    let run = common::temp_dir(name);
    let json = serde_json::to_vec_pretty(config).unwrap();
    fs::write(run.join("train_config.json"), json).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/gpt2");
    fs::create_dir(run.join("sft")).unwrap();
    for entry in fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, run.join("sft").join(path.file_name().unwrap())).unwrap();
    }
    // 20 pairs and no held-out file: dpo held out the last 2 and trained on 18.
    let line = r#"{"prompt": "Q", "chosen": " good", "rejected": " bad"}"#;
    fs::write(run.join("pairs.jsonl"), format!("{line}\n").repeat(20)).unwrap();
    let inputs = RunInputs {
        data: Some(run.join("pairs.jsonl")),
        ..RunInputs::default()
    };
    fs::write(
        run.join(handoff::INPUTS),
        serde_json::to_vec(&inputs).unwrap(),
    )
    .unwrap();
    run
}

fn plan(run: &Path, processes: usize) -> Result<Handoff, dpo::Error> {
    handoff::plan(&HandoffOptions {
        run: run.to_path_buf(),
        out: None,
        processes,
        machines: 1,
        strategy: "auto".into(),
        redo_sft: false,
        inputs: RunInputs::default(),
    })
}

fn file<'a>(plan: &'a Handoff, name: &str) -> &'a str {
    &plan.files.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn settings_map_onto_trl_names() {
    let mut config = TrainConfig {
        steps: 7,
        batch: 8,
        grad_accum: 2,
        lr: 5e-5,
        lora: Some(LoraConfig {
            r: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        }),
        ..TrainConfig::default()
    };
    config.loss.beta = 0.25;
    config.loss.loss_type = vec![LossType::Sigmoid, LossType::Sft];
    config.loss.loss_weights = vec![1.0, 0.5];
    config.loss.reference_free = true;
    let run = run_folder("handoff-map", &config);
    let plan = plan(&run, 2).unwrap();
    let yaml = file(&plan, "dpo_config.yaml");
    let sft = run.join("sft");
    for line in [
        format!("model_name_or_path: \"{}\"", sft.display()),
        "beta: 0.25".into(),
        "learning_rate: 0.00005".into(),
        "max_steps: 7".into(),
        // 8 pairs a step over 2 processes, micro-batches no larger than the run's 4.
        "per_device_train_batch_size: 4".into(),
        "gradient_accumulation_steps: 1".into(),
        r#"loss_type: ["sigmoid", "sft"]"#.into(),
        "loss_weights: [1.0, 0.5]".into(),
        "use_peft: true".into(),
        "lora_r: 4".into(),
        "lora_alpha: 8".into(),
        "lora_dropout: 0.0".into(),
        // all-linear as PEFT names the GPT-2 fixture's layers.
        r#"lora_target_modules: ["c_attn", "c_fc", "c_proj"]"#.into(),
        "precompute_ref_log_probs: false".into(),
        "bf16: false".into(),
        "eval_strategy: \"steps\"".into(),
    ] {
        assert!(yaml.lines().any(|l| l == line), "no `{line}` in\n{yaml}");
    }
    assert!(file(&plan, "accelerate_config.yaml").contains("distributed_type: \"MULTI_GPU\""));
    assert_eq!(plan.unmapped.len(), 1, "{:?}", plan.unmapped);
    assert!(plan.unmapped[0].starts_with("`loss.reference_free` true"));
    assert!(plan.readme.contains("`loss.reference_free` true"));
    assert!(plan.commands[0].contains("-m trl.scripts.dpo --config"));

    plan.write().unwrap();
    let out = run.join("handoff");
    assert_eq!(
        fs::read_to_string(out.join("data/train.jsonl"))
            .unwrap()
            .lines()
            .count(),
        18
    );
    assert_eq!(
        fs::read_to_string(out.join("data/test.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(out.join("README.md").exists() && out.join("accelerate_config.yaml").exists());
    fs::remove_dir_all(&run).unwrap();
}

#[test]
fn length_normalized_sigmoid_is_sigmoid_norm() {
    let mut config = TrainConfig::default();
    config.loss.length_normalize = true;
    config.loss.loss_type = vec![LossType::Sigmoid, LossType::Hinge];
    let run = run_folder("handoff-norm", &config);
    let plan = plan(&run, 1).unwrap();
    let yaml = file(&plan, "dpo_config.yaml");
    assert!(
        yaml.contains(r#"loss_type: ["sigmoid_norm", "hinge"]"#),
        "{yaml}"
    );
    assert!(!yaml.contains("use_peft") && !yaml.contains("distributed_type"));
    // hinge has no per-token variant in TRL: listed, not dropped.
    assert_eq!(plan.unmapped.len(), 1, "{:?}", plan.unmapped);
    assert!(plan.unmapped[0].contains("length_normalize") && plan.unmapped[0].contains("hinge"));
    assert!(file(&plan, "accelerate_config.yaml").contains("distributed_type: \"NO\""));
    fs::remove_dir_all(&run).unwrap();
}

#[test]
fn missing_or_bad_settings_name_the_file_and_field() {
    let run = run_folder("handoff-errors", &TrainConfig::default());
    fs::remove_file(run.join("train_config.json")).unwrap();
    let error = plan(&run, 1).err().unwrap();
    assert!(error.is_input());
    assert!(error.to_string().contains("train_config.json"), "{error}");
    let (code, _, stderr) = common::dpo(&["handoff".as_ref(), run.as_os_str()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("train_config.json"), "{stderr}");

    fs::write(
        run.join("train_config.json"),
        r#"{"loss": {"beta": "high"}}"#,
    )
    .unwrap();
    let error = plan(&run, 1).err().unwrap().to_string();
    assert!(
        error.contains("train_config.json") && error.contains("field `loss.beta`"),
        "{error}"
    );
    fs::write(run.join("train_config.json"), r#"{"steps": 0}"#).unwrap();
    let error = plan(&run, 1).err().unwrap().to_string();
    assert!(error.contains("field `steps`"), "{error}");
    assert!(
        !run.join("handoff").exists(),
        "nothing is written on bad input"
    );
    fs::remove_dir_all(&run).unwrap();
}
