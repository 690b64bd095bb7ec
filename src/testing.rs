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

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::backend::ops::FloatTensorOps;
    use burn::tensor::{FloatDType, Shape};

    /// The vendored burn-flex's patch (vendor/README.md): a new CPU tensor is zeroed and
    /// aligned as burn requires (that of u128), whether its length allows whole u128s or not.
    #[test]
    fn new_cpu_tensors_are_zeroed_and_aligned() {
        let device = Default::default();
        for len in [0, 3, 4, 1000, 1001] {
            let tensor = Flex::float_zeros(Shape::new([len]), &device, FloatDType::F32);
            let bytes = tensor.bytes();
            assert_eq!(bytes.len(), len * 4);
            assert!(bytes.iter().all(|&b| b == 0), "{len} elements: not zeroed");
            let align = std::mem::align_of::<u128>();
            assert_eq!(
                bytes.as_ptr() as usize % align,
                0,
                "{len} elements: misaligned"
            );
        }
    }
}
