//! PEFT adapter folders: `adapter_config.json` (PEFT's `LoraConfig`) and
//! `adapter_model.safetensors` (`base_model.model.<module>.lora_A.weight`, A [r, d_in], and
//! `.lora_B.weight`, B [d_out, r]), as `peft.PeftModel.from_pretrained(base, folder)` loads
//! them and `save_pretrained` writes them. Like `hf`, everything works on bytes.

use std::collections::{BTreeMap, HashMap};

use safetensors::SafeTensors;
use serde::Deserialize;

use super::hf::{readable, safetensors_bytes, to_f32};
use super::json;
use crate::Error;
use crate::model::lora::{self, ALL_LINEAR, FactorSource, Factors, LoraConfig};
use crate::model::{CausalLm, ModelConfig};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// The two files of an adapter folder, as bytes.
#[derive(Clone, Debug, Default)]
pub struct AdapterFiles {
    pub config: Vec<u8>,
    pub weights: Vec<u8>,
}

/// The fields of `adapter_config.json` that change what the adapter computes; the others
/// (task type, revision, inference mode...) are ignored.
#[derive(Deserialize)]
struct PeftConfig {
    peft_type: String,
    #[serde(default = "eight")]
    r: usize,
    #[serde(default = "eight_f")]
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    #[serde(default)]
    target_modules: Option<serde_json::Value>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    modules_to_save: Option<serde_json::Value>,
    #[serde(default)]
    rank_pattern: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    alpha_pattern: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    exclude_modules: Option<serde_json::Value>,
    #[serde(default)]
    lora_bias: bool,
    #[serde(default)]
    target_parameters: Option<serde_json::Value>,
    #[serde(default)]
    trainable_token_indices: Option<serde_json::Value>,
}

fn eight() -> usize {
    8
}
fn eight_f() -> f64 {
    8.0
}

/// An adapter folder read and checked against a model: its settings and its factors.
#[derive(Clone)]
pub struct Adapter {
    pub lora: LoraConfig,
    /// `base_model_name_or_path`, as written.
    pub base: Option<String>,
    factors: HashMap<String, Factors>,
}

/// Reads an adapter folder's files for a model of `model`'s shape; `source` (the folder)
/// starts every message. Refuses other PEFT types, features that change the computation
/// (DoRA, rsLoRA, per-layer ranks, trained biases, extra saved modules) and an adapter made
/// for another base model (a layer this model lacks, or a shape that differs).
pub fn read(files: &AdapterFiles, source: &str, model: &ModelConfig) -> Result<Adapter, Error> {
    let bad = |file: &str, message: String| Error::Input(format!("{source}/{file}: {message}"));
    let config: PeftConfig = json::from_slice(&files.config).map_err(|e| bad(ADAPTER_CONFIG, e))?;
    let mut lora = lora_settings(&config, model).map_err(|e| bad(ADAPTER_CONFIG, e))?;
    super::header::check(&files.weights).map_err(|e| bad(ADAPTER_WEIGHTS, e))?;
    let tensors = SafeTensors::deserialize(&files.weights).map_err(|e| {
        bad(
            ADAPTER_WEIGHTS,
            format!("not a valid safetensors file: {e}"),
        )
    })?;
    let layers: BTreeMap<String, (usize, usize)> = lora::linear_layers(model)
        .into_iter()
        .map(|(name, d_in, d_out)| (name, (d_in, d_out)))
        .collect();
    let mut halves: BTreeMap<String, [Option<Vec<f32>>; 2]> = BTreeMap::new();
    let mut views = tensors.tensors();
    // In name order, so that the first problem reported is the same every time.
    views.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in views {
        let tensor_error =
            |message: String| bad(ADAPTER_WEIGHTS, format!("tensor `{name}`: {message}"));
        let (module, half) = name
            .strip_prefix("base_model.model.")
            .and_then(|rest| {
                (rest.strip_suffix(".lora_A.weight").map(|m| (m, 0)))
                    .or_else(|| rest.strip_suffix(".lora_B.weight").map(|m| (m, 1)))
            })
            .ok_or_else(|| {
                tensor_error(
                    "not a LoRA factor (base_model.model.<module>.lora_A.weight or lora_B.weight)"
                        .into(),
                )
            })?;
        let (d_in, d_out) = *layers.get(module).ok_or_else(|| {
            tensor_error(format!(
                "this {} model has no linear layer `{module}` (is the adapter for another base \
                 model?)",
                model.family()
            ))
        })?;
        let expected = [vec![config.r, d_in], vec![d_out, config.r]][half].clone();
        if view.shape() != expected {
            return Err(tensor_error(format!(
                "shape {:?}, but rank {} on this model's `{module}` needs {expected:?} (is the \
                 adapter for another base model?)",
                view.shape(),
                config.r
            )));
        }
        if !readable(view.dtype()) {
            return Err(tensor_error(format!(
                "dtype {:?}; F32, F16 and BF16 are supported",
                view.dtype()
            )));
        }
        halves.entry(module.to_string()).or_default()[half] = Some(to_f32(&view));
    }
    let mut factors = HashMap::new();
    for (module, [a, b]) in halves {
        let (Some(a), Some(b)) = (a, b) else {
            return Err(bad(
                ADAPTER_WEIGHTS,
                format!("layer `{module}` has only one of lora_A and lora_B"),
            ));
        };
        let factor = Factors {
            rank: config.r,
            a,
            b,
            scale: lora.scale(),
        };
        factors.insert(module, factor);
    }
    if factors.is_empty() {
        return Err(bad(ADAPTER_WEIGHTS, "holds no LoRA factors".into()));
    }
    if config.target_modules.as_ref().is_none_or(|t| t.is_null()) {
        // No targets named: the layers the factors are for, by their last names.
        let names: std::collections::BTreeSet<&str> = factors
            .keys()
            .filter_map(|m| m.rsplit('.').next())
            .collect();
        lora.targets = names.into_iter().map(String::from).collect();
    }
    Ok(Adapter {
        lora,
        base: config.base_model_name_or_path,
        factors,
    })
}

