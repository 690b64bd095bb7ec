//! Parquet pairs files, as `datasets` and the Hugging Face hub write them (pyarrow, snappy).
//!
//! Each row becomes the JSON object of its `prompt`, `chosen` and `rejected` columns and goes
//! through the same row logic as a JSONL line ([`parse::parse_object`]), so the formats and
//! their checks are those of JSONL; a row's errors name the row (1-based) and the column.
//! Read with the parquet crate's record API (no arrow). Only those three columns are decoded:
//! the others are ignored, as a JSONL line's extra fields are.

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use serde_json::{Map, Number, Value};

use super::errors::{ErrorSink, Unit};
use super::template::ChatTemplate;
use super::{DataError, MAX_LINE_BYTES, PreferencePair, parse};

/// The columns a pair is made of; `prompt` may be absent (the implicit-prompt formats).
const COLUMNS: [&str; 3] = ["prompt", "chosen", "rejected"];

/// Parses a Parquet file's rows into pairs; `file` names it in errors.
pub(super) fn parse(
    file: &str,
    bytes: &[u8],
    template: &ChatTemplate,
) -> Result<Vec<PreferencePair>, DataError> {
    let mut sink = ErrorSink::with_unit(file, Unit::Row);
    let mut pairs = Vec::new();
    if let Err((row, column, message)) = read_rows(bytes, template, &mut sink, &mut pairs) {
        sink.push(row, column, message);
    }
    if pairs.is_empty() && sink.is_empty() {
        sink.push(
            0,
            "-",
            "the file contains no preference pairs (it has no rows)",
        );
    }
    sink.finish(pairs)
}

/// A problem that ends the reading: (row or 0, column or `-`, message).
type Stop = (usize, String, String);

fn stop(row: usize, column: &str, message: impl Into<String>) -> Stop {
    (row, column.to_owned(), message.into())
}

/// Reads the rows in order: a pair or a row error each; a problem with the file as a whole
/// (not Parquet, damaged, a missing column) stops it.
fn read_rows(
    bytes: &[u8],
    template: &ChatTemplate,
    sink: &mut ErrorSink,
    pairs: &mut Vec<PreferencePair>,
) -> Result<(), Stop> {
    if bytes.is_empty() {
        return Err(stop(
            0,
            "-",
            "the file is empty (0 bytes), not a Parquet file",
        ));
    }
    if !bytes.starts_with(b"PAR1") {
        let message = "not a Parquet file: it does not start with `PAR1`";
        return Err(stop(0, "-", message));
    }
    let damaged = |row: usize, panic: String| {
        let message = format!("damaged Parquet data (the reader failed: {panic})");
        stop(row, "-", short(message))
    };
    let bytes = Bytes::copy_from_slice(bytes);
    let reader = without_panics(|| SerializedFileReader::new(bytes))
        .map_err(|panic| damaged(0, panic))?
        .map_err(|e| {
            let message = format!("cannot read it as Parquet (truncated or damaged?): {e}");
            stop(0, "-", short(message))
        })?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema();
    let fields = schema.get_fields();
    let has = |name: &str| fields.iter().any(|f| f.name() == name);
    let names = || {
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        names.join(", ")
    };
    for column in ["chosen", "rejected"] {
        if !has(column) {
            let message = format!("missing column (the file's columns: {})", names());
            return Err(stop(0, column, message));
        }
    }
    for group in metadata.row_groups() {
        for chunk in group.columns() {
            let column = &chunk.column_path().parts()[0];
            if !COLUMNS.contains(&column.as_str()) {
                continue;
            }
            let codec = match chunk.compression() {
                Compression::UNCOMPRESSED | Compression::SNAPPY | Compression::GZIP(_) => continue,
                Compression::ZSTD(_) => "zstd",
                Compression::BROTLI(_) => "brotli",
                Compression::LZ4 | Compression::LZ4_RAW => "lz4",
                Compression::LZO => "lzo",
            };
            let message = format!(
                "compressed with {codec}, which this build does not read (it reads snappy, \
                 pyarrow's and `datasets`' default, gzip or none): rewrite the file with one of \
                 those"
            );
            return Err(stop(0, column, message));
        }
    }
    let kept = fields
        .iter()
        .filter(|f| COLUMNS.contains(&f.name()))
        .cloned()
        .collect();
    let projection = Type::group_type_builder(schema.name())
        .with_fields(kept)
        .build()
        .map_err(|e| stop(0, "-", short(format!("cannot select its columns: {e}"))))?;
    let mut rows = without_panics(|| reader.get_row_iter(Some(projection)))
        .map_err(|panic| damaged(0, panic))?
        .map_err(|e| stop(0, "-", short(format!("cannot read its rows: {e}"))))?;
    for number in 1.. {
        let row = match without_panics(|| rows.next()).map_err(|panic| damaged(number, panic))? {
            None => break,
            Some(row) => row,
        };
        let row = row.map_err(|e| stop(number, "-", short(format!("cannot read the row: {e}"))))?;
        let mut object = Map::new();
        let mut text_bytes = 0;
        let mut bad_column = None;
        for (name, field) in row.into_columns() {
            match value(&field) {
                Ok(value) => {
                    text_bytes += text_len(&value);
                    object.insert(name, value);
                }
                Err(message) => {
                    bad_column = Some((name, message));
                    break;
                }
            }
        }
        if let Some((column, message)) = bad_column {
            sink.push(number, column, message);
        } else if text_bytes > MAX_LINE_BYTES {
            let message = format!(
                "the row holds {text_bytes} bytes of text, more than the {MAX_LINE_BYTES} a \
                 pair may take"
            );
            sink.push(number, "-", message);
        } else {
            match parse::parse_object(&object, template) {
                Ok(pair) => pairs.push(PreferencePair {
                    line: number,
                    ..pair
                }),
                Err(bad) => sink.push(number, bad.field, bad.message),
            }
        }
    }
    Ok(())
}

