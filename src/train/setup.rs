//! From what a front end has (settings, a model source, pair files) to a ready [`Run`], by the
//! same rules everywhere: the command line, the browser, the experiments and the tests.
//!
//! Setting up happens in two halves. [`prepare`] reads and checks every input without a device
//! and without writing anything (settings, model files, pairs tokenized for the model), so bad
//! input is reported before a GPU is probed or a run folder made. [`Prepared::start`] then
//! puts the model on a device.
//!
//! The held-out rule: the pairs of the held-out file when there is one, else the last tenth of
//! the training pairs (none when there are fewer than ten), which are then not trained on.

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::run::{HeldOut, Run};
use super::{Trainer, TrainerState};
use crate::Error;
use crate::config::TrainConfig;
use crate::data::{self, PreferencePair, TokenizedPair};
use crate::io::hf::{self, ModelFiles};
use crate::model::{CausalLm, ModelInfo};

/// A pairs file (JSONL): its name, for messages, and its bytes.
#[derive(Clone, Debug)]
pub struct PairsFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl PairsFile {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> PairsFile {
        PairsFile {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// Reads a file; a missing or unreadable one is reported as that file's error.
    #[cfg(not(target_family = "wasm"))]
    pub fn read(path: &std::path::Path) -> Result<PairsFile, Error> {
        Ok(PairsFile::new(
            path.display().to_string(),
            data::read_file(path)?,
        ))
    }

    /// The shipped task's training pairs (`examples/data/train.jsonl`, embedded).
    #[cfg(not(target_family = "wasm"))]
    pub fn shipped_train() -> PairsFile {
        let (name, text) = crate::task::SHIPPED_TRAIN;
        PairsFile::new(name, text)
    }

    /// The shipped task's held-out pairs.
    #[cfg(not(target_family = "wasm"))]
    pub fn shipped_heldout() -> PairsFile {
        let (name, text) = crate::task::SHIPPED_HELDOUT;
        PairsFile::new(name, text)
    }
}

/// The model a run starts from.
#[derive(Clone)]
pub enum ModelSource {
    /// A fresh GPT-2 of `config.preset`, with a byte-level BPE tokenizer trained on the
    /// training pairs and weights drawn from `config.seed`.
    Preset,
    /// A Hugging Face folder's files; `name` (the folder) starts every message about them.
    Folder { name: String, files: ModelFiles },
}

/// What a run reports besides each step's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Report {
    /// Distinct held-out prompts sampled before and after DPO (0: none).
    pub prompts: usize,
    pub max_new_tokens: usize,
    /// Evaluate the first this many held-out pairs at the end (`None`: all; 0: no evaluation).
    pub eval_pairs: Option<usize>,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            prompts: 4,
            max_new_tokens: 32,
            eval_pairs: None,
        }
    }
}

/// Everything a run is made of, as a front end hands it over.
pub struct RunSpec {
    pub config: TrainConfig,
    pub model: ModelSource,
    pub train: PairsFile,
    /// `None`: hold out the last tenth of the training pairs.
    pub heldout: Option<PairsFile>,
    pub report: Report,
}

/// A run with every input read and checked, not yet on a device.
#[derive(Clone)]
pub struct Prepared {
    config: TrainConfig,
    info: ModelInfo,
    source: ModelSource,
    train: Vec<TokenizedPair>,
    heldout: HeldOut,
    report: Report,
}

/// Where a run's policy starts.
pub enum Start {
    /// From the model source: a folder's weights, or random ones drawn from `config.seed`.
    Fresh,
    /// From these weights (another run's policy, say), on any device.
    Weights(CausalLm),
    /// From a checkpoint.
    Resume(Resume),
}

/// A checkpoint to continue from, as files, so that any front end can keep it where it likes.
pub struct Resume {
    pub state: TrainerState,
    /// The optimizer's moments, from [`Run::optimizer_bytes`].
    pub optimizer: Vec<u8>,
    /// The policy at `state.step`, and where it came from (for messages).
    pub policy: (String, ModelFiles),
    /// DPO's reference once SFT is over: the SFT model (`None`: not saved yet).
    pub reference: Option<(String, ModelFiles)>,
}

