//! LoRA adapters (Hu et al. 2021) as PEFT defines them: a frozen linear weight W plus a
//! trainable low-rank update, y = x·Wᵀ + (alpha/r)·B·A·x, with A [r, d_in] and B [d_out, r]
//! (PEFT's `lora_A.weight` and `lora_B.weight`), B starting at zero so that a fresh adapter
//! changes nothing. DPO needs no second model then: its reference is the same weights with
//! the adapters switched off ([`Compute::adapters`]).
//!
//! burn keeps the factors: its `LoraAdapter` hangs off the weight's `Param`, so the
//! optimizer, autodiff and the module visitors see them as ordinary parameters
//! (`…weight.lora.a` / `.b`) while the base stays frozen. burn's `a`/`b` compose as `a·b` in
//! the weight's stored layout, which is PEFT's B·A for Llama's [d_out, d_in] projections and
//! (B·A)ᵀ for GPT-2's [d_in, d_out] `Conv1D`; [`Layout`] converts. The forward pass does not
//! use burn's merged value (`Param::val`, which would build a dense W + a·b and a dense
//! gradient of it every step): [`Compute::project`] multiplies the input by the two thin
//! factors, as PEFT does.

mod attach;

use std::collections::BTreeSet;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

pub use attach::{
    FactorSource, Factors, FreshFactors, attach, param_counts, peft_tensors, transpose,
};

use super::ModelConfig;
use super::precision::Precision;
use super::weights;

/// A LoRA run's settings, named as PEFT's `LoraConfig` names them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// The update is scaled by alpha / r.
    pub alpha: f64,
    /// Dropout on the adapters' input while training.
    pub dropout: f64,
    /// Layers to adapt, by module name or its last parts (`q_proj`, `attn.c_proj`), or
    /// `all-linear`, every linear layer but the output head (the default, as QLoRA found
    /// needed to match full fine-tuning; PEFT's own default is the attention's projections).
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: 8,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec![ALL_LINEAR.into()],
        }
    }
}

/// The target that stands for every linear layer, as PEFT spells it.
pub const ALL_LINEAR: &str = "all-linear";

/// Layers that are 2-D weights but not linear layers PEFT adapts: embeddings and the head.
const NOT_LINEAR: [&str; 4] = ["wte", "wpe", "embed_tokens", "lm_head"];

/// Whether the module named (`model.layers.0.mlp.up_proj`) is a linear layer PEFT adapts, given
/// that its weight is 2-D.
pub fn is_linear(module: &str) -> bool {
    !NOT_LINEAR.contains(&module.rsplit('.').next().unwrap_or_default())
}

impl LoraConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.r == 0 {
            return Err("field `lora.r`: the rank must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err("field `lora.alpha`: must be a positive number".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err("field `lora.dropout`: must be at least 0 and below 1".into());
        }
        if self.targets.is_empty() {
            return Err("field `lora.targets`: names no layer (layer names, or all-linear)".into());
        }
        if self.targets.iter().any(|t| t.trim().is_empty()) {
            return Err("field `lora.targets`: a target is empty".into());
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }

    /// The parameters the adapters on `config`'s model hold: r·(d_in + d_out) per layer.
    pub fn param_count(&self, config: &ModelConfig) -> usize {
        let modules = self.modules(config).unwrap_or_default();
        linear_layers(config)
            .into_iter()
            .filter(|(module, _, _)| modules.contains(module))
            .map(|(_, d_in, d_out)| self.r * (d_in + d_out))
            .sum()
    }

    /// The targets as PEFT saves them in `adapter_config.json`: `all-linear` expanded to the
    /// layer names it stands for (PEFT refuses it in a saved file), others as given.
    pub fn peft_targets(&self, config: &ModelConfig) -> Vec<String> {
        if !self.targets.iter().any(|t| t == ALL_LINEAR) {
            return self.targets.clone();
        }
        let names: BTreeSet<String> = linear_layers(config)
            .into_iter()
            .filter_map(|(module, _, _)| module.rsplit('.').next().map(String::from))
            .collect();
        names.into_iter().collect()
    }

