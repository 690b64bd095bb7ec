//! The command line's jobs as library calls (native): a training run kept in a run folder,
//! `dpo eval` and `dpo generate`. The binary only parses flags and shows progress.
//!
//! Each job is prepared first: every input is read and checked without a device and without
//! writing anything, so that bad input ends the program before a GPU is probed or a run
//! folder created. Then the caller chooses the device and runs the job.
//!
//! A training run is the library's one driver ([`crate::train::Run`]); what this module adds
//! is the run folder: `metrics.jsonl`, `charts.svg` (its charts, drawn at the end),
//! `train_config.json`, `run_inputs.json` (data and model paths, for `dpo handoff`), `sft/`
//! (the SFT model, DPO's reference), `final/` and `checkpoints/step-…/` (model, optimizer
//! moments, trainer state; the newest few kept), all written atomically; `--resume` continues
//! from the newest checkpoint.

mod eval;
mod folder;
pub mod handoff;
mod settings;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::read_sync;

use crate::Error;
use crate::charts::{self, METRICS, RunMetrics};
use crate::config::TrainConfig;
use crate::device::Selected;
use crate::dpo::{Metrics, Phase};
use crate::generate::mean_reward;
use crate::io::checkpoint::Checkpoints;
use crate::io::{Saved, atomic, hf};
use crate::model::BasePrecision;
use crate::train::{self, Event, ModelSource, PairsFile, Report, Run, RunSpec, When};
use folder::Checkpoint;

pub use eval::{Eval, Generate, merge};
pub use folder::read_model;
pub use settings::read_config;

