//! The shipped example task: synthetic reviews with a known ground-truth reward.
//!
//! `scripts/gen_data.py` writes `examples/data/`: prompts such as `Review of the hotel:`,
//! completions of 6 to 14 words from a dozen templates, and a lexicon giving every word a
//! weight (sentiment words -3..=3, everything else 0). The reward of a text is the sum of the
//! weights of its words, lowercased and split on anything that is not an ASCII letter; words
//! outside the lexicon count 0. In each pair, chosen and rejected share the prompt and the
//! template and differ only in sentiment slots (and sometimes a neutral intensifier); chosen
//! scores at least 2 more. Both sides come from the same distribution, so length, position
//! and sign carry no signal: a policy improves on the task exactly by preferring the words the
//! lexicon rewards, which [`Lexicon::reward`] measures on sampled generations.

use std::collections::HashMap;

/// The task's training pairs, `(file name, contents)`, embedded so that `dpo train` and the
/// examples work from any folder. Not in the browser build: the page fetches its samples.
#[cfg(not(target_family = "wasm"))]
pub const SHIPPED_TRAIN: (&str, &str) = (
    "examples/data/train.jsonl",
    include_str!("../examples/data/train.jsonl"),
);

/// The task's held-out pairs, likewise.
#[cfg(not(target_family = "wasm"))]
pub const SHIPPED_HELDOUT: (&str, &str) = (
    "examples/data/heldout.jsonl",
    include_str!("../examples/data/heldout.jsonl"),
);

/// Word weights of the task's ground-truth reward.
#[derive(Clone, Debug)]
pub struct Lexicon {
    weights: HashMap<String, f32>,
}

impl Lexicon {
    /// The lexicon of `examples/data/`, embedded in the crate.
    pub fn shipped() -> Lexicon {
        Lexicon::from_json(include_str!("../examples/data/lexicon.json"))
            .expect("examples/data/lexicon.json is a valid lexicon")
    }

    /// Parses a JSON object of `"word": weight` entries.
    pub fn from_json(json: &str) -> Result<Lexicon, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("lexicon is not JSON: {e}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| "lexicon must be a JSON object".to_string())?;
        let mut weights = HashMap::with_capacity(object.len());
        for (word, weight) in object {
            let weight = weight
                .as_f64()
                .ok_or_else(|| format!("weight of {word:?} is not a number"))?;
            weights.insert(word.to_lowercase(), weight as f32);
        }
        Ok(Lexicon { weights })
    }

    /// Sum of the weights of the words of `text`, as `scripts/gen_data.py` computes it.
    pub fn reward(&self, text: &str) -> f32 {
        text.to_lowercase()
            .split(|c: char| !c.is_ascii_lowercase())
            .filter(|word| !word.is_empty())
            .map(|word| self.weights.get(word).copied().unwrap_or(0.0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_rewards() {
        let lexicon = Lexicon::shipped();
        assert_eq!(lexicon.reward(""), 0.0);
        assert_eq!(lexicon.reward(" i loved it."), 3.0);
        assert_eq!(
            lexicon.reward("The staff was AMAZING, but the room was dirty!"),
            1.0
        );
        assert_eq!(lexicon.reward("awful-awful...zebra"), -6.0);
        assert_eq!(lexicon.reward(" sadly the menu felt mediocre to me."), -3.0);
    }

    #[test]
    fn from_json_reads_and_rejects() {
        let lexicon = Lexicon::from_json(r#"{"Good": 1.5, "bad": -2}"#).unwrap();
        assert_eq!(lexicon.reward("good good bad goodness"), 1.0);
        assert!(Lexicon::from_json("[1, 2]").is_err());
        assert!(Lexicon::from_json(r#"{"good": "yes"}"#).is_err());
        assert!(Lexicon::from_json("{").is_err());
    }

    #[test]
    fn heldout_pairs_prefer_the_higher_reward() {
        let lexicon = Lexicon::shipped();
        let heldout = include_str!("../examples/data/heldout.jsonl");
        let mut pairs = 0;
        for line in heldout.lines().filter(|line| !line.trim().is_empty()) {
            let pair: serde_json::Value = serde_json::from_str(line).unwrap();
            let (chosen, rejected) = (pair["chosen"].as_str(), pair["rejected"].as_str());
            let (chosen, rejected) = (chosen.unwrap(), rejected.unwrap());
            assert!(
                lexicon.reward(chosen) >= lexicon.reward(rejected) + 2.0,
                "{line}"
            );
            pairs += 1;
        }
        assert!(pairs >= 100, "only {pairs} held-out pairs");
    }
}
