//! Half-moons, the method's second experiment: 200 noisy points of two interleaving half
//! circles, a network that starts with no hidden layer at all and grows layers and neurons.
//!
//! Run with `cargo run --release --example quickstart -- [steps] [seed]`.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};
use burn_senn::datasets::ClassificationSet;
use burn_senn::{ExpandableMlpConfig, ExpansionConfig, FisherEstimate, NaturalGradientConfig};

fn accuracy(logits: Tensor<2>, labels: Tensor<1, Int>) -> f64 {
    let predictions = logits.argmax(1).squeeze_dim::<1>(1);
    predictions
        .equal(labels)
        .float()
        .mean()
        .into_scalar::<f64>()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "burn_senn=info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(400);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let lr: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let env = |k: &str, d: f64| std::env::var(k).map(|v| v.parse().unwrap()).unwrap_or(d);
    let device = Device::default().autodiff();
    device.seed(seed);

    let train = ClassificationSet::two_moons(200, 0.3, seed);
    let test = ClassificationSet::two_moons(500, 0.3, seed + 1000);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));
    let (x_test, y_test) = (test.inputs(&device), test.label_tensor(&device));

    let mut network = ExpandableMlpConfig::new(2, 2).init(&device);
    let fisher = if std::env::var("SAMPLED").is_ok() {
        FisherEstimate::Sampled {
            distribution: burn_senn::OutputDistribution::Categorical,
        }
    } else {
        FisherEstimate::GaussNewton
    };
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(fisher)
        .with_momentum(env("MOM", 0.9))
        .with_kl_clip(Some(env("KL", 1e-2)))
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_seed(seed)
                .with_tau(env("TAU", 2.0))
                .with_alpha(env("ALPHA", 2.5e-3))
                .with_depth_cost(env("DCOST", 2.0))
                .with_max_depth(Some(env("MAXD", 3.0) as usize))
                .with_max_width(Some(16)),
        ))
        .init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    let start = Instant::now();
    for step in 0..steps {
        let labels = y.clone();
        let (next, value) = optimizer.train_step(lr, network, x.clone(), |logits| {
            loss.forward(logits, labels)
        })?;
        network = next;
        if step % 50 == 0 {
            println!(
                "step {step:>4}  loss {value:.4}  {}",
                network.architecture()
            );
        }
    }
    let elapsed = start.elapsed();
    let network = network.valid();
    println!(
        "final {}  train acc {:.3}  test acc {:.3}  events {}  {:.2} s",
        network.architecture(),
        accuracy(network.forward(x.inner()), y.inner()),
        accuracy(network.forward(x_test.inner()), y_test.inner()),
        network.expansion_history().events.len(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
