//! Rotary position embeddings (RoPE) in Hugging Face's half-split layout, with the frequency
//! scalings hub configs use: none, `linear` and Llama 3.x's `llama3`.
//!
//! Configs spell the settings two ways: transformers 4 writes `rope_theta` beside a
//! `rope_scaling` object (whose type is `rope_type`, or `type` in older files); transformers 5
//! writes one `rope_parameters` object holding `rope_theta` too. Both are read here; the file
//! itself is written back as it was loaded.

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

/// How the inverse frequencies are rescaled for contexts longer than pre-training's.
#[derive(Clone, Debug, PartialEq)]
pub enum Scaling {
    None,
    /// Every frequency divided by `factor` (position interpolation).
    Linear {
        factor: f32,
    },
    /// Llama 3.1's: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_context: f32,
    },
}

/// The rotary settings of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeSettings {
    pub theta: f64,
    pub scaling: Scaling,
}

impl RopeSettings {
    pub const TYPES: &'static str = "default, linear, llama3";

    /// Reads the settings from a config's `rope_theta`, `rope_parameters` and `rope_scaling`;
    /// `max_positions` stands in for a missing `original_max_position_embeddings`, as in
    /// transformers. Errors name the field.
    pub fn from_config(
        rope_theta: Option<f64>,
        rope_parameters: Option<&Value>,
        rope_scaling: Option<&Value>,
        max_positions: usize,
    ) -> Result<RopeSettings, String> {
        let scaling = rope_scaling
            .filter(|v| !v.is_null())
            .map(|v| ("rope_scaling", v));
        let parameters = rope_parameters
            .filter(|v| !v.is_null())
            .map(|v| ("rope_parameters", v));
        if let (Some(_), Some(_)) = (scaling, parameters) {
            return Err(
                "field `rope_scaling`: the config also has `rope_parameters`; keep one".into(),
            );
        }
        let theta = match parameters.map(|(_, p)| p.get("rope_theta")) {
            Some(Some(v)) => Some(
                v.as_f64()
                    .ok_or("field `rope_parameters.rope_theta` must be a number")?,
            ),
            _ => rope_theta,
        }
        .unwrap_or(10000.0);
        if !(theta > 0.0) {
            return Err("field `rope_theta` must be positive".into());
        }
        let scaling = match scaling.or(parameters) {
            None => Scaling::None,
            Some((name, object)) => read_scaling(name, object, max_positions)?,
        };
        Ok(RopeSettings { theta, scaling })
    }

