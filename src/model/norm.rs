//! LayerNorm (GPT-2) and RMSNorm (Llama) as one fused op over the last dimension: each row
//! scaled by rstd = 1/sqrt(mean(c²) + eps), with c the row minus its mean (LayerNorm,
//! "centred") or the row itself (RMSNorm), then by gamma, plus beta.
//!
//! burn's modules compose it from tensor ops: about eight passes over the activations forward
//! under autodiff, twice that backward, each keeping or writing a full buffer. This backend
//! extension has a hand-written backward on `Autodiff<B>` that keeps only x and gamma. On
//! flex, f32 rows run in two passes forward and two backward, blocks of rows on every thread,
//! with gamma's and beta's gradients summed per block and the blocks added in order (the same
//! sum on every run, whatever the threads); the GPU backends and the other float types run the
//! same formulas as tensor ops.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::{LayerNorm, RmsNorm};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use rayon::prelude::*;

use crate::model::row_math::{dot, sum_map, vector_kernel};

/// Rows per task on the threads (and per partial sum of gamma's and beta's gradients).
const BLOCK_ROWS: usize = 64;

#[backend_extension(Autodiff, Flex, Cube: cfg(any(not(target_arch = "wasm32"), feature = "webgpu")))]
pub trait RowNorm: Backend {
    /// Each last-dimension row of x normalised (see the module), times gamma [width], plus
    /// beta [width].
    fn row_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        centred: bool,
    ) -> FloatTensor<Self> {
        composed::<Self>(x, gamma, beta, epsilon, centred)
    }

    /// The gradients of x, gamma and beta from `grad`, that of `row_norm`'s output.
    fn row_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
        centred: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(x, gamma, grad, epsilon, centred)
    }
}

#[cfg(any(not(target_arch = "wasm32"), feature = "webgpu"))]
impl RowNorm for burn::backend::Cube {}

/// f32 in blocks of rows on every thread; other float types as tensor ops.
impl RowNorm for Flex {
    fn row_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        centred: bool,
    ) -> FloatTensor<Self> {
        if [&x, &gamma, &beta].iter().any(|t| t.dtype() != DType::F32) {
            return composed::<Self>(x, gamma, beta, epsilon, centred);
        }
        let (x, gamma, beta) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            beta.to_contiguous(),
        );
        let [values, gamma_values, beta_values] =
            [&x, &gamma, &beta].map(|t| t.as_slice::<f32>().expect("contiguous f32"));
        let width = gamma_values.len();
        let mut out = vec![0.0f32; values.len()];
        out.par_chunks_mut(width * BLOCK_ROWS)
            .zip(values.par_chunks(width * BLOCK_ROWS))
            .for_each(|(out, x)| {
                normalise_rows(out, x, gamma_values, beta_values, epsilon as f32, centred)
            });
        Flex::float_from_data(TensorData::new(out, x.shape()), &x.device())
    }

    fn row_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
        centred: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if [&x, &gamma, &grad].iter().any(|t| t.dtype() != DType::F32) {
            return composed_backward::<Self>(x, gamma, grad, epsilon, centred);
        }
        let (x, gamma, grad) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            grad.to_contiguous(),
        );
        let [values, gamma_values, grads] =
            [&x, &gamma, &grad].map(|t| t.as_slice::<f32>().expect("contiguous f32"));
        let width = gamma_values.len();
        let mut dx = vec![0.0f32; values.len()];
        let block = width * BLOCK_ROWS;
        // Each block's partial sums of gamma's and beta's gradients, in block order.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(block)
            .zip(values.par_chunks(block).zip(grads.par_chunks(block)))
            .map(|(dx, (x, dy))| {
                normalise_rows_backward(dx, x, dy, gamma_values, epsilon as f32, centred)
            })
            .collect();
        let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
        for (block_dgamma, block_dbeta) in partials {
            dgamma
                .iter_mut()
                .zip(block_dgamma)
                .for_each(|(sum, x)| *sum += x);
            dbeta
                .iter_mut()
                .zip(block_dbeta)
                .for_each(|(sum, x)| *sum += x);
        }
        let device = x.device();
        let tensor = |values: Vec<f32>, shape: Shape| {
            Flex::float_from_data(TensorData::new(values, shape), &device)
        };
        (
            tensor(dx, x.shape()),
            tensor(dgamma, gamma.shape()),
            tensor(dbeta, gamma.shape()),
        )
    }
}

impl<B: RowNorm, C: CheckpointStrategy> RowNorm for Autodiff<B, C> {
    fn row_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        centred: bool,
    ) -> FloatTensor<Self> {
        let op = NormBackward { epsilon, centred };
        let nodes = [x.node(), gamma.node(), beta.node()];
        match op.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
                let out = B::row_norm(
                    x.clone(),
                    gamma.clone(),
                    beta.into_primitive(),
                    epsilon,
                    centred,
                );
                prep.finish((x, gamma), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::row_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
                centred,
            )),
        }
    }
}

