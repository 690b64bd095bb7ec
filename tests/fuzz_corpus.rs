//! The fuzz targets' corpus and every crash they found, replayed through the same target
//! functions in an ordinary build: CI checks them in seconds, without cargo-fuzz, nightly or
//! an instrumented build of burn (see fuzz/RESULTS.md).

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

#[test]
fn fuzz_corpus_and_regressions_replay_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, run) in harness::TARGETS {
        let mut inputs = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                // A panic fails the test; its message is the target's, the file names the input.
                eprintln!("{}", path.display());
                run(&bytes);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "no corpus for fuzz target {target}");
    }
}

/// The model seeds are valid models, so that fuzzing starts from inputs that reach `hf::load`.
#[test]
fn model_seeds_pass_the_check() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/model_files");
    let mut seen = 0;
    for entry in std::fs::read_dir(seeds).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("seed-")
        {
            let files = harness::model_files_of(&std::fs::read(&path).unwrap()).unwrap();
            dpo::io::hf::check(&files, "seed").unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen} model seeds");
}
