//! `dpo eval`, and scoring sampled text with the shipped task's ground truth.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, read_sync};

use crate::Error;
use crate::data::{self, PreferencePair};
use crate::dpo::Metrics;
use crate::dpo::loss::LossConfig;
use crate::generate::{SamplingConfig, generate};
use crate::io::hf::LoadedModel;
use crate::task::Lexicon;
use crate::train::eval::evaluate;

use super::SHIPPED_HELDOUT;
use super::inputs::{ModelDir, Pairs, read_pairs, tokenize};

/// `dpo eval`'s inputs, read and checked: the metrics of a model folder against a reference
/// folder (by default the model itself) over a pairs file.
pub struct Eval {
    policy: ModelDir,
    reference: Option<ModelDir>,
    pairs: Pairs,
    loss: LossConfig,
}

impl Eval {
    /// Reads and checks everything, without a device. `max_length` defaults to the model's
    /// `n_positions`.
    pub fn prepare(
        model: &Path,
        reference: Option<&Path>,
        data: &Path,
        loss: LossConfig,
        max_length: Option<usize>,
    ) -> Result<Eval, Error> {
        loss.validate().map_err(Error::Input)?;
        let policy = ModelDir::read(model)?;
        let reference = reference.map(ModelDir::read).transpose()?;
        let read = read_pairs(Some(data), SHIPPED_HELDOUT, &policy.info.template)?;
        let max_length = max_length.unwrap_or(policy.info.config.max_positions());
        let pairs = tokenize(read, &policy.info.tokenizer, Some(&policy), max_length)?;
        Ok(Eval {
            policy,
            reference,
            pairs,
            loss,
        })
    }

    pub fn run(&self, device: &Device) -> Result<Metrics, Error> {
        let policy = self.policy.load(device)?;
        let reference = match &self.reference {
            Some(dir) => Some(dir.load(device)?.model),
            None => None,
        };
        let (metrics, _) = read_sync(evaluate(
            &policy.model,
            reference.as_ref().unwrap_or(&policy.model),
            &self.pairs.tokenized,
            policy.tokenizer.eos_id(),
            &self.loss,
            16,
            device,
        ))
        .map_err(Error::Runtime)?;
        Ok(metrics)
    }
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
    let prompts = data::distinct_prompts(pairs);
    let prompts = &prompts[..count.min(prompts.len())];
    let mut total = 0.0;
    for (i, prompt) in prompts.iter().enumerate() {
        let config = SamplingConfig {
            seed: seed + i as u64,
            ..SamplingConfig::default()
        };
        let text = read_sync(generate(&model, &loaded.tokenizer, prompt, &config, device))
            .map_err(Error::Runtime)?;
        total += lexicon.reward(&text) as f64;
    }
    Ok(total / prompts.len().max(1) as f64)
}
