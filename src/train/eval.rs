//! Evaluation: the DPO metrics of a policy against a reference over a whole file, no update.

use burn::tensor::{Device, Tensor};

use crate::data::TokenizedPair;
use crate::dpo::batch::SequenceBatch;
use crate::dpo::loss::LossConfig;
use crate::dpo::{self, Metrics, PAIR_METRICS, Phase, ReferenceLogps};
use crate::model::CausalLm;

/// Means over all pairs (batches weighted by their size), and each pair's implicit reward
/// margin. Models and `device` should be plain (no autodiff): nothing is trained.
pub async fn evaluate(
    policy: &CausalLm,
    reference: &CausalLm,
    pairs: &[TokenizedPair],
    pad: u32,
    loss: &LossConfig,
    batch: usize,
    device: &Device,
) -> Result<(Metrics, Vec<f32>), String> {
    let mut sums = [0f64; PAIR_METRICS];
    let mut margins = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let batch = SequenceBatch::new(&dpo::pair_sequences(&refs), pad, device);
        let out = dpo::pair_forward(policy, ReferenceLogps::Model(reference), &batch, loss);
        // One read per batch: the metrics and the margins together.
        let values = Tensor::cat(vec![out.metrics, out.margins], 0)
            .into_data_async()
            .await
            .map_err(|e| format!("reading metrics failed: {e}"))?
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        for (sum, value) in sums.iter_mut().zip(&values) {
            *sum += *value as f64 * chunk.len() as f64;
        }
        margins.extend_from_slice(&values[PAIR_METRICS..]);
    }
    let means: Vec<f32> = sums
        .iter()
        .map(|s| (s / pairs.len().max(1) as f64) as f32)
        .collect();
    Ok((Metrics::from_pair_values(0, Phase::Eval, &means), margins))
}