/// Reads and checks a run's inputs. Uses no device.
pub fn prepare(spec: RunSpec) -> Result<Prepared, Error> {
    let RunSpec {
        config,
        model,
        train,
        heldout,
        report,
    } = spec;
    config.validate().map_err(Error::Input)?;
    let folder_info = match &model {
        ModelSource::Preset => None,
        ModelSource::Folder { name, files } => {
            let info = hf::check(files, name)?;
            hf::check_positions(&info, name, config.max_length)?;
            Some(info)
        }
    };
    let template = folder_info
        .as_ref()
        .map_or_else(data::ChatTemplate::default_plain, |i| i.template.clone());
    let parse = |file: &PairsFile| data::parse_pairs(&file.name, &file.bytes, &template);
    let mut train_pairs = parse(&train)?;
    let (heldout_pairs, heldout_name) = match &heldout {
        Some(file) => (parse(file)?, file.name.clone()),
        None => {
            let keep = train_pairs.len() - train_pairs.len() / 10;
            (train_pairs.split_off(keep), train.name.clone())
        }
    };
    let info = match folder_info {
        Some(info) => info,
        None => ModelInfo::fresh(
            config.preset,
            scratch_tokenizer(&train_pairs, &config)?,
            config.max_length,
        ),
    };
    let tokenize = |name: &str, pairs: &[PreferencePair]| {
        data::tokenize_pairs(name, &info.tokenizer, pairs, config.max_length)
    };
    let train = tokenize(&train.name, &train_pairs)?;
    let mut evaluated = tokenize(&heldout_name, &heldout_pairs)?;
    evaluated.truncate(report.eval_pairs.unwrap_or(usize::MAX));
    let heldout = HeldOut {
        source: match (heldout, heldout_pairs.len()) {
            (Some(_), _) => heldout_name,
            (None, 0) => {
                format!("none ({heldout_name} has fewer than 10 pairs to hold a tenth of)")
            }
            (None, n) => format!(
                "the last {n} of {heldout_name}'s {} pairs, not trained on",
                train.len() + n
            ),
        },
        prompts: data::distinct_prompts(&heldout_pairs)
            .into_iter()
            .map(String::from)
            .collect(),
        pairs: evaluated,
    };
    Ok(Prepared {
        config,
        info,
        source: model,
        train,
        heldout,
        report,
    })
}

/// The tokenizer of a fresh model: a byte-level BPE trained on the training pairs.
fn scratch_tokenizer(
    pairs: &[PreferencePair],
    config: &TrainConfig,
) -> Result<data::TextTokenizer, Error> {
    let texts = pairs
        .iter()
        .flat_map(|p| [p.prompt.as_str(), p.chosen.as_str(), p.rejected.as_str()]);
    data::train_bpe(texts, config.preset.target_vocab())
        .and_then(|t| data::TextTokenizer::from_tokenizer(t, None))
        .map_err(|e| Error::Runtime(format!("training the tokenizer failed: {e}")))
}

impl Prepared {
    /// A run on pairs that are already token ids, for a model of `info`'s shape with random
    /// weights (the benchmark's synthetic workloads; the source is `Preset` in that its
    /// weights are drawn from `config.seed`). Nothing is held out or sampled.
    pub fn synthetic(config: TrainConfig, info: ModelInfo, pairs: Vec<TokenizedPair>) -> Prepared {
        Prepared {
            config,
            info,
            source: ModelSource::Preset,
            train: pairs,
            heldout: HeldOut::default(),
            report: Report {
                prompts: 0,
                eval_pairs: Some(0),
                ..Report::default()
            },
        }
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The same inputs with other settings (the experiments' per-point runs).
    pub fn with_config(self, config: TrainConfig) -> Result<Prepared, Error> {
        config.validate().map_err(Error::Input)?;
        Ok(Prepared { config, ..self })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Where the held-out pairs come from, for messages.
    pub fn heldout_source(&self) -> &str {
        &self.heldout.source
    }

    /// Puts the model on `device` (a plain device: training uses its autodiff twin).
    pub fn start(self, device: &Device, start: Start) -> Result<Run, Error> {
        self.config.precision.check(device).map_err(Error::Input)?;
        let autodiff = device.clone().autodiff();
        let load = |(name, files): (&str, &ModelFiles)| {
            hf::load(files, name, &autodiff).map(|(_, model)| model)
        };
        let (policy, resume) = match start {
            Start::Fresh => match &self.source {
                ModelSource::Preset => (
                    self.info.config.random_weights(self.config.seed, &autodiff),
                    None,
                ),
                ModelSource::Folder { name, files } => (load((name, files))?, None),
            },
            Start::Weights(model) => (model.fork(&autodiff), None),
            Start::Resume(resume) => (load((&resume.policy.0, &resume.policy.1))?, Some(resume)),
        };
        let mut trainer = Trainer::new(
            policy,
            self.train,
            self.info.pad_id(),
            self.config,
            autodiff.clone(),
        );
        let mut reference = None;
        if let Some(resume) = resume {
            let name = &resume.policy.0;
            trainer
                .restore(&resume.state, resume.optimizer)
                .map_err(|e| Error::Input(format!("{name}: its optimizer state: {e}")))?;
            reference = match &resume.reference {
                Some((name, files)) => Some(load((name, files))?),
                None => None,
            };
        }
        Ok(Run::new(
            trainer,
            self.info,
            self.heldout,
            self.report,
            device.clone(),
            reference,
        ))
    }
}
