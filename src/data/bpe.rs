//! Training a GPT-2 style byte-level BPE with the `tokenizers` crate.

use std::collections::HashMap;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, Tokenizer, Trainer,
};

use super::tokenizer::EOS;

/// Every byte as a symbol, plus EOS: the smallest vocabulary a byte-level BPE can have.
const MIN_VOCAB_SIZE: usize = 257;

/// Trains a GPT-2 style byte-level BPE with [`EOS`] (id 0) as its only special token.
/// The result depends only on the texts and `vocab_size`: the trainer breaks ties between
/// equally frequent pairs by token id, and ids follow the sorted alphabet.
pub fn train_bpe<'a>(
    texts: impl Iterator<Item = &'a str>,
    vocab_size: usize,
) -> Result<Tokenizer, String> {
    if vocab_size < MIN_VOCAB_SIZE {
        return Err(format!(
            "vocab_size must be at least {MIN_VOCAB_SIZE}, got {vocab_size}"
        ));
    }
    let pre_tokenizer = ByteLevel::new(false, true, true);
    let mut trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOS, true)])
        // All 256 bytes, so that any text can be encoded even if the corpus lacks some bytes.
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // `Tokenizer::train` would pre-tokenize every occurrence of every word, which dominates
    // training time; pre-tokenizing each distinct chunk once gives the same word counts.
    let counts = chunk_counts(texts);
    let words = |chunk: &str| -> tokenizers::Result<Vec<String>> {
        let mut pre = PreTokenizedString::from(chunk);
        pre_tokenizer.pre_tokenize(&mut pre)?;
        let count = counts[chunk];
        let splits = pre.get_splits(OffsetReferential::Original, OffsetType::Byte);
        Ok(splits
            .into_iter()
            .flat_map(|(word, _, _)| vec![word.to_owned(); count])
            .collect())
    };
    trainer
        .feed(counts.keys(), words)
        .map_err(|e| e.to_string())?;
    let mut model = BPE::default();
    let special_tokens = trainer.train(&mut model).map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .add_special_tokens(special_tokens)
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// Counts the distinct chunks of the texts, cut where GPT-2's pre-tokenizer pattern always
/// cuts: at EOS (a special token, never part of a word) and before whitespace that follows
/// non-whitespace (no alternative of the pattern matches across that point, and none looks
/// behind it), so pre-tokenizing a chunk alone gives the same words as in its text.
fn chunk_counts<'a>(texts: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut counts = HashMap::new();
    for part in texts.flat_map(|text| text.split(EOS)) {
        let mut start = 0;
        let mut previous_is_space = true;
        for (i, c) in part.char_indices() {
            if c.is_whitespace() && !previous_is_space {
                *counts.entry(&part[start..i]).or_default() += 1;
                start = i;
            }
            previous_is_space = c.is_whitespace();
        }
        if start < part.len() {
            *counts.entry(&part[start..]).or_default() += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::TrainerWrapper;

    /// Prose, code-like indentation, blank lines, trailing spaces, tabs, contractions,
    /// non-ASCII letters and digits, and `eos` inside a text.
    fn corpus(eos: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for i in 0..40 {
            texts.push(format!(
                "It's the {i}th line: don't   stop, café ünïcode 🦀{} ",
                i * 7
            ));
            texts.push(format!(
                "fn f{i}() {{\n    return  x;\n\n\tdone\u{a0}ok\n}}{eos}next"
            ));
        }
        texts
    }

    #[test]
    fn same_tokenizer_as_tokenizers_own_training() {
        // `Tokenizer::train` would also learn merges inside EOS, so compare without it.
        let texts = corpus(" ");
        let fast = train_bpe(texts.iter().map(String::as_str), 400).unwrap();

        let eos = AddedToken::from(EOS, true);
        let mut slow = Tokenizer::new(BPE::default());
        slow.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        slow.with_decoder(Some(ByteLevelDecoder::default()));
        slow.add_special_tokens([eos.clone()]).unwrap();
        let mut trainer: TrainerWrapper = BpeTrainer::builder()
            .vocab_size(400)
            .show_progress(false)
            .special_tokens(vec![eos])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        slow.train(&mut trainer, texts.iter()).unwrap();

        assert_eq!(
            fast.to_string(false).unwrap(),
            slow.to_string(false).unwrap()
        );
        assert_eq!(fast.token_to_id(EOS), Some(0));
    }

    #[test]
    fn deterministic_and_nothing_learned_from_eos() {
        let texts = corpus(EOS);
        let train = || train_bpe(texts.iter().map(String::as_str), 500).unwrap();
        let tokenizer = train();
        assert_eq!(
            tokenizer.to_string(false).unwrap(),
            train().to_string(false).unwrap()
        );
        let vocab = tokenizer.get_vocab(true);
        assert!(
            vocab.keys().all(|t| t == EOS || !t.contains("|>")),
            "{vocab:?}"
        );
        assert_eq!(
            tokenizer
                .encode(format!("x{EOS}").as_str(), false)
                .unwrap()
                .get_ids()
                .last(),
            Some(&0)
        );
    }

    #[test]
    fn rejects_tiny_vocab() {
        assert!(
            train_bpe(["a"].into_iter(), 256)
                .unwrap_err()
                .contains("at least 257")
        );
    }

    #[test]
    fn chunks() {
        let counts = chunk_counts(["  a b\tb  c <|endoftext|> a"].into_iter());
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                ("\tb", 1),
                (" ", 1),
                ("  a", 1),
                ("  c", 1),
                (" a", 1),
                (" b", 1)
            ]
        );
    }
}
