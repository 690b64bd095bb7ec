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

use hf::ModelFiles;
use peft::AdapterFiles;

/// What is saved of a policy: a whole model folder, or an adapter folder over its base.
#[derive(Clone, Debug)]
pub enum Saved {
    Model(ModelFiles),
    Adapter(AdapterFiles),
}

impl Saved {
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
    pub fn read_dir(dir: &std::path::Path) -> Result<Saved, crate::Error> {
        if !dir.join(peft::ADAPTER_CONFIG).exists() {
            return Ok(Saved::Model(hf::read_dir(dir)?));
        }
        Ok(Saved::Adapter(peft::read_dir(dir)?))
    }

    /// Writes the folder atomically, with `extra` files beside.
    pub fn write_dir(
        &self,
        dir: &std::path::Path,
        extra: &[(&str, &[u8])],
    ) -> Result<(), crate::Error> {
        let mut all = self.files();
        all.extend_from_slice(extra);
        atomic::write_dir(dir, &all)
            .map_err(|e| crate::Error::Runtime(format!("writing {} failed: {e}", dir.display())))
    }
}
