//! The library without the command line: SFT then DPO on the shipped task with the micro
//! preset on the CPU backend, printing the metrics of every tenth step.
//!
//! `cargo run --release --example quickstart`

use burn::tensor::{Device, read_sync};
use dpo::config::TrainConfig;
use dpo::data::{ChatTemplate, parse_pairs};
use dpo::run::SHIPPED_TRAIN;
use dpo::session;
use dpo::train::{Trainer, TrainerState};

fn main() -> Result<(), dpo::Error> {
    let device = Device::flex().autodiff();
    let config = TrainConfig {
        preset: "micro".into(),
        sft_steps: 60,
        steps: 60,
        ..TrainConfig::default()
    };
    let (name, text) = SHIPPED_TRAIN;
    let pairs = parse_pairs(name, text.as_bytes(), &ChatTemplate::default_plain())?;
    let model = session::from_scratch(&pairs, &config, &device)?;
    let tokenized = session::tokenize(&model, name, &pairs, config.max_length)?;
    let pad = model.tokenizer.eos_id();
    let mut trainer = Trainer::new(
        model.model,
        tokenized,
        pad,
        config,
        device,
        TrainerState::default(),
    );
    while !trainer.is_done() {
        // When DPO starts, the policy as SFT left it becomes the frozen reference.
        let metrics = read_sync(trainer.advance()).map_err(dpo::Error::Runtime)?;
        if metrics.step % 10 == 0 {
            println!("{}", metrics.to_json());
        }
    }
    Ok(())
}
