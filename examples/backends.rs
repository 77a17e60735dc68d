//! The same growth run on any backend, chosen by a flag. The backends this build has depend
//! on the crate's features (`flex` by default; `ndarray`, `wgpu`, `cuda` on request); runs on
//! different backends agree within float tolerance.
//!
//! ```text
//! cargo run --release --features wgpu --example backends -- --backend wgpu [--steps N]
//! ```

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Tensor;
use burn_senn::datasets::ClassificationSet;
use burn_senn::{
    backends, ExpandableMlpConfig, ExpansionConfig, FisherEstimate, NaturalGradientConfig,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut backend, mut steps) = (backends::available()[0].to_string(), 120usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backend" => backend = value,
            "--steps" => steps = value.parse()?,
            _ => return Err(format!("unknown option {flag}; use --backend, --steps").into()),
        }
    }
    let device = backends::device(&backend)?.autodiff();

    let train = ClassificationSet::two_moons(200, 0.3, 0);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));
    // Each backend's generator draws other numbers from the same seed, so the initial weights
    // are drawn on one backend for every run (burn draws them lazily, at their first use: the
    // forward pass below) and then moved to the chosen one.
    let first = backends::device(backends::available()[0])?;
    first.seed(0);
    let initial = ExpandableMlpConfig::new(2, 2).init(&first);
    let _ = initial.forward(Tensor::zeros([1, 2], &first));
    let mut network = initial.to_device(&device).train();
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_max_depth(Some(2))
                .with_max_width(Some(8)),
        ))
        .init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    let mut last = f64::NAN;
    for _ in 0..steps {
        let labels = y.clone();
        let value = optimizer.train_step(0.1, &mut network, x.clone(), |logits| {
            loss.forward(logits, labels)
        })?;
        last = value;
    }
    let network = network.valid();
    let outputs = network.forward(x.inner()).into_data().try_to_vec::<f32>()?;
    let mean_output = outputs.iter().map(|v| *v as f64).sum::<f64>() / outputs.len() as f64;
    println!("backend {backend}");
    println!("architecture {}", network.architecture());
    println!("expansions {}", network.expansion_history().events.len());
    println!("loss {last:.6}");
    println!("mean output {mean_output:.6}");
    Ok(())
}
