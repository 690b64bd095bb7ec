//! `dpo`: train, evaluate and sample from small language models with DPO.
//!
//! A thin shell: flags become a `TrainConfig` (over `--config file.toml`), the backend is
//! chosen here once, and `dpo::jobs` does the work. Exit status: 0 done, 2 bad input or usage
//! (one line on stderr), 1 anything else.

mod experiments;
mod handoff;
mod hub;
mod lora;
mod process;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dpo::Error;
use dpo::charts;
use dpo::config::TrainConfig;
use dpo::device::{self, Backend};
use dpo::dpo::loss::{LossConfig, LossType};
use dpo::generate::{SamplingConfig, mean_reward};
use dpo::io::atomic;
use dpo::jobs::{self, TrainJob};
use dpo::train::Report;
use experiments::{BenchArgs, FrontierArgs, bench_cmd, frontier_cmd};
use handoff::{HandoffArgs, handoff_cmd};
use hub::RevisionArg;
use lora::LoraArgs;
use progress::Reporter;

#[derive(Parser)]
#[command(
    name = "dpo",
    version,
    about = "Train small language models with Direct Preference Optimization (SFT, then DPO)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SFT then DPO; with no argument, on the shipped task with the tiny preset.
    Train(TrainArgs),
    /// DPO metrics of a model against a reference over a pairs file (no update).
    Eval(EvalArgs),
    /// Sample text from a model folder.
    Generate(GenerateArgs),
    /// Merge a PEFT LoRA adapter into its base model's weights: a plain Hugging Face folder.
    Merge(MergeArgs),
    /// Time the benchmark workloads (BENCHMARKS.md) (ms/step, tokens/s, peak memory) per backend and reference mode.
    Bench(BenchArgs),
    /// The reward-vs-KL experiment on the shipped task: DPO at several betas per loss type,
    /// writing reward_kl.json and reward_kl.svg.
    Frontier(FrontierArgs),
    /// Write TRL + accelerate files (DPOConfig YAML, accelerate config, launch command) that run
    /// a run folder's training on many GPUs.
    Handoff(HandoffArgs),
    /// Draw run folders' training charts (their metrics.jsonl) as an SVG picture; several
    /// runs are overlaid. `dpo train` draws its own into RUN_DIR/charts.svg.
    Plot(PlotArgs),
}

