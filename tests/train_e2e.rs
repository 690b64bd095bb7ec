//! The main job end to end, through the `dpo` binary as a user runs it: `dpo train` with no
//! argument but `--out`, then `dpo eval` on the held-out pairs and `dpo generate` before and
//! after DPO. Slow (minutes): run with `cargo test --release`.

mod common;

use std::path::Path;
use std::process::Command;

fn dpo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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

/// A run killed mid-way and resumed writes the same metrics as one that never stopped.
#[test]
fn killed_and_resumed_run_matches_an_uninterrupted_one() {
    let dir = common::temp_dir("resume");
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--backend",
            "cpu",
            "--preset",
            "micro",
            "--sft-steps",
            "8",
            "--steps",
            "8",
            "--save-every",
            "3",
            "--samples",
            "0",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let whole = dir.join("whole");
    let (code, _, stderr) = dpo(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{stderr}");

    // Kill a second run once it has logged 11 steps (past its checkpoint at step 9).
    let cut = dir.join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args(&cut))
        .spawn()
        .unwrap();
    let metrics = cut.join("metrics.jsonl");
    loop {
        let lines = std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 11 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut resume = args(&cut);
    resume.push("--resume".into());
    let (code, _, stderr) = dpo(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");

    let read = |path: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("ms");
                v
            })
            .collect()
    };
    let (a, b) = (read(&whole), read(&cut));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "metrics differ after resuming");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A diverging run stops with a message naming the step, and its last checkpoint stays
/// readable and finite.
#[test]
fn absurd_learning_rate_stops_at_the_first_non_finite_loss() {
    let dir = common::temp_dir("nan");
    let run = dir.join("run");
    let (code, _, stderr) = dpo(&[
        "train",
        "--backend",
        "cpu",
        "--preset",
        "micro",
        "--sft-steps",
        "20",
        "--steps",
        "5",
        "--sft-lr",
        "1e9",
        "--samples",
        "0",
        "--save-every",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(error.contains("NaN") || error.contains("inf"), "{error}");
    let step: usize = error
        .split("at step ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["step"].as_u64().unwrap() as usize,
        step - 1,
        "the checkpoint is the last good step"
    );
    let logged = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        logged.lines().count(),
        step - 1,
        "the bad step is not logged"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
