//! Sampling text from a model: temperature and top-k on the host with a seeded generator, so
//! the same seed gives the same text on every backend.
//!
//! Each new token re-runs the whole prefix (no key/value cache): the models this tool trains
//! are small, and it keeps one forward path for training and sampling.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::tokenizer::TextTokenizer;
use crate::model::CausalLm;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    pub max_new_tokens: usize,
    /// 0 picks the most likely token every time.
    pub temperature: f32,
    /// Sample among the k most likely tokens only (0: all).
    pub top_k: usize,
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            max_new_tokens: 32,
            temperature: 0.7,
            top_k: 50,
            seed: 0,
        }
    }
}

/// Continues `prompt` until EOS or `max_new_tokens`, returning only the new text.
pub async fn generate(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    prompt: &str,
    config: &SamplingConfig,
    device: &Device,
) -> Result<String, String> {
    let sample = sample_ids(model, tokenizer, prompt, config, device).await?;
    let new = &sample.ids[sample.prompt_len..];
    let text = new.strip_suffix(&[tokenizer.eos_id()]).unwrap_or(new);
    Ok(tokenizer.decode(text))
}

/// A sampled sequence: the prompt's ids, then the new ones (ending in EOS when the model
/// stopped by itself).
pub struct Sample {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

/// Samples a continuation of `prompt` as token ids, so that callers can score exactly what
/// was sampled (decoding and re-encoding need not give the same ids back).
pub async fn sample_ids(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    prompt: &str,
    config: &SamplingConfig,
    device: &Device,
) -> Result<Sample, String> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut ids = tokenizer.encode_text(prompt);
    if ids.is_empty() {
        ids.push(tokenizer.eos_id());
    }
    let prompt_len = ids.len();
    let window = model.max_positions();
    for _ in 0..config.max_new_tokens {
        let context = &ids[ids.len().saturating_sub(window)..];
        let input: Vec<i64> = context.iter().map(|&id| id as i64).collect();
        let input = Tensor::<2, Int>::from_data(TensorData::new(input, [1, context.len()]), device);
        let logits = model
            .next_token_logits(input)
            .into_data_async()
            .await
            .map_err(|e| format!("reading logits failed: {e}"))?
            .try_into_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        let next = sample(&logits, config, &mut rng);
        ids.push(next);
        if next == tokenizer.eos_id() {
            break;
        }
    }
    Ok(Sample { ids, prompt_len })
}

/// Picks a token id from logits with temperature and top-k.
fn sample(logits: &[f32], config: &SamplingConfig, rng: &mut StdRng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if config.temperature <= 0.0 {
        return order[0] as u32;
    }
    if config.top_k > 0 {
        order.truncate(config.top_k);
    }
    let top = logits[order[0]];
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| (((logits[i] - top) / config.temperature) as f64).exp())
        .collect();
    let mut target = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (&i, w) in order.iter().zip(&weights) {
        target -= w;
        if target <= 0.0 {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_temperature_is_greedy_and_top_k_limits_choices() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        let mut rng = StdRng::seed_from_u64(1);
        let greedy = SamplingConfig {
            temperature: 0.0,
            ..SamplingConfig::default()
        };
        assert_eq!(sample(&logits, &greedy, &mut rng), 1);
        let top2 = SamplingConfig {
            temperature: 1.0,
            top_k: 2,
            ..SamplingConfig::default()
        };
        for _ in 0..100 {
            assert!(matches!(sample(&logits, &top2, &mut rng), 1 | 2));
        }
    }
}
