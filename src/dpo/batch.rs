//! Laying token sequences out for the model, and remembering which positions score a
//! completion token.
//!
//! Only completion tokens count towards a sequence's log-prob, so only the hidden states that
//! predict them go through the language-model head: the prompt positions are dropped before
//! the [positions, vocab] logits exist. That halves the head's work on typical pairs and is
//! what keeps large vocabularies inside a GPU buffer.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// One sequence: all its token ids and the index of its first completion token.
#[derive(Clone, Copy, Debug)]
pub struct Scored<'a> {
    pub ids: &'a [u32],
    pub start: usize,
}

/// Sequences of a batch on the device.
pub struct SequenceBatch {
    /// Every token but each sequence's last, right-padded: [sequences, positions].
    pub inputs: Tensor<2, Int>,
    /// Flat index (sequence * positions + position) of each position that predicts a
    /// completion token: [scored].
    pub rows: Tensor<1, Int>,
    /// The completion token each of those positions predicts: [scored].
    pub targets: Tensor<1, Int>,
    /// One-hot [sequences, scored]: which sequence each scored position belongs to, so that a
    /// matmul sums token log-probs per sequence.
    pub segments: Tensor<2>,
    /// Scored completion tokens per sequence: [sequences].
    pub token_counts: Tensor<1>,
    /// Completion length per sequence, counting an unscored first token too (TRL's
    /// `completion_mask.sum(1)`, which length-normalised losses divide by): [sequences].
    pub completion_lens: Tensor<1>,
    pub sequences: usize,
}

impl SequenceBatch {
    pub fn new(sequences: &[Scored], pad: u32, device: &Device) -> Self {
        let count = sequences.len();
        let width = sequences
            .iter()
            .map(|s| s.ids.len().saturating_sub(1))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut inputs = vec![pad as i64; count * width];
        let (mut rows, mut targets, mut owners) = (Vec::new(), Vec::new(), Vec::new());
        let mut token_counts = vec![0f32; count];
        let completion_lens: Vec<f32> = sequences
            .iter()
            .map(|s| s.ids.len().saturating_sub(s.start) as f32)
            .collect();
        for (s, seq) in sequences.iter().enumerate() {
            let context = seq.ids.len().saturating_sub(1);
            for (p, &id) in seq.ids[..context].iter().enumerate() {
                inputs[s * width + p] = id as i64;
            }
            // Position p predicts token p + 1. A completion starting at token 0 has no
            // context for its first token, which therefore goes unscored.
            for p in seq.start.max(1) - 1..context {
                rows.push((s * width + p) as i64);
                targets.push(seq.ids[p + 1] as i64);
                owners.push(s);
                token_counts[s] += 1.0;
            }
        }
        let scored = rows.len();
        let mut segments = vec![0f32; count * scored];
        for (i, &s) in owners.iter().enumerate() {
            segments[s * scored + i] = 1.0;
        }
        SequenceBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [count, width]), device),
            rows: Tensor::from_data(TensorData::new(rows, [scored]), device),
            targets: Tensor::from_data(TensorData::new(targets, [scored]), device),
            segments: Tensor::from_data(TensorData::new(segments, [count, scored]), device),
            token_counts: Tensor::from_data(TensorData::new(token_counts, [count]), device),
            completion_lens: Tensor::from_data(TensorData::new(completion_lens, [count]), device),
            sequences: count,
        }
    }
}
