//! Row kernels for the CPU backend's fused ops (the head's log-softmax, attention's
//! probabilities, the sigmoid-gated activations, the norms): an `exp` and row reductions
//! written so that the compiler vectorises them. flex evaluates `exp` element by element
//! through libm and each tensor op in its own pass over memory; these run a row in two or
//! three passes, in vector registers.
//!
//! A portable x86-64 build may assume only SSE2 (4 lanes). The kernels that a fused op runs
//! over its rows are declared with [`vector_kernel!`], which compiles each again for AVX2 +
//! FMA (8 lanes) and AVX-512 (16) and picks the widest the CPU has at run time, so one binary
//! is fast on every machine. The helpers here are `inline(always)`, so that each is compiled
//! inside the kernel that calls it, at its width. Results do not depend on the width: no
//! multiply-add is fused, and the reductions keep `LANES` partial results in a fixed order.

/// Declares functions compiled for each vector extension and chosen at run time (the
/// `multiversion` crate). For the loops of the CPU kernels: a closure inside one is compiled
/// with it, but a closure handed to another function is not, so the loop must live inside.
macro_rules! vector_kernel {
    ($($item:item)*) => {
        $(
            #[multiversion::multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2+fma"))]
            $item
        )*
    };
}
pub(crate) use vector_kernel;

/// Lanes of the row reductions: independent partial results the compiler keeps in vector
/// registers (a single running sum would be a chain of dependent scalar adds).
const LANES: usize = 8;

/// The largest element of `row` (NaNs are passed over).
#[inline(always)]
fn max(row: &[f32]) -> f32 {
    fold_lanes(
        row,
        f32::NEG_INFINITY,
        |x| x,
        |m, x| if x > m { x } else { m },
    )
}

vector_kernel! {
    /// max + log sum_j exp(row[j] - max).
    pub fn log_sum_exp(row: &[f32]) -> f32 {
        let max = max(row);
        let sum = fold_lanes(row, 0.0, |x| exp_nonpositive(x - max), |s, x| s + x);
        max + sum.ln()
    }

    /// `row` replaced by softmax(scale · row), for a positive scale (which then keeps the
    /// largest element the largest, so it scales inside the exp instead of in a pass of its own).
    pub fn softmax_in_place(row: &mut [f32], scale: f32) {
        debug_assert!(scale > 0.0, "softmax scale {scale}");
        let max = max(row);
        for x in row.iter_mut() {
            *x = exp_nonpositive(scale * (*x - max));
        }
        let normaliser = 1.0 / fold_lanes(row, 0.0, |x| x, |s, x| s + x);
        for x in row.iter_mut() {
            *x *= normaliser;
        }
    }

    /// out[j] = scale · e^(row[j] - shift), for shifts at least the row's largest element.
    pub fn scaled_exp(out: &mut [f32], row: &[f32], shift: f32, scale: f32) {
        for (out, &x) in out.iter_mut().zip(row) {
            *out = scale * exp_nonpositive(x - shift);
        }
    }
}

/// The sum of `map` of every element.
#[inline(always)]
pub fn sum_map(row: &[f32], map: impl Fn(f32) -> f32) -> f32 {
    fold_lanes(row, 0.0, map, |s, x| s + x)
}

/// sum_j a[j]·b[j], in `LANES` interleaved partial sums.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (mut a, mut b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (a, b) in (&mut a).zip(&mut b) {
        for ((lane, x), y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += x * y;
        }
    }
    let rest: f32 = a
        .remainder()
        .iter()
        .zip(b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + rest
}

/// `combine` over `map` of every element, in `LANES` interleaved partial results.
#[inline(always)]
fn fold_lanes(
    row: &[f32],
    init: f32,
    map: impl Fn(f32) -> f32,
    combine: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut lanes = [init; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = combine(*lane, map(x));
        }
    }
    let rest = chunks.remainder().iter().map(|&x| map(x));
    lanes.into_iter().chain(rest).fold(init, combine)
}

/// e^x for the x <= 0 these kernels meet (a value minus its row's max or log-normaliser), in
/// branch-free arithmetic the compiler vectorises: e^x = 2^n e^r with n = round(x log2 e),
/// |r| <= ln2 / 2, and e^r from Cephes' polynomial (within 2 ulp of libm). Arguments below
/// -87 give e^-87 (2e-38: nothing beside the row's largest term, 1); NaN stays NaN.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // Adding and subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to an integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts (Cephes' C1 + C2), so that n * C1 is exact.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    // 2^n built from n's bits: `shifted`'s low mantissa bits hold n (its exponent is fixed by
    // ROUND), so integer arithmetic on them gives the biased exponent. A float-to-int cast
    // would do the same but, saturating, keeps the loop scalar.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    e_r * f32::from_bits(biased << 23)
}

/// 1 / (1 + e^-x) through `exp_nonpositive` of -|x|, which cannot overflow; NaN stays NaN.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 { r } else { e * r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_polynomial_exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let relative = (exp_nonpositive(x) - x.exp()).abs() / x.exp();
            worst = worst.max(relative);
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e30) < 1e-37);
    }

    #[test]
    fn the_sigmoid_matches_its_definition() {
        // Down to -80: below -87 the exp stops at e^-87, far under anything a gate passes.
        for i in -1600..=1600 {
            let x = i as f32 * 0.05;
            let expected = 1.0 / (1.0 + (-x as f64).exp());
            let relative = (sigmoid(x) as f64 - expected).abs() / expected;
            assert!(relative <= 1e-6, "sigmoid({x}): relative error {relative}");
        }
        assert_eq!(sigmoid(1e30), 1.0);
        assert!(sigmoid(-1e30) < 1e-37);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn row_kernels_match_their_definitions() {
        // 21 elements: two full chunks of lanes and a remainder, the largest in the remainder.
        let row: Vec<f32> = (0..21)
            .map(|i| ((i * 7) % 11) as f32 * 0.9 - 3.0 + i as f32 * 0.1)
            .collect();
        let expected_max = row.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(max(&row), expected_max);
        let sum: f32 = row.iter().map(|x| (x - expected_max).exp()).sum();
        assert!((log_sum_exp(&row) - (expected_max + sum.ln())).abs() < 1e-5);
        assert!((sum_map(&row, |x| x * x) - row.iter().map(|x| x * x).sum::<f32>()).abs() < 1e-3);
        let other: Vec<f32> = row.iter().map(|x| x * 0.5 - 1.0).collect();
        let expected_dot: f32 = row.iter().zip(&other).map(|(x, y)| x * y).sum();
        assert!((dot(&row, &other) - expected_dot).abs() < 1e-3);
        let mut softmax = row.clone();
        softmax_in_place(&mut softmax, 1.0);
        for (p, x) in softmax.iter().zip(&row) {
            assert!((p - (x - expected_max).exp() / sum).abs() < 1e-6);
        }
        let scaled_sum: f32 = row.iter().map(|x| (0.5 * (x - expected_max)).exp()).sum();
        let mut scaled = row.clone();
        softmax_in_place(&mut scaled, 0.5);
        for (p, x) in scaled.iter().zip(&row) {
            assert!((p - (0.5 * (x - expected_max)).exp() / scaled_sum).abs() < 1e-6);
        }
    }
}
