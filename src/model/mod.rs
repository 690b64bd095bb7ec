//! The language models: GPT-2 and the Llama family (with Mistral and Qwen), with Hugging Face-compatible parameter
//! names. Everything outside this module sees one type, [`CausalLm`], and one configuration,
//! [`ModelConfig`]; the family is read from `config.json`'s `model_type`.

mod activation;
pub mod attention;
pub mod config;
pub mod gpt2;
mod info;
pub mod llama;
pub mod lora;
mod norm;
pub mod precision;
mod rope;
pub(crate) mod row_math;
pub mod weights;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

pub use config::{Gpt2Config, Preset, PresetShape};
pub use gpt2::Gpt2;
pub use info::ModelInfo;
pub use llama::{Llama, LlamaConfig};
pub use lora::{Compute, LoraConfig};
pub use precision::{BasePrecision, Precision};

/// A decoder-only language model of one of the supported families.
#[derive(Module, Debug)]
pub enum CausalLm {
    Gpt2(Gpt2),
    Llama(Llama),
}

/// What every layer of one forward shares: Llama's rotary tables (GPT-2's positions are
/// part of its embedding).
pub struct Positions(Option<rope::Rope>);

impl CausalLm {
    /// Final hidden states [batch, seq, width] for token ids [batch, seq]: the embedding, each
    /// layer in turn, the final norm. Gradient checkpointing runs these stages separately.
    pub fn hidden(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let positions = self.positions(&ids);
        let mut x = self.embed(ids);
        for index in 0..self.layer_count() {
            x = self.layer(index, x, &positions);
        }
        self.final_norm(x)
    }

    /// The embedding [batch, seq, width] of token ids [batch, seq].
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            CausalLm::Gpt2(m) => m.embed(ids),
            CausalLm::Llama(m) => m.embed(ids),
        }
    }

    /// What the layers of a forward over `ids` share.
    pub fn positions(&self, ids: &Tensor<2, Int>) -> Positions {
        match self {
            CausalLm::Gpt2(_) => Positions(None),
            CausalLm::Llama(m) => Positions(Some(m.rope(ids.dims()[1], &ids.device()))),
        }
    }

    pub fn layer_count(&self) -> usize {
        match self {
            CausalLm::Gpt2(m) => m.h.len(),
            CausalLm::Llama(m) => m.layers.len(),
        }
    }

    /// Layer `index` (a transformer block) on its input [batch, seq, width].
    pub fn layer(&self, index: usize, x: Tensor<3>, positions: &Positions) -> Tensor<3> {
        match (self, &positions.0) {
            (CausalLm::Gpt2(m), _) => m.layer(index, x),
            (CausalLm::Llama(m), Some(rope)) => m.layer(index, x, rope),
            (CausalLm::Llama(_), None) => unreachable!("positions() gives Llama its rotary tables"),
        }
    }

    /// The norm after the last layer.
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            CausalLm::Gpt2(m) => m.final_norm(x),
            CausalLm::Llama(m) => m.final_norm(x),
        }
    }

    /// How the model computes (not saved with it).
    pub fn compute(&self) -> Compute {
        match self {
            CausalLm::Gpt2(m) => m.compute,
            CausalLm::Llama(m) => m.compute,
        }
    }

    fn with_compute(mut self, change: impl FnOnce(&mut Compute)) -> Self {
        match &mut self {
            CausalLm::Gpt2(m) => change(&mut m.compute),
            CausalLm::Llama(m) => change(&mut m.compute),
        }
        self
    }

    /// The dtype of the model's matrix products.
    pub fn precision(&self) -> Precision {
        self.compute().precision
    }

    pub fn with_precision(self, precision: Precision) -> Self {
        self.with_compute(|c| c.precision = precision)
    }

    /// The same weights with the LoRA adapters taking part or not (off: the base model).
    pub fn with_adapters(self, on: bool) -> Self {
        self.with_compute(|c| c.adapters = on)
    }

    /// Dropout on the adapters' input while training.
    pub fn with_lora_dropout(self, p: f64) -> Self {
        self.with_compute(|c| c.dropout = p)
    }

    /// A copy that no longer trains (DPO's reference): no dropout, no gradients. It shares
    /// the weights' memory with `self` until the optimizer replaces them.
    pub fn frozen(&self) -> Self {
        self.clone().with_lora_dropout(0.0).no_grad()
    }

    /// Whether any weight carries a LoRA adapter.
    pub fn has_adapters(&self) -> bool {
        lora::param_counts(self).0 > 0
    }

    /// The model with its adapters merged into the weights, all in f32 (the base is unchanged).
    pub fn merged(&self) -> Self {
        BasePrecision::F32.cast_base(self.clone()).materialize()
    }

    /// The output head [vocab, width]; logits are `hidden · headᵀ`.
    pub fn head(&self) -> Tensor<2> {
        match self {
            CausalLm::Gpt2(m) => m.head(),
            CausalLm::Llama(m) => m.head(),
        }
    }

    /// Logits [batch, vocab] of the token after the last position.
    pub fn next_token_logits(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let hidden = self.hidden(ids);
        let [batch, seq, width] = hidden.dims();
        let last = hidden.narrow(1, seq - 1, 1).reshape([batch, width]);
        self.precision().matmul(last, self.head().transpose())
    }

    /// Longest sequence the model's positions cover.
    pub fn max_positions(&self) -> usize {
        match self {
            CausalLm::Gpt2(m) => m.max_positions(),
            CausalLm::Llama(m) => m.max_positions(),
        }
    }
}

