//! Grown networks train: gradients reach every parameter, inside user models too.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use burn_senn::{ExpandableMlp, ExpandableMlpConfig};

use crate::common::{cpu_device, normal, rng};

/// For every trainable float parameter: its id, its shape, and the shape of its gradient in
/// `grads` (if any).
struct GradientShapes<'a> {
    grads: &'a GradientsParams,
    found: Vec<(ParamId, Vec<usize>, Option<Vec<usize>>)>,
}

impl ModuleVisitor for GradientShapes<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.is_require_grad() {
            let grad = self.grads.get::<D>(param.id).map(|g| g.dims().to_vec());
            self.found
                .push((param.id, param.val().dims().to_vec(), grad));
        }
    }
}

fn gradient_shapes<M: Module>(
    module: &M,
    grads: &GradientsParams,
) -> Vec<(ParamId, Vec<usize>, Option<Vec<usize>>)> {
    let mut visitor = GradientShapes {
        grads,
        found: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.found
}

fn grown_network(device: &Device) -> ExpandableMlp {
    ExpandableMlpConfig::new(3, 2)
        .with_hidden(vec![2])
        .init(device)
        .widen_random(0, 3)
        .and_then(|n| n.insert_identity_layer(1))
        .and_then(|n| n.insert_identity_layer(0))
        .and_then(|n| n.widen_random(1, 2))
        .expect("growth within limits")
}

/// Every parameter of the network that should train (W, b, v, c, l of each hidden layer; W, b
/// of the output layer) tracks gradients and gets one of its shape.
fn assert_gradients_reach_every_parameter(network: &ExpandableMlp, device: &Device) {
    let mut rng = rng(11);
    let input = normal(&mut rng, [32, 3], 1.0, device);
    let target = normal(&mut rng, [32, 2], 1.0, device);
    let loss = (network.forward(input) - target).square().mean();
    let grads = GradientsParams::from_grads(loss.backward(), network);

    let shapes = gradient_shapes(network, &grads);
    assert_eq!(
        shapes.len(),
        5 * network.depth() + 2,
        "trainable parameters"
    );
    for (id, shape, grad) in shapes {
        assert_eq!(
            grad,
            Some(shape),
            "parameter {id} has no gradient of its shape"
        );
    }
}

#[test]
fn gradients_reach_every_parameter_after_growth() {
    let device = cpu_device().autodiff();
    let network = grown_network(&device);
    assert_eq!(network.architecture().hidden, vec![3, 7, 5]);
    assert_gradients_reach_every_parameter(&network, &device);

    // The zero outgoing weights of the newest neurons get a non-zero gradient: that is the
    // direction growth opened up.
    let mut rng = rng(12);
    let input = normal(&mut rng, [32, 3], 1.0, &device);
    let grads = GradientsParams::from_grads(network.forward(input).sum().backward(), &network);
    let fan_out = grads
        .get::<2>(network.layers()[2].weight.id)
        .expect("output weights have a gradient");
    let new_rows = fan_out.slice([5..7, 0..2]).abs().sum().into_scalar::<f32>();
    assert!(new_rows > 0.0);
}

#[test]
fn network_grown_without_autodiff_trains_after_train_and_fork() {
    // Parameters created on a device without autodiff (as growth does there) are marked
    // trainable; `train()` makes them track gradients, as it does burn's own parameters.
    let device = cpu_device().autodiff();
    let network = grown_network(&cpu_device()).train().fork(&device);
    assert_gradients_reach_every_parameter(&network, &device);
}

/// A user model: a burn `Linear` front, then an `ExpandableMlp` head.
#[derive(Module, Debug)]
struct UserModel {
    front: Linear,
    head: ExpandableMlp,
}

impl UserModel {
    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.front.forward(input).tanh())
    }
}

fn mse(model: &UserModel, input: &Tensor<2>, target: &Tensor<2>) -> Tensor<1> {
    (model.forward(input.clone()) - target.clone())
        .square()
        .mean()
}

#[test]
fn nested_model_trains_with_adam_after_growth() {
    let device = cpu_device().autodiff();
    let mut rng = rng(5);
    let input = normal(&mut rng, [64, 4], 1.0, &device);
    let target = input.clone().slice([0..64, 0..1]).sin() * 2.0;
    let mut model = UserModel {
        front: LinearConfig::new(4, 6).init(&device),
        head: ExpandableMlpConfig::new(6, 1)
            .with_hidden(vec![2])
            .init(&device),
    };
    let mut optimizer = AdamConfig::new().init();
    let mut train = |model: UserModel, steps: usize| {
        (0..steps).fold(model, |model, _| {
            let grads =
                GradientsParams::from_grads(mse(&model, &input, &target).backward(), &model);
            optimizer.step(1e-2, model, grads)
        })
    };

    model = train(model, 5);
    let loss_before_growth = mse(&model, &input, &target).into_scalar::<f32>();
    model.head = model
        .head
        .widen_random(0, 4)
        .and_then(|head| head.insert_identity_layer(1))
        .expect("growth within limits");
    let loss_after_growth = mse(&model, &input, &target).into_scalar::<f32>();
    assert!((loss_after_growth - loss_before_growth).abs() <= 1e-5 * loss_before_growth);

    model = train(model, 30);
    let loss_after_training = mse(&model, &input, &target).into_scalar::<f32>();
    assert_eq!(model.head.architecture().hidden, vec![6, 6]);
    assert!(loss_after_training.is_finite());
    assert!(
        loss_after_training < loss_after_growth,
        "{loss_after_training} !< {loss_after_growth}"
    );
}
