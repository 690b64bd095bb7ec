//! The Llama family and its close relatives (Llama 2/3, SmolLM2, TinyLlama, Mistral, Qwen2/2.5,
//! Qwen3): RMSNorm, rotary position embeddings, grouped-query attention and a SwiGLU MLP, with
//! the head tied to the token embedding or separate. The relatives differ in a few switches,
//! read from `model_type` ([`Family`]): Qwen2 has biases on q/k/v, Qwen3 normalizes each
//! query and key head (`q_norm`, `k_norm`), Mistral and Qwen may use a sliding window.
//!
//! Field names follow Hugging Face's `LlamaForCausalLM` (`embed_tokens`, `layers.0.self_attn.q_proj`,
//! ...). Its projections are `nn.Linear`, stored [d_out, d_in]; `Projection` keeps that layout
//! so checkpoints load and save without transposes.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::activation::silu;
use super::attention::causal_attention;
use super::lora::{Compute, Layout};
use super::norm::rms_norm;
use super::rope::{Rope, RopeSettings};

/// The `model_type`s this module computes, and what sets them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
}

impl Family {
    pub const NAMES: [&'static str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

    pub fn parse(model_type: &str) -> Option<Family> {
        let all = [Family::Llama, Family::Mistral, Family::Qwen2, Family::Qwen3];
        all.into_iter().find(|f| f.name() == model_type)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The fields of Hugging Face's `LlamaConfig` that change the computation; every other field
/// of the file is kept in `extra` and written back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: heads share key/value heads in groups. Defaults to one
    /// key/value head per query head (plain multi-head attention).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; defaults to hidden_size / num_attention_heads.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_epsilon")]
    pub rms_norm_eps: f64,
    /// Rotary base; transformers 5 writes it inside `rope_parameters` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// transformers' `LlamaConfig` defaults to a separate head.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The file as read, which export writes back as it was (plus an EOS the tokenizer
    /// supplies): the fields' defaults above are for reading, not for writing into a file
    /// that left them out (Qwen2's config has no `attention_bias`, for one).
    #[serde(skip)]
    pub file: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_model_type() -> String {
    "llama".into()
}
fn default_positions() -> usize {
    2048
}
fn default_epsilon() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

impl LlamaConfig {
    /// The family `model_type` names (checked by `validate`; Llama's when unknown).
    pub fn family(&self) -> Family {
        Family::parse(&self.model_type).unwrap_or(Family::Llama)
    }

    /// Width of one head: `head_dim`, else Qwen3's default of 128, else hidden / heads.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(match self.family() {
            Family::Qwen3 => 128,
            _ => self.hidden_size / self.num_attention_heads.max(1),
        })
    }

    pub fn rope(&self) -> Result<RopeSettings, String> {
        RopeSettings::from_config(
            self.rope_theta,
            self.rope_parameters.as_ref(),
            self.rope_scaling.as_ref(),
            self.max_position_embeddings,
        )
    }

    /// Whether (q, k, v, o) projections carry biases: Qwen2's q/k/v always do; the others
    /// follow `attention_bias`.
    fn attention_biases(&self) -> [bool; 4] {
        match self.family() {
            Family::Qwen2 => [true, true, true, false],
            _ => [self.attention_bias; 4],
        }
    }

    /// The sliding attention window, when some layer uses one: Mistral's `sliding_window`
    /// (4096 when the field is absent), Qwen's only with `use_sliding_window`. Sequences up
    /// to the window attend exactly as full causal attention, which is all this code computes.
    pub fn sliding_window(&self) -> Result<Option<usize>, String> {
        let field = |name: &str| self.extra.get(name).filter(|v| !v.is_null());
        let enabled = match self.family() {
            Family::Llama => false,
            Family::Mistral => true,
            Family::Qwen2 | Family::Qwen3 => match field("use_sliding_window") {
                None => false,
                Some(v) => v
                    .as_bool()
                    .ok_or("field `use_sliding_window` must be true or false")?,
            },
        };
        let absent = !self.extra.contains_key("sliding_window");
        match (enabled, field("sliding_window")) {
            (false, _) => Ok(None),
            (true, None) if absent => Ok(Some(4096)),
            (true, None) => Ok(None),
            (true, Some(v)) => match v.as_u64() {
                Some(w) if w > 0 => Ok(Some(w as usize)),
                _ => Err("field `sliding_window` must be a positive integer or null".into()),
            },
        }
    }

    /// Longest sequence computed exactly: the position table's, or a shorter sliding window.
    pub fn max_positions(&self) -> usize {
        let window = self.sliding_window().ok().flatten();
        window.map_or(self.max_position_embeddings, |w| {
            w.min(self.max_position_embeddings)
        })
    }

    /// The field that sets `max_positions`.
    pub fn positions_field(&self) -> &'static str {
        match self.sliding_window() {
            Ok(Some(w)) if w < self.max_position_embeddings => "sliding_window",
            _ => "max_position_embeddings",
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Checks what the model code relies on; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("field `{name}` must be positive"));
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(format!(
                "field `num_key_value_heads`: {} does not divide num_attention_heads {}",
                self.kv_heads(),
                self.num_attention_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return Err("field `head_dim`: rotary embeddings need an even head width".into());
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "field `hidden_act`: `{}` is not supported (silu)",
                self.hidden_act
            ));
        }
        if Family::parse(&self.model_type).is_none() {
            return Err(format!(
                "field `model_type`: `{}` is not supported ({})",
                self.model_type,
                Family::NAMES.join(", ")
            ));
        }
        self.rope()?;
        self.sliding_window()?;
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct Llama {
    pub embed_tokens: Embedding,
    pub layers: Vec<Layer>,
    pub norm: RmsNorm,
    /// A separate output head, or `None` when it is tied to `embed_tokens`.
    pub lm_head: Option<Projection>,
    max_positions: usize,
    /// The rotary frequencies, one per pair of head dimensions.
    #[module(skip)]
    inv_freq: Vec<f32>,
    #[module(skip)]
    pub compute: Compute,
}

