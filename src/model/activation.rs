//! The MLPs' activations, fused on the CPU: GPT-2's `gelu_new` and Llama's SiLU are both
//! x·sigmoid(scale·(x + cubic·x³)) (SiLU: scale 1, cubic 0; `gelu_new`'s 0.5·x·(1 + tanh(t))
//! is x·sigmoid(2t)).
//!
//! Written as tensor ops, `gelu_new` takes seven passes over the [batch, seq, 4·width] hidden
//! activations forward and about twice as many backward, each writing a fresh buffer, with
//! flex's sigmoid calling libm's `exp` one element at a time. This op is a burn backend
//! extension with a hand-written backward on `Autodiff<B>` that keeps only x: on flex, f32
//! runs one pass forward and one backward, chunks spread over the threads, with the sigmoid of
//! `row_math` that the compiler vectorises; the GPU backends (whose fusion joins element-wise
//! ops already) and the other float types run the same formulas as tensor ops.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::model::row_math::{sigmoid, vector_kernel};

/// Elements per task on the threads: large enough to pay for the task, small enough to share.
const CHUNK: usize = 1 << 14;

#[backend_extension(Autodiff, Flex, Cube: cfg(any(not(target_arch = "wasm32"), feature = "webgpu")))]
pub trait SigmoidGate: Backend {
    /// x·sigmoid(scale·(x + cubic·x³)), element-wise.
    fn sigmoid_gate(x: FloatTensor<Self>, scale: f32, cubic: f32) -> FloatTensor<Self> {
        composed::<Self>(x, scale, cubic)
    }

    /// x's gradient from `grad`, that of `sigmoid_gate`:
    /// grad·(s + x·s·(1 - s)·scale·(1 + 3·cubic·x²)) with s the gate.
    fn sigmoid_gate_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        cubic: f32,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad, scale, cubic)
    }
}

#[cfg(any(not(target_arch = "wasm32"), feature = "webgpu"))]
impl SigmoidGate for burn::backend::Cube {}

/// f32 in chunks on every thread; other float types as tensor ops.
impl SigmoidGate for Flex {
    fn sigmoid_gate(x: FloatTensor<Self>, scale: f32, cubic: f32) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return composed::<Self>(x, scale, cubic);
        }
        let x = x.to_contiguous();
        let values = x.as_slice::<f32>().expect("contiguous f32");
        let mut out = vec![0.0f32; values.len()];
        out.par_chunks_mut(CHUNK)
            .zip(values.par_chunks(CHUNK))
            .for_each(|(out, x)| gate(out, x, scale, cubic));
        Flex::float_from_data(TensorData::new(out, x.shape()), &x.device())
    }

    fn sigmoid_gate_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        cubic: f32,
    ) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            return composed_backward::<Self>(x, grad, scale, cubic);
        }
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let values = x.as_slice::<f32>().expect("contiguous f32");
        let grads = grad.as_slice::<f32>().expect("contiguous f32");
        let mut out = vec![0.0f32; values.len()];
        out.par_chunks_mut(CHUNK)
            .zip(values.par_chunks(CHUNK).zip(grads.par_chunks(CHUNK)))
            .for_each(|(out, (x, grad))| gate_backward(out, x, grad, scale, cubic));
        Flex::float_from_data(TensorData::new(out, x.shape()), &x.device())
    }
}

vector_kernel! {
    /// out = x·sigmoid(scale·(x + cubic·x³)), element by element.
    fn gate(out: &mut [f32], x: &[f32], scale: f32, cubic: f32) {
        for (out, &x) in out.iter_mut().zip(x) {
            *out = x * sigmoid(scale * (x + cubic * x * x * x));
        }
    }

    /// out = `gate`'s derivative at x times grad, element by element.
    fn gate_backward(out: &mut [f32], x: &[f32], grad: &[f32], scale: f32, cubic: f32) {
        for ((out, &x), &grad) in out.iter_mut().zip(x).zip(grad) {
            let x2 = x * x;
            let s = sigmoid(scale * (x + cubic * x2 * x));
            let slope = scale * (1.0 + 3.0 * cubic * x2);
            *out = grad * (s + x * (s - s * s) * slope);
        }
    }
}

