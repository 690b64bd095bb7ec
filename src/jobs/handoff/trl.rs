//! The run's settings under TRL's names: `DPOConfig` (over transformers' `TrainingArguments`),
//! `ModelConfig` (`model_name_or_path`, `use_peft`, `lora_*`) and `ScriptArguments`
//! (`dataset_name`, splits), as TRL 1.16's source spells them; the accelerate config from
//! TRL's own templates (`trl/accelerate_configs/`); the README's table.

use std::fmt::Display;
use std::path::Path;

use crate::config::TrainConfig;
use crate::dpo::loss::LossType;
use crate::io::hf;
use crate::model::{BasePrecision, Precision};

/// Settings whose TRL counterpart takes the run's value as it is.
const SAME: [(&str, &str); 12] = [
    (
        "seed",
        "seed (TRL's data order and adapter init are its own)",
    ),
    ("steps", "max_steps"),
    ("max_length", "max_length, truncation_mode keep_start"),
    ("lr", "learning_rate"),
    (
        "warmup_steps",
        "warmup_steps, lr_scheduler_type linear (TRL's first step at lr 0)",
    ),
    (
        "weight_decay",
        "weight_decay; optim adamw_torch, betas 0.9, 0.999, eps 1e-8 as dpo",
    ),
    ("max_grad_norm", "max_grad_norm (0: off in both)"),
    ("precompute_ref", "precompute_ref_log_probs"),
    ("gradient_checkpointing", "gradient_checkpointing"),
    (
        "precision",
        "bf16 (autocast, f32 weights as dpo's), accelerate's mixed_precision",
    ),
    (
        "loss.loss_type, loss_weights, beta",
        "loss_type, loss_weights, beta",
    ),
    ("loss.label_smoothing", "label_smoothing"),
];

/// Where the run lands: decided by the caller from the run folder and the flags.
pub struct Place<'a> {
    pub start: String,
    pub out: &'a Path,
    /// (per-device batch, accumulation steps, processes)
    pub batch: (usize, usize, usize),
    pub eval: bool,
    pub strategy: &'a str,
    /// The starting model's config.json (for LoRA's target names and dropout).
    pub hf_config: &'a [u8],
}

