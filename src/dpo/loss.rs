//! The DPO loss family, named and computed as Hugging Face TRL's `DPOTrainer` does, so that
//! users comparing with TRL see the same numbers.
//!
//! Every loss is a function of four sequence log-probabilities per pair: the policy's and the
//! reference's, on the chosen and on the rejected completion. With
//! `chosen_logratio = logp_pol(y_w) - logp_ref(y_w)` (likewise for y_l) and
//! `logits = chosen_logratio - rejected_logratio`, the default `sigmoid` loss is
//! `-log sigmoid(beta * logits)`, and the implicit reward of a completion is
//! `beta * logratio`.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use serde::{Deserialize, Serialize};

/// The losses TRL names in `DPOConfig.loss_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    Sigmoid,
    Ipo,
    Hinge,
    Robust,
    BcoPair,
    SppoHard,
    NcaPair,
    ApoZero,
    ApoDown,
    ExoPair,
    /// Negative log-likelihood of the chosen completion, per token.
    Sft,
    /// `sigmoid` on log-ratios averaged per completion token.
    SigmoidNorm,
}

impl LossType {
    pub const NAMES: [&'static str; 12] = [
        "sigmoid",
        "ipo",
        "hinge",
        "robust",
        "bco_pair",
        "sppo_hard",
        "nca_pair",
        "apo_zero",
        "apo_down",
        "exo_pair",
        "sft",
        "sigmoid_norm",
    ];

    pub fn parse(name: &str) -> Option<LossType> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }

    pub fn name(self) -> &'static str {
        let index = Self::ALL.iter().position(|t| *t == self).unwrap_or(0);
        Self::NAMES[index]
    }

    const ALL: [LossType; 12] = [
        LossType::Sigmoid,
        LossType::Ipo,
        LossType::Hinge,
        LossType::Robust,
        LossType::BcoPair,
        LossType::SppoHard,
        LossType::NcaPair,
        LossType::ApoZero,
        LossType::ApoDown,
        LossType::ExoPair,
        LossType::Sft,
        LossType::SigmoidNorm,
    ];
}

/// Which losses, how they are weighted, and their shared knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// One or more loss types; their weighted sum is minimised.
    pub loss_type: Vec<LossType>,
    /// One weight per loss type (all 1 when empty).
    pub loss_weights: Vec<f32>,
    /// Strength of the pull towards the reference (TRL's `beta`).
    pub beta: f32,
    /// Assumed label noise for `sigmoid`, `robust` and `exo_pair`.
    pub label_smoothing: f32,
    /// Ignore the reference model (its log-probs are taken as 0).
    pub reference_free: bool,
    /// Compare log-ratios averaged per completion token instead of summed (SimPO-style), in
    /// every loss; `ipo` and `sigmoid_norm` always do. Rewards are reported unaveraged.
    pub length_normalize: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            loss_type: vec![LossType::Sigmoid],
            loss_weights: Vec::new(),
            beta: 0.1,
            label_smoothing: 0.0,
            reference_free: false,
            length_normalize: false,
        }
    }
}

impl LossConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.loss_type.is_empty() {
            return Err("field `loss_type`: at least one loss is needed".into());
        }
        if !self.loss_weights.is_empty() && self.loss_weights.len() != self.loss_type.len() {
            return Err(format!(
                "field `loss_weights`: {} weights for {} loss types",
                self.loss_weights.len(),
                self.loss_type.len()
            ));
        }
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(format!("field `beta`: must be positive, got {}", self.beta));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(format!(
                "field `label_smoothing`: must be in [0, 0.5), got {}",
                self.label_smoothing
            ));
        }
        Ok(())
    }

    fn weight(&self, index: usize) -> f32 {
        self.loss_weights.get(index).copied().unwrap_or(1.0)
    }
}

/// Per-pair summed log-probs of one batch, and completion lengths to average them by.
pub struct PairLogps {
    pub policy_chosen: Tensor<1>,
    pub policy_rejected: Tensor<1>,
    pub reference_chosen: Tensor<1>,
    pub reference_rejected: Tensor<1>,
    pub chosen_lens: Tensor<1>,
    pub rejected_lens: Tensor<1>,
    /// Negative log-likelihood per token of the chosen completions (for `sft`).
    pub chosen_nll: Tensor<1>,
}