/// GPT-2's LayerNorm; f32 through the fused op, other float types through burn's module (which
/// widens half precision for its sums). `epsilon` is the module's (burn keeps it private).
pub fn layer_norm<const D: usize>(norm: &LayerNorm, epsilon: f64, x: Tensor<D>) -> Tensor<D> {
    let gamma = norm.gamma.val();
    if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 {
        return norm.forward(x);
    }
    let beta = match &norm.beta {
        Some(beta) => beta.val(),
        None => gamma.zeros_like(),
    };
    row_norm(x, gamma, beta, epsilon, true)
}

/// Llama's RMSNorm; f32 through the fused op, other float types through burn's module.
pub fn rms_norm<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    let gamma = norm.gamma.val();
    if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 {
        return norm.forward(x);
    }
    let beta = gamma.zeros_like();
    row_norm(x, gamma, beta, norm.epsilon, false)
}

fn row_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    centred: bool,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RowNorm>::row_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        centred,
    ))
}

#[derive(Debug)]
struct NormBackward {
    epsilon: f64,
    centred: bool,
}

impl<B: RowNorm> Backward<B, 3> for NormBackward {
    /// x and gamma.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma) = ops.state;
        let (dx, dgamma, dbeta) = B::row_norm_backward(x, gamma, grad, self.epsilon, self.centred);
        for (node, grad) in [(x_node, dx), (gamma_node, dgamma), (beta_node, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

vector_kernel! {
    /// out = (x - mean)·rstd·gamma + beta for each row of x (rows of gamma's width).
    fn normalise_rows(
        out: &mut [f32],
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        epsilon: f32,
        centred: bool,
    ) {
        for (out, x) in out.chunks_mut(gamma.len()).zip(x.chunks(gamma.len())) {
            let (mean, rstd) = row_moments(x, epsilon, centred);
            for (((out, &x), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
                *out = (x - mean) * rstd * g + b;
            }
        }
    }

    /// x's gradient (into dx) from the output's, dy, for each row of x; returns these rows'
    /// sums of gamma's and beta's gradients.
    fn normalise_rows_backward(
        dx: &mut [f32],
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        epsilon: f32,
        centred: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let width = gamma.len();
        let (mut dgamma, mut dbeta, mut xhat) =
            (vec![0.0f32; width], vec![0.0f32; width], vec![0.0f32; width]);
        let rows = dx
            .chunks_mut(width)
            .zip(x.chunks(width).zip(dy.chunks(width)));
        for (dx, (x, dy)) in rows {
            let (mean, rstd) = row_moments(x, epsilon, centred);
            for j in 0..width {
                xhat[j] = (x[j] - mean) * rstd;
                dx[j] = dy[j] * gamma[j];
                dgamma[j] += dy[j] * xhat[j];
                dbeta[j] += dy[j];
            }
            let mean_g = if centred {
                sum_map(dx, |g| g) / width as f32
            } else {
                0.0
            };
            let mean_gx = dot(dx, &xhat) / width as f32;
            for (dx, &xhat) in dx.iter_mut().zip(&xhat) {
                *dx = rstd * (*dx - mean_g - xhat * mean_gx);
            }
        }
        (dgamma, dbeta)
    }
}

/// A row's mean (0 where not centred) and 1/sqrt(mean((x - mean)²) + eps).
#[inline(always)]
fn row_moments(x: &[f32], epsilon: f32, centred: bool) -> (f32, f32) {
    let width = x.len() as f32;
    let mean = if centred {
        sum_map(x, |x| x) / width
    } else {
        0.0
    };
    let variance = sum_map(x, |x| (x - mean) * (x - mean)) / width;
    (mean, 1.0 / (variance + epsilon).sqrt())
}

/// The row minus its mean (the row itself where not centred) and rstd, as tensor ops; rstd
/// keeps the last dimension, as 1.
fn centre_and_rstd<B: Backend>(
    x: FloatTensor<B>,
    epsilon: f64,
    centred: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let last = x.shape().num_dims() - 1;
    let centred_x = match centred {
        true => B::float_sub(x.clone(), B::float_mean_dim(x, last)),
        false => x,
    };
    let squares = B::float_mul(centred_x.clone(), centred_x.clone());
    let variance = B::float_mean_dim(squares, last);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(variance, epsilon.into())));
    (centred_x, rstd)
}

/// A [width] tensor shaped to broadcast along x's last dimension.
fn along_rows<B: Backend>(t: FloatTensor<B>, x: &FloatTensor<B>) -> FloatTensor<B> {
    let rank = x.shape().num_dims();
    let width = t.shape().num_elements();
    let dims: Vec<usize> = (0..rank)
        .map(|d| if d + 1 == rank { width } else { 1 })
        .collect();
    B::float_reshape(t, Shape::from(dims))
}

fn composed<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    centred: bool,
) -> FloatTensor<B> {
    let (gamma, beta) = (along_rows::<B>(gamma, &x), along_rows::<B>(beta, &x));
    let (centred_x, rstd) = centre_and_rstd::<B>(x, epsilon, centred);
    let normalised = B::float_mul(centred_x, rstd);
    B::float_add(B::float_mul(normalised, gamma), beta)
}

/// dx = rstd·(g - mean(g) - x̂·mean(g·x̂)) with g = grad·gamma and x̂ the normalised row (no
/// mean(g) where not centred); gamma's gradient sums grad·x̂ over the rows, beta's grad.
fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
    centred: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let gamma_shape = gamma.shape();
    let width = gamma_shape.num_elements();
    let rows = x.shape().num_elements() / width;
    let last = x.shape().num_dims() - 1;
    let g = B::float_mul(grad.clone(), along_rows::<B>(gamma, &x));
    let (centred_x, rstd) = centre_and_rstd::<B>(x, epsilon, centred);
    let xhat = B::float_mul(centred_x, rstd.clone());
    let mean_gx = B::float_mean_dim(B::float_mul(g.clone(), xhat.clone()), last);
    let mut inner = B::float_sub(g.clone(), B::float_mul(xhat.clone(), mean_gx));
    if centred {
        inner = B::float_sub(inner, B::float_mean_dim(g, last));
    }
    let dx = B::float_mul(inner, rstd);
    let summed = |t: FloatTensor<B>| {
        let per_row = B::float_reshape(t, Shape::new([rows, width]));
        B::float_reshape(B::float_sum_dim(per_row, 0), gamma_shape.clone())
    };
    let dgamma = summed(B::float_mul(grad.clone(), xhat));
    (dx, dgamma, summed(grad))
}

