//! One micro-batch's backward pass, whole or with gradient checkpointing.
//!
//! A whole backward keeps every activation of every layer from the forward until the
//! gradients are taken: on SmolLM2-135M (30 layers, 4 sequences of 128 tokens) more than a
//! gigabyte, most of a LoRA run's memory. Gradient checkpointing, as `transformers` does it,
//! keeps only each layer's input: a first forward runs without a graph, then the backward goes
//! layer by layer from the last, running each layer's forward again, on a graph, from its kept
//! input and taking that layer's gradients from the gradient of its output (the `upstream`
//! below), so that one layer's activations live at a time. It costs one more forward of the
//! layers; the gradients are the same.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Gradients, Int, Tensor};

use crate::model::{CausalLm, Positions};

/// How a step takes its gradients.
pub(crate) struct Backward<'a> {
    pub policy: &'a CausalLm,
    /// Recompute each layer's activations during the backward instead of keeping them.
    pub checkpointing: bool,
    /// With dropout, the seed of this micro-batch's masks: each layer draws from its own seed
    /// so that a recomputed forward draws the masks the first one did.
    pub dropout_seed: Option<u64>,
}

impl Backward<'_> {
    /// Adds to `grads` the gradients of the loss `tail` computes from the policy's final hidden
    /// states for `ids` [batch, seq], and returns the rest of what `tail` gives (the metrics).
    pub fn run<M>(
        &self,
        ids: Tensor<2, Int>,
        tail: impl FnOnce(Tensor<3>) -> (Tensor<1>, M),
        grads: &mut GradientsAccumulator<CausalLm>,
    ) -> M {
        let policy = self.policy;
        let positions = policy.positions(&ids);
        if !self.checkpointing {
            let last = self.layers(policy, policy.embed(ids), &positions, |_| {});
            let (loss, metrics) = tail(policy.final_norm(last));
            self.add(grads, loss);
            return metrics;
        }

        // The first forward, without a graph: only each layer's input is kept.
        let untracked = policy.clone().no_grad();
        let mut inputs = Vec::with_capacity(policy.layer_count());
        let embedded = untracked.embed(ids.clone());
        let last = self.layers(&untracked, embedded, &positions, |x| inputs.push(x.clone()));
        drop(untracked);

        // The loss from the last layer's output, then each layer from the last: its gradients
        // and the gradient of its input, which is the upstream of the layer below.
        let last = leaf(last);
        let (loss, metrics) = tail(policy.final_norm(last.clone()));
        let mut upstream = self.add_through(grads, loss, &last);
        for index in (0..policy.layer_count()).rev() {
            let input = leaf(inputs.pop().expect("one input per layer"));
            self.seed_layer(index, &input);
            let output = policy.layer(index, input.clone(), &positions);
            upstream = self.add_through(grads, (output * upstream).sum(), &input);
        }
        // A frozen embedding (adapters train) is off the graph.
        let embedded = policy.embed(ids);
        if embedded.is_tracked() {
            self.add(grads, (embedded * upstream).sum());
        }
        metrics
    }

    /// `model`'s layers in turn from `x`, showing `keep` each layer's input; the last output.
    fn layers(
        &self,
        model: &CausalLm,
        mut x: Tensor<3>,
        positions: &Positions,
        mut keep: impl FnMut(&Tensor<3>),
    ) -> Tensor<3> {
        for index in 0..model.layer_count() {
            keep(&x);
            self.seed_layer(index, &x);
            x = model.layer(index, x, positions);
        }
        x
    }

    /// Backward from `loss`: adds the parameters' gradients and returns `input`'s.
    fn add_through(
        &self,
        grads: &mut GradientsAccumulator<CausalLm>,
        loss: Tensor<1>,
        input: &Tensor<3>,
    ) -> Tensor<3> {
        let mut gradients = loss.backward();
        let upstream = input
            .grad_remove(&mut gradients)
            .expect("the layer's input is on the graph");
        self.collect(grads, gradients);
        upstream
    }

    /// Backward from `loss`: adds the parameters' gradients.
    fn add(&self, grads: &mut GradientsAccumulator<CausalLm>, loss: Tensor<1>) {
        self.collect(grads, loss.backward());
    }

    fn collect(&self, grads: &mut GradientsAccumulator<CausalLm>, gradients: Gradients) {
        let params = GradientsParams::from_grads(gradients, self.policy);
        grads.accumulate(self.policy, params);
    }

    fn seed_layer(&self, index: usize, x: &Tensor<3>) {
        if let Some(seed) = self.dropout_seed {
            let layer = (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x.device().seed(seed ^ layer);
        }
    }
}

/// A kept activation as the start of a new graph, whose gradient the backward returns.
fn leaf(x: Tensor<3>) -> Tensor<3> {
    x.detach().require_grad()
}