#[derive(Args)]
struct PlotArgs {
    /// Run folders (each with a metrics.jsonl); the first drawn solid, the others dashed.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write the picture. Default: charts.svg in the first run folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct TrainArgs {
    /// Preference pairs (JSONL: prompt/chosen/rejected, chosen/rejected, or conversational;
    /// Parquet; .jsonl.gz), or a dataset id in the Hugging Face cache or a dataset folder, with
    /// --split. Default: the shipped task.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The split of a dataset --data names.
    #[arg(long, default_value = "train")]
    split: String,
    /// Held-out pairs evaluated at the end. Default: the shipped held-out file when training on the shipped task.
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// The split of a dataset --eval-data names.
    #[arg(long, default_value = "test")]
    eval_split: String,
    /// Start from a Hugging Face model folder (config.json, model.safetensors, tokenizer.json),
    /// or a model id in the Hugging Face cache (ORG/NAME), instead of a fresh model.
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    #[command(flatten)]
    revision: RevisionArg,
    /// Size of a fresh model: micro, tiny, small or gpt2-124m.
    #[arg(long)]
    preset: Option<String>,
    /// Settings file (TOML, the field names of train_config.json); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Supervised fine-tuning steps on prompt + chosen before DPO.
    #[arg(long)]
    sft_steps: Option<usize>,
    /// DPO steps.
    #[arg(long)]
    steps: Option<usize>,
    /// DPO's beta: how strongly the policy is held near the reference.
    #[arg(long)]
    beta: Option<f32>,
    /// Loss type, or several separated by commas (sigmoid, ipo, hinge, robust, bco_pair, sppo_hard, nca_pair, apo_zero, apo_down, exo_pair, sft).
    #[arg(long)]
    loss: Option<String>,
    /// Weights of the loss types, separated by commas.
    #[arg(long)]
    loss_weights: Option<String>,
    /// Label smoothing for sigmoid, robust and exo_pair.
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Ignore the reference model (reference log-probs taken as 0).
    #[arg(long)]
    reference_free: bool,
    /// Average log-probs per completion token instead of summing them (SimPO-style).
    #[arg(long)]
    length_normalize: bool,
    /// Peak learning rate of DPO.
    #[arg(long)]
    lr: Option<f64>,
    /// Peak learning rate of SFT.
    #[arg(long)]
    sft_lr: Option<f64>,
    /// Linear warmup steps at the start of each phase.
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// AdamW weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Clip gradients to this global norm (0: off).
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Pairs per optimizer step.
    #[arg(long)]
    batch: Option<usize>,
    /// Split each batch into this many micro-batches (gradient accumulation).
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Longest prompt + completion in tokens (longer ones keep their start).
    #[arg(long)]
    max_length: Option<usize>,
    /// Compute reference log-probs once before DPO and keep one model in memory.
    #[arg(long)]
    precompute_ref: bool,
    /// Keep only each layer's input for the backward pass and recompute the rest (less memory,
    /// one more forward of the layers a step).
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Matrix products in f32 (default) or bf16 (mixed precision, on devices with bf16).
    #[arg(long)]
    precision: Option<String>,
    /// With adapters, hold the frozen base weights in f32 (default), f16 or bf16: half the
    /// memory for the weights; pays most with --gradient-checkpointing (without it the
    /// backward keeps an f32 copy of each weight unless --precision bf16 on a bf16 base).
    #[arg(long)]
    base_precision: Option<String>,
    /// Seed for weights, data order and sampling.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    lora: LoraArgs,
    /// Continue training this PEFT LoRA adapter of --model (DPO's reference: the adapter as loaded).
    #[arg(long, requires = "model")]
    adapter: Option<PathBuf>,
    /// In a LoRA run, also write final-merged/: the adapters merged into the model's weights.
    #[arg(long)]
    merge: bool,
    #[command(flatten)]
    backend: BackendArg,
    /// Run folder. Default: runs/<preset>-seed<seed>, numbered if taken.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its newest checkpoint (or start it, if it has none yet).
    #[arg(long, requires = "out")]
    resume: bool,
    /// Checkpoint every this many steps.
    #[arg(long, default_value_t = 50)]
    save_every: usize,
    /// How many of the newest checkpoints to keep.
    #[arg(long, default_value_t = 3)]
    keep_checkpoints: usize,
    /// Held-out prompts to sample before and after DPO, scored with the shipped task's reward.
    #[arg(long, default_value_t = 32)]
    samples: usize,
    /// Print every metrics object as a JSON line on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BackendArg {
    /// auto: wgpu on a hardware GPU, else the CPU backend; wgpu; cpu; or cuda (builds with
    /// the `cuda` feature).
    #[arg(long, default_value = "auto", value_parser = Backend::NAMES)]
    backend: String,
}

#[derive(Args)]
struct EvalArgs {
    /// The policy's model folder (with --adapter: the adapter's base).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder on --model: the policy is the model with it.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The reference: a model folder, or an adapter folder on --model (default: --model
    /// itself, without the adapter).
    #[arg(long = "ref")]
    reference: Option<PathBuf>,
    /// Pairs to evaluate (JSONL, Parquet, .jsonl.gz; or a dataset id / folder with --split).
    #[arg(long)]
    data: PathBuf,
    /// The split of a dataset --data names.
    #[arg(long, default_value = "test")]
    split: String,
    #[command(flatten)]
    revision: RevisionArg,
    #[arg(long, default_value_t = 0.1)]
    beta: f32,
    /// Loss type(s), as for train.
    #[arg(long, default_value = "sigmoid")]
    loss: String,
    /// Label smoothing for sigmoid, robust and exo_pair.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Longest prompt + completion in tokens (default: the model's n_positions).
    #[arg(long)]
    max_length: Option<usize>,
    #[command(flatten)]
    backend: BackendArg,
    /// Print the metrics as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// The base model folder.
    #[arg(long)]
    model: PathBuf,
    /// The adapter folder (adapter_config.json, adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// Where to write the merged model folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    revision: RevisionArg,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Args)]
struct GenerateArgs {
    /// The model folder.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder on --model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Text to continue.
    #[arg(long, required_unless_present = "data")]
    prompt: Option<String>,
    /// Continue every distinct prompt of this pairs file instead.
    #[arg(long, conflicts_with = "prompt")]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Sample among the k most likely tokens (0: all).
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also print each text's reward under the shipped task's ground truth, and the mean.
    #[arg(long)]
    score: bool,
    #[command(flatten)]
    revision: RevisionArg,
    #[command(flatten)]
    backend: BackendArg,
}

fn main() -> ExitCode {
    process::quiet_wayland_probe();
    process::cpu_default_device();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("internal error: {info}");
    }));
    let cli = Cli::parse();
    // A panic (ours or a library's) is an internal failure: the hook has printed it, and the
    // exit status is 1 as for any other failure, not Rust's 101.
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args),
        Command::Generate(args) => generate_cmd(args),
        Command::Merge(args) => jobs::merge(
            &hub::folder(&args.model, &args.revision)?,
            &hub::folder(&args.adapter, &RevisionArg::default())?,
            &args.out,
            &select_device(&args.backend)?,
        )
        .map(|()| eprintln!("merged model: {}", args.out.display())),
        Command::Bench(args) => bench_cmd(args),
        Command::Frontier(args) => frontier_cmd(args),
        Command::Handoff(args) => handoff_cmd(args),
        Command::Plot(args) => plot(args),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(if error.is_input() { 2 } else { 1 })
        }
        Err(_) => ExitCode::from(1),
    }
}

