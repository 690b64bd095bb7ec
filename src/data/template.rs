//! Chat templates: turn a list of chat messages into the exact text the model sees.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDateTime;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;

/// Name under which the Jinja source is stored in its environment.
const TEMPLATE_NAME: &str = "chat_template";

/// The special tokens transformers hands every template (its `special_tokens_map`), named as
/// the `tokenizer_config.json` fields they come from.
const SPECIAL_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// The roles a preference-data message may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// Parses the role names used by Hugging Face chat data; anything else is `None`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat turn. Serializes as `{"role": ..., "content": ...}`, the shape Jinja templates expect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Renders messages either with a model's Hugging Face Jinja template or with a plain fallback.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    jinja: Option<JinjaTemplate>,
}

#[derive(Clone, Debug)]
struct JinjaTemplate {
    env: Environment<'static>,
    /// The special tokens the config sets; the others stay undefined, as in transformers.
    special_tokens: Vec<(&'static str, String)>,
}

impl ChatTemplate {
    /// Each message as `"<role>: <content>\n"`, generation prompt `"assistant: "`.
    pub fn default_plain() -> ChatTemplate {
        ChatTemplate { jinja: None }
    }

    /// Reads `chat_template` and the special tokens (`bos_token`, `eos_token`, ...) from a
    /// `tokenizer_config.json`. Without a `chat_template` the plain default is used.
    pub fn from_tokenizer_config(json: &str) -> Result<ChatTemplate, String> {
        let config = parse_config(json)?;
        let Some(source) = template_source(&config)? else {
            return Ok(ChatTemplate::default_plain());
        };
        let tokens = special_tokens(&config)?;
        let jinja = JinjaTemplate::new(source, tokens)
            .map_err(|e| format!("field `chat_template`: {e}"))?;
        Ok(ChatTemplate { jinja: Some(jinja) })
    }

    /// The template of a model folder as transformers picks it: a `chat_template.jinja` file
    /// (what transformers 5 saves) over the `chat_template` of `tokenizer_config.json`, with
    /// the special tokens of `tokenizer_config.json` either way. `None`: the folder lacks that
    /// file. Errors start with the name of the file at fault.
    pub fn from_model_files(
        chat_template_jinja: Option<&str>,
        tokenizer_config: Option<&str>,
    ) -> Result<ChatTemplate, String> {
        let in_config = |e: String| format!("tokenizer_config.json: {e}");
        let Some(source) = chat_template_jinja else {
            return match tokenizer_config {
                Some(json) => ChatTemplate::from_tokenizer_config(json).map_err(in_config),
                None => Ok(ChatTemplate::default_plain()),
            };
        };
        let config = match tokenizer_config {
            Some(json) => parse_config(json).map_err(in_config)?,
            None => serde_json::Value::Null,
        };
        let tokens = special_tokens(&config).map_err(in_config)?;
        let jinja = JinjaTemplate::new(source.to_owned(), tokens)
            .map_err(|e| format!("chat_template.jinja: {e}"))?;
        Ok(ChatTemplate { jinja: Some(jinja) })
    }

    /// Dates as of `now` instead of the local clock's: `strftime_now`, with which Llama 3.x
    /// templates write today's date into every prompt, then renders the same on any day.
    pub fn with_fixed_time(mut self, now: NaiveDateTime) -> ChatTemplate {
        if let Some(jinja) = &mut self.jinja {
            add_strftime_now(&mut jinja.env, move || now);
        }
        self
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply would begin.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let Some(jinja) = &self.jinja else {
            let mut text = String::new();
            for m in messages {
                text.push_str(m.role.as_str());
                text.push_str(": ");
                text.push_str(&m.content);
                text.push('\n');
            }
            if add_generation_prompt {
                text.push_str("assistant: ");
            }
            return Ok(text);
        };
        let template = jinja
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| e.to_string())?;
        let mut context: BTreeMap<&str, Value> = jinja
            .special_tokens
            .iter()
            .map(|(name, token)| (*name, Value::from(token.as_str())))
            .collect();
        context.insert("messages", Value::from_serialize(messages));
        context.insert("add_generation_prompt", Value::from(add_generation_prompt));
        template
            .render(context)
            .map_err(|e| format!("chat template failed: {e}"))
    }
}

impl JinjaTemplate {
    /// Compiles `source` in an environment like the one transformers renders templates in.
    fn new(
        source: String,
        special_tokens: Vec<(&'static str, String)>,
    ) -> Result<JinjaTemplate, Error> {
        let mut env = Environment::new();
        // transformers renders with these jinja2 settings; without them whitespace differs.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // The globals transformers adds (they are not part of Jinja).
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        add_strftime_now(&mut env, || chrono::Local::now().naive_local());
        // Templates are written for Python's jinja2, where strings have methods such as
        // `.strip()`; minijinja's own values have none.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_template_owned(TEMPLATE_NAME, source)?;
        Ok(JinjaTemplate {
            env,
            special_tokens,
        })
    }
}

/// transformers' `strftime_now(format)`: the time `now` gives (naive, as Python's
/// `datetime.now()`) in Python's strftime codes.
fn add_strftime_now(
    env: &mut Environment<'static>,
    now: impl Fn() -> NaiveDateTime + Send + Sync + 'static,
) {
    env.add_function(
        "strftime_now",
        move |format: &str| -> Result<String, Error> {
            let mut text = String::new();
            // An unknown code fails the write (`to_string` would panic).
            write!(text, "{}", now().format(format)).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported format {format:?}"),
                )
            })?;
            Ok(text)
        },
    );
}