#[cfg(test)]
mod tests {
    use burn::nn::{LayerNormConfig, RmsNormConfig};
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    /// Values and the gradients of x, gamma and beta against burn's modules, for rows that
    /// span more than one block and a width that is not a multiple of the lanes.
    fn matches_burn(device: Device) {
        let device = device.autodiff();
        let [batch, seq, width] = [3, 50, 37];
        let x = Tensor::<3>::random([batch, seq, width], Distribution::Normal(2.0, 3.0), &device);
        let weights =
            Tensor::<3>::random([batch, seq, width], Distribution::Normal(0.0, 1.0), &device);
        let randomised = |t: Tensor<1>| t.random_like(Distribution::Normal(1.0, 0.5));
        let mut layer = LayerNormConfig::new(width).with_epsilon(1e-5).init(&device);
        layer.gamma = layer.gamma.map(|g| randomised(g).require_grad());
        layer.beta = layer.beta.map(|b| b.map(|b| randomised(b).require_grad()));
        let mut rms = RmsNormConfig::new(width).with_epsilon(1e-6).init(&device);
        rms.gamma = rms.gamma.map(|g| randomised(g).require_grad());
        type Norm<'a> = &'a dyn Fn(Tensor<3>) -> Tensor<3>;
        let run = |norm: Norm, params: &[Tensor<1>]| {
            let x = x.clone().require_grad();
            let out = norm(x.clone());
            let grads = (out.clone() * weights.clone()).sum().backward();
            let mut data = vec![out.into_data(), x.grad(&grads).expect("x").into_data()];
            data.extend(
                params
                    .iter()
                    .map(|p| p.grad(&grads).expect("param").into_data()),
            );
            data
        };
        let layer_params = [layer.gamma.val(), layer.beta.as_ref().expect("beta").val()];
        let cases: [(&str, Norm, Norm, &[Tensor<1>]); 2] = [
            (
                "layer norm",
                &|x| layer.forward(x),
                &|x| layer_norm(&layer, 1e-5, x),
                &layer_params,
            ),
            (
                "rms norm",
                &|x| rms.forward(x),
                &|x| rms_norm(&rms, x),
                &[rms.gamma.val()],
            ),
        ];
        for (name, burns, ours, params) in cases {
            let (expected, actual) = (run(burns, params), run(ours, params));
            for (what, (a, b)) in ["values", "x", "gamma", "beta"]
                .iter()
                .zip(expected.iter().zip(&actual))
            {
                crate::testing::assert_close(&format!("{name} {what}"), a, b, 1e-5);
            }
        }
    }

    #[test]
    fn matches_burns_norms_on_the_cpu() {
        matches_burn(Device::flex());
    }

    #[test]
    fn matches_burns_norms_on_wgpu() {
        matches_burn(Device::wgpu(Default::default()));
    }
}