    /// The inverse frequency of each of the `head_dim / 2` rotation pairs, in f32 and in the
    /// order transformers computes them, so that far positions round the same way.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let base: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / (self.theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        match self.scaling {
            Scaling::None => base,
            Scaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            Scaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => {
                let low_freq_wavelen = original_context / low_freq_factor;
                let high_freq_wavelen = original_context / high_freq_factor;
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen < high_freq_wavelen {
                            f
                        } else if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            let smooth = (original_context / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

/// The scaling an object (`rope_scaling` or `rope_parameters`, named `name`) describes.
fn read_scaling(name: &str, object: &Value, max_positions: usize) -> Result<Scaling, String> {
    if !object.is_object() {
        return Err(format!("field `{name}` must be an object"));
    }
    let kind = match object.get("rope_type").or_else(|| object.get("type")) {
        None => "default",
        Some(kind) => kind
            .as_str()
            .ok_or_else(|| format!("field `{name}.rope_type` must be a string"))?,
    };
    let number = |key: &str| -> Result<f32, String> {
        let value = object
            .get(key)
            .ok_or_else(|| format!("field `{name}.{key}` is missing (rope_type {kind})"))?;
        let number = value
            .as_f64()
            .ok_or_else(|| format!("field `{name}.{key}` must be a number"))?;
        if !(number > 0.0) {
            return Err(format!("field `{name}.{key}` must be positive"));
        }
        Ok(number as f32)
    };
    match kind {
        "default" => Ok(Scaling::None),
        "linear" => Ok(Scaling::Linear {
            factor: number("factor")?,
        }),
        "llama3" => {
            let (low_freq_factor, high_freq_factor) =
                (number("low_freq_factor")?, number("high_freq_factor")?);
            if high_freq_factor <= low_freq_factor {
                return Err(format!(
                    "field `{name}.high_freq_factor` must exceed low_freq_factor"
                ));
            }
            let original_context = match object.get("original_max_position_embeddings") {
                None => max_positions as f32,
                Some(_) => number("original_max_position_embeddings")?,
            };
            Ok(Scaling::Llama3 {
                factor: number("factor")?,
                low_freq_factor,
                high_freq_factor,
                original_context,
            })
        }
        other => Err(format!(
            "field `{name}.rope_type`: `{other}` is not supported ({})",
            RopeSettings::TYPES
        )),
    }
}

/// The cos/sin tables for positions 0..seq: dimension i pairs with i + head_dim/2
/// (transformers' `rotate_half`), not with its neighbour.
pub struct Rope {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl Rope {
    pub fn new(seq: usize, inv_freq: &[f32], device: &Device) -> Self {
        let head_dim = 2 * inv_freq.len();
        let mut cos = Vec::with_capacity(seq * head_dim);
        let mut sin = Vec::with_capacity(seq * head_dim);
        for position in 0..seq {
            // cos/sin repeat for the second half: the two halves share frequencies.
            for _ in 0..2 {
                for f in inv_freq {
                    let angle = position as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let table =
            |values| Tensor::from_data(TensorData::new(values, [1, 1, seq, head_dim]), device);
        Rope {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// x [batch, heads, seq, head_dim] rotated by position.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let half = x.dims()[3] / 2;
        let first = x.clone().narrow(3, 0, half);
        let second = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(parameters: Option<Value>, scaling: Option<Value>) -> Result<RopeSettings, String> {
        RopeSettings::from_config(Some(500000.0), parameters.as_ref(), scaling.as_ref(), 2048)
    }

    #[test]
    fn both_spellings_read_the_same() {
        let llama3 = json!({"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"});
        let old = settings(None, Some(llama3.clone())).unwrap();
        let mut new = llama3;
        new["rope_theta"] = json!(500000.0);
        assert_eq!(settings(Some(new), None).unwrap(), old);
        assert_eq!(old.theta, 500000.0);
        let legacy = settings(None, Some(json!({"type": "linear", "factor": 2.0}))).unwrap();
        assert_eq!(legacy.scaling, Scaling::Linear { factor: 2.0 });
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones() {
        let rope = RopeSettings {
            theta: 500000.0,
            scaling: Scaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_context: 8192.0,
            },
        };
        let plain = RopeSettings {
            scaling: Scaling::None,
            ..rope.clone()
        };
        let (scaled, base) = (rope.inv_freq(64), plain.inv_freq(64));
        assert_eq!(scaled[0], base[0]);
        assert_eq!(scaled[31], base[31] / 8.0);
        // In between, the blend lies between the two.
        let medium = (0..32).filter(|&i| scaled[i] < base[i] && scaled[i] > base[i] / 8.0);
        assert!(medium.count() > 0);
    }

    #[test]
    fn unknown_or_incomplete_scaling_is_refused_by_field() {
        let yarn = settings(None, Some(json!({"rope_type": "yarn", "factor": 4.0})));
        assert!(
            yarn.unwrap_err()
                .starts_with("field `rope_scaling.rope_type`: `yarn`")
        );
        let missing = settings(Some(json!({"rope_type": "llama3", "factor": 8.0})), None);
        assert_eq!(
            missing.unwrap_err(),
            "field `rope_parameters.low_freq_factor` is missing (rope_type llama3)"
        );
        let zero = settings(None, Some(json!({"rope_type": "linear", "factor": 0})));
        assert_eq!(
            zero.unwrap_err(),
            "field `rope_scaling.factor` must be positive"
        );
    }
}
