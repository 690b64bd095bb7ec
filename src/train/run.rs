//! The run driver: the whole sequence of a training run, one unit of work per call.
//!
//! ```text
//! SFT steps → generations "before" → freeze the reference → DPO steps → trained
//!           → generations "after" → held-out evaluation → done
//! ```
//!
//! [`Run::upcoming`] says what the next call of [`Run::next`] will do, and `next` does it and
//! reports an [`Event`]. A front end only schedules the calls and keeps what it wants of the
//! events: the command line writes `metrics.jsonl`, checkpoints and the `sft/` and `final/`
//! folders; the browser worker posts them to the page; the experiments score the policy
//! between calls; the benchmark times them. The switch from SFT to DPO, the non-finite guard
//! and the sampling of generations live here and nowhere else.

use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;

use super::Trainer;
use super::eval::{evaluate, reference_logps};
use super::setup::{Report, Resume};
use crate::Error;
use crate::config::TrainConfig;
use crate::data::TokenizedPair;
use crate::dpo::{Metrics, Phase, Reference};
use crate::generate::{Generation, SamplingConfig, sample_and_score};
use crate::io::hf::{self, ModelFiles};
use crate::io::{Saved, peft};
use crate::model::{BasePrecision, CausalLm, ModelInfo};

/// The held-out pairs: where they came from, their distinct prompts (sampled before and after
/// DPO) and the pairs evaluated at the end.
#[derive(Clone, Default)]
pub(crate) struct HeldOut {
    pub source: String,
    pub prompts: Vec<String>,
    pub pairs: Vec<TokenizedPair>,
}

/// Where an adapter run's adapters sit.
pub(crate) struct Adapters {
    /// The base model's name, for `adapter_config.json`.
    pub base: String,
    /// Freshly initialised at the start (not loaded from a file or a checkpoint): until
    /// trained they change nothing, and a reference frozen then skips them.
    pub fresh: bool,
}

/// Which generations: the model DPO starts from (the reference), or the final policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    Before,
    After,
}

/// What the next call of [`Run::next`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// A training step of this phase.
    Step(Phase),
    /// Sample the held-out prompts.
    Generate(When),
    /// Fix DPO's reference (with precomputed log-probs, a pass over the data).
    Freeze,
    /// Report that every step is done.
    Finish,
    /// The held-out evaluation.
    Evaluate,
    /// Nothing: the run is over.
    Done,
}

/// What a call of [`Run::next`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A training step (SFT or DPO) and its metrics.
    #[serde(rename = "metrics")]
    Step { metrics: Metrics },
    /// Samples for the held-out prompts, with the same seeds before and after.
    Generations { when: When, items: Vec<Generation> },
    /// DPO's reference is fixed. `from_policy`: it is the policy as SFT left it (a resumed run
    /// reuses the SFT model it saved instead).
    Frozen { from_policy: bool },
    /// Every step is done: the policy is final.
    Trained,
    /// The final policy against the reference on the held-out pairs: the metrics' means
    /// (phase `eval`) and each pair's reward margin.
    Evaluation { metrics: Metrics, margins: Vec<f32> },
}

pub struct Run {
    trainer: Trainer,
    info: ModelInfo,
    heldout: HeldOut,
    report: Report,
    /// The plain device: sampling and evaluation need no autodiff.
    device: Device,
    /// A resumed run's reference (its saved SFT model), frozen when DPO starts.
    saved_reference: Option<CausalLm>,
    /// The reference for the held-out pairs, once frozen.
    eval_reference: Option<Reference>,
    before: Option<Vec<Generation>>,
    after: bool,
    trained: bool,
    evaluated: bool,
    adapters: Adapters,
}

impl Run {
    pub(crate) fn new(
        trainer: Trainer,
        info: ModelInfo,
        heldout: HeldOut,
        report: Report,
        device: Device,
        saved_reference: Option<CausalLm>,
        adapters: Adapters,
    ) -> Run {
        Run {
            trainer,
            info,
            heldout,
            report,
            device,
            saved_reference,
            eval_reference: None,
            before: None,
            after: false,
            trained: false,
            evaluated: false,
            adapters,
        }
    }

