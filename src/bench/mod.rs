//! Benchmarks: the workloads of BENCHMARKS.md through the product's own run driver (native).
//!
//! A case is one workload on one backend in one reference mode. It builds a random model of
//! the workload's shape, random pairs of exactly `seq` tokens and a real [`crate::train::Run`]
//! (no SFT), then times `warmup + steps` DPO steps, each ending in the one metrics read a
//! training run does. The timed steps' median is the figure reported.
//!
//! Every case runs in a child process (`dpo bench --case ...`): on the CPU backend the memory
//! figure is the process's peak RSS, which only grows, so cases sharing a process would
//! inherit each other's peaks; a child also keeps one case's failure (a buffer the device
//! refuses) from ending the others.

use burn::tensor::{Device, read_sync};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::Error;
use crate::config::TrainConfig;
use crate::data::{ChatTemplate, TextTokenizer, TokenizedPair, train_bpe};
use crate::device::{self, Backend};
use crate::model::{BasePrecision, LoraConfig, ModelConfig, ModelInfo, Precision, Preset};
use crate::train::{Event, Prepared, Start, Work};

mod memory;
mod report;
pub use report::{Row, run_all, table};

/// A model shape and a batch shape, named as BENCHMARKS.md's workloads table names them.
#[derive(Debug)]
pub struct Workload {
    pub name: &'static str,
    pub vocab: usize,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    /// Tokens in every chosen and every rejected sequence, prompt included.
    pub seq: usize,
    pub pairs: usize,
    /// A Llama-family shape (key/value heads, MLP width); `None`: GPT-2.
    pub llama: Option<[usize; 2]>,
}

const fn gpt2(name: &'static str, sizes: [usize; 6]) -> Workload {
    let [vocab, d_model, layers, heads, seq, pairs] = sizes;
    Workload {
        name,
        vocab,
        d_model,
        layers,
        heads,
        seq,
        pairs,
        llama: None,
    }
}

/// The benchmark's workloads, after `micro`: a test-sized shape for smoke tests, not a benchmark.
pub const WORKLOADS: [Workload; 5] = [
    gpt2("micro", [1024, 64, 2, 2, 64, 4]),
    gpt2("tiny", [4096, 128, 4, 4, 128, 16]),
    gpt2("small", [8192, 256, 6, 8, 256, 16]),
    gpt2("gpt2-124m", [50257, 768, 12, 12, 512, 8]),
    // SmolLM2-135M's published shape (tied embeddings), random weights.
    Workload {
        llama: Some([3, 1536]),
        ..gpt2("smollm2-135m", [49152, 576, 30, 9, 128, 2])
    },
];

impl Workload {
    pub fn find(name: &str) -> Option<&'static Workload> {
        WORKLOADS.iter().find(|w| w.name == name)
    }

    /// The throughput unit: both sequences of every pair, prompt included.
    pub fn tokens_per_step(&self) -> usize {
        2 * self.pairs * self.seq
    }

    /// Every pair's shared prompt takes the first quarter of the sequence; the other three
    /// quarters are the completion that DPO scores.
    pub fn prompt_len(&self) -> usize {
        self.seq / 4
    }

    fn model_config(&self) -> ModelConfig {
        if let Some([kv_heads, intermediate]) = self.llama {
            let config = serde_json::json!({
                "vocab_size": self.vocab,
                "hidden_size": self.d_model,
                "intermediate_size": intermediate,
                "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads,
                "num_key_value_heads": kv_heads,
                "max_position_embeddings": self.seq.max(2048),
                "rms_norm_eps": 1e-5,
                "rope_theta": 100000.0,
                "tie_word_embeddings": true,
            });
            return ModelConfig::Llama(serde_json::from_value(config).expect("a Llama config"));
        }
        // A preset supplies GPT-2's fixed choices (activation, epsilon, tied head); the sizes
        // come from the table above, so the benchmark measures the workloads' shapes even if a
        // preset changes.
        let mut config = Preset::Micro.config(Some(self.vocab));
        config.n_embd = self.d_model;
        config.n_layer = self.layers;
        config.n_head = self.heads;
        config.n_positions = config.n_positions.max(self.seq);
        ModelConfig::Gpt2(config)
    }

    /// `pairs` pairs of uniform random ids; chosen and rejected share the prompt only.
    fn random_pairs(&self, seed: u64) -> Vec<TokenizedPair> {
        let mut rng = StdRng::seed_from_u64(seed);
        let vocab = self.vocab as u32;
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..vocab)).collect() };
        let completion = self.seq - self.prompt_len();
        (0..self.pairs)
            .map(|_| {
                let prompt = ids(self.prompt_len());
                let chosen = [prompt.as_slice(), &ids(completion)].concat();
                let rejected = [prompt.as_slice(), &ids(completion)].concat();
                TokenizedPair {
                    chosen,
                    rejected,
                    start: prompt.len(),
                }
            })
            .collect()
    }
}

