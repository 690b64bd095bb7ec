//! Hugging Face hub ids (`Qwen/Qwen2.5-0.5B`) for models, adapters and datasets, resolved to
//! a folder of the local cache that `transformers`, `datasets` and `huggingface_hub` fill:
//!
//! ```text
//! $HF_HUB_CACHE (or $HF_HOME/hub, or ~/.cache/huggingface/hub)
//!   models--Qwen--Qwen2.5-0.5B/
//!     refs/main                  the commit a branch or tag points to
//!     snapshots/<commit>/...     the repository's files at that commit (links into blobs/)
//!   datasets--HuggingFaceH4--ultrafeedback_binarized/...
//! ```
//!
//! Nothing here touches the network: a repository missing from the cache is reported with
//! the command that downloads it.

use std::path::{Path, PathBuf};

use crate::Error;

mod download;

/// What a hub id names: the cache keeps the kinds apart by folder prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    fn prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

/// The hub cache folder, from the environment as huggingface_hub reads it.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let cache = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(var("HOME").unwrap_or_default()).join(".cache"));
        cache.join("huggingface")
    });
    home.join("hub")
}

/// A model or adapter folder: `arg` itself when it exists; otherwise, when it reads as a hub
/// id (`name` or `org/name`), that repository's snapshot at `revision` (default `main`) in
/// the cache, downloaded first when the cache lacks it and downloads are allowed. Anything
/// else is returned unchanged, for the caller's "not found" to name it.
pub fn model_folder(arg: &Path, revision: Option<&str>) -> Result<PathBuf, Error> {
    let Some(id) = hub_id(arg) else {
        return Ok(arg.to_path_buf());
    };
    let cache = cache_dir();
    match snapshot(&cache, RepoKind::Model, id, revision) {
        Err(_) if !offline() => {
            download::repo(&cache, RepoKind::Model, id, revision, download::model_files)
        }
        found => found,
    }
}

/// A pairs file: `arg` itself when it is a file; the file of `split` when it is a dataset
/// folder or a dataset id (from the cache, downloaded first as for models).
pub fn pairs_file(arg: &Path, split: &str) -> Result<PathBuf, Error> {
    let name = arg.display().to_string();
    if arg.is_dir() {
        return split_file(arg, &name, split);
    }
    let Some(id) = hub_id(arg) else {
        return Ok(arg.to_path_buf());
    };
    let cache = cache_dir();
    match snapshot(&cache, RepoKind::Dataset, id, None) {
        Ok(folder) => split_file(&folder, id, split),
        Err(_) if !offline() => {
            let pick = |files: &[String]| pick_split(files, id, split);
            let folder = download::repo(&cache, RepoKind::Dataset, id, None, pick)?;
            split_file(&folder, id, split)
        }
        Err(missing) => Err(missing),
    }
}

/// `arg` as a hub id, when it is one and no local file or folder has its name.
fn hub_id(arg: &Path) -> Option<&str> {
    arg.to_str().filter(|id| !arg.exists() && is_repo_id(id))
}

/// huggingface_hub's switch for "use the cache only".
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
}

/// Hub ids are one or two names of letters, digits, `-`, `_` and `.`, not starting with `.`
/// (so `./model` and `../runs/x` stay paths).
fn is_repo_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    let name = |part: &&str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (1..=2).contains(&parts.len()) && parts.iter().all(name)
}

/// The snapshot folder of `id` at `revision` (a branch, a tag or a commit hash) in `cache`.
pub fn snapshot(
    cache: &Path,
    kind: RepoKind,
    id: &str,
    revision: Option<&str>,
) -> Result<PathBuf, Error> {
    let repo = cache.join(format!("{}--{}", kind.prefix(), id.replace('/', "--")));
    let revision = revision.unwrap_or("main");
    let download = || {
        let kind_flag = match kind {
            RepoKind::Model => "",
            RepoKind::Dataset => " --repo-type dataset",
        };
        let revision_flag = match revision {
            "main" => String::new(),
            other => format!(" --revision {other}"),
        };
        format!("hf download {id}{kind_flag}{revision_flag}")
    };
    if !repo.is_dir() {
        return Err(Error::Input(format!(
            "{id}: no such folder, and not in the Hugging Face cache ({}); download it with \
             `{}` (huggingface_hub), or set HF_HUB_CACHE or HF_HOME to the cache that has it",
            cache.display(),
            download()
        )));
    }
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(commit) => commit.trim().to_string(),
        // A commit hash names its snapshot directly.
        Err(_) if is_commit(revision) => revision.to_string(),
        Err(_) => {
            return Err(Error::Input(format!(
                "{id}: revision `{revision}` is not in the cache ({}); download it with `{}`",
                repo.display(),
                download()
            )));
        }
    };
    let folder = repo.join("snapshots").join(&commit);
    if !folder.is_dir() {
        return Err(Error::Input(format!(
            "{id}: the cache has no files for commit {commit} ({}); download them with `{}`",
            folder.display(),
            download()
        )));
    }
    Ok(folder)
}

