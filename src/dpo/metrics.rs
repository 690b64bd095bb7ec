//! The metrics object: the same names in metrics.jsonl, in `dpo eval --json` and in the
//! browser worker's messages (TRL's names, so dashboards and habits carry over).

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Sft,
    Dpo,
    Eval,
}

impl Phase {
    /// As metrics.jsonl writes it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Sft => "sft",
            Phase::Dpo => "dpo",
            Phase::Eval => "eval",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub step: usize,
    pub phase: Phase,
    pub loss: f64,
    #[serde(
        rename = "rewards/chosen",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub rewards_chosen: Option<f64>,
    #[serde(
        rename = "rewards/rejected",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub rewards_rejected: Option<f64>,
    #[serde(
        rename = "rewards/margins",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub rewards_margins: Option<f64>,
    #[serde(
        rename = "rewards/accuracies",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub rewards_accuracies: Option<f64>,
    #[serde(
        rename = "logps/chosen",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub logps_chosen: Option<f64>,
    #[serde(
        rename = "logps/rejected",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub logps_rejected: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ms: Option<f64>,
}

impl Metrics {
    /// Every field's name, as serialized.
    pub const NAMES: [&'static str; 12] = [
        "step",
        "phase",
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "logps/chosen",
        "logps/rejected",
        "lr",
        "grad_norm",
        "ms",
    ];

    /// Metrics with only the step, phase and loss set.
    pub fn new(step: usize, phase: Phase, loss: f64) -> Metrics {
        Metrics {
            step,
            phase,
            loss,
            rewards_chosen: None,
            rewards_rejected: None,
            rewards_margins: None,
            rewards_accuracies: None,
            logps_chosen: None,
            logps_rejected: None,
            lr: None,
            grad_norm: None,
            ms: None,
        }
    }

    /// Reads a batch's metrics back from [`BatchMetrics::pack`]'s values (or a sum or mean of
    /// several), naming them by `phase`; returns them with the values that follow.
    pub fn unpack(step: usize, phase: Phase, values: &[f32]) -> (Metrics, &[f32]) {
        let value = |i: usize| Some(values[i] as f64);
        let metrics = Metrics {
            logps_chosen: value(1),
            ..Metrics::new(step, phase, values[0] as f64)
        };
        if phase == Phase::Sft {
            return (metrics, &values[2..]);
        }
        let metrics = Metrics {
            rewards_chosen: value(2),
            rewards_rejected: value(3),
            rewards_margins: value(4),
            rewards_accuracies: value(5),
            logps_rejected: value(6),
            ..metrics
        };
        (metrics, &values[7..])
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metrics serialize")
    }
}

/// A batch's metrics on the device, by name, each of shape [1]. `pack` lays them out in one
/// tensor so that a step costs one device read; `Metrics::unpack` is its inverse. Packing is
/// linear, so packed tensors of several batches can be summed and averaged.
pub struct BatchMetrics {
    pub loss: Tensor<1>,
    pub logps_chosen: Tensor<1>,
    /// DPO batches only.
    pub rewards: Option<RewardMetrics>,
}

pub struct RewardMetrics {
    pub chosen: Tensor<1>,
    pub rejected: Tensor<1>,
    pub margins: Tensor<1>,
    pub accuracies: Tensor<1>,
    pub logps_rejected: Tensor<1>,
}

impl BatchMetrics {
    pub fn pack(self) -> Tensor<1> {
        let mut values = vec![self.loss, self.logps_chosen];
        if let Some(r) = self.rewards {
            values.extend([
                r.chosen,
                r.rejected,
                r.margins,
                r.accuracies,
                r.logps_rejected,
            ]);
        }
        Tensor::cat(values, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_fields_and_unpack_inverts_pack() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let (mut metrics, rest) = Metrics::unpack(9, Phase::Dpo, &values);
        assert_eq!(rest, &[8.0]);
        (metrics.lr, metrics.grad_norm, metrics.ms) = (Some(0.1), Some(0.2), Some(0.3));
        let json = serde_json::to_value(&metrics).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut names = Metrics::NAMES.to_vec();
        names.sort();
        keys.sort();
        assert_eq!(keys, names);
        // pack's order: loss, logps/chosen, then the rewards and logps/rejected.
        assert_eq!(json["loss"], 1.0);
        assert_eq!(json["logps/chosen"], 2.0);
        assert_eq!(json["rewards/chosen"], 3.0);
        assert_eq!(json["rewards/accuracies"], 6.0);
        assert_eq!(json["logps/rejected"], 7.0);
        let (sft, rest) = Metrics::unpack(1, Phase::Sft, &values[..3]);
        assert_eq!(
            (sft.loss, sft.logps_chosen, rest),
            (1.0, Some(2.0), &[3.0][..])
        );
    }
}