    pub fn upcoming(&self) -> Work {
        let config = &self.trainer.config;
        let sampling = self.report.prompts > 0 && !self.heldout.prompts.is_empty();
        let training = self.steps_done() < self.total_steps();
        let dpo_ahead = config.steps > 0 && self.steps_done() >= config.sft_steps;
        if dpo_ahead && self.eval_reference.is_none() {
            // The model about to become the reference is sampled before it is frozen: with
            // precomputed log-probs it is gone afterwards.
            if sampling && self.before.is_none() {
                return Work::Generate(When::Before);
            }
            return Work::Freeze;
        }
        if training {
            return Work::Step(self.trainer.phase());
        }
        if !self.trained {
            return Work::Finish;
        }
        if sampling && self.before.is_none() {
            return Work::Generate(When::Before);
        }
        if sampling && !self.after {
            return Work::Generate(When::After);
        }
        if !self.evaluated && !self.heldout.pairs.is_empty() {
            return Work::Evaluate;
        }
        Work::Done
    }

    /// Does the upcoming work and reports it; `None` once the run is over.
    pub async fn next(&mut self) -> Result<Option<Event>, Error> {
        let event = match self.upcoming() {
            Work::Step(_) => Event::Step {
                metrics: self.step().await?,
            },
            Work::Generate(when) => Event::Generations {
                when,
                items: self.generate(when).await?,
            },
            Work::Freeze => Event::Frozen {
                from_policy: self.freeze().await?,
            },
            Work::Finish => {
                self.trained = true;
                Event::Trained
            }
            Work::Evaluate => {
                let (metrics, margins) = self.evaluate().await?;
                Event::Evaluation { metrics, margins }
            }
            Work::Done => return Ok(None),
        };
        Ok(Some(event))
    }

    /// The non-finite guard: a step whose loss or gradient norm is NaN or infinite has already
    /// updated the weights with garbage, so the run ends there.
    async fn step(&mut self) -> Result<Metrics, Error> {
        self.attach_adapters()?;
        let metrics = self.trainer.step().read().await.map_err(Error::Runtime)?;
        let grad_norm = metrics.grad_norm.unwrap_or(0.0);
        if metrics.loss.is_finite() && grad_norm.is_finite() {
            return Ok(metrics);
        }
        Err(Error::Diverged(format!(
            "at step {} ({}) the loss became {} and the gradient norm {}; training stopped \
             without keeping this step. Try a lower learning rate.",
            metrics.step,
            metrics.phase.name(),
            metrics.loss,
            grad_norm
        )))
    }

    /// The adapters of a run on a fresh model go on at the first DPO step: SFT trained every
    /// weight, and the SFT model stays their base and DPO's reference. (Only that step can
    /// find the policy without them; a run resumed later loads them from its checkpoint.)
    fn attach_adapters(&mut self) -> Result<(), Error> {
        let config = &self.trainer.config;
        let first_dpo_step = self.steps_done() == config.sft_steps;
        if config.lora.is_none() || !first_dpo_step || self.trainer.policy.has_adapters() {
            return Ok(());
        }
        let policy = self.trainer.policy.clone();
        self.trainer.policy = super::setup::attach_fresh(policy, config, &self.info.config)?;
        Ok(())
    }

    /// In a run on a fresh model with adapters, SFT's model becomes their frozen base when SFT
    /// is over: held in `base_precision` from then on, before DPO's starting model is sampled
    /// or frozen as the reference, so that both are the base the adapters will sit on.
    fn hold_sft_base(&mut self) {
        let config = &self.trainer.config;
        let sft_over = config.steps > 0 && self.steps_done() == config.sft_steps;
        let half = config.base_precision != BasePrecision::F32;
        if half && sft_over && !self.trainer.policy.has_adapters() {
            // Moved out (a lazy tree, holding no memory, stands in), so that each f32 weight
            // is freed as its cast is made: never the whole model twice.
            let stand_in = self.info.config.build(&self.trainer.device);
            let policy = std::mem::replace(&mut self.trainer.policy, stand_in);
            self.trainer.policy = config.base_precision.cast_base(policy);
        }
    }

    async fn generate(&mut self, when: When) -> Result<Vec<Generation>, Error> {
        self.hold_sft_base();
        let items = match (&self.before, when) {
            // Without a DPO phase the model before it is the final one.
            (Some(before), When::After) if self.trainer.config.steps == 0 => before.clone(),
            _ => {
                let model = match when {
                    When::Before => self.saved_reference.as_ref(),
                    When::After => None,
                };
                let model = model.unwrap_or(&self.trainer.policy).valid();
                let sampling = SamplingConfig {
                    max_new_tokens: self.report.max_new_tokens,
                    seed: self.trainer.config.seed,
                    ..SamplingConfig::default()
                };
                let prompts = &self.heldout.prompts;
                let prompts = &prompts[..self.report.prompts.min(prompts.len())];
                sample_and_score(
                    &model,
                    &self.info.tokenizer,
                    prompts,
                    1,
                    &sampling,
                    &self.device,
                )
                .await
                .map_err(Error::Runtime)?
            }
        };
        match when {
            When::Before => self.before = Some(items.clone()),
            When::After => self.after = true,
        }
        Ok(items)
    }