/// Runs `f` (a call into the parquet crate, whose decoders can index out of bounds on damaged
/// data) and returns its panic's message instead of unwinding further. The panic hook stays
/// quiet for it on this thread, so that the error is reported once, as bad input. Where panics
/// abort (wasm), this is only `f()`.
fn without_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    #[cfg(panic = "unwind")]
    {
        use std::cell::Cell;
        use std::panic::{self, AssertUnwindSafe};

        thread_local! {
            static QUIET: Cell<bool> = const { Cell::new(false) };
        }
        static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
        QUIET_HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    previous(info);
                }
            }));
        });
        let was = QUIET.with(|q| q.replace(true));
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        QUIET.with(|q| q.set(was));
        result.map_err(|payload| {
            let text = payload.downcast_ref::<&str>().map(|s| s.to_string());
            text.or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned())
        })
    }
    #[cfg(not(panic = "unwind"))]
    Ok(f())
}

/// A Parquet value as the JSON value a JSONL line would hold: strings, numbers, booleans,
/// null, lists and structs (objects). Values JSON has no kind for are an error, since a pair
/// field (the only columns read) can be none of them.
fn value(field: &Field) -> Result<Value, String> {
    let number = |n: Option<Number>| Ok(n.map_or(Value::Null, Value::Number));
    match field {
        Field::Null => Ok(Value::Null),
        Field::Bool(b) => Ok(Value::Bool(*b)),
        Field::Byte(n) => Ok(Value::from(*n)),
        Field::Short(n) => Ok(Value::from(*n)),
        Field::Int(n) => Ok(Value::from(*n)),
        Field::Long(n) => Ok(Value::from(*n)),
        Field::UByte(n) => Ok(Value::from(*n)),
        Field::UShort(n) => Ok(Value::from(*n)),
        Field::UInt(n) => Ok(Value::from(*n)),
        Field::ULong(n) => Ok(Value::from(*n)),
        Field::Float16(n) => number(Number::from_f64(f64::from(*n))),
        Field::Float(n) => number(Number::from_f64(f64::from(*n))),
        Field::Double(n) => number(Number::from_f64(*n)),
        Field::Str(s) => Ok(Value::String(s.clone())),
        // Binary without the string annotation: text if it is UTF-8, as some writers store it.
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Ok(Value::String(s.to_owned())),
            Err(e) => Err(format!(
                "binary data that is not UTF-8 text (invalid at byte {})",
                e.valid_up_to()
            )),
        },
        Field::Group(row) => row
            .get_column_iter()
            .map(|(name, field)| Ok((name.clone(), value(field)?)))
            .collect::<Result<Map<_, _>, String>>()
            .map(Value::Object),
        Field::ListInternal(list) => list
            .elements()
            .iter()
            .map(value)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Field::MapInternal(_) => Err(unreadable("a map")),
        Field::Decimal(_) => Err(unreadable("a decimal")),
        Field::Date(_) => Err(unreadable("a date")),
        Field::TimeMillis(_) | Field::TimeMicros(_) => Err(unreadable("a time")),
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => Err(unreadable("a timestamp")),
    }
}

fn unreadable(kind: &str) -> String {
    format!("expected a string or a list of messages, got {kind}")
}

/// The bytes of text in a value: what tokenizing it will take.
fn text_len(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(text_len).sum(),
        Value::Object(fields) => fields.iter().map(|(k, v)| k.len() + text_len(v)).sum(),
        _ => 0,
    }
}

