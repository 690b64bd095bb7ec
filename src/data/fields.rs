//! What the pair formats share: the error of one line, checks of the rendered texts, and JSON
//! kinds named for messages. Both `parse` (plain text) and `chat` (messages) build on it.

use serde_json::Value;

use super::PreferencePair;

/// What is wrong with a line, before the caller adds the file name and line number.
#[derive(Debug)]
pub(super) struct Bad {
    pub field: String,
    pub message: String,
}

pub(super) fn bad(field: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks the rendered texts; the caller fills in the line number.
pub(super) fn validate(
    prompt: String,
    chosen: String,
    rejected: String,
) -> Result<PreferencePair, Bad> {
    if chosen.trim().is_empty() {
        return Err(bad("chosen", "is empty"));
    }
    if rejected.trim().is_empty() {
        return Err(bad("rejected", "is empty"));
    }
    if chosen == rejected {
        return Err(bad("rejected", "is identical to `chosen`"));
    }
    Ok(PreferencePair {
        prompt,
        chosen,
        rejected,
        line: 0,
        conversational: false,
    })
}

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
