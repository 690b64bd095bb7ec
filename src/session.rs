//! From settings and pairs to something trainable: a fresh model and tokenizer (or a loaded
//! one) and the pairs tokenized for it. Shared by the command line and the browser.

use burn::tensor::Device;

use crate::Error;
use crate::config::TrainConfig;
use crate::data::tokenizer::{TextTokenizer, train_bpe};
use crate::data::{ChatTemplate, PreferencePair, TokenizedPair, tokenize_pairs};
use crate::io::hf::LoadedModel;
use crate::model::weights::{self, RandomInit};
use crate::model::{ModelConfig, Preset};

/// A new model of `config.preset` with a byte-level BPE tokenizer trained on `pairs`.
pub fn from_scratch(
    pairs: &[PreferencePair],
    config: &TrainConfig,
    device: &Device,
) -> Result<LoadedModel, Error> {
    fresh_model(scratch_tokenizer(pairs, config)?, config, device)
}

/// The tokenizer a fresh model of `config.preset` gets: a byte-level BPE trained on `pairs`.
/// Separate from `fresh_model` so that the command line can tokenize, and so check, its data
/// before it chooses a device.
pub fn scratch_tokenizer(
    pairs: &[PreferencePair],
    config: &TrainConfig,
) -> Result<TextTokenizer, Error> {
    let preset = preset(config)?;
    let texts = pairs
        .iter()
        .flat_map(|p| [p.prompt.as_str(), p.chosen.as_str(), p.rejected.as_str()]);
    train_bpe(texts, preset.target_vocab())
        .and_then(|t| TextTokenizer::from_tokenizer(t, None))
        .map_err(|e| Error::Runtime(format!("training the tokenizer failed: {e}")))
}

/// A new model of `config.preset` around `tokenizer`, with weights drawn from `config.seed`.
pub fn fresh_model(
    tokenizer: TextTokenizer,
    config: &TrainConfig,
    device: &Device,
) -> Result<LoadedModel, Error> {
    let preset = preset(config)?;
    let mut model_config = preset.config(Some(tokenizer.vocab_size()));
    model_config.n_positions = model_config.n_positions.max(config.max_length);
    model_config.eos_token_id = Some(tokenizer.eos_id());
    model_config.bos_token_id = Some(tokenizer.eos_id());
    let model_config = ModelConfig::Gpt2(model_config);
    let mut init = RandomInit::new(config.seed, model_config.layers());
    let model =
        weights::fill(model_config.build(device), &mut init, device).map_err(Error::Runtime)?;
    Ok(LoadedModel {
        config: model_config,
        model,
        tokenizer,
        template: ChatTemplate::default_plain(),
        tokenizer_config: None,
    })
}

fn preset(config: &TrainConfig) -> Result<Preset, Error> {
    Preset::parse(&config.preset)
        .ok_or_else(|| Error::Input(format!("unknown preset `{}`", config.preset)))
}

/// Tokenizes `pairs` for `model` (TRL's rules, see `data::tokenizer`); `file` names the
/// source in errors. `max_length` may not exceed what the model's positions cover.
pub fn tokenize(
    model: &LoadedModel,
    file: &str,
    pairs: &[PreferencePair],
    max_length: usize,
) -> Result<Vec<TokenizedPair>, Error> {
    if max_length > model.config.max_positions() {
        return Err(Error::Input(format!(
            "max_length {max_length} exceeds the model's {} positions (set --max-length / \
             max_length to at most that)",
            model.config.max_positions()
        )));
    }
    Ok(tokenize_pairs(file, &model.tokenizer, pairs, max_length)?)
}