/// A parameter's checkpoint name from its path in the module tree, whose first element is
/// the [`CausalLm`] variant. GPT-2 checkpoints prefix the body with `transformer.`, Llama ones
/// with `model.` (but not the separate `lm_head`); burn's LayerNorm/RMSNorm `gamma`/`beta`
/// are spelled `weight`/`bias`.
pub fn checkpoint_name(path: &[String]) -> String {
    let mut parts: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Some(last) = parts.last_mut() {
        *last = match *last {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        };
    }
    let body = parts.get(1..).unwrap_or_default().join(".");
    match parts.first().copied() {
        Some("Gpt2") => format!("transformer.{body}"),
        Some("Llama") if parts.get(1) == Some(&"lm_head") => body,
        Some("Llama") => format!("model.{body}"),
        _ => parts.join("."),
    }
}

/// A model's `config.json`, by family.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    Gpt2(Gpt2Config),
    Llama(LlamaConfig),
}

impl ModelConfig {
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            ModelConfig::Gpt2(c) => serde_json::to_vec_pretty(c),
            ModelConfig::Llama(c) => match &c.file {
                Some(file) => serde_json::to_vec_pretty(file),
                None => serde_json::to_vec_pretty(c),
            },
        }
        .expect("a config serializes")
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            ModelConfig::Gpt2(c) => c.validate(),
            ModelConfig::Llama(c) => c.validate(),
        }
    }

    /// The module tree with placeholder parameters; `weights::fill` gives them values.
    pub fn build(&self, device: &Device) -> CausalLm {
        match self {
            ModelConfig::Gpt2(c) => CausalLm::Gpt2(Gpt2::new(c, device)),
            ModelConfig::Llama(c) => CausalLm::Llama(Llama::new(c, device)),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.vocab_size,
            ModelConfig::Llama(c) => c.vocab_size,
        }
    }

    pub fn max_positions(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.n_positions,
            ModelConfig::Llama(c) => c.max_positions(),
        }
    }

    /// The config field that sets `max_positions`.
    pub fn positions_field(&self) -> &'static str {
        match self {
            ModelConfig::Gpt2(_) => "n_positions",
            ModelConfig::Llama(c) => c.positions_field(),
        }
    }

    /// The family's `model_type`.
    pub fn family(&self) -> &'static str {
        match self {
            ModelConfig::Gpt2(_) => "gpt2",
            ModelConfig::Llama(c) => c.family().name(),
        }
    }

    pub fn layers(&self) -> usize {
        match self {
            ModelConfig::Gpt2(c) => c.n_layer,
            ModelConfig::Llama(c) => c.num_hidden_layers,
        }
    }

    /// Records the tokenizer's EOS where the config names none (and BOS likewise, as GPT-2
    /// does with its one `<|endoftext|>`), so that `generate` in transformers stops there.
    pub fn fill_special_tokens(&mut self, eos: u32) {
        match self {
            ModelConfig::Gpt2(c) => {
                c.eos_token_id = c.eos_token_id.or(Some(eos));
                c.bos_token_id = c.bos_token_id.or(Some(eos));
            }
            ModelConfig::Llama(c) => {
                let id = || Some(serde_json::Value::from(eos));
                c.eos_token_id = c.eos_token_id.take().filter(|v| !v.is_null()).or_else(id);
                if let (Some(file), Some(eos)) = (&mut c.file, &c.eos_token_id) {
                    file.insert("eos_token_id".into(), eos.clone());
                }
            }
        }
    }
}
