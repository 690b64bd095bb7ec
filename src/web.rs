//! The browser's API: one stateful `WebTrainer` driven from a module Web Worker
//! (`www/worker.js`), in the manner of candle's wasm examples.
//!
//! Settings come in as a plain JS object with `TrainConfig`'s field names; metrics go out as
//! plain objects with the names of DESIGN.md. Every device read is awaited: a browser cannot
//! block, so nothing here calls a synchronous read.

use std::cell::RefCell;

use burn::tensor::Device;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::config::TrainConfig;
use crate::data::{self, ChatTemplate, PreferencePair, TokenizedPair};
use crate::generate::{SamplingConfig, generate};
use crate::io::hf::{self, LoadedModel, ModelFiles};
use crate::session;
use crate::train::eval::evaluate;
use crate::train::{Trainer, TrainerState};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    // Warn level: shader compilation errors surface here and nowhere else.
    let _ = console_log::init_with_level(log::Level::Warn);
}

thread_local! {
    /// The WebGPU device: its runtime can be initialised only once per worker.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

async fn device(backend: &str) -> Result<Device, JsError> {
    match backend {
        "cpu" => Ok(Device::flex()),
        "webgpu" => {
            if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
                return Ok(device);
            }
            let device = Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| JsError::new(&format!("WebGPU could not start: {e}")))?;
            WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
            Ok(device)
        }
        other => Err(JsError::new(&format!(
            "unknown backend `{other}` (webgpu or cpu)"
        ))),
    }
}

#[derive(Serialize)]
struct CheckedPairs {
    pairs: usize,
    /// Total bad lines; `errors` holds the first ones.
    bad: usize,
    errors: Vec<LineErrorJs>,
}

#[derive(Serialize)]
struct LineErrorJs {
    line: usize,
    field: String,
    message: String,
    text: String,
}

