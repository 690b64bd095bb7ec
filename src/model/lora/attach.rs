//! Putting adapters on a model: where their factors come from (fresh, or a PEFT file), burn's
//! reparameterization that hangs them on the linear weights (freezing the rest), and reading
//! them back in PEFT's layout and names.

use std::collections::BTreeSet;

use burn::module::{LoraAdapter, Module, Param, Reparameterizer};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, Uniform};

use super::{Layout, LoraConfig, is_linear};
use crate::model::weights::{self, NamedTensor};
use crate::model::{CausalLm, ModelConfig};

/// Where adapter factors come from, in PEFT's layout: A [r, d_in] and B [d_out, r], row-major.
pub trait FactorSource {
    /// The factors for linear layer `module`, or `None` to leave it without an adapter.
    fn factors(
        &mut self,
        module: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Option<Factors>, String>;
}

#[derive(Clone)]
pub struct Factors {
    pub rank: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub scale: f64,
}

/// Fresh adapters on the chosen modules with PEFT's initialisation: A uniform in
/// ±1/sqrt(d_in) (kaiming-uniform with a = sqrt(5)), B zero. Drawn on the host from `seed`,
/// so every backend starts from the same adapters.
pub struct FreshFactors {
    pub modules: BTreeSet<String>,
    pub config: LoraConfig,
    rng: StdRng,
}

impl FreshFactors {
    pub fn new(config: &LoraConfig, model: &ModelConfig, seed: u64) -> Result<Self, String> {
        Ok(FreshFactors {
            modules: config.modules(model)?,
            config: config.clone(),
            rng: StdRng::seed_from_u64(seed ^ 0x4c6f_5241),
        })
    }
}

impl FactorSource for FreshFactors {
    fn factors(
        &mut self,
        module: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Option<Factors>, String> {
        if !self.modules.contains(module) {
            return Ok(None);
        }
        let r = self.config.r;
        let bound = 1.0 / (d_in as f32).sqrt();
        let uniform = Uniform::new(-bound, bound).map_err(|e| e.to_string())?;
        Ok(Some(Factors {
            rank: r,
            a: (0..r * d_in)
                .map(|_| uniform.sample(&mut self.rng))
                .collect(),
            b: vec![0.0; d_out * r],
            scale: self.config.scale(),
        }))
    }
}

/// `model` with adapters from `source` on its linear layers and every base weight frozen.
pub fn attach(model: CausalLm, source: &mut dyn FactorSource) -> Result<CausalLm, String> {
    let mut attach = Attach {
        source,
        error: None,
    };
    let model = model.apply_reparameterization(&mut attach);
    match attach.error {
        Some(error) => Err(error),
        None => Ok(model),
    }
}

struct Attach<'a> {
    source: &'a mut dyn FactorSource,
    error: Option<String>,
}

impl Reparameterizer for &mut Attach<'_> {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        let param = param.set_require_grad(false);
        let parts: Vec<String> = path.split('.').map(String::from).collect();
        let name = crate::model::checkpoint_name(&parts);
        let layout = match parts.first().map(String::as_str) {
            Some("Gpt2") => Layout::InOut,
            _ => Layout::OutIn,
        };
        let shape = param.lazy_shape().dims::<D>().to_vec();
        let (Some(module), [rows, cols], None) =
            (name.strip_suffix(".weight"), &shape[..], &self.error)
        else {
            return (param, None);
        };
        if !is_linear(module) {
            return (param, None);
        }
        let (d_in, d_out) = layout.in_out(*rows, *cols);
        let factors = match self.source.factors(module, d_in, d_out) {
            Ok(Some(factors)) => factors,
            Ok(None) => return (param, None),
            Err(error) => {
                self.error = Some(error);
                return (param, None);
            }
        };
        let device = param.lazy_device();
        let r = factors.rank;
        // PEFT's A [r, d_in] and B [d_out, r] as burn's a, b with a·b in the stored layout.
        let (a, b) = match layout {
            Layout::OutIn => ((factors.b, [d_out, r]), (factors.a, [r, d_in])),
            Layout::InOut => (
                (transpose(&factors.a, r, d_in), [d_in, r]),
                (transpose(&factors.b, d_out, r), [r, d_out]),
            ),
        };
        let factor = |(values, shape): (Vec<f32>, [usize; 2]), part: &str| {
            let tensor = Tensor::<2>::from_data(TensorData::new(values, shape), &device);
            let tensor = match device.is_autodiff() {
                true => tensor.require_grad(),
                false => tensor,
            };
            Param::initialized(weights::param_id(&format!("{name}.lora.{part}")), tensor)
        };
        let adapter = LoraAdapter {
            a: factor(a, "a"),
            b: factor(b, "b"),
            scale: factors.scale,
        };
        (param, Some(adapter))
    }
}

/// A row-major [rows, cols] matrix transposed.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

/// A model's adapters in PEFT's layout and names (`base_model.model.<module>.lora_A.weight`,
/// A [r, d_in]; `.lora_B.weight`, B [d_out, r]), still on the device.
pub fn peft_tensors(model: &CausalLm) -> Vec<NamedTensor> {
    let layout = match model {
        CausalLm::Gpt2(_) => Layout::InOut,
        CausalLm::Llama(_) => Layout::OutIn,
    };
    weights::named_tensors(model)
        .into_iter()
        .filter_map(|t| {
            let (module, part) = t.name.rsplit_once(".weight.lora.")?;
            let (rows, cols) = (t.shape[0], t.shape[1]);
            let transpose = layout == Layout::InOut;
            // burn's a is PEFT's B (OutIn) or Aᵀ (InOut); b is A or Bᵀ.
            let peft = match (part, layout) {
                ("a", Layout::OutIn) | ("b", Layout::InOut) => "lora_B",
                _ => "lora_A",
            };
            let (shape, tensor) = match transpose {
                true => {
                    let flat = t
                        .tensor
                        .reshape([rows, cols])
                        .transpose()
                        .reshape([rows * cols]);
                    (vec![cols, rows], flat)
                }
                false => (t.shape, t.tensor),
            };
            Some(NamedTensor {
                name: format!("base_model.model.{module}.{peft}.weight"),
                shape,
                tensor,
            })
        })
        .collect()
}

/// The parameters in adapters (0 without) and in all.
pub fn param_counts(model: &CausalLm) -> (usize, usize) {
    let shapes = weights::param_shapes(model);
    let size = |shape: &Vec<usize>| shape.iter().product::<usize>();
    let adapters = shapes.iter().filter(|(name, _)| name.contains(".lora."));
    (
        adapters.map(|(_, s)| size(s)).sum(),
        shapes.iter().map(|(_, s)| size(s)).sum(),
    )
}
