//! How `dpo train` shows its progress.

use std::io::IsTerminal;

use dpo::dpo::Metrics;
use dpo::jobs::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal, plain lines otherwise.
pub struct Reporter {
    bar: Option<ProgressBar>,
    json: bool,
    total: usize,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        Reporter {
            bar: None,
            json,
            total: 0,
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Progress for Reporter {
    fn start(&mut self, total: usize, done: usize) {
        self.total = total;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64).with_position(done as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
                )
                .expect("valid template"),
            );
            self.bar = Some(bar);
        }
    }

    fn metrics(&mut self, m: &Metrics) {
        if self.json {
            println!("{}", m.to_json());
        }
        let summary = match (m.rewards_chosen, m.rewards_rejected, m.rewards_accuracies) {
            (Some(c), Some(r), Some(a)) => format!(
                "{:?} loss {:.4} chosen {c:+.3} rejected {r:+.3} acc {a:.2}",
                m.phase, m.loss
            ),
            _ => format!("{:?} loss {:.4}", m.phase, m.loss),
        };
        match &self.bar {
            Some(bar) => {
                bar.set_position(m.step as u64);
                bar.set_message(summary.to_lowercase());
            }
            None => {
                // Plain output: about 20 lines per run, plus the first step and every eval.
                let every = (self.total / 20).max(1);
                if m.step.is_multiple_of(every) || m.step == 1 || m.phase == dpo::dpo::Phase::Eval {
                    eprintln!(
                        "step {}/{} {} ({:.0} ms)",
                        m.step,
                        self.total,
                        summary.to_lowercase(),
                        m.ms.unwrap_or(0.0)
                    );
                }
            }
        }
    }

    fn message(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
