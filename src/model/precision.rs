//! Mixed precision: the matrix products in bf16, everything else in f32.
//!
//! Matrix products are most of a training step, and on a GPU with bf16 matrix units (tensor
//! cores through Vulkan's cooperative matrices, Apple's simdgroup matrices) they run several
//! times faster in bf16 than in f32. As PyTorch's autocast does, only the products change:
//! the weights, the optimizer's state, layer norms, softmaxes, the log-softmax of the head
//! and the loss stay in f32, and each product's operands are cast on the way in and its
//! result cast back to f32 on the way out (autodiff casts the gradients the same way).
//!
//! bf16 keeps f32's exponent range, so gradients do not underflow and no loss scaling is
//! needed. f16 (WebGPU's only half type) would need dynamic loss scaling; it is not offered
//! for the products.
//!
//! Storage is a separate matter ([`BasePrecision`]): with adapters the frozen weights of the
//! linear layers may be held in f16 or bf16, halving their memory. They enter each product
//! cast to its dtype, so with f32 products the arithmetic is exactly f32's on the rounded
//! weights (gradients flow in f32 and need no loss scaling), and with bf16 products on a bf16
//! base no cast is made at all.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The dtype of the model's matrix products. Not saved with a model: a run's setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub const NAMES: [&'static str; 2] = ["f32", "bf16"];

    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "f32" => Some(Precision::F32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Refuses a precision the device cannot compute in (bf16 needs a backend and adapter
    /// with bf16 arithmetic: burn's CPU backend, CUDA, Vulkan with `shaderBFloat16Type`).
    pub fn check(self, device: &Device) -> Result<(), String> {
        match self {
            Precision::Bf16 if !device.supports_dtype(DType::BF16) => Err(
                "precision `bf16`: this device has no bf16 arithmetic (WebGPU and WGSL have \
                 none; on Vulkan it needs the shaderBFloat16Type feature); use `f32`"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// `t` as a product operand: cast once where one operand serves many products (the
    /// head's chunks); [`matmul`](Self::matmul) leaves an operand already cast as it is (a
    /// cast to a tensor's own dtype is no operation).
    pub fn operand<const D: usize>(self, t: Tensor<D>) -> Tensor<D> {
        t.cast(self.dtype())
    }

    /// `x · w` (batched over leading dimensions), computed in this precision, result in f32.
    pub fn matmul<const D: usize>(self, x: Tensor<D>, w: Tensor<D>) -> Tensor<D> {
        let product = self.operand(x).matmul(self.operand(w));
        product.cast(FloatDType::F32)
    }
}

/// The dtype the frozen linear weights of an adapter run are held in. Not saved with a model:
/// files are written in f32 whatever it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BasePrecision {
    #[default]
    F32,
    F16,
    Bf16,
}

impl BasePrecision {
    pub const NAMES: [&'static str; 3] = ["f32", "f16", "bf16"];

    pub fn parse(name: &str) -> Option<BasePrecision> {
        match name {
            "f32" => Some(BasePrecision::F32),
            "f16" => Some(BasePrecision::F16),
            "bf16" => Some(BasePrecision::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BasePrecision::F32 => "f32",
            BasePrecision::F16 => "f16",
            BasePrecision::Bf16 => "bf16",
        }
    }

    pub fn dtype(self) -> FloatDType {
        match self {
            BasePrecision::F32 => FloatDType::F32,
            BasePrecision::F16 => FloatDType::F16,
            BasePrecision::Bf16 => FloatDType::BF16,
        }
    }

    /// Refuses a storage dtype the device has no tensors of (WebGPU's f16 needs the adapter's
    /// `shader-f16` feature; bf16 it has not at all).
    pub fn check(self, device: &Device) -> Result<(), String> {
        if device.supports_dtype(DType::from(self.dtype())) {
            return Ok(());
        }
        let name = self.name();
        Err(format!(
            "field `base_precision`: this device holds no {name} tensors (WebGPU needs the \
             shader-f16 feature for f16 and has no bf16); use f32{}",
            match self {
                BasePrecision::Bf16 => " or f16",
                _ => "",
            }
        ))
    }

    /// `model` with the weights of its linear layers in this dtype, frozen. Embeddings and
    /// the head stay in f32, as QLoRA leaves them: the head enters a product over the whole
    /// vocabulary, where an f32 copy would be kept for the backward (and with tied
    /// embeddings the table is the head). Adapters, norms and biases are left as they are.
    /// A weight already in the dtype is not touched, so models that share a base keep
    /// sharing it.
    pub fn cast_base<M: Module>(self, model: M) -> M {
        model.map(&mut CastBase {
            dtype: self.dtype(),
            path: Vec::new(),
        })
    }
}

struct CastBase {
    dtype: FloatDType,
    path: Vec<String>,
}

impl ModuleMapper for CastBase {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.into());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // An adapter's factors (`….weight.lora.a`) are not weights of a linear layer.
        let name = super::checkpoint_name(&self.path);
        let linear = name
            .strip_suffix(".weight")
            .is_some_and(super::lora::is_linear);
        if D != 2 || !linear || param.dtype() == self.dtype.into() {
            return param;
        }
        let dtype = self.dtype;
        param.set_require_grad(false).map(|t| t.cast(dtype))
    }
}

/// The `TryFrom<String>` and `From<_> for String` a setting's name round-trips through.
macro_rules! named_setting {
    ($type:ident, $what:literal) => {
        impl TryFrom<String> for $type {
            type Error = String;

            fn try_from(name: String) -> Result<$type, String> {
                $type::parse(&name).ok_or_else(|| {
                    format!(
                        concat!("unknown ", $what, " `{}` (one of {})"),
                        name,
                        $type::NAMES.join(", ")
                    )
                })
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.name().into()
            }
        }
    };
}

named_setting!(Precision, "precision");
named_setting!(BasePrecision, "base precision");

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// ‖a − b‖ / ‖b‖.
    fn relative_error(a: Tensor<2>, b: Tensor<2>) -> f32 {
        let norm = |t: Tensor<2>| t.powi_scalar(2).sum().sqrt().into_scalar::<f32>();
        norm(a - b.clone()) / norm(b)
    }

    #[test]
    fn bf16_products_match_f32_to_bf16_rounding_and_return_f32() {
        let device = Device::flex();
        let x = Tensor::<2>::random([64, 96], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<2>::random([96, 48], Distribution::Normal(0.0, 1.0), &device);
        let exact = Precision::F32.matmul(x.clone(), w.clone());
        let mixed = Precision::Bf16.matmul(x, w);
        assert_eq!(mixed.dtype(), DType::F32);
        let error = relative_error(mixed, exact);
        // bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per operand): the
        // product lands near that, and not at f32's ~1e-7, which would mean no cast happened.
        assert!((1e-4..2e-2).contains(&error), "relative error {error}");
    }

    #[test]
    fn gradients_flow_back_to_f32_weights() {
        let device = Device::flex().autodiff();
        let data = TensorData::new((0..12).map(|i| i as f32 / 10.0).collect(), [3, 4]);
        let w = Tensor::<2>::from_data(data, &device).require_grad();
        let x = Tensor::<2>::ones([2, 3], &device);
        let grads = Precision::Bf16.matmul(x, w.clone()).sum().backward();
        let grad = w.grad(&grads).expect("w has a gradient");
        assert_eq!(grad.dtype(), DType::F32);
        // d(sum(x·w))/dw = column sums of x = 2 for every element.
        let values = grad.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|&v| v == 2.0), "{values:?}");
    }

    #[test]
    fn names_round_trip() {
        for name in Precision::NAMES {
            assert_eq!(Precision::parse(name).map(Precision::name), Some(name));
        }
        assert_eq!(Precision::parse("f16"), None);
    }
}
