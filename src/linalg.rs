//! Small dense linear algebra on the host, in `f64`.

/// The inverse of a square matrix by Gauss–Jordan elimination with partial pivoting.
///
/// `matrix` is `n × n`, row-major.
///
/// # Returns
///
/// The inverse, row-major, or `Err(pivot)` with the smallest pivot relative to the largest
/// entry when a pivot falls below `relative_tolerance` (the matrix is singular to working
/// precision).
pub(crate) fn invert(matrix: &[f64], n: usize, relative_tolerance: f64) -> Result<Vec<f64>, f64> {
    assert_eq!(matrix.len(), n * n, "matrix must hold n × n entries");
    let scale = matrix.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    if n == 0 {
        return Ok(Vec::new());
    }
    if scale == 0.0 || !scale.is_finite() {
        return Err(0.0);
    }

    // Augmented system [M | I], reduced to [I | M⁻¹].
    let width = 2 * n;
    let mut augmented = vec![0.0; n * width];
    for row in 0..n {
        augmented[row * width..row * width + n].copy_from_slice(&matrix[row * n..(row + 1) * n]);
        augmented[row * width + n + row] = 1.0;
    }

    let mut smallest_pivot = f64::INFINITY;
    for column in 0..n {
        let pivot_row = (column..n)
            .max_by(|&a, &b| {
                let pa = augmented[a * width + column].abs();
                let pb = augmented[b * width + column].abs();
                pa.total_cmp(&pb)
            })
            .expect("column range is not empty");
        let pivot = augmented[pivot_row * width + column];
        let relative = pivot.abs() / scale;
        smallest_pivot = smallest_pivot.min(relative);
        if relative.is_nan() || relative <= relative_tolerance {
            return Err(relative);
        }
        swap_rows(&mut augmented, width, column, pivot_row);
        eliminate_column(&mut augmented, n, column);
    }

    let mut inverse = vec![0.0; n * n];
    for row in 0..n {
        inverse[row * n..(row + 1) * n]
            .copy_from_slice(&augmented[row * width + n..(row + 1) * width]);
    }
    debug_assert!(smallest_pivot.is_finite());
    Ok(inverse)
}

fn swap_rows(augmented: &mut [f64], width: usize, a: usize, b: usize) {
    if a != b {
        for k in 0..width {
            augmented.swap(a * width + k, b * width + k);
        }
    }
}

/// Scales the pivot row to a unit pivot and clears `column` from every other row.
fn eliminate_column(augmented: &mut [f64], n: usize, column: usize) {
    let width = 2 * n;
    let pivot = augmented[column * width + column];
    for k in 0..width {
        augmented[column * width + k] /= pivot;
    }
    for row in (0..n).filter(|&row| row != column) {
        let factor = augmented[row * width + column];
        if factor != 0.0 {
            for k in 0..width {
                augmented[row * width + k] -= factor * augmented[column * width + k];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multiply(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        for n in [1, 2, 3, 7] {
            // A shifted permutation plus small entries: well conditioned, and its diagonal is
            // small, so elimination must pivot.
            let matrix: Vec<f64> = (0..n * n)
                .map(|k| {
                    let (i, j) = (k / n, k % n);
                    let small = ((i * 7 + j * 3) % 5) as f64 * 0.1;
                    if j == (i + 1) % n {
                        5.0 + small
                    } else {
                        small
                    }
                })
                .collect();
            let inverse = invert(&matrix, n, 1e-12).expect("matrix is invertible");
            let product = multiply(&matrix, &inverse, n);
            for i in 0..n {
                for j in 0..n {
                    let expected = if i == j { 1.0 } else { 0.0 };
                    assert!((product[i * n + j] - expected).abs() < 1e-12 * n as f64);
                }
            }
        }
    }

    #[test]
    fn singular_matrix_is_rejected() {
        let matrix = [1.0, 2.0, 2.0, 4.0];
        assert!(invert(&matrix, 2, 1e-12).is_err());
        assert!(invert(&[0.0; 4], 2, 1e-12).is_err());
        assert!(invert(&[f64::NAN, 0.0, 0.0, 1.0], 2, 1e-12).is_err());
    }

    #[test]
    fn empty_matrix_has_empty_inverse() {
        assert_eq!(invert(&[], 0, 1e-12), Ok(Vec::new()));
    }
}
