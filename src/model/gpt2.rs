//! GPT-2: learned positions, pre-LayerNorm blocks, a GELU MLP, causal self-attention and a
//! language-model head tied to the token embedding.
//!
//! Field names follow Hugging Face's `GPT2LMHeadModel` (`wte`, `h.0.attn.c_attn`, ...), so a
//! parameter's path in this module tree *is* its checkpoint name (see `weights.rs`). burn's
//! `Linear` stores its weight as [d_in, d_out], the same layout as GPT-2's `Conv1D`, so
//! checkpoints load without transposes.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use super::activation::gelu_tanh;
use super::attention::causal_attention;
use super::config::Gpt2Config;
use super::lora::{Compute, Layout};
use super::norm::layer_norm;

#[derive(Module, Debug)]
pub struct Gpt2 {
    pub wte: Embedding,
    pub wpe: Embedding,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    #[module(skip)]
    pub compute: Compute,
    /// The LayerNorms' epsilon (burn's module keeps its own private).
    norm_epsilon: f64,
}

#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
    norm_epsilon: f64,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub c_attn: Linear,
    pub c_proj: Linear,
    n_head: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
    /// GPT-2 uses the tanh approximation (`gelu_new`); some checkpoints ask for the exact one.
    exact_gelu: bool,
}

impl Gpt2 {
    /// Builds the module tree with placeholder (lazy) parameters; `weights::init` or
    /// `weights::load` then fills every parameter by name.
    pub fn new(config: &Gpt2Config, device: &Device) -> Self {
        let d = config.n_embd;
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(config.layer_norm_epsilon)
                .init(device)
        };
        let linear = |d_in, d_out| LinearConfig::new(d_in, d_out).init(device);
        let block = || Block {
            ln_1: norm(),
            attn: Attention {
                c_attn: linear(d, 3 * d),
                c_proj: linear(d, d),
                n_head: config.n_head,
            },
            ln_2: norm(),
            mlp: Mlp {
                c_fc: linear(d, config.inner_dim()),
                c_proj: linear(config.inner_dim(), d),
                exact_gelu: config.activation_function == "gelu",
            },
            norm_epsilon: config.layer_norm_epsilon,
        };
        Gpt2 {
            wte: EmbeddingConfig::new(config.vocab_size, d).init(device),
            wpe: EmbeddingConfig::new(config.n_positions, d).init(device),
            h: (0..config.n_layer).map(|_| block()).collect(),
            ln_f: norm(),
            compute: Compute::default(),
            norm_epsilon: config.layer_norm_epsilon,
        }
    }

    /// Token plus position embeddings [batch, seq, d_model] for token ids [batch, seq].
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = ids.dims();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &ids.device()).reshape([1, seq]);
        self.wte.forward(ids) + self.wpe.forward(positions)
    }

    /// Transformer block `index` on its input [batch, seq, d_model].
    pub fn layer(&self, index: usize, x: Tensor<3>) -> Tensor<3> {
        self.h[index].forward(x, self.compute)
    }

    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        layer_norm(&self.ln_f, self.norm_epsilon, x)
    }

    /// The language-model head: the token embedding, tied. [vocab, d_model]
    pub fn head(&self) -> Tensor<2> {
        self.wte.weight.val()
    }

    /// Longest sequence the position table covers.
    pub fn max_positions(&self) -> usize {
        self.wpe.weight.shape().dims::<2>()[0]
    }
}

impl Block {
    fn forward(&self, x: Tensor<3>, compute: Compute) -> Tensor<3> {
        let norm = |norm, x| layer_norm(norm, self.norm_epsilon, x);
        let x = x.clone() + self.attn.forward(norm(&self.ln_1, x), compute);
        x.clone() + self.mlp.forward(norm(&self.ln_2, x), compute)
    }
}

/// burn's `Linear` stores its weight [d_in, d_out], as GPT-2's `Conv1D` does.
fn linear(layer: &Linear, x: Tensor<3>, compute: Compute) -> Tensor<3> {
    compute.project(x, &layer.weight, layer.bias.as_ref(), Layout::InOut)
}

impl Attention {
    fn forward(&self, x: Tensor<3>, compute: Compute) -> Tensor<3> {
        let [batch, seq, d] = x.dims();
        let head_dim = d / self.n_head;
        let qkv = linear(&self.c_attn, x, compute);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([batch, seq, self.n_head, head_dim])
                .swap_dims(1, 2)
        };
        // Right padding needs no mask of its own: causal attention already keeps real
        // positions from seeing the padding after them.
        let y = causal_attention(split(0), split(1), split(2));
        linear(
            &self.c_proj,
            y.swap_dims(1, 2).reshape([batch, seq, d]),
            compute,
        )
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, compute: Compute) -> Tensor<3> {
        let x = linear(&self.c_fc, x, compute);
        let x = if self.exact_gelu {
            gelu(x)
        } else {
            gelu_tanh(x)
        };
        linear(&self.c_proj, x, compute)
    }
}
