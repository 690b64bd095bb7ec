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
use crate::task::Lexicon;

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

/// One sampled continuation: its text and ids, and the text's reward under the shipped task's
/// ground truth (`task::Lexicon`; meaningful on that task, a word count of its lexicon elsewhere).
#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    pub prompt: String,
    /// The new text only, without the EOS that ended it.
    pub text: String,
    pub reward: f32,
    #[serde(skip)]
    pub sample: Sample,
}

/// Samples `per_prompt` continuations of every prompt, decodes and scores each. Sample `k` of
/// prompt `i` uses seed `sampling.seed + i * per_prompt + k`, so two models sampled with the
/// same settings differ only by the model. The one sampling loop behind the generations before
/// and after DPO, `dpo generate` and the reward-vs-KL experiment.
pub async fn sample_and_score(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    per_prompt: usize,
    sampling: &SamplingConfig,
    device: &Device,
) -> Result<Vec<Generation>, String> {
    let lexicon = Lexicon::shipped();
    let mut out = Vec::with_capacity(prompts.len() * per_prompt);
    for (i, prompt) in prompts.iter().enumerate() {
        for k in 0..per_prompt {
            let config = SamplingConfig {
                seed: sampling.seed + (i * per_prompt + k) as u64,
                ..sampling.clone()
            };
            let sample = sample_ids(model, tokenizer, prompt, &config, device).await?;
            let (prompt_ids, new) = sample.ids.split_at(sample.prompt_len);
            let new = new.strip_suffix(&[tokenizer.eos_id()]).unwrap_or(new);
            let text = tokenizer.decode_continuation(prompt_ids, new);
            out.push(Generation {
                prompt: prompt.clone(),
                reward: lexicon.reward(&text),
                text,
                sample,
            });
        }
    }
    Ok(out)
}

/// The mean reward of `generations` (0 when there are none).
pub fn mean_reward(generations: &[Generation]) -> f64 {
    let total: f64 = generations.iter().map(|g| g.reward as f64).sum();
    total / generations.len().max(1) as f64
}

/// A sampled sequence: the prompt's ids, then the new ones (ending in EOS when the model
/// stopped by itself).
#[derive(Clone, Debug)]
pub struct Sample {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

/// Samples a continuation of `prompt` as token ids, so that callers can score exactly what
/// was sampled (decoding and re-encoding need not give the same ids back).
async fn sample_ids(
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
