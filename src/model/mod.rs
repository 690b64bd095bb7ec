//! The language models: GPT-2 and the Llama family, with Hugging Face-compatible parameter
//! names. Everything outside this module sees one type, [`CausalLm`], and one configuration,
//! [`ModelConfig`]; the family is read from `config.json`'s `model_type`.

pub mod config;
pub mod gpt2;
mod info;
pub mod llama;
pub mod precision;
pub mod weights;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

pub use config::{Gpt2Config, Preset, PresetShape};
pub use gpt2::Gpt2;
pub use info::ModelInfo;
pub use llama::{Llama, LlamaConfig};
pub use precision::Precision;

/// A decoder-only language model of one of the supported families.
#[derive(Module, Debug)]
pub enum CausalLm {
    Gpt2(Gpt2),
    Llama(Llama),
}

impl CausalLm {
    /// Final hidden states [batch, seq, width] for token ids [batch, seq].
    pub fn hidden(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            CausalLm::Gpt2(m) => m.hidden(ids),
            CausalLm::Llama(m) => m.hidden(ids),
        }
    }

    /// The dtype of the model's matrix products (not saved with the model).
    pub fn precision(&self) -> Precision {
        match self {
            CausalLm::Gpt2(m) => m.precision,
            CausalLm::Llama(m) => m.precision,
        }
    }

    pub fn with_precision(mut self, precision: Precision) -> Self {
        match &mut self {
            CausalLm::Gpt2(m) => m.precision = precision,
            CausalLm::Llama(m) => m.precision = precision,
        }
        self
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
            ModelConfig::Llama(c) => serde_json::to_vec_pretty(c),
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
            ModelConfig::Llama(c) => c.max_position_embeddings,
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
            }
        }
    }
}
