//! Handwritten digits (8×8 pixels, 1797 images, shipped in `data/`): a network that starts
//! with one hidden layer of 10 neurons and grows, against a fixed network of the final size
//! trained from scratch with burn's Adam for the same number of steps.
//!
//! ```text
//! cargo run --release --example digits -- [--steps N] [--seed N]
//! ```
//!
//! Defaults: 300 full-batch steps on 80% of the images, seed 0; the other 20% are held out.

use std::io::Read;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use burn_senn::datasets::ClassificationSet;
use burn_senn::report::{GrowthReport, Task};
use burn_senn::{
    backends, ExpandableMlp, ExpandableMlpConfig, ExpansionConfig, FisherEstimate,
    NaturalGradientConfig,
};

mod common;
use common::{options, Options};

/// The digits, pixels scaled to [0, 1].
fn digits() -> Result<ClassificationSet, Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
    let mut csv = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut csv)?;
    let mut set = ClassificationSet {
        features: Vec::new(),
        labels: Vec::new(),
    };
    for line in csv.lines().filter(|l| !l.is_empty()) {
        let values: Vec<f32> = line.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let (pixels, label) = values.split_at(64);
        set.features.push(pixels.iter().map(|p| p / 16.0).collect());
        set.labels.push(label[0] as usize);
    }
    Ok(set)
}

fn accuracy(network: &ExpandableMlp, set: &ClassificationSet, device: &Device) -> f64 {
    common::accuracy(
        network.forward(set.inputs(device)),
        set.label_tensor(device),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Options { steps, seed, .. } = options(300, None)?;
    let backend = backends::default_name();
    let device = backends::device(backend)?.autodiff();
    device.seed(seed);
    let (train, test) = digits()?.split(0.2, seed);
    let (x, y): (Tensor<2>, Tensor<1, Int>) = (train.inputs(&device), train.label_tensor(&device));
    let loss = CrossEntropyLossConfig::new().init(&device);

    // Self-expanding, from 10 hidden neurons.
    let mut network = ExpandableMlpConfig::new(64, 10)
        .with_hidden(vec![10])
        .init(&device);
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_seed(seed)
                .with_max_depth(Some(3))
                .with_max_width(Some(128)),
        ))
        .init();
    let mut report = GrowthReport::new(Task::Classification, backend, &network)
        .with_examples(train.len(), test.len());
    let start = Instant::now();
    for step in 0..steps {
        let labels = y.clone();
        let value = optimizer.train_step(0.1, &mut network, x.clone(), |logits| {
            loss.forward(logits, labels)
        })?;
        report.record(step as u64 + 1, value, None, &network);
    }
    let grown = network.valid();
    let inner = device.clone().inner();
    report.epochs = steps;
    report.finish(
        &grown,
        accuracy(&grown, &train, &inner),
        Some(accuracy(&grown, &test, &inner)),
        start.elapsed().as_secs_f64(),
        optimizer.expansion_time().as_secs_f64(),
    );
    println!("{}", report.summary());

    // A fixed network of the final size, from scratch, with Adam.
    device.seed(seed);
    let mut fixed = ExpandableMlpConfig::new(64, 10)
        .with_hidden(grown.hidden_widths())
        .init(&device);
    let mut adam = AdamConfig::new().init();
    let start = Instant::now();
    for _ in 0..steps {
        let value = loss.forward(fixed.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(value.backward(), &fixed);
        fixed = adam.step(1e-2, fixed, grads);
    }
    let fixed = fixed.valid();
    println!(
        "fixed {} with Adam: train accuracy {:.4}  test accuracy {:.4}  ({:.2} s)",
        fixed.architecture(),
        accuracy(&fixed, &train, &inner),
        accuracy(&fixed, &test, &inner),
        start.elapsed().as_secs_f64()
    );
    println!(
        "test accuracy: self-expanding {:.4}, fixed final size {:.4}",
        report.test_metric.unwrap_or(f64::NAN),
        accuracy(&fixed, &test, &inner)
    );
    Ok(())
}
