//! `dpo bench` runs the product's training step and prints numbers a script can read. Timings
//! are not asserted (they depend on the machine), only that every figure is there and sane.

mod common;

#[test]
fn bench_prints_one_json_line_per_case() {
    let out = common::dpo_cli(&[
        "bench",
        "--workloads",
        "micro",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--backend",
        "cpu",
        "--json",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let rows: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let modes: Vec<_> = rows.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["two-model", "precomputed"]);
    let positive = |row: &serde_json::Value, key: &str| {
        let value = row[key].as_f64();
        assert!(value.is_some_and(|v| v > 0.0), "{key} in {row}");
        value.unwrap()
    };
    for row in &rows {
        assert_eq!(row["workload"], "micro");
        assert_eq!(row["backend"], "cpu");
        assert!(row["loss"].as_f64().is_some_and(f64::is_finite), "{row}");
        let ms = positive(row, "ms_per_step");
        let tokens = positive(row, "tokens_per_s");
        // The benchmark's unit: 2 x pairs x seq tokens per step (micro: 4 pairs of 64 tokens).
        let expected = 2.0 * 4.0 * 64.0 / (ms / 1e3);
        assert!((tokens - expected).abs() <= 0.01 * expected + 1.0, "{row}");
        if cfg!(unix) {
            positive(row, "peak_bytes");
            assert_eq!(row["peak_source"], "process RSS");
        }
        assert!(
            row["largest_alloc_bytes"].is_null(),
            "the CPU backend has no pools"
        );
    }
    positive(&rows[1], "precompute_ms");
}

#[test]
fn bench_rejects_an_unknown_workload() {
    let out = common::dpo_cli(&["bench", "--workloads", "tiny,huge"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown name `huge`"), "{}", out.stderr);
}
