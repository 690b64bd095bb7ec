//! The command line's jobs as library calls (native): a whole training run with its run
//! folder, evaluation of model folders, and generation. `bin/dpo.rs` only parses flags.
//!
//! Each job is prepared first: every input is read and checked without a device and without
//! writing anything, so that bad input ends the program before a GPU is probed or a run
//! folder created. Then the caller chooses the device and runs the job.
//!
//! A run folder holds `metrics.jsonl`, `train_config.json`, `sft/` (the SFT model, DPO's
//! reference), `final/` and `checkpoints/step-…/` (model, optimizer moments, trainer state;
//! the newest few kept), all written atomically; `--resume` continues from the newest
//! checkpoint.

mod eval;
mod inputs;
mod settings;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, read_sync};

use crate::Error;
use crate::config::TrainConfig;
use crate::data::{ChatTemplate, TextTokenizer};
use crate::dpo::{Metrics, Phase};
use crate::io::atomic;
use crate::io::checkpoint::Checkpoints;
use crate::io::hf::{self, LoadedModel};
use crate::session;
use crate::train::eval::evaluate;
use crate::train::{Trainer, TrainerState};

pub use eval::{Eval, sample_reward};
pub use inputs::{ModelDir, Pairs, Resume, read_pairs};
pub use settings::read_config;

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
    /// Continue from the newest checkpoint in `out`; start there when it holds none yet.
    pub resume: bool,
    /// Write a checkpoint every this many steps (0: only at the end of each phase).
    pub save_every: usize,
    /// How many of the newest checkpoints to keep (at least 1).
    pub keep_checkpoints: usize,
    /// Held-out prompts to sample before and after DPO (0: none).
    pub sample_prompts: usize,
}

/// Hears about a run as it goes.
pub trait Progress {
    fn start(&mut self, total_steps: usize, done: usize);
    fn metrics(&mut self, metrics: &Metrics);
    fn message(&mut self, line: &str);
}

const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "trainer_state.json";
const CONFIG: &str = "train_config.json";
const METRICS: &str = "metrics.jsonl";

/// A training job with every input read and checked.
pub struct Prepared {
    job: TrainJob,
    base: Option<ModelDir>,
    tokenizer: TextTokenizer,
    train: Pairs,
    eval: Option<Pairs>,
    resume: Option<Resume>,
}

/// Reads and checks a training job's inputs: settings, model folder, pairs (tokenized, so that
/// a prompt too long for `max_length` is caught too), the run folder and the checkpoint to
/// resume from. Uses no device and writes nothing.
pub fn prepare(job: TrainJob) -> Result<Prepared, Error> {
    job.config.validate().map_err(Error::Input)?;
    if job.keep_checkpoints == 0 {
        return Err(Error::Input(
            "--keep-checkpoints: must be at least 1".into(),
        ));
    }
    let base = job.model.as_deref().map(ModelDir::read).transpose()?;
    let template = base
        .as_ref()
        .map_or_else(ChatTemplate::default_plain, |m| m.info.template.clone());
    let train = read_pairs(job.data.as_deref(), SHIPPED_TRAIN, &template)?;
    let eval = match (&job.eval_data, &job.data) {
        (Some(path), _) => Some(read_pairs(Some(path), SHIPPED_HELDOUT, &template)?),
        (None, None) => Some(read_pairs(None, SHIPPED_HELDOUT, &template)?),
        (None, Some(_)) => None,
    };
    let tokenizer = match &base {
        Some(model) => model.info.tokenizer.clone(),
        None => session::scratch_tokenizer(&train.1, &job.config)?,
    };
    let max_length = job.config.max_length;
    let train = inputs::tokenize(train, &tokenizer, base.as_ref(), max_length)?;
    let eval = eval
        .map(|read| inputs::tokenize(read, &tokenizer, base.as_ref(), max_length))
        .transpose()?;
    let resume = inputs::check_out(&job)?;
    Ok(Prepared {
        job,
        base,
        tokenizer,
        train,
        eval,
        resume,
    })
}

