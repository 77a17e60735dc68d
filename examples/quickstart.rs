//! Half-moons, the method's second experiment: 200 noisy points of two interleaving half
//! circles, a network that starts with no hidden layer at all and grows layers and neurons
//! where the natural expansion score says they help.
//!
//! Prints the growth timeline and the final metrics, and writes `report.json` (and, with the
//! `plot` feature, `growth.svg` and `growth.png`) to the output directory.
//!
//! ```text
//! cargo run --release --features plot --example quickstart -- [--steps N] [--seed N] [--out DIR]
//! ```
//!
//! Defaults: 400 full-batch steps, seed 0, output in `quickstart-out/`.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn_senn::datasets::ClassificationSet;
use burn_senn::report::{GrowthReport, Task};
use burn_senn::{
    backends, ExpandableMlpConfig, ExpansionConfig, FisherEstimate, NaturalGradientConfig,
};

mod common;
use common::{accuracy, options, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::log_growth();
    let Options { steps, seed, out } = options(400, Some("quickstart-out"))?;
    let backend = backends::default_name();
    let device = backends::device(backend)?.autodiff();
    device.seed(seed);

    let train = ClassificationSet::two_moons(200, 0.3, seed);
    let test = ClassificationSet::two_moons(500, 0.3, seed + 1000);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));
    let (x_test, y_test) = (
        test.inputs(&device).inner(),
        test.label_tensor(&device).inner(),
    );

    // No hidden layer at first; at most three of at most 16 neurons.
    let mut network = ExpandableMlpConfig::new(2, 2).init(&device);
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_seed(seed)
                .with_max_depth(Some(3))
                .with_max_width(Some(16)),
        ))
        .init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    let mut report =
        GrowthReport::new(Task::Classification, backend, &network).with_examples(200, 500);

    let start = Instant::now();
    for step in 0..steps {
        let labels = y.clone();
        let value = optimizer.train_step(0.1, &mut network, x.clone(), |logits| {
            loss.forward(logits, labels)
        })?;
        if step % 5 == 0 || step + 1 == steps {
            let test_logits = network.valid().forward(x_test.clone());
            let test_loss = loss
                .forward(test_logits, y_test.clone())
                .into_scalar::<f64>();
            report.record(step as u64 + 1, value, Some(test_loss), &network);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let network = network.valid();
    report.epochs = steps;
    report.finish(
        &network,
        accuracy(network.forward(x.inner()), y.inner()),
        Some(accuracy(network.forward(x_test), y_test)),
        elapsed,
        optimizer.expansion_time().as_secs_f64(),
    );
    println!("{}", report.summary());

    std::fs::create_dir_all(&out)?;
    report.save_json(out.join("report.json"))?;
    #[cfg(feature = "plot")]
    {
        report.plot(out.join("growth.svg"))?;
        report.plot(out.join("growth.png"))?;
        println!(
            "wrote {0}/report.json, {0}/growth.svg and {0}/growth.png",
            out.display()
        );
    }
    #[cfg(not(feature = "plot"))]
    println!(
        "wrote {}/report.json (build with --features plot for the figures)",
        out.display()
    );
    Ok(())
}
