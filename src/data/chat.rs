//! Conversational preference pairs: lists of chat messages, rendered with a chat template.

use serde_json::{Map, Value};

use super::PreferencePair;
use super::fields::{Bad, bad, json_kind, validate};
use super::template::{ChatTemplate, Message, Role};

/// Parses the messages of field `name`; errors name the element, as in `chosen[1].role`.
pub(super) fn messages(name: &str, items: &[Value]) -> Result<Vec<Message>, Bad> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{name}[{i}]");
        let Value::Object(m) = item else {
            let kind = json_kind(item);
            return Err(bad(at, format!("expected a message object, got {kind}")));
        };
        let role = string_key(m, &at, "role")?;
        let role = Role::parse(role).ok_or_else(|| {
            let message = format!("unknown role {role:?} (expected system, user or assistant)");
            bad(format!("{at}.role"), message)
        })?;
        let content = string_key(m, &at, "content")?.to_owned();
        out.push(Message { role, content });
    }
    Ok(out)
}

fn string_key<'a>(m: &'a Map<String, Value>, at: &str, key: &str) -> Result<&'a str, Bad> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(bad(format!("{at}.{key}"), "missing field")),
        Some(v) => {
            let message = format!("expected a string, got {}", json_kind(v));
            Err(bad(format!("{at}.{key}"), message))
        }
    }
}

/// Without a prompt field, the prompt is the messages both conversations start with.
pub(super) fn implicit_prompt(
    template: &ChatTemplate,
    chosen: &[Message],
    rejected: &[Message],
) -> Result<PreferencePair, Bad> {
    if chosen == rejected {
        return Err(bad("rejected", "is identical to `chosen`"));
    }
    let shared = chosen
        .iter()
        .zip(rejected)
        .take_while(|(a, b)| a == b)
        .count();
    for (name, messages) in [("chosen", chosen), ("rejected", rejected)] {
        if messages.len() == shared {
            let message = "has no messages beyond the prompt it shares with the other field";
            return Err(bad(name, message));
        }
    }
    render(
        template,
        &chosen[..shared],
        &chosen[shared..],
        &rejected[shared..],
    )
}

/// The prompt text is rendered with the generation prompt; each completion is the rest of
/// the whole conversation's rendering after that prompt text.
pub(super) fn render(
    template: &ChatTemplate,
    prompt: &[Message],
    chosen: &[Message],
    rejected: &[Message],
) -> Result<PreferencePair, Bad> {
    if chosen.is_empty() {
        return Err(bad("chosen", "is empty"));
    }
    if rejected.is_empty() {
        return Err(bad("rejected", "is empty"));
    }
    let prompt_text = template
        .render(prompt, true)
        .map_err(|e| bad("prompt", e))?;
    let completion = |messages: &[Message]| -> Result<String, String> {
        let full = template.render(&[prompt, messages].concat(), false)?;
        match full.strip_prefix(&prompt_text) {
            Some(rest) => Ok(rest.to_owned()),
            // The template renders the prompt differently once a reply follows (for example
            // without its generation prompt): the reply's own rendering is the best we have.
            None => template.render(messages, false),
        }
    };
    let chosen_text = completion(chosen).map_err(|e| bad("chosen", e))?;
    let rejected_text = completion(rejected).map_err(|e| bad("rejected", e))?;
    let pair = validate(prompt_text, chosen_text, rejected_text)?;
    Ok(PreferencePair {
        conversational: true,
        ..pair
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_line;
    use super::*;

    const CHOSEN: &str =
        r#"[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]"#;
    const REJECTED: &str =
        r#"[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go away"}]"#;
    const EXPLICIT: &str = r#"{"prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "hello"}],
        "rejected": [{"role": "assistant", "content": "go away"}]}"#;

    fn implicit() -> String {
        format!(r#"{{"chosen": {CHOSEN}, "rejected": {REJECTED}}}"#)
    }

    fn parse(line: &str, template: &ChatTemplate) -> [String; 3] {
        let p = parse_line(line, template).unwrap_or_else(|b| panic!("{}: {}", b.field, b.message));
        [p.prompt, p.chosen, p.rejected]
    }

    fn jinja(source: &str) -> ChatTemplate {
        let config = serde_json::json!({ "chat_template": source }).to_string();
        ChatTemplate::from_tokenizer_config(&config).unwrap()
    }

    /// The error of a line as "field: message".
    fn error(line: &str) -> String {
        let b = parse_line(line, &ChatTemplate::default_plain()).unwrap_err();
        format!("{}: {}", b.field, b.message)
    }

    #[test]
    fn default_template() {
        let plain = ChatTemplate::default_plain();
        let expected = ["user: hi\nassistant: ", "hello\n", "go away\n"];
        assert_eq!(parse(&implicit(), &plain), expected);
        assert_eq!(parse(&EXPLICIT.replace('\n', " "), &plain), expected);
    }

    #[test]
    fn chatml_template() {
        let template = jinja(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
             {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        );
        let expected = [
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
            "hello<|im_end|>\n",
            "go away<|im_end|>\n",
        ];
        assert_eq!(parse(&implicit(), &template), expected);
    }

    #[test]
    fn completion_rendered_alone_when_not_after_prompt() {
        // With a reply following, this template drops the generation prompt `>`.
        let template = jinja(
            "{% for m in messages %}[{{ m.content }}]{% endfor %}\
             {% if add_generation_prompt %}>{% endif %}",
        );
        let expected = ["[hi]>", "[hello]", "[go away]"];
        assert_eq!(parse(&EXPLICIT.replace('\n', " "), &template), expected);
    }

    #[test]
    fn errors() {
        let same = format!(r#"{{"chosen": {CHOSEN}, "rejected": {CHOSEN}}}"#);
        assert_eq!(error(&same), "rejected: is identical to `chosen`");
        let prefix = r#"[{"role": "user", "content": "hi"}]"#;
        let line = format!(r#"{{"chosen": {prefix}, "rejected": {CHOSEN}}}"#);
        assert!(error(&line).starts_with("chosen: has no messages beyond the prompt"));
        let line = format!(r#"{{"prompt": [], "chosen": [], "rejected": {CHOSEN}}}"#);
        assert_eq!(error(&line), "chosen: is empty");
        // The plain template renders an empty reply as a bare newline.
        let blank = r#"[{"role": "assistant", "content": ""}]"#;
        let line = format!(r#"{{"prompt": {prefix}, "chosen": {blank}, "rejected": {blank}}}"#);
        assert_eq!(error(&line), "chosen: is empty");
        let line =
            r#"{"prompt": [{"role": "tool", "content": "x"}], "chosen": [], "rejected": []}"#;
        assert!(error(line).starts_with("prompt[0].role: unknown role \"tool\""));
        let line = r#"{"chosen": [{"role": "user", "content": null}], "rejected": []}"#;
        assert_eq!(
            error(line),
            "chosen[0].content: expected a string, got null"
        );
    }

    #[test]
    fn template_errors_name_the_field() {
        let template = jinja("{{ raise_exception('no system role') }}");
        let b = parse_line(&implicit(), &template).unwrap_err();
        assert_eq!(b.field, "prompt");
        assert!(b.message.contains("no system role"), "{}", b.message);
    }
}
