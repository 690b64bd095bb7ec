//! Files in and out: Hugging Face model folders, safetensors headers, atomic writes,
//! checkpoints and hub ids in the local Hugging Face cache.

#[cfg(not(target_family = "wasm"))]
pub mod atomic;
#[cfg(not(target_family = "wasm"))]
pub mod checkpoint;
pub mod header;
pub mod hf;
#[cfg(not(target_family = "wasm"))]
pub mod hub;
pub mod json;
pub mod peft;

use crate::Error;
use hf::ModelFiles;
use peft::AdapterFiles;

/// A folder's file by name: its bytes, `None` when the folder has no such file. Folders kept
/// anywhere (a directory, a browser's picked files, its origin-private storage) are read
/// through one of these.
pub trait Files: FnMut(&str) -> Result<Option<Vec<u8>>, Error> {}
impl<F: FnMut(&str) -> Result<Option<Vec<u8>>, Error>> Files for F {}

/// `folder` lacks `file`.
pub(crate) fn missing(folder: &str, file: &str) -> Error {
    Error::Input(format!("{folder}: {file} is missing"))
}

/// What is saved of a policy: a whole model folder, or an adapter folder over its base.
#[derive(Clone, Debug)]
pub enum Saved {
    Model(ModelFiles),
    Adapter(AdapterFiles),
}

impl Saved {
    /// A saved folder's files (`name` starts the messages about them): an adapter folder
    /// where there is an `adapter_config.json`, else a model folder.
    pub fn from_files(name: &str, mut get: impl Files) -> Result<Saved, Error> {
        let Some(config) = get(peft::ADAPTER_CONFIG)? else {
            return Ok(Saved::Model(ModelFiles::from_files(name, get)?));
        };
        let weights = get(peft::ADAPTER_WEIGHTS)?;
        let weights = weights.ok_or_else(|| missing(name, peft::ADAPTER_WEIGHTS))?;
        Ok(Saved::Adapter(AdapterFiles { config, weights }))
    }

    /// The folder's files by name.
    pub fn files(&self) -> Vec<(&'static str, &[u8])> {
        match self {
            Saved::Model(files) => {
                let mut all: Vec<(&str, &[u8])> = vec![
                    (hf::CONFIG, &files.config),
                    (hf::WEIGHTS, &files.weights),
                    (hf::TOKENIZER, &files.tokenizer),
                ];
                if let Some(bytes) = &files.tokenizer_config {
                    all.push((hf::TOKENIZER_CONFIG, bytes));
                }
                if let Some(bytes) = &files.chat_template {
                    all.push((hf::CHAT_TEMPLATE, bytes));
                }
                all
            }
            Saved::Adapter(files) => vec![
                (peft::ADAPTER_CONFIG, &files.config),
                (peft::ADAPTER_WEIGHTS, &files.weights),
            ],
        }
    }
}

#[cfg(not(target_family = "wasm"))]
impl Saved {
    /// Reads a model folder, or an adapter folder where `adapter_config.json` is.
    pub fn read_dir(dir: &std::path::Path) -> Result<Saved, Error> {
        if !dir.join(peft::ADAPTER_CONFIG).exists() {
            return Ok(Saved::Model(hf::read_dir(dir)?));
        }
        Ok(Saved::Adapter(peft::read_dir(dir)?))
    }

    /// Writes the folder atomically.
    pub fn write_dir(&self, dir: &std::path::Path) -> Result<(), Error> {
        atomic::write_dir(dir, &self.files())
            .map_err(|e| Error::Runtime(format!("writing {} failed: {e}", dir.display())))
    }
}
