//! Growth through burn's `Learner`: `SupervisedTraining` with accuracy and loss metrics,
//! checkpoints and burn's progress display. The natural-gradient optimiser travels inside
//! `ExpandableClassifier` and grows the network during `optimize`; the Learner's own
//! optimiser is never used on it.
//!
//! ```text
//! cargo run --release --features train --example learner -- [--epochs N] [--out DIR] [--resume]
//! ```
//!
//! Defaults: 20 epochs, artifacts (checkpoints, logs) in `learner-out/`, the final network in
//! `learner-out/final.bpk` (and `final.json`). `--resume` continues an interrupted run from the
//! newest checkpoint in `DIR/checkpoint/`: a grown network is rebuilt in the checkpoint's shape,
//! and its weights, curvature, step count and expansion history come back with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::{OptimizerRecord, SgdConfig};
use burn::store::ModuleRecord;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use burn_senn::datasets::ClassificationSet;
use burn_senn::{
    backends, ClassificationBatch, ClassificationItem, ExpandableBatcher, ExpandableClassifier,
    ExpandableMlpConfig, ExpansionConfig, FisherEstimate, NaturalGradientConfig,
};

fn items(count: usize, seed: u64) -> Vec<ClassificationItem> {
    ClassificationSet::two_moons(count, 0.25, seed).items()
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

/// The newest complete checkpoint in `directory`: its epoch and model file. burn writes a
/// checkpoint's files (model, optimiser, scheduler) one after the other, so a run killed while
/// saving can leave the newest one without its later files; it is passed over for the one
/// before.
fn newest_checkpoint(directory: &Path) -> Result<(usize, PathBuf), Box<dyn std::error::Error>> {
    let file = |name: &str, epoch: usize| directory.join(format!("{name}-{epoch}.bpk"));
    let mut epochs = Vec::new();
    let mut any_scheduler = false;
    for entry in std::fs::read_dir(directory)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        any_scheduler |= name.starts_with("scheduler-");
        if let Some(epoch) = name
            .strip_prefix("model-")
            .and_then(|n| n.strip_suffix(".bpk"))
        {
            epochs.extend(epoch.parse::<usize>().ok());
        }
    }
    epochs.sort_unstable();
    let complete = |epoch: usize| {
        let scheduler = file("scheduler", epoch);
        ModuleRecord::load(file("model", epoch)).is_ok()
            && OptimizerRecord::load(file("optim", epoch)).is_ok()
            && if scheduler.exists() {
                LrSchedulerRecord::load(&scheduler).is_ok()
            } else {
                !any_scheduler
            }
    };
    let epoch = epochs.into_iter().rev().find(|&epoch| complete(epoch));
    epoch
        .map(|epoch| (epoch, file("model", epoch)))
        .ok_or_else(|| format!("no complete checkpoint in {}", directory.display()).into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut epochs, mut out, mut resume) = (20usize, PathBuf::from("learner-out"), false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--resume" {
            resume = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--epochs" => epochs = value.parse()?,
            "--out" => out = PathBuf::from(value),
            _ => {
                return Err(format!("unknown option {flag}; use --epochs, --out, --resume").into())
            }
        }
    }
    let backend = backends::default_name();
    let device = backends::device(backend)?;
    device.seed(0);

    // A resumed run builds the network in the shape it had grown to; the Learner then loads
    // the checkpoint's weights, curvature and history into it.
    let base = ExpandableMlpConfig::new(2, 2);
    let (config, checkpoint) = if resume {
        let (epoch, path) = newest_checkpoint(&out.join("checkpoint"))?;
        let config = base.with_shapes_from_record(&path, "network.")?;
        println!(
            "resuming after epoch {epoch} with hidden layers {:?}",
            config.hidden
        );
        (config, Some(epoch))
    } else {
        (base, None)
    };
    let network = config.init(&device);
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
    // The Learner cannot return an error for a bad example, so check them before it starts.
    let (train, valid) = (items(1000, 0), items(500, 1));
    network.check_classification_items(&train)?;
    network.check_classification_items(&valid)?;
    let model = ExpandableClassifier::new(network, optimizer);

    let mut training = SupervisedTraining::new(&out, loader(train, 100), loader(valid, 500))
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_default_checkpointers()
        .num_epochs(epochs);
    if let Some(epoch) = checkpoint {
        training = training.checkpoint(epoch);
    }
    // The Learner's optimiser is a placeholder: ExpandableClassifier steps itself. Its
    // learning rate is the natural-gradient step size.
    let result = training.launch(Learner::new(model, SgdConfig::new().init(), 0.1));
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
    let saved = network.save(out.join("final"))?;
    println!(
        "checkpoints in {}, final network in {}",
        out.join("checkpoint").display(),
        saved.weights.display()
    );
    Ok(())
}
