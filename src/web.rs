//! The browser's API: one stateful `WebTrainer` driven from a module Web Worker
//! (`www/worker.js`), in the manner of candle's wasm examples.
//!
//! Settings come in as a plain JS object with `TrainConfig`'s field names; events go out as
//! plain objects, metrics with the names of metrics.jsonl. Every device read is awaited: a
//! browser cannot block, so nothing here calls a synchronous read.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::config::TrainConfig;
use crate::data::{self, ChatTemplate};
use crate::dpo::Metrics;
use crate::dpo::logps::MAX_CHUNK_LOGITS;
use crate::io::hf::ModelFiles;
use crate::io::{Files, Saved};
use crate::model::attention::BLOCK_ELEMENTS;
use crate::model::{Preset, PresetShape};
use crate::train::{self, ModelSource, PairsFile, Report, Resume, Run, RunSpec, Start, When, Work};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    // Warn level: shader compilation errors surface here and nowhere else.
    let _ = console_log::init_with_level(log::Level::Warn);
}

// The CPU-only build's thread pool: `initThreadPool(n)` starts n Web Workers sharing the
// module's memory for rayon (the page must be cross-origin isolated). Where it is not called,
// rayon runs every op on the calling thread.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

async fn device(backend: &str) -> Result<Device, JsError> {
    match backend {
        "cpu" => Ok(Device::flex()),
        "webgpu" => webgpu().await,
        other => Err(JsError::new(&format!(
            "unknown backend `{other}` (webgpu or cpu)"
        ))),
    }
}

#[cfg(feature = "webgpu")]
thread_local! {
    /// The WebGPU device: its runtime can be initialised only once per worker.
    static WEBGPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

#[cfg(feature = "webgpu")]
async fn webgpu() -> Result<Device, JsError> {
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

#[cfg(not(feature = "webgpu"))]
async fn webgpu() -> Result<Device, JsError> {
    Err(JsError::new(
        "this build of the library is CPU-only (pkg-cpu): load pkg/ for WebGPU",
    ))
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
    /// A Parquet file's row (`unit` "row", and `field` its column) or a line ("line").
    line: usize,
    unit: &'static str,
    field: String,
    message: String,
    text: String,
}

/// Validates a pairs file (JSONL, .jsonl.gz or Parquet) without training: `{pairs, bad,
/// errors: [{line, unit, field, message, text}]}`.
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
                    unit: e.unit.name(),
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

/// Numbers the page takes from the library rather than copying them: every preset's shape
/// `{name: {vocab, width, layers, heads, positions}}`, the language-model head's chunk size in
/// logits, the attention's block size in scores, and the names of a metrics object's fields.
#[wasm_bindgen]
pub fn facts() -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    struct Facts {
        presets: std::collections::BTreeMap<&'static str, PresetShape>,
        max_chunk_logits: usize,
        attention_block_scores: usize,
        metrics: &'static [&'static str],
    }
    to_js(&Facts {
        presets: Preset::shapes().into_iter().collect(),
        max_chunk_logits: MAX_CHUNK_LOGITS,
        attention_block_scores: BLOCK_ELEMENTS,
        metrics: &Metrics::NAMES,
    })
}

/// The threads the CPU backend runs on: the pool's size after `initThreadPool`, else 1.
/// (Asked before `initThreadPool`, rayon settles on one thread for good.)
#[wasm_bindgen(js_name = cpuThreads)]
pub fn cpu_threads() -> usize {
    #[cfg(feature = "threads")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "threads"))]
    1
}

/// One training run ([`Run`], the driver every front end shares) on one backend. The worker
/// calls `next` until it returns null and posts each event to the page.
#[wasm_bindgen]
pub struct WebTrainer {
    run: Run,
    backend: String,
}

/// The parts of `WebTrainer.create`'s spec that are plain data.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SpecOptions {
    settings: Option<TrainConfig>,
    report: Option<Report>,
}

