//! Direct Preference Optimization: sequence log-probs, the loss family and its metrics.

pub mod batch;
pub mod logps;
pub mod loss;
pub mod metrics;
pub mod token_logps;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::TokenizedPair;
use crate::model::CausalLm;
use batch::{Scored, SequenceBatch};
use loss::{LossConfig, PairLogps, dpo_loss};
pub use metrics::{BatchMetrics, Metrics, Phase, RewardMetrics};

/// DPO's frozen reference: a model run forward on every batch, or its log-probs computed once
/// per pair, `[chosen, rejected]`, so that only the policy stays in memory.
#[derive(Clone)]
pub enum Reference {
    Model(CausalLm),
    Logps(Vec<[f32; 2]>),
}

impl Reference {
    /// The reference for the pairs at `indices`, in batch order, as `pair_loss` takes it.
    pub fn batch(&self, indices: &[usize], device: &Device) -> ReferenceLogps<'_> {
        match self {
            Reference::Model(model) => ReferenceLogps::Model(model),
            Reference::Logps(values) => {
                let chosen = indices.iter().map(|&i| values[i][0]);
                let rejected = indices.iter().map(|&i| values[i][1]);
                let all: Vec<f32> = chosen.chain(rejected).collect();
                let len = all.len();
                ReferenceLogps::Precomputed(Tensor::from_data(TensorData::new(all, [len]), device))
            }
        }
    }
}

/// Where a batch's reference log-probs come from.
pub enum ReferenceLogps<'a> {
    /// A frozen model, run forward without gradients.
    Model(&'a CausalLm),
    /// Values computed once before training: [chosen..., rejected...] per batch.
    Precomputed(Tensor<1>),
}

/// The sequences of a pair batch: every chosen completion, then every rejected one.
pub fn pair_sequences<'a>(pairs: &[&'a TokenizedPair]) -> Vec<Scored<'a>> {
    let chosen = pairs.iter().map(|p| Scored {
        ids: &p.chosen,
        start: p.start,
    });
    let rejected = pairs.iter().map(|p| Scored {
        ids: &p.rejected,
        start: p.start,
    });
    chosen.chain(rejected).collect()
}

/// The DPO loss of a pair batch, from the policy's log-probs and the reference's.
pub struct PairLoss {
    /// On the policy's autodiff graph.
    pub loss: Tensor<1>,
    /// Detached, on the inner backend.
    pub metrics: BatchMetrics,
    /// Detached implicit reward margin (chosen - rejected) of each pair.
    pub margins: Tensor<1>,
}

pub fn pair_loss(
    policy_logps: Tensor<1>,
    reference: ReferenceLogps,
    batch: &SequenceBatch,
    config: &LossConfig,
) -> PairLoss {
    let pairs = batch.sequences / 2;
    let reference_logps = match reference {
        ReferenceLogps::Model(model) => logps::sequence_logps(model, batch).detach(),
        ReferenceLogps::Precomputed(values) => values,
    };
    let half = |t: &Tensor<1>, i: usize| t.clone().narrow(0, i * pairs, pairs);
    // TRL's NLL term: cross-entropy over all chosen completion tokens of the batch.
    let chosen_nll = -half(&policy_logps, 0).sum() / half(&batch.token_counts, 0).sum();
    let lens = batch.completion_lens.clone().clamp_min(1.0);
    let logps = PairLogps {
        policy_chosen: half(&policy_logps, 0),
        policy_rejected: half(&policy_logps, 1),
        reference_chosen: half(&reference_logps, 0),
        reference_rejected: half(&reference_logps, 1),
        chosen_lens: half(&lens, 0),
        rejected_lens: half(&lens, 1),
        chosen_nll,
    };
    let out = dpo_loss(config, &logps);
    let margins = out.chosen_rewards.clone() - out.rejected_rewards.clone();
    // The rewards and margins are computed from detached log-probs already.
    let mean = |t: Tensor<1>| t.detach().mean().inner();
    let metrics = BatchMetrics {
        loss: out.loss.clone().detach().inner(),
        logps_chosen: mean(logps.policy_chosen),
        rewards: Some(RewardMetrics {
            chosen: mean(out.chosen_rewards.clone()),
            rejected: mean(out.rejected_rewards.clone()),
            margins: mean(margins.clone()),
            accuracies: mean(margins.clone().greater_elem(0.0).float()),
            logps_rejected: mean(logps.policy_rejected),
        }),
    };
    PairLoss {
        loss: out.loss,
        metrics,
        margins: margins.inner(),
    }
}

/// The SFT loss of a batch of prompt + chosen sequences (mean NLL per completion token) and
/// its metrics: the loss and the mean chosen log-prob.
pub fn sft_loss(logps: Tensor<1>, batch: &SequenceBatch) -> (Tensor<1>, BatchMetrics) {
    let loss = -logps.clone().sum() / batch.token_counts.clone().sum();
    let metrics = BatchMetrics {
        loss: loss.clone().detach().inner(),
        logps_chosen: logps.detach().mean().inner(),
        rewards: None,
    };
    (loss, metrics)
}
