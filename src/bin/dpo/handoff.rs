//! `dpo handoff RUN_DIR`: flags to `jobs::handoff`, and what it wrote on stdout.

use std::path::PathBuf;

use clap::Args;
use dpo::Error;
use dpo::jobs::handoff::{self, HandoffOptions, RunInputs};

#[derive(Args)]
pub struct HandoffArgs {
    /// The run folder (train_config.json, run_inputs.json, sft/).
    run: PathBuf,
    /// Where to write the TRL and accelerate files. Default: RUN_DIR/handoff.
    #[arg(long)]
    out: Option<PathBuf>,
    /// GPUs over all machines (accelerate's num_processes); the global batch stays the run's.
    #[arg(long, default_value_t = 8)]
    processes: usize,
    /// Machines the GPUs are on.
    #[arg(long, default_value_t = 1)]
    machines: usize,
    /// auto (DDP, or FSDP when a whole copy per GPU would not fit), ddp, fsdp, or deepspeed (ZeRO-3).
    #[arg(long, default_value = "auto")]
    strategy: String,
    /// Hand off SFT too, from the run's starting model, instead of starting DPO from RUN_DIR/sft.
    #[arg(long)]
    redo_sft: bool,
    /// The pairs the run trained on, if not as recorded in run_inputs.json (or it has none).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The run's held-out pairs, if not as recorded.
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// The model folder the run started from, if not as recorded.
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn handoff_cmd(args: HandoffArgs) -> Result<(), Error> {
    let plan = handoff::plan(&HandoffOptions {
        run: args.run,
        out: args.out,
        processes: args.processes,
        machines: args.machines,
        strategy: args.strategy,
        redo_sft: args.redo_sft,
        inputs: RunInputs {
            data: args.data,
            eval_data: args.eval_data,
            model: args.model,
            ..RunInputs::default()
        },
    })?;
    plan.write()?;
    let names: Vec<&str> = plan.files.iter().map(|(name, _)| name.as_str()).collect();
    println!(
        "wrote {}: {}, data/, README.md",
        plan.out.display(),
        names.join(", ")
    );
    println!("run:");
    for command in &plan.commands {
        println!("  {command}");
    }
    println!("no TRL counterpart:");
    match plan.unmapped.is_empty() {
        true => println!("  none"),
        false => plan.unmapped.iter().for_each(|u| println!("  - {u}")),
    }
    Ok(())
}
