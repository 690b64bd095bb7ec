//! Which reader a pairs file needs, and gzip decompression for `.jsonl.gz`.

use std::io::Read;

use super::DataError;
use super::errors::{ErrorSink, Unit};

/// The most bytes a gzip-compressed pairs file may decompress to. A pairs file of that size
/// is already far beyond what a run trains on; beyond it is a broken file or a gzip bomb.
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 31;

/// The formats a pairs file may come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairsFormat {
    /// One JSON object per line.
    Jsonl,
    /// JSONL compressed with gzip (`.jsonl.gz`; several gzip members are read one after the
    /// other, as `zcat` does).
    GzipJsonl,
    /// A Parquet file whose columns are the pair's fields, as `datasets` writes it.
    Parquet,
}

impl PairsFormat {
    /// The first bytes decide (`PAR1`, gzip's `1f 8b`), else the name's extension
    /// (`.parquet`, `.gz`, case-insensitive), else JSONL: a `.parquet` or `.gz` file whose
    /// bytes are something else gets the error of the format it claims.
    pub fn of(name: &str, bytes: &[u8]) -> PairsFormat {
        let name = name.to_ascii_lowercase();
        if bytes.starts_with(b"PAR1") {
            PairsFormat::Parquet
        } else if bytes.starts_with(&[0x1f, 0x8b]) {
            PairsFormat::GzipJsonl
        } else if name.ends_with(".parquet") {
            PairsFormat::Parquet
        } else if name.ends_with(".gz") {
            PairsFormat::GzipJsonl
        } else {
            PairsFormat::Jsonl
        }
    }
}

/// The decompressed contents of a gzip file; a damaged one is a single error naming the file.
pub(super) fn gunzip(file: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let fail = |message: String| {
        let mut sink = ErrorSink::with_unit(file, Unit::Line);
        sink.push(0, "-", message);
        sink.finish(Vec::new())
    };
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        let message = match bytes.is_empty() {
            true => "the file is empty (0 bytes), not gzip-compressed JSONL".to_owned(),
            false => "not a gzip file: it does not start with gzip's bytes 1f 8b".to_owned(),
        };
        return fail(message);
    }
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes).take(MAX_DECOMPRESSED_BYTES + 1);
    if let Err(e) = decoder.read_to_end(&mut out) {
        return fail(format!(
            "cannot decompress it (a damaged or truncated gzip file): {e}"
        ));
    }
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        let message = format!("it decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes");
        return fail(message);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn format_by_bytes_then_name() {
        use PairsFormat::*;
        let gz = gzip(b"{}");
        let cases: [(&str, &[u8], PairsFormat); 8] = [
            ("d.jsonl", b"{}", Jsonl),
            ("d.json", b"", Jsonl),
            ("d.parquet", b"", Parquet),
            ("D.PARQUET", b"{}", Parquet),
            ("d.jsonl.gz", b"", GzipJsonl),
            ("d.jsonl", &gz, GzipJsonl),
            ("data", b"PAR1\0\0", Parquet),
            ("d.parquet", &gz, GzipJsonl),
        ];
        for (name, bytes, format) in cases {
            assert_eq!(PairsFormat::of(name, bytes), format, "{name}");
        }
    }

    #[test]
    fn gzip_jsonl_errors_give_the_line() {
        let ok = r#"{"prompt":"p","chosen":"a","rejected":"b"}"#;
        let bytes = gzip(format!("{ok}\n\n{{\"chosen\":5,\"rejected\":\"r\"}}\n").as_bytes());
        let template = super::super::ChatTemplate::default_plain();
        let err = super::super::parse_pairs("d.jsonl.gz", &bytes, &template).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.jsonl.gz:3: field `chosen`: expected a string or a list of messages, got a number"
        );
    }

    #[test]
    fn gunzip_reads_members_and_names_damage() {
        let mut two = gzip(b"a\n");
        two.extend(gzip(b"b\n"));
        assert_eq!(gunzip("d.gz", &two).unwrap(), b"a\nb\n");
        let whole = gzip(&b"x".repeat(1000));
        for (bytes, start) in [
            (&whole[..whole.len() / 2], "cannot decompress it"),
            (&b"\x1f\x8bnot gzip at all"[..], "cannot decompress it"),
            (&b"plain text"[..], "not a gzip file"),
            (&b""[..], "the file is empty"),
        ] {
            let err = gunzip("d.jsonl.gz", bytes).unwrap_err();
            let e = &err.errors[0];
            assert_eq!((err.total, e.file.as_str(), e.line), (1, "d.jsonl.gz", 0));
            assert!(e.message.starts_with(start), "{}", e.message);
        }
    }
}