/// `adapter_config.json`'s settings as ours, refusing what we do not compute.
fn lora_settings(config: &PeftConfig, model: &ModelConfig) -> Result<LoraConfig, String> {
    if config.peft_type != "LORA" {
        return Err(format!(
            "field `peft_type`: `{}` adapters are not supported (LORA)",
            config.peft_type
        ));
    }
    let unsupported = [
        ("use_dora", config.use_dora),
        ("use_rslora", config.use_rslora),
        ("bias", config.bias.as_deref().is_some_and(|b| b != "none")),
        ("modules_to_save", nonempty(&config.modules_to_save)),
        ("layers_to_transform", nonempty(&config.layers_to_transform)),
        ("exclude_modules", nonempty(&config.exclude_modules)),
        ("lora_bias", config.lora_bias),
        ("target_parameters", nonempty(&config.target_parameters)),
        (
            "trainable_token_indices",
            nonempty(&config.trainable_token_indices),
        ),
        (
            "rank_pattern",
            config.rank_pattern.as_ref().is_some_and(|p| !p.is_empty()),
        ),
        (
            "alpha_pattern",
            config.alpha_pattern.as_ref().is_some_and(|p| !p.is_empty()),
        ),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, used)| *used) {
        return Err(format!(
            "field `{field}`: not supported (plain LoRA on whole linear layers: no DoRA, \
             rsLoRA, per-layer ranks, trained biases, excluded or extra modules)"
        ));
    }
    let targets = match &config.target_modules {
        // Checked as all-linear; `read` then names the layers the factors are for.
        None | Some(serde_json::Value::Null) => vec![ALL_LINEAR.to_string()],
        Some(serde_json::Value::String(all)) if all == ALL_LINEAR => vec![all.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or("field `target_modules`: not a list of module names")?,
        Some(_) => {
            return Err(
                "field `target_modules`: a regular expression is not supported; list the \
                 module names"
                    .into(),
            );
        }
    };
    let lora = LoraConfig {
        r: config.r,
        alpha: config.lora_alpha,
        dropout: config.lora_dropout,
        targets,
    };
    // Our checks name our fields; this file names them as PEFT does.
    let peft_names = |message: String| {
        [
            ("lora.r", "r"),
            ("lora.alpha", "lora_alpha"),
            ("lora.dropout", "lora_dropout"),
            ("lora.targets", "target_modules"),
        ]
        .iter()
        .fold(message, |m, (ours, theirs)| {
            m.replace(&format!("field `{ours}`"), &format!("field `{theirs}`"))
        })
    };
    lora.validate().map_err(peft_names)?;
    lora.modules(model).map_err(peft_names)?;
    Ok(lora)
}

fn nonempty(value: &Option<serde_json::Value>) -> bool {
    match value {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

impl FactorSource for Adapter {
    fn factors(&mut self, module: &str, _: usize, _: usize) -> Result<Option<Factors>, String> {
        Ok(self.factors.remove(module))
    }
}

/// `model`'s adapters as a PEFT folder's files; `base` is recorded as
/// `base_model_name_or_path`.
pub async fn export(
    model: &CausalLm,
    lora: &LoraConfig,
    config: &ModelConfig,
    base: &str,
) -> Result<AdapterFiles, Error> {
    let weights = safetensors_bytes(lora::peft_tensors(model)).await?;
    let adapter_config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": lora.peft_targets(config),
        "bias": "none",
        "fan_in_fan_out": matches!(config, ModelConfig::Gpt2(_)),
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": false,
        "use_dora": false,
    });
    Ok(AdapterFiles {
        config: serde_json::to_vec_pretty(&adapter_config).expect("json"),
        weights,
    })
}

/// Reads an adapter folder's two files; a missing one is reported as that file's error.
#[cfg(not(target_family = "wasm"))]
pub fn read_dir(dir: &std::path::Path) -> Result<AdapterFiles, Error> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| Error::Input(format!("{}: {e}", dir.join(name).display())))
    };
    Ok(AdapterFiles {
        config: read(ADAPTER_CONFIG)?,
        weights: read(ADAPTER_WEIGHTS)?,
    })
}
