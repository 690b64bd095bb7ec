//! Helpers shared by the unit tests.

use burn::tensor::TensorData;

/// Asserts that `actual` is `expected` to within `tolerance` times the largest magnitude in
/// `expected` (at least 1): `what` names the tensor in the message.
pub fn assert_close(what: &str, expected: &TensorData, actual: &TensorData, tolerance: f32) {
    let (a, b): (Vec<f32>, Vec<f32>) = (expected.iter().collect(), actual.iter().collect());
    assert_eq!(a.len(), b.len(), "{what}: sizes differ");
    let scale = a.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst <= tolerance * scale, "{what}: off by {worst}");
}
