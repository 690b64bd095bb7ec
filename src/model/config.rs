//! GPT-2 hyper-parameters, stored as Hugging Face's GPT-2 `config.json` so that a folder we
//! write loads in `transformers` and a folder `transformers` writes loads here.

use serde::{Deserialize, Serialize};

/// The fields of Hugging Face's `GPT2Config` that change the computation, plus the ones
/// `transformers` needs to recognise the folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    /// Longest sequence the learned position table covers.
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` means 4 * n_embd, as in GPT-2.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "default_architectures")]
    pub architectures: Vec<String>,
    #[serde(default = "default_tie")]
    pub tie_word_embeddings: bool,
    /// Every other field of the file, written back unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_epsilon() -> f64 {
    1e-5
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_model_type() -> String {
    "gpt2".into()
}
fn default_architectures() -> Vec<String> {
    vec!["GPT2LMHeadModel".into()]
}
fn default_tie() -> bool {
    true
}

/// Named sizes of a fresh model, those of the benchmark workloads (BENCHMARKS.md) and `micro`.
/// Settings files name them as strings; an unknown name is refused with the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Preset {
    /// A model small enough to train in a browser tab or a CI test.
    Micro,
    #[default]
    Tiny,
    Small,
    Gpt2_124m,
}

impl Preset {
    pub const NAMES: [&'static str; 4] = ["micro", "tiny", "small", "gpt2-124m"];

    const ALL: [Preset; 4] = [
        Preset::Micro,
        Preset::Tiny,
        Preset::Small,
        Preset::Gpt2_124m,
    ];

    pub fn parse(name: &str) -> Option<Preset> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Every preset's shape by name: the browser's buffer-limit check reads them from here.
    pub fn shapes() -> Vec<(&'static str, PresetShape)> {
        Self::ALL
            .into_iter()
            .map(|p| {
                let (vocab, width, layers, heads, positions) = p.sizes();
                let shape = PresetShape {
                    vocab,
                    width,
                    layers,
                    heads,
                    positions,
                };
                (p.name(), shape)
            })
            .collect()
    }

    /// (vocab, d_model, layers, heads, positions)
    fn sizes(self) -> (usize, usize, usize, usize, usize) {
        match self {
            Preset::Micro => (1024, 64, 2, 2, 128),
            Preset::Tiny => (4096, 128, 4, 4, 128),
            Preset::Small => (8192, 256, 6, 8, 256),
            Preset::Gpt2_124m => (50257, 768, 12, 12, 1024),
        }
    }

    /// The configuration for this preset. `vocab_size` is the tokenizer's real size, which
    /// can be below the preset's target when the training text has few distinct merges.
    pub fn config(self, vocab_size: Option<usize>) -> Gpt2Config {
        let (vocab, d, layers, heads, positions) = self.sizes();
        Gpt2Config {
            vocab_size: vocab_size.unwrap_or(vocab),
            n_positions: positions,
            n_embd: d,
            n_layer: layers,
            n_head: heads,
            n_inner: None,
            layer_norm_epsilon: default_epsilon(),
            activation_function: default_activation(),
            bos_token_id: None,
            eos_token_id: None,
            model_type: default_model_type(),
            architectures: default_architectures(),
            tie_word_embeddings: true,
            extra: Default::default(),
        }
    }

    /// The tokenizer size a from-scratch run trains for this preset.
    pub fn target_vocab(self) -> usize {
        self.sizes().0
    }
}

/// A preset's sizes, by name (the vocabulary is an upper bound: a fresh tokenizer may be smaller).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PresetShape {
    pub vocab: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub positions: usize,
}

impl TryFrom<String> for Preset {
    type Error = String;

    fn try_from(name: String) -> Result<Preset, String> {
        Preset::parse(&name).ok_or_else(|| {
            format!(
                "unknown preset `{name}` (one of {})",
                Preset::NAMES.join(", ")
            )
        })
    }
}

impl From<Preset> for String {
    fn from(preset: Preset) -> String {
        preset.name().into()
    }
}

impl Gpt2Config {
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Checks what the model code relies on; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("field `{name}` must be positive"));
        }
        if self.n_embd % self.n_head != 0 {
            return Err(format!(
                "field `n_head`: n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            ));
        }
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu"
        ) {
            return Err(format!(
                "field `activation_function`: `{}` is not supported (gelu_new, gelu_pytorch_tanh, gelu)",
                self.activation_function
            ));
        }
        if !self.tie_word_embeddings {
            return Err("field `tie_word_embeddings`: only tied GPT-2 heads are supported".into());
        }
        Ok(())
    }
}
