//! How to invert the damped Kronecker factors: on the host with a Cholesky factorisation
//! (faer, including the copy off and back onto the device), or on the device with the
//! matmul-only Newton–Schulz iteration X ← X(2I − MX). The library uses the faster one on
//! the CPU backends; run with `cargo bench --bench factor_inverse`.

use std::hint::black_box;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

/// Newton–Schulz iterations; enough for a condition number of about 1e4 in `f32`.
const NEWTON_SCHULZ_ITERATIONS: usize = 30;

fn device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex();
    #[cfg(not(feature = "flex"))]
    return Device::default();
}

/// A factor like K-FAC's: XᵀX/n for 256 samples, plus damping.
fn factor(size: usize, device: &Device) -> Tensor<2> {
    let x = Tensor::<2>::random([256, size], Distribution::Normal(0.0, 1.0), device);
    x.clone().transpose().matmul(x) / 256.0 + Tensor::eye(size, device) * 1e-2
}

fn host_cholesky(factor: Tensor<2>) -> Tensor<2> {
    let device = factor.device();
    let n = factor.dims()[0];
    let values = factor
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap();
    let matrix = Mat::<f64>::from_fn(n, n, |i, j| values[i * n + j]);
    let inverse = matrix.llt(Side::Lower).unwrap().inverse();
    let values: Vec<f32> = (0..n * n).map(|k| inverse[(k / n, k % n)] as f32).collect();
    Tensor::from_data(TensorData::new(values, [n, n]), &device)
}

fn newton_schulz(factor: Tensor<2>) -> Tensor<2> {
    let n = factor.dims()[0];
    let device = factor.device();
    let trace = (factor.clone() * Tensor::eye(n, &device)).sum();
    let identity = Tensor::<2>::eye(n, &device);
    let mut x = identity.clone() / trace.unsqueeze_dim::<2>(0);
    for _ in 0..NEWTON_SCHULZ_ITERATIONS {
        x = x
            .clone()
            .matmul(identity.clone() * 2.0 - factor.clone().matmul(x));
    }
    x
}

fn factor_inverse(c: &mut Criterion) {
    let device = device();
    device.seed(0);
    let mut group = c.benchmark_group("factor_inverse");
    group.sample_size(10);
    for size in [65, 257, 1025] {
        let m = factor(size, &device);
        group.bench_with_input(BenchmarkId::new("host_cholesky", size), &m, |b, m| {
            b.iter(|| black_box(host_cholesky(m.clone()).into_data()))
        });
        group.bench_with_input(BenchmarkId::new("newton_schulz", size), &m, |b, m| {
            b.iter(|| black_box(newton_schulz(m.clone()).into_data()))
        });
    }
    group.finish();
}

criterion_group!(benches, factor_inverse);
criterion_main!(benches);