fn parse_config(json: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))
}

/// `chat_template` is a string, or (newer configs) a list of named templates of which we
/// want the one called "default".
fn template_source(config: &serde_json::Value) -> Result<Option<String>, String> {
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template")?.as_str())
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| "field `chat_template`: no template named \"default\"".to_owned()),
        Some(_) => Err("field `chat_template`: expected a string".to_owned()),
    }
}

/// The special tokens a `tokenizer_config.json` sets, by field name.
fn special_tokens(config: &serde_json::Value) -> Result<Vec<(&'static str, String)>, String> {
    let mut found = Vec::new();
    for name in SPECIAL_TOKENS {
        if let Some(token) = special_token(config, name)? {
            found.push((name, token));
        }
    }
    Ok(found)
}

/// A special token of a `tokenizer_config.json`, written either as a plain string or as a
/// `{"content": "..."}` object; `None` when absent.
pub(super) fn special_token(
    config: &serde_json::Value,
    key: &str,
) -> Result<Option<String>, String> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => v
            .get("content")
            .and_then(|c| c.as_str())
            .map(|c| Some(c.to_owned()))
            .ok_or_else(|| {
                format!("field `{key}`: expected a string or an object with \"content\"")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.to_owned(),
        }
    }

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn plain_template() {
        let t = ChatTemplate::default_plain();
        let m = [msg(Role::System, "be nice"), msg(Role::User, "hi")];
        assert_eq!(t.render(&m, false).unwrap(), "system: be nice\nuser: hi\n");
        assert_eq!(
            t.render(&m, true).unwrap(),
            "system: be nice\nuser: hi\nassistant: "
        );
    }

    #[test]
    fn chatml_template_from_config() {
        let config = serde_json::json!({ "chat_template": CHATML }).to_string();
        let t = ChatTemplate::from_tokenizer_config(&config).unwrap();
        let m = [msg(Role::User, "hi")];
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn special_tokens_strip_and_raise_exception() {
        let source = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}\
            {{ bos_token }}{% for m in messages %}[{{ m.content.strip() }}]{% endfor %}{{ eos_token }}";
        let config = serde_json::json!({
            "chat_template": source,
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>",
        });
        let t = ChatTemplate::from_tokenizer_config(&config.to_string()).unwrap();
        assert_eq!(
            t.render(&[msg(Role::User, "  hi ")], false).unwrap(),
            "<s>[hi]</s>"
        );
        let err = t.render(&[msg(Role::Assistant, "x")], false).unwrap_err();
        assert!(err.contains("user first"), "{err}");
    }

    #[test]
    fn jinja_file_over_config_and_fixed_time() {
        let config = r#"{"chat_template": "config", "bos_token": "<s>"}"#;
        let source = "{{ bos_token }}{{ strftime_now('%d %b %Y') }}{{ eos_token is defined }}";
        let t = ChatTemplate::from_model_files(Some(source), Some(config)).unwrap();
        let now = NaiveDateTime::parse_from_str("2024-07-06 10:00", "%Y-%m-%d %H:%M").unwrap();
        let t = t.with_fixed_time(now);
        assert_eq!(t.render(&[], false).unwrap(), "<s>06 Jul 2024False");
        let t = ChatTemplate::from_model_files(None, Some(config)).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "config");
        let err = ChatTemplate::from_model_files(Some("{% if %}"), Some(config)).unwrap_err();
        assert!(err.starts_with("chat_template.jinja: "), "{err}");
        let err = ChatTemplate::from_model_files(Some("x"), Some(r#"{"eos_token": 1}"#));
        assert!(
            err.unwrap_err()
                .starts_with("tokenizer_config.json: field `eos_token`")
        );
    }

    #[test]
    fn python_methods_and_loop_controls() {
        let source = "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}\
            {{ m.content.split('|')[-1].lstrip('-') }}{{ m.role | tojson }}{% endfor %}";
        let config = serde_json::json!({ "chat_template": source }).to_string();
        let t = ChatTemplate::from_tokenizer_config(&config).unwrap();
        let m = [msg(Role::User, "x|--y"), msg(Role::User, "z")];
        assert_eq!(t.render(&m, false).unwrap(), r#"y"user""#);
    }

    #[test]
    fn config_variants() {
        let plain = ChatTemplate::from_tokenizer_config(r#"{"eos_token": "</s>"}"#).unwrap();
        assert!(plain.jinja.is_none());
        let named = serde_json::json!({
            "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "d"}]
        });
        let t = ChatTemplate::from_tokenizer_config(&named.to_string()).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "d");
        let bad = ChatTemplate::from_tokenizer_config(r#"{"chat_template": "{% for %}"}"#);
        assert!(bad.unwrap_err().starts_with("field `chat_template`: "));
        assert!(ChatTemplate::from_tokenizer_config("not json").is_err());
    }
}