/// What trains and where the reference log-probs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every weight trains; a frozen copy of the policy runs a forward pass every step.
    TwoModel,
    /// Every weight trains; the reference log-probs are computed once before the first step,
    /// and only the policy stays in memory.
    Precomputed,
    /// LoRA adapters (rank 16, alpha 32, every linear layer) train; the reference is the
    /// same weights with the adapters off.
    Adapters,
}

impl Mode {
    pub const NAMES: [&'static str; 3] = ["two-model", "precomputed", "adapters"];
    const ALL: [Mode; 3] = [Mode::TwoModel, Mode::Precomputed, Mode::Adapters];

    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL
            .iter()
            .position(|m| *m == self)
            .expect("every mode is listed")]
    }

    pub fn parse(name: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A `--modes` name: a mode, then `+gc` for gradient checkpointing and, with adapters,
/// `+base-f16` or `+base-bf16` for the frozen base's dtype (`adapters+gc+base-bf16`).
fn parse_mode(name: &str) -> Option<(Mode, Variant)> {
    let mut parts = name.split('+');
    let mode = Mode::parse(parts.next()?)?;
    let mut variant = Variant::default();
    for part in parts {
        match (part, part.strip_prefix(BASE)) {
            (CHECKPOINTING, _) if !variant.checkpointing => variant.checkpointing = true,
            (_, Some(dtype)) if mode == Mode::Adapters && variant.base == BasePrecision::F32 => {
                variant.base = BasePrecision::parse(dtype)?;
            }
            _ => return None,
        }
    }
    Some((mode, variant))
}

const CHECKPOINTING: &str = "gc";
const BASE: &str = "base-";

/// How a mode is varied: its `+` suffixes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Variant {
    /// Gradient checkpointing (`+gc`).
    pub checkpointing: bool,
    /// The dtype the frozen base is held in (`+base-bf16`; adapters only).
    pub base: BasePrecision,
}

/// One measurement: a workload on a backend in a mode and a precision.
#[derive(Debug)]
pub struct Case {
    pub workload: &'static Workload,
    pub backend: Backend,
    pub mode: Mode,
    pub variant: Variant,
    pub precision: Precision,
}

impl Case {
    /// `workload/backend/mode/precision`, the hidden `--case` argument of a child process.
    pub fn spec(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.workload.name,
            self.backend.name(),
            self.mode_name(),
            self.precision.name()
        )
    }

    /// The mode as `--modes` and the results name it.
    pub fn mode_name(&self) -> String {
        let mut name = self.mode.name().to_string();
        if self.variant.checkpointing {
            name += &format!("+{CHECKPOINTING}");
        }
        if self.variant.base != BasePrecision::F32 {
            name += &format!("+{BASE}{}", self.variant.base.name());
        }
        name
    }

    /// The training settings the case runs with.
    pub fn config(&self, timing: &Timing) -> TrainConfig {
        let w = self.workload;
        TrainConfig {
            seed: timing.seed,
            sft_steps: 0,
            steps: timing.warmup + timing.steps,
            batch: w.pairs,
            max_length: w.seq,
            warmup_steps: 0,
            precompute_ref: self.mode == Mode::Precomputed,
            gradient_checkpointing: self.variant.checkpointing,
            precision: self.precision,
            base_precision: self.variant.base,
            lora: (self.mode == Mode::Adapters).then(|| LoraConfig {
                r: 16,
                alpha: 32.0,
                ..LoraConfig::default()
            }),
            ..TrainConfig::default()
        }
    }

    /// Parses a spec; the precision may be left out (f32).
    pub fn parse(spec: &str) -> Result<Case, Error> {
        let bad = || {
            Error::Input(format!(
                "--case `{spec}`: expected workload/backend/mode[/precision]"
            ))
        };
        let mut parts = spec.split('/');
        let mut next = || parts.next().ok_or_else(bad);
        let (workload, backend, mode) = (next()?, next()?, next()?);
        let precision = match parts.next() {
            Some(name) => Precision::parse(name).ok_or_else(bad)?,
            None => Precision::F32,
        };
        let (mode, variant) = parse_mode(mode).ok_or_else(bad)?;
        Ok(Case {
            workload: Workload::find(workload).ok_or_else(bad)?,
            backend: Backend::parse(backend)
                .filter(|b| *b != Backend::Auto)
                .ok_or_else(bad)?,
            mode,
            variant,
            precision,
        })
    }
}

