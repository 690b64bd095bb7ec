//! One JSONL line (or one Parquet row, as the same JSON object) to one [`PreferencePair`],
//! in the three TRL preference formats.

use serde_json::{Map, Value};

use super::PreferencePair;
use super::chat;
use super::fields::{Bad, bad, json_kind, validate};
use super::template::{ChatTemplate, Message, Role};

/// A field is either plain text or a conversation; a line must not mix the two.
enum Field<'a> {
    Text(&'a str),
    Chat(Vec<Message>),
}

impl Field<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Field::Text(_) => "a string",
            Field::Chat(_) => "a list of messages",
        }
    }
}

pub(super) fn parse_line(text: &str, template: &ChatTemplate) -> Result<PreferencePair, Bad> {
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    let Value::Object(obj) = value else {
        let message = format!("expected a JSON object, got {}", json_kind(&value));
        return Err(bad("-", message));
    };
    parse_object(&obj, template)
}

/// One pair from a line's object (or a Parquet row's columns); extra fields are ignored.
pub(super) fn parse_object(
    obj: &Map<String, Value>,
    template: &ChatTemplate,
) -> Result<PreferencePair, Bad> {
    let chosen = field(obj, "chosen")?.ok_or_else(|| bad("chosen", "missing field"))?;
    let rejected = field(obj, "rejected")?.ok_or_else(|| bad("rejected", "missing field"))?;
    match (field(obj, "prompt")?, chosen, rejected) {
        (None, Field::Text(c), Field::Text(r)) => {
            let cut = implicit_prompt_len(c, r);
            validate(
                c[..cut].to_owned(),
                c[cut..].to_owned(),
                r[cut..].to_owned(),
            )
        }
        (Some(Field::Text(p)), Field::Text(c), Field::Text(r)) => {
            validate(p.to_owned(), c.to_owned(), r.to_owned())
        }
        (None, Field::Chat(c), Field::Chat(r)) => chat::implicit_prompt(template, &c, &r),
        (Some(Field::Chat(p)), Field::Chat(c), Field::Chat(r)) => {
            chat::render(template, &p, &c, &r)
        }
        // A text prompt beside whole conversations (ultrafeedback_binarized's layout: the
        // prompt column repeats the user turn): as TRL's `maybe_extract_prompt`, the prompt is
        // the turns both conversations start with and the text is ignored, but only when
        // they start with the same prompt turn; otherwise the line mixes formats (below).
        (Some(Field::Text(_)), Field::Chat(c), Field::Chat(r))
            if c.first().is_some_and(|m| m.role != Role::Assistant) && c.first() == r.first() =>
        {
            chat::implicit_prompt(template, &c, &r)
        }
        (prompt, chosen, rejected) => {
            let (name, odd) = if chosen.describe() != rejected.describe() {
                ("rejected", rejected)
            } else {
                let prompt = prompt.expect("all-text and all-chat lines are matched above");
                ("prompt", prompt)
            };
            let message = format!(
                "is {} but `chosen` is {}; all fields of a line must use the same format",
                odd.describe(),
                chosen.describe()
            );
            Err(bad(name, message))
        }
    }
}

/// `Ok(None)` when the key is absent; extra keys elsewhere in the object are ignored.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<Field<'a>>, Bad> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(Field::Text(s))),
        Some(Value::Array(items)) => chat::messages(name, items).map(|m| Some(Field::Chat(m))),
        Some(v) => {
            let kind = json_kind(v);
            Err(bad(
                name,
                format!("expected a string or a list of messages, got {kind}"),
            ))
        }
    }
}