/// The loss and the implicit rewards of one batch.
pub struct LossOutput {
    /// Scalar, shape [1].
    pub loss: Tensor<1>,
    /// beta * (logp_pol - logp_ref) per pair, detached.
    pub chosen_rewards: Tensor<1>,
    pub rejected_rewards: Tensor<1>,
}

/// Computes the configured loss (TRL 1.x's formulas).
pub fn dpo_loss(config: &LossConfig, logps: &PairLogps) -> LossOutput {
    let beta = config.beta as f64;
    let (reference_chosen, reference_rejected) = if config.reference_free {
        (
            logps.reference_chosen.zeros_like(),
            logps.reference_rejected.zeros_like(),
        )
    } else {
        (
            logps.reference_chosen.clone(),
            logps.reference_rejected.clone(),
        )
    };
    let summed_chosen = logps.policy_chosen.clone() - reference_chosen;
    let summed_rejected = logps.policy_rejected.clone() - reference_rejected;
    let averaged_chosen = summed_chosen.clone() / logps.chosen_lens.clone();
    let averaged_rejected = summed_rejected.clone() / logps.rejected_lens.clone();
    let averaged_logits = averaged_chosen.clone() - averaged_rejected.clone();
    let (chosen, rejected) = match config.length_normalize {
        true => (averaged_chosen, averaged_rejected),
        false => (summed_chosen.clone(), summed_rejected.clone()),
    };
    let logits = chosen.clone() - rejected.clone();
    let smoothing = config.label_smoothing as f64;

    let mut total: Option<Tensor<1>> = None;
    for (index, loss_type) in config.loss_type.iter().enumerate() {
        let per_pair = match loss_type {
            LossType::Sigmoid => {
                -log_sigmoid(logits.clone() * beta) * (1.0 - smoothing)
                    - log_sigmoid(-logits.clone() * beta) * smoothing
            }
            LossType::Robust => {
                (-log_sigmoid(logits.clone() * beta) * (1.0 - smoothing)
                    + log_sigmoid(-logits.clone() * beta) * smoothing)
                    / (1.0 - 2.0 * smoothing)
            }
            LossType::ExoPair => {
                // TRL's default smoothing for EXO: 1e-3 when none is set.
                let eps = if smoothing == 0.0 { 1e-3 } else { smoothing };
                let z = logits.clone() * beta;
                sigmoid(z.clone()) * (log_sigmoid(z.clone()) - (-eps).ln_1p())
                    + sigmoid(-z.clone()) * (log_sigmoid(-z) - eps.ln())
            }
            LossType::Hinge => relu(-logits.clone() * beta + 1.0),
            // IPO's squared loss grows with completion length over summed log-probs, so TRL
            // averages them per token (as the IPO authors did).
            LossType::Ipo => (averaged_logits.clone() - 1.0 / (2.0 * beta)).powi_scalar(2),
            LossType::SigmoidNorm => -log_sigmoid(averaged_logits.clone() * beta),
            LossType::BcoPair => {
                -log_sigmoid(chosen.clone() * beta) - log_sigmoid(-rejected.clone() * beta)
            }
            LossType::SppoHard => {
                (chosen.clone() - 0.5 / beta).powi_scalar(2)
                    + (rejected.clone() + 0.5 / beta).powi_scalar(2)
            }
            LossType::NcaPair => {
                -log_sigmoid(chosen.clone() * beta)
                    - log_sigmoid(-chosen.clone() * beta) * 0.5
                    - log_sigmoid(-rejected.clone() * beta) * 0.5
            }
            LossType::ApoZero => {
                -sigmoid(chosen.clone() * beta) + 1.0 + sigmoid(rejected.clone() * beta)
            }
            LossType::ApoDown => {
                sigmoid(chosen.clone() * beta) + 1.0 - sigmoid(logits.clone() * beta)
            }
            LossType::Sft => logps.chosen_nll.clone(),
        };
        let term = per_pair.mean() * config.weight(index) as f64;
        total = Some(match total {
            Some(sum) => sum + term,
            None => term,
        });
    }
    LossOutput {
        loss: total.expect("validated: at least one loss type"),
        chosen_rewards: (summed_chosen * beta).detach(),
        rejected_rewards: (summed_rejected * beta).detach(),
    }
}

#[cfg(test)]
mod tests {
    //! Expected values were computed by hand from TRL's formulas (in f64, outside this code)
    //! for the worked example of the DPO introduction, with every completion 10 tokens long.
    use super::*;
    use burn::tensor::Device;

