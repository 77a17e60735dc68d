//! 1-D regression, the method's first experiment: 50 points of a smooth random function, a
//! network that starts with one hidden neuron and adds neurons where the residual needs them.
//!
//! Prints the growth timeline, the training and held-out (1000 points) mean squared error, and
//! the error of a one-neuron network trained the same way without growth; writes
//! `report.json` (and, with the `plot` feature, `growth.svg`/`.png` and `fit.svg`/`.png`: the
//! data, the fitted curve and where each neuron sits) to the output directory.
//!
//! ```text
//! cargo run --release --features plot --example regression_1d -- [--steps N] [--seed N] [--out DIR]
//! ```
//!
//! Defaults: 2000 full-batch steps, seed 0, output in `regression_1d-out/`.

use std::time::Instant;

use burn::tensor::Tensor;
use burn_senn::datasets::RandomRationalTarget;
use burn_senn::report::{GrowthReport, Task};
use burn_senn::{
    backends, ExpandableMlp, ExpandableMlpConfig, ExpansionConfig, FisherEstimate,
    NaturalGradientConfig,
};

mod common;
use common::{options, Options};

fn mse(outputs: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (outputs - targets).square().mean()
}

/// Trains `network` for `steps` full-batch steps, growing it when `grow`; records the report.
fn train(
    mut network: ExpandableMlp,
    grow: bool,
    (x, y): (Tensor<2>, Tensor<2>),
    (x_test, y_test): (Tensor<2>, Tensor<2>),
    steps: usize,
    seed: u64,
) -> Result<(ExpandableMlp, GrowthReport), Box<dyn std::error::Error>> {
    let mut report = GrowthReport::new(Task::Regression, backends::default_name(), &network)
        .with_examples(50, 1000);
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.9)
        .with_expansion(grow.then(|| {
            ExpansionConfig::new()
                .with_seed(seed)
                .with_grow_depth(false)
        }))
        .init();
    let start = Instant::now();
    for step in 0..steps {
        let targets = y.clone();
        let half_mse =
            optimizer.train_step(1.0, &mut network, x.clone(), |out| mse(out, targets) * 0.5)?;
        if step % 10 == 0 || step + 1 == steps {
            let test_mse = mse(network.forward(x_test.clone()), y_test.clone());
            let test_mse = test_mse.into_scalar::<f64>();
            report.record(step as u64 + 1, 2.0 * half_mse, Some(test_mse), &network);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let train_mse = mse(network.forward(x), y).into_scalar::<f64>();
    let test_mse = mse(network.forward(x_test), y_test).into_scalar::<f64>();
    report.epochs = steps;
    report.finish(
        &network,
        train_mse,
        Some(test_mse),
        elapsed,
        optimizer.expansion_time().as_secs_f64(),
    );
    Ok((network, report))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::log_growth();
    let Options { steps, seed, out } = options(2000, Some("regression_1d-out"))?;
    let backend = backends::default_name();
    let device = backends::device(backend)?.autodiff();
    device.seed(seed);

    let target = RandomRationalTarget::new(&[16, 16, 16, 16], seed);
    let train_set = target.sample(50, seed + 1);
    let test_set = target.sample(1000, seed + 2);
    let data = (train_set.inputs(&device), train_set.target_tensor(&device));
    let held_out = (test_set.inputs(&device), test_set.target_tensor(&device));

    let start = ExpandableMlpConfig::new(1, 1).with_hidden(vec![1]);
    let (network, report) = train(
        start.init(&device),
        true,
        data.clone(),
        held_out.clone(),
        steps,
        seed,
    )?;
    println!("{}", report.summary());
    device.seed(seed);
    let (_, fixed) = train(start.init(&device), false, data, held_out, steps, seed)?;
    println!(
        "one neuron, no growth: train mse {:.4e}  test mse {:.4e}",
        fixed.train_metric,
        fixed.test_metric.unwrap_or(f64::NAN)
    );

    std::fs::create_dir_all(&out)?;
    report.save_json(out.join("report.json"))?;
    #[cfg(feature = "plot")]
    {
        report.plot(out.join("growth.svg"))?;
        report.plot(out.join("growth.png"))?;
        let points: Vec<(f64, f64)> = train_set
            .features
            .iter()
            .zip(&train_set.targets)
            .map(|(x, y)| (x[0] as f64, y[0] as f64))
            .collect();
        let (low, high) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| {
                (lo.min(*x), hi.max(*x))
            });
        let grid: Vec<f64> = (0..400)
            .map(|i| low + (high - low) * i as f64 / 399.0)
            .collect();
        let grid_tensor = Tensor::<1>::from_floats(
            grid.iter()
                .map(|x| *x as f32)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        )
        .reshape([grid.len(), 1]);
        let predictions = network
            .forward(grid_tensor)
            .into_data()
            .try_to_vec::<f32>()?;
        let curve: Vec<(f64, f64)> = grid
            .iter()
            .zip(predictions)
            .map(|(x, y)| (*x, y as f64))
            .collect();
        // Where each first-layer neuron's pre-activation w·x + b crosses zero.
        let first = &network.layers()[0];
        let weights = first.weight.val().into_data().try_to_vec::<f32>()?;
        let biases = first.bias.val().into_data().try_to_vec::<f32>()?;
        let neurons: Vec<f64> = weights
            .iter()
            .zip(&biases)
            .map(|(w, b)| -(*b as f64) / *w as f64)
            .collect();
        burn_senn::plot::plot_fit_1d(out.join("fit.svg"), &points, &curve, &neurons)?;
        burn_senn::plot::plot_fit_1d(out.join("fit.png"), &points, &curve, &neurons)?;
        println!(
            "wrote {0}/report.json, {0}/growth.svg, {0}/growth.png, {0}/fit.svg and {0}/fit.png",
            out.display()
        );
    }
    #[cfg(not(feature = "plot"))]
    {
        let _ = network;
        println!(
            "wrote {}/report.json (build with --features plot for the figures)",
            out.display()
        );
    }
    Ok(())
}