/// Everything `dpo train` needs beyond the training settings.
pub struct TrainJob {
    pub config: TrainConfig,
    /// Pairs to train on; `None`: the shipped task.
    pub data: Option<PathBuf>,
    /// Held-out pairs; `None`: the shipped held-out file when training on the shipped task,
    /// else the last tenth of the training pairs (the library's held-out rule).
    pub eval_data: Option<PathBuf>,
    /// A Hugging Face model folder to start from; `None`: a fresh model of `config.preset`.
    pub model: Option<PathBuf>,
    /// A PEFT adapter folder for `model` to continue training.
    pub adapter: Option<PathBuf>,
    /// In an adapter run, also write `final-merged/`: the adapters merged into the weights.
    pub merge: bool,
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out`; start there when it holds none yet.
    pub resume: bool,
    /// Write a checkpoint every this many steps (0: only at the end of each phase).
    pub save_every: usize,
    /// How many of the newest checkpoints to keep (at least 1).
    pub keep_checkpoints: usize,
    /// Generations before and after DPO, and the held-out evaluation.
    pub report: Report,
}

/// Hears about a run as it goes.
pub trait Progress {
    fn start(&mut self, total_steps: usize, done: usize);
    fn metrics(&mut self, metrics: &Metrics);
    fn message(&mut self, line: &str);
}

const CONFIG: &str = "train_config.json";

/// A training job with every input read and checked.
pub struct PreparedJob {
    job: TrainJob,
    run: train::Prepared,
    checkpoint: Option<Checkpoint>,
}

/// Reads and checks a training job's inputs: settings, model folder, pairs (tokenized, so that
/// a prompt too long for `max_length` is caught too), the run folder and the checkpoint to
/// resume from. Uses no device and writes nothing.
pub fn prepare(job: TrainJob) -> Result<PreparedJob, Error> {
    if job.keep_checkpoints == 0 {
        return Err(Error::Input(
            "--keep-checkpoints: must be at least 1".into(),
        ));
    }
    let model = match &job.model {
        Some(dir) => {
            let files = hf::read_dir(dir)?;
            let name = dir.display().to_string();
            ModelSource::Folder { name, files }
        }
        None => ModelSource::Preset,
    };
    let train = match &job.data {
        Some(path) => PairsFile::read(path)?,
        None => PairsFile::shipped_train(),
    };
    let heldout = match (&job.eval_data, &job.data) {
        (Some(path), _) => Some(PairsFile::read(path)?),
        (None, None) => Some(PairsFile::shipped_heldout()),
        (None, Some(_)) => None,
    };
    let adapter = job
        .adapter
        .as_deref()
        .map(folder::read_adapter)
        .transpose()?;
    let run = train::prepare(RunSpec {
        config: job.config.clone(),
        model,
        train,
        heldout,
        adapter,
        report: job.report.clone(),
    })?;
    let checkpoint = folder::check_out(&job, run.config())?;
    Ok(PreparedJob {
        job,
        run,
        checkpoint,
    })
}

/// Runs SFT then DPO and writes the run folder. Returns the held-out evaluation, if any.
pub fn train(
    prepared: PreparedJob,
    on: &Selected,
    progress: &mut dyn Progress,
) -> Result<Option<Metrics>, Error> {
    let device = &on.device;
    let PreparedJob {
        job,
        run,
        checkpoint,
    } = prepared;
    let out = &job.out;
    let (start, resumed) = match checkpoint {
        Some(c) => (train::Start::Resume(c.resume), Some(c.step)),
        None => (train::Start::Fresh, None),
    };
    let mut run = run.start(device, start)?;

    // Only now, with every input known good, does anything touch the run folder.
    let config_json = serde_json::to_vec_pretty(run.config()).expect("config serializes");
    fs::create_dir_all(out).map_err(write_error(out))?;
    atomic::write_file(&out.join(CONFIG), &config_json).map_err(write_error(&out.join(CONFIG)))?;
    // What else the run read, for `dpo handoff` (train_config.json holds only settings).
    let inputs = handoff::RunInputs::of(&job, &on.backend);
    let inputs_json = serde_json::to_vec_pretty(&inputs).expect("paths serialize");
    let inputs_path = out.join(handoff::INPUTS);
    atomic::write_file(&inputs_path, &inputs_json).map_err(write_error(&inputs_path))?;
    let checkpoints = Checkpoints::new(out, job.keep_checkpoints);
    truncate_metrics(out, run.steps_done())?;
    match resumed {
        Some(step) => progress.message(&format!("resuming {} at step {step}", out.display())),
        None if job.resume => progress.message(&format!(
            "{} has no checkpoint yet: starting",
            out.display()
        )),
        None => {}
    }
    progress.message(&format!("held-out pairs: {}", run.heldout_source()));
    if let Some(lora) = &run.config().lora {
        let (trained, all) = run.param_counts();
        let what = match trained < all {
            true => format!("{trained} of {all} parameters"),
            false => format!(
                "every weight in SFT, then adapters on the SFT model ({} parameters)",
                lora.param_count(&run.info().config)
            ),
        };
        progress.message(&format!(
            "LoRA r {} alpha {} on {}: training {what}",
            lora.r,
            lora.alpha,
            lora.targets.join(", ")
        ));
    }
    let base = run.config().base_precision;
    if base != BasePrecision::F32 {
        progress.message(&format!(
            "frozen linear weights held in {}; products in {}",
            base.name(),
            run.config().precision.name()
        ));
    }
    if run.config().gradient_checkpointing {
        progress
            .message("gradient checkpointing: each layer runs forward again in the backward pass");
    }

    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join(METRICS))
        .map_err(write_error(&out.join(METRICS)))?;
    let mut write_metrics = |metrics: &Metrics, sync: bool| -> Result<(), Error> {
        writeln!(log, "{}", metrics.to_json()).map_err(write_error(&out.join(METRICS)))?;
        // The metrics of the steps a checkpoint holds reach the disk no later than it.
        if sync {
            log.sync_data().map_err(write_error(&out.join(METRICS)))?;
        }
        Ok(())
    };
    progress.start(run.total_steps(), run.steps_done());
    let mut rewards = [None, None];
    let mut evaluation = None;
    loop {
        let event = read_sync(run.next()).map_err(|e| with_last_checkpoint(e, &checkpoints))?;
        match event {
            None => break,
            Some(Event::Step { metrics }) => {
                let step = run.steps_done();
                let checkpoint = (job.save_every > 0 && step.is_multiple_of(job.save_every))
                    || step == run.config().sft_steps
                    || step == run.total_steps();
                write_metrics(&metrics, checkpoint)?;
                progress.metrics(&metrics);
                if checkpoint {
                    save_checkpoint(&checkpoints, &run)?;
                }
            }
            Some(Event::Frozen { from_policy }) => {
                if from_policy {
                    save_model(&out.join("sft"), &run)?;
                }
            }
            Some(Event::Trained) => {
                save_model(&out.join("final"), &run)?;
                if job.merge && run.policy().has_adapters() {
                    let merged = read_sync(run.export_merged())?;
                    Saved::Model(merged).write_dir(&out.join("final-merged"))?;
                }
                if run.config().steps == 0 {
                    // No DPO phase: the SFT model is the final one.
                    save_model(&out.join("sft"), &run)?;
                }
            }
            Some(Event::Generations { when, items }) => {
                rewards[(when == When::After) as usize] = Some((items.len(), mean_reward(&items)));
            }
            Some(Event::Evaluation { metrics, .. }) => {
                write_metrics(&metrics, true)?;
                progress.metrics(&metrics);
                evaluation = Some(metrics);
            }
        }
    }
    // The run's charts as a picture, from the whole log (a resumed run's earlier steps too).
    // The run itself is done and saved: a picture that cannot be drawn is said, not an error.
    let charts_path = out.join(charts::FILE);
    let drawn = RunMetrics::read(out)
        .and_then(|run| charts::render(&[run]))
        .and_then(|svg| {
            atomic::write_file(&charts_path, svg.as_bytes()).map_err(write_error(&charts_path))
        });
    if let Err(e) = drawn {
        progress.message(&format!("{} not written: {e}", charts_path.display()));
    }
    if let [Some((count, before)), Some((_, after))] = rewards {
        progress.message(&format!(
            "generations on {count} held-out prompts, mean ground-truth reward: sft {before:.3} -> \
             final {after:.3}"
        ));
    }
    Ok(evaluation)
}

/// A diverged run's message names the checkpoint it can be resumed from.
fn with_last_checkpoint(error: Error, checkpoints: &Checkpoints) -> Error {
    let Error::Diverged(message) = error else {
        return error;
    };
    let last = match checkpoints.latest() {
        Ok(Some((step, path))) => format!("{} (step {step})", path.display()),
        _ => "none was written".into(),
    };
    Error::Diverged(format!("{message} The last good checkpoint: {last}."))
}

fn save_model(dir: &Path, run: &Run) -> Result<(), Error> {
    read_sync(run.export())?.write_dir(dir)
}

fn save_checkpoint(checkpoints: &Checkpoints, run: &Run) -> Result<(), Error> {
    let checkpoint = read_sync(run.checkpoint())?;
    let dir = checkpoints.path(checkpoint.state.step);
    let files = checkpoint.files();
    let files: Vec<_> = files
        .iter()
        .map(|(name, bytes)| (*name, &**bytes))
        .collect();
    atomic::write_dir(&dir, &files).map_err(write_error(&dir))?;
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
