//! `dpo eval` and `dpo generate`: a model folder scored on a pairs file, or sampled.

use std::path::Path;

use burn::tensor::{Device, read_sync};

use crate::Error;
use crate::data;
use crate::dpo::loss::LossConfig;
use crate::dpo::{Metrics, Reference};
use crate::generate::{Generation, SamplingConfig, sample_and_score};
use crate::io::Saved;
use crate::io::hf::{self, ModelFiles};
use crate::io::peft::{self, Adapter};
use crate::model::{BasePrecision, CausalLm, ModelConfig};
use crate::train::PairsFile;
use crate::train::eval::evaluate;
use crate::train::setup::attach;

use super::folder::{self, read_model};

/// A model folder, with a PEFT adapter on it or not, read and checked.
struct Stack {
    model: (String, ModelFiles),
    adapter: Option<Adapter>,
}

impl Stack {
    fn read(
        model: &Path,
        adapter: Option<&Path>,
    ) -> Result<(crate::model::ModelInfo, Stack), Error> {
        let (info, model) = read_model(model)?;
        let adapter = adapter
            .map(|dir| read_adapter(dir, &info.config))
            .transpose()?;
        Ok((info, Stack { model, adapter }))
    }

    /// The base model, and the model with the adapter (the same weights, shared).
    fn load(
        &self,
        device: &Device,
    ) -> Result<(crate::model::ModelInfo, CausalLm, CausalLm), Error> {
        let (info, base) = hf::load(&self.model.1, &self.model.0, device)?;
        let model = match &self.adapter {
            Some(adapter) => attach(base.clone(), &mut adapter.clone(), BasePrecision::F32)?,
            None => base.clone(),
        };
        Ok((info, base, model))
    }
}

/// An adapter folder checked against a model of `config`'s shape.
fn read_adapter(dir: &Path, config: &ModelConfig) -> Result<Adapter, Error> {
    let (name, files) = folder::read_adapter(dir)?;
    peft::read(&files, &name, config)
}

/// `dpo eval`'s reference: another model folder, or another adapter on the policy's base.
enum Other {
    Model((String, ModelFiles)),
    Adapter(Adapter),
}

/// `dpo eval`'s inputs, read and checked: the metrics of a model folder (with an adapter or
/// not) against a reference over a pairs file. The default reference is the model folder
/// itself: without the adapter, as PEFT's `disable_adapter` and TRL's DPO do.
pub struct Eval {
    policy: Stack,
    reference: Option<Other>,
    pairs: Vec<data::TokenizedPair>,
    loss: LossConfig,
}

impl Eval {
    /// Reads and checks everything, without a device. `max_length` defaults to the model's
    /// positions.
    pub fn prepare(
        model: &Path,
        adapter: Option<&Path>,
        reference: Option<&Path>,
        data: &Path,
        loss: LossConfig,
        max_length: Option<usize>,
    ) -> Result<Eval, Error> {
        loss.validate().map_err(Error::Input)?;
        let (info, policy) = Stack::read(model, adapter)?;
        let reference = match reference {
            Some(dir) if dir.join(peft::ADAPTER_CONFIG).exists() => {
                Some(Other::Adapter(read_adapter(dir, &info.config)?))
            }
            Some(dir) => Some(Other::Model(read_model(dir)?.1)),
            None => None,
        };
        let file = PairsFile::read(data)?;
        let pairs = data::parse_pairs(&file.name, &file.bytes, &info.template)?;
        let max_length = max_length.unwrap_or(info.config.max_positions());
        hf::check_positions(&info, &policy.model.0, max_length)?;
        let pairs = data::tokenize_pairs(&file.name, &info.tokenizer, &pairs, max_length)?;
        Ok(Eval {
            policy,
            reference,
            pairs,
            loss,
        })
    }

    pub fn run(&self, device: &Device) -> Result<Metrics, Error> {
        let (info, base, policy) = self.policy.load(device)?;
        let reference = match &self.reference {
            Some(Other::Model((name, files))) => hf::load(files, name, device)?.1,
            Some(Other::Adapter(adapter)) => {
                attach(base, &mut adapter.clone(), BasePrecision::F32)?
            }
            None => base,
        };
        let (metrics, _) = read_sync(evaluate(
            &policy,
            &Reference::Model(reference),
            &self.pairs,
            info.pad_id(),
            &self.loss,
            16,
            device,
        ))
        .map_err(Error::Runtime)?;
        Ok(metrics)
    }
}

/// `dpo generate`'s inputs: a model folder (with an adapter or not) and the prompts to
/// continue.
pub struct Generate {
    model: Stack,
    prompts: Vec<String>,
}

impl Generate {
    /// The prompt given, or every distinct prompt of a pairs file. Uses no device.
    pub fn prepare(
        model: &Path,
        adapter: Option<&Path>,
        prompt: Option<&str>,
        data: Option<&Path>,
    ) -> Result<Self, Error> {
        let (info, model) = Stack::read(model, adapter)?;
        let prompts = match (prompt, data) {
            (Some(prompt), _) => vec![prompt.to_string()],
            (None, Some(path)) => {
                let file = PairsFile::read(path)?;
                let pairs = data::parse_pairs(&file.name, &file.bytes, &info.template)?;
                data::distinct_prompts(&pairs)
                    .into_iter()
                    .map(String::from)
                    .collect()
            }
            (None, None) => return Err(Error::Input("give --prompt or --data".into())),
        };
        Ok(Generate { model, prompts })
    }

    /// One sample per prompt, prompt `i` with seed `sampling.seed + i`.
    pub fn run(
        &self,
        sampling: &SamplingConfig,
        device: &Device,
    ) -> Result<Vec<Generation>, Error> {
        let (info, _, model) = self.model.load(device)?;
        read_sync(sample_and_score(
            &model,
            &info.tokenizer,
            &self.prompts,
            1,
            sampling,
            device,
        ))
        .map_err(Error::Runtime)
    }
}

/// `dpo merge`: a model folder with an adapter merged into its weights, written to `out` as a
/// plain Hugging Face folder (tokenizer files as the model's).
pub fn merge(model: &Path, adapter: &Path, out: &Path, device: &Device) -> Result<(), Error> {
    let (_, stack) = Stack::read(model, Some(adapter))?;
    if out.join(hf::CONFIG).exists() {
        return Err(Error::Input(format!(
            "--out {}: already holds a model; choose another folder",
            out.display()
        )));
    }
    let (info, _, merged) = stack.load(device)?;
    let files = read_sync(hf::export(&merged, &info))?;
    Saved::Model(files).write_dir(out)
}
