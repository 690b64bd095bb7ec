//! The Llama family (Llama 2/3-style blocks, SmolLM2, TinyLlama...): RMSNorm, rotary
//! position embeddings in Hugging Face's half-split layout, grouped-query attention and a
//! SwiGLU MLP, with the head tied to the token embedding or separate.
//!
//! Field names follow Hugging Face's `LlamaForCausalLM` (`embed_tokens`, `layers.0.self_attn.q_proj`,
//! ...). Its projections are `nn.Linear`, stored [d_out, d_in]; `Projection` keeps that layout
//! so checkpoints load and save without transposes.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::lora::{Compute, Layout};

/// The fields of Hugging Face's `LlamaConfig` that change the computation; every other field
/// of the file is kept in `extra` and written back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
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
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary base: `rope_parameters.rope_theta` (transformers 5), else `rope_theta`,
    /// else Llama's 10000.
    pub fn rope_theta(&self) -> f64 {
        let nested = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"));
        nested
            .and_then(serde_json::Value::as_f64)
            .or(self.rope_theta)
            .unwrap_or(10000.0)
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
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("field `rope_scaling`: scaled rotary embeddings are not supported".into());
        }
        if let Some(params) = &self.rope_parameters {
            let kind = params
                .get("rope_type")
                .and_then(|t| t.as_str())
                .unwrap_or("default");
            if kind != "default" {
                return Err(format!(
                    "field `rope_parameters.rope_type`: `{kind}` is not supported (default)"
                ));
            }
        }
        if !(self.rope_theta() > 0.0) {
            return Err("field `rope_theta` must be positive".into());
        }
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
    rope_theta: f64,
    max_positions: usize,
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
    /// Placeholder parameters of the right shapes; `weights::fill` gives them values.
    fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        Projection {
            weight: Param::from_tensor(Tensor::zeros([d_out, d_in], device)),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device))),
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
        let attn_proj = |d_in, d_out| Projection::new(d_in, d_out, config.attention_bias, device);
        let mlp_proj = |d_in, d_out| Projection::new(d_in, d_out, config.mlp_bias, device);
        let layer = || Layer {
            input_layernorm: norm(),
            self_attn: Attention {
                q_proj: attn_proj(d, heads * head_dim),
                k_proj: attn_proj(d, kv_heads * head_dim),
                v_proj: attn_proj(d, kv_heads * head_dim),
                o_proj: attn_proj(heads * head_dim, d),
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
            rope_theta: config.rope_theta(),
            max_positions: config.max_position_embeddings,
            compute: Compute::default(),
        }
    }

    /// Final hidden states [batch, seq, hidden] for token ids [batch, seq].
    pub fn hidden(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = ids.dims();
        let device = ids.device();
        let mut x = self.embed_tokens.forward(ids);
        let head_dim = self.layers.first().map_or(2, |l| l.self_attn.head_dim);
        let rope = Rope::new(seq, head_dim, self.rope_theta, &device);
        for layer in &self.layers {
            x = layer.forward(x, &rope, self.compute);
        }
        self.norm.forward(x)
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
                .forward(self.input_layernorm.forward(x), rope, compute);
        x.clone()
            + self
                .mlp
                .forward(self.post_attention_layernorm.forward(x), compute)
    }
}

impl Attention {
    fn forward(&self, x: Tensor<3>, rope: &Rope, compute: Compute) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let heads = |proj: &Projection, count: usize| {
            proj.forward(x.clone(), compute)
                .reshape([batch, seq, count, self.head_dim])
                .swap_dims(1, 2)
        };
        let q = rope.apply(heads(&self.q_proj, self.heads));
        let k = rope.apply(heads(&self.k_proj, self.kv_heads));
        let v = heads(&self.v_proj, self.kv_heads);
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
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let y = attention(q, share(k), share(v), None, None, options);
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

/// Rotary embeddings for positions 0..seq in the half-split layout: dimension i pairs with
/// i + head_dim/2 (transformers' `rotate_half`), not with its neighbour.
struct Rope {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl Rope {
    fn new(seq: usize, head_dim: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        // The angles in f32, computed as transformers computes them, so that positions far
        // into a long sequence round the same way.
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(seq * head_dim);
        let mut sin = Vec::with_capacity(seq * head_dim);
        for position in 0..seq {
            // cos/sin repeat for the second half: the two halves share frequencies.
            for _ in 0..2 {
                for f in &inv_freq {
                    let angle = position as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let table =
            |values| Tensor::from_data(TensorData::new(values, [1, 1, seq, head_dim]), device);
        Rope {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// x [batch, heads, seq, head_dim] rotated by position.
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let half = x.dims()[3] / 2;
        let first = x.clone().narrow(3, 0, half);
        let second = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}
