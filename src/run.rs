//! The command line's jobs as library calls (native): a whole training run with its run
//! folder, evaluation of model folders, and generation. `bin/dpo.rs` only parses flags.
//!
//! A run folder holds `metrics.jsonl`, `train_config.json`, `sft/` (the SFT model, DPO's
//! reference), `final/` and `checkpoint/` (model, optimizer moments, trainer state), all
//! written atomically; `--resume` continues from `checkpoint/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, read_sync};

use crate::Error;
use crate::config::TrainConfig;
use crate::data::{self, PreferencePair, TokenizedPair};
use crate::dpo::Metrics;
use crate::generate::{SamplingConfig, generate};
use crate::io::atomic;
use crate::io::hf::{self, LoadedModel};
use crate::session;
use crate::task::Lexicon;
use crate::train::eval::evaluate;
use crate::train::{Trainer, TrainerState};

/// The shipped task, embedded so that `dpo train` works from any folder.
pub const SHIPPED_TRAIN: (&str, &str) = (
    "examples/data/train.jsonl",
    include_str!("../examples/data/train.jsonl"),
);
pub const SHIPPED_HELDOUT: (&str, &str) = (
    "examples/data/heldout.jsonl",
    include_str!("../examples/data/heldout.jsonl"),
);

/// Everything `dpo train` needs beyond the training settings.
pub struct TrainJob {
    pub config: TrainConfig,
    /// Pairs to train on; `None`: the shipped task.
    pub data: Option<PathBuf>,
    /// Held-out pairs for the final evaluation; `None`: the shipped held-out file when
    /// training on the shipped task, else none.
    pub eval_data: Option<PathBuf>,
    /// A Hugging Face model folder to start from; `None`: a fresh model of `config.preset`.
    pub model: Option<PathBuf>,
    pub out: PathBuf,
    pub resume: bool,
    /// Write `checkpoint/` every this many steps (0: only at the end of each phase).
    pub save_every: usize,
    /// Held-out prompts to sample before and after DPO (0: none).
    pub sample_prompts: usize,
}

/// Hears about a run as it goes.
pub trait Progress {
    fn start(&mut self, total_steps: usize, done: usize);
    fn metrics(&mut self, metrics: &Metrics);
    fn message(&mut self, line: &str);
}

const CHECKPOINT: &str = "checkpoint";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "trainer_state.json";
const CONFIG: &str = "train_config.json";
const METRICS: &str = "metrics.jsonl";