/// The cases for comma-separated workload, mode and precision names and comma-separated
/// backends (`cpu`, `wgpu`, `cuda`, or `all` this build has; `None`: cpu, plus wgpu when a
/// hardware GPU adapter exists).
pub fn plan(
    workloads: &str,
    backend: Option<&str>,
    modes: &str,
    precisions: &str,
) -> Result<Vec<Case>, Error> {
    let names: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
    let workloads = parse_list("--workloads", workloads, &names, Workload::find)?;
    let known = Mode::NAMES.join(", ");
    let suffixes = "each +gc, adapters +base-f16 or +base-bf16";
    let modes = parse_list("--modes", modes, &[&known, suffixes], parse_mode)?;
    let precisions = parse_list(
        "--precision",
        precisions,
        &Precision::NAMES,
        Precision::parse,
    )?;
    let backends = match backend {
        None => default_backends(),
        Some("all") => all_backends(),
        Some(name) => parse_list("--backend", name, &["cpu", "wgpu", "cuda", "all"], |n| {
            Backend::parse(n).filter(|b| *b != Backend::Auto)
        })?,
    };
    let mut cases = Vec::new();
    for &workload in &workloads {
        for &backend in &backends {
            for &precision in &precisions {
                for &(mode, variant) in &modes {
                    cases.push(Case {
                        workload,
                        backend,
                        mode,
                        variant,
                        precision,
                    });
                }
            }
        }
    }
    Ok(cases)
}

/// Comma-separated names, each parsed; at least one.
fn parse_list<T>(
    flag: &str,
    list: &str,
    known: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, Error> {
    let bad = |what: &str| Error::Input(format!("{flag}: {what} (one of {})", known.join(", ")));
    let parsed = list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| parse(name).ok_or_else(|| bad(&format!("unknown name `{name}`"))))
        .collect::<Result<Vec<T>, Error>>()?;
    match parsed.is_empty() {
        true => Err(bad("no name given")),
        false => Ok(parsed),
    }
}

/// Every backend this build has.
fn all_backends() -> Vec<Backend> {
    let mut all = vec![Backend::Cpu, Backend::Wgpu];
    if cfg!(feature = "cuda") {
        all.push(Backend::Cuda);
    }
    all
}

fn default_backends() -> Vec<Backend> {
    // What `--backend auto` would train on decides whether wgpu is worth measuring: a
    // software rasteriser (lavapipe, SwiftShader) is far slower than the CPU backend and
    // measures nothing a user runs. `--backend wgpu` or `all` still measures it.
    let gpu = device::select(Backend::Auto).is_ok_and(|s| s.device != Device::flex());
    match gpu {
        true => vec![Backend::Cpu, Backend::Wgpu],
        false => vec![Backend::Cpu],
    }
}

/// Step counts and the seed of the model and data.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Untimed steps first: kernel compilation and autotuning happen there.
    pub warmup: usize,
    /// Timed steps; at least 1.
    pub steps: usize,
    pub seed: u64,
}

