//! Writing files and folders so that a crash at any moment never leaves a mixture of old and
//! new contents under their name: they are written to a temporary sibling (`NAME.tmp`),
//! flushed to disk, and renamed into place. Replacing a folder takes two renames (the old one
//! to `NAME.old` first): a crash between them leaves `NAME` missing and both versions complete
//! beside it. Checkpoints always go to new names and never replace a folder (`checkpoint.rs`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `dir` with a folder holding exactly `files` (name, bytes).
pub fn write_dir(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<()> {
    let staging = sibling(dir, "tmp");
    let previous = sibling(dir, "old");
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    fs::create_dir_all(&staging)?;
    for (name, bytes) in files {
        let mut file = fs::File::create(staging.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    sync_dir(&staging)?;
    if previous.exists() {
        fs::remove_dir_all(&previous)?;
    }
    if dir.exists() {
        fs::rename(dir, &previous)?;
    }
    fs::rename(&staging, dir)?;
    if previous.exists() {
        fs::remove_dir_all(&previous)?;
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replaces one file atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staging = sibling(path, "tmp");
    let mut file = fs::File::create(&staging)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&staging, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // Directories can be opened and fsynced on Unix; elsewhere renames are the best we get.
    #[cfg(unix)]
    fs::File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?
    .sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_folder_whole() {
        let root = std::env::temp_dir().join(format!("dpo-atomic-{}", std::process::id()));
        let dir = root.join("ckpt");
        write_dir(&dir, &[("a", b"1"), ("b", b"2")]).unwrap();
        write_dir(&dir, &[("a", b"3")]).unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"3");
        assert!(!dir.join("b").exists(), "the old folder's files are gone");
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ckpt"], "no staging or old folder is left");
        fs::remove_dir_all(root).unwrap();
    }
}
