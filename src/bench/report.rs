//! Running cases in child processes and printing what they measured.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::{Case, CaseResult, Timing};

/// A case's outcome: its measurements, or why it has none.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Row {
    Measured(CaseResult),
    Failed {
        workload: String,
        backend: String,
        mode: String,
        precision: String,
        error: String,
    },
}

/// Runs every case in its own child process of `exe` (this program, which must answer
/// `bench --case SPEC` with one JSON line), reporting each row as it completes.
pub fn run_all(
    exe: &Path,
    cases: &[Case],
    timing: &Timing,
    mut on_row: impl FnMut(&Row),
) -> Vec<Row> {
    cases
        .iter()
        .map(|case| {
            let row = run_child(exe, case, timing);
            on_row(&row);
            row
        })
        .collect()
}

fn run_child(exe: &Path, case: &Case, timing: &Timing) -> Row {
    let failed = |error: String| Row::Failed {
        workload: case.workload.name.into(),
        backend: case.backend.name().into(),
        mode: case.mode_name(),
        precision: case.precision.name().into(),
        error,
    };
    let numbers = [
        timing.steps.to_string(),
        timing.warmup.to_string(),
        timing.seed.to_string(),
    ];
    let output = Command::new(exe)
        .args(["bench", "--case", &case.spec()])
        .args([
            "--steps",
            &numbers[0],
            "--warmup",
            &numbers[1],
            "--seed",
            &numbers[2],
        ])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => return failed(format!("could not start {}: {e}", exe.display())),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout
        .lines()
        .find_map(|line| serde_json::from_str::<CaseResult>(line).ok());
    match (output.status.success(), result) {
        (true, Some(result)) => Row::Measured(result),
        _ => failed(format!(
            "{} ({})",
            last_error(&String::from_utf8_lossy(&output.stderr)),
            output.status
        )),
    }
}

/// The child's error message: its stderr from the last line that starts one (a panic's
/// cause follows its "panicked at" line), on one line, without backtrace noise (an aborted
/// allocation says only "memory allocation of N bytes failed").
fn last_error(stderr: &str) -> String {
    let noise = |l: &str| {
        l.trim().is_empty()
            || l.starts_with(char::is_whitespace)
            || l.starts_with("note:")
            || l.starts_with("stack backtrace:")
    };
    let lines: Vec<&str> = stderr.lines().filter(|l| !noise(l)).collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("error:") || l.starts_with("internal error:"))
        .unwrap_or(lines.len().saturating_sub(1));
    let message = lines[from..].join(" ");
    match message.is_empty() {
        true => "no message".into(),
        false => message.chars().take(400).collect(),
    }
}

const HEADER: [&str; 8] = [
    "workload",
    "backend",
    "mode",
    "precision",
    "ms/step",
    "tokens/s",
    "peak MiB",
    "largest MiB",
];

impl Row {
    /// The row as one line of [`table`].
    pub fn line(&self) -> String {
        let mib = |bytes: Option<u64>| {
            bytes.map_or("-".into(), |b| {
                format!("{:.1}", b as f64 / (1 << 20) as f64)
            })
        };
        match self {
            Row::Measured(r) => format!(
                "{:<10} {:<7} {:<12} {:<9} {:>10.1} {:>11.0} {:>10} {:>12}",
                r.workload,
                r.backend,
                r.mode,
                r.precision,
                r.ms_per_step,
                r.tokens_per_s,
                mib(r.peak_bytes),
                mib(r.largest_alloc_bytes)
            ),
            Row::Failed {
                workload,
                backend,
                mode,
                precision,
                error,
            } => format!("{workload:<10} {backend:<7} {mode:<12} {precision:<9} failed: {error}"),
        }
    }
}

/// The rows as an aligned text table, then the devices they ran on.
pub fn table(rows: &[Row]) -> String {
    let [w, b, m, p, ms, tps, peak, largest] = HEADER;
    let mut out =
        format!("{w:<10} {b:<7} {m:<12} {p:<9} {ms:>10} {tps:>11} {peak:>10} {largest:>12}\n");
    let mut devices: Vec<&str> = Vec::new();
    for row in rows {
        out += &row.line();
        out.push('\n');
        if let Row::Measured(r) = row
            && !devices.contains(&r.device.as_str())
        {
            devices.push(&r.device);
        }
    }
    for device in devices {
        out += &format!("{device}\n");
    }
    out
}
