//! `dpo eval` and `dpo generate`: a model folder scored on a pairs file, or sampled.

use std::path::Path;

use burn::tensor::{Device, read_sync};

use crate::Error;
use crate::data;
use crate::dpo::loss::LossConfig;
use crate::dpo::{Metrics, Reference};
use crate::generate::{Generation, SamplingConfig, sample_and_score};
use crate::io::hf::{self, ModelFiles};
use crate::train::PairsFile;
use crate::train::eval::evaluate;

use super::folder::read_model;

/// `dpo eval`'s inputs, read and checked: the metrics of a model folder against a reference
/// folder (by default the model itself) over a pairs file.
pub struct Eval {
    policy: (String, ModelFiles),
    reference: Option<(String, ModelFiles)>,
    pairs: Vec<data::TokenizedPair>,
    loss: LossConfig,
}

impl Eval {
    /// Reads and checks everything, without a device. `max_length` defaults to the model's
    /// positions.
    pub fn prepare(
        model: &Path,
        reference: Option<&Path>,
        data: &Path,
        loss: LossConfig,
        max_length: Option<usize>,
    ) -> Result<Eval, Error> {
        loss.validate().map_err(Error::Input)?;
        let (info, policy) = read_model(model)?;
        let reference = reference
            .map(|dir| Ok::<_, Error>(read_model(dir)?.1))
            .transpose()?;
        let file = PairsFile::read(data)?;
        let pairs = data::parse_pairs(&file.name, &file.bytes, &info.template)?;
        let max_length = max_length.unwrap_or(info.config.max_positions());
        hf::check_positions(&info, &policy.0, max_length)?;
        let pairs = data::tokenize_pairs(&file.name, &info.tokenizer, &pairs, max_length)?;
        Ok(Eval {
            policy,
            reference,
            pairs,
            loss,
        })
    }

    pub fn run(&self, device: &Device) -> Result<Metrics, Error> {
        let load = |(name, files): &(String, ModelFiles)| hf::load(files, name, device);
        let (info, policy) = load(&self.policy)?;
        let reference = match &self.reference {
            Some(folder) => load(folder)?.1,
            None => policy.clone(),
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

/// `dpo generate`'s inputs: a model folder and the prompts to continue.
pub struct Generate {
    model: (String, ModelFiles),
    prompts: Vec<String>,
}

impl Generate {
    /// The prompt given, or every distinct prompt of a pairs file. Uses no device.
    pub fn prepare(model: &Path, prompt: Option<&str>, data: Option<&Path>) -> Result<Self, Error> {
        let (info, model) = read_model(model)?;
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
        let (info, model) = hf::load(&self.model.1, &self.model.0, device)?;
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
