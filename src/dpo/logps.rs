//! Sequence log-probabilities: the sum of log p(token | prefix) over completion tokens.
//!
//! The language-model head runs in chunks of scored positions so that no logits tensor above
//! `MAX_CHUNK_LOGITS` elements is ever built: GPT-2's 50257-token vocabulary over a whole
//! batch would not fit a browser's (or even an H100's) largest single buffer.

use burn::tensor::Tensor;

use super::batch::SequenceBatch;
use super::token_logps::token_logps;
use crate::model::CausalLm;

/// Largest logits chunk, in elements (64 MiB of f32).
pub const MAX_CHUNK_LOGITS: usize = 1 << 24;

/// Summed completion log-probs of every sequence in the batch: [sequences].
pub fn sequence_logps(model: &CausalLm, batch: &SequenceBatch) -> Tensor<1> {
    from_hidden(model, model.hidden(batch.inputs.clone()), batch)
}

/// The same from the model's final hidden states [sequences, positions, width] for the batch.
pub fn from_hidden(model: &CausalLm, hidden: Tensor<3>, batch: &SequenceBatch) -> Tensor<1> {
    let [sequences, positions, width] = hidden.dims();
    let scored = batch.rows.dims()[0];
    if scored == 0 {
        return batch.token_counts.zeros_like();
    }
    let hidden = hidden
        .reshape([sequences * positions, width])
        .select(0, batch.rows.clone());
    let precision = model.precision();
    let head = precision.operand(model.head().transpose());
    let vocab = head.dims()[1];
    let chunk = (MAX_CHUNK_LOGITS / vocab).max(1);
    let parts: Vec<Tensor<1>> = (0..scored)
        .step_by(chunk)
        .map(|start| {
            let len = chunk.min(scored - start);
            let chunk = hidden.clone().narrow(0, start, len);
            let logits = precision.matmul(chunk, head.clone());
            token_logps(logits, batch.targets.clone().narrow(0, start, len))
        })
        .collect();
    let token_logps = Tensor::cat(parts, 0).reshape([scored, 1]);
    batch
        .segments
        .clone()
        .matmul(token_logps)
        .reshape([sequences])
}
