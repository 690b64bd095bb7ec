//! The chat templates of the models people train render byte for byte as transformers renders
//! them. tests/fixtures/templates/ holds the hub's templates of Qwen2.5, Qwen3, Llama 3.2 and
//! SmolLM2, and expected.json what transformers' `apply_chat_template` made of a few
//! conversations with each (`scripts/gen_reference.py templates`), at a fixed date.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use chrono::NaiveDateTime;
use dpo::data::{ChatTemplate, Message, Role};
use dpo::io::{Saved, hf};
use serde_json::Value;

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn expected() -> Value {
    let text = fs::read_to_string(templates_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The Jinja source of the fixture template of `model`.
fn source(expected: &Value, model: &str) -> String {
    let file = expected["models"][model]["template"].as_str().unwrap();
    fs::read_to_string(templates_dir().join(file)).unwrap()
}

fn messages(expected: &Value, conversation: &str) -> Vec<Message> {
    let turns = expected["conversations"][conversation].as_array().unwrap();
    turns
        .iter()
        .map(|turn| Message {
            role: Role::parse(turn["role"].as_str().unwrap()).unwrap(),
            content: turn["content"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// What transformers rendered for `model`, `conversation` and `add_generation_prompt`.
fn rendered<'a>(expected: &'a Value, model: &str, conversation: &str, prompt: bool) -> &'a str {
    let cases = expected["cases"].as_array().unwrap();
    let case = cases.iter().find(|c| {
        c["model"] == model
            && c["conversation"] == conversation
            && c["add_generation_prompt"] == prompt
    });
    case.and_then(|c| c["text"].as_str()).unwrap()
}

/// Every case, with the template read both ways: inside `tokenizer_config.json` and as
/// `chat_template.jinja` beside a config that holds only the special tokens.
#[test]
fn templates_render_as_transformers_does() {
    let expected = expected();
    let now: NaiveDateTime = expected["now"].as_str().unwrap().parse().unwrap();
    let models = expected["models"].as_object().unwrap();
    let conversations = expected["conversations"].as_object().unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), models.len() * conversations.len() * 2);
    let mut failures = Vec::new();
    for (model, about) in models {
        let source = source(&expected, model);
        let tokens = about["special_tokens"].clone();
        let mut config = tokens.clone();
        config["chat_template"] = source.clone().into();
        let from_config = ChatTemplate::from_tokenizer_config(&config.to_string()).unwrap();
        let from_file =
            ChatTemplate::from_model_files(Some(&source), Some(&tokens.to_string())).unwrap();
        let ways = [
            ("tokenizer_config.json", from_config),
            ("chat_template.jinja", from_file),
        ];
        for (way, template) in ways {
            let template = template.with_fixed_time(now);
            for conversation in conversations.keys() {
                for prompt in [false, true] {
                    let theirs = rendered(&expected, model, conversation, prompt);
                    let ours = template.render(&messages(&expected, conversation), prompt);
                    if ours.as_deref() != Ok(theirs) {
                        failures.push(format!(
                            "{model} via {way}, {conversation}, add_generation_prompt \
                             {prompt}:\n  transformers {theirs:?}\n  ours         {ours:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A model folder with `chat_template.jinja` renders with it (not with the config's template),
/// writes it back on export, and a broken one is refused naming the file.
#[test]
fn model_folder_with_chat_template_jinja() {
    let expected = expected();
    let dir = common::temp_dir("chat-template-jinja");
    let llama = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/llama");
    for entry in fs::read_dir(&llama).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let mut config: Value =
        serde_json::from_slice(&fs::read(dir.join(hf::TOKENIZER_CONFIG)).unwrap()).unwrap();
    config["chat_template"] = "{{ 'the config template' }}".into();
    fs::write(dir.join(hf::TOKENIZER_CONFIG), config.to_string()).unwrap();
    let source = source(&expected, "smollm2");
    fs::write(dir.join(hf::CHAT_TEMPLATE), &source).unwrap();

    let files = hf::read_dir(&dir).unwrap();
    assert_eq!(files.chat_template.as_deref(), Some(source.as_bytes()));
    let (info, model) = hf::load(&files, "llama", &Device::flex()).unwrap();
    let text = info.template.render(&messages(&expected, "user"), true);
    assert_eq!(text.unwrap(), rendered(&expected, "smollm2", "user", true));

    let out = dir.join("exported");
    Saved::Model(common::export_files(&info, &model))
        .write_dir(&out)
        .unwrap();
    assert_eq!(
        fs::read(out.join(hf::CHAT_TEMPLATE)).unwrap(),
        source.as_bytes()
    );
    assert_eq!(
        fs::read(out.join(hf::TOKENIZER_CONFIG)).unwrap(),
        fs::read(dir.join(hf::TOKENIZER_CONFIG)).unwrap()
    );

    fs::write(dir.join(hf::CHAT_TEMPLATE), "{% for %}").unwrap();
    let error = hf::check(&hf::read_dir(&dir).unwrap(), "llama")
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("llama/chat_template.jinja: "), "{error}");
    fs::remove_dir_all(&dir).unwrap();
}
