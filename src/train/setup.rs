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

use std::borrow::Cow;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::run::{Adapters, HeldOut, Run};
use super::{Trainer, TrainerState};
use crate::Error;
use crate::config::TrainConfig;
use crate::data::{self, PreferencePair, TokenizedPair};
use crate::io::hf::{self, ModelFiles};
use crate::io::peft::{self, Adapter, AdapterFiles};
use crate::io::{self, Files, Saved};
use crate::model::lora::{self, FactorSource, FreshFactors};
use crate::model::{BasePrecision, CausalLm, ModelConfig, ModelInfo};

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
    /// A PEFT adapter for the model to continue training (its folder name and files): its
    /// settings replace `config.lora`'s rank, alpha and targets, and DPO's reference is the
    /// model with the adapter as loaded.
    pub adapter: Option<(String, AdapterFiles)>,
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
    adapter: Option<Adapter>,
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

/// A checkpoint's files beside the policy's folder: the [`TrainerState`] as JSON, and the
/// optimizer's moments.
const STATE: &str = "trainer_state.json";
const OPTIMIZER: &str = "optimizer.bpk";

/// A checkpoint to continue from, as files, so that any front end can keep it where it likes:
/// [`Run::checkpoint`] makes one, [`Resume::files`] are its files and [`Resume::from_files`]
/// reads them back.
pub struct Resume {
    pub state: TrainerState,
    /// The optimizer's moments (burnpack).
    pub optimizer: Vec<u8>,
    /// The policy at `state.step` (a model, or adapters over the run's base), and where it
    /// came from (for messages).
    pub policy: (String, Saved),
    /// DPO's reference once SFT is over, as the run saved it when DPO started (`None`: not
    /// saved yet). In an adapter run on a fresh model it is the adapters' base.
    pub reference: Option<(String, Saved)>,
}

impl Resume {
    /// A checkpoint folder's files: the policy's, [`OPTIMIZER`] and [`STATE`].
    pub fn files(&self) -> Vec<(&'static str, Cow<'_, [u8]>)> {
        let state = serde_json::to_vec(&self.state).expect("state serializes");
        let policy = self.policy.1.files().into_iter();
        let mut files: Vec<_> = policy
            .map(|(name, bytes)| (name, Cow::Borrowed(bytes)))
            .collect();
        files.push((OPTIMIZER, Cow::Borrowed(&self.optimizer)));
        files.push((STATE, Cow::Owned(state)));
        files
    }

    /// Reads back a checkpoint folder's `files` (`name`, the folder, starts every message about
    /// them), with the `reference` the run saved when DPO started, if any.
    pub fn from_files(
        name: &str,
        mut get: impl Files,
        reference: Option<(String, Saved)>,
    ) -> Result<Resume, Error> {
        let mut need = |file: &str| get(file)?.ok_or_else(|| io::missing(name, file));
        let state = serde_json::from_slice(&need(STATE)?)
            .map_err(|e| Error::Input(format!("{name}/{STATE}: {e}")))?;
        let optimizer = need(OPTIMIZER)?;
        Ok(Resume {
            state,
            optimizer,
            policy: (name.to_string(), Saved::from_files(name, get)?),
            reference,
        })
    }
}

