//! Byte-level BPE tokenizers, trained here or loaded from a `tokenizer.json`.

use tokenizers::Tokenizer;

use super::template::special_token;

pub use super::bpe::train_bpe;
pub use super::tokenized::{TokenizedPair, tokenize_pair, tokenize_pairs};

/// End-of-sequence token of tokenizers trained by [`train_bpe`], where it has id 0.
pub const EOS: &str = "<|endoftext|>";

/// EOS spellings tried, in order, when the tokenizer config does not name one.
const EOS_CANDIDATES: [&str; 3] = [EOS, "</s>", "<eos>"];

/// A tokenizer plus its end-of-sequence token.
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    eos_token: String,
    eos_id: u32,
    vocab_size: usize,
}

impl TextTokenizer {
    /// Loads a `tokenizer.json`. The EOS token is `tokenizer_config`'s `eos_token` when the
    /// model has a `tokenizer_config.json` (its text) that names one; otherwise the first of
    /// `<|endoftext|>`, `</s>`, `<eos>` in the vocabulary. Errors start with the name of the
    /// file at fault.
    pub fn from_bytes(
        json: &[u8],
        tokenizer_config: Option<&str>,
    ) -> Result<TextTokenizer, String> {
        // tokenizers 0.23 panics on some syntax errors inside a component (found by fuzzing:
        // a broken string in `decoder`, an escape that is no Unicode code point); a file that
        // parses as a JSON value, every string decoded, cannot reach that path.
        serde_json::from_slice::<serde_json::Value>(json)
            .map_err(|e| format!("tokenizer.json: {e}"))?;
        let tokenizer = Tokenizer::from_bytes(json).map_err(|e| format!("tokenizer.json: {e}"))?;
        TextTokenizer::from_tokenizer(tokenizer, tokenizer_config)
    }