/// Runs SFT then DPO and writes the run folder. Returns the held-out evaluation, if any.
pub fn train(
    job: &TrainJob,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Option<Metrics>, Error> {
    job.config.validate().map_err(Error::Input)?;
    let config = &job.config;
    let autodiff = device.clone().autodiff();
    let out = &job.out;

    let base = match &job.model {
        Some(dir) => Some(hf::load_dir(dir, &autodiff)?),
        None => None,
    };
    let template = base
        .as_ref()
        .map(|m| m.template.clone())
        .unwrap_or_else(data::ChatTemplate::default_plain);
    let (train_name, train_pairs) = read_pairs(job.data.as_deref(), SHIPPED_TRAIN, &template)?;
    let eval_source = match (&job.eval_data, &job.data) {
        (Some(path), _) => Some(read_pairs(Some(path), SHIPPED_HELDOUT, &template)?),
        (None, None) => Some(read_pairs(None, SHIPPED_HELDOUT, &template)?),
        (None, Some(_)) => None,
    };
    let mut model = match base {
        Some(model) => model,
        None => session::from_scratch(&train_pairs, config, &autodiff)?,
    };
    let tokenized = session::tokenize(&model, &train_name, &train_pairs, config.max_length)?;
    let eval_set = match &eval_source {
        Some((name, pairs)) => Some((
            session::tokenize(&model, name, pairs, config.max_length)?,
            pairs,
        )),
        None => None,
    };

    // Only now, with the data and model known good, does anything touch the run folder.
    prepare_out(job)?;
    let checkpoint = out.join(CHECKPOINT);
    atomic::recover_dir(&checkpoint).map_err(write_error(&checkpoint))?;
    let state = if job.resume {
        model.model = hf::load_dir(&checkpoint, &autodiff)?.model;
        let state = fs::read(checkpoint.join(STATE)).map_err(io_error(&checkpoint.join(STATE)))?;
        serde_json::from_slice::<TrainerState>(&state)
            .map_err(|e| Error::Input(format!("{}: {e}", checkpoint.join(STATE).display())))?
    } else {
        TrainerState::default()
    };
    truncate_metrics(&out.join(METRICS), state.step)?;
    let pad = model.tokenizer.eos_id();
    let mut trainer = Trainer::new(
        model.model.clone(),
        tokenized,
        pad,
        config.clone(),
        autodiff.clone(),
        state.clone(),
    );
    if job.resume {
        let bytes =
            fs::read(checkpoint.join(OPTIMIZER)).map_err(io_error(&checkpoint.join(OPTIMIZER)))?;
        trainer
            .load_optimizer_bytes(bytes)
            .map_err(|e| Error::Input(format!("{}: {e}", checkpoint.join(OPTIMIZER).display())))?;
        progress.message(&format!(
            "resuming {} at step {}",
            out.display(),
            state.step
        ));
    }

    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join(METRICS))
        .map_err(write_error(&out.join(METRICS)))?;
    progress.start(trainer.total_steps(), state.step);
    let mut samples_before = None;
    while !trainer.is_done() {
        if trainer.needs_reference() {
            let sft_dir = out.join("sft");
            let reference = if sft_dir.join(hf::WEIGHTS).exists() && job.resume {
                hf::load_dir(&sft_dir, &autodiff)?.model
            } else {
                save_model(&sft_dir, trainer.policy(), &model, &[])?;
                trainer.policy().clone()
            };
            if let (Some((_, pairs)), true) = (&eval_set, job.sample_prompts > 0) {
                samples_before = Some(sample_reward(
                    &reference,
                    &model,
                    pairs,
                    job.sample_prompts,
                    config.seed,
                    device,
                )?);
            }
            read_sync(trainer.start_dpo(reference)).map_err(Error::Runtime)?;
            save_checkpoint(&checkpoint, &trainer, &model)?;
        }
        let metrics = trainer.step().read().map_err(Error::Runtime)?;
        if !metrics.loss.is_finite() {
            return Err(Error::Runtime(format!(
                "the loss became {} at step {} ({:?}); training stopped and nothing of this step was saved (the last checkpoint is in {}). Try a lower learning rate.",
                metrics.loss,
                metrics.step,
                metrics.phase,
                checkpoint.display()
            )));
        }
        writeln!(log, "{}", metrics.to_json()).map_err(write_error(&out.join(METRICS)))?;
        progress.metrics(&metrics);
        let step = trainer.state().step;
        if (job.save_every > 0 && step % job.save_every == 0)
            || step == config.sft_steps
            || trainer.is_done()
        {
            save_checkpoint(&checkpoint, &trainer, &model)?;
        }
    }

    let final_dir = out.join("final");
    save_model(&final_dir, trainer.policy(), &model, &[])?;
    if config.steps == 0 {
        // No DPO phase: the SFT model is the final one.
        save_model(&out.join("sft"), trainer.policy(), &model, &[])?;
    }
    let Some((eval_pairs, raw_pairs)) = eval_set else {
        return Ok(None);
    };
    let policy = hf::load_dir(&final_dir, device)?;
    let reference = hf::load_dir(&out.join("sft"), device)?;
    let (mut metrics, _) = read_sync(evaluate(
        &policy.model,
        &reference.model,
        &eval_pairs,
        pad,
        &config.loss,
        config.batch,
        device,
    ))
    .map_err(Error::Runtime)?;
    metrics.step = trainer.state().step;
    writeln!(log, "{}", metrics.to_json()).map_err(write_error(&out.join(METRICS)))?;
    progress.metrics(&metrics);
    if job.sample_prompts > 0 {
        let before = match samples_before {
            Some(before) => before,
            None => sample_reward(
                &reference.model,
                &reference,
                raw_pairs,
                job.sample_prompts,
                config.seed,
                device,
            )?,
        };
        let after = sample_reward(
            &policy.model,
            &policy,
            raw_pairs,
            job.sample_prompts,
            config.seed,
            device,
        )?;
        progress.message(&format!(
            "generations on {} held-out prompts, mean ground-truth reward: sft {:.3} -> final {:.3}",
            job.sample_prompts.min(raw_pairs.len()),
            before,
            after
        ));
    }
    Ok(Some(metrics))
}

fn prepare_out(job: &TrainJob) -> Result<(), Error> {
    let out = &job.out;
    if job.resume {
        if !out.join(CHECKPOINT).exists() && !out.join(format!("{CHECKPOINT}.old")).exists() {
            return Err(Error::Input(format!(
                "--resume: {} has no checkpoint to resume from",
                out.display()
            )));
        }
        let saved = fs::read(out.join(CONFIG)).map_err(io_error(&out.join(CONFIG)))?;
        let saved: TrainConfig = serde_json::from_slice(&saved)
            .map_err(|e| Error::Input(format!("{}: {e}", out.join(CONFIG).display())))?;
        let comparable = TrainConfig {
            steps: saved.steps,
            sft_steps: saved.sft_steps,
            ..job.config.clone()
        };
        if comparable != saved || job.config.sft_steps != saved.sft_steps {
            return Err(Error::Input(format!(
                "--resume: the settings differ from {} (only `steps` may change)",
                out.join(CONFIG).display()
            )));
        }
    } else if out.join(METRICS).exists() {
        return Err(Error::Input(format!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            out.display()
        )));
    }
    fs::create_dir_all(out).map_err(write_error(out))?;
    let config = serde_json::to_vec_pretty(&job.config).expect("config serializes");
    atomic::write_file(&out.join(CONFIG), &config).map_err(write_error(&out.join(CONFIG)))
}

