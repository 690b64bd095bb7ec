//! Hugging Face model folders: `config.json`, `model.safetensors`, `tokenizer.json` and, when
//! the model has them, `tokenizer_config.json` (special tokens, chat template) and
//! `chat_template.jinja` (the chat template as transformers 5 saves it).
//!
//! Everything works on bytes so that the browser can hand over files a user picked; reading
//! and writing folders on disk is a thin native layer on top.

use std::collections::HashMap;

use burn::tensor::Device;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::Error;
use crate::data::ChatTemplate;
use crate::data::tokenizer::TextTokenizer;
use crate::io::json;
use crate::model::weights::{self, NamedTensor, ParamSource};
use crate::model::{CausalLm, ModelConfig, ModelInfo};

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const TOKENIZER: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
pub const CHAT_TEMPLATE: &str = "chat_template.jinja";

/// The files of a model folder, as bytes.
#[derive(Clone, Debug, Default)]
pub struct ModelFiles {
    pub config: Vec<u8>,
    pub weights: Vec<u8>,
    pub tokenizer: Vec<u8>,
    pub tokenizer_config: Option<Vec<u8>>,
    /// Preferred to `tokenizer_config.json`'s `chat_template`, as transformers does.
    pub chat_template: Option<Vec<u8>>,
}

impl ModelFiles {
    /// A model folder's files from `get` (`name`, the folder, starts the message about a
    /// missing one).
    pub fn from_files(name: &str, mut get: impl super::Files) -> Result<ModelFiles, Error> {
        let mut need = |file: &str| get(file)?.ok_or_else(|| super::missing(name, file));
        let (config, weights, tokenizer) = (need(CONFIG)?, need(WEIGHTS)?, need(TOKENIZER)?);
        Ok(ModelFiles {
            config,
            weights,
            tokenizer,
            tokenizer_config: get(TOKENIZER_CONFIG)?,
            chat_template: get(CHAT_TEMPLATE)?,
        })
    }
}

/// Checks a model folder's files without touching a device: config, tokenizer, chat template,
/// and every tensor the config implies (name, shape, dtype, size) in the weights' header. Bad
/// input is then reported before a GPU is probed; `load` does not fail on files that pass.
pub fn check(files: &ModelFiles, source: &str) -> Result<ModelInfo, Error> {
    let (info, tensors) = parse(files, source)?;
    // burn's parameters are lazy: this tree allocates no tensor memory.
    let tree = info.config.build(&Device::flex());
    for (name, shape) in weights::param_shapes(&tree) {
        tensors
            .view(&name, &shape)
            .map_err(|e| Error::Input(format!("{source}/{WEIGHTS}: {e}")))?;
    }
    Ok(info)
}

/// Refuses a `max_length` beyond the positions of the model `info` describes (the folder
/// `source`), naming the config field at fault.
pub fn check_positions(info: &ModelInfo, source: &str, max_length: usize) -> Result<(), Error> {
    let positions = info.config.max_positions();
    if max_length > positions {
        return Err(Error::Input(format!(
            "{source}/{CONFIG}: field `{}`: the model covers {positions} positions, fewer \
             than max_length {max_length}",
            info.config.positions_field()
        )));
    }
    Ok(())
}

/// Parses and checks a model folder's files; `source` (the folder) names them in errors.
pub fn load(
    files: &ModelFiles,
    source: &str,
    device: &Device,
) -> Result<(ModelInfo, CausalLm), Error> {
    let (info, mut tensors) = parse(files, source)?;
    let model = weights::fill(info.config.build(device), &mut tensors, device)
        .map_err(|e| Error::Input(format!("{source}/{WEIGHTS}: {e}")))?;
    Ok((info, model))
}