/// Runs SFT then DPO and writes the run folder. Returns the held-out evaluation, if any.
pub fn train(
    prepared: Prepared,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Option<Metrics>, Error> {
    let Prepared {
        job,
        base,
        tokenizer,
        train,
        eval,
        resume,
    } = prepared;
    let (config, out) = (&job.config, &job.out);
    config.precision().check(device).map_err(Error::Input)?;
    let autodiff = device.clone().autodiff();
    let mut model = match &base {
        Some(dir) => dir.load(&autodiff)?,
        None => session::fresh_model(tokenizer, config, &autodiff)?,
    };

    // Only now, with every input known good, does anything touch the run folder.
    let config_json = serde_json::to_vec_pretty(config).expect("config serializes");
    fs::create_dir_all(out).map_err(write_error(out))?;
    atomic::write_file(&out.join(CONFIG), &config_json).map_err(write_error(&out.join(CONFIG)))?;
    let checkpoints = Checkpoints::new(out, job.keep_checkpoints);
    let state = resume
        .as_ref()
        .map_or_else(TrainerState::default, |r| r.state.clone());
    truncate_metrics(out, state.step)?;
    if let Some(resume) = &resume {
        model.model = resume.model.load(&autodiff)?.model;
    }
    let pad = model.tokenizer.eos_id();
    let mut trainer = Trainer::new(
        model.model.clone(),
        train.tokenized,
        pad,
        config.clone(),
        autodiff.clone(),
        state,
    );
    let reference_dir = match resume {
        Some(resume) => {
            trainer
                .load_optimizer_bytes(resume.optimizer)
                .map_err(|e| Error::Input(format!("{}/{OPTIMIZER}: {e}", resume.path.display())))?;
            progress.message(&format!(
                "resuming {} at step {}",
                out.display(),
                resume.step
            ));
            resume.reference
        }
        None if job.resume => {
            progress.message(&format!(
                "{} has no checkpoint yet: starting",
                out.display()
            ));
            None
        }
        None => None,
    };

    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join(METRICS))
        .map_err(write_error(&out.join(METRICS)))?;
    progress.start(trainer.total_steps(), trainer.steps_done());
    let mut samples_before = None;
    while !trainer.is_done() {
        if trainer.needs_reference() {
            let reference = match &reference_dir {
                Some(dir) => dir.load(&autodiff)?.model,
                None => {
                    save_model(&out.join("sft"), trainer.policy(), &model, &[])?;
                    trainer.policy().clone()
                }
            };
            if let (Some(eval), true) = (&eval, job.sample_prompts > 0) {
                let before = sample_reward(
                    &reference,
                    &model,
                    &eval.pairs,
                    job.sample_prompts,
                    config.seed,
                    device,
                )?;
                samples_before = Some(before);
            }
            read_sync(trainer.start_dpo(reference)).map_err(Error::Runtime)?;
        }
        let metrics = trainer.step().read().map_err(Error::Runtime)?;
        check_finite(&metrics, &checkpoints)?;
        writeln!(log, "{}", metrics.to_json()).map_err(write_error(&out.join(METRICS)))?;
        progress.metrics(&metrics);
        let step = trainer.steps_done();
        if (job.save_every > 0 && step.is_multiple_of(job.save_every))
            || step == config.sft_steps
            || trainer.is_done()
        {
            // The metrics of the steps a checkpoint holds reach the disk no later than it.
            log.sync_data().map_err(write_error(&out.join(METRICS)))?;
            save_checkpoint(&checkpoints, &trainer, &model)?;
        }
    }

    let final_dir = out.join("final");
    save_model(&final_dir, trainer.policy(), &model, &[])?;
    if config.steps == 0 {
        // No DPO phase: the SFT model is the final one.
        save_model(&out.join("sft"), trainer.policy(), &model, &[])?;
    }
    let Some(eval) = eval else {
        return Ok(None);
    };
    let policy = hf::load_dir(&final_dir, device)?;
    let reference = hf::load_dir(&out.join("sft"), device)?;
    let (mut metrics, _) = read_sync(evaluate(
        &policy.model,
        &reference.model,
        &eval.tokenized,
        pad,
        &config.loss,
        config.batch,
        device,
    ))
    .map_err(Error::Runtime)?;
    metrics.step = trainer.steps_done();
    writeln!(log, "{}", metrics.to_json()).map_err(write_error(&out.join(METRICS)))?;
    progress.metrics(&metrics);
    if job.sample_prompts > 0 {
        let sample = |model: &LoadedModel| {
            sample_reward(
                &model.model,
                model,
                &eval.pairs,
                job.sample_prompts,
                config.seed,
                device,
            )
        };
        let before = match samples_before {
            Some(before) => before,
            None => sample(&reference)?,
        };
        let after = sample(&policy)?;
        progress.message(&format!(
            "generations on {} held-out prompts, mean ground-truth reward: sft {:.3} -> final {:.3}",
            job.sample_prompts.min(eval.pairs.len()),
            before,
            after
        ));
    }
    Ok(Some(metrics))
}

/// The NaN/inf guard: a step whose loss or gradient norm is not finite has already updated
/// the weights with garbage, so it is neither logged nor saved, and the run stops.
fn check_finite(metrics: &Metrics, checkpoints: &Checkpoints) -> Result<(), Error> {
    let grad_norm = metrics.grad_norm.unwrap_or(0.0);
    if metrics.loss.is_finite() && grad_norm.is_finite() {
        return Ok(());
    }
    let last = match checkpoints.latest() {
        Ok(Some((step, path))) => format!("{} (step {step})", path.display()),
        _ => "none was written".into(),
    };
    Err(Error::Runtime(format!(
        "at step {} ({:?}) the loss became {} and the gradient norm {}; training stopped \
         without saving this step. The last good checkpoint: {last}. Try a lower learning rate.",
        metrics.step, metrics.phase, metrics.loss, grad_norm
    )))
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

fn save_checkpoint(
    checkpoints: &Checkpoints,
    trainer: &Trainer,
    model: &LoadedModel,
) -> Result<(), Error> {
    let optimizer = trainer.optimizer_bytes().map_err(Error::Runtime)?;
    let state = trainer.state();
    let state = serde_json::to_vec(&state).expect("state serializes");
    let dir = checkpoints.path(trainer.steps_done());
    let extra: [(&str, &[u8]); 2] = [(OPTIMIZER, &optimizer), (STATE, &state)];
    save_model(&dir, trainer.policy(), model, &extra)?;
    checkpoints.prune().map_err(write_error(&dir))
}

/// Drops the metrics lines written after the checkpoint a run resumes from: steps past it,
/// and the final evaluation, which follows the last checkpoint.
fn truncate_metrics(out: &Path, step: usize) -> Result<(), Error> {
    let path = out.join(METRICS);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<Metrics>(line)
                .is_ok_and(|m| m.step < step || (m.step == step && m.phase != Phase::Eval))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    atomic::write_file(&path, kept.as_bytes()).map_err(write_error(&path))
}

/// Writing the run folder failed: the machine's problem (disk full, permissions).
fn write_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("writing {} failed: {e}", path.display()))
}
