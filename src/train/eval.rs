//! Evaluation: the DPO metrics of a policy against a reference over a whole file, no update.

use burn::tensor::Device;

use crate::data::TokenizedPair;
use crate::dpo::batch::SequenceBatch;
use crate::dpo::loss::{LossConfig, RunningMean};
use crate::dpo::{self, Metrics, PAIR_METRICS, Phase, ReferenceLogps};
use crate::model::Gpt2;

/// Means over all pairs (batches weighted by their size). Models and `device` should be
/// plain (no autodiff): nothing is trained.
pub async fn evaluate(
    policy: &Gpt2,
    reference: &Gpt2,
    pairs: &[TokenizedPair],
    pad: u32,
    loss: &LossConfig,
    batch: usize,
    device: &Device,
) -> Result<Metrics, String> {
    let mut sums = [0f64; PAIR_METRICS];
    let mut running = RunningMean::default();
    for chunk in pairs.chunks(batch.max(1)) {
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let batch = SequenceBatch::new(&dpo::pair_sequences(&refs), pad, device);
        let (_, metrics) = dpo::pair_forward(
            policy,
            ReferenceLogps::Model(reference),
            &batch,
            loss,
            Some(&mut running),
        );
        let values = metrics
            .into_data_async()
            .await
            .map_err(|e| format!("reading metrics failed: {e}"))?
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum += value as f64 * chunk.len() as f64;
        }
    }
    let means: Vec<f32> = sums
        .iter()
        .map(|s| (s / pairs.len().max(1) as f64) as f32)
        .collect();
    Ok(Metrics::from_pair_values(0, Phase::Eval, &means))
}