    /// Fixes DPO's reference: the saved SFT model of a resumed run, else the policy now (with
    /// its adapters switched off while they are untrained). Returns whether it is the policy.
    async fn freeze(&mut self) -> Result<bool, Error> {
        self.hold_sft_base();
        let config = &self.trainer.config;
        let from_policy = self.saved_reference.is_none();
        let untrained = self.adapters.fresh && self.steps_done() == 0;
        let model = match self.saved_reference.take() {
            Some(model) => model,
            None => self.trainer.policy.clone().with_adapters(!untrained),
        }
        .with_precision(config.precision)
        .frozen();
        let plain = model.valid();
        let (train, eval) = if config.precompute_ref {
            let pad = self.info.pad_id();
            let logps = |pairs| reference_logps(&plain, pairs, pad, config.batch, &self.device);
            let train = logps(&self.trainer.pairs).await;
            let eval = logps(&self.heldout.pairs).await;
            (
                Reference::Logps(train.map_err(Error::Runtime)?),
                Reference::Logps(eval.map_err(Error::Runtime)?),
            )
        } else {
            (Reference::Model(model), Reference::Model(plain))
        };
        self.trainer.freeze(train);
        self.eval_reference = Some(eval);
        Ok(from_policy)
    }

    async fn evaluate(&mut self) -> Result<(Metrics, Vec<f32>), Error> {
        let policy = self.trainer.policy.valid();
        // Without a DPO phase the policy is its own reference.
        let own;
        let reference = match &self.eval_reference {
            Some(reference) => reference,
            None => {
                own = Reference::Model(policy.clone());
                &own
            }
        };
        let config = &self.trainer.config;
        let (mut metrics, margins) = evaluate(
            &policy,
            reference,
            &self.heldout.pairs,
            self.info.pad_id(),
            &config.loss,
            config.batch,
            &self.device,
        )
        .await
        .map_err(Error::Runtime)?;
        metrics.step = self.steps_done();
        self.evaluated = true;
        Ok((metrics, margins))
    }

    pub fn config(&self) -> &TrainConfig {
        &self.trainer.config
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The policy being trained (on the autodiff device).
    pub fn policy(&self) -> &CausalLm {
        &self.trainer.policy
    }

    /// Steps done, SFT and DPO together.
    pub fn steps_done(&self) -> usize {
        self.trainer.step
    }

    pub fn total_steps(&self) -> usize {
        self.trainer.config.sft_steps + self.trainer.config.steps
    }

    /// The phase of the next training step (DPO once SFT is over).
    pub fn phase(&self) -> Phase {
        self.trainer.phase()
    }

    pub fn is_done(&self) -> bool {
        self.upcoming() == Work::Done
    }

    /// Distinct held-out prompts, in file order.
    pub fn heldout_prompts(&self) -> &[String] {
        &self.heldout.prompts
    }

    /// Where the held-out pairs come from, for messages.
    pub fn heldout_source(&self) -> &str {
        &self.heldout.source
    }

    /// The run now as a checkpoint, to continue from with [`super::Start::Resume`]. Without
    /// DPO's reference: a front end saves that once, at [`Event::Frozen`].
    pub async fn checkpoint(&self) -> Result<Resume, Error> {
        Ok(Resume {
            state: self.trainer.state(),
            optimizer: self
                .trainer
                .optimizer_bytes()
                .await
                .map_err(Error::Runtime)?,
            policy: ("checkpoint".into(), self.export().await?),
            reference: None,
        })
    }

    /// The policy as a folder's files: a Hugging Face model folder, or in an adapter run a
    /// PEFT adapter folder (once the adapters are on).
    pub async fn export(&self) -> Result<Saved, Error> {
        let policy = &self.trainer.policy;
        match &self.trainer.config.lora {
            Some(lora) if policy.has_adapters() => {
                let files = peft::export(policy, lora, &self.info.config, &self.adapters.base);
                Ok(Saved::Adapter(files.await?))
            }
            _ => Ok(Saved::Model(self.export_merged().await?)),
        }
    }

    /// The policy as a Hugging Face model folder's files, adapters merged into the weights.
    pub async fn export_merged(&self) -> Result<ModelFiles, Error> {
        hf::export(&self.trainer.policy, &self.info).await
    }

    /// Parameters trained (the adapters', in an adapter run once they are on) and in all.
    pub fn param_counts(&self) -> (usize, usize) {
        match crate::model::lora::param_counts(&self.trainer.policy) {
            (0, all) => (all, all),
            counts => counts,
        }
    }
}