fn plot(args: PlotArgs) -> Result<(), Error> {
    let runs = args
        .runs
        .iter()
        .map(|dir| charts::RunMetrics::read(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let out = args.out.unwrap_or_else(|| args.runs[0].join(charts::FILE));
    let svg = charts::render(&runs)?;
    atomic::write_file(&out, svg.as_bytes())
        .map_err(|e| Error::Runtime(format!("writing {} failed: {e}", out.display())))?;
    eprintln!("charts: {}", out.display());
    Ok(())
}

fn select_device(arg: &BackendArg) -> Result<burn::tensor::Device, Error> {
    Ok(select(arg)?.device)
}

/// The device `--backend` asks for, said on stderr.
fn select(arg: &BackendArg) -> Result<device::Selected, Error> {
    let backend = Backend::parse(&arg.backend).expect("clap checked the value");
    let selected = device::select(backend)?;
    eprintln!("{}", selected.description());
    Ok(selected)
}

fn parse_losses(names: &str, weights: Option<&str>, into: &mut LossConfig) -> Result<(), Error> {
    into.loss_type = names
        .split(',')
        .map(|name| {
            LossType::parse(name.trim()).ok_or_else(|| {
                Error::Input(format!(
                    "--loss: unknown loss `{name}` (one of {})",
                    LossType::NAMES.join(", ")
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(weights) = weights {
        into.loss_weights = weights
            .split(',')
            .map(|w| {
                w.trim()
                    .parse::<f32>()
                    .map_err(|_| Error::Input(format!("--loss-weights: `{w}` is not a number")))
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

fn train_config(args: &TrainArgs) -> Result<TrainConfig, Error> {
    let mut config = match &args.config {
        Some(path) => jobs::read_config(path)?,
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($($field:ident).+ = $value:expr) => {
            if let Some(value) = $value {
                config.$($field).+ = value;
            }
        };
    }
    let preset = args.preset.as_deref().map(|name| setting("preset", name));
    let precision = args
        .precision
        .as_deref()
        .map(|name| setting("precision", name));
    let base_precision = args
        .base_precision
        .as_deref()
        .map(|name| setting("base_precision", name));
    set!(preset = preset.transpose()?);
    set!(sft_steps = args.sft_steps);
    set!(steps = args.steps);
    set!(loss.beta = args.beta);
    set!(loss.label_smoothing = args.label_smoothing);
    set!(lr = args.lr);
    set!(sft_lr = args.sft_lr);
    set!(warmup_steps = args.warmup_steps);
    set!(weight_decay = args.weight_decay);
    set!(max_grad_norm = args.max_grad_norm);
    set!(batch = args.batch);
    set!(grad_accum = args.grad_accum);
    set!(max_length = args.max_length);
    set!(seed = args.seed);
    set!(precision = precision.transpose()?);
    set!(base_precision = base_precision.transpose()?);
    args.lora.apply(&mut config.lora);
    config.precompute_ref |= args.precompute_ref;
    config.gradient_checkpointing |= args.gradient_checkpointing;
    config.loss.reference_free |= args.reference_free;
    config.loss.length_normalize |= args.length_normalize;
    if let Some(names) = &args.loss {
        parse_losses(names, args.loss_weights.as_deref(), &mut config.loss)?;
    } else if args.loss_weights.is_some() {
        return Err(Error::Input("--loss-weights needs --loss".into()));
    }
    config.validate().map_err(Error::Input)?;
    Ok(config)
}

/// Parses a named setting (a preset, a precision) as its settings-file field would be.
fn setting<T: TryFrom<String, Error = String>>(field: &str, name: &str) -> Result<T, Error> {
    T::try_from(name.to_string()).map_err(|e| Error::Input(format!("field `{field}`: {e}")))
}

fn default_out(config: &TrainConfig) -> PathBuf {
    let base = format!("runs/{}-seed{}", config.preset.name(), config.seed);
    (1..)
        .map(|n| {
            if n == 1 {
                PathBuf::from(&base)
            } else {
                PathBuf::from(format!("{base}-{n}"))
            }
        })
        .find(|path| !path.exists())
        .expect("some name is free")
}

fn train(args: TrainArgs) -> Result<(), Error> {
    let config = train_config(&args)?;
    process::tune_allocator(&config);
    let out = args.out.clone().unwrap_or_else(|| default_out(&config));
    let pairs =
        |arg: &Option<PathBuf>, split| arg.as_ref().map(|a| hub::pairs_file(a, split)).transpose();
    let job = TrainJob {
        config,
        data: pairs(&args.data, &args.split)?,
        eval_data: pairs(&args.eval_data, &args.eval_split)?,
        model: args
            .model
            .as_ref()
            .map(|m| hub::folder(m, &args.revision))
            .transpose()?,
        adapter: hub::other_folder(args.adapter.as_ref())?,
        merge: args.merge,
        out: out.clone(),
        resume: args.resume,
        save_every: args.save_every,
        keep_checkpoints: args.keep_checkpoints,
        report: Report {
            prompts: args.samples,
            ..Report::default()
        },
    };
    let prepared = jobs::prepare(job)?;
    let selected = select(&args.backend)?;
    let mut progress = Reporter::new(args.json);
    let eval = jobs::train(prepared, &selected, &mut progress)?;
    progress.finish();
    eprintln!(
        "run folder: {} (metrics.jsonl, charts.svg, sft/, final/)",
        out.display()
    );
    if let Some(m) = eval {
        eprintln!(
            "held-out: loss {:.4}, rewards/chosen {:+.3}, rewards/rejected {:+.3}, margins {:+.3}, accuracy {:.3}",
            m.loss,
            m.rewards_chosen.unwrap_or(f64::NAN),
            m.rewards_rejected.unwrap_or(f64::NAN),
            m.rewards_margins.unwrap_or(f64::NAN),
            m.rewards_accuracies.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<(), Error> {
    let mut loss = LossConfig {
        beta: args.beta,
        label_smoothing: args.label_smoothing,
        ..LossConfig::default()
    };
    parse_losses(&args.loss, None, &mut loss)?;
    loss.validate().map_err(Error::Input)?;
    let job = jobs::Eval::prepare(
        &hub::folder(&args.model, &args.revision)?,
        hub::other_folder(args.adapter.as_ref())?.as_deref(),
        hub::other_folder(args.reference.as_ref())?.as_deref(),
        &hub::pairs_file(&args.data, &args.split)?,
        loss,
        args.max_length,
    )?;
    let metrics = job.run(&select_device(&args.backend)?)?;
    if args.json {
        println!("{}", metrics.to_json());
    } else {
        println!("{}", serde_json::to_string_pretty(&metrics).expect("json"));
    }
    Ok(())
}

fn generate_cmd(args: GenerateArgs) -> Result<(), Error> {
    let job = jobs::Generate::prepare(
        &hub::folder(&args.model, &args.revision)?,
        hub::other_folder(args.adapter.as_ref())?.as_deref(),
        args.prompt.as_deref(),
        args.data.as_deref(),
    )?;
    let sampling = SamplingConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
    };
    let generations = job.run(&sampling, &select_device(&args.backend)?)?;
    for g in &generations {
        match args.score {
            true => println!("{}{}\t[reward {:+.1}]", g.prompt, g.text, g.reward),
            false => println!("{}{}", g.prompt, g.text),
        }
    }
    if args.score {
        println!(
            "mean ground-truth reward over {} prompts: {:.3}",
            generations.len(),
            mean_reward(&generations)
        );
    }
    Ok(())
}
