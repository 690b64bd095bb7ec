//! log softmax(logits)[target] for each row of the head's logits, fused on the CPU.
//!
//! Written as tensor ops, one target's log-probability per row takes six passes over the
//! [rows, vocab] logits forward (max, subtract, exp, sum, log, gather) and as many backward,
//! each writing a fresh [rows, vocab] buffer, and flex evaluates `exp` one element at a time
//! through libm: after the matrix products, the largest share of a small model's CPU step.
//! This op is a burn backend extension with a hand-written backward on `Autodiff<B>` that
//! keeps the logits and each row's log-normaliser. On flex, f32 logits take two passes per
//! row forward (the max, then the sum of exponentials) and one backward, rows spread over the
//! threads, with an `exp` the compiler vectorises; the GPU backends and the other float types
//! run the same formulas as tensor ops.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, IndexingUpdateOp, Int, Shape, Tensor, TensorData};
use rayon::prelude::*;

use crate::model::row_math::{log_sum_exp, scaled_exp};

#[backend_extension(Autodiff, Flex, Cube: cfg(any(not(target_arch = "wasm32"), feature = "webgpu")))]
pub trait TokenLogProbs: Backend {
    /// log softmax(logits)[r, targets[r]] for logits [rows, vocab] and targets [rows]: [rows].
    fn token_log_probs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let normalisers = Self::log_normalisers(logits.clone());
        Self::float_sub(picked::<Self>(logits, targets), normalisers)
    }

    /// log sum_j exp(logits[r, j]) for each row r of logits [rows, vocab]: [rows].
    fn log_normalisers(logits: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_log_normalisers::<Self>(logits)
    }

    /// The logits' gradient from `grad`, that of `token_log_probs`:
    /// grad[r] * (onehot(targets[r]) - softmax(logits)[r]).
    fn token_log_probs_backward(
        logits: FloatTensor<Self>,
        normalisers: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(logits, normalisers, targets, grad)
    }
}

#[cfg(any(not(target_arch = "wasm32"), feature = "webgpu"))]
impl TokenLogProbs for burn::backend::Cube {}

/// f32 logits row by row on every thread; other float types as tensor ops.
impl TokenLogProbs for Flex {
    fn log_normalisers(logits: FloatTensor<Self>) -> FloatTensor<Self> {
        if logits.dtype() != DType::F32 {
            return composed_log_normalisers::<Self>(logits);
        }
        let logits = logits.to_contiguous();
        let [rows, vocab] = logits.shape().dims::<2>();
        let values = logits.as_slice::<f32>().expect("contiguous f32");
        let mut normalisers = vec![0.0f32; rows];
        normalisers
            .par_iter_mut()
            .zip(values.par_chunks(vocab))
            .for_each(|(normaliser, row)| *normaliser = log_sum_exp(row));
        Flex::float_from_data(TensorData::new(normalisers, [rows]), &logits.device())
    }

    fn token_log_probs_backward(
        logits: FloatTensor<Self>,
        normalisers: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if logits.dtype() != DType::F32 {
            return composed_backward::<Self>(logits, normalisers, targets, grad);
        }
        let logits = logits.to_contiguous();
        let [rows, vocab] = logits.shape().dims::<2>();
        let values = logits.as_slice::<f32>().expect("contiguous f32");
        let per_row = |t: FloatTensor<Self>| t.into_data().iter::<f32>().collect::<Vec<_>>();
        let (normalisers, grad) = (per_row(normalisers), per_row(grad));
        let targets: Vec<i64> = targets.into_data().iter::<i64>().collect();
        let mut out = vec![0.0f32; rows * vocab];
        out.par_chunks_mut(vocab)
            .zip(values.par_chunks(vocab))
            .enumerate()
            .for_each(|(r, (out, row))| {
                scaled_exp(out, row, normalisers[r], -grad[r]);
                out[targets[r] as usize] += grad[r];
            });
        Flex::float_from_data(TensorData::new(out, [rows, vocab]), &logits.device())
    }
}

