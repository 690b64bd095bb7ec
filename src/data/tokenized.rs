//! Preference pairs as token ids, tokenized the way TRL's DPOTrainer does.

use super::errors::ErrorSink;
use super::tokenizer::TextTokenizer;
use super::{DataError, PreferencePair};

/// Token ids of `prompt + chosen` and `prompt + rejected`, each ending in EOS unless truncated,
/// and where both completions start. Only tokens from `start` on are scored by DPO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedPair {
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    pub start: usize,
}

/// Tokenizes a pair as TRL's DPOTrainer (1.x) does. EOS is appended to each completion that
/// lacks it; the prompt, prompt+chosen and prompt+rejected are tokenized on their own (plain
/// text with the tokenizer's post-processing, such as a Llama BOS; chat-rendered text as it
/// is), and both completions start where the prompt's ids stop being a prefix of *either*
/// sequence, since BPE may merge across the prompt/completion boundary. Sequences longer than
/// `max_length` lose their end; a prompt that leaves no completion token is an error.
///
/// An empty prompt gives start 0. The first token of a sequence has no context to be predicted
/// from, so the caller scores the completion from index `max(start, 1)`.
pub fn tokenize_pair(
    tok: &TextTokenizer,
    pair: &PreferencePair,
    max_length: usize,
) -> Result<TokenizedPair, String> {
    let encode = |text: &str| match pair.conversational {
        true => tok.encode(text),
        false => tok.encode_text(text),
    };
    let sequence = |completion: &str| {
        let mut ids = encode(&format!("{}{completion}", pair.prompt));
        if ids.last() != Some(&tok.eos_id()) {
            ids.push(tok.eos_id());
        }
        ids
    };
    let prompt = encode(&pair.prompt);
    let mut chosen = sequence(&pair.chosen);
    let mut rejected = sequence(&pair.rejected);
    let start = common_prefix(&prompt, &chosen).min(common_prefix(&prompt, &rejected));
    if start >= max_length {
        return Err(format!(
            "the prompt is too long for max_length {max_length}: \
             it takes {start} tokens and leaves none for the completion"
        ));
    }
    chosen.truncate(max_length);
    rejected.truncate(max_length);
    Ok(TokenizedPair {
        chosen,
        rejected,
        start,
    })
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// [`tokenize_pair`] for every pair, reporting failures against each pair's source line.
pub fn tokenize_pairs(
    file: &str,
    tok: &TextTokenizer,
    pairs: &[PreferencePair],
    max_length: usize,
) -> Result<Vec<TokenizedPair>, DataError> {
    let mut sink = ErrorSink::new(file);
    let mut out = Vec::with_capacity(pairs.len());
    for pair in pairs {
        match tokenize_pair(tok, pair, max_length) {
            Ok(tokenized) => out.push(tokenized),
            Err(message) => sink.push(pair.line, "prompt", message),
        }
    }
    sink.finish(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::pair;
    use super::super::tokenizer::tests::hand_built;
    use super::*;

    #[test]
    fn completion_start_and_eos() {
        let tok = hand_built();
        assert_eq!(tok.encode("abc"), vec![4, 3]);
        let t = tokenize_pair(&tok, &pair("a", "bc", "c", 1), 100).unwrap();
        // "a"+"bc" merges to [ab, c]: the prompt [a] is not a prefix of the chosen ids, so both
        // completions start at 0 (TRL takes the shorter common prefix for both).
        assert_eq!(
            (t.chosen, t.rejected, t.start),
            (vec![4, 3, 0], vec![1, 3, 0], 0)
        );
        let t = tokenize_pair(&tok, &pair("a", "c", "cc", 1), 100).unwrap();
        assert_eq!(
            (t.chosen, t.rejected, t.start),
            (vec![1, 3, 0], vec![1, 3, 3, 0], 1)
        );
        // A completion that already ends in EOS does not get a second one.
        let t = tokenize_pair(&tok, &pair("a", "b<|endoftext|>", "c", 1), 100).unwrap();
        assert_eq!(t.chosen, vec![4, 0]);
        // Empty prompt: the completion starts at 0.
        let t = tokenize_pair(&tok, &pair("", "c", "b", 1), 100).unwrap();
        assert_eq!((t.chosen, t.start), (vec![3, 0], 0));
    }

    #[test]
    fn truncation_keeps_the_start() {
        let tok = hand_built();
        let t = tokenize_pair(&tok, &pair("cc", "aca", "b", 1), 4).unwrap();
        assert_eq!(
            (t.chosen, t.rejected, t.start),
            (vec![3, 3, 1, 3], vec![3, 3, 2, 0], 2)
        );
        let err = tokenize_pair(&tok, &pair("ccc", "a", "b", 1), 3).unwrap_err();
        assert!(err.contains("prompt is too long for max_length 3"), "{err}");
    }

    #[test]
    fn tokenize_pairs_reports_source_lines() {
        let tok = hand_built();
        let pairs = [
            pair("c", "a", "b", 3),
            pair("cccc", "a", "b", 7),
            pair("cccc", "a", "b", 9),
        ];
        let err = tokenize_pairs("d.jsonl", &tok, &pairs, 3).unwrap_err();
        assert_eq!(err.total, 2);
        let e = &err.errors[0];
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("d.jsonl", 7, "prompt")
        );
        assert_eq!(err.errors[1].line, 9);
        let ok = tokenize_pairs("d.jsonl", &tok, &pairs[..1], 3).unwrap();
        assert_eq!(ok[0].chosen, vec![3, 1, 0]);
    }
}