/// Parses and checks `config.json`; the message names the line or the field at fault.
pub fn parse_config(bytes: &[u8]) -> Result<ModelConfig, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("line {}: {e}", e.line()))?;
    // Without `model_type` (older GPT-2 configs) the file is read as GPT-2.
    let model_type = match value.get("model_type") {
        None => "gpt2".to_owned(),
        Some(kind) => kind
            .as_str()
            .ok_or("field `model_type` must be a string")?
            .to_owned(),
    };
    // Parsed again as the family's type, so that errors name the line and the field.
    let config = match model_type.as_str() {
        "gpt2" => ModelConfig::Gpt2(json::from_slice(bytes)?),
        kind if crate::model::llama::Family::parse(kind).is_some() => {
            let mut config: crate::model::LlamaConfig = json::from_slice(bytes)?;
            config.file = value.as_object().cloned();
            ModelConfig::Llama(config)
        }
        other => {
            return Err(format!(
                "field `model_type`: `{other}` is not supported (gpt2, {})",
                crate::model::llama::Family::NAMES.join(", ")
            ));
        }
    };
    config.validate()?;
    Ok(config)
}

/// Everything but filling the parameters: shared by `check` and `load`.
fn parse<'a>(
    files: &'a ModelFiles,
    source: &str,
) -> Result<(ModelInfo, SafetensorsSource<'a>), Error> {
    let bad = |file: &str, message: String| Error::Input(format!("{source}/{file}: {message}"));
    let config = parse_config(&files.config).map_err(|e| bad(CONFIG, e))?;
    let text = |bytes: &'a Option<Vec<u8>>, file: &str| match bytes {
        Some(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|e| bad(file, format!("not UTF-8: {e}"))),
        None => Ok(None),
    };
    let tokenizer_config = text(&files.tokenizer_config, TOKENIZER_CONFIG)?;
    let chat_template = text(&files.chat_template, CHAT_TEMPLATE)?;
    // Its errors start with the name of the file at fault.
    let tokenizer = TextTokenizer::from_bytes(&files.tokenizer, tokenizer_config)
        .map_err(|e| Error::Input(format!("{source}/{e}")))?;
    if tokenizer.vocab_size() > config.vocab_size() {
        return Err(bad(
            TOKENIZER,
            format!(
                "{} tokens, more than config.json's vocab_size {}",
                tokenizer.vocab_size(),
                config.vocab_size()
            ),
        ));
    }
    // Its errors start with the name of the file at fault too.
    let template = ChatTemplate::from_model_files(chat_template, tokenizer_config)
        .map_err(|e| Error::Input(format!("{source}/{e}")))?;
    crate::io::header::check(&files.weights).map_err(|e| bad(WEIGHTS, e))?;
    let tensors = SafeTensors::deserialize(&files.weights)
        .map_err(|e| bad(WEIGHTS, format!("not a valid safetensors file: {e}")))?;
    // Every layer has tensors of its own: a larger count is a broken config.json, and would
    // otherwise build a module tree of that many layers before any shape is compared.
    if config.layers() > tensors.len() {
        let field = match config {
            ModelConfig::Gpt2(_) => "n_layer",
            ModelConfig::Llama(_) => "num_hidden_layers",
        };
        return Err(bad(
            CONFIG,
            format!(
                "field `{field}`: {} layers, but {WEIGHTS} holds only {} tensors",
                config.layers(),
                tensors.len()
            ),
        ));
    }
    let info = ModelInfo {
        config,
        tokenizer,
        template,
        tokenizer_config: files.tokenizer_config.clone(),
        chat_template: files.chat_template.clone(),
    };
    Ok((info, SafetensorsSource { tensors }))
}

struct SafetensorsSource<'a> {
    tensors: SafeTensors<'a>,
}

impl<'a> SafetensorsSource<'a> {
    /// The tensor `name` if it is there with `shape` and a dtype we read.
    fn view(&self, name: &str, shape: &[usize]) -> Result<TensorView<'a>, String> {
        // Checkpoints saved from a bare `GPT2Model` or `LlamaModel` lack the body's prefix.
        let bare = name
            .strip_prefix("transformer.")
            .or_else(|| name.strip_prefix("model."))
            .unwrap_or(name);
        let view = self
            .tensors
            .tensor(name)
            .or_else(|_| self.tensors.tensor(bare))
            .map_err(|_| format!("tensor `{name}` is missing"))?;
        if view.shape() != shape {
            return Err(format!(
                "tensor `{name}` has shape {:?}, but config.json implies {shape:?}",
                view.shape()
            ));
        }
        if !readable(view.dtype()) {
            return Err(format!(
                "tensor `{name}` has dtype {:?}; F32, F16 and BF16 are supported",
                view.dtype()
            ));
        }
        Ok(view)
    }
}

