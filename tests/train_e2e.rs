//! The main job end to end, through the `dpo` binary as a user runs it: `dpo train` with no
//! argument but `--out`, then `dpo eval` on the held-out pairs and `dpo generate` before and
//! after DPO; the same with LoRA adapters. Slow (minutes): run with `cargo test --release`.

mod common;

use std::path::Path;

use common::dpo;

fn heldout() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data/heldout.jsonl")
        .display()
        .to_string()
}

fn mean_reward(model: &Path, adapter: Option<&Path>) -> f64 {
    let mut args = vec![
        "generate".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--data".into(),
        heldout(),
        "--score".into(),
        "--seed".into(),
        "3".into(),
    ];
    if let Some(adapter) = adapter {
        args.extend(["--adapter".into(), adapter.display().to_string()]);
    }
    let (code, stdout, stderr) = dpo(&args);
    assert_eq!(code, 0, "{stderr}");
    let last = stdout.lines().last().unwrap();
    println!("{}: {last}", model.display());
    last.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `dpo eval` of a policy (and reference arguments) on the held-out pairs, whose accuracy
/// must reach 0.9.
fn heldout_eval(policy: &[&str], reference: &[&str]) -> serde_json::Value {
    let heldout = heldout();
    let mut args = vec!["eval", "--data", &heldout, "--json"];
    args.extend_from_slice(policy);
    args.extend_from_slice(reference);
    let (code, stdout, stderr) = dpo(&args);
    assert_eq!(code, 0, "{stderr}");
    println!("held-out eval: {stdout}");
    let metrics: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        metrics["rewards/accuracies"].as_f64().unwrap() >= 0.9,
        "{stdout}"
    );
    metrics
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

    let (sft, fin) = (run.join("sft"), run.join("final"));
    let policy = ["--model", fin.to_str().unwrap()];
    let metrics = heldout_eval(&policy, &["--ref", sft.to_str().unwrap()]);
    assert!(
        metrics["rewards/margins"].as_f64().unwrap() > 0.0,
        "{metrics}"
    );

    let before = mean_reward(&sft, None);
    let after = mean_reward(&fin, None);
    println!("mean ground-truth reward of generations: sft {before:.3}, final {after:.3}");
    assert!(after > before, "sft {before} vs final {after}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `dpo train --lora-r 16`: SFT trains the fresh model, DPO only the adapters on it (the SFT
/// model is their base and the reference), and the held-out pairs and the generations show
/// that DPO worked.
#[test]
fn lora_training_learns_the_shipped_task() {
    let dir = common::temp_dir("e2e-lora");
    let run = dir.join("run");
    let (code, _, stderr) = dpo(&["train", "--lora-r", "16", "--out", run.to_str().unwrap()]);
    println!("{stderr}");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("LoRA r 16 alpha 8 on all-linear"),
        "{stderr}"
    );
    let (sft, fin) = (run.join("sft"), run.join("final"));
    assert!(fin.join("adapter_model.safetensors").exists());
    // Against the base with the adapter off, the default reference.
    let policy = [
        "--model",
        sft.to_str().unwrap(),
        "--adapter",
        fin.to_str().unwrap(),
    ];
    let metrics = heldout_eval(&policy, &[]);
    assert!(
        metrics["rewards/margins"].as_f64().unwrap() > 0.0,
        "{metrics}"
    );
    let before = mean_reward(&sft, None);
    let after = mean_reward(&sft, Some(&fin));
    println!("mean ground-truth reward of generations: sft {before:.3}, final {after:.3}");
    assert!(after > before, "sft {before} vs final {after}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `dpo train` on a Parquet file in HuggingFaceH4/ultrafeedback_binarized's shape (a prompt
/// column beside whole conversations) with gzip-compressed JSONL held out, then `dpo eval`
/// on the Parquet file: a few CPU steps, seconds.
#[test]
fn trains_on_parquet_and_gzip_jsonl() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pairs");
    let parquet = fixtures.join("ultrafeedback_binarized.parquet");
    let gz = fixtures.join("ultrafeedback_binarized.jsonl.gz");
    let dir = common::temp_dir("e2e-parquet");
    let run = dir.join("run");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let (code, _, stderr) = dpo(&[
        "train",
        "--data",
        &path(&parquet),
        "--eval-data",
        &path(&gz),
        "--preset",
        "micro",
        "--sft-steps",
        "2",
        "--steps",
        "2",
        "--batch",
        "4",
        "--samples",
        "0",
        "--backend",
        "cpu",
        "--out",
        &path(&run),
    ]);
    println!("{stderr}");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("ultrafeedback_binarized.jsonl.gz"),
        "{stderr}"
    );
    let steps = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    // The first step is logged, and the held-out evaluation at the end.
    assert!(steps.contains(r#""phase":"eval""#), "{steps}");
    let fin = run.join("final");
    let (code, stdout, stderr) = dpo(&[
        "eval",
        "--model",
        &path(&fin),
        "--data",
        &path(&parquet),
        "--backend",
        "cpu",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let metrics: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(metrics["rewards/accuracies"].is_number(), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A finished `dpo train` leaves its charts in the run folder (one point per logged step on
/// each curve), and `dpo plot` overlays two run folders and names a bad metrics line.
#[test]
fn runs_leave_charts_and_plot_overlays_them() {
    let dir = common::temp_dir("e2e-charts");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let runs = [dir.join("beta-0.1"), dir.join("beta-0.5")];
    for (run, beta) in runs.iter().zip(["0.1", "0.5"]) {
        let (code, _, stderr) = dpo(&[
            "train",
            "--preset",
            "micro",
            "--sft-steps",
            "2",
            "--steps",
            "3",
            "--beta",
            beta,
            "--samples",
            "0",
            "--backend",
            "cpu",
            "--out",
            &path(run),
        ]);
        assert_eq!(code, 0, "{stderr}");
        let svg = std::fs::read_to_string(run.join("charts.svg")).unwrap();
        let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let dpo_steps = log
            .lines()
            .filter(|l| l.contains(r#""phase":"dpo""#))
            .count();
        // chosen, rejected, margin, accuracy and the DPO loss: one polyline each.
        assert_eq!(
            polylines_with(&svg, dpo_steps),
            5,
            "{dpo_steps} DPO steps\n{svg}"
        );
        assert!(svg.contains("Reward accuracy"));
    }
    let overlay = dir.join("both.svg");
    let (code, _, stderr) = dpo(&[
        "plot",
        &path(&runs[0]),
        &path(&runs[1]),
        "--out",
        &path(&overlay),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let svg = std::fs::read_to_string(&overlay).unwrap();
    assert!(svg.contains("chosen (beta-0.1)") && svg.contains("chosen (beta-0.5)"));

    std::fs::write(runs[1].join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
    let (code, _, stderr) = dpo(&["plot", &path(&runs[1])]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("metrics.jsonl:1:") && stderr.contains("phase"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// How many `<polyline>`s in `svg` have exactly `n` points.
fn polylines_with(svg: &str, n: usize) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|tag| {
            let points = tag.split(" points=\"").nth(1).unwrap_or("");
            points
                .split('"')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .count()
                == n
        })
        .count()
}
