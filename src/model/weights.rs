//! Filling and reading a model's parameters by their Hugging Face names.
//!
//! One rule names every parameter: its path in the module tree (`super::checkpoint_name`).
//! Loading, random initialisation and export all walk the tree with that rule, so a new
//! layer needs no naming code.
//!
//! Random initialisation happens on the host with a seeded generator: the same seed gives
//! bit-identical starting weights on every backend, which is what lets the CPU and GPU paths
//! be compared step for step. Parameter ids are derived from names for the same reason: an
//! optimizer state saved in one process finds its parameters in the next.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

/// Where parameter values come from.
pub trait ParamSource {
    /// The values of parameter `name` with `shape`, row-major.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String>;
}

pub(crate) fn param_id(name: &str) -> ParamId {
    // FNV-1a: stable across processes and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    ParamId::from(hash)
}

/// Replaces every float parameter of `model` with values from `source`, on `device`.
pub fn fill<M: Module>(
    model: M,
    source: &mut dyn ParamSource,
    device: &Device,
) -> Result<M, String> {
    let mut filler = Filler {
        path: Vec::new(),
        source,
        device: device.clone(),
        error: None,
    };
    let model = model.map(&mut filler);
    match filler.error {
        Some(error) => Err(error),
        None => Ok(model),
    }
}

struct Filler<'a> {
    path: Vec<String>,
    source: &'a mut dyn ParamSource,
    device: Device,
    error: Option<String>,
}

impl ModuleMapper for Filler<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = super::checkpoint_name(&self.path);
        let shape = param.lazy_shape().dims::<D>().to_vec();
        match self.source.take(&name, &shape) {
            Ok(values) => {
                let tensor = Tensor::from_data(TensorData::new(values, shape), &self.device);
                let tensor = match self.device.is_autodiff() {
                    true => tensor.require_grad(),
                    false => tensor,
                };
                Param::initialized(param_id(&name), tensor)
            }
            Err(error) => {
                self.error = Some(error);
                param
            }
        }
    }
}

/// Hugging Face's `_init_weights`: N(0, 0.02) weights, zero biases, unit norm scales (the
/// only 1-D weights); GPT-2 also scales its residual projections by 1/sqrt(2 * layers).
pub struct RandomInit {
    rng: StdRng,
    n_layer: usize,
}

impl RandomInit {
    pub fn new(seed: u64, n_layer: usize) -> Self {
        RandomInit {
            rng: StdRng::seed_from_u64(seed),
            n_layer,
        }
    }
}

impl ParamSource for RandomInit {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let len = shape.iter().product();
        if name.ends_with(".bias") {
            return Ok(vec![0.0; len]);
        }
        if shape.len() == 1 {
            return Ok(vec![1.0; len]);
        }
        let mut std = 0.02f32;
        if name.ends_with("c_proj.weight") {
            std /= (2.0 * self.n_layer as f32).sqrt();
        }
        let normal = Normal::new(0.0, std).map_err(|e| e.to_string())?;
        Ok((0..len).map(|_| normal.sample(&mut self.rng)).collect())
    }
}

/// One parameter read back from the device.
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub tensor: Tensor<1>,
}

/// Every float parameter of `model` with its checkpoint name, flattened, still on the device
/// (a weight with an adapter as its base; [`CausalLm::merged`](super::CausalLm::merged) merges).
pub fn named_tensors<M: Module>(model: &M) -> Vec<NamedTensor> {
    let mut collector = Collector::default();
    model.visit(&mut collector);
    collector.out
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    out: Vec<NamedTensor>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The stored value: an adapter's factors are visited as parameters of their own.
        let tensor = param.base();
        let shape = tensor.dims().to_vec();
        let len: usize = shape.iter().product();
        self.out.push(NamedTensor {
            name: super::checkpoint_name(&self.path),
            shape,
            tensor: tensor.reshape([len]),
        });
    }
}

/// Every float parameter's checkpoint name and shape, without initialising any: checking a
/// file against a freshly built (lazy) tree allocates no tensor memory.
pub fn param_shapes<M: Module>(model: &M) -> Vec<(String, Vec<usize>)> {
    let mut shapes = Shapes::default();
    model.visit(&mut shapes);
    shapes.out
}

#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>)>,
}

impl ModuleVisitor for Shapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.lazy_shape().dims::<D>().to_vec();
        self.out.push((super::checkpoint_name(&self.path), shape));
    }
}