/// Reads and checks a run's inputs. Uses no device.
pub fn prepare(spec: RunSpec) -> Result<Prepared, Error> {
    let RunSpec {
        mut config,
        model,
        train,
        heldout,
        adapter,
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
    let adapter = match adapter {
        Some((name, files)) => {
            let adapter = peft::read(&files, &name, &info.config)?;
            let dropout = config
                .lora
                .as_ref()
                .map_or(adapter.lora.dropout, |l| l.dropout);
            config.lora = Some(lora::LoraConfig {
                dropout,
                ..adapter.lora.clone()
            });
            Some(adapter)
        }
        None => None,
    };
    if let Some(lora) = &config.lora {
        lora.modules(&info.config).map_err(Error::Input)?;
    }
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
        adapter,
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
            adapter: None,
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
    ///
    /// Adapters (`config.lora`) go on a pretrained model (a folder, or `Start::Weights`) here,
    /// so that SFT trains them too; on a fresh model SFT trains every weight and the adapters
    /// are attached when DPO starts ([`Run`]'s freeze).
    pub fn start(mut self, device: &Device, start: Start) -> Result<Run, Error> {
        self.config.precision.check(device).map_err(Error::Input)?;
        let base_precision = self.config.base_precision;
        base_precision.check(device).map_err(Error::Input)?;
        let autodiff = device.clone().autodiff();
        let pretrained =
            matches!(start, Start::Weights(_)) || matches!(self.source, ModelSource::Folder { .. });
        let fresh_adapters = self.config.lora.is_some() && self.adapter.is_none();
        let base_name = match &self.source {
            ModelSource::Folder { name, .. } => name.clone(),
            // A fresh model's adapters sit on its SFT model (a run folder's `sft/`).
            ModelSource::Preset => "sft".into(),
        };
        let (policy, reference, resume) = match start {
            Start::Fresh => (self.source_model(&autodiff)?, None, None),
            Start::Weights(model) => (model.fork(&autodiff), None, None),
            Start::Resume(mut resume) => {
                let (policy, reference) = self.resumed(&mut resume, &autodiff)?;
                (policy, reference, Some(resume))
            }
        };
        let policy = match (&self.config.lora, policy.has_adapters(), pretrained) {
            (Some(_), false, true) => match self.adapter.take() {
                Some(mut adapter) => attach(policy, &mut adapter, base_precision)?,
                None => attach_fresh(policy, &self.config, &self.info.config)?,
            },
            _ => policy,
        };
        let mut trainer = Trainer::new(
            policy,
            self.train,
            self.info.pad_id(),
            self.config,
            autodiff.clone(),
        );
        if let Some(resume) = resume {
            let name = &resume.policy.0;
            trainer
                .restore(&resume.state, resume.optimizer)
                .map_err(|e| Error::Input(format!("{name}: its optimizer state: {e}")))?;
        }
        Ok(Run::new(
            trainer,
            self.info,
            self.heldout,
            self.report,
            device.clone(),
            reference,
            Adapters {
                base: base_name,
                fresh: fresh_adapters,
            },
        ))
    }

    /// The model the source gives: a folder's weights, or random ones drawn from the seed.
    fn source_model(&self, device: &Device) -> Result<CausalLm, Error> {
        match &self.source {
            ModelSource::Preset => Ok(self.info.config.random_weights(self.config.seed, device)),
            ModelSource::Folder { name, files } => load(name, files, device),
        }
    }

    /// A checkpoint's policy and saved reference. Adapters go on one base, loaded once: the
    /// saved reference when that is a whole model (the SFT model of a fresh-model run), else
    /// the source model.
    fn resumed(
        &self,
        resume: &mut Resume,
        device: &Device,
    ) -> Result<(CausalLm, Option<CausalLm>), Error> {
        let mut base = None;
        let mut reference = None;
        // Cast once, before the policy's and the reference's adapters share it.
        let frozen = |model| self.config.base_precision.cast_base(model);
        if let Some((name, saved)) = resume.reference.take() {
            reference = Some(match saved {
                Saved::Model(files) => {
                    let model = frozen(load(&name, &files, device)?);
                    base = Some(model.clone());
                    model
                }
                Saved::Adapter(files) => {
                    let model = frozen(self.source_model(device)?);
                    base = Some(model.clone());
                    self.load_adapter(model, &name, &files)?
                }
            });
        }
        let (name, saved) = &resume.policy;
        let policy = match saved {
            Saved::Model(files) => load(name, files, device)?,
            Saved::Adapter(files) => {
                let base = match base {
                    Some(base) => base,
                    None => self.source_model(device)?,
                };
                self.load_adapter(base, name, files)?
            }
        };
        Ok((policy, reference))
    }

    fn load_adapter(
        &self,
        base: CausalLm,
        name: &str,
        files: &AdapterFiles,
    ) -> Result<CausalLm, Error> {
        let mut adapter = peft::read(files, name, &self.info.config)?;
        attach(base, &mut adapter, self.config.base_precision)
    }
}

fn load(name: &str, files: &ModelFiles, device: &Device) -> Result<CausalLm, Error> {
    hf::load(files, name, device).map(|(_, model)| model)
}

/// `model` with fresh adapters of `config.lora`, drawn from `config.seed`.
pub(crate) fn attach_fresh(
    model: CausalLm,
    config: &TrainConfig,
    shape: &ModelConfig,
) -> Result<CausalLm, Error> {
    let lora = config.lora.as_ref().expect("an adapter run");
    let mut fresh = FreshFactors::new(lora, shape, config.seed).map_err(Error::Input)?;
    attach(model, &mut fresh, config.base_precision)
}

/// `model` with adapters from `source`, frozen but for them, its base held in `base`.
pub(crate) fn attach(
    model: CausalLm,
    source: &mut dyn FactorSource,
    base: BasePrecision,
) -> Result<CausalLm, Error> {
    lora::attach(base.cast_base(model), source).map_err(Error::Input)
}
