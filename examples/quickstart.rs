//! The library without the command line: SFT then DPO on the shipped task with the micro
//! preset on the CPU backend, through the same run driver as `dpo train` and the browser,
//! printing the metrics of every tenth step and the held-out evaluation.
//!
//! `cargo run --release --example quickstart`

use burn::tensor::{Device, read_sync};
use dpo::config::TrainConfig;
use dpo::model::Preset;
use dpo::train::{self, Event, ModelSource, PairsFile, Report, RunSpec, Start};

fn main() -> Result<(), dpo::Error> {
    let prepared = train::prepare(RunSpec {
        config: TrainConfig {
            preset: Preset::Micro,
            sft_steps: 60,
            steps: 60,
            ..TrainConfig::default()
        },
        model: ModelSource::Preset,
        train: PairsFile::shipped_train(),
        heldout: Some(PairsFile::shipped_heldout()),
        adapter: None,
        report: Report::default(),
    })?;
    let mut run = prepared.start(&Device::flex(), Start::Fresh)?;
    // Each call does one unit of work: a step, the generations before and after DPO, freezing
    // the reference when SFT ends, the held-out evaluation.
    while let Some(event) = read_sync(run.next())? {
        match event {
            Event::Step { metrics } if metrics.step % 10 == 0 => println!("{}", metrics.to_json()),
            Event::Generations { when, items } => {
                for g in items {
                    println!("{when:?}: {}{} [reward {:+.1}]", g.prompt, g.text, g.reward);
                }
            }
            Event::Evaluation { metrics, .. } => println!("held-out: {}", metrics.to_json()),
            _ => {}
        }
    }
    Ok(())
}
