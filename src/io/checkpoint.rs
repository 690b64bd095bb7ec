//! A run's checkpoints: `checkpoints/step-000123/`, the newest `keep` kept.
//!
//! Each is written whole or not at all (`atomic::write_dir` at `path(step)`: staged in
//! `step-….tmp`, fsynced, renamed), then `prune` removes old ones by renaming them to
//! `step-….del` first: a folder carrying a checkpoint's name is always complete, whenever the
//! process dies.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const PREFIX: &str = "step-";

pub struct Checkpoints {
    dir: PathBuf,
    keep: usize,
}

impl Checkpoints {
    /// The checkpoints of the run folder `run`, keeping the newest `keep` (at least one).
    pub fn new(run: &Path, keep: usize) -> Self {
        Checkpoints {
            dir: run.join("checkpoints"),
            keep: keep.max(1),
        }
    }

    pub fn path(&self, step: usize) -> PathBuf {
        self.dir.join(format!("{PREFIX}{step:06}"))
    }

    /// The steps of the complete checkpoints, oldest first.
    pub fn steps(&self) -> io::Result<Vec<usize>> {
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            entries => entries?,
        };
        let mut steps = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let step = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
            // Only all-digit names: `step-7.tmp` and `step-7.del` are not checkpoints.
            if let Some(step) = step.and_then(|s| s.parse::<usize>().ok()) {
                steps.push(step);
            }
        }
        steps.sort_unstable();
        Ok(steps)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> io::Result<Option<(usize, PathBuf)>> {
        Ok(self.steps()?.pop().map(|step| (step, self.path(step))))
    }

    /// Run after writing the checkpoint at `path(step)` (with `atomic::write_dir`): removes all
    /// but the newest `keep`, and whatever interrupted writes and removals left behind.
    pub fn prune(&self) -> io::Result<()> {
        let steps = self.steps()?;
        for old in &steps[..steps.len().saturating_sub(self.keep)] {
            let doomed = self.dir.join(format!("{PREFIX}{old:06}.del"));
            fs::rename(self.path(*old), &doomed)?;
        }
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("del" | "tmp" | "old")) {
                fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::atomic;

    #[test]
    fn keeps_the_newest_and_ignores_leftovers() {
        let run = std::env::temp_dir().join(format!("dpo-ckpt-{}", std::process::id()));
        let checkpoints = Checkpoints::new(&run, 2);
        assert_eq!(checkpoints.latest().unwrap(), None);
        for step in [3, 6, 9] {
            atomic::write_dir(&checkpoints.path(step), &[("state", b"x")]).unwrap();
            checkpoints.prune().unwrap();
        }
        assert_eq!(checkpoints.steps().unwrap(), vec![6, 9]);
        // What a process killed while writing step 12 or removing step 6 leaves behind.
        fs::create_dir_all(run.join("checkpoints/step-000012.tmp")).unwrap();
        fs::create_dir_all(run.join("checkpoints/step-000006.del")).unwrap();
        assert_eq!(checkpoints.latest().unwrap().unwrap().0, 9);
        atomic::write_dir(&checkpoints.path(12), &[("state", b"y")]).unwrap();
        checkpoints.prune().unwrap();
        let mut names: Vec<_> = fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["step-000009", "step-000012"]);
        assert_eq!(fs::read(checkpoints.path(12).join("state")).unwrap(), b"y");
        fs::remove_dir_all(run).unwrap();
    }
}
