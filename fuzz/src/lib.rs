//! The fuzz targets' bodies, shared by `cargo fuzz` (`fuzz_targets/`) and by the ordinary
//! test that replays the committed corpus and crash files (`tests/fuzz_corpus.rs`, which
//! includes this file), so CI exercises the same code without an instrumented build.
//!
//! Whatever the bytes, nothing may panic: bad input is an `Err`. Where a stage accepts the
//! input, the next stage runs too, so that accepted input is exercised further.

use std::sync::OnceLock;

use burn::tensor::Device;
use dpo::data::{self, ChatTemplate, Message, Role, TextTokenizer};
use dpo::io::hf::{self, ModelFiles};

/// A target's body: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// The targets, by the names of their folders under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: [(&str, Target); 3] = [
    ("pairs", pairs),
    ("model_files", model_files),
    ("tokenizer", tokenizer),
];

/// A pairs file (JSONL), parsed with the plain template or a Jinja one (chosen by the first
/// byte, which also sets `max_length`), then tokenized.
pub fn pairs(bytes: &[u8]) {
    let Some((&selector, text)) = bytes.split_first() else {
        return;
    };
    let template = match selector % 2 {
        0 => ChatTemplate::default_plain(),
        _ => chatml().clone(),
    };
    if let Ok(pairs) = data::parse_pairs("fuzz.jsonl", text, &template) {
        let max_length = 2 + selector as usize / 2;
        let _ = data::tokenize_pairs("fuzz.jsonl", bpe(), &pairs, max_length);
    }
}

/// A model folder's `config.json` and `model.safetensors`: a 2-byte little-endian length, the
/// config, then the weights; the tokenizer is fixed. What `hf::check` accepts, `hf::load`
/// must load: the command line relies on that to refuse bad input before using a device.
pub fn model_files(bytes: &[u8]) {
    let Some(files) = model_files_of(bytes) else {
        return;
    };
    if hf::check(&files, "fuzz").is_ok()
        && let Err(e) = hf::load(&files, "fuzz", &Device::flex())
    {
        panic!("hf::check accepted files that hf::load refuses: {e}");
    }
}

/// The model folder an input of `model_files` stands for.
pub fn model_files_of(bytes: &[u8]) -> Option<ModelFiles> {
    let (length, rest) = bytes.split_first_chunk::<2>()?;
    let (config, weights) = rest.split_at((u16::from_le_bytes(*length) as usize).min(rest.len()));
    Some(ModelFiles {
        config: config.to_vec(),
        weights: weights.to_vec(),
        tokenizer: TOKENIZER.as_bytes().to_vec(),
        tokenizer_config: None,
        chat_template: None,
    })
}

/// A `tokenizer.json`, then optionally a NUL byte and a `tokenizer_config.json`. A tokenizer
/// that loads encodes and decodes text; a chat template that loads renders a conversation.
pub fn tokenizer(bytes: &[u8]) {
    let (json, config) = match bytes.iter().position(|&b| b == 0) {
        Some(nul) => (&bytes[..nul], Some(&bytes[nul + 1..])),
        None => (bytes, None),
    };
    let config = match config.map(std::str::from_utf8) {
        Some(Err(_)) => return,
        Some(Ok(text)) => Some(text),
        None => None,
    };
    if let Ok(tokenizer) = TextTokenizer::from_bytes(json, config) {
        let ids = tokenizer.encode("Hello, wörld! <|endoftext|> 🦀\t\n");
        tokenizer.decode(&ids);
    }
    if let Some(Ok(template)) = config.map(ChatTemplate::from_tokenizer_config) {
        let message = |role, content: &str| Message {
            role,
            content: content.into(),
        };
        let conversation = [
            message(Role::System, "Be brief."),
            message(Role::User, "hi"),
        ];
        let _ = template.render(&conversation, true);
    }
}

/// The hand-built tokenizer of the data tests: vocabulary `<|endoftext|> a b c ab </s>`.
const TOKENIZER: &str = r#"{"version":"1.0","added_tokens":[{"id":0,"content":"<|endoftext|>",
"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"model":{"type":"BPE","vocab":{"<|endoftext|>":0,"a":1,"b":2,"c":3,"ab":4,"</s>":5},
"merges":[["a","b"]]}}"#;

/// A byte-level BPE trained once, as a fresh run trains one.
fn bpe() -> &'static TextTokenizer {
    static BPE: OnceLock<TextTokenizer> = OnceLock::new();
    BPE.get_or_init(|| {
        let texts = [
            "Review of the hotel: the staff was lovely.",
            "user: hi\nassistant: ",
        ];
        let trained = data::train_bpe(texts.into_iter(), 300).expect("trains");
        TextTokenizer::from_tokenizer(trained, None).expect("loads")
    })
}

fn chatml() -> &'static ChatTemplate {
    static CHATML: OnceLock<ChatTemplate> = OnceLock::new();
    CHATML.get_or_init(|| {
        let source = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\
            <|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let config = serde_json::json!({ "chat_template": source, "eos_token": "<|im_end|>" });
        ChatTemplate::from_tokenizer_config(&config.to_string()).expect("valid template")
    })
}
