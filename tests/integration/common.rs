//! Helpers shared by the integration tests.

use std::collections::HashSet;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use burn_senn::{ExpandableMlp, GrowthError, NewLayer, NewNeurons, RationalParams};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The default CPU device: Flex when compiled in, else burn's default.
pub fn cpu_device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex();
    #[cfg(not(feature = "flex"))]
    return Device::default();
}

/// A tensor of standard normal draws from `rng`, scaled by `scale`.
pub fn normal<const D: usize>(
    rng: &mut StdRng,
    shape: [usize; D],
    scale: f32,
    device: &Device,
) -> Tensor<D> {
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| standard_normal(rng) * scale).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn standard_normal(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

/// max |a − b| / max |a|: the relative change of an output.
pub fn relative_change(before: &Tensor<2>, after: &Tensor<2>) -> f32 {
    let change = (after.clone() - before.clone())
        .abs()
        .max()
        .into_scalar::<f32>();
    let scale = before.clone().abs().max().into_scalar::<f32>();
    change / scale.max(f32::MIN_POSITIVE)
}

/// One growth step of a random sequence.
#[derive(Debug, Clone, Copy)]
pub enum Growth {
    /// Widen hidden layer `layer % depth` by `k` random neurons.
    Widen { layer: usize, k: usize },
    /// Insert a layer at `position % (depth + 1)`, identity or with a random basis and bias.
    Insert { position: usize, random_basis: bool },
}

/// Applies `growth` with parameters drawn from `rng`; `None` when it does not apply (widening
/// a network without hidden layers).
pub fn apply(
    network: &ExpandableMlp,
    growth: Growth,
    rng: &mut StdRng,
    device: &Device,
) -> Option<Result<ExpandableMlp, GrowthError>> {
    match growth {
        Growth::Widen { layer, k } => {
            if network.depth() == 0 {
                return None;
            }
            let layer = layer % network.depth();
            let d_input = network.layers()[layer].d_input();
            let neurons = random_neurons(rng, d_input, k, device);
            Some(network.widen(layer, neurons))
        }
        Growth::Insert {
            position,
            random_basis,
        } => {
            let position = position % (network.depth() + 1);
            let width = network.layers()[position].d_input();
            let layer = if random_basis {
                random_layer(rng, width, device)
            } else {
                NewLayer::identity(width, device)
            };
            Some(network.insert_layer(position, layer))
        }
    }
}

/// k neurons with N(0, 1) fan-in weights, biases and activation parameters.
pub fn random_neurons(rng: &mut StdRng, d_input: usize, k: usize, device: &Device) -> NewNeurons {
    NewNeurons {
        weight: normal(rng, [d_input, k], 1.0, device),
        bias: normal(rng, [k], 1.0, device),
        activation: RationalParams {
            odd: normal(rng, [k], 1.0, device),
            even: normal(rng, [k], 1.0, device),
            linear: normal(rng, [k], 1.0, device),
        },
    }
}

/// B = I + E with E ~ N(0, 0.3²/width), well conditioned; s ~ N(0, 1).
pub fn random_layer(rng: &mut StdRng, width: usize, device: &Device) -> NewLayer {
    let perturbation = normal(rng, [width, width], 0.3 / (width as f32).sqrt(), device);
    NewLayer {
        basis: Tensor::eye(width, device) + perturbation,
        bias: normal(rng, [width], 1.0, device),
    }
}

/// A seeded random number generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Redraws every trainable parameter from `rng`: weights N(0, 1/d_input), vectors N(0, 1).
/// Burn's own initialisers draw from a generator shared by all tests running at once; this
/// makes a test's network depend on its seed alone.
pub fn reseeded(network: ExpandableMlp, rng: &mut StdRng) -> ExpandableMlp {
    struct Redraw<'a> {
        rng: &'a mut StdRng,
        trainable: HashSet<ParamId>,
    }
    impl ModuleMapper for Redraw<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if !self.trainable.contains(&param.id) {
                return param;
            }
            let rng = &mut *self.rng;
            param.map(|value| {
                let dims = value.dims();
                let scale = if D == 2 {
                    1.0 / (dims[0] as f32).sqrt()
                } else {
                    1.0
                };
                let values: Vec<f32> = (0..value.shape().num_elements())
                    .map(|_| standard_normal(rng) * scale)
                    .collect();
                let redrawn = Tensor::from_data(TensorData::new(values, dims), &value.device());
                if value.is_require_grad() {
                    redrawn.require_grad()
                } else {
                    redrawn
                }
            })
        }
    }
    // Not `is_require_grad`: on a device without autodiff no parameter tracks gradients.
    let trainable = network
        .layers()
        .iter()
        .flat_map(|layer| {
            let activation = layer.activation.iter();
            [layer.weight.id, layer.bias.id]
                .into_iter()
                .chain(activation.flat_map(|a| [a.odd.id, a.even.id, a.linear.id]))
        })
        .collect();
    network.map(&mut Redraw { rng, trainable })
}

/// Multiplies one parameter, found by id, by a factor.
pub struct Scale {
    pub id: ParamId,
    pub factor: f32,
}

impl ModuleMapper for Scale {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if param.id == self.id {
            let factor = self.factor;
            param.map(|t| t * factor)
        } else {
            param
        }
    }
}
