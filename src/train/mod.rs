//! The Trainer: a policy, its frozen reference (a model or precomputed log-probs) and AdamW,
//! stepping through SFT and then DPO.
//!
//! A step queues its work on the device and returns `PendingMetrics` without waiting: the one
//! device read per step happens when the caller reads them, synchronously on native targets
//! or with `.await` in the browser, where blocking reads are impossible.

pub mod eval;
pub mod optim;
pub mod order;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use web_time::Instant;

use crate::config::TrainConfig;
use crate::data::TokenizedPair;
use crate::dpo::batch::SequenceBatch;
use crate::dpo::{self, Metrics, Phase, ReferenceLogps, logps};
use crate::model::CausalLm;
use order::DataOrder;

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

pub struct Trainer {
    config: TrainConfig,
    device: Device,
    policy: CausalLm,
    reference: Option<CausalLm>,
    /// Reference log-probs per pair, [chosen, rejected], when precomputed.
    precomputed: Option<Vec<[f32; 2]>>,
    optim: ModuleOptimizer,
    pairs: Vec<TokenizedPair>,
    pad: u32,
    order: DataOrder,
    step: usize,
}

/// A step's metrics, still on the device.
pub struct PendingMetrics {
    values: Tensor<1>,
    step: usize,
    phase: Phase,
    lr: f64,
    started: Instant,
}

impl PendingMetrics {
    /// Reads the metrics, blocking until the step has run (native targets).
    #[cfg(not(target_family = "wasm"))]
    pub fn read(self) -> Result<Metrics, String> {
        let data = self.values.clone().into_data_async();
        let data = burn::tensor::read_sync(data);
        self.finish(data)
    }

    /// Reads the metrics without blocking the thread (any target, the browser included).
    pub async fn read_async(self) -> Result<Metrics, String> {
        let data = self.values.clone().into_data_async().await;
        self.finish(data)
    }

    fn finish<E: std::fmt::Display>(self, data: Result<TensorData, E>) -> Result<Metrics, String> {
        let values = data
            .map_err(|e| format!("reading metrics from the device failed: {e}"))?
            .try_into_vec::<f32>()
            .map_err(|e| format!("metrics have an unexpected type: {e:?}"))?;
        let mut metrics = match self.phase {
            Phase::Sft => Metrics::from_sft_values(self.step, &values),
            _ => Metrics::from_pair_values(self.step, self.phase, &values),
        };
        metrics.grad_norm = values.last().map(|v| *v as f64);
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
        state: TrainerState,
    ) -> Self {
        let order = DataOrder::new(config.seed, pairs.len(), state.cursor);
        Trainer {
            optim: optim::adamw(config.weight_decay),
            policy: policy.with_precision(config.precision()),
            config,
            device,
            reference: None,
            precomputed: None,
            pairs,
            pad,
            order,
            step: state.step,
        }
    }

    pub fn policy(&self) -> &CausalLm {
        &self.policy
    }

