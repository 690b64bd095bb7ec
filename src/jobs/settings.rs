//! `--config FILE.toml`: training settings from a file, with errors that name the file, the
//! line and the field, as for pairs files.

use std::path::Path;

use crate::Error;
use crate::config::TrainConfig;
use crate::io::json;

/// Reads and checks a settings file (the field names of `train_config.json`).
pub fn read_config(path: &Path) -> Result<TrainConfig, Error> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| Error::Input(format!("{name}: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = line_of(&bytes, e.valid_up_to());
        Error::Input(format!("{name}:{line}: not UTF-8"))
    })?;
    let describe = |e: &toml::de::Error, path: Option<String>| {
        let line = line_of(text.as_bytes(), e.span().map_or(0, |span| span.start));
        let message = e.message().trim().replace('\n', "; ");
        Error::Input(format!("{name}:{line}:{} {message}", json::field(path)))
    };
    let de = toml::Deserializer::parse(text).map_err(|e| describe(&e, None))?;
    let config: TrainConfig = serde_path_to_error::deserialize(de)
        .map_err(|e| describe(e.inner(), Some(e.path().to_string())))?;
    config.validate().map_err(|message| {
        // The message starts "field `name`": point at the line that sets it, if the file does.
        let line = message
            .split('`')
            .nth(1)
            .and_then(|field| line_setting(text, field))
            .map(|line| format!(":{line}"))
            .unwrap_or_default();
        Error::Input(format!("{name}{line}: {message}"))
    })?;
    Ok(config)
}

/// 1-based line of byte `at`.
fn line_of(bytes: &[u8], at: usize) -> usize {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The line setting `field` (its last dotted part), if one does.
fn line_setting(text: &str, field: &str) -> Option<usize> {
    let field = field.rsplit('.').next()?;
    text.lines()
        .position(|line| {
            line.split_once('=')
                .is_some_and(|(key, _)| key.trim().rsplit('.').next() == Some(field))
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(toml: &str) -> String {
        let path = std::env::temp_dir().join(format!("dpo-settings-{}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let message = read_config(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        message.split_once(".toml").unwrap().1.to_string()
    }

    #[test]
    fn errors_name_line_and_field() {
        assert_eq!(
            error("steps = 5\n[loss]\nbeta = \"high\"\n"),
            ":3: field `loss.beta`: invalid type: string \"high\", expected f32"
        );
        assert!(
            error("seed = 1\nbeta_typo = 0.2\n")
                .starts_with(":2: field `beta_typo`: unknown field")
        );
        assert!(
            error("steps = [1,\n").starts_with(":1: "),
            "{}",
            error("steps = [1,\n")
        );
        assert_eq!(
            error("steps = 5\n\n[loss]\nbeta = -1.0\n"),
            ":4: field `beta`: must be positive, got -1"
        );
        assert_eq!(
            error("batch = 0\n"),
            ":1: field `batch`: must be at least 1"
        );
    }
}