pub type Keys = Vec<(&'static str, String)>;

/// The DPO config's keys, the README's rows (dpo setting, TRL) and the settings with no
/// counterpart.
pub fn dpo_config(c: &TrainConfig, to: &Place) -> (Keys, Vec<(String, String)>, Vec<String>) {
    let at = |name: &str| q(&to.out.join(name).display().to_string());
    let (l, mut unmapped) = (&c.loss, Vec::new());
    // length_normalize on sigmoid (unsmoothed) is TRL's sigmoid_norm; ipo, sft and
    // sigmoid_norm average per token in both anyway. The others have no per-token form.
    let norm =
        |t: &LossType| l.length_normalize && *t == LossType::Sigmoid && l.label_smoothing == 0.0;
    let types: Vec<String> = l
        .loss_type
        .iter()
        .map(|t| q(if norm(t) { "sigmoid_norm" } else { t.name() }))
        .collect();
    let summed: Vec<&str> = l
        .loss_type
        .iter()
        .filter(|t| !norm(t) && !matches!(t, LossType::Ipo | LossType::Sft | LossType::SigmoidNorm))
        .map(|t| t.name())
        .collect();
    if l.length_normalize && !summed.is_empty() {
        let which = summed.join(", ");
        unmapped.push(format!("`loss.length_normalize` true for {which}: TRL averages per token only in sigmoid_norm and ipo"));
    }
    if l.reference_free {
        unmapped.push(
            "`loss.reference_free` true: TRL 1.16's DPOConfig has no reference-free switch".into(),
        );
    }
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let weights = match l.loss_weights.is_empty() {
        true => "null".into(),
        false => list(l.loss_weights.iter().map(float).collect()),
    };
    let (micro, accum, processes) = to.batch;
    let bf16 = c.precision == Precision::Bf16;
    let mut y: Keys = vec![
        ("model_name_or_path", q(&to.start)),
        ("dtype", q(torch_dtype(c.base_precision))),
        ("dataset_name", at("data")),
        ("dataset_train_split", q("train")),
        ("dataset_test_split", q("test")),
        ("output_dir", at("trl-dpo")),
        ("seed", c.seed.to_string()),
        ("max_steps", c.steps.to_string()),
        ("per_device_train_batch_size", micro.to_string()),
        ("per_device_eval_batch_size", micro.to_string()),
        ("gradient_accumulation_steps", accum.to_string()),
        ("max_length", c.max_length.to_string()),
        ("truncation_mode", q("keep_start")),
        ("learning_rate", float(c.lr)),
        ("lr_scheduler_type", q("linear")),
        ("warmup_steps", c.warmup_steps.to_string()),
        ("optim", q("adamw_torch")),
        ("adam_beta1", float(0.9)),
        ("adam_beta2", float(0.999)),
        ("adam_epsilon", float(1e-8)),
        ("weight_decay", float(c.weight_decay)),
        ("max_grad_norm", float(c.max_grad_norm)),
        ("precompute_ref_log_probs", c.precompute_ref.to_string()),
        (
            "gradient_checkpointing",
            c.gradient_checkpointing.to_string(),
        ),
        ("bf16", bf16.to_string()),
        ("fp16", "false".into()),
        ("loss_type", list(types)),
        ("loss_weights", weights),
        ("beta", float(l.beta)),
        ("label_smoothing", float(l.label_smoothing)),
        // Recomputing activations costs time: only where memory is short.
        (
            "activation_checkpointing",
            (to.strategy != "ddp").to_string(),
        ),
        ("logging_steps", "1".into()),
        ("save_strategy", q("steps")),
        ("save_steps", "50".into()),
        ("save_total_limit", "3".into()),
        ("report_to", q("none")),
        ("eval_strategy", q(if to.eval { "steps" } else { "no" })),
        // dpo evaluates the held-out pairs once, after the last step.
        ("eval_steps", c.steps.to_string()),
    ];
    // dpo's models have no dropout but LoRA's. TRL's disable_dropout zeroes every nn.Dropout,
    // PEFT's too, so with LoRA dropout the model's own is zeroed when loading instead.
    let lora_dropout = c.lora.as_ref().is_some_and(|l| l.dropout > 0.0);
    y.push(("disable_dropout", (!lora_dropout).to_string()));
    if lora_dropout {
        let config: serde_json::Value = serde_json::from_slice(to.hf_config).unwrap_or_default();
        let zero = match config["model_type"] == "gpt2" {
            true => r#"{"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}"#,
            false => r#"{"attention_dropout": 0.0}"#,
        };
        y.push(("model_init_kwargs", zero.into()));
    }
    let mut rows: Vec<(String, String)> = SAME
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut row = |a: &str, b: String| rows.push((a.into(), b));
    let total = micro * accum * processes;
    row(
        "batch, grad_accum",
        format!(
            "per_device_train_batch_size {micro} x gradient_accumulation_steps {accum} x {processes} processes = {total}"
        ),
    );
    row(
        "base_precision",
        match c.base_precision {
            BasePrecision::F32 => "dtype float32".into(),
            half => format!(
                "dtype {}: TRL loads the whole model so (embeddings, head and norms too) and \
                 computes in it; dpo stores only the linear weights so and computes in f32",
                torch_dtype(half)
            ),
        },
    );
    row(
        "loss.reference_free",
        ["false (TRL's only way)", "none (below)"][l.reference_free as usize].into(),
    );
    row(
        "loss.length_normalize",
        ["false (TRL's default)", "sigmoid -> sigmoid_norm"][l.length_normalize as usize].into(),
    );
    let Some(lora) = &c.lora else {
        row(
            "lora",
            "none: every weight is trained, as in the run".into(),
        );
        return (y, rows, unmapped);
    };
    let targets = match hf::parse_config(to.hf_config) {
        Ok(model) => lora.peft_targets(&model),
        Err(_) => lora.targets.clone(),
    };
    let alpha = match lora.alpha.fract() == 0.0 {
        true => (lora.alpha as u64).to_string(),
        false => {
            unmapped.push(format!(
                "`lora.alpha` {}: ModelConfig.lora_alpha is an integer; written as is",
                lora.alpha
            ));
            float(lora.alpha)
        }
    };
    y.extend([
        ("use_peft", "true".into()),
        ("lora_r", lora.r.to_string()),
        ("lora_alpha", alpha),
        ("lora_dropout", float(lora.dropout)),
        (
            "lora_target_modules",
            list(targets.iter().map(|t| q(t)).collect()),
        ),
    ]);
    row(
        "lora",
        "use_peft, lora_r, lora_alpha, lora_dropout, lora_target_modules (PEFT's names)".into(),
    );
    (y, rows, unmapped)
}

/// PyTorch's name of the dtype the model is loaded in.
fn torch_dtype(base: BasePrecision) -> &'static str {
    match base {
        BasePrecision::F32 => "float32",
        BasePrecision::F16 => "float16",
        BasePrecision::Bf16 => "bfloat16",
    }
}

