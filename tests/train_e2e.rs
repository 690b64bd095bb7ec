//! The main job end to end, through the `dpo` binary as a user runs it: `dpo train` with no
//! argument but `--out`, then `dpo eval` on the held-out pairs and `dpo generate` before and
//! after DPO. Slow (minutes): run with `cargo test --release`.

mod common;

use std::path::Path;

use common::dpo;

fn heldout() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data/heldout.jsonl")
        .display()
        .to_string()
}

fn mean_reward(model: &Path) -> f64 {
    let (code, stdout, stderr) = dpo(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &heldout(),
        "--score",
        "--seed",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let last = stdout.lines().last().unwrap();
    println!("{}: {last}", model.display());
    last.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn default_training_learns_the_shipped_task() {
    let dir = common::temp_dir("e2e");
    let run = dir.join("run");
    let started = std::time::Instant::now();
    let (code, _, stderr) = dpo(&["train", "--out", run.to_str().unwrap()]);
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!("dpo train took {minutes:.1} min\n{stderr}");
    assert_eq!(code, 0, "{stderr}");
    assert!(minutes < 10.0, "took {minutes:.1} minutes");
    for file in [
        "metrics.jsonl",
        "sft/model.safetensors",
        "sft/config.json",
        "sft/tokenizer.json",
        "final/model.safetensors",
    ] {
        assert!(run.join(file).exists(), "{file} missing");
    }

    let (code, stdout, stderr) = dpo(&[
        "eval",
        "--model",
        run.join("final").to_str().unwrap(),
        "--ref",
        run.join("sft").to_str().unwrap(),
        "--data",
        &heldout(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    println!("held-out eval: {stdout}");
    let metrics: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        metrics["rewards/accuracies"].as_f64().unwrap() >= 0.9,
        "{stdout}"
    );
    assert!(
        metrics["rewards/margins"].as_f64().unwrap() > 0.0,
        "{stdout}"
    );

    let before = mean_reward(&run.join("sft"));
    let after = mean_reward(&run.join("final"));
    println!("mean ground-truth reward of generations: sft {before:.3}, final {after:.3}");
    assert!(after > before, "sft {before} vs final {after}");
    std::fs::remove_dir_all(dir).unwrap();
}