impl<B: TokenLogProbs, C: CheckpointStrategy> TokenLogProbs for Autodiff<B, C> {
    fn token_log_probs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match TokenLogProbsBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let normalisers = B::log_normalisers(logits.clone());
                let picked = picked::<B>(logits.clone(), targets.clone());
                let output = B::float_sub(picked, normalisers.clone());
                prep.finish((logits, normalisers, targets), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::token_log_probs(logits.into_primitive(), targets))
            }
        }
    }
}

/// `token_log_probs` on tensors: logits [rows, vocab], targets [rows] -> [rows].
pub fn token_logps(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as TokenLogProbs>::token_log_probs(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

#[derive(Debug)]
struct TokenLogProbsBackward;

impl<B: TokenLogProbs> Backward<B, 1> for TokenLogProbsBackward {
    /// The logits, their rows' log-normalisers and the targets.
    type State = (FloatTensor<B>, FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [logits_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (logits, normalisers, targets) = ops.state;
        if let Some(node) = logits_node {
            let grad = B::token_log_probs_backward(logits, normalisers, targets, grad);
            grads.register::<B>(node.id, grad);
        }
    }
}

/// logits[r, targets[r]]: [rows].
fn picked<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>) -> FloatTensor<B> {
    let rows = logits.shape().dims::<2>()[0];
    let targets = B::int_reshape(targets, Shape::new([rows, 1]));
    B::float_reshape(B::float_gather(1, logits, targets), Shape::new([rows]))
}

fn composed_log_normalisers<B: Backend>(logits: FloatTensor<B>) -> FloatTensor<B> {
    let rows = logits.shape().dims::<2>()[0];
    let max = B::float_max_dim(logits.clone(), 1);
    let sum = B::float_sum_dim(B::float_exp(B::float_sub(logits, max.clone())), 1);
    B::float_reshape(B::float_add(B::float_log(sum), max), Shape::new([rows]))
}

fn composed_backward<B: Backend>(
    logits: FloatTensor<B>,
    normalisers: FloatTensor<B>,
    targets: IntTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let rows = logits.shape().dims::<2>()[0];
    let column = |t| B::float_reshape(t, Shape::new([rows, 1]));
    let softmax = B::float_exp(B::float_sub(logits, column(normalisers)));
    let spread = B::float_neg(B::float_mul(softmax, column(grad.clone())));
    let targets = B::int_reshape(targets, Shape::new([rows, 1]));
    B::float_scatter(1, spread, targets, column(grad), IndexingUpdateOp::Add)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use super::*;

    /// The log-probs and the logits' gradient against the same formulas as plain tensor ops,
    /// for a vocabulary that is not a multiple of the lanes and logits far from 0.
    fn matches_tensor_ops(device: Device) {
        let [rows, vocab] = [37, 203];
        let device = device.autodiff();
        let logits = Tensor::<2>::random([rows, vocab], Distribution::Normal(40.0, 8.0), &device);
        let targets: Vec<i64> = (0..rows as i64).map(|r| (r * 31) % vocab as i64).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [rows]), &device);
        let weights = Tensor::<1>::random([rows], Distribution::Normal(0.0, 1.0), &device);
        let run = |logps: &dyn Fn(Tensor<2>) -> Tensor<1>| {
            let logits = logits.clone().require_grad();
            let out = logps(logits.clone());
            let grads = (out.clone() * weights.clone()).sum().backward();
            [
                out.into_data(),
                logits.grad(&grads).expect("tracked").into_data(),
            ]
        };
        let plain = run(&|logits| {
            let max = logits.clone().max_dim(1).detach();
            let normaliser = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
            let picked = logits.gather(1, targets.clone().reshape([rows, 1]));
            (picked - normaliser).reshape([rows])
        });
        let fused = run(&|logits| token_logps(logits, targets.clone()));
        for (name, (a, b)) in ["log-probs", "gradient"]
            .iter()
            .zip(plain.iter().zip(&fused))
        {
            crate::testing::assert_close(name, a, b, 1e-5);
        }
    }

    #[test]
    fn matches_the_tensor_ops_on_the_cpu() {
        matches_tensor_ops(Device::flex());
    }

    #[test]
    fn matches_the_tensor_ops_on_wgpu() {
        matches_tensor_ops(Device::wgpu(Default::default()));
    }
}
