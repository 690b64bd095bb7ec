//! Hub ids on the command line. A `--model`, `--adapter` or `--ref` that is not a folder is
//! looked up in the local Hugging Face cache (`--revision` picks the model's commit), and a
//! `--data` that is a dataset id or folder becomes its `--split`'s file. Resolved here, at the
//! edge: the library reads folders and files.

use std::path::{Path, PathBuf};

use clap::Args;
use dpo::Error;
use dpo::io::hub;
pub use dpo::io::hub::pairs_file;

#[derive(Args, Default)]
pub struct RevisionArg {
    /// With --model ORG/NAME from the Hugging Face hub: the branch, tag or commit (default: main).
    #[arg(long)]
    pub revision: Option<String>,
}

/// A model folder, or a hub id's snapshot; `revision` applies to ids.
pub fn folder(arg: &Path, revision: &RevisionArg) -> Result<PathBuf, Error> {
    hub::model_folder(arg, revision.revision.as_deref())
}

/// An adapter or reference folder, or a hub id's snapshot at `main`.
pub fn other_folder(arg: Option<&PathBuf>) -> Result<Option<PathBuf>, Error> {
    arg.map(|a| hub::model_folder(a, None)).transpose()
}
