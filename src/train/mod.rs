//! Training: one driver, [`Run`], owns a whole run's sequence (SFT, freezing the reference,
//! DPO, generations before and after, held-out evaluation, the non-finite guard); every front
//! end (the command line's run folder, the browser worker, the experiments, the benchmark, the
//! tests) builds it through [`setup`] and reacts to the [`Event`]s it reports.
//!
//! Underneath, the [`Trainer`] steps: a policy, its frozen reference (a model or precomputed
//! log-probs) and AdamW. A step queues its work on the device and returns `PendingMetrics`
//! without waiting: the one device read per step happens when they are read, with `.await`,
//! which natively is driven by `burn::tensor::read_sync` and in the browser by the event loop.

mod backward;
pub mod eval;
mod moments;
pub mod optim;
pub mod order;
mod run;
pub mod setup;

use burn::optim::{GradientsAccumulator, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::config::TrainConfig;
use crate::data::TokenizedPair;
use crate::dpo::batch::SequenceBatch;
use crate::dpo::{self, Metrics, Phase, Reference, logps};
use crate::model::CausalLm;
use backward::Backward;
use order::DataOrder;
pub use run::{Event, Run, When, Work};
pub use setup::{ModelSource, PairsFile, Prepared, Report, Resume, RunSpec, Start, prepare};

/// What, besides weights and optimizer moments, a resumed run needs. The learning rate
/// schedule is a function of `step`, and the data order (the only randomness in a step) of
/// the seed and `cursor`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps done, SFT and DPO together.
    pub step: usize,
    /// Pairs handed out so far (the data order's cursor).
    pub cursor: usize,
}

/// The step engine under [`Run`]: policy, reference, optimizer and data order.
pub(crate) struct Trainer {
    config: TrainConfig,
    device: Device,
    policy: CausalLm,
    reference: Option<Reference>,
    optim: ModuleOptimizer,
    pairs: Vec<TokenizedPair>,
    pad: u32,
    order: DataOrder,
    step: usize,
}

/// A step's metrics, still on the device.
pub(crate) struct PendingMetrics {
    values: Tensor<1>,
    step: usize,
    phase: Phase,
    lr: f64,
    started: Instant,
}

impl PendingMetrics {
    pub async fn read(self) -> Result<Metrics, String> {
        let values = eval::read_f32(self.values).await?;
        let (mut metrics, rest) = Metrics::unpack(self.step, self.phase, &values);
        metrics.grad_norm = rest.first().map(|v| *v as f64);
        metrics.lr = Some(self.lr);
        metrics.ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
        Ok(metrics)
    }
}

impl Trainer {
    /// `policy` must live on `device`, an autodiff device; `pairs` must not be empty.
    pub fn new(
        policy: CausalLm,
        pairs: Vec<TokenizedPair>,
        pad: u32,
        config: TrainConfig,
        device: Device,
    ) -> Self {
        Trainer {
            optim: optim::adamw(config.weight_decay),
            policy: policy
                .with_precision(config.precision)
                .with_lora_dropout(config.lora.as_ref().map_or(0.0, |l| l.dropout)),
            order: DataOrder::new(config.seed, pairs.len(), 0),
            config,
            device,
            reference: None,
            pairs,
            pad,
            step: 0,
        }
    }

