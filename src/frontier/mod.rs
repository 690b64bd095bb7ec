//! The DPO paper's reward-vs-KL experiment (its Figure 2) in miniature, on the shipped task
//! whose ground-truth reward is known: one SFT model, then DPO from it at several betas for
//! each loss type, and for every resulting policy the mean ground-truth reward of its own
//! samples against its KL divergence from the reference (the SFT model).
//!
//! KL(policy || reference) is estimated the usual way, from the policy's own samples:
//! the mean over samples y ~ policy(.|x) of log policy(y|x) - log reference(y|x), summed over
//! the sampled tokens (EOS included). Sampling is at temperature 1 with no top-k, so the
//! samples really come from the policy and the estimate is unbiased. As in the paper, each run
//! is scored several times along its training, so that a run traces a path away from the
//! reference; a loss's frontier is the best reward reached at each KL (the points no other
//! point of that loss beats with less KL). A good loss's frontier lies up and to the left.

pub mod svg;

use burn::module::Module;
use burn::tensor::{Device, read_sync};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::TrainConfig;
use crate::data::TextTokenizer;
use crate::dpo::batch::{Scored, SequenceBatch};
use crate::dpo::logps::sequence_logps;
use crate::dpo::loss::{LossConfig, LossType};
use crate::generate::{SamplingConfig, mean_reward, sample_and_score};
use crate::model::CausalLm;
use crate::train::eval::read_f32;
use crate::train::{self, ModelSource, PairsFile, Report, Run, RunSpec, Start};

/// What to train and how many samples to score.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FrontierConfig {
    /// Model size, seed, batch, learning rates and SFT/DPO step counts (its `loss` is
    /// replaced per point).
    pub train: TrainConfig,
    pub losses: Vec<LossType>,
    pub betas: Vec<f32>,
    /// Distinct held-out prompts sampled per policy.
    pub prompts: usize,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// Times each run is scored, evenly along its DPO steps (the last at its end).
    pub evals_per_run: usize,
    pub max_new_tokens: usize,
}

/// One trained policy's place on the plot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub loss: String,
    pub beta: f32,
    /// DPO steps done when scored.
    pub step: usize,
    /// Estimated KL(policy || reference), nats per completion.
    pub kl: f64,
    /// Mean ground-truth reward of the policy's samples.
    pub reward: f64,
    pub samples: usize,
    /// On its loss's frontier: no point of the same loss has a higher reward at a lower KL.
    pub frontier: bool,
}

/// The SFT model's own samples: the reference point (KL 0).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SftPoint {
    pub reward: f64,
    pub samples: usize,
}

/// Everything `docs/reward_kl.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Frontier {
    pub task: String,
    pub generated_by: String,
    pub config: FrontierConfig,
    pub sft: SftPoint,
    pub points: Vec<Point>,
}

