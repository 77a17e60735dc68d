//! What an expansion check costs: a natural-gradient training step that runs a full check
//! (scoring, candidate search at every location, the decision) against the same step without
//! one, on the half-moons network shapes the quickstart grows through.
//!
//! Run with `cargo bench --bench expansion`. The check's relative threshold is set so high
//! that nothing ever passes: every iteration pays for one whole round of search and the
//! network never changes, so iterations are comparable. Full batch of 200 examples, Flex.

use std::hint::black_box;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Device;
use burn_senn::datasets::ClassificationSet;
use burn_senn::{ExpandableMlpConfig, ExpansionConfig, FisherEstimate, NaturalGradientConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex().autodiff();
    #[cfg(not(feature = "flex"))]
    return Device::default().autodiff();
}

fn check_against_step(c: &mut Criterion) {
    let device = device();
    device.seed(0);
    let data = ClassificationSet::two_moons(200, 0.3, 0);
    let (x, y) = (data.inputs(&device), data.label_tensor(&device));
    let loss = CrossEntropyLossConfig::new().init(&device);
    let mut group = c.benchmark_group("expansion_check");
    group.sample_size(20);
    for hidden in [vec![], vec![3], vec![5, 7, 7]] {
        let name = format!("{hidden:?}");
        // interval 1: every step after the first is a check; tau 1e12: none ever passes.
        let never_grows = ExpansionConfig::new().with_interval(1).with_tau(1e12);
        for (label, expansion) in [("step", None), ("step_with_check", Some(never_grows))] {
            group.bench_with_input(BenchmarkId::new(label, &name), &hidden, |b, hidden| {
                let mut network = ExpandableMlpConfig::new(2, 2)
                    .with_hidden(hidden.clone())
                    .init(&device);
                let mut optimizer = NaturalGradientConfig::new()
                    .with_fisher(FisherEstimate::GaussNewton)
                    .with_momentum(0.0)
                    .with_expansion(expansion.clone())
                    .init();
                b.iter(|| {
                    let labels = y.clone();
                    let value = optimizer
                        .train_step(0.1, &mut network, x.clone(), |logits| {
                            loss.forward(logits, labels)
                        })
                        .unwrap();
                    black_box(value);
                });
                assert_eq!(network.hidden_widths(), *hidden, "the benchmark grew");
            });
        }
    }
    group.finish();
}

criterion_group!(benches, check_against_step);
criterion_main!(benches);