/// Stage 1, dpo's SFT phase, through DPOTrainer's `sft` loss: dpo's SFT objective (mean NLL
/// per chosen-completion token) on the same pairs and tokenization, so no data is rewritten.
/// The loss ignores the reference: precomputing it keeps a second model out of memory.
pub fn sft_config(dpo: &Keys, c: &TrainConfig, base: &Path, out: &Path) -> Keys {
    let mut keys = dpo.clone();
    for (key, value) in [
        ("model_name_or_path", q(&base.display().to_string())),
        ("output_dir", q(&out.join("trl-sft").display().to_string())),
        ("max_steps", c.sft_steps.to_string()),
        ("learning_rate", float(c.sft_lr)),
        ("loss_type", r#"["sft"]"#.into()),
        ("loss_weights", "null".into()),
        ("precompute_ref_log_probs", c.lora.is_none().to_string()),
        ("eval_strategy", q("no")),
    ] {
        keys.iter_mut()
            .filter(|(k, _)| *k == key)
            .for_each(|(_, v)| *v = value.clone());
    }
    keys
}

/// TRL's accelerate templates, filled in.
pub fn accelerate(
    strategy: &str,
    processes: usize,
    machines: usize,
    bf16: bool,
    why: &str,
) -> String {
    let kind = match (strategy, processes) {
        ("fsdp", _) => "FSDP",
        ("deepspeed", _) => "DEEPSPEED",
        (_, 1) => "NO",
        _ => "MULTI_GPU",
    };
    let extra = match kind {
        "FSDP" => {
            "fsdp_config:\n  fsdp_activation_checkpointing: false\n  fsdp_auto_wrap_policy: \
            \"TRANSFORMER_BASED_WRAP\"\n  fsdp_cpu_ram_efficient_loading: true\n  fsdp_offload_params: \
            false\n  fsdp_reshard_after_forward: true\n  fsdp_state_dict_type: \"FULL_STATE_DICT\"\n  \
            fsdp_version: 2\n"
        }
        "DEEPSPEED" => {
            "deepspeed_config:\n  deepspeed_multinode_launcher: \"standard\"\n  \
            offload_optimizer_device: \"none\"\n  offload_param_device: \"none\"\n  zero3_init_flag: \
            true\n  zero3_save_16bit_model: true\n  zero_stage: 3\n"
        }
        _ => "gpu_ids: \"all\"\n",
    };
    let precision = if bf16 { "bf16" } else { "no" };
    format!(
        "# {why}. DeepSpeed ZeRO-3 only on request (--strategy deepspeed): FSDP comes \
        with PyTorch.\ncompute_environment: \"LOCAL_MACHINE\"\ndebug: false\ndistributed_type: \
        \"{kind}\"\ndowncast_bf16: \"no\"\nmachine_rank: 0\nmain_training_function: \"main\"\n\
        mixed_precision: \"{precision}\"\nnum_machines: {machines}\nnum_processes: {processes}\n\
        rdzv_backend: \"static\"\nsame_network: true\ntpu_env: []\ntpu_use_cluster: false\n\
        tpu_use_sudo: false\nuse_cpu: false\n{extra}"
    )
}

pub fn readme(
    commands: &[String],
    rows: &[(String, String)],
    unmapped: &[String],
    why: &str,
    machines: usize,
) -> String {
    let mut r = format!(
        "# Hand-off to TRL + accelerate\n\nWritten by `dpo handoff`. Run, in order:\n\n```sh\n{}\n```\n\n",
        commands.join("\n")
    );
    if machines > 1 {
        r += "Run the launch commands on every machine, MACHINE_RANK 0 to N-1, MAIN_HOST the address of rank 0.\n\n";
    }
    r += &format!(
        "`accelerate_config.yaml`: {why}. `data/`: the pairs trained on (`train`) and held out (`test`).\n\n\
        | dpo setting | TRL |\n| --- | --- |\n"
    );
    r.extend(rows.iter().map(|(a, b)| format!("| `{a}` | {b} |\n")));
    r += "\nNo TRL counterpart:\n\n";
    r.extend(unmapped.iter().map(|u| format!("- {u}\n")));
    if unmapped.is_empty() {
        r += "- none\n";
    }
    r + "\nNot settings, and not carried over: dpo's generations before and after DPO (scored with \
        the shipped task's reward) and its data order.\n"
}

/// `key: value` lines with JSON-quoted strings: valid YAML without a YAML library.
pub fn yaml(title: &str, keys: &Keys) -> String {
    let lines: String = keys.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    format!("# {title}\n{lines}")
}

pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A float as YAML 1.1 (PyYAML) reads one: Rust writes no exponent, and a dot is added, since
/// `8` would be an int and `1e-8` a string.
fn float(x: impl Display) -> String {
    let s = x.to_string();
    if s.contains('.') { s } else { format!("{s}.0") }
}
