//! `dpo bench` and `dpo frontier`: the measuring commands (speed and memory beside PyTorch,
//! and the reward-vs-KL experiment), thin shells over `dpo::bench` and `dpo::frontier`.

use std::path::PathBuf;

use clap::Args;
use dpo::config::TrainConfig;
use dpo::dpo::loss::LossConfig;
use dpo::io::atomic;
use dpo::model::Preset;
use dpo::{Error, frontier};

use super::{BackendArg, parse_losses, select_device, setting};

#[derive(Args)]
pub struct BenchArgs {
    /// Workloads, separated by commas: micro (test-sized), tiny, small, gpt2-124m, smollm2-135m.
    #[arg(long, default_value = "tiny,small")]
    workloads: String,
    /// Backends, separated by commas: cpu, wgpu, cuda (builds with the `cuda` feature); or
    /// all. Default: cpu, plus wgpu when a hardware GPU adapter exists.
    #[arg(long)]
    backend: Option<String>,
    /// Modes, separated by commas: two-model, precomputed (full fine-tuning), adapters (LoRA r 16);
    /// `+gc` after one adds gradient checkpointing (`adapters+gc`).
    #[arg(long, default_value = "two-model,precomputed")]
    modes: String,
    /// Matrix-product precisions, separated by commas: f32, bf16 (devices with bf16).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Timed steps per case (the median is reported).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps before them (kernel compilation, autotuning).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Seed of the random model and pairs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object per case on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Run one case, workload/backend/mode[/precision], in this process (how `bench` runs each case).
    #[arg(long, hide = true)]
    case: Option<String>,
}

#[derive(Args)]
pub struct FrontierArgs {
    /// Model size (micro, tiny, small).
    #[arg(long, default_value = "tiny")]
    preset: String,
    #[arg(long, default_value_t = 300)]
    sft_steps: usize,
    /// DPO steps per point.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Betas, separated by commas.
    #[arg(long, default_value = "0.03,0.1,0.3,1")]
    betas: String,
    /// DPO learning rate (lower: each run moves away from the reference more slowly, so its
    /// scored points spread along the KL axis).
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    /// Loss types, separated by commas.
    #[arg(long, default_value = "sigmoid,ipo,hinge")]
    losses: String,
    /// Held-out prompts sampled per policy.
    #[arg(long, default_value_t = 64)]
    prompts: usize,
    /// Samples per prompt.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Times each run is scored along its training.
    #[arg(long, default_value_t = 4)]
    evals: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder for reward_kl.json and reward_kl.svg.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    #[command(flatten)]
    backend: BackendArg,
}

pub fn bench_cmd(args: BenchArgs) -> Result<(), Error> {
    use dpo::bench::{self, Row};
    let timing = bench::Timing {
        warmup: args.warmup,
        steps: args.steps,
        seed: args.seed,
    };
    if let Some(spec) = &args.case {
        let case = bench::Case::parse(spec)?;
        crate::process::tune_allocator(&case.config(&timing));
        let result = bench::run_case(&case, &timing)?;
        println!("{}", serde_json::to_string(&result).expect("json"));
        return Ok(());
    }
    if args.steps == 0 {
        return Err(Error::Input("--steps must be at least 1".into()));
    }
    let cases = bench::plan(
        &args.workloads,
        args.backend.as_deref(),
        &args.modes,
        &args.precision,
    )?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Runtime(format!("cannot find this program to run cases: {e}")))?;
    let rows = bench::run_all(&exe, &cases, &timing, |row| match args.json {
        true => println!("{}", serde_json::to_string(row).expect("json")),
        false => eprintln!("{}", row.line()),
    });
    match args.json {
        true => eprint!("{}", bench::table(&rows)),
        false => print!("{}", bench::table(&rows)),
    }
    let failed = rows
        .iter()
        .filter(|r| matches!(r, Row::Failed { .. }))
        .count();
    match failed {
        0 => Ok(()),
        n => Err(Error::Runtime(format!(
            "{n} of {} cases failed",
            rows.len()
        ))),
    }
}

/// A progress bar on a terminal, plain lines otherwise.
pub fn frontier_cmd(args: FrontierArgs) -> Result<(), Error> {
    let mut losses = LossConfig::default();
    parse_losses(&args.losses, None, &mut losses)?;
    let betas = args
        .betas
        .split(',')
        .map(|b| {
            b.trim()
                .parse::<f32>()
                .map_err(|_| Error::Input(format!("--betas: `{b}` is not a number")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = frontier::FrontierConfig {
        train: TrainConfig {
            preset: setting::<Preset>("preset", &args.preset)?,
            sft_steps: args.sft_steps,
            steps: args.steps,
            lr: args.lr,
            seed: args.seed,
            ..TrainConfig::default()
        },
        losses: losses.loss_type,
        betas,
        prompts: args.prompts,
        samples_per_prompt: args.samples,
        evals_per_run: args.evals,
        max_new_tokens: 32,
    };
    let device = select_device(&args.backend)?;
    let result = frontier::run(&config, &device, &mut |line| eprintln!("{line}"))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = args.out.join(name);
        std::fs::create_dir_all(&args.out)
            .and_then(|_| atomic::write_file(&path, bytes))
            .map_err(|e| Error::Runtime(format!("writing {} failed: {e}", path.display())))
    };
    let json = serde_json::to_vec_pretty(&result).expect("json");
    write("reward_kl.json", &json)?;
    write("reward_kl.svg", frontier::svg::render(&result)?.as_bytes())?;
    eprintln!(
        "wrote {0}/reward_kl.json and {0}/reward_kl.svg",
        args.out.display()
    );
    Ok(())
}
