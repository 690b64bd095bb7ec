//! Reading and checking what a job is given, before any device is chosen and before anything
//! is written: bad input is reported as one line, with nothing half-done left behind.

use std::fs;
use std::path::Path;

use burn::tensor::Device;
use serde_json::Value;

use crate::Error;
use crate::config::TrainConfig;
use crate::data::{self, ChatTemplate, PreferencePair, TextTokenizer, TokenizedPair};
use crate::io::checkpoint::Checkpoints;
use crate::io::hf::{self, LoadedModel, ModelFiles, ModelInfo};
use crate::train::TrainerState;

use super::{CONFIG, OPTIMIZER, STATE, TrainJob};

/// A model folder read and checked; loading it onto a device cannot fail on its files.
pub struct ModelDir {
    pub source: String,
    pub files: ModelFiles,
    pub info: ModelInfo,
}

impl ModelDir {
    pub fn read(dir: &Path) -> Result<ModelDir, Error> {
        let files = hf::read_dir(dir)?;
        let source = dir.display().to_string();
        let info = hf::check(&files, &source)?;
        Ok(ModelDir {
            source,
            files,
            info,
        })
    }

    pub fn load(&self, device: &Device) -> Result<LoadedModel, Error> {
        hf::load(&self.files, &self.source, device)
    }

    /// `max_length` must fit the model's learned positions.
    fn check_max_length(&self, max_length: usize) -> Result<(), Error> {
        let positions = self.info.config.max_positions();
        if max_length > positions {
            return Err(Error::Input(format!(
                "{}/{}: field `n_positions`: the model covers {positions} positions, fewer than \
                 max_length {max_length}",
                self.source,
                hf::CONFIG
            )));
        }
        Ok(())
    }
}

/// A pairs file: its name (for messages), pairs and their tokens.
pub struct Pairs {
    pub name: String,
    pub pairs: Vec<PreferencePair>,
    pub tokenized: Vec<TokenizedPair>,
}

/// Reads a pairs file, or the shipped one when `path` is `None`.
pub fn read_pairs(
    path: Option<&Path>,
    shipped: (&str, &str),
    template: &ChatTemplate,
) -> Result<(String, Vec<PreferencePair>), Error> {
    match path {
        Some(path) => Ok((
            path.display().to_string(),
            data::read_pairs(path, template)?,
        )),
        None => Ok((
            shipped.0.to_string(),
            data::parse_pairs(shipped.0, shipped.1.as_bytes(), template)?,
        )),
    }
}

/// Tokenizes read pairs for `model` (`None`: a fresh model, sized to fit `max_length`).
pub fn tokenize(
    (name, pairs): (String, Vec<PreferencePair>),
    tokenizer: &TextTokenizer,
    model: Option<&ModelDir>,
    max_length: usize,
) -> Result<Pairs, Error> {
    if let Some(model) = model {
        model.check_max_length(max_length)?;
    }
    let tokenized = data::tokenize_pairs(&name, tokenizer, &pairs, max_length)?;
    Ok(Pairs {
        name,
        pairs,
        tokenized,
    })
}

/// Where a resumed run continues: its newest checkpoint, and the SFT model that is DPO's
/// reference once SFT is over.
pub struct Resume {
    pub step: usize,
    pub path: std::path::PathBuf,
    pub model: ModelDir,
    pub state: TrainerState,
    pub optimizer: Vec<u8>,
    pub reference: Option<ModelDir>,
}

/// Checks `--out` against `--resume`: a new run needs a folder that holds no run; a resumed
/// one the same settings (only `steps` may change). Returns the checkpoint to continue from:
/// none when a resumed run had not saved one yet, so that it starts over.
pub fn check_out(job: &TrainJob) -> Result<Option<Resume>, Error> {
    let out = &job.out;
    if out.exists() && !out.is_dir() {
        return Err(Error::Input(format!(
            "--out {}: exists and is not a folder",
            out.display()
        )));
    }
    let saved_config = out.join(CONFIG);
    if !saved_config.exists() {
        return Ok(None);
    }
    if !job.resume {
        return Err(Error::Input(format!(
            "--out {} already holds a run: pass --resume to continue it, or choose another --out",
            out.display()
        )));
    }
    let saved: TrainConfig = serde_json::from_slice(&read(&saved_config)?)
        .map_err(|e| Error::Input(format!("{}: {e}", saved_config.display())))?;
    let comparable = TrainConfig {
        steps: saved.steps,
        ..job.config.clone()
    };
    if comparable != saved {
        return Err(Error::Input(format!(
            "--resume: the settings differ from {} ({}; only `steps` may change)",
            saved_config.display(),
            differences(&saved, &comparable)
        )));
    }
    let checkpoints = Checkpoints::new(out, job.keep_checkpoints);
    let latest = checkpoints
        .latest()
        .map_err(|e| Error::Input(format!("{}: {e}", out.join("checkpoints").display())))?;
    let Some((step, path)) = latest else {
        return Ok(None);
    };
    let state_file = path.join(STATE);
    let state: TrainerState = serde_json::from_slice(&read(&state_file)?)
        .map_err(|e| Error::Input(format!("{}: {e}", state_file.display())))?;
    let sft = out.join("sft");
    let reference = match step >= job.config.sft_steps && sft.exists() {
        true => Some(ModelDir::read(&sft)?),
        false => None,
    };
    Ok(Some(Resume {
        step,
        model: ModelDir::read(&path)?,
        optimizer: read(&path.join(OPTIMIZER))?,
        path,
        state,
        reference,
    }))
}

/// "`loss.beta` 0.1 there, 0.5 here" for each setting that differs.
fn differences(there: &TrainConfig, here: &TrainConfig) -> String {
    fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, value) in a {
                    let name = format!("{prefix}{key}");
                    walk(&format!("{name}."), value, &b[key], out);
                }
            }
            _ if a != b => {
                let name = prefix.trim_end_matches('.');
                out.push(format!("`{name}` {a} there, {b} here"));
            }
            _ => {}
        }
    }
    // Through text: `to_value` would show an f32 0.1 as 0.10000000149011612.
    let json = |config| {
        let text = serde_json::to_string(config).expect("config serializes");
        serde_json::from_str::<Value>(&text).expect("JSON parses")
    };
    let mut out = Vec::new();
    walk("", &json(there), &json(here), &mut out);
    out.join(", ")
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}
