//! Causal self-attention whose backward keeps no [batch, heads, seq, seq] tensor.
//!
//! burn 0.22 differentiates `attention` through its unfused fallback: the forward keeps the
//! whole probability matrix for the backward, [batch, heads, seq, seq] per layer (191 MiB in
//! one buffer at gpt2-124m's 16 sequences of 512 tokens). This op keeps only Q, K and V. Its
//! backward recomputes the probabilities one block of query rows at a time, as
//! FlashAttention's backward does, but at block granularity and from ordinary tensor ops, so
//! that every backend (the CPU's flex, wgpu, WebGPU in the tab) runs it unchanged: a block
//! holds [batch, heads, rows, keys] with `rows` chosen to keep it under `BLOCK_ELEMENTS`, and
//! a causal block needs only the keys up to its last row. The forward runs the same blocks
//! (burn's fallback would materialise the whole matrix on the GPU). On flex a block's
//! probabilities are one fused pass per row (`row_math`) instead of six tensor ops (mask, max,
//! subtract, exp, sum, divide), each a pass over the block with flex's element-by-element
//! `exp`. That is also why the forward does not call flex's own attention: its softmax is
//! such a scalar loop, run over the masked scores too (leaving it cut `tiny`'s CPU step to
//! 0.9x).
//!
//! The op is a burn backend extension: a trait implemented on each backend, with a
//! hand-written backward on `Autodiff<B>`; `causal_attention` is its tensor-level entry.

use std::ops::Range;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, Dispatch, Flex, TensorMetadata, backend_extension, get_or_init_device_settings,
};
use burn::tensor::{DType, Shape, Slice, Tensor, TensorData};
use rayon::prelude::*;

use super::row_math;

/// The most elements one block of scores may hold: 2^22 (16 MiB in f32), at least one query
/// row. Small enough that attention holds none of a step's largest buffers (gpt2-124m's 16
/// sequences of 512: blocks of 42 rows); large enough that short sequences are one block
/// (the `tiny` workload's 32 x 4 heads x 128^2), which is exactly the unfused computation.
pub const BLOCK_ELEMENTS: usize = 1 << 22;

#[backend_extension(Autodiff, Flex, Cube: cfg(any(not(target_arch = "wasm32"), feature = "webgpu")))]
pub trait CausalAttention: Backend {
    /// softmax(Q K^T / sqrt(head_dim), causal) V for Q, K, V [batch, heads, seq, head_dim].
    fn causal_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        block_elements: usize,
    ) -> FloatTensor<Self> {
        blocked_forward::<Self>(query, key, value, block_elements)
    }

    /// softmax(Q K^T * scale) for the query rows `query` [b, h, rows, d], the last `rows` of
    /// the key positions `key` [b, h, keys, d], causally masked: one block of the backward.
    fn causal_probabilities(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        probabilities::<Self>(query, key, scale)
    }
}

impl CausalAttention for Flex {
    /// f32 rows on every thread, the mask a row's length (the causal rows are the last `rows`
    /// of the keys) and the softmax `row_math`'s; other float types as tensor ops.
    fn causal_probabilities(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        if query.dtype() != DType::F32 {
            return probabilities::<Self>(query, key, scale);
        }
        let [batch, heads, rows, _] = query.shape().dims::<4>();
        let keys = key.shape().dims::<4>()[2];
        let device = query.device();
        let scores = Flex::float_matmul(query, Flex::float_transpose(key));
        let mut scores: Vec<f32> = scores.into_data().try_into_vec().expect("f32 scores");
        let scale = scale as f32;
        scores
            .par_chunks_mut(keys)
            .enumerate()
            .for_each(|(row, scores)| {
                let (seen, future) = scores.split_at_mut(row % rows + keys - rows + 1);
                row_math::softmax_in_place(seen, scale);
                future.fill(0.0);
            });
        let shape = [batch, heads, rows, keys];
        Flex::float_from_data(TensorData::new(scores, shape), &device)
    }
}

#[cfg(any(not(target_arch = "wasm32"), feature = "webgpu"))]
impl CausalAttention for burn::backend::Cube {}

impl<B: CausalAttention, C: CheckpointStrategy> CausalAttention for Autodiff<B, C> {
    fn causal_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        block_elements: usize,
    ) -> FloatTensor<Self> {
        let parents = [query.node(), key.node(), value.node()];
        match AttentionBackward
            .prepare::<C>(parents)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let q = query.into_primitive();
                let k = key.into_primitive();
                let v = value.into_primitive();
                let output = B::causal_attention(q.clone(), k.clone(), v.clone(), block_elements);
                prep.finish((q, k, v, block_elements), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::causal_attention(
                query.into_primitive(),
                key.into_primitive(),
                value.into_primitive(),
                block_elements,
            )),
        }
    }
}