    /// The frozen reference model, once DPO has started (none with precomputed log-probs).
    pub fn reference(&self) -> Option<&CausalLm> {
        self.reference.as_ref()
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps done, SFT and DPO together.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The state a checkpoint saves.
    pub fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            cursor: self.order.cursor,
        }
    }

    /// The optimizer's moments, serialized (burnpack), for a checkpoint.
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, String> {
        self.optim
            .into_bytes()
            .map(|bytes| bytes.to_vec())
            .map_err(|e| format!("serializing the optimizer failed: {e:?}"))
    }

    /// Restores moments saved by `optimizer_bytes` (after `new`, when resuming).
    pub fn load_optimizer_bytes(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.optim = optim::adamw(self.config.weight_decay)
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| format!("not an optimizer state: {e:?}"))?;
        Ok(())
    }

    /// Total steps of the run, SFT and DPO.
    pub fn total_steps(&self) -> usize {
        self.config.sft_steps + self.config.steps
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.total_steps()
    }

    /// The phase of the next step.
    pub fn phase(&self) -> Phase {
        if self.step < self.config.sft_steps {
            Phase::Sft
        } else {
            Phase::Dpo
        }
    }

    /// Whether DPO is next and its reference is not set yet: the caller then saves the SFT
    /// model (it becomes the reference) and calls `start_dpo`.
    pub fn needs_reference(&self) -> bool {
        !self.is_done()
            && self.phase() == Phase::Dpo
            && self.reference.is_none()
            && self.precomputed.is_none()
    }

    /// Freezes `reference` (normally the policy as SFT left it) and starts DPO with a fresh
    /// optimizer. With `precompute_ref` its log-probs are computed now and the model dropped.
    pub async fn start_dpo(&mut self, reference: CausalLm) -> Result<(), String> {
        // A reference loaded from a folder (a resumed run's sft/) computes as the policy does.
        let reference = reference.with_precision(self.config.precision()).no_grad();
        if self.config.precompute_ref {
            self.precomputed = Some(self.precompute(&reference).await?);
        } else {
            self.reference = Some(reference);
        }
        if self.step == self.config.sft_steps {
            self.optim = optim::adamw(self.config.weight_decay);
        }
        Ok(())
    }

    /// One step and its metrics, freezing the current policy as the reference first when DPO
    /// starts (the command line does the same, and also saves that model as `sft/`).
    pub async fn advance(&mut self) -> Result<Metrics, String> {
        if self.needs_reference() {
            let reference = self.policy.clone();
            self.start_dpo(reference).await?;
        }
        self.step().read_async().await
    }

    async fn precompute(&self, reference: &CausalLm) -> Result<Vec<[f32; 2]>, String> {
        let mut out = Vec::with_capacity(self.pairs.len());
        for chunk in self.pairs.chunks(self.config.batch) {
            let refs: Vec<&TokenizedPair> = chunk.iter().collect();
            let batch = SequenceBatch::new(&dpo::pair_sequences(&refs), self.pad, &self.device);
            let values = logps::sequence_logps(reference, &batch)
                .detach()
                .into_data_async()
                .await
                .map_err(|e| format!("reading reference log-probs failed: {e}"))?
                .try_into_vec::<f32>()
                .map_err(|e| format!("{e:?}"))?;
            let n = chunk.len();
            out.extend((0..n).map(|i| [values[i], values[n + i]]));
        }
        Ok(out)
    }

    /// Queues the next step (SFT or DPO). Panics if the run is done or DPO's reference is
    /// missing (see `needs_reference`).
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
        for _ in 0..self.config.grad_accum {
            let indices = self.order.take(micro);
            let (loss, metrics) = match phase {
                Phase::Sft => self.sft_forward(&indices),
                _ => self.dpo_forward(&indices),
            };
            let grads = (loss / self.config.grad_accum as f64).backward();
            accumulator.accumulate(
                &self.policy,
                GradientsParams::from_grads(grads, &self.policy),
            );
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

    fn sft_forward(&self, indices: &[usize]) -> (Tensor<1>, Tensor<1>) {
        let sequences: Vec<_> = indices
            .iter()
            .map(|&i| dpo::batch::Scored {
                ids: &self.pairs[i].chosen,
                start: self.pairs[i].start,
            })
            .collect();
        let batch = SequenceBatch::new(&sequences, self.pad, &self.device);
        dpo::sft_forward(&self.policy, &batch)
    }

    fn dpo_forward(&mut self, indices: &[usize]) -> (Tensor<1>, Tensor<1>) {
        let pairs: Vec<&TokenizedPair> = indices.iter().map(|&i| &self.pairs[i]).collect();
        let batch = SequenceBatch::new(&dpo::pair_sequences(&pairs), self.pad, &self.device);
        let reference = match (&self.reference, &self.precomputed) {
            (Some(model), _) => ReferenceLogps::Model(model),
            (None, Some(values)) => {
                let chosen = indices.iter().map(|&i| values[i][0]);
                let rejected = indices.iter().map(|&i| values[i][1]);
                let all: Vec<f32> = chosen.chain(rejected).collect();
                let len = all.len();
                ReferenceLogps::Precomputed(Tensor::from_data(
                    TensorData::new(all, [len]),
                    &self.device,
                ))
            }
            (None, None) => panic!("DPO step before start_dpo"),
        };
        let out = dpo::pair_forward(&self.policy, reference, &batch, &self.config.loss);
        (out.loss, out.metrics)
    }
}