    /// The linear layers these settings adapt, by module name (`transformer.h.0.attn.c_attn`).
    /// A target that matches no layer is refused with the names the model has.
    pub fn modules(&self, config: &ModelConfig) -> Result<BTreeSet<String>, String> {
        let layers: Vec<String> = linear_layers(config).into_iter().map(|l| l.0).collect();
        if self.targets.iter().any(|t| t == ALL_LINEAR) {
            return Ok(layers.into_iter().collect());
        }
        let mut chosen = BTreeSet::new();
        for target in &self.targets {
            let matching: Vec<&String> = layers.iter().filter(|l| matches(l, target)).collect();
            if matching.is_empty() {
                let kinds: BTreeSet<&str> =
                    layers.iter().filter_map(|l| l.rsplit('.').next()).collect();
                return Err(format!(
                    "field `lora.targets`: `{target}` matches no linear layer of this {} model \
                     (its layers: {}, or all-linear)",
                    config.family(),
                    kinds.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            chosen.extend(matching.into_iter().cloned());
        }
        Ok(chosen)
    }
}

/// PEFT's rule: a target names a module, or the module's last dot-separated parts.
fn matches(module: &str, target: &str) -> bool {
    module == target || module.ends_with(&format!(".{target}"))
}

/// Every linear layer an adapter can go on: module name and (d_in, d_out).
pub fn linear_layers(config: &ModelConfig) -> Vec<(String, usize, usize)> {
    // burn's parameters are lazy: this tree allocates no tensor memory.
    let tree = config.build(&Device::flex());
    let layout = Layout::of(config);
    weights::param_shapes(&tree)
        .into_iter()
        .filter_map(|(name, shape)| {
            let module = name.strip_suffix(".weight")?;
            let [rows, cols] = shape[..] else { return None };
            let (d_in, d_out) = layout.in_out(rows, cols);
            is_linear(module).then(|| (module.to_string(), d_in, d_out))
        })
        .collect()
}

/// How a family stores its linear weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// [d_in, d_out]: GPT-2's `Conv1D` (PEFT's `fan_in_fan_out`).
    InOut,
    /// [d_out, d_in]: PyTorch's `nn.Linear` (Llama).
    OutIn,
}

impl Layout {
    pub fn of(config: &ModelConfig) -> Layout {
        match config {
            ModelConfig::Gpt2(_) => Layout::InOut,
            ModelConfig::Llama(_) => Layout::OutIn,
        }
    }

    pub(super) fn in_out(self, rows: usize, cols: usize) -> (usize, usize) {
        match self {
            Layout::InOut => (rows, cols),
            Layout::OutIn => (cols, rows),
        }
    }
}

/// How a model computes: the products' precision and whether the adapters take part. Not
/// saved with a model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compute {
    pub precision: Precision,
    /// Add the adapters' updates (off: the base model alone, DPO's reference).
    pub adapters: bool,
    /// Dropout on the adapters' input, applied only on an autodiff device (training).
    pub dropout: f64,
}

impl Default for Compute {
    fn default() -> Self {
        Compute {
            precision: Precision::F32,
            adapters: true,
            dropout: 0.0,
        }
    }
}

impl Compute {
    /// `x` [batch, seq, d_in] through a linear layer whose weight is stored in `layout`: the
    /// frozen product plus, where the weight has an adapter, the low-rank path x·Aᵀ·Bᵀ·scale.
    pub fn project(
        self,
        x: Tensor<3>,
        weight: &Param<Tensor<2>>,
        bias: Option<&Param<Tensor<1>>>,
        layout: Layout,
    ) -> Tensor<3> {
        // One product over all batch·seq rows instead of one per sequence: burn would
        // otherwise differentiate the broadcast weight as a batch of per-sequence gradients,
        // each a product with only seq rows, summed afterwards.
        let [batch, seq, _] = x.dims();
        let x = x.flatten::<2>(0, 1);
        // Cast before transposing: a half-precision base then reaches the product laid out
        // as an f32 one does (the same strides, so gemm sums in the same order).
        let base = self.precision.operand(weight.base());
        let base = match layout {
            Layout::InOut => base,
            Layout::OutIn => base.transpose(),
        };
        let mut y = self.precision.matmul(x.clone(), base);
        if let (true, Some(adapter)) = (self.adapters, weight.adapter()) {
            // burn's a·b is the update in the stored layout; as x-side factors:
            let (down, up) = match layout {
                Layout::InOut => (adapter.a.val(), adapter.b.val()),
                Layout::OutIn => (adapter.b.val().transpose(), adapter.a.val().transpose()),
            };
            let low = self.precision.matmul(self.dropout(x), down);
            y = y + self.precision.matmul(low, up) * adapter.scale;
        }
        if let Some(bias) = bias {
            y = y + bias.val().unsqueeze();
        }
        let d_out = y.dims()[1];
        y.reshape([batch, seq, d_out])
    }