/// `causal_attention` on tensors: Q, K, V [batch, heads, seq, head_dim].
pub fn causal_attention(query: Tensor<4>, key: Tensor<4>, value: Tensor<4>) -> Tensor<4> {
    attention_in_blocks(query, key, value, BLOCK_ELEMENTS)
}

/// `causal_attention` with blocks of scores of at most `block_elements`.
fn attention_in_blocks(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    block_elements: usize,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CausalAttention>::causal_attention(
        query.into_dispatch(),
        key.into_dispatch(),
        value.into_dispatch(),
        block_elements,
    ))
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: CausalAttention> Backward<B, 3> for AttentionBackward {
    /// Q, K and V (all the backward needs, O(seq) memory) and the block size.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [query_node, key_node, value_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, block_elements) = ops.state;
        let [dq, dk, dv] = blocked_backward::<B>(q, k, v, grad, block_elements);
        for (node, grad) in [(query_node, dq), (key_node, dk), (value_node, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The attention output, block by block of query rows.
fn blocked_forward<B: CausalAttention>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    block_elements: usize,
) -> FloatTensor<B> {
    let blocks = Blocks::new(q.shape().dims(), block_elements);
    let outputs = blocks
        .rows()
        .map(|rows| {
            let keys = 0..rows.end;
            let q_rows = blocks.take::<B>(&q, rows);
            let k_keys = blocks.take::<B>(&k, keys.clone());
            let p = B::causal_probabilities(q_rows, k_keys, blocks.scale);
            B::float_matmul(p, blocks.take::<B>(&v, keys))
        })
        .collect();
    B::float_cat(outputs, 2)
}

/// The gradients of Q, K and V from the output's, recomputing each block's probabilities P:
/// dV = P^T dO, dS = P * (dO V^T - rowsum(P * dO V^T)) * scale, dQ = dS K, dK = dS^T Q.
fn blocked_backward<B: CausalAttention>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    grad: FloatTensor<B>,
    block_elements: usize,
) -> [FloatTensor<B>; 3] {
    let blocks = Blocks::new(q.shape().dims(), block_elements);
    let mut dq = Vec::new();
    // The last block first: it sees every key, so its dK and dV are the sums' first values
    // (no zeros to add to), and each earlier block adds into a prefix of them.
    let mut dk_dv: Option<(FloatTensor<B>, FloatTensor<B>)> = None;
    for rows in blocks.rows().rev() {
        let keys = 0..rows.end;
        let q_rows = blocks.take::<B>(&q, rows.clone());
        let k_keys = blocks.take::<B>(&k, keys.clone());
        let v_keys = blocks.take::<B>(&v, keys.clone());
        let grad_rows = blocks.take::<B>(&grad, rows);
        let p = B::causal_probabilities(q_rows.clone(), k_keys.clone(), blocks.scale);

        let dv_keys = B::float_matmul(B::float_transpose(p.clone()), grad_rows.clone());
        let dp = B::float_matmul(grad_rows, B::float_transpose(v_keys));
        let row_dot = B::float_sum_dim(B::float_mul(p.clone(), dp.clone()), 3);
        let ds = B::float_mul(p, B::float_sub(dp, row_dot));
        let ds = B::float_mul_scalar(ds, blocks.scale.into());

        dq.push(B::float_matmul(ds.clone(), k_keys));
        let dk_keys = B::float_matmul(B::float_transpose(ds), q_rows);
        dk_dv = Some(match dk_dv {
            None => (dk_keys, dv_keys),
            Some((dk, dv)) => (
                blocks.add_into::<B>(dk, keys.clone(), dk_keys),
                blocks.add_into::<B>(dv, keys, dv_keys),
            ),
        });
    }
    dq.reverse();
    let (dk, dv) = dk_dv.expect("a sequence has at least one block of rows");
    [B::float_cat(dq, 2), dk, dv]
}

/// softmax(Q K^T * scale) for the query rows `q` [b, h, rows, d] against the keys `k`
/// [b, h, keys, d]: the rows are the last `rows` of the `keys` positions, so row i sees keys
/// up to i + keys - rows (the causal mask aligned at the bottom right and built as burn's
/// fallback builds it).
fn probabilities<B: Backend>(q: FloatTensor<B>, k: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
    let [batch, heads, rows, _] = q.shape().dims::<4>();
    let keys = k.shape().dims::<4>()[2];
    let device = q.device();
    let scores = B::float_mul_scalar(B::float_matmul(q, B::float_transpose(k)), scale.into());

    let settings = get_or_init_device_settings::<B>(&device);
    let arange = |n: usize, shape: [usize; 2]| {
        let range = B::int_arange(0..n as i64, &device, settings.int_dtype);
        B::int_reshape(range, Shape::new(shape))
    };
    let last_key = B::int_add_scalar(arange(rows, [rows, 1]), ((keys - rows) as i64).into());
    let future = B::int_lower(last_key, arange(keys, [1, keys]), settings.bool_dtype);
    let future = B::bool_reshape(future, Shape::new([1, 1, rows, keys]));
    let future = B::bool_expand(future, Shape::new([batch, heads, rows, keys]));
    let scores = B::float_mask_fill(scores, future, f32::NEG_INFINITY.into());

    let max = B::float_max_dim(scores.clone(), 3);
    let exp = B::float_exp(B::float_sub(scores, max));
    let sum = B::float_sum_dim(exp.clone(), 3);
    B::float_div(exp, sum)
}

/// How one attention call splits into blocks of query rows.
struct Blocks {
    shape: [usize; 4],
    rows_per_block: usize,
    scale: f64,
}

impl Blocks {
    fn new(shape: [usize; 4], block_elements: usize) -> Blocks {
        let [batch, heads, seq, head_dim] = shape;
        let fitting = block_elements / (batch * heads * seq).max(1);
        Blocks {
            shape,
            rows_per_block: fitting.clamp(1, seq.max(1)),
            scale: 1.0 / (head_dim as f64).sqrt(),
        }
    }

    fn rows(&self) -> impl DoubleEndedIterator<Item = Range<usize>> + use<> {
        let (seq, step) = (self.shape[2], self.rows_per_block);
        (0..seq)
            .step_by(step)
            .map(move |start| start..(start + step).min(seq))
    }

    /// `tensor`'s positions `range` (dimension 2).
    fn take<B: Backend>(&self, tensor: &FloatTensor<B>, range: Range<usize>) -> FloatTensor<B> {
        if range == (0..self.shape[2]) {
            return tensor.clone();
        }
        B::float_slice(tensor.clone(), &self.slices(range))
    }

    /// `sum` with `value` added to its positions `range`.
    fn add_into<B: Backend>(
        &self,
        sum: FloatTensor<B>,
        range: Range<usize>,
        value: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let slices = self.slices(range.clone());
        let part = B::float_add(self.take::<B>(&sum, range), value);
        B::float_slice_assign(sum, &slices, part)
    }

    fn slices(&self, range: Range<usize>) -> [Slice; 4] {
        let [batch, heads, _, head_dim] = self.shape;
        [
            Slice::from(0..batch),
            Slice::from(0..heads),
            Slice::from(range),
            Slice::from(0..head_dim),
        ]
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    /// The output and the gradients of Q, K and V against burn's unfused attention, on
    /// `device`: one block, and blocks of 16 query rows (the last one shorter).
    fn matches_unfused(device: Device) {
        let dims = [2, 3, 40, 8];
        for (block_elements, blocks) in [(BLOCK_ELEMENTS, 1), (2 * 3 * 40 * 16, 3)] {
            assert_eq!(Blocks::new(dims, block_elements).rows().count(), blocks);
            let device = device.clone().autodiff();
            let input = || Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v, weights) = (input(), input(), input(), input());
            let run = |attend: &dyn Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>| {
                let [q, k, v] = [&q, &k, &v].map(|t| t.clone().require_grad());
                let out = attend(q.clone(), k.clone(), v.clone());
                let grads = (out.clone() * weights.clone()).sum().backward();
                let grad = |t: &Tensor<4>| t.grad(&grads).expect("tracked").into_data();
                [out.into_data(), grad(&q), grad(&k), grad(&v)]
            };
            let unfused = run(&|q, k, v| {
                let options = AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: true,
                };
                attention(q, k, v, None, None, options)
            });
            let blocked = run(&|q, k, v| attention_in_blocks(q, k, v, block_elements));
            for (name, (a, b)) in ["output", "dQ", "dK", "dV"]
                .iter()
                .zip(unfused.iter().zip(&blocked))
            {
                let what = format!("{name} ({blocks} blocks)");
                crate::testing::assert_close(&what, a, b, 1e-4);
            }
        }
    }

    #[test]
    fn matches_the_unfused_attention_on_the_cpu() {
        matches_unfused(Device::flex());
    }

    #[test]
    fn matches_the_unfused_attention_on_wgpu() {
        matches_unfused(Device::wgpu(Default::default()));
    }
}
