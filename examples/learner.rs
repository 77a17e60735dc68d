//! Growth through burn's `Learner`: `SupervisedTraining` with accuracy and loss metrics,
//! checkpoints and burn's progress display. The natural-gradient optimiser travels inside
//! `ExpandableClassifier` and grows the network during `optimize`; the Learner's own
//! optimiser is never used on it.
//!
//! ```text
//! cargo run --release --features train --example learner -- [--epochs N] [--out DIR]
//! ```
//!
//! Defaults: 20 epochs, artifacts (checkpoints, logs) in `learner-out/`.

use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::optim::SgdConfig;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use burn_senn::datasets::ClassificationSet;
use burn_senn::{
    backends, ClassificationBatch, ClassificationItem, ExpandableBatcher, ExpandableClassifier,
    ExpandableMlpConfig, ExpansionConfig, FisherEstimate, NaturalGradientConfig,
};

fn items(count: usize, seed: u64) -> Vec<ClassificationItem> {
    let set = ClassificationSet::two_moons(count, 0.25, seed);
    set.features
        .into_iter()
        .zip(set.labels)
        .map(|(features, label)| ClassificationItem { features, label })
        .collect()
}

fn loader(
    items: Vec<ClassificationItem>,
    batch: usize,
) -> Arc<dyn DataLoader<ClassificationBatch>> {
    DataLoaderBuilder::new(ExpandableBatcher)
        .batch_size(batch)
        .shuffle(0)
        .num_workers(1)
        .build(InMemDataset::new(items))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut epochs, mut out) = (20usize, PathBuf::from("learner-out"));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--epochs" => epochs = value.parse()?,
            "--out" => out = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag}; use --epochs, --out").into()),
        }
    }
    let backend = backends::default_name();
    let device = backends::device(backend)?;
    device.seed(0);

    let network = ExpandableMlpConfig::new(2, 2).init(&device);
    let optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_interval(20)
                .with_max_depth(Some(3))
                .with_max_width(Some(16)),
        ))
        .init();
    let model = ExpandableClassifier::new(network, optimizer);

    let result = SupervisedTraining::new(
        &out,
        loader(items(1000, 0), 100),
        loader(items(500, 1), 500),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()))
    .with_default_checkpointers()
    .num_epochs(epochs)
    // The Learner's optimiser is a placeholder: ExpandableClassifier steps itself. Its
    // learning rate is the natural-gradient step size.
    .launch(Learner::new(model, SgdConfig::new().init(), 0.1));
    if let Some(error) = result.error {
        return Err(format!("training failed: {error:?}").into());
    }
    let network = &result.model.network;
    for event in &network.expansion_history().events {
        println!(
            "step {:>5}  {} at layer {}: +{} neurons (Δη′ {:.2e})",
            event.step, event.kind, event.layer, event.neurons, event.gain
        );
    }
    println!("final {}", network.architecture());
    println!("checkpoints in {}", out.join("checkpoint").display());
    Ok(())
}
