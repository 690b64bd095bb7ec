//! Chat templates: turn a list of chat messages into the exact text the model sees.

use minijinja::{Environment, Error, ErrorKind, State, Value, context};
use serde::Serialize;

/// Name under which the Jinja source is stored in its environment.
const TEMPLATE_NAME: &str = "chat_template";

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
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Each message as `"<role>: <content>\n"`, generation prompt `"assistant: "`.
    pub fn default_plain() -> ChatTemplate {
        ChatTemplate { jinja: None }
    }

    /// Reads `chat_template`, `bos_token` and `eos_token` from a `tokenizer_config.json`.
    /// Without a `chat_template` the plain default is used.
    pub fn from_tokenizer_config(json: &str) -> Result<ChatTemplate, String> {
        let config: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let Some(source) = template_source(&config)? else {
            return Ok(ChatTemplate::default_plain());
        };
        let mut env = Environment::new();
        // Hugging Face renders with these jinja2 settings; without them whitespace differs.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Many templates guard against bad input with this helper (it is not part of Jinja).
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.set_unknown_method_callback(python_string_methods);
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| format!("field `chat_template`: {e}"))?;
        Ok(ChatTemplate {
            jinja: Some(JinjaTemplate {
                env,
                bos_token: special_token(&config, "bos_token")?.unwrap_or_default(),
                eos_token: special_token(&config, "eos_token")?.unwrap_or_default(),
            }),
        })
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
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &jinja.bos_token,
                eos_token => &jinja.eos_token,
            })
            .map_err(|e| format!("chat template failed: {e}"))
    }
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

/// Templates are written for Python's jinja2, where strings have methods such as `.strip()`;
/// minijinja has none, so the handful that chat templates use are provided here.
fn python_string_methods(
    _state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let unknown = || {
        Error::new(
            ErrorKind::UnknownMethod,
            format!("string has no method {method}"),
        )
    };
    let Some(s) = value.as_str() else {
        return Err(Error::from(ErrorKind::UnknownMethod));
    };
    let arg = match args {
        [] => None,
        [a] => Some(a.as_str().ok_or_else(unknown)?),
        _ => return Err(unknown()),
    };
    let strip_set = |c: char| arg.map_or(c.is_whitespace(), |set| set.contains(c));
    Ok(match (method, arg) {
        ("strip", _) => Value::from(s.trim_matches(strip_set)),
        ("lstrip", _) => Value::from(s.trim_start_matches(strip_set)),
        ("rstrip", _) => Value::from(s.trim_end_matches(strip_set)),
        ("startswith", Some(prefix)) => Value::from(s.starts_with(prefix)),
        ("endswith", Some(suffix)) => Value::from(s.ends_with(suffix)),
        _ => return Err(unknown()),
    })
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