    /// Continues from a checkpoint: its state and optimizer moments (`optimizer_bytes`).
    pub fn restore(&mut self, state: &TrainerState, optimizer: Vec<u8>) -> Result<(), String> {
        self.step = state.step;
        self.order = DataOrder::new(self.config.seed, self.pairs.len(), state.cursor);
        self.optim = optim::adamw(self.config.weight_decay)
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(optimizer))
            .map_err(|e| format!("not an optimizer state: {e:?}"))?;
        Ok(())
    }

    pub fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            cursor: self.order.cursor,
        }
    }

    /// The optimizer's moments, serialized (burnpack), for a checkpoint.
    pub async fn optimizer_bytes(&self) -> Result<Vec<u8>, String> {
        moments::to_bytes(&self.optim).await
    }

    /// The phase of the next step.
    pub fn phase(&self) -> Phase {
        if self.step < self.config.sft_steps {
            Phase::Sft
        } else {
            Phase::Dpo
        }
    }

    /// Freezes the reference and starts DPO, with a fresh optimizer when SFT has just ended
    /// (a run resumed inside DPO keeps its restored moments).
    pub fn freeze(&mut self, reference: Reference) {
        self.reference = Some(reference);
        if self.step == self.config.sft_steps {
            self.optim = optim::adamw(self.config.weight_decay);
        }
    }

    /// Queues the next step (SFT or DPO). Panics in DPO before `freeze`.
    pub fn step(&mut self) -> PendingMetrics {
        let started = Instant::now();
        let phase = self.phase();
        let (phase_step, phase_total, base_lr) = match phase {
            Phase::Sft => (self.step, self.config.sft_steps, self.config.sft_lr),
            _ => (
                self.step - self.config.sft_steps,
                self.config.steps,
                self.config.lr,
            ),
        };
        let lr = optim::scheduled_lr(base_lr, phase_step, phase_total, self.config.warmup_steps);
        let micro = self.config.batch / self.config.grad_accum;
        let mut accumulator = GradientsAccumulator::<CausalLm>::new();
        let mut metric_sum: Option<Tensor<1>> = None;
        for micro_step in 0..self.config.grad_accum {
            let indices = self.order.take(micro);
            let backward = Backward {
                policy: &self.policy,
                checkpointing: self.config.gradient_checkpointing,
                dropout_seed: self.dropout_seed(micro_step),
            };
            let metrics = match phase {
                Phase::Sft => self.sft_backward(&indices, &backward, &mut accumulator),
                _ => self.dpo_backward(&indices, &backward, &mut accumulator),
            };
            let metrics = metrics.pack();
            metric_sum = Some(match metric_sum {
                Some(sum) => sum + metrics,
                None => metrics,
            });
        }
        let mut grads = accumulator.grads();
        let norm = optim::clip_global_norm(&self.policy, &mut grads, self.config.max_grad_norm);
        self.policy = self.optim.step(lr, self.policy.clone(), grads);
        self.step += 1;
        let metrics = metric_sum.expect("grad_accum >= 1") / self.config.grad_accum as f64;
        PendingMetrics {
            values: Tensor::cat(vec![metrics, norm], 0),
            step: self.step,
            phase,
            lr,
            started,
        }
    }

    /// Dropout masks drawn from (seed, step, micro-batch): a resumed run draws the same ones.
    fn dropout_seed(&self, micro_step: usize) -> Option<u64> {
        let draw = (self.step * self.config.grad_accum + micro_step) as u64;
        (self.policy.compute().dropout > 0.0)
            .then(|| self.config.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The loss is divided by the micro-batches of a step, whose gradients add up.
    fn share(&self, loss: Tensor<1>) -> Tensor<1> {
        loss / self.config.grad_accum as f64
    }

    fn sft_backward(
        &self,
        indices: &[usize],
        backward: &Backward,
        grads: &mut GradientsAccumulator<CausalLm>,
    ) -> dpo::BatchMetrics {
        let sequences: Vec<_> = indices
            .iter()
            .map(|&i| dpo::batch::Scored {
                ids: &self.pairs[i].chosen,
                start: self.pairs[i].start,
            })
            .collect();
        let batch = SequenceBatch::new(&sequences, self.pad, &self.device);
        let tail = |hidden| {
            let logps = logps::from_hidden(&self.policy, hidden, &batch);
            let (loss, metrics) = dpo::sft_loss(logps, &batch);
            (self.share(loss), metrics)
        };
        backward.run(batch.inputs.clone(), tail, grads)
    }

    fn dpo_backward(
        &self,
        indices: &[usize],
        backward: &Backward,
        grads: &mut GradientsAccumulator<CausalLm>,
    ) -> dpo::BatchMetrics {
        let pairs: Vec<&TokenizedPair> = indices.iter().map(|&i| &self.pairs[i]).collect();
        let batch = SequenceBatch::new(&dpo::pair_sequences(&pairs), self.pad, &self.device);
        let reference = self.reference.as_ref().expect("DPO step before freeze");
        let reference = reference.batch(indices, &self.device);
        let tail = |hidden| {
            let logps = logps::from_hidden(&self.policy, hidden, &batch);
            let out = dpo::pair_loss(logps, reference, &batch, &self.config.loss);
            (self.share(out.loss), out.metrics)
        };
        backward.run(batch.inputs.clone(), tail, grads)
    }
}
