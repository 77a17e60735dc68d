//! One training step of `NaturalGradient` against burn's Adam on the same fixed MLP.
//!
//! Run with `cargo bench --bench natural_gradient`. The MLP has 64 inputs, two hidden layers
//! of the benchmarked width and 10 outputs; the batch has 256 examples; the natural-gradient
//! optimiser recomputes its inverses every 10 steps (so 1 step in 10 pays for them), and
//! each benchmark iteration is one full step (forward, backward, update) on Flex.

use std::hint::black_box;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use burn_senn::{ExpandableMlp, ExpandableMlpConfig, FisherEstimate, NaturalGradientConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const BATCH: usize = 256;
const INPUTS: usize = 64;
const OUTPUTS: usize = 10;

fn device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex().autodiff();
    #[cfg(not(feature = "flex"))]
    return Device::default().autodiff();
}

fn network(width: usize, device: &Device) -> ExpandableMlp {
    ExpandableMlpConfig::new(INPUTS, OUTPUTS)
        .with_hidden(vec![width, width])
        .init(device)
}

fn loss(output: Tensor<2>, target: &Tensor<2>) -> Tensor<1> {
    (output - target.clone()).square().mean()
}

fn training_step(c: &mut Criterion) {
    let device = device();
    device.seed(0);
    let x = Tensor::<2>::random([BATCH, INPUTS], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<2>::random([BATCH, OUTPUTS], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("training_step");
    group.sample_size(20);
    for width in [64, 256, 1024] {
        group.bench_with_input(BenchmarkId::new("adam", width), &width, |b, &width| {
            let mut optimizer = AdamConfig::new().init();
            let mut model = Some(network(width, &device));
            b.iter(|| {
                let current = model.take().unwrap();
                let value = loss(current.forward(x.clone()), &y);
                let grads = GradientsParams::from_grads(value.backward(), &current);
                let next = optimizer.step(1e-3, current, grads);
                black_box(next.layers()[0].bias.val().into_data());
                model = Some(next);
            });
        });
        group.bench_with_input(
            BenchmarkId::new("natural_gradient", width),
            &width,
            |b, &width| {
                let mut optimizer = NaturalGradientConfig::new().with_inverse_period(10).init();
                let mut model = Some(network(width, &device));
                b.iter(|| {
                    let current = model.take().unwrap();
                    let (output, capture) = current.forward_capture(x.clone());
                    let value = loss(output, &y);
                    let mut grads = capture
                        .into_gradients(&current, value.backward(), &FisherEstimate::Empirical)
                        .unwrap();
                    let next = optimizer.step(1e-1, current, &mut grads);
                    black_box(next.layers()[0].bias.val().into_data());
                    model = Some(next);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, training_step);
criterion_main!(benches);
