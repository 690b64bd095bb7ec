//! What a model is besides its weights: its configuration, the tokenizer and chat template that
//! turn text into its input, and the `tokenizer_config.json` it came with. `io::hf` turns a
//! Hugging Face folder's files into this (and the weights into a [`CausalLm`]) and back.

use burn::tensor::Device;

use super::weights::{self, RandomInit};
use super::{CausalLm, ModelConfig, Preset};
use crate::data::{ChatTemplate, TextTokenizer};

#[derive(Clone)]
pub struct ModelInfo {
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    pub template: ChatTemplate,
    /// `tokenizer_config.json` as found, written back unchanged on export (`None`: a model
    /// made here, which gets a minimal one).
    pub tokenizer_config: Option<Vec<u8>>,
    /// `chat_template.jinja` as found, written back unchanged on export.
    pub chat_template: Option<Vec<u8>>,
}

impl ModelInfo {
    /// A fresh GPT-2 of `preset` around `tokenizer` (a BPE trained on the user's pairs), with
    /// positions for at least `max_length` tokens and the plain chat template.
    pub fn fresh(preset: Preset, tokenizer: TextTokenizer, max_length: usize) -> ModelInfo {
        let mut config = preset.config(Some(tokenizer.vocab_size()));
        config.n_positions = config.n_positions.max(max_length);
        config.eos_token_id = Some(tokenizer.eos_id());
        config.bos_token_id = Some(tokenizer.eos_id());
        ModelInfo {
            config: ModelConfig::Gpt2(config),
            tokenizer,
            template: ChatTemplate::default_plain(),
            tokenizer_config: None,
            chat_template: None,
        }
    }

    /// The padding id: EOS, which the loss never scores past a sequence's end.
    pub fn pad_id(&self) -> u32 {
        self.tokenizer.eos_id()
    }
}

impl ModelConfig {
    /// A model of this shape with Hugging Face's initialisation, drawn from `seed`.
    pub fn random_weights(&self, seed: u64, device: &Device) -> CausalLm {
        let mut init = RandomInit::new(seed, self.layers());
        weights::fill(self.build(device), &mut init, device)
            .expect("random initialisation fills every parameter")
    }
}