/// Validates a pairs file without training: `{pairs, bad, errors: [{line, field, message, text}]}`.
#[wasm_bindgen(js_name = checkPairs)]
pub fn check_pairs(name: &str, bytes: &[u8]) -> Result<JsValue, JsError> {
    let checked = match data::parse_pairs(name, bytes, &ChatTemplate::default_plain()) {
        Ok(pairs) => CheckedPairs {
            pairs: pairs.len(),
            bad: 0,
            errors: Vec::new(),
        },
        Err(error) => CheckedPairs {
            pairs: 0,
            bad: error.total,
            errors: error
                .errors
                .iter()
                .map(|e| LineErrorJs {
                    line: e.line,
                    field: e.field.clone(),
                    message: e.message.clone(),
                    text: e.to_string(),
                })
                .collect(),
        },
    };
    to_js(&checked)
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

fn parse(
    name: &str,
    bytes: &[u8],
    template: &ChatTemplate,
) -> Result<Vec<PreferencePair>, JsError> {
    data::parse_pairs(name, bytes, template).map_err(|e| JsError::new(&e.to_string()))
}

#[wasm_bindgen]
pub struct WebTrainer {
    device: Device,
    model: LoadedModel,
    trainer: Trainer,
    eval_pairs: Vec<TokenizedPair>,
    eval_prompts: Vec<String>,
    backend: String,
}

#[wasm_bindgen]
impl WebTrainer {
    /// A trainer on `backend` ("webgpu" or "cpu") with `options` (a partial `TrainConfig`),
    /// training pairs and optional held-out pairs (JSONL bytes; without them the last tenth of
    /// the training file is held out). With `model` (an object of Hugging Face folder files:
    /// `config.json`, `model.safetensors`, `tokenizer.json`, optional
    /// `tokenizer_config.json`, as Uint8Arrays) training starts from that model.
    pub async fn create(
        backend: String,
        options: JsValue,
        train_name: String,
        train: Vec<u8>,
        eval_name: Option<String>,
        eval: Option<Vec<u8>>,
        model: JsValue,
    ) -> Result<WebTrainer, JsError> {
        let config: TrainConfig = if options.is_undefined() || options.is_null() {
            TrainConfig::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("settings: {e}")))?
        };
        config
            .validate()
            .map_err(|e| JsError::new(&format!("settings: {e}")))?;
        let plain = device(&backend).await?;
        config
            .precision()
            .check(&plain)
            .map_err(|e| JsError::new(&format!("settings: {e}")))?;
        let autodiff = plain.clone().autodiff();
        let base = match model_files(&model)? {
            Some(files) => Some(
                hf::load(&files, "model", &autodiff).map_err(|e| JsError::new(&e.to_string()))?,
            ),
            None => None,
        };
        let template = base
            .as_ref()
            .map(|m| m.template.clone())
            .unwrap_or_else(ChatTemplate::default_plain);
        let mut train_pairs = parse(&train_name, &train, &template)?;
        let eval_raw = match (eval_name, eval) {
            (Some(name), Some(bytes)) => parse(&name, &bytes, &template)?,
            _ => {
                let keep = train_pairs.len() - train_pairs.len() / 10;
                train_pairs.split_off(keep.max(1))
            }
        };
        let model = match base {
            Some(model) => model,
            None => session::from_scratch(&train_pairs, &config, &autodiff)
                .map_err(|e| JsError::new(&e.to_string()))?,
        };
        let tokenized = session::tokenize(&model, &train_name, &train_pairs, config.max_length)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let eval_pairs = session::tokenize(&model, "held-out", &eval_raw, config.max_length)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let eval_prompts = data::distinct_prompts(&eval_raw)
            .into_iter()
            .map(String::from)
            .collect();
        let pad = model.tokenizer.eos_id();
        let trainer = Trainer::new(
            model.model.clone(),
            tokenized,
            pad,
            config,
            autodiff,
            TrainerState::default(),
        );
        Ok(WebTrainer {
            device: plain,
            model,
            trainer,
            eval_pairs,
            eval_prompts,
            backend,
        })
    }

    /// Runs one step (SFT or DPO; the switch to DPO freezes the reference first) and returns
    /// its metrics object.
    pub async fn step(&mut self) -> Result<JsValue, JsError> {
        if self.trainer.is_done() {
            return Err(JsError::new("training is finished"));
        }
        let metrics = self.trainer.advance().await.map_err(|e| JsError::new(&e))?;
        if !metrics.loss.is_finite() {
            return Err(JsError::new(&format!(
                "the loss became {} at step {}: training stopped; try a lower learning rate",
                metrics.loss, metrics.step
            )));
        }
        to_js(&metrics)
    }

    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.trainer.is_done()
    }

    /// "sft" or "dpo": the phase of the next step.
    #[wasm_bindgen(getter)]
    pub fn phase(&self) -> String {
        format!("{:?}", self.trainer.phase()).to_lowercase()
    }

    #[wasm_bindgen(getter, js_name = totalSteps)]
    pub fn total_steps(&self) -> usize {
        self.trainer.total_steps()
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Distinct held-out prompts, for the generations panel.
    #[wasm_bindgen(getter, js_name = heldOutPrompts)]
    pub fn held_out_prompts(&self) -> Vec<String> {
        self.eval_prompts.clone()
    }

    /// Continues `prompt` with the current policy.
    pub async fn generate(
        &self,
        prompt: String,
        max_new_tokens: usize,
        seed: u64,
    ) -> Result<String, JsError> {
        let config = SamplingConfig {
            max_new_tokens,
            seed,
            ..SamplingConfig::default()
        };
        let policy = burn::module::Module::valid(self.trainer.policy());
        generate(
            &policy,
            &self.model.tokenizer,
            &prompt,
            &config,
            &self.device,
        )
        .await
        .map_err(|e| JsError::new(&e))
    }

    /// Held-out metrics of the policy against the reference: `{metrics, margins: [per pair]}`.
    pub async fn evaluate(&self) -> Result<JsValue, JsError> {
        let Some(reference) = self.trainer.reference() else {
            return Err(JsError::new(
                "no reference yet: evaluation needs the DPO phase",
            ));
        };
        let valid = |m: &crate::model::CausalLm| burn::module::Module::valid(m);
        let (metrics, margins) = evaluate(
            &valid(self.trainer.policy()),
            &valid(reference),
            &self.eval_pairs,
            self.model.tokenizer.eos_id(),
            &self.trainer.config().loss,
            self.trainer.config().batch,
            &self.device,
        )
        .await
        .map_err(|e| JsError::new(&e))?;
        #[derive(Serialize)]
        struct Evaluation {
            metrics: crate::dpo::Metrics,
            margins: Vec<f32>,
        }
        to_js(&Evaluation { metrics, margins })
    }

    /// The policy as a Hugging Face folder: `{"config.json": Uint8Array, ...}`.
    pub async fn export(&self) -> Result<js_sys::Object, JsError> {
        let files = hf::export(
            self.trainer.policy(),
            &self.model.config,
            &self.model.tokenizer,
            self.model.tokenizer_config.as_deref(),
        )
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
        let out = js_sys::Object::new();
        let set = |name: &str, bytes: &[u8]| {
            let _ = js_sys::Reflect::set(&out, &name.into(), &js_sys::Uint8Array::from(bytes));
        };
        set(hf::CONFIG, &files.config);
        set(hf::WEIGHTS, &files.weights);
        set(hf::TOKENIZER, &files.tokenizer);
        if let Some(bytes) = &files.tokenizer_config {
            set(hf::TOKENIZER_CONFIG, bytes);
        }
        Ok(out)
    }
}

/// Reads an optional JS object of model folder files.
fn model_files(value: &JsValue) -> Result<Option<ModelFiles>, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let get = |name: &str| -> Option<Vec<u8>> {
        js_sys::Reflect::get(value, &name.into())
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
            .map(|v| js_sys::Uint8Array::new(&v).to_vec())
    };
    let need = |name: &str| {
        get(name).ok_or_else(|| JsError::new(&format!("model folder: {name} is missing")))
    };
    Ok(Some(ModelFiles {
        config: need(hf::CONFIG)?,
        weights: need(hf::WEIGHTS)?,
        tokenizer: need(hf::TOKENIZER)?,
        tokenizer_config: get(hf::TOKENIZER_CONFIG),
    }))
}
