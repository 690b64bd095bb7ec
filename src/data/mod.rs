//! Preference data: preference pairs (TRL's standard, implicit-prompt and conversational
//! formats) from JSONL, gzip-compressed JSONL or Parquet files, chat templates, and the
//! tokenizer that turns pairs into token ids.
//!
//! Every problem in a file is reported with file name, line (Parquet: row) and field
//! (column), and all bad lines are collected at once so that a user (or a web page) can fix
//! them in one go.

mod bpe;
mod chat;
mod errors;
mod fields;
mod formats;
mod parquet_rows;
mod parse;
pub mod template;
mod tokenized;
pub mod tokenizer;

use std::path::Path;

use errors::ErrorSink;
pub use errors::{DataError, LineError, MAX_STORED_ERRORS, Unit};
pub use formats::{MAX_DECOMPRESSED_BYTES, PairsFormat};
pub use template::{ChatTemplate, Message, Role};
pub use tokenizer::{EOS, TextTokenizer, TokenizedPair, tokenize_pair, tokenize_pairs, train_bpe};

/// The longest line a pairs file may have. A pair is three texts that must fit a model's
/// context (thousands of tokens, tens of kilobytes); a line far beyond that is a broken file,
/// and tokenizing, let alone training a tokenizer on, megabytes of one line takes minutes.
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// A preference pair as rendered text: the model sees `prompt + chosen` and `prompt + rejected`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    /// 1-based line of the source file, so later stages can report errors against it.
    pub line: usize,
    /// Rendered from chat messages by a chat template, which writes its own special tokens
    /// (so tokenizing must not add a BOS of its own).
    pub conversational: bool,
}

/// Parses a pairs file's contents: JSONL, gzip-compressed JSONL or Parquet, by the file's
/// name and first bytes ([`PairsFormat::of`]). `file` is the name for that and for error
/// messages. Every reader of pairs files comes here: the CLI's `--data` and `--eval-data`,
/// the page's files, and dataset files found elsewhere (a Hugging Face cache).
pub fn parse_pairs(
    file: &str,
    bytes: &[u8],
    template: &ChatTemplate,
) -> Result<Vec<PreferencePair>, DataError> {
    match PairsFormat::of(file, bytes) {
        PairsFormat::Jsonl => parse_jsonl(file, bytes, template),
        PairsFormat::GzipJsonl => parse_jsonl(file, &formats::gunzip(file, bytes)?, template),
        PairsFormat::Parquet => parquet_rows::parse(file, bytes, template),
    }
}

/// Parses JSONL (one pair per line) whatever the file's name.
fn parse_jsonl(
    file: &str,
    bytes: &[u8],
    template: &ChatTemplate,
) -> Result<Vec<PreferencePair>, DataError> {
    // Editors on Windows like to start UTF-8 files with a byte-order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut sink = ErrorSink::with_unit(file, Unit::Line);
    let mut pairs = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            let message = format!(
                "the line is {} bytes long, more than the {MAX_LINE_BYTES} a pair may take",
                raw.len()
            );
            sink.push(line, "-", message);
            continue;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                sink.push(
                    line,
                    "-",
                    format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
                );
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        match parse::parse_line(text, template) {
            Ok(pair) => pairs.push(PreferencePair { line, ..pair }),
            Err(bad) => sink.push(line, bad.field, bad.message),
        }
    }
    if pairs.is_empty() && sink.is_empty() {
        sink.push(0, "-", "the file contains no preference pairs");
    }
    sink.finish(pairs)
}

/// Reads a pairs file's bytes; an I/O problem becomes a single line-0 error naming the file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).or_else(|e| {
        let mut sink = ErrorSink::new(&path.display().to_string());
        sink.push(0, "-", e.to_string());
        sink.finish(Vec::new())
    })
}

