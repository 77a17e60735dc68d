//! `ExpandableMlp` as the head of a user model: a burn `Linear` layer with a tanh in front
//! learns features, the expandable head grows on top of them. The front is trained with
//! burn's Adam, the head with the natural-gradient optimiser, from one backward pass.
//!
//! ```text
//! cargo run --release --example custom_model -- [--steps N] [--seed N]
//! ```

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Tensor;
use burn_senn::datasets::ClassificationSet;
use burn_senn::{
    backends, ExpandableMlp, ExpandableMlpConfig, ExpansionConfig, FisherEstimate,
    NaturalGradientConfig,
};

mod common;
use common::{options, Options};

/// A user model: any burn layers, with an `ExpandableMlp` as one of its fields.
#[derive(Module, Debug)]
struct Model {
    front: Linear,
    head: ExpandableMlp,
}

impl Model {
    fn features(&self, input: Tensor<2>) -> Tensor<2> {
        self.front.forward(input).tanh()
    }

    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.features(input))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Options { steps, seed, .. } = options(300, None)?;
    let backend = backends::default_name();
    let device = backends::device(backend)?.autodiff();
    device.seed(seed);
    let train = ClassificationSet::two_moons(200, 0.2, seed);
    let test = ClassificationSet::two_moons(500, 0.2, seed + 1000);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));

    let mut model = Model {
        front: LinearConfig::new(2, 8).init(&device),
        head: ExpandableMlpConfig::new(8, 2).init(&device),
    };
    let start = model.head.architecture();
    let fisher = FisherEstimate::GaussNewton;
    let mut adam = AdamConfig::new().init();
    let mut natural_gradient = NaturalGradientConfig::new()
        .with_fisher(fisher.clone())
        .with_momentum(0.0)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_seed(seed)
                .with_max_depth(Some(2))
                .with_max_width(Some(16)),
        ))
        .init();
    let loss = CrossEntropyLossConfig::new().init(&device);

    for step in 0..steps {
        // The head's forward pass records what its curvature needs.
        let (logits, capture) = model.head.forward_capture(model.features(x.clone()));
        let value = loss.forward(logits, y.clone());
        let loss_value = value.clone().into_scalar::<f64>();
        let mut grads = value.backward();
        // Split the gradients: the front's for Adam, the rest (with the head's curvature
        // statistics) for the natural-gradient optimiser, which may grow the head.
        let front_grads = GradientsParams::from_module(&mut grads, &model.front);
        let mut head_grads = capture.into_gradients(&model.head, grads, &fisher)?;
        let Model { front, head } = model;
        model = Model {
            front: adam.step(1e-2, front, front_grads),
            head: natural_gradient.step(0.1, head, &mut head_grads),
        };
        if step % 50 == 0 {
            println!(
                "step {step:>4}  loss {loss_value:.4}  head {}",
                model.head.architecture()
            );
        }
    }

    let model = model.valid();
    let inner = device.clone().inner();
    let accuracy = |set: &ClassificationSet| {
        common::accuracy(model.forward(set.inputs(&inner)), set.label_tensor(&inner))
    };
    println!(
        "head grew from {start} to {} in {} expansions",
        model.head.architecture(),
        model.head.expansion_history().events.len()
    );
    println!(
        "train accuracy {:.4}  test accuracy {:.4}",
        accuracy(&train),
        accuracy(&test)
    );
    Ok(())
}
