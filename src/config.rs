//! Every training setting in one serde struct: CLI flags, `--config file.toml` and the
//! browser's options all map onto `TrainConfig`, so the three front ends cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::dpo::loss::LossConfig;
use crate::model::{BasePrecision, LoraConfig, Precision, Preset};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model size when training from scratch (`micro`, `tiny`, `small`, `gpt2-124m`).
    pub preset: Preset,
    /// Seeds the weights, the data order and sampling: a run repeats exactly on one backend.
    pub seed: u64,
    /// Supervised fine-tuning steps on prompt + chosen before DPO.
    pub sft_steps: usize,
    /// DPO steps.
    pub steps: usize,
    /// Pairs per optimizer step.
    pub batch: usize,
    /// Micro-batches per optimizer step (the batch is split into this many).
    pub grad_accum: usize,
    /// Longest prompt + completion in tokens; longer sequences keep their start.
    pub max_length: usize,
    /// Peak learning rate of the SFT phase.
    pub sft_lr: f64,
    /// Peak learning rate of the DPO phase.
    pub lr: f64,
    /// Linear warmup steps at the start of each phase.
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay (PyTorch's default 0.01).
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (0 turns clipping off).
    pub max_grad_norm: f64,
    /// Compute the reference log-probs once before DPO and keep one model in memory.
    pub precompute_ref: bool,
    /// Keep only each layer's input from the forward pass and recompute the rest during the
    /// backward: much less memory for one more forward of the layers.
    pub gradient_checkpointing: bool,
    /// Dtype of the model's matrix products: `f32`, or `bf16` (mixed precision: weights,
    /// optimizer state, norms, softmaxes and the loss stay in f32).
    pub precision: Precision,
    /// Dtype the frozen base weights of an adapter run are held in: `f32`, or `f16` / `bf16`
    /// (half the memory; each product still computes in `precision`).
    pub base_precision: BasePrecision,
    /// Train LoRA adapters instead of every weight (`[lora]` in a settings file). With a fresh
    /// model, SFT trains every weight and the adapters go on the SFT model for DPO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    pub loss: LossConfig,
}

impl TrainConfig {
    /// Whether the run asked to spend time for memory (gradient checkpointing, a half-precision
    /// base): what else it runs should then favour memory too.
    pub fn saves_memory(&self) -> bool {
        self.gradient_checkpointing || self.base_precision != BasePrecision::F32
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            preset: Preset::Tiny,
            seed: 42,
            sft_steps: 300,
            steps: 200,
            batch: 16,
            grad_accum: 1,
            max_length: 128,
            sft_lr: 1e-3,
            lr: 1e-4,
            warmup_steps: 10,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            precompute_ref: false,
            gradient_checkpointing: false,
            precision: Precision::F32,
            base_precision: BasePrecision::F32,
            lora: None,
            loss: LossConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Checks every field; the message names the offending one.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch == 0 {
            return Err("field `batch`: must be at least 1".into());
        }
        if self.grad_accum == 0 || self.batch % self.grad_accum != 0 {
            return Err(format!(
                "field `grad_accum`: {} must be at least 1 and divide batch {}",
                self.grad_accum, self.batch
            ));
        }
        if self.max_length < 2 {
            return Err("field `max_length`: must be at least 2".into());
        }
        for (name, value) in [("sft_lr", self.sft_lr), ("lr", self.lr)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!(
                    "field `{name}`: must be a finite, non-negative number"
                ));
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err("field `weight_decay`: must be a finite, non-negative number".into());
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err("field `max_grad_norm`: must be a finite, non-negative number".into());
        }
        if let Some(lora) = &self.lora {
            lora.validate()?;
        }
        if self.base_precision != BasePrecision::F32 && self.lora.is_none() {
            return Err(format!(
                "field `base_precision`: {} holds a frozen base, and only an adapter run has one \
                 (set a LoRA rank: `--lora-r`, `[lora]`, the page's LoRA rank)",
                self.base_precision.name()
            ));
        }
        self.loss.validate()
    }
}
