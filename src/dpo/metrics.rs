//! The metrics object: the same names in metrics.jsonl, in `dpo eval --json` and in the
//! browser worker's messages (TRL's names, so dashboards and habits carry over).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Sft,
    Dpo,
    Eval,
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

/// Order of the values in a pair batch's metrics tensor (see `dpo::pair_forward`).
pub const PAIR_METRICS: usize = 7;

impl Metrics {
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

    /// Builds the metrics of a pair batch from its metrics tensor's values.
    pub fn from_pair_values(step: usize, phase: Phase, values: &[f32]) -> Metrics {
        let value = |i: usize| Some(values[i] as f64);
        Metrics {
            rewards_chosen: value(1),
            rewards_rejected: value(2),
            rewards_margins: value(3),
            rewards_accuracies: value(4),
            logps_chosen: value(5),
            logps_rejected: value(6),
            ..Metrics::new(step, phase, values[0] as f64)
        }
    }

    /// Metrics of an SFT batch: its loss and the mean chosen log-prob.
    pub fn from_sft_values(step: usize, values: &[f32]) -> Metrics {
        Metrics {
            logps_chosen: Some(values[1] as f64),
            ..Metrics::new(step, Phase::Sft, values[0] as f64)
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metrics serialize")
    }
}
