//! Nothing lost, nothing corrupt: a run killed with SIGKILL at random moments and resumed
//! each time ends exactly where an uninterrupted run ends; a diverging run stops at its first
//! non-finite step and keeps its last good checkpoint.
//!
//! The kill test kills 20 times (`DPO_KILL_ROUNDS=100` for a longer local run); its random
//! moments come from `DPO_KILL_SEED`, or from the clock, and the seed is printed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::optim::OptimizerRecord;
use burn::tensor::{Bytes, Device};
use dpo::io::checkpoint::Checkpoints;
use dpo::io::hf;
use dpo::jobs::read_model;
use dpo::model::weights::named_tensors;
use rand::{RngExt, SeedableRng};

const KEEP: usize = 2;

/// A small run with a checkpoint after every step, and bco_pair's running mean in its state.
fn train_args(out: &Path) -> Vec<String> {
    let args = "train --backend cpu --preset micro --sft-steps 5 --steps 7 --batch 8 \
                --loss sigmoid,bco_pair --save-every 1 --keep-checkpoints 2 --samples 0 --resume";
    let mut args: Vec<String> = args.split_whitespace().map(String::from).collect();
    args.extend(["--out".into(), out.display().to_string()]);
    args
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_uninterrupted_result() {
    let rounds: usize = env_or("DPO_KILL_ROUNDS", 20);
    let seed: u64 = env_or("DPO_KILL_SEED", clock_seed());
    println!("{rounds} kills, DPO_KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = common::temp_dir("kill");

    // The uninterrupted run, timed: until its first step, and in all.
    let whole = dir.join("whole");
    let started = Instant::now();
    let mut child = spawn(&train_args(&whole));
    let mut first_step = None;
    while child.try_wait().unwrap().is_none() {
        if first_step.is_none() && whole.join("metrics.jsonl").exists() {
            first_step = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success());
    let total = started.elapsed();
    let startup = first_step.expect("a step was logged");
    println!("uninterrupted: first step after {startup:?}, done after {total:?}");

    // Kill moments spread so that `rounds` kills cover the run once: each lands in the start-up
    // or up to two average slices of training beyond it.
    let window = startup + (total - startup) * 2 / rounds as u32;
    let cut = dir.join("cut");
    let (mut kills, mut completions) = (0, 0);
    while kills < rounds {
        let mut child = spawn(&train_args(&cut));
        let deadline = Instant::now() + window.mul_f64(rng.random::<f64>());
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        match child.try_wait().unwrap() {
            Some(status) => {
                let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
                assert!(status.success(), "a resumed run failed: {stderr}");
                completions += 1;
            }
            None => {
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                kills += 1;
            }
        }
        check_checkpoints(&cut);
    }
    let (code, _, stderr) = common::dpo(&train_args(&cut));
    assert_eq!(code, 0, "{stderr}");
    println!("{kills} kills; {completions} runs completed between them");

    assert_eq!(
        metrics(&whole),
        metrics(&cut),
        "metrics differ after resuming"
    );
    let weights = |run: &Path| std::fs::read(run.join("final/model.safetensors")).unwrap();
    assert!(weights(&whole) == weights(&cut), "final weights differ");
    let steps = |run: &Path| Checkpoints::new(run, KEEP).steps().unwrap();
    assert_eq!(steps(&cut), steps(&whole));
    assert_eq!(steps(&whole), [11, 12]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every checkpoint a killed run left is complete and readable, and old ones are pruned
/// (one more than `KEEP` when the kill fell between writing a checkpoint and pruning).
fn check_checkpoints(run: &Path) {
    let checkpoints = Checkpoints::new(run, KEEP);
    let steps = checkpoints.steps().unwrap();
    assert!(steps.len() <= KEEP + 1, "checkpoints {steps:?}");
    for step in steps {
        let path = checkpoints.path(step);
        read_model(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let state = std::fs::read(path.join("trainer_state.json")).unwrap();
        let state: dpo::train::TrainerState = serde_json::from_slice(&state).unwrap();
        assert_eq!(state.step, step);
        let optimizer = std::fs::read(path.join("optimizer.bpk")).unwrap();
        let optimizer = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(optimizer));
        let optimizer = optimizer.unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        assert!(
            !optimizer.is_empty(),
            "{}: no optimizer moments",
            path.display()
        );
    }
}

/// A diverging run stops with a message naming the step, and its last checkpoint is the last
/// good step: readable, with finite weights.
#[test]
fn absurd_learning_rate_stops_at_the_first_non_finite_step() {
    let dir = common::temp_dir("nan");
    let run = dir.join("run");
    let args = "train --backend cpu --preset micro --sft-steps 20 --steps 5 --sft-lr 1e9 \
                --samples 0 --save-every 1 --out";
    let mut args: Vec<String> = args.split_whitespace().map(String::from).collect();
    args.push(run.display().to_string());
    let (code, _, stderr) = common::dpo(&args);
    assert_eq!(code, 1, "{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
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
    let last = Checkpoints::new(&run, 3)
        .latest()
        .unwrap()
        .expect("a checkpoint");
    assert_eq!(
        last.0,
        step - 1,
        "the newest checkpoint is the last good step"
    );
    assert!(error.contains(&last.1.display().to_string()), "{error}");
    let logged = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        logged.lines().count(),
        step - 1,
        "the bad step is not logged"
    );
    let (_, (name, files)) = read_model(&last.1).unwrap();
    let (_, model) = hf::load(&files, &name, &Device::flex()).unwrap();
    for tensor in named_tensors(&model) {
        let values = tensor.tensor.into_data().try_into_vec::<f32>().unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{} is not finite",
            tensor.name
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn spawn(args: &[String]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// metrics.jsonl without the timings.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            value.as_object_mut().unwrap().remove("ms");
            value
        })
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_nanos() as u64
}
