//! Grow a network by hand while it trains: start linear, add a layer, add neurons, and see
//! that the loss does not move at the moment of growth but falls afterwards.
//!
//! Run with `cargo run --release --example quickstart`.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use burn_senn::{ExpandableMlp, ExpandableMlpConfig};

/// Mean squared error of the network on (x, y).
fn loss(network: &ExpandableMlp, x: &Tensor<2>, y: &Tensor<2>) -> Tensor<1> {
    (network.forward(x.clone()) - y.clone()).square().mean()
}

fn train(network: ExpandableMlp, x: &Tensor<2>, y: &Tensor<2>, steps: usize) -> ExpandableMlp {
    let mut optimizer = AdamConfig::new().init();
    (0..steps).fold(network, |network, _| {
        let grads = GradientsParams::from_grads(loss(&network, x, y).backward(), &network);
        optimizer.step(1e-2, network, grads)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(300);
    let device = Device::default().autodiff();
    device.seed(0);

    // A smooth 2-D target that no linear map can fit.
    let x = Tensor::<2>::random([256, 2], Distribution::Normal(0.0, 1.0), &device);
    let y = (x.clone().slice([0..256, 0..1]) * 2.0).sin() * x.clone().slice([0..256, 1..2]).cos();

    let mut network = ExpandableMlpConfig::new(2, 1).init(&device);
    println!("start          {:>28}", network.architecture().to_string());

    network = train(network, &x, &y, steps);
    report("trained", &network, &x, &y);

    let before = loss(&network, &x, &y).into_scalar::<f32>();
    network = network.insert_identity_layer(0)?;
    report("inserted layer", &network, &x, &y);
    network = network.widen_random(0, 14)?;
    report("widened", &network, &x, &y);
    let after = loss(&network, &x, &y).into_scalar::<f32>();
    println!(
        "loss change at growth: {:e} (relative)",
        (after - before).abs() / before
    );

    network = train(network, &x, &y, steps);
    report("trained", &network, &x, &y);

    let directory = std::env::temp_dir().join("burn-senn-quickstart");
    std::fs::create_dir_all(&directory)?;
    let files = network.save(directory.join("model"))?;
    let loaded = ExpandableMlp::load(&files.weights, &device)?;
    println!(
        "saved to {} and loaded back as {}",
        files.weights.display(),
        loaded.architecture()
    );
    Ok(())
}

fn report(stage: &str, network: &ExpandableMlp, x: &Tensor<2>, y: &Tensor<2>) {
    let mse = loss(network, x, y).into_scalar::<f32>();
    println!(
        "{stage:<14} {:>28}  mse {mse:.5}",
        network.architecture().to_string()
    );
}
