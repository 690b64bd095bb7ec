//! Passes over a whole pairs file without an update: held-out evaluation (the DPO metrics of a
//! policy against its reference) and the reference log-probs computed once before DPO.

use burn::tensor::{Device, Tensor};

use crate::data::TokenizedPair;
use crate::dpo::batch::SequenceBatch;
use crate::dpo::loss::LossConfig;
use crate::dpo::{self, Metrics, Phase, Reference, logps};
use crate::model::CausalLm;

/// The metrics' means over all pairs (batches weighted by their size), and each pair's
/// implicit reward margin. Models and `device` should be plain (no autodiff).
pub async fn evaluate(
    policy: &CausalLm,
    reference: &Reference,
    pairs: &[TokenizedPair],
    pad: u32,
    loss: &LossConfig,
    batch: usize,
    device: &Device,
) -> Result<(Metrics, Vec<f32>), String> {
    let mut sums: Vec<f64> = Vec::new();
    let mut margins = Vec::with_capacity(pairs.len());
    let batch = batch.max(1);
    for (n, chunk) in pairs.chunks(batch).enumerate() {
        let indices: Vec<usize> = (n * batch..n * batch + chunk.len()).collect();
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let sequences = SequenceBatch::new(&dpo::pair_sequences(&refs), pad, device);
        let policy_logps = logps::sequence_logps(policy, &sequences);
        let out = dpo::pair_loss(
            policy_logps,
            reference.batch(&indices, device),
            &sequences,
            loss,
        );
        // One read per batch: the metrics and the margins together.
        let metrics = out.metrics.pack();
        let count = metrics.dims()[0];
        let values = read_f32(Tensor::cat(vec![metrics, out.margins], 0)).await?;
        sums.resize(count, 0.0);
        for (sum, value) in sums.iter_mut().zip(&values[..count]) {
            *sum += *value as f64 * chunk.len() as f64;
        }
        margins.extend_from_slice(&values[count..]);
    }
    let means: Vec<f32> = sums
        .iter()
        .map(|s| (s / pairs.len().max(1) as f64) as f32)
        .collect();
    if means.is_empty() {
        return Err("evaluation needs at least one pair".into());
    }
    Ok((Metrics::unpack(0, Phase::Eval, &means).0, margins))
}

/// Each pair's `[chosen, rejected]` completion log-probs under `model`: DPO's reference,
/// computed once so that the model need not stay in memory.
pub async fn reference_logps(
    model: &CausalLm,
    pairs: &[TokenizedPair],
    pad: u32,
    batch: usize,
    device: &Device,
) -> Result<Vec<[f32; 2]>, String> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let sequences = SequenceBatch::new(&dpo::pair_sequences(&refs), pad, device);
        let values = read_f32(logps::sequence_logps(model, &sequences).detach()).await?;
        let n = chunk.len();
        out.extend((0..n).map(|i| [values[i], values[n + i]]));
    }
    Ok(out)
}

/// Reads a tensor's values without blocking (the browser cannot block).
pub async fn read_f32(tensor: Tensor<1>) -> Result<Vec<f32>, String> {
    tensor
        .into_data_async()
        .await
        .map_err(|e| format!("reading from the device failed: {e}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("unexpected tensor type: {e:?}"))
}