/// Reads a pairs file, or the shipped one when `path` is `None`.
pub fn read_pairs(
    path: Option<&Path>,
    shipped: (&str, &str),
    template: &data::ChatTemplate,
) -> Result<(String, Vec<PreferencePair>), Error> {
    match path {
        Some(path) => Ok((
            path.display().to_string(),
            data::read_pairs(path, template)?,
        )),
        None => Ok((
            shipped.0.to_string(),
            data::parse_pairs(shipped.0, shipped.1.as_bytes(), template)?,
        )),
    }
}

fn save_model(
    dir: &Path,
    policy: &crate::model::CausalLm,
    model: &LoadedModel,
    extra: &[(&str, &[u8])],
) -> Result<(), Error> {
    let files = read_sync(hf::export(
        policy,
        &model.config,
        &model.tokenizer,
        model.tokenizer_config.as_deref(),
    ))?;
    hf::write_dir(dir, &files, extra)
}

fn save_checkpoint(dir: &Path, trainer: &Trainer, model: &LoadedModel) -> Result<(), Error> {
    let optimizer = trainer.optimizer_bytes().map_err(Error::Runtime)?;
    let state = serde_json::to_vec(&trainer.state()).expect("state serializes");
    save_model(
        dir,
        trainer.policy(),
        model,
        &[(OPTIMIZER, &optimizer), (STATE, &state)],
    )
}

/// Drops metrics lines past `step` (written after the checkpoint a resumed run starts from).
fn truncate_metrics(path: &Path, step: usize) -> Result<(), Error> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<Metrics>(line).is_ok_and(|m| m.step <= step && step > 0)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    atomic::write_file(path, kept.as_bytes()).map_err(write_error(path))
}

/// Mean ground-truth reward (the shipped task's lexicon) of samples for the first `count`
/// distinct prompts.
pub fn sample_reward(
    model: &crate::model::CausalLm,
    loaded: &LoadedModel,
    pairs: &[PreferencePair],
    count: usize,
    seed: u64,
    device: &Device,
) -> Result<f64, Error> {
    let model = model.valid();
    let lexicon = Lexicon::shipped();
    let sampling = SamplingConfig {
        seed,
        ..SamplingConfig::default()
    };
    let prompts = data::distinct_prompts(pairs);
    let prompts = &prompts[..count.min(prompts.len())];
    let mut total = 0.0;
    for (i, prompt) in prompts.iter().enumerate() {
        let config = SamplingConfig {
            seed: sampling.seed + i as u64,
            ..sampling.clone()
        };
        let text = read_sync(generate(&model, &loaded.tokenizer, prompt, &config, device))
            .map_err(Error::Runtime)?;
        total += lexicon.reward(&text) as f64;
    }
    Ok(total / prompts.len().max(1) as f64)
}

/// `dpo eval`: metrics of a model folder against a reference folder over a pairs file.
pub fn eval_dirs(
    model: &Path,
    reference: Option<&Path>,
    data: &Path,
    loss: &crate::dpo::loss::LossConfig,
    max_length: Option<usize>,
    device: &Device,
) -> Result<Metrics, Error> {
    loss.validate().map_err(Error::Input)?;
    let policy = hf::load_dir(model, device)?;
    let reference = match reference {
        Some(dir) => Some(hf::load_dir(dir, device)?),
        None => None,
    };
    let (name, pairs) = read_pairs(Some(data), SHIPPED_HELDOUT, &policy.template)?;
    let max_length = max_length.unwrap_or(policy.config.max_positions());
    let tokenized: Vec<TokenizedPair> = session::tokenize(&policy, &name, &pairs, max_length)?;
    let reference_model = reference
        .as_ref()
        .map(|r| &r.model)
        .unwrap_or(&policy.model);
    let (metrics, _) = read_sync(evaluate(
        &policy.model,
        reference_model,
        &tokenized,
        policy.tokenizer.eos_id(),
        loss,
        16,
        device,
    ))
    .map_err(Error::Runtime)?;
    Ok(metrics)
}

/// A file the user handed us could not be read: theirs to fix.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Input(format!("{}: {e}", path.display()))
}

/// Writing the run folder failed: the machine's problem (disk full, permissions).
fn write_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("writing {} failed: {e}", path.display()))
}