#[wasm_bindgen]
impl WebTrainer {
    /// A run on `backend` ("webgpu" or "cpu") from `spec`: `{settings?, report?, train: {name,
    /// bytes}, heldout?: {name, bytes}, model?}`. `settings` is a partial `TrainConfig`;
    /// `report` says how many held-out prompts to sample (`prompts`, `max_new_tokens`) and how
    /// many held-out pairs to evaluate (`eval_pairs`); without `heldout` the last tenth of the
    /// training pairs is held out. `model` (Hugging Face folder files: `config.json`,
    /// `model.safetensors`, `tokenizer.json`, optional `tokenizer_config.json` and
    /// `chat_template.jinja`, as Uint8Arrays) starts training from that model instead of a
    /// fresh `preset` one. `resume` (`{checkpoint, reference?}`, each a folder's files as
    /// `checkpoint` and `export` give them) continues a run of the same spec from its
    /// checkpoint, with the reference exported at its `frozen` event once DPO has started.
    pub async fn create(backend: String, spec: JsValue) -> Result<WebTrainer, JsError> {
        let get = |name: &str| {
            js_sys::Reflect::get(&spec, &name.into())
                .ok()
                .filter(|v| !v.is_undefined() && !v.is_null())
        };
        let plain = js_sys::Object::new();
        for name in ["settings", "report"] {
            if let Some(value) = get(name) {
                let _ = js_sys::Reflect::set(&plain, &name.into(), &value);
            }
        }
        let options: SpecOptions = serde_wasm_bindgen::from_value(plain.into())
            .map_err(|e| JsError::new(&format!("settings: {e}")))?;
        let file = |value: JsValue| -> Result<PairsFile, JsError> {
            let field = |name: &str| js_sys::Reflect::get(&value, &name.into()).ok();
            let name = field("name").and_then(|v| v.as_string());
            let bytes = field("bytes").filter(|v| v.is_object());
            match (name, bytes) {
                (Some(name), Some(bytes)) => Ok(PairsFile::new(
                    name,
                    js_sys::Uint8Array::new(&bytes).to_vec(),
                )),
                _ => Err(JsError::new("a pairs file needs a name and bytes")),
            }
        };
        let train = get("train").ok_or_else(|| JsError::new("no training pairs given"))?;
        let model = match model_files(get("model"))? {
            Some(files) => ModelSource::Folder {
                name: "model".into(),
                files,
            },
            None => ModelSource::Preset,
        };
        let config = options.settings.unwrap_or_default();
        config
            .validate()
            .map_err(|e| JsError::new(&format!("settings: {e}")))?;
        let prepared = train::prepare(RunSpec {
            config,
            model,
            train: file(train)?,
            heldout: get("heldout").map(file).transpose()?,
            adapter: None,
            report: options.report.unwrap_or_default(),
        })
        .map_err(js_error)?;
        let start = match get("resume") {
            Some(resume) => Start::Resume(resume_files(resume)?),
            None => Start::Fresh,
        };
        let device = device(&backend).await?;
        let run = prepared.start(&device, start).map_err(js_error)?;
        Ok(WebTrainer { run, backend })
    }

