//! Errors that point at a file, a line and a field.

use std::fmt;

/// At most this many errors are kept in a [`DataError`]; the rest are only counted.
pub const MAX_STORED_ERRORS: usize = 100;

/// One bad line. `line` is 1-based; 0 means the whole file (unreadable or empty).
/// `field` is `-` when the problem is not in a particular field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LineError {
    /// `file:line: field `name`: message`, leaving out the line and field where there are none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if self.field != "-" {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LineError {}

/// All bad lines of a file: the first [`MAX_STORED_ERRORS`] in `errors`, their number in `total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    pub errors: Vec<LineError>,
    pub total: usize,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.first() {
            Some(first) => write!(f, "{first}")?,
            None => write!(f, "invalid preference data")?,
        }
        if self.total > 1 {
            let more = self.total - 1;
            let noun = if more == 1 { "line" } else { "lines" };
            write!(f, " (and {more} more bad {noun})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

/// Collects line errors for one file, keeping the first [`MAX_STORED_ERRORS`].
pub(super) struct ErrorSink {
    file: String,
    errors: Vec<LineError>,
    total: usize,
}

impl ErrorSink {
    pub(super) fn new(file: &str) -> ErrorSink {
        ErrorSink {
            file: file.to_owned(),
            errors: Vec::new(),
            total: 0,
        }
    }

    pub(super) fn push(
        &mut self,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.total += 1;
        if self.errors.len() < MAX_STORED_ERRORS {
            self.errors.push(LineError {
                file: self.file.clone(),
                line,
                field: field.into(),
                message: message.into(),
            });
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub(super) fn finish<T>(self, value: T) -> Result<T, DataError> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(DataError {
                errors: self.errors,
                total: self.total,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_with(bad_lines: usize) -> ErrorSink {
        let mut sink = ErrorSink::new("d.jsonl");
        for line in 1..=bad_lines {
            sink.push(line, "chosen", "is empty");
        }
        sink
    }

    #[test]
    fn display() {
        let err = sink_with(1).finish(()).unwrap_err();
        assert_eq!(err.to_string(), "d.jsonl:1: field `chosen`: is empty");
        let err = sink_with(3).finish(()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.jsonl:1: field `chosen`: is empty (and 2 more bad lines)"
        );
    }

    #[test]
    fn keeps_the_first_errors_and_counts_all() {
        let err = sink_with(MAX_STORED_ERRORS + 5).finish(()).unwrap_err();
        assert_eq!(err.total, MAX_STORED_ERRORS + 5);
        assert_eq!(err.errors.len(), MAX_STORED_ERRORS);
        assert_eq!(err.errors.last().unwrap().line, MAX_STORED_ERRORS);
        assert_eq!(sink_with(0).finish(7), Ok(7));
    }
}
