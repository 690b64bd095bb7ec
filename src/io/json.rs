//! Reading settings files with errors that name the line and the field: serde's own say where
//! or what went wrong, rarely which field (`invalid type: string "64", expected usize`).

use serde::de::DeserializeOwned;

/// A JSON document as a `T`. Errors read "line 3: field `n_embd`: invalid type: ...".
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let describe = |path: Option<String>, e: &serde_json::Error| {
        // serde_json ends its messages with " at line L column C": the line is kept up front.
        let text = e.to_string();
        let message = text.rfind(" at line ").map_or(&*text, |i| &text[..i]);
        format!("line {}:{} {message}", e.line(), field(path))
    };
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| describe(Some(e.path().to_string()), e.inner()))?;
    de.end().map_err(|e| describe(None, &e))?;
    Ok(value)
}

/// " field `a.b`:" for a known path below the document's root, else nothing (the path reads
/// "." at the root, and has a "?" where the parser had not yet read a key).
pub fn field(path: Option<String>) -> String {
    match path {
        Some(path) if path != "." && !path.contains('?') => format!(" field `{path}`:"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        n_embd: usize,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        sizes: Vec<usize>,
    }

    fn error(json: &str) -> String {
        from_slice::<Config>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_name_line_and_field() {
        assert_eq!(
            error("{\n  \"n_embd\": \"64\"\n}"),
            "line 2: field `n_embd`: invalid type: string \"64\", expected usize"
        );
        assert_eq!(
            error("{\"n_embd\": 1, \"inner\": {\"sizes\": [1, -2]}}"),
            "line 1: field `inner.sizes[1]`: invalid value: integer `-2`, expected usize"
        );
        assert_eq!(error("{}"), "line 1: missing field `n_embd`");
        assert_eq!(error("{\"n_embd\": 1} x"), "line 1: trailing characters");
        assert_eq!(
            error("{\n\"n_embd\": 1,\n"),
            "line 3: EOF while parsing a value"
        );
        assert_eq!(
            error("{\"n_embd\": "),
            "line 1: field `n_embd`: EOF while parsing a value"
        );
    }
}
