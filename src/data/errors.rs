//! Errors that point at a file, a line (a row of a Parquet file) and a field (its column).

use std::fmt;

/// At most this many errors are kept in a [`DataError`]; the rest are only counted.
pub const MAX_STORED_ERRORS: usize = 100;

/// What `line` counts: the lines of a JSONL file (plain or gzip-compressed), or the rows of a
/// Parquet file, whose fields are its columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unit {
    #[default]
    Line,
    Row,
}

impl Unit {
    /// The unit of a pairs file by its name: rows for `.parquet`, else lines. (The readers
    /// know the format they read; this is for later stages that only have the name.)
    pub fn of_file(name: &str) -> Unit {
        match name.to_ascii_lowercase().ends_with(".parquet") {
            true => Unit::Row,
            false => Unit::Line,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Line => "line",
            Unit::Row => "row",
        }
    }
}

/// One bad line. `line` is 1-based; 0 means the whole file (unreadable or empty).
/// `field` is `-` when the problem is not in a particular field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
    /// Whether `line` is a line or a Parquet row (and `field` a column).
    pub unit: Unit,
}

impl fmt::Display for LineError {
    /// `file:line: field `name`: message`, or for Parquet `file: row N, column `name`:
    /// message`, leaving out the line (row) and field where there are none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        let field = (self.field != "-").then_some(self.field.as_str());
        match (self.unit, self.line, field) {
            (Unit::Line, line, field) => {
                if line > 0 {
                    write!(f, ":{line}")?;
                }
                if let Some(field) = field {
                    write!(f, ": field `{field}`")?;
                }
            }
            (Unit::Row, 0, Some(column)) => write!(f, ": column `{column}`")?,
            (Unit::Row, 0, None) => {}
            (Unit::Row, row, Some(column)) => write!(f, ": row {row}, column `{column}`")?,
            (Unit::Row, row, None) => write!(f, ": row {row}")?,
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
            let unit = self.errors.first().map_or(Unit::Line, |e| e.unit).name();
            let plural = if more == 1 { "" } else { "s" };
            write!(f, " (and {more} more bad {unit}{plural})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

/// Collects line errors for one file, keeping the first [`MAX_STORED_ERRORS`].
pub(super) struct ErrorSink {
    file: String,
    unit: Unit,
    errors: Vec<LineError>,
    total: usize,
}

impl ErrorSink {
    /// A sink whose unit follows the file's name ([`Unit::of_file`]).
    pub(super) fn new(file: &str) -> ErrorSink {
        ErrorSink::with_unit(file, Unit::of_file(file))
    }

    pub(super) fn with_unit(file: &str, unit: Unit) -> ErrorSink {
        ErrorSink {
            file: file.to_owned(),
            unit,
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
                unit: self.unit,
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
    fn display_of_parquet_rows() {
        let mut sink = ErrorSink::with_unit("d.parquet", Unit::Row);
        sink.push(3, "chosen", "is empty");
        sink.push(4, "-", "bad page");
        sink.push(0, "rejected", "no such column");
        sink.push(0, "-", "not a Parquet file");
        let err = sink.finish(()).unwrap_err();
        let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "d.parquet: row 3, column `chosen`: is empty",
                "d.parquet: row 4: bad page",
                "d.parquet: column `rejected`: no such column",
                "d.parquet: not a Parquet file",
            ]
        );
        assert_eq!(
            err.to_string(),
            "d.parquet: row 3, column `chosen`: is empty (and 3 more bad rows)"
        );
        assert_eq!(ErrorSink::new("D.Parquet").unit, Unit::Row);
        assert_eq!(ErrorSink::new("d.jsonl.gz").unit, Unit::Line);
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