/// The parquet crate's messages can quote a whole page of bytes: keep the start.
fn short(mut message: String) -> String {
    const MAX: usize = 300;
    if message.len() > MAX {
        let mut cut = MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read(relative: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The ultrafeedback_binarized-shaped file, the same rows as JSONL, and gzip-compressed:
    /// the same pairs, row numbers being line numbers.
    #[test]
    fn parquet_and_gzip_parse_like_the_jsonl() {
        let template = ChatTemplate::default_plain();
        let parse = |name: &str| {
            let bytes = read(&format!("tests/fixtures/pairs/{name}"));
            super::super::parse_pairs(name, &bytes, &template).unwrap()
        };
        let jsonl = parse("ultrafeedback_binarized.jsonl");
        assert_eq!(parse("ultrafeedback_binarized.parquet"), jsonl);
        assert_eq!(parse("ultrafeedback_binarized.jsonl.gz"), jsonl);
        assert_eq!(parse("ultrafeedback_binarized.gzip.parquet"), jsonl);
        // Whatever the name: the first bytes say what the file is.
        let bytes = read("tests/fixtures/pairs/ultrafeedback_binarized.parquet");
        assert_eq!(
            super::super::parse_pairs("x", &bytes, &template).unwrap(),
            jsonl
        );
        assert_eq!(jsonl.len(), 16);
        let first = &jsonl[0];
        assert_eq!(
            (first.prompt.as_str(), first.chosen.as_str(), first.line),
            (
                "user: Feedback on the book:\nassistant: ",
                "the sound was fairly noisy and the packaging was friendly.\n",
                1
            )
        );
        assert!(first.conversational);
        assert_eq!(jsonl[15].line, 16);
    }

    /// The Parquet cases of the bad-input corpus, one error each: (row, column, message start).
    #[test]
    fn bad_files_name_the_row_and_column() {
        let template = ChatTemplate::default_plain();
        let cases = [
            (
                "chosen-is-an-int",
                1,
                "chosen",
                "expected a string or a list of messages, got a number",
                4,
            ),
            (
                "prompt-is-a-list-of-ints",
                1,
                "prompt[0]",
                "expected a message object, got a number",
                4,
            ),
            (
                "role-not-a-string",
                1,
                "chosen[0].role",
                "expected a string, got a number",
                4,
            ),
            (
                "missing-chosen",
                0,
                "chosen",
                "missing column (the file's columns: prompt, prompt_id, rejected,",
                1,
            ),
            ("missing-rejected", 0, "rejected", "missing column", 1),
            (
                "truncated",
                0,
                "-",
                "cannot read it as Parquet (truncated or damaged?)",
                1,
            ),
            ("empty-file", 0, "-", "the file is empty (0 bytes)", 1),
            (
                "zero-rows",
                0,
                "-",
                "the file contains no preference pairs",
                1,
            ),
            (
                "null-chosen",
                3,
                "chosen",
                "expected a string or a list of messages, got null",
                1,
            ),
            (
                "message-missing-content",
                1,
                "rejected[0].content",
                "missing field",
                4,
            ),
            ("damaged-page", 1, "-", "damaged Parquet data", 1),
            ("zstd", 0, "prompt", "compressed with zstd, which", 1),
        ];
        for (name, row, column, start, total) in cases {
            let file = format!("tests/bad_inputs/parquet-{name}/pairs.parquet");
            let err = super::super::parse_pairs(&file, &read(&file), &template).unwrap_err();
            let e = &err.errors[0];
            assert_eq!(
                (e.line, e.field.as_str(), e.unit, err.total),
                (row, column, Unit::Row, total),
                "{name}: {err}"
            );
            assert!(e.message.starts_with(start), "{name}: {err}");
        }
    }

    /// Damaged files are errors, not panics: every truncation of a good file, and a byte
    /// changed every few bytes (some of which make the parquet crate panic).
    #[test]
    fn damaged_files_are_errors() {
        let template = ChatTemplate::default_plain();
        let good = read("tests/fixtures/pairs/ultrafeedback_binarized.parquet");
        let mut damaged: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        for at in (4..good.len()).step_by(7) {
            for flip in [0x01, 0x80, 0xFF] {
                let mut bytes = good.clone();
                bytes[at] ^= flip;
                damaged.push(bytes);
            }
        }
        let mut panics = 0;
        for bytes in damaged {
            if let Err(err) = super::super::parse_pairs("d.parquet", &bytes, &template) {
                let message = &err.errors[0].message;
                panics += usize::from(message.starts_with("damaged Parquet data"));
            }
        }
        println!("{panics} damaged files made the reader panic");
    }

    #[test]
    fn values_as_json() {
        assert_eq!(value(&Field::Double(f64::NAN)), Ok(Value::Null));
        assert_eq!(value(&Field::Int(3)), Ok(Value::from(3)));
        let bytes = |b: &[u8]| Field::Bytes(b.to_vec().into());
        assert_eq!(value(&bytes(b"text")), Ok(Value::from("text")));
        let err = value(&bytes(b"ab\xFF")).unwrap_err();
        assert_eq!(
            err,
            "binary data that is not UTF-8 text (invalid at byte 2)"
        );
        assert_eq!(value(&Field::Date(1)).unwrap_err(), unreadable("a date"));
        assert_eq!(short("é".repeat(200)).chars().count(), 151);
    }
}