    /// Wraps a tokenizer, such as one from [`train_bpe`]; `tokenizer_config` as in
    /// [`Self::from_bytes`].
    pub fn from_tokenizer(
        tokenizer: Tokenizer,
        tokenizer_config: Option<&str>,
    ) -> Result<TextTokenizer, String> {
        let named = match tokenizer_config {
            Some(text) => {
                let config = serde_json::from_str(text)
                    .map_err(|e| format!("tokenizer_config.json: {e}"))?;
                special_token(&config, "eos_token")
                    .map_err(|e| format!("tokenizer_config.json: {e}"))?
            }
            None => None,
        };
        let (eos_token, eos_id) = match named {
            Some(token) => match tokenizer.token_to_id(&token) {
                Some(id) => (token, id),
                None => {
                    return Err(format!(
                        "tokenizer_config.json: field `eos_token`: {token:?} is not in the \
                         vocabulary of tokenizer.json"
                    ));
                }
            },
            None => EOS_CANDIDATES
                .iter()
                .find_map(|&token| Some((token.to_owned(), tokenizer.token_to_id(token)?)))
                .ok_or_else(|| {
                    format!(
                        "tokenizer.json: no end-of-sequence token: none of {EOS_CANDIDATES:?} \
                         is in the vocabulary"
                    )
                })?,
        };
        // Added tokens may sit past the model's vocabulary, so size by the largest id.
        let vocab_size = tokenizer
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&id| id as usize + 1);
        // Encoding fails only with a broken tokenizer.json (e.g. an `unk_token` missing from
        // the vocabulary); `encode` has no error to return, so catch such files at load time.
        tokenizer
            .encode("Hello, wörld! 123 \t\n", false)
            .map_err(|e| format!("tokenizer.json: the tokenizer cannot encode text: {e}"))?;
        Ok(TextTokenizer {
            tokenizer,
            eos_token,
            eos_id,
            vocab_size,
        })
    }

    /// Token ids of `text`, without BOS/EOS or other post-processing.
    /// Special tokens written in the text (such as EOS) become their ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, false)
    }

    /// Token ids of `text` as `transformers`' `tokenizer(text)` gives them: with the
    /// tokenizer's post-processing, which for Llama-2-style tokenizers prepends BOS.
    pub fn encode_text(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, true)
    }

    fn encode_with(&self, text: &str, add_special_tokens: bool) -> Vec<u32> {
        self.tokenizer
            .encode(text, add_special_tokens)
            .expect("tokenizer checked by from_tokenizer failed to encode text")
            .get_ids()
            .to_vec()
    }

    /// Text of `ids`, special tokens included. Only for display, so a decoder failure is shown
    /// in the text rather than returned.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer
            .decode(ids, false)
            .unwrap_or_else(|e| format!("<cannot decode: {e}>"))
    }

    /// The text `new` adds after `prompt`. Decoded together with the prompt, so that a
    /// character whose bytes straddle two tokens comes out whole; one cut off at the end
    /// (sampling stopped inside it) is left out instead of shown as U+FFFD.
    pub fn decode_continuation(&self, prompt: &[u32], new: &[u32]) -> String {
        let before = self.decode(prompt);
        let all = self.decode(&[prompt, new].concat());
        let text = match all.strip_prefix(&before) {
            Some(text) => text.to_owned(),
            None => self.decode(new),
        };
        text.trim_end_matches('\u{FFFD}').to_owned()
    }

    /// One more than the largest token id: the embedding size a model needs.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The EOS token's text, for writing a `tokenizer_config.json`.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The `tokenizer.json` text, byte-for-byte the same for the same tokenizer.
    pub fn to_json(&self) -> String {
        self.tokenizer
            .to_string(false)
            .expect("serializing an in-memory tokenizer to JSON does not fail")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const CORPUS: &str = "The quick brown fox jumps over the lazy dog. The dog sleeps.\n\
        Preference pairs: the chosen answer is better than the rejected answer.\n\
        Ünïcödé text, emoji 🦀 and tabs\there.";

    #[test]
    fn trained_tokenizer_roundtrips() {
        let texts = CORPUS.lines().chain(["the end<|endoftext|>"]);
        let a = TextTokenizer::from_tokenizer(train_bpe(texts, 300).unwrap(), None).unwrap();
        assert_eq!(a.eos_id(), 0);
        assert_eq!(a.vocab_size(), 300);
        for text in [CORPUS, "never seen: ¿qué? 日本語 \u{0}", "x<|endoftext|>y"] {
            assert_eq!(a.decode(&a.encode(text)), text);
        }
        // Learned merges make the corpus shorter than its bytes; EOS in text is one token.
        assert!(a.encode(CORPUS).len() < CORPUS.len() * 3 / 4);
        assert_eq!(a.encode("<|endoftext|>"), vec![0]);
        // Loading the saved JSON gives the same tokenizer.
        let loaded = TextTokenizer::from_bytes(a.to_json().as_bytes(), None).unwrap();
        assert_eq!(loaded.to_json(), a.to_json());
        assert_eq!(loaded.encode(CORPUS), a.encode(CORPUS));
    }

    #[test]
    fn continuations_never_show_half_a_character() {
        let bytes =
            TextTokenizer::from_tokenizer(train_bpe(["h é"].into_iter(), 257).unwrap(), None);
        let tok = bytes.unwrap();
        let prompt = tok.encode_text("h");
        let all = tok.encode_text("h é");
        let new = &all[prompt.len()..];
        // " é" is three byte tokens: a space and é's two bytes.
        assert_eq!(new.len(), 3);
        assert!(
            tok.decode(&new[..2]).ends_with('\u{FFFD}'),
            "decoded alone, half of é shows"
        );
        assert_eq!(tok.decode_continuation(&prompt, &new[..2]), " ");
        assert_eq!(tok.decode_continuation(&prompt, new), " é");
    }

    /// No pre-tokenizer, vocab `<|endoftext|> a b c ab </s>` and the single merge `a b`,
    /// so that "a" + "bc" tokenizes across the prompt/completion boundary.
    pub(crate) fn hand_built() -> TextTokenizer {
        let json = serde_json::json!({
            "version": "1.0",
            "added_tokens": [{"id": 0, "content": EOS, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}],
            "model": {"type": "BPE", "vocab": {EOS: 0, "a": 1, "b": 2, "c": 3, "ab": 4, "</s>": 5},
                "merges": [["a", "b"]]},
        });
        TextTokenizer::from_bytes(json.to_string().as_bytes(), None).unwrap()
    }

    #[test]
    fn eos_lookup() {
        let tok = hand_built();
        assert_eq!(
            (tok.eos_id(), tok.eos_token(), tok.vocab_size()),
            (0, EOS, 6)
        );
        let json = tok.to_json();
        let load = |config: &str| TextTokenizer::from_bytes(json.as_bytes(), Some(config));
        assert_eq!(load(r#"{"eos_token": "</s>"}"#).unwrap().eos_id(), 5);
        let named = load(r#"{"eos_token": {"content": "</s>", "special": true}}"#).unwrap();
        assert_eq!((named.eos_id(), named.eos_token()), (5, "</s>"));
        assert_eq!(load(r#"{"bos_token": "</s>"}"#).unwrap().eos_id(), 0);
        let err = load(r#"{"eos_token": "<eot>"}"#).unwrap_err();
        assert_eq!(
            err,
            "tokenizer_config.json: field `eos_token`: \"<eot>\" is not in the vocabulary of \
             tokenizer.json"
        );
        assert!(
            load("{")
                .unwrap_err()
                .starts_with("tokenizer_config.json: ")
        );
        assert!(TextTokenizer::from_bytes(b"{}", None).is_err());
    }
}