/// Runs the experiment on `device` (a plain device; training uses its autodiff twin),
/// reporting progress lines through `say`.
pub fn run(
    config: &FrontierConfig,
    device: &Device,
    say: &mut dyn FnMut(&str),
) -> Result<Frontier, Error> {
    config.train.validate().map_err(Error::Input)?;
    if config.losses.is_empty() || config.betas.is_empty() {
        return Err(Error::Input(
            "give at least one loss type and one beta".into(),
        ));
    }
    if let Some(beta) = config.betas.iter().find(|b| !(b.is_finite() && **b > 0.0)) {
        return Err(Error::Input(format!(
            "--betas: {beta} is not a positive number"
        )));
    }
    let sft_settings = TrainConfig {
        steps: 0,
        ..config.train.clone()
    };
    let prepared = train::prepare(RunSpec {
        config: sft_settings,
        model: ModelSource::Preset,
        train: PairsFile::shipped_train(),
        heldout: Some(PairsFile::shipped_heldout()),
        adapter: None,
        // Only the held-out prompts are wanted: the points are scored here, by sampling.
        report: Report {
            prompts: 0,
            eval_pairs: Some(0),
            ..Report::default()
        },
    })?;

    say(&format!("SFT: {} steps", config.train.sft_steps));
    let mut sft_run = prepared.clone().start(device, Start::Fresh)?;
    advance(&mut sft_run, usize::MAX)?;
    let sft = sft_run.policy().clone();
    let reference = sft.valid();
    let prompts = sft_run.heldout_prompts();
    let scorer = Scorer {
        config,
        tokenizer: &sft_run.info().tokenizer,
        prompts: &prompts[..config.prompts.min(prompts.len())],
        reference: &reference,
        device,
    };
    let (sft_reward, sft_kl, samples) = scorer.score(&reference)?;
    say(&format!(
        "sft: reward {sft_reward:.3} (KL estimate {sft_kl:.1e}) over {samples} samples"
    ));

    let mut points = Vec::new();
    for &loss in &config.losses {
        for &beta in &config.betas {
            let loss_settings = LossConfig {
                loss_type: vec![loss],
                beta,
                ..LossConfig::default()
            };
            let settings = TrainConfig {
                sft_steps: 0,
                loss: loss_settings,
                ..config.train.clone()
            };
            let mut run = prepared
                .clone()
                .with_config(settings)?
                .start(device, Start::Weights(sft.clone()))?;
            let evals = config.evals_per_run.clamp(1, config.train.steps.max(1));
            for eval in 1..=evals {
                let step = config.train.steps * eval / evals;
                advance(&mut run, step)?;
                let (reward, kl, samples) = scorer.score(&run.policy().valid())?;
                say(&format!(
                    "{} beta {beta} step {step}: KL {kl:.3}, reward {reward:.3}",
                    loss.name()
                ));
                points.push(Point {
                    loss: loss.name().into(),
                    beta,
                    step,
                    kl,
                    reward,
                    samples,
                    frontier: false,
                });
            }
        }
    }
    mark_frontiers(&mut points);
    Ok(Frontier {
        task: "shipped sentiment task (examples/data): ground-truth reward = lexicon sum".into(),
        generated_by: "dpo frontier".into(),
        config: config.clone(),
        sft: SftPoint {
            reward: sft_reward,
            samples,
        },
        points,
    })
}

/// Marks, per loss, the points that no other point of that loss beats with less KL.
fn mark_frontiers(points: &mut [Point]) {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a].kl.total_cmp(&points[b].kl));
    let mut best = std::collections::HashMap::new();
    for i in order {
        let best = best
            .entry(points[i].loss.clone())
            .or_insert(f64::NEG_INFINITY);
        if points[i].reward > *best {
            *best = points[i].reward;
            points[i].frontier = true;
        }
    }
}

/// Drives `run` until `step` steps are done, or to its end.
fn advance(run: &mut Run, step: usize) -> Result<(), Error> {
    while run.steps_done() < step {
        if read_sync(run.next())?.is_none() {
            break;
        }
    }
    Ok(())
}

/// Samples a policy on the held-out prompts and measures reward and KL.
struct Scorer<'a> {
    config: &'a FrontierConfig,
    tokenizer: &'a TextTokenizer,
    prompts: &'a [String],
    reference: &'a CausalLm,
    device: &'a Device,
}

impl Scorer<'_> {
    /// (mean reward, mean KL estimate, samples).
    fn score(&self, policy: &CausalLm) -> Result<(f64, f64, usize), Error> {
        let sampling = SamplingConfig {
            max_new_tokens: self.config.max_new_tokens,
            temperature: 1.0,
            top_k: 0,
            seed: self.config.train.seed,
        };
        let generations = read_sync(sample_and_score(
            policy,
            self.tokenizer,
            self.prompts,
            self.config.samples_per_prompt,
            &sampling,
            self.device,
        ))
        .map_err(Error::Runtime)?;
        let mut kl = 0.0;
        for chunk in generations.chunks(32) {
            let scored: Vec<Scored> = chunk
                .iter()
                .map(|g| Scored {
                    ids: &g.sample.ids,
                    start: g.sample.prompt_len,
                })
                .collect();
            let batch = SequenceBatch::new(&scored, self.tokenizer.eos_id(), self.device);
            let log_ratio = sequence_logps(policy, &batch) - sequence_logps(self.reference, &batch);
            kl += read_sync(read_f32(log_ratio.sum())).map_err(Error::Runtime)?[0] as f64;
        }
        let n = generations.len().max(1) as f64;
        Ok((mean_reward(&generations), kl / n, generations.len()))
    }
}