#[derive(Module, Debug)]
pub struct Layer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
    /// Qwen3's per-head RMSNorm of queries and keys, before the rotation.
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
}

/// A linear layer in PyTorch's `nn.Linear` layout: weight [d_out, d_in].
#[derive(Module, Debug)]
pub struct Projection {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Projection {
    /// Placeholder parameters of the right shapes; `weights::fill` gives them values. Lazy:
    /// a tree built only to be filled, or to read its shapes, allocates no tensor memory.
    fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        Projection {
            weight: Initializer::Zeros.init([d_out, d_in], device),
            bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
        }
    }

    fn forward(&self, x: Tensor<3>, compute: Compute) -> Tensor<3> {
        compute.project(x, &self.weight, self.bias.as_ref(), Layout::OutIn)
    }
}

impl Llama {
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let d = config.hidden_size;
        let (heads, kv_heads, head_dim) = (
            config.num_attention_heads,
            config.kv_heads(),
            config.head_dim(),
        );
        let norm = || {
            RmsNormConfig::new(d)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
        };
        let [q_bias, k_bias, v_bias, o_bias] = config.attention_biases();
        let mlp_proj = |d_in, d_out| Projection::new(d_in, d_out, config.mlp_bias, device);
        let head_norm = || {
            (config.family() == Family::Qwen3).then(|| {
                RmsNormConfig::new(head_dim)
                    .with_epsilon(config.rms_norm_eps)
                    .init(device)
            })
        };
        let layer = || Layer {
            input_layernorm: norm(),
            self_attn: Attention {
                q_proj: Projection::new(d, heads * head_dim, q_bias, device),
                k_proj: Projection::new(d, kv_heads * head_dim, k_bias, device),
                v_proj: Projection::new(d, kv_heads * head_dim, v_bias, device),
                o_proj: Projection::new(heads * head_dim, d, o_bias, device),
                q_norm: head_norm(),
                k_norm: head_norm(),
                heads,
                kv_heads,
                head_dim,
            },
            post_attention_layernorm: norm(),
            mlp: Mlp {
                gate_proj: mlp_proj(d, config.intermediate_size),
                up_proj: mlp_proj(d, config.intermediate_size),
                down_proj: mlp_proj(config.intermediate_size, d),
            },
        };
        Llama {
            embed_tokens: EmbeddingConfig::new(config.vocab_size, d).init(device),
            layers: (0..config.num_hidden_layers).map(|_| layer()).collect(),
            norm: norm(),
            lm_head: (!config.tie_word_embeddings)
                .then(|| Projection::new(d, config.vocab_size, false, device)),
            max_positions: config.max_positions(),
            inv_freq: config
                .rope()
                .expect("LlamaConfig::validate checked the rotary settings")
                .inv_freq(head_dim),
            compute: Compute::default(),
        }
    }

    /// Token embeddings [batch, seq, hidden] for token ids [batch, seq].
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(ids)
    }

    /// The rotary tables every layer of a forward over `seq` positions shares.
    pub fn rope(&self, seq: usize, device: &Device) -> Rope {
        Rope::new(seq, &self.inv_freq, device)
    }

    /// Decoder layer `index` on its input [batch, seq, hidden].
    pub fn layer(&self, index: usize, x: Tensor<3>, rope: &Rope) -> Tensor<3> {
        self.layers[index].forward(x, rope, self.compute)
    }

    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        rms_norm(&self.norm, x)
    }

    /// The output head [vocab, hidden]: `lm_head`, or the token embedding when tied.
    pub fn head(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.embed_tokens.weight.val(),
        }
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}

impl Layer {
    fn forward(&self, x: Tensor<3>, rope: &Rope, compute: Compute) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(rms_norm(&self.input_layernorm, x), rope, compute);
        x.clone()
            + self
                .mlp
                .forward(rms_norm(&self.post_attention_layernorm, x), compute)
    }
}

impl Attention {
    fn forward(&self, x: Tensor<3>, rope: &Rope, compute: Compute) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let heads = |proj: &Projection, count: usize, norm: Option<&RmsNorm>| {
            let y = proj
                .forward(x.clone(), compute)
                .reshape([batch, seq, count, self.head_dim]);
            let y = match norm {
                Some(norm) => rms_norm(norm, y),
                None => y,
            };
            y.swap_dims(1, 2)
        };
        let q = rope.apply(heads(&self.q_proj, self.heads, self.q_norm.as_ref()));
        let k = rope.apply(heads(&self.k_proj, self.kv_heads, self.k_norm.as_ref()));
        let v = heads(&self.v_proj, self.kv_heads, None);
        // Each key/value head serves `group` consecutive query heads (transformers' repeat_kv).
        let group = self.heads / self.kv_heads;
        let share = |t: Tensor<4>| {
            if group == 1 {
                return t;
            }
            t.unsqueeze_dim::<5>(2)
                .expand([batch, self.kv_heads, group, seq, self.head_dim])
                .reshape([batch, self.heads, seq, self.head_dim])
        };
        let y = causal_attention(q, share(k), share(v));
        self.o_proj.forward(
            y.swap_dims(1, 2)
                .reshape([batch, seq, self.heads * self.head_dim]),
            compute,
        )
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, compute: Compute) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone(), compute));
        self.down_proj
            .forward(gate * self.up_proj.forward(x, compute), compute)
    }
}