/// What one case measured, as one JSON line. Bytes are `None` where nothing reports them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub workload: String,
    pub backend: String,
    pub mode: String,
    /// The matrix products' dtype (`f32`, `bf16`).
    pub precision: String,
    /// The device as backend selection describes it (adapter name and API on wgpu).
    pub device: String,
    pub pairs: usize,
    pub seq: usize,
    pub warmup: usize,
    pub steps: usize,
    /// Median of the timed steps, each from queuing the step to its metrics read.
    pub ms_per_step: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    /// `2 * pairs * seq / median step time`.
    pub tokens_per_s: f64,
    /// Computing the reference log-probs once, before the first step (precomputed mode); on
    /// wgpu this includes compiling the forward kernels, which two-model mode does in warm-up.
    pub precompute_ms: Option<f64>,
    /// The headline memory figure: `device_peak_bytes` where the backend reports its pools
    /// (wgpu), else `peak_rss_bytes` (the CPU backend).
    pub peak_bytes: Option<u64>,
    /// `device pools` or `process RSS`: what `peak_bytes` is.
    pub peak_source: String,
    /// The process's peak resident memory, and that peak before the model existed (runtime
    /// and binary: the part of `peak_rss_bytes` that is not the workload's).
    pub peak_rss_bytes: Option<u64>,
    pub start_rss_bytes: Option<u64>,
    /// Sum over the device's dynamic pools of page size x most pages held: what the
    /// allocator reserved at its high-water mark, warm-up (autotuning) included.
    pub device_peak_bytes: Option<u64>,
    /// The largest single device allocation served.
    pub largest_alloc_bytes: Option<u64>,
    /// The last step's loss: evidence the step computed something finite.
    pub loss: f64,
}

/// Runs one case in this process.
pub fn run_case(case: &Case, timing: &Timing) -> Result<CaseResult, Error> {
    if timing.steps == 0 {
        return Err(Error::Input("--steps must be at least 1".into()));
    }
    let start_rss = memory::peak_rss_bytes();
    let selected = device::select(case.backend)?;
    case.precision
        .check(&selected.device)
        .map_err(Error::Input)?;
    let description = selected.description();
    let device = selected.device;
    let w = case.workload;
    let config = case.config(timing);
    // The pairs are token ids, never text: a byte-level tokenizer stands in for a real one.
    let tokenizer = train_bpe(std::iter::empty(), 257)
        .and_then(|t| TextTokenizer::from_tokenizer(t, None))
        .map_err(Error::Runtime)?;
    let info = ModelInfo {
        config: w.model_config(),
        tokenizer,
        template: ChatTemplate::default_plain(),
        tokenizer_config: None,
        chat_template: None,
    };
    let prepared = Prepared::synthetic(config, info, w.random_pairs(timing.seed));
    let mut run = prepared.start(&device, Start::Fresh)?;

    let mut times = Vec::with_capacity(timing.steps);
    let mut precompute_ms = None;
    let mut loss = f64::NAN;
    loop {
        let work = run.upcoming();
        let started = Instant::now();
        match read_sync(run.next())? {
            None => break,
            Some(Event::Step { metrics }) => {
                if metrics.step > timing.warmup {
                    times.push(elapsed_ms(started));
                }
                loss = metrics.loss;
            }
            Some(_) if work == Work::Freeze && case.mode == Mode::Precomputed => {
                precompute_ms = Some(elapsed_ms(started));
            }
            Some(_) => {}
        }
    }

    let (device_peak, largest_alloc) = memory::device_pools(&device.autodiff());
    let peak_rss = memory::peak_rss_bytes();
    times.sort_by(f64::total_cmp);
    let median = median(&times);
    Ok(CaseResult {
        workload: w.name.into(),
        backend: case.backend.name().into(),
        mode: case.mode_name(),
        precision: case.precision.name().into(),
        device: description,
        pairs: w.pairs,
        seq: w.seq,
        warmup: timing.warmup,
        steps: timing.steps,
        ms_per_step: median,
        ms_min: times[0],
        ms_max: times[times.len() - 1],
        tokens_per_s: (w.tokens_per_step() as f64 / (median / 1e3)).round(),
        precompute_ms,
        peak_bytes: device_peak.or(peak_rss),
        peak_source: match device_peak {
            Some(_) => "device pools".into(),
            None => "process RSS".into(),
        },
        peak_rss_bytes: peak_rss,
        start_rss_bytes: start_rss,
        device_peak_bytes: device_peak,
        largest_alloc_bytes: largest_alloc,
        loss,
    })
}

/// Milliseconds to the microsecond: finer digits are noise.
fn elapsed_ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Median of sorted, non-empty values.
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    match sorted.len() % 2 {
        1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
    }
}
