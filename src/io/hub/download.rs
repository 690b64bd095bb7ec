//! Downloads from the Hugging Face hub (or the server `HF_ENDPOINT` names) into the cache, in
//! huggingface_hub's layout, through the hf-hub crate: a later run finds the files offline.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

use super::RepoKind;
use crate::Error;

/// The files of a model or adapter repository that `dpo` reads; the rest (other weight
/// formats, READMEs) are not fetched.
pub fn model_files(files: &[String]) -> Result<Vec<String>, Error> {
    const READ: [&str; 7] = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "adapter_config.json",
        "adapter_model.safetensors",
    ];
    Ok(files
        .iter()
        .filter(|f| READ.contains(&f.as_str()))
        .cloned()
        .collect())
}

/// Downloads the files `pick` chooses among repository `id`'s at `revision` (default `main`)
/// into `cache`, with a progress bar; returns the snapshot folder that holds them.
pub fn repo<P, F>(
    cache: &Path,
    kind: RepoKind,
    id: &str,
    revision: Option<&str>,
    pick: P,
) -> Result<PathBuf, Error>
where
    P: Fn(&[String]) -> Result<F, Error>,
    F: IntoIterator<Item = String>,
{
    let api = ApiBuilder::from_env()
        .with_cache_dir(cache.to_path_buf())
        .with_progress(true)
        .build()
        .map_err(|e| Error::Input(format!("{id}: the hub client did not start: {e}")))?;
    let repo_type = match kind {
        RepoKind::Model => RepoType::Model,
        RepoKind::Dataset => RepoType::Dataset,
    };
    let revision = revision.unwrap_or("main").to_string();
    let repo = api.repo(Repo::with_revision(id.to_string(), repo_type, revision));
    let failed = |e: hf_hub::api::sync::ApiError| {
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or("https://huggingface.co".into());
        Error::Input(format!(
            "{id}: not in the Hugging Face cache ({}), and the download from {endpoint} \
             failed: {e} (set HF_HUB_OFFLINE=1 to use the cache alone)",
            cache.display()
        ))
    };
    let info = repo.info().map_err(failed)?;
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let mut folder = None;
    for name in pick(&names)? {
        let path = repo.get(&name).map_err(failed)?;
        // snapshots/<commit>/<name>: the folder is as many levels up as `name` is deep.
        let depth = name.split('/').count();
        folder = path.ancestors().nth(depth).map(Path::to_path_buf);
    }
    folder.ok_or_else(|| {
        Error::Input(format!(
            "{id}: the repository has none of the files dpo reads (config.json, \
             model.safetensors, tokenizer.json, adapter_config.json, ...)"
        ))
    })
}
