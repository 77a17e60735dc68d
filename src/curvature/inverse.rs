//! Damped inverses of the Kronecker factors, computed together on the host.

use burn::tensor::{Device, Tensor, TensorData};
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

use crate::param::host_values;

/// How many times the damping is multiplied by ten before a factor is given up on.
const MAX_DAMPING_RETRIES: usize = 6;

/// The inverse of one damped factor, with how it was obtained.
#[derive(Debug, Clone)]
pub(crate) struct DampedInverse {
    /// (F + γI)⁻¹ on the device.
    pub inverse: Tensor<2>,
    /// The damping γ finally used.
    pub damping: f64,
    /// Whether the factor held NaN or infinite values and was replaced by the identity.
    pub replaced: bool,
    /// How many times γ had to be raised tenfold for the Cholesky factorisation to succeed.
    pub raised: usize,
}

/// The factor's entries on the host, row-major, in `f64`.
pub(crate) fn host_matrix(factor: Tensor<2>) -> (Vec<f64>, usize) {
    (host_values(&factor), factor.dims()[0])
}

/// tr(F)/n, the mean eigenvalue; 0 for an empty or non-finite factor.
pub(crate) fn mean_eigenvalue(matrix: &[f64], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let trace: f64 = (0..n).map(|i| matrix[i * n + i]).sum();
    if trace.is_finite() {
        trace / n as f64
    } else {
        0.0
    }
}

/// (F + γI)⁻¹ by Cholesky, raising γ tenfold (up to six times) if F + γI is not numerically
/// positive definite. A factor with non-finite entries is treated as zero, so its inverse is
/// I/γ.
pub(crate) fn damped_inverse(
    matrix: &[f64],
    n: usize,
    damping: f64,
    device: &Device,
) -> DampedInverse {
    let replaced = !matrix.iter().all(|x| x.is_finite());
    let mut damping = damping;
    for raised in 0..=MAX_DAMPING_RETRIES {
        let damped = Mat::<f64>::from_fn(n, n, |i, j| {
            let entry = if replaced { 0.0 } else { matrix[i * n + j] };
            entry + if i == j { damping } else { 0.0 }
        });
        if let Ok(cholesky) = damped.llt(Side::Lower) {
            let inverse = cholesky.inverse();
            let values: Vec<f32> = (0..n * n).map(|k| inverse[(k / n, k % n)] as f32).collect();
            if values.iter().all(|x| x.is_finite()) {
                return DampedInverse {
                    inverse: Tensor::from_data(TensorData::new(values, [n, n]), device),
                    damping,
                    replaced,
                    raised,
                };
            }
        }
        damping *= 10.0;
    }
    // Unreachable for finite damping > 0: F is zeroed when non-finite, and a symmetric
    // matrix plus a large enough multiple of I is positive definite. Keep the identity.
    DampedInverse {
        inverse: Tensor::<2>::eye(n, device) / damping,
        damping,
        replaced: true,
        raised: MAX_DAMPING_RETRIES,
    }
}

/// Splits the Tikhonov damping γ between A and G as π√γ and √γ/π, with
/// π = √((tr A / dim A) / (tr G / dim G)) (Martens and Grosse, *Optimizing Neural Networks
/// with Kronecker-factored Approximate Curvature*, §6.3), so that (A + π√γ I) ⊗ (G + √γ/π I)
/// is close to A ⊗ G + γ I. π falls back to 1 when either trace is zero or not finite.
pub(crate) fn split_damping(damping: f64, mean_a: f64, mean_g: f64) -> (f64, f64) {
    let root = damping.sqrt();
    let pi = (mean_a / mean_g).sqrt();
    if pi.is_finite() && pi > 0.0 {
        (pi * root, root / pi)
    } else {
        (root, root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_device;

    #[test]
    fn damped_inverse_inverts_the_damped_factor() {
        let device = test_device();
        // A rank-one factor: singular on its own, invertible once damped.
        let v = [1.0, -2.0, 0.5];
        let matrix: Vec<f64> = (0..9).map(|k| v[k / 3] * v[k % 3]).collect();
        let result = damped_inverse(&matrix, 3, 0.1, &device);
        assert!(!result.replaced);
        assert_eq!(result.raised, 0);
        let (inverse, _) = host_matrix(result.inverse);
        for i in 0..3 {
            for j in 0..3 {
                let product: f64 = (0..3)
                    .map(|k| {
                        (matrix[i * 3 + k] + if i == k { 0.1 } else { 0.0 }) * inverse[k * 3 + j]
                    })
                    .sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((product - expected).abs() < 1e-5, "{product} at ({i}, {j})");
            }
        }
    }

    #[test]
    fn non_finite_factor_is_replaced_by_the_identity() {
        let device = test_device();
        let matrix = [f64::NAN, 0.0, 0.0, 1.0];
        let result = damped_inverse(&matrix, 2, 0.5, &device);
        assert!(result.replaced);
        let (inverse, _) = host_matrix(result.inverse);
        assert_eq!(inverse, vec![2.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn indefinite_factor_gets_more_damping() {
        let device = test_device();
        let matrix = [-1.0, 0.0, 0.0, 1.0];
        let result = damped_inverse(&matrix, 2, 0.1, &device);
        assert_eq!(result.raised, 2, "0.1 → 1 → 10 makes -1 + γ positive");
        assert!((result.damping - 10.0).abs() < 1e-9);
    }

    #[test]
    fn damping_split_keeps_the_product_and_balances_the_traces() {
        let (a, g) = split_damping(1e-2, 4.0, 1.0);
        assert!((a * g - 1e-2).abs() < 1e-12);
        assert!((a / g - 4.0).abs() < 1e-9, "π² = 4");
        assert_eq!(split_damping(1e-2, 0.0, 1.0), (0.1, 0.1));
    }
}