/// Byte length of the implicit prompt, following TRL's `extract_prompt`: cut where the two
/// texts first differ, but leave a space just before the cut to the completions, since
/// byte-level BPE tokens carry their leading space. When one text is a prefix of the other,
/// the cut moves back one character so that neither completion is empty.
fn implicit_prompt_len(chosen: &str, rejected: &str) -> usize {
    let differ = chosen
        .char_indices()
        .zip(rejected.chars())
        .find(|((_, a), b)| a != b);
    let cut = match differ {
        Some(((i, _), _)) => i,
        None => {
            let shorter = if chosen.len() <= rejected.len() {
                chosen
            } else {
                rejected
            };
            shorter.char_indices().last().map_or(0, |(i, _)| i)
        }
    };
    if chosen[..cut].ends_with(' ') {
        cut - 1
    } else {
        cut
    }
}

fn json_error(e: &serde_json::Error) -> Bad {
    // serde_json appends "at line 1 column N"; inside a JSONL line only the column means anything.
    let text = e.to_string();
    let reason = text
        .rfind(" at line ")
        .map_or(text.as_str(), |i| &text[..i]);
    bad(
        "-",
        format!("malformed JSON at column {}: {reason}", e.column()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(line: &str) -> (String, String, String) {
        let p = parse_line(line, &ChatTemplate::default_plain())
            .unwrap_or_else(|b| panic!("{}: {}", b.field, b.message));
        (p.prompt, p.chosen, p.rejected)
    }

    fn owned(p: &str, c: &str, r: &str) -> (String, String, String) {
        (p.to_owned(), c.to_owned(), r.to_owned())
    }

    #[test]
    fn standard_format() {
        let line = r#"{"prompt": "2+2=", "chosen": "4", "rejected": "5", "score": 0.5}"#;
        assert_eq!(plain(line), owned("2+2=", "4", "5"));
        // An empty prompt is allowed; the model then scores the completion from its second token.
        let line = r#"{"prompt": "", "chosen": "a", "rejected": "b"}"#;
        assert_eq!(plain(line), owned("", "a", "b"));
    }

    #[test]
    fn text_prompt_beside_whole_conversations() {
        let turns = |reply: &str| {
            format!(
                r#"[{{"role": "user", "content": "hi"}}, {{"role": "assistant", "content": "{reply}"}}]"#
            )
        };
        let (c, r) = (turns("hello"), turns("go away"));
        // ultrafeedback_binarized: the text prompt repeats the user turn and is ignored.
        let line = format!(r#"{{"prompt": "hi", "chosen": {c}, "rejected": {r}}}"#);
        let implicit = format!(r#"{{"chosen": {c}, "rejected": {r}}}"#);
        assert_eq!(plain(&line), plain(&implicit));
        // Without a shared first turn the text prompt would be lost: mixed formats.
        let replies = r#""chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]"#;
        let line = format!(r#"{{"prompt": "p", {replies}}}"#).replace('\n', " ");
        let b = parse_line(&line, &ChatTemplate::default_plain()).unwrap_err();
        assert_eq!(b.field, "prompt");
        assert!(b.message.contains("same format"), "{}", b.message);
    }

    #[test]
    fn implicit_prompt_split() {
        let line = r#"{"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"}"#;
        // The space before the cut goes with the completions, as in TRL.
        assert_eq!(plain(line), owned("Q: sky? A:", " blue", " green"));
        // "é" and "è" share their first byte; the cut stays on a char boundary.
        let line = r#"{"chosen": "héllo wé", "rejected": "héllo wè"}"#;
        assert_eq!(plain(line), owned("héllo w", "é", "è"));
        let line = r#"{"chosen": "abc", "rejected": "xyz"}"#;
        assert_eq!(plain(line), owned("", "abc", "xyz"));
        // One text a prefix of the other: back off a character so neither completion is empty
        // (then the space rule applies).
        let line = r#"{"chosen": "It is 4", "rejected": "It is 4, or 5"}"#;
        assert_eq!(plain(line), owned("It is", " 4", " 4, or 5"));
    }

    #[test]
    fn json_errors_give_the_column() {
        let b = parse_line(r#"{"chosen": tru}"#, &ChatTemplate::default_plain()).unwrap_err();
        assert_eq!(b.field, "-");
        assert_eq!(b.message, "malformed JSON at column 15: expected ident");
    }
}