impl<B: SigmoidGate, C: CheckpointStrategy> SigmoidGate for Autodiff<B, C> {
    fn sigmoid_gate(x: FloatTensor<Self>, scale: f32, cubic: f32) -> FloatTensor<Self> {
        let gate = GateBackward { scale, cubic };
        match gate.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                prep.finish(x.clone(), B::sigmoid_gate(x, scale, cubic))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::sigmoid_gate(x.into_primitive(), scale, cubic))
            }
        }
    }
}

/// SiLU (Llama's MLP gate): x·sigmoid(x).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid_gate(x, 1.0, 0.0)
}

/// GPT-2's `gelu_new` (`gelu_pytorch_tanh`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid_gate(x, 2.0 * 0.797_884_6, 0.044715)
}

fn sigmoid_gate<const D: usize>(x: Tensor<D>, scale: f32, cubic: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SigmoidGate>::sigmoid_gate(
        x.into_dispatch(),
        scale,
        cubic,
    ))
}

#[derive(Debug)]
struct GateBackward {
    scale: f32,
    cubic: f32,
}

impl<B: SigmoidGate> Backward<B, 1> for GateBackward {
    /// The gate's input x.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = x_node {
            let grad = B::sigmoid_gate_backward(ops.state, grad, self.scale, self.cubic);
            grads.register::<B>(node.id, grad);
        }
    }
}

/// `sigmoid_gate` as tensor ops.
fn composed<B: Backend>(x: FloatTensor<B>, scale: f32, cubic: f32) -> FloatTensor<B> {
    let gate = B::sigmoid(gate_input::<B>(x.clone(), scale, cubic));
    B::float_mul(x, gate)
}

/// `sigmoid_gate_backward` as tensor ops.
fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f32,
    cubic: f32,
) -> FloatTensor<B> {
    let s = B::sigmoid(gate_input::<B>(x.clone(), scale, cubic));
    let slope = B::float_mul_scalar(
        B::float_add_scalar(
            B::float_mul_scalar(B::float_mul(x.clone(), x.clone()), (3.0 * cubic).into()),
            1.0.into(),
        ),
        scale.into(),
    );
    // s·(1 - s) = s - s².
    let ds = B::float_sub(s.clone(), B::float_mul(s.clone(), s.clone()));
    let derivative = B::float_add(s, B::float_mul(B::float_mul(x, ds), slope));
    B::float_mul(grad, derivative)
}

/// scale·(x + cubic·x³) as tensor ops.
fn gate_input<B: Backend>(x: FloatTensor<B>, scale: f32, cubic: f32) -> FloatTensor<B> {
    let x2 = B::float_mul(x.clone(), x.clone());
    let factor = B::float_add_scalar(B::float_mul_scalar(x2, cubic.into()), 1.0.into());
    B::float_mul_scalar(B::float_mul(x, factor), scale.into())
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use super::*;

    /// Values and gradients against burn's own activations, on inputs that reach both tails.
    fn matches_burn(device: Device) {
        let device = device.autodiff();
        let mut values: Vec<f32> =
            Tensor::<1>::random([4099], Distribution::Normal(0.0, 4.0), &device)
                .into_data()
                .iter()
                .collect();
        values.extend([0.0, -0.0, 30.0, -30.0, 85.0, -85.0]);
        let n = values.len();
        let x = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
        let weights = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device);
        let run = |f: &dyn Fn(Tensor<1>) -> Tensor<1>| {
            let x = x.clone().require_grad();
            let out = f(x.clone());
            let grads = (out.clone() * weights.clone()).sum().backward();
            [
                out.into_data(),
                x.grad(&grads).expect("tracked").into_data(),
            ]
        };
        let cases: [(
            &str,
            &dyn Fn(Tensor<1>) -> Tensor<1>,
            &dyn Fn(Tensor<1>) -> Tensor<1>,
        ); 2] = [
            ("silu", &activation::silu, &silu),
            ("gelu_new", &activation::gelu_approximate, &gelu_tanh),
        ];
        for (name, burns, ours) in cases {
            let (expected, actual) = (run(burns), run(ours));
            crate::testing::assert_close(&format!("{name} values"), &expected[0], &actual[0], 1e-5);
            crate::testing::assert_close(
                &format!("{name} gradient"),
                &expected[1],
                &actual[1],
                1e-5,
            );
        }
    }

    #[test]
    fn matches_burns_activations_on_the_cpu() {
        matches_burn(Device::flex());
    }

    #[test]
    fn matches_burns_activations_on_wgpu() {
        matches_burn(Device::wgpu(Default::default()));
    }
}