/// The data file of `split` in a dataset folder, laid out as the hub's converter and
/// `datasets` write them: `data/train_prefs-00000-of-00001.parquet`, `test.jsonl`,
/// `default/train/0000.parquet`...
pub fn split_file(folder: &Path, id: &str, split: &str) -> Result<PathBuf, Error> {
    let mut files = Vec::new();
    collect_data_files(folder, folder, &mut files);
    let [file] = pick_split(&files, id, split)?;
    Ok(folder.join(file))
}

/// The one pairs file of `split` among a dataset's files (paths relative to its root). A split
/// in several shards is refused with their names: one run reads one file.
fn pick_split(files: &[String], id: &str, split: &str) -> Result<[String; 1], Error> {
    let data = |f: &&String| {
        [".parquet", ".jsonl", ".jsonl.gz"]
            .iter()
            .any(|e| f.ends_with(e))
    };
    let split_of = |file: &str| -> String {
        let mut parts = file.rsplit('/');
        let name = parts.next().unwrap_or_default();
        let stem = name.split(['-', '.']).next().unwrap_or_default();
        // `default/train/0000.parquet`: the folder names the split.
        match stem.chars().all(|c| c.is_ascii_digit()) {
            true => parts.next().unwrap_or_default().to_string(),
            false => stem.to_string(),
        }
    };
    let mut files: Vec<&String> = files.iter().filter(data).collect();
    files.sort();
    let matching: Vec<&String> = files
        .iter()
        .copied()
        .filter(|f| split_of(f) == split)
        .collect();
    match matching.as_slice() {
        [one] => Ok([one.to_string()]),
        [] => {
            let mut splits: Vec<String> = files.iter().map(|f| split_of(f)).collect();
            splits.sort();
            splits.dedup();
            let splits = match splits.is_empty() {
                true => "none".to_string(),
                false => splits.join(", "),
            };
            Err(Error::Input(format!(
                "{id}: no data file for split `{split}` (splits there: {splits}); choose one with --split"
            )))
        }
        many => Err(Error::Input(format!(
            "{id}: split `{split}` is in {} files ({}); pass one of them as a path",
            many.len(),
            many.iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Every file under `dir`, as paths relative to `root` with `/` separators.
fn collect_data_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_data_files(root, &path, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<_> = relative.iter().filter_map(|p| p.to_str()).collect();
            out.push(parts.join("/"));
        }
    }
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache with one model at two commits, `main` pointing at the second.
    fn cache() -> PathBuf {
        let root = std::env::temp_dir().join(format!("dpo-hub-{}", std::process::id()));
        let repo = root.join("models--Org--Tiny");
        for commit in ["a".repeat(40), "b".repeat(40)] {
            std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "b".repeat(40)).unwrap();
        root
    }

    #[test]
    fn ids_resolve_through_refs_and_commits() {
        let root = cache();
        let snapshots = root.join("models--Org--Tiny/snapshots");
        let main = snapshot(&root, RepoKind::Model, "Org/Tiny", None).unwrap();
        assert_eq!(main, snapshots.join("b".repeat(40)));
        let old = snapshot(&root, RepoKind::Model, "Org/Tiny", Some(&"a".repeat(40))).unwrap();
        assert_eq!(old, snapshots.join("a".repeat(40)));
        let missing = snapshot(&root, RepoKind::Model, "Org/Other", None).unwrap_err();
        assert!(
            missing.to_string().contains("`hf download Org/Other`"),
            "{missing}"
        );
        let branch = snapshot(&root, RepoKind::Dataset, "Org/Tiny", Some("v2")).unwrap_err();
        assert!(
            branch
                .to_string()
                .contains("hf download Org/Tiny --repo-type dataset --revision v2"),
            "{branch}"
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_split_is_found_by_file_or_folder_name() {
        let root = std::env::temp_dir().join(format!("dpo-hub-splits-{}", std::process::id()));
        let files = [
            "data/train_prefs-00000-of-00001.parquet",
            "data/test_prefs-00000-of-00001.parquet",
            "data/train_sft-00000-of-00002.parquet",
            "data/train_sft-00001-of-00002.parquet",
            "default/valid/0000.parquet",
            "README.md",
        ];
        for file in files {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), b"").unwrap();
        }
        let found = |split| split_file(&root, "Org/Set", split);
        assert_eq!(found("train_prefs").unwrap(), root.join(files[0]));
        assert_eq!(found("valid").unwrap(), root.join(files[4]));
        let shards = found("train_sft").unwrap_err().to_string();
        assert!(shards.contains("is in 2 files"), "{shards}");
        let missing = found("train").unwrap_err().to_string();
        assert!(
            missing.contains("(splits there: test_prefs, train_prefs, train_sft, valid)"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn paths_are_not_ids() {
        assert!(is_repo_id("Qwen/Qwen2.5-0.5B"));
        assert!(is_repo_id("gpt2"));
        for path in ["./model", "../runs/x", "/abs/path", "a/b/c", "runs/x y", ""] {
            assert!(!is_repo_id(path), "{path}");
        }
    }
}
