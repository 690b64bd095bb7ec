//! The run folder's rules: a new run needs a folder that holds none, a resumed one the same
//! settings and its newest checkpoint, read and checked before any device is chosen.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::Error;
use crate::config::TrainConfig;
use crate::io::Saved;
use crate::io::checkpoint::Checkpoints;
use crate::io::hf::{self, ModelFiles};
use crate::io::peft::{self, AdapterFiles};
use crate::model::ModelInfo;
use crate::train::Resume;

use super::{CONFIG, TrainJob};

/// Where a resumed run continues: its newest checkpoint (with the SFT model that is DPO's
/// reference once SFT is over).
pub struct Checkpoint {
    pub step: usize,
    pub resume: Resume,
}

/// Checks `--out` against `--resume`: a new run needs a folder that holds no run; a resumed
/// one the same settings (only `steps` may change). Returns the checkpoint to continue from:
/// none when a resumed run had not saved one yet, so that it starts over. `config`: the run's
/// settings as prepared (a loaded adapter's included).
pub fn check_out(job: &TrainJob, config: &TrainConfig) -> Result<Option<Checkpoint>, Error> {
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
        ..config.clone()
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
    let sft = out.join("sft");
    let reference = match step >= config.sft_steps && sft.exists() {
        true => Some(read_saved(&sft)?),
        false => None,
    };
    let get = |file: &str| match fs::read(path.join(file)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        read => read
            .map(Some)
            .map_err(|e| Error::Input(format!("{}: {e}", path.join(file).display()))),
    };
    let resume = Resume::from_files(&path.display().to_string(), get, reference)?;
    Ok(Some(Checkpoint { step, resume }))
}

/// A model folder's description, and its name and files, checked (so that loading them
/// cannot fail).
pub fn read_model(dir: &Path) -> Result<(ModelInfo, (String, ModelFiles)), Error> {
    let files = hf::read_dir(dir)?;
    let name = dir.display().to_string();
    let info = hf::check(&files, &name)?;
    Ok((info, (name, files)))
}

/// An `--adapter` folder's name and files, refused up front when it holds no
/// `adapter_config.json` (before a model folder's weights are read for nothing).
pub fn read_adapter(dir: &Path) -> Result<(String, AdapterFiles), Error> {
    if !dir.join(peft::ADAPTER_CONFIG).exists() {
        return Err(Error::Input(format!(
            "--adapter {}: not an adapter folder (adapter_config.json is missing)",
            dir.display()
        )));
    }
    Ok((dir.display().to_string(), peft::read_dir(dir)?))
}

/// A saved model or adapter folder with its name (checked when the run loads it).
fn read_saved(dir: &Path) -> Result<(String, Saved), Error> {
    Ok((dir.display().to_string(), Saved::read_dir(dir)?))
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