    const POLICY_CHOSEN: [f32; 4] = [-50., -45., -55., -48.];
    const POLICY_REJECTED: [f32; 4] = [-52., -48., -58., -46.];
    const REFERENCE: [f32; 4] = [-51., -46., -56., -49.];

    fn example() -> PairLogps {
        let device = Device::flex();
        let t = |v: [f32; 4]| Tensor::<1>::from_floats(v, &device);
        PairLogps {
            policy_chosen: t(POLICY_CHOSEN),
            policy_rejected: t(POLICY_REJECTED),
            reference_chosen: t(REFERENCE),
            reference_rejected: t(REFERENCE),
            chosen_lens: t([10.; 4]),
            rejected_lens: t([10.; 4]),
            chosen_nll: Tensor::from_floats([2.5], &device),
        }
    }

    fn loss_of(loss_type: LossType, label_smoothing: f32) -> f32 {
        let config = LossConfig {
            loss_type: vec![loss_type],
            label_smoothing,
            ..LossConfig::default()
        };
        dpo_loss(&config, &example()).loss.into_scalar::<f32>()
    }

    fn assert_close(actual: f32, expected: f32) {
        assert!(
            (actual - expected).abs() < 1e-4,
            "got {actual}, expected {expected}"
        );
    }

    #[test]
    fn worked_example_sigmoid_loss_and_rewards() {
        let out = dpo_loss(&LossConfig::default(), &example());
        assert_close(out.loss.into_scalar::<f32>(), 0.626247);
        let chosen = out
            .chosen_rewards
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let rejected = out
            .rejected_rewards
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for (c, expected) in chosen.iter().zip([0.1, 0.1, 0.1, 0.1]) {
            assert_close(*c, expected);
        }
        for (r, expected) in rejected.iter().zip([-0.1, -0.2, -0.2, 0.3]) {
            assert_close(*r, expected);
        }
    }

    #[test]
    fn each_loss_type_matches_trl_by_hand() {
        let cases = [
            (LossType::Sigmoid, 0.1, 0.641247),
            (LossType::Robust, 0.1, 0.607497),
            (LossType::Hinge, 0.0, 0.85),
            (LossType::Ipo, 0.0, 23.565),
            (LossType::ExoPair, 0.0, 2.512203),
            (LossType::SppoHard, 0.0, 40.5),
            (LossType::NcaPair, 0.0, 1.353474),
            (LossType::ApoZero, 0.0, 0.962470),
            (LossType::ApoDown, 0.0, 0.987758),
            (LossType::BcoPair, 0.0, 1.318154),
            (LossType::Sft, 0.0, 2.5),
            (LossType::SigmoidNorm, 0.0, 0.685728),
        ];
        for (loss_type, smoothing, expected) in cases {
            let actual = loss_of(loss_type, smoothing);
            assert!(
                (actual - expected).abs() < 1e-4 * expected.abs().max(1.0),
                "{loss_type:?}: got {actual}, expected {expected}"
            );
        }
    }

    #[test]
    fn weighted_sum_and_reference_free() {
        let config = LossConfig {
            loss_type: vec![LossType::Sigmoid, LossType::Sft],
            loss_weights: vec![1.0, 0.5],
            ..LossConfig::default()
        };
        let loss = dpo_loss(&config, &example()).loss.into_scalar::<f32>();
        assert_close(loss, 0.626247 + 0.5 * 2.5);
        // Without a reference the logits are the raw policy margins [2, 3, 3, -2]: the same
        // margins as with this reference, whose chosen and rejected log-probs are equal.
        let free = LossConfig {
            reference_free: true,
            ..LossConfig::default()
        };
        let out = dpo_loss(&free, &example());
        assert_close(out.loss.into_scalar::<f32>(), 0.626247);
        assert_close(
            out.chosen_rewards
                .into_data()
                .try_into_vec::<f32>()
                .unwrap()[0],
            -5.0,
        );
    }

    #[test]
    fn names_round_trip_and_bad_configs_are_refused() {
        for name in LossType::NAMES {
            assert_eq!(LossType::parse(name).unwrap().name(), name);
        }
        assert!(LossType::parse("dpo").is_none());
        let bad = LossConfig {
            loss_weights: vec![1.0, 2.0],
            ..LossConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("loss_weights"));
    }
}
