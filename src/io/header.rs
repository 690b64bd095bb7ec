//! A safetensors file's header, checked before the `safetensors` crate reads the file.
//!
//! The crate refuses a broken file with messages such as "invalid shape, data type, or offset
//! for tensor" that do not say which tensor or which field is wrong; someone fixing an export
//! needs exactly that. The layout: 8 bytes giving the header's length (little-endian u64), the
//! header (a JSON object: tensor name -> `dtype`, `shape`, `data_offsets` into the data that
//! follows; plus an optional `__metadata__`), then the data.

use safetensors::Dtype;
use serde_json::{Map, Value};

/// Checks the length prefix and every tensor entry of the header. Whole-file rules (tensors
/// overlapping or leaving gaps) are left to the `safetensors` crate.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    // What a clone without `git lfs` checks out in place of the weights.
    if bytes.starts_with(b"version https://git-lfs") {
        return Err("a Git LFS pointer, not the weights: fetch them with `git lfs pull`".into());
    }
    let Some((prefix, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!(
            "{} bytes long, too short for a safetensors file (truncated?)",
            bytes.len()
        ));
    };
    let length = u64::from_le_bytes(*prefix);
    if length > rest.len() as u64 {
        return Err(format!(
            "its first 8 bytes give a header length of {length} bytes, but only {} bytes \
             follow (truncated, or not a safetensors file)",
            rest.len()
        ));
    }
    let (header, data) = rest.split_at(length as usize);
    let header = std::str::from_utf8(header)
        .map_err(|e| format!("the header is not UTF-8 (byte {})", 8 + e.valid_up_to()))?;
    let header: Map<String, Value> = serde_json::from_str(header)
        .map_err(|e| format!("the header is not a JSON object: {e}"))?;
    for (name, entry) in header.iter().filter(|(name, _)| *name != "__metadata__") {
        check_entry(entry, data.len()).map_err(|e| format!("tensor `{name}`: {e}"))?;
    }
    Ok(())
}

/// One tensor's entry against the size of the data section.
fn check_entry(entry: &Value, data_len: usize) -> Result<(), String> {
    let field = |name: &str| {
        entry
            .get(name)
            .ok_or_else(|| format!("field `{name}` is missing"))
    };
    let dtype = field("dtype")?;
    let dtype: Dtype = serde_json::from_value(dtype.clone())
        .map_err(|_| format!("field `dtype`: {dtype} is not a safetensors dtype"))?;
    let shape: Vec<u64> = serde_json::from_value(field("shape")?.clone())
        .map_err(|_| "field `shape`: expected a list of non-negative integers".to_string())?;
    let [begin, end]: [u64; 2] = serde_json::from_value(field("data_offsets")?.clone())
        .map_err(|_| "field `data_offsets`: expected [begin, end] in bytes".to_string())?;
    let bits = shape
        .iter()
        .try_fold(dtype.bitsize() as u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("field `shape`: {shape:?} has more elements than fit in memory"))?;
    let needed = bits.div_ceil(8);
    if end < begin || end - begin != needed {
        return Err(format!(
            "field `data_offsets`: [{begin}, {end}] holds {} bytes, but shape {shape:?} of \
             {dtype:?} needs {needed}",
            end as i128 - begin as i128
        ));
    }
    if end > data_len as u64 {
        return Err(format!(
            "field `data_offsets`: [{begin}, {end}] reaches past the end of the data \
             ({data_len} bytes; the file is truncated)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with one F32 tensor `t` of `shape` whose header is `entry`, and `data` bytes.
    fn file(entry: Value, data: usize) -> Vec<u8> {
        let header =
            serde_json::json!({ "__metadata__": {"format": "pt"}, "t": entry }).to_string();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data));
        bytes
    }

    fn entry(dtype: &str, shape: &[u64], offsets: [u64; 2]) -> Value {
        serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": offsets })
    }

    #[test]
    fn accepts_a_consistent_file() {
        check(&file(entry("F32", &[2, 3], [0, 24]), 24)).unwrap();
        check(&file(entry("F4", &[3], [0, 2]), 2)).unwrap();
    }

    #[test]
    fn names_the_tensor_and_field() {
        let cases = [
            (
                file(entry("F32", &[2, 3], [0, 20]), 20),
                "field `data_offsets`: [0, 20] holds 20",
            ),
            (
                file(entry("F32", &[2, 3], [0, 24]), 10),
                "reaches past the end of the data",
            ),
            (
                file(entry("Q4", &[2], [0, 1]), 1),
                "field `dtype`: \"Q4\" is not",
            ),
            (file(entry("F32", &[], [8, 4]), 8), "holds -4 bytes"),
            (
                file(serde_json::json!({"dtype": "F32"}), 0),
                "field `shape` is missing",
            ),
            (
                file(entry("F64", &[u64::MAX, 2], [0, 0]), 0),
                "more elements than fit",
            ),
        ];
        for (bytes, expected) in cases {
            let error = check(&bytes).unwrap_err();
            assert!(error.starts_with("tensor `t`: "), "{error}");
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }

    #[test]
    fn truncated_or_foreign_files() {
        let good = file(entry("F32", &[1], [0, 4]), 4);
        assert!(check(&good[..5]).unwrap_err().contains("too short"));
        assert!(check(&good[..20]).unwrap_err().contains("header length of"));
        let mut lying = good.clone();
        lying[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(check(&lying).unwrap_err().contains("header length of"));
        assert!(
            check(b"\x02\0\0\0\0\0\0\0[]")
                .unwrap_err()
                .contains("not a JSON object")
        );
    }
}
