//! Bad input never panics: each case exits 2 with one line naming the file, line and field.

mod common;

use std::process::Command;

fn dpo(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `dpo train` on a pairs file with `content` and checks the error line.
fn check(name: &str, content: &[u8], expected: &[&str]) {
    let dir = common::temp_dir(&format!("bad-{name}"));
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, content).unwrap();
    let out = dir.join("run");
    let (code, stderr) = dpo(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{name}: exit status, stderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{name}: one error line in {stderr}");
    for needle in expected {
        assert!(
            errors[0].contains(needle),
            "{name}: `{needle}` missing from `{}`",
            errors[0]
        );
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{name}: {stderr}"
    );
    assert!(
        !out.join("metrics.jsonl").exists(),
        "{name}: nothing trained"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

const GOOD: &str = r#"{"prompt": "Review:", "chosen": " great", "rejected": " awful"}"#;

#[test]
fn malformed_json() {
    check(
        "malformed",
        format!("{GOOD}\n{{\"prompt\": \"x\", \n").as_bytes(),
        &["malformed.jsonl:2"],
    );
}

#[test]
fn missing_field() {
    check(
        "missing",
        format!("{GOOD}\n{GOOD}\n{{\"prompt\": \"a\", \"chosen\": \"b\"}}\n").as_bytes(),
        &["missing.jsonl:3", "rejected"],
    );
}

#[test]
fn wrong_type() {
    check(
        "wrongtype",
        br#"{"prompt": "a", "chosen": 5, "rejected": "c"}"#,
        &["wrongtype.jsonl:1", "chosen"],
    );
}

#[test]
fn empty_completion() {
    check(
        "emptycompletion",
        format!("{GOOD}\n{{\"prompt\": \"a\", \"chosen\": \"\", \"rejected\": \"c\"}}").as_bytes(),
        &["emptycompletion.jsonl:2", "chosen"],
    );
}

#[test]
fn empty_file() {
    check("empty", b"", &["empty.jsonl"]);
}

#[test]
fn missing_file() {
    let (code, stderr) = dpo(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        "/nonexistent/pairs.jsonl",
        "--out",
        "/tmp/dpo-never-written",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/pairs.jsonl"), "{stderr}");
    assert!(!std::path::Path::new("/tmp/dpo-never-written/metrics.jsonl").exists());
}

#[test]
fn bad_settings_name_the_field() {
    let dir = common::temp_dir("badconfig");
    let toml = dir.join("bad.toml");
    std::fs::write(&toml, "steps = 5\nbeta_typo = 0.2\n").unwrap();
    let (code, stderr) = dpo(&[
        "train",
        "--config",
        toml.to_str().unwrap(),
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("beta_typo"),
        "{stderr}"
    );
    let (code, stderr) = dpo(&["train", "--loss", "dpo_magic"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("dpo_magic"), "{stderr}");
    let (code, stderr) = dpo(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--data",
        toml.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("config.json"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
