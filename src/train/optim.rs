//! The optimizer as PyTorch users know it: AdamW with PyTorch's defaults, a linear warmup
//! and decay schedule, and clipping by the global gradient norm.
//!
//! burn's defaults differ (eps 1e-5, weight decay 1e-4) and its `GradientClipping::Norm`
//! clips each tensor on its own, which changes the update direction; both are replaced here.
//! The global norm stays on the device: no read happens until the step's metrics are read.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::moments;

/// AdamW with betas (0.9, 0.999) and eps 1e-8, as `torch.optim.AdamW`.
pub fn adamw(weight_decay: f64) -> ModuleOptimizer {
    let config = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay as f32);
    moments::optimizer(config.build())
}

/// Learning rate at `step` (0-based) of a phase of `total` steps: linear warmup over `warmup`
/// steps, then linear decay towards zero (Hugging Face's "linear" schedule, shifted by one step
/// so that the first update is not wasted at lr 0).
pub fn scheduled_lr(base: f64, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let remaining = total.saturating_sub(step) as f64;
    base * remaining / (total.saturating_sub(warmup)).max(1) as f64
}

/// Scales `grads` so that their global L2 norm is at most `max_norm` (no clipping when
/// `max_norm` is 0) and returns the norm before clipping, shape [1], on the device.
pub fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Tensor<1> {
    let mut squares = SumOfSquares { grads, total: None };
    model.visit(&mut squares);
    let Some(norm) = squares.total.map(Tensor::sqrt) else {
        panic!("the model has no gradients: was backward run on its loss?");
    };
    if max_norm > 0.0 {
        // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), capped at 1.
        let scale = ((norm.clone() + 1e-6).recip() * max_norm).clamp_max(1.0);
        model.visit(&mut Scale { grads, scale });
    }
    norm
}

struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    scale: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let scale = self.scale.clone().reshape([1usize; D]);
            self.grads.register(param.id, grad * scale);
        }
    }
}