/// The prompts of `pairs`, each once, in file order.
pub fn distinct_prompts(pairs: &[PreferencePair]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    pairs
        .iter()
        .map(|p| p.prompt.as_str())
        .filter(|p| seen.insert(*p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(bytes: &[u8]) -> Result<Vec<PreferencePair>, DataError> {
        parse_pairs("d.jsonl", bytes, &ChatTemplate::default_plain())
    }

    /// A plain-text pair from line `line`, for the data tests.
    pub(super) fn pair(prompt: &str, chosen: &str, rejected: &str, line: usize) -> PreferencePair {
        let s = str::to_owned;
        PreferencePair {
            prompt: s(prompt),
            chosen: s(chosen),
            rejected: s(rejected),
            line,
            conversational: false,
        }
    }

    /// The only error of a one-bad-line file, as (line, field, message).
    fn only_error(bytes: &[u8]) -> (usize, String, String) {
        let err = plain(bytes).unwrap_err();
        assert_eq!(err.total, 1, "{err:?}");
        let e = err.errors.into_iter().next().unwrap();
        assert_eq!(e.file, "d.jsonl");
        (e.line, e.field, e.message)
    }

    #[test]
    fn line_numbers_blank_lines_crlf_and_bom() {
        let data = "\u{feff}{\"prompt\":\"P\",\"chosen\":\"a\",\"rejected\":\"b\"}\r\n\n  \n\
                    {\"prompt\":\"Q\",\"chosen\":\"c\",\"rejected\":\"d\",\"extra\":1}\n";
        let pairs = plain(data.as_bytes()).unwrap();
        assert_eq!(pairs, vec![pair("P", "a", "b", 1), pair("Q", "c", "d", 4)]);
    }

    #[test]
    fn each_error_kind() {
        let ok = r#"{"prompt":"p","chosen":"a","rejected":"b"}"#;
        let chat = r#"[{"role":"assistant","content":"x"}]"#;
        let bot = r#"[{"role":"user","content":"q"},{"role":"bot","content":"x"}]"#;
        // (file contents, line, field, start of the message)
        let cases = [
            (
                format!("{ok}\n{{\"chosen\": \n"),
                2,
                "-",
                "malformed JSON at column",
            ),
            (
                format!("{ok}\n[1, 2]"),
                2,
                "-",
                "expected a JSON object, got a list",
            ),
            (
                format!("{ok}\n{{\"chosen\":\"a\"}}"),
                2,
                "rejected",
                "missing field",
            ),
            (r#"{"rejected":"a"}"#.into(), 1, "chosen", "missing field"),
            (
                r#"{"chosen":5,"rejected":"a"}"#.into(),
                1,
                "chosen",
                "expected a string or a list of messages, got a number",
            ),
            (
                r#"{"prompt":"p","chosen":" \n","rejected":"b"}"#.into(),
                1,
                "chosen",
                "is empty",
            ),
            (
                r#"{"prompt":"p","chosen":"a","rejected":""}"#.into(),
                1,
                "rejected",
                "is empty",
            ),
            (
                r#"{"prompt":"p","chosen":"a","rejected":"a"}"#.into(),
                1,
                "rejected",
                "is identical to `chosen`",
            ),
            (
                r#"{"chosen":"same","rejected":"same"}"#.into(),
                1,
                "rejected",
                "is identical to `chosen`",
            ),
            (
                format!(r#"{{"prompt":"p","chosen":{chat},"rejected":{chat}}}"#),
                1,
                "prompt",
                "is a string but `chosen` is a list of messages",
            ),
            (
                format!(r#"{{"chosen":"a","rejected":{chat}}}"#),
                1,
                "rejected",
                "is a list of messages but `chosen` is a string",
            ),
            (
                format!(r#"{{"chosen":{bot},"rejected":{chat}}}"#),
                1,
                "chosen[1].role",
                "unknown role \"bot\" (expected system, user or assistant)",
            ),
            (
                r#"{"chosen":[{"role":"user"}],"rejected":[]}"#.into(),
                1,
                "chosen[0].content",
                "missing field",
            ),
            (
                r#"{"chosen":[7],"rejected":[]}"#.into(),
                1,
                "chosen[0]",
                "expected a message object, got a number",
            ),
            (
                String::new(),
                0,
                "-",
                "the file contains no preference pairs",
            ),
            (
                "\n \n".into(),
                0,
                "-",
                "the file contains no preference pairs",
            ),
        ];
        for (data, line, field, message) in cases {
            let (l, f, m) = only_error(data.as_bytes());
            assert_eq!((l, f.as_str()), (line, field), "{data}: {m}");
            assert!(
                m.starts_with(message),
                "{data}: {m:?} does not start with {message:?}"
            );
        }
        let mut latin1 = format!("{ok}\n{ok}\n").into_bytes();
        latin1.extend_from_slice(b"\"caf\xE9\"\n");
        let (line, field, message) = only_error(&latin1);
        assert_eq!((line, field.as_str()), (3, "-"));
        assert_eq!(message, "invalid UTF-8 at byte 4 of the line");
    }

    #[test]
    fn many_bad_lines_are_all_counted() {
        let mut data = String::from(r#"{"prompt":"p","chosen":"a","rejected":"b"}"#);
        data.push_str(&"\nnot json".repeat(MAX_STORED_ERRORS + 5));
        let err = plain(data.as_bytes()).unwrap_err();
        assert_eq!(
            (err.total, err.errors.len()),
            (MAX_STORED_ERRORS + 5, MAX_STORED_ERRORS)
        );
        assert_eq!((err.errors[0].line, err.errors[99].line), (2, 101));
        assert!(
            err.to_string().ends_with(" (and 104 more bad lines)"),
            "{err}"
        );
    }

    fn read_pairs(path: &Path, template: &ChatTemplate) -> Result<Vec<PreferencePair>, DataError> {
        let bytes = read_file(path)?;
        parse_pairs(&path.display().to_string(), &bytes, template)
    }

    #[test]
    fn read_pairs_io_errors_and_success() {
        let dir = std::env::temp_dir().join(format!("dpo-data-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let template = ChatTemplate::default_plain();
        for path in [dir.join("missing.jsonl"), dir.clone()] {
            let err = read_pairs(&path, &template).unwrap_err();
            assert_eq!(err.total, 1);
            let e = &err.errors[0];
            assert_eq!(
                (e.file.as_str(), e.line, e.field.as_str()),
                (&*path.display().to_string(), 0, "-")
            );
            assert!(!e.message.is_empty());
        }
        let file = dir.join("ok.jsonl");
        std::fs::write(&file, r#"{"prompt":"p","chosen":"a","rejected":"b"}"#).unwrap();
        assert_eq!(
            read_pairs(&file, &template).unwrap(),
            vec![pair("p", "a", "b", 1)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