    /// What the next `next` does: `{work: 'step', phase}`, `{work: 'generate', when}`, or
    /// `{work}` of `freeze`, `finish`, `evaluate`, `done`.
    #[wasm_bindgen(getter)]
    pub fn upcoming(&self) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct Upcoming {
            work: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            phase: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            when: Option<When>,
        }
        let (work, phase, when) = match self.run.upcoming() {
            Work::Step(phase) => ("step", Some(phase.name()), None),
            Work::Generate(when) => ("generate", None, Some(when)),
            Work::Freeze => ("freeze", None, None),
            Work::Finish => ("finish", None, None),
            Work::Evaluate => ("evaluate", None, None),
            Work::Done => ("done", None, None),
        };
        to_js(&Upcoming { work, phase, when })
    }

    /// Does the upcoming work and returns its event, as the worker posts it to the page:
    /// `{type: 'metrics', metrics}`, `{type: 'generations', when, items: [{prompt, text,
    /// reward}]}`, `{type: 'frozen', from_policy}`, `{type: 'trained'}`, `{type: 'evaluation',
    /// metrics, margins}`; null when the run is over.
    pub async fn next(&mut self) -> Result<JsValue, JsError> {
        match self.run.next().await.map_err(js_error)? {
            Some(event) => to_js(&event),
            None => Ok(JsValue::NULL),
        }
    }

    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.run.is_done()
    }

    #[wasm_bindgen(getter, js_name = totalSteps)]
    pub fn total_steps(&self) -> usize {
        self.run.total_steps()
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// The policy as a folder's files, `{"config.json": Uint8Array, ...}`: a Hugging Face
    /// model folder, or in an adapter run PEFT's `adapter_config.json` and
    /// `adapter_model.safetensors` (`merged`: the model with the adapters merged instead).
    pub async fn export(&self, merged: Option<bool>) -> Result<js_sys::Object, JsError> {
        let saved = match merged.unwrap_or(false) {
            true => Saved::Model(self.run.export_merged().await.map_err(js_error)?),
            false => self.run.export().await.map_err(js_error)?,
        };
        Ok(files_object(saved.files()))
    }

    /// The run now as a checkpoint folder's files, `{name: Uint8Array}`: the policy's (as
    /// `export` gives them), `trainer_state.json` and `optimizer.bpk`. `create`'s
    /// `spec.resume` continues from them, and the metrics go on as they would have.
    pub async fn checkpoint(&self) -> Result<js_sys::Object, JsError> {
        let checkpoint = self.run.checkpoint().await.map_err(js_error)?;
        let files = checkpoint.files();
        Ok(files_object(
            files.iter().map(|(name, bytes)| (*name, &**bytes)),
        ))
    }

    /// `[trained, all]`: the parameters the optimizer trains (an adapter run's adapters) and
    /// the model's.
    #[wasm_bindgen(getter, js_name = paramCounts)]
    pub fn param_counts(&self) -> Vec<usize> {
        let (trained, all) = self.run.param_counts();
        vec![trained, all]
    }
}

fn js_error(error: crate::Error) -> JsError {
    JsError::new(&error.to_string())
}

/// A folder's files as a JS object, `{name: Uint8Array}`.
fn files_object<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> js_sys::Object {
    let out = js_sys::Object::new();
    for (name, bytes) in files {
        let _ = js_sys::Reflect::set(&out, &name.into(), &js_sys::Uint8Array::from(bytes));
    }
    out
}

/// A JS object of a folder's files, `{name: Uint8Array}`, to read from.
fn js_files(folder: JsValue) -> impl Files {
    move |name: &str| {
        let file = js_sys::Reflect::get(&folder, &name.into()).ok();
        let file = file.filter(|v| !v.is_undefined() && !v.is_null());
        Ok(file.map(|v| js_sys::Uint8Array::new(&v).to_vec()))
    }
}

/// Reads an optional JS object of model folder files.
fn model_files(value: Option<JsValue>) -> Result<Option<ModelFiles>, JsError> {
    let files = value.map(|folder| ModelFiles::from_files("model folder", js_files(folder)));
    files.transpose().map_err(js_error)
}

/// `spec.resume`: a checkpoint's files and, once DPO has started, the reference's.
fn resume_files(resume: JsValue) -> Result<Resume, JsError> {
    let folder = |name: &str| {
        let value = js_sys::Reflect::get(&resume, &name.into()).ok();
        value.filter(|v| v.is_object())
    };
    let checkpoint = folder("checkpoint").ok_or_else(|| JsError::new("resume: no checkpoint"))?;
    let reference = folder("reference")
        .map(|files| Saved::from_files("reference", js_files(files)))
        .transpose()
        .map_err(js_error)?;
    let reference = reference.map(|saved| ("reference".to_string(), saved));
    Resume::from_files("checkpoint", js_files(checkpoint), reference).map_err(js_error)
}