    fn dropout(self, x: Tensor<2>) -> Tensor<2> {
        if self.dropout == 0.0 || !x.is_autodiff() {
            return x;
        }
        let keep = 1.0 - self.dropout;
        let mask = Tensor::random(x.shape(), Distribution::Bernoulli(keep), &x.device());
        x * mask / keep
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;
    use burn::tensor::{DType, Int, TensorData, Tolerance};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution as _, Uniform};

    use super::*;
    use crate::model::{BasePrecision, CausalLm, LlamaConfig, Preset};

    fn gpt2() -> ModelConfig {
        ModelConfig::Gpt2(Preset::Micro.config(Some(64)))
    }

    fn llama() -> ModelConfig {
        let config: LlamaConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        }))
        .unwrap();
        ModelConfig::Llama(config)
    }

    /// Non-zero factors on every linear layer, so that the adapters change the output.
    struct Random(StdRng);

    impl FactorSource for Random {
        fn factors(
            &mut self,
            _: &str,
            d_in: usize,
            d_out: usize,
        ) -> Result<Option<Factors>, String> {
            let uniform = Uniform::new(-0.3f32, 0.3).unwrap();
            let mut draw = |n: usize| (0..n).map(|_| uniform.sample(&mut self.0)).collect();
            Ok(Some(Factors {
                rank: 3,
                a: draw(3 * d_in),
                b: draw(d_out * 3),
                scale: 0.5,
            }))
        }
    }

    fn ids(device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(vec![1i64, 5, 7, 3, 9, 2], [2, 3]), device)
    }

    #[test]
    fn the_low_rank_path_equals_the_merged_weights_and_off_is_the_base() {
        for config in [gpt2(), llama()] {
            let device = Device::flex();
            let base = config.random_weights(1, &device);
            let adapted = attach(base.clone(), &mut Random(StdRng::seed_from_u64(2))).unwrap();
            let with = adapted.hidden(ids(&device));
            let merged = adapted.merged().hidden(ids(&device));
            with.clone()
                .into_data()
                .assert_approx_eq::<f32>(&merged.into_data(), Tolerance::absolute(1e-4));
            let off = adapted.clone().with_adapters(false).hidden(ids(&device));
            off.clone()
                .into_data()
                .assert_eq(&base.hidden(ids(&device)).into_data(), true);
            let change = (with - off).abs().max().into_scalar::<f32>();
            assert!(
                change > 1e-3,
                "{}: the adapters changed nothing",
                config.family()
            );
        }
    }

    #[test]
    fn only_the_adapters_get_gradients() {
        for config in [gpt2(), llama()] {
            let device = Device::flex().autodiff();
            let lora = LoraConfig::default();
            let modules = lora.modules(&config).unwrap();
            let mut fresh = FreshFactors::new(&lora, &config, 7).unwrap();
            let model = attach(config.random_weights(1, &device), &mut fresh).unwrap();
            // Both factors of every adapted layer get a gradient (A's is zero while B is);
            // no base weight does.
            let loss = model.hidden(ids(&device)).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            assert_eq!(grads.len(), 2 * modules.len(), "{}", config.family());
            let (adapters, _) = param_counts(&model);
            assert_eq!(lora.param_count(&config), adapters);
            let r = lora.r;
            let expected: usize = linear_layers(&config)
                .iter()
                .map(|(_, d_in, d_out)| r * (d_in + d_out))
                .sum();
            assert_eq!(adapters, expected);
        }
    }

    #[test]
    fn a_half_base_computes_as_f32_on_its_rounded_weights() {
        for config in [gpt2(), llama()] {
            for base in [BasePrecision::F16, BasePrecision::Bf16] {
                let device = Device::flex().autodiff();
                let model = config.random_weights(1, &device);
                let adapted = |model| attach(model, &mut Random(StdRng::seed_from_u64(2))).unwrap();
                let half = adapted(base.cast_base(model.clone()));
                let rounded = adapted(BasePrecision::F32.cast_base(base.cast_base(model)));
                let dtypes = |m: &CausalLm| {
                    let tensors = weights::named_tensors(m).into_iter();
                    tensors.map(|t| t.tensor.dtype()).collect::<Vec<_>>()
                };
                let all_f32 = |m: &CausalLm| dtypes(m).iter().all(|d| *d == DType::F32);
                let what = format!("{} base {}", config.family(), base.name());
                assert!(dtypes(&half).contains(&base.dtype().into()), "{what}");
                assert!(all_f32(&rounded) && all_f32(&half.merged()), "{what}");
                // The same arithmetic: f32 products of the rounded weights, with adapters and
                // without (the reference), and the same gradients for the adapters.
                for on in [true, false] {
                    let (a, b) = (half.clone(), rounded.clone());
                    let (a, b) = (a.with_adapters(on), b.with_adapters(on));
                    let (x, y) = (a.hidden(ids(&device)), b.hidden(ids(&device)));
                    x.into_data().assert_eq(&y.into_data(), true);
                }
                let grads = |m: &CausalLm| {
                    let loss = m.hidden(ids(&device)).powi_scalar(2).sum();
                    GradientsParams::from_grads(loss.backward(), m)
                };
                let (a, b) = (grads(&half), grads(&rounded));
                assert_eq!(a.len(), b.len(), "{what}");
                let factors = weights::named_tensors(&half).into_iter();
                for name in factors.map(|t| t.name).filter(|n| n.contains(".lora.")) {
                    let id = weights::param_id(&name);
                    let (x, y) = (a.get::<2>(id), b.get::<2>(id));
                    let (x, y) = (x.expect(&name), y.expect(&name));
                    x.into_data().assert_eq(&y.into_data(), true);
                }
            }
        }
    }

    #[test]
    fn targets_follow_peft_naming() {
        let names = |targets: &[&str], config: &ModelConfig| {
            let lora = LoraConfig {
                targets: targets.iter().map(|t| t.to_string()).collect(),
                ..LoraConfig::default()
            };
            lora.modules(config)
        };
        let gpt2 = gpt2();
        let attention = names(&["c_attn"], &gpt2).unwrap();
        assert_eq!(
            attention.into_iter().collect::<Vec<_>>(),
            ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
        );
        assert_eq!(LoraConfig::default().modules(&gpt2).unwrap().len(), 8);
        // A longer suffix picks the attention's c_proj, not the MLP's.
        let attn_proj = names(&["attn.c_proj"], &gpt2).unwrap();
        assert!(attn_proj.iter().all(|m| m.ends_with("attn.c_proj")) && attn_proj.len() == 2);
        assert_eq!(names(&["all-linear"], &gpt2).unwrap().len(), 8);
        let all = names(&["all-linear"], &llama()).unwrap();
        assert_eq!(all.len(), 14);
        assert!(
            all.iter()
                .all(|m| !m.contains("lm_head") && !m.contains("embed"))
        );
        let error = names(&["q_proj"], &gpt2).unwrap_err();
        assert!(error.contains("field `lora.targets`: `q_proj`"), "{error}");
        assert!(error.contains("c_attn, c_fc, c_proj"), "{error}");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = |lora: LoraConfig| lora.validate().unwrap_err();
        assert!(
            bad(LoraConfig {
                r: 0,
                ..LoraConfig::default()
            })
            .contains("field `lora.r`")
        );
        let alpha = LoraConfig {
            alpha: -1.0,
            ..LoraConfig::default()
        };
        assert!(bad(alpha).contains("field `lora.alpha`"));
        let dropout = LoraConfig {
            dropout: 1.0,
            ..LoraConfig::default()
        };
        assert!(bad(dropout).contains("field `lora.dropout`"));
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