impl ParamSource for SafetensorsSource<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        Ok(to_f32(&self.view(name, shape)?))
    }
}

/// A tensor's values as f32; `view`s are F32, F16 or BF16.
pub(crate) fn to_f32(view: &TensorView) -> Vec<f32> {
    let bytes = view.data();
    match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => unreachable!("dtype {other:?} is refused before it is read"),
    }
}

/// Whether `to_f32` reads a dtype.
pub(crate) fn readable(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

/// Tensors read back from the device (awaited, so this works in the browser too) as a
/// safetensors file, in f32.
pub(crate) async fn safetensors_bytes(named: Vec<NamedTensor>) -> Result<Vec<u8>, Error> {
    let mut tensors = Vec::new();
    for named in named {
        let data = named
            .tensor
            .into_data_async()
            .await
            .map_err(|e| Error::Runtime(format!("reading `{}` failed: {e}", named.name)))?
            .convert::<f32>();
        tensors.push((named.name, named.shape, data.into_bytes().to_vec()));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| Error::Runtime(format!("tensor `{name}`: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    // transformers refuses safetensors files without format = pt.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Runtime(format!("writing safetensors failed: {e}")))
}

/// The folder's files for `model`: weights read back from the device (awaited, so this
/// works in the browser too), config, tokenizer, tokenizer config and chat template file.
pub async fn export(model: &CausalLm, info: &ModelInfo) -> Result<ModelFiles, Error> {
    let tokenizer = &info.tokenizer;
    // A model with adapters is written with them merged: a plain model folder.
    let weights = safetensors_bytes(weights::named_tensors(&model.merged())).await?;
    let mut config = info.config.clone();
    config.fill_special_tokens(tokenizer.eos_id());
    let default_tokenizer_config = serde_json::json!({
        "eos_token": tokenizer.eos_token(),
        "bos_token": tokenizer.eos_token(),
        "model_max_length": config.max_positions(),
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    Ok(ModelFiles {
        config: config.to_json(),
        weights,
        tokenizer: tokenizer.to_json().into_bytes(),
        tokenizer_config: Some(match &info.tokenizer_config {
            Some(bytes) => bytes.clone(),
            None => serde_json::to_vec_pretty(&default_tokenizer_config).expect("json"),
        }),
        chat_template: info.chat_template.clone(),
    })
}

#[cfg(not(target_family = "wasm"))]
mod native {
    use std::path::Path;

    use super::*;

    /// Reads a model folder. A pickle checkpoint is refused with the conversion to run.
    pub fn read_dir(dir: &Path) -> Result<ModelFiles, Error> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| Error::Input(format!("{}: {e}", dir.join(name).display())))
        };
        if !dir.is_dir() {
            return Err(Error::Input(format!(
                "{}: not a model folder (config.json, model.safetensors, tokenizer.json)",
                dir.display()
            )));
        }
        if !dir.join(WEIGHTS).exists() && dir.join("pytorch_model.bin").exists() {
            return Err(Error::Input(format!(
                "{}/pytorch_model.bin: pickle checkpoints are not loaded (they can run code); \
                 convert it with: python -c \"from transformers import AutoModelForCausalLM as M; \
                 M.from_pretrained('{0}').save_pretrained('{0}', safe_serialization=True)\"",
                dir.display()
            )));
        }
        let optional = |name: &str| match dir.join(name).exists() {
            true => read(name).map(Some),
            false => Ok(None),
        };
        Ok(ModelFiles {
            config: read(CONFIG)?,
            weights: read(WEIGHTS)?,
            tokenizer: read(TOKENIZER)?,
            tokenizer_config: optional(TOKENIZER_CONFIG)?,
            chat_template: optional(CHAT_TEMPLATE)?,
        })
    }

    /// Reads and loads a model folder onto `device`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<(ModelInfo, CausalLm), Error> {
        load(&read_dir(dir)?, &dir.display().to_string(), device)
    }
}

#[cfg(not(target_family = "wasm"))]
pub use native::{load_dir, read_dir};
