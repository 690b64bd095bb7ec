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
use crate::data::{self, ChatTemplate};
use crate::dpo::batch::{Scored, SequenceBatch};
use crate::dpo::logps::sequence_logps;
use crate::dpo::loss::{LossConfig, LossType};
use crate::generate::{SamplingConfig, sample_ids};
use crate::io::hf::LoadedModel;
use crate::model::CausalLm;
use crate::run::{SHIPPED_HELDOUT, SHIPPED_TRAIN};
use crate::session;
use crate::task::Lexicon;
use crate::train::{Trainer, TrainerState};

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
    let autodiff = device.clone().autodiff();
    let template = ChatTemplate::default_plain();
    let train_pairs = data::parse_pairs(SHIPPED_TRAIN.0, SHIPPED_TRAIN.1.as_bytes(), &template)?;
    let heldout = data::parse_pairs(SHIPPED_HELDOUT.0, SHIPPED_HELDOUT.1.as_bytes(), &template)?;
    let model = session::from_scratch(&train_pairs, &config.train, &autodiff)?;
    let tokenized = session::tokenize(
        &model,
        SHIPPED_TRAIN.0,
        &train_pairs,
        config.train.max_length,
    )?;
    let pad = model.tokenizer.eos_id();
    let train_from = |policy: &CausalLm, sft_steps, steps, loss| {
        let settings = TrainConfig {
            sft_steps,
            steps,
            loss,
            ..config.train.clone()
        };
        let state = TrainerState::default();
        Trainer::new(
            policy.clone(),
            tokenized.clone(),
            pad,
            settings,
            autodiff.clone(),
            state,
        )
    };

    say(&format!("SFT: {} steps", config.train.sft_steps));
    let mut sft_trainer = train_from(
        &model.model,
        config.train.sft_steps,
        0,
        LossConfig::default(),
    );
    finish(&mut sft_trainer, config.train.sft_steps)?;
    let sft = sft_trainer.policy().clone();
    let reference = sft.valid();
    let prompts = data::distinct_prompts(&heldout);
    let prompts = &prompts[..config.prompts.min(prompts.len())];
    let scorer = Scorer {
        config,
        loaded: &model,
        prompts,
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
            let settings = LossConfig {
                loss_type: vec![loss],
                beta,
                ..LossConfig::default()
            };
            let mut trainer = train_from(&sft, 0, config.train.steps, settings);
            let evals = config.evals_per_run.clamp(1, config.train.steps.max(1));
            for eval in 1..=evals {
                let step = config.train.steps * eval / evals;
                finish(&mut trainer, step)?;
                let (reward, kl, samples) = scorer.score(&trainer.policy().valid())?;
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

/// Steps a trainer until `step` steps are done; a non-finite loss stops the experiment.
fn finish(trainer: &mut Trainer, step: usize) -> Result<(), Error> {
    while trainer.steps_done() < step && !trainer.is_done() {
        let metrics = read_sync(trainer.advance()).map_err(Error::Runtime)?;
        if !metrics.loss.is_finite() {
            return Err(Error::Runtime(format!(
                "the loss became {} at step {}: lower the learning rate",
                metrics.loss, metrics.step
            )));
        }
    }
    Ok(())
}

/// Samples a policy on the held-out prompts and measures reward and KL.
struct Scorer<'a> {
    config: &'a FrontierConfig,
    loaded: &'a LoadedModel,
    prompts: &'a [&'a str],
    reference: &'a CausalLm,
    device: &'a Device,
}

impl Scorer<'_> {
    /// (mean reward, mean KL estimate, samples).
    fn score(&self, policy: &CausalLm) -> Result<(f64, f64, usize), Error> {
        let lexicon = Lexicon::shipped();
        let tokenizer = &self.loaded.tokenizer;
        let mut sequences = Vec::new();
        let mut reward = 0.0;
        for (i, prompt) in self.prompts.iter().enumerate() {
            for k in 0..self.config.samples_per_prompt {
                let sampling = SamplingConfig {
                    max_new_tokens: self.config.max_new_tokens,
                    temperature: 1.0,
                    top_k: 0,
                    seed: self.config.train.seed + (i * self.config.samples_per_prompt + k) as u64,
                };
                let sample = read_sync(sample_ids(
                    policy,
                    tokenizer,
                    prompt,
                    &sampling,
                    self.device,
                ))
                .map_err(Error::Runtime)?;
                let new = &sample.ids[sample.prompt_len..];
                let text = new.strip_suffix(&[tokenizer.eos_id()]).unwrap_or(new);
                reward += lexicon.reward(&tokenizer.decode(text)) as f64;
                sequences.push(sample);
            }
        }
        let mut kl = 0.0;
        for chunk in sequences.chunks(32) {
            let scored: Vec<Scored> = chunk
                .iter()
                .map(|s| Scored {
                    ids: &s.ids,
                    start: s.prompt_len,
                })
                .collect();
            let batch = SequenceBatch::new(&scored, tokenizer.eos_id(), self.device);
            let log_ratio = sequence_logps(policy, &batch) - sequence_logps(self.reference, &batch);
            let sum = read_sync(log_ratio.sum().into_data_async())
                .map_err(|e| Error::Runtime(format!("reading log-probs failed: {e}")))?
                .try_into_vec::<f32>()
                .map_err(|e| Error::Runtime(format!("{e:?}")))?[0];
            kl += sum as f64;
        }
        let n = sequences.len().max(1) as f64;
        Ok((reward / n, kl / n, sequences.len()))
    }
}
