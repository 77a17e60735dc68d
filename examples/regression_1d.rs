//! 1-D regression, the method's first experiment: 50 points of a smooth random function, a
//! network that starts with one hidden neuron and grows where the residual needs it.
//!
//! Run with `cargo run --release --example regression_1d -- [steps] [seed]`.

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use burn_senn::datasets::RandomRationalTarget;
use burn_senn::{ExpandableMlpConfig, ExpansionConfig, NaturalGradientConfig};

fn mse(outputs: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (outputs - targets).square().mean()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let lr: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0.1);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "burn_senn=info".into()),
        )
        .init();
    let device = Device::default().autodiff();
    device.seed(seed);

    let target = RandomRationalTarget::new(&[16, 16, 16, 16], seed);
    let train = target.sample(50, seed + 1);
    let test = target.sample(1000, seed + 2);
    let (x, y) = (train.inputs(&device), train.target_tensor(&device));
    let (x_test, y_test) = (test.inputs(&device), test.target_tensor(&device));

    let env = |k: &str, d: f64| std::env::var(k).map(|v| v.parse().unwrap()).unwrap_or(d);
    let hidden: Vec<usize> = std::env::var("HIDDEN")
        .map(|h| h.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![1]);
    let mut network = ExpandableMlpConfig::new(1, 1)
        .with_hidden(hidden)
        .init(&device);
    let expansion = std::env::var("NOEXP").is_err().then(|| {
        ExpansionConfig::new()
            .with_seed(seed)
            .with_grow_depth(std::env::var("DEPTH").is_ok())
            .with_tau(env("TAU", 2.0))
            .with_alpha(env("ALPHA", 2.5e-3))
    });
    let mut optimizer = NaturalGradientConfig::new()
        .with_expansion(expansion)
        .with_momentum(env("MOM", 0.5))
        .with_damping(env("DAMP", 1e-2))
        .with_kl_clip(Some(env("KL", 1e-2)))
        .with_inverse_period(env("INV", 10.0) as usize)
        .with_fisher(if std::env::var("EMP").is_ok() {
            burn_senn::FisherEstimate::Empirical
        } else {
            burn_senn::FisherEstimate::GaussNewton
        })
        .init();
    let start = Instant::now();
    for step in 0..steps {
        let targets = y.clone();
        let (next, loss) =
            optimizer.train_step(lr, network, x.clone(), |out| mse(out, targets) * 0.5)?;
        network = next;
        if step % 200 == 0
            || std::env::var("TRACE_STEPS").is_ok_and(|r| {
                let v: Vec<usize> = r.split('-').map(|x| x.parse().unwrap()).collect();
                step >= v[0] && step < v[1]
            })
        {
            println!(
                "step {step:>5}  mse {:.3e}  {}",
                2.0 * loss,
                network.architecture()
            );
        }
    }
    let elapsed = start.elapsed();
    let train_mse = mse(network.forward(x), y).into_scalar::<f64>();
    let test_mse = mse(network.forward(x_test), y_test).into_scalar::<f64>();
    let history = network.expansion_history();
    for e in &history.events {
        println!(
            "{:>5} {:>5} layer {} +{}  gain {:.3e} eta {:.3e} lambda {:.3e} round {}",
            e.step, e.kind, e.layer, e.neurons, e.gain, e.eta, e.lambda, e.round
        );
    }
    println!(
        "final {}  train mse {train_mse:.3e}  test mse {test_mse:.3e}  events {}  {:.2} s",
        network.architecture(),
        history.events.len(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
