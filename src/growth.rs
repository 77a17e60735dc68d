//! Growth operations that keep the function of an [`ExpandableMlp`] unchanged.
//!
//! Every parameter that a growth rewrites (a new shape or new values) gets a fresh
//! [`ParamId`](burn::module::ParamId), so that no optimiser applies state kept for the old
//! tensor; parameters left as they were keep their ids and their optimiser state.

use burn::tensor::{Device, Tensor, TensorData};

use crate::activation::{RationalActivation, RationalInit, RationalParams};
use crate::error::GrowthError;
use crate::layer::ExpandableLayer;
use crate::linalg;
use crate::mlp::ExpandableMlp;
use crate::param::{host_values, trainable, value};

/// Pivots below this fraction of the largest entry make a basis count as singular.
const SINGULAR_PIVOT: f64 = 1e-10;

/// The incoming parameters of k new neurons for a hidden layer with `d_input` inputs.
///
/// Their outgoing weights (the next layer's rows for them) start at zero, so adding them does
/// not change the network's output.
#[derive(Debug, Clone)]
pub struct NewNeurons {
    /// Fan-in weights, shape `[d_input, k]`.
    pub weight: Tensor<2>,
    /// Biases, shape `[k]`.
    pub bias: Tensor<1>,
    /// Rational activation parameters, each of shape `[k]`.
    pub activation: RationalParams,
}

impl NewNeurons {
    /// The number of new neurons, k.
    pub fn count(&self) -> usize {
        self.bias.dims()[0]
    }

    /// k neurons for a layer with `d_input` inputs, drawn as the layers of `network` are
    /// initialised (its configured weight, bias and activation initialisers).
    pub fn sample(network: &ExpandableMlp, d_input: usize, k: usize, device: &Device) -> Self {
        let config = &network.config;
        let fans = (Some(d_input), Some(k));
        Self {
            weight: config
                .initializer
                .init_with([d_input, k], fans.0, fans.1, device)
                .val(),
            bias: config
                .bias_initializer
                .init_with([k], fans.0, fans.1, device)
                .val(),
            activation: config.activation.sample(k, device),
        }
    }
}

/// A hidden layer to insert: `y = x·B + s` with an identity activation.
///
/// The layer that consumed `x` before is rewritten to consume `y`: W′ = B⁻¹W and
/// b′ = b − s·W′, so `y·W′ + b′ = x·W + b` and the network's output does not change.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// B, an invertible `[d, d]` matrix, where d is the width feeding the insertion point.
    pub basis: Tensor<2>,
    /// s, shape `[d]`.
    pub bias: Tensor<1>,
}

impl NewLayer {
    /// B = I, s = 0: the new layer passes its input through unchanged, and the layer after it
    /// is left exactly as it was.
    pub fn identity(width: usize, device: &Device) -> Self {
        Self {
            basis: Tensor::eye(width, device),
            bias: Tensor::zeros([width], device),
        }
    }
}

impl ExpandableMlp {
    /// Adds `neurons.count()` neurons to hidden layer `layer`.
    ///
    /// The layer's weight, bias and activation get the new neurons' columns; the next layer
    /// gets zero rows for them. The output is unchanged for every input.
    ///
    /// # Returns
    ///
    /// The widened network, or an error (index out of range, wrong shapes, non-finite values,
    /// above `max_width`). Adding zero neurons returns an unchanged copy.
    pub fn widen(&self, layer: usize, neurons: NewNeurons) -> Result<Self, GrowthError> {
        self.check_widen(layer, &neurons)?;
        let k = neurons.count();
        if k == 0 {
            return Ok(self.clone());
        }
        let mut grown = self.clone();
        let widened = &self.layers[layer];
        let activation = widened
            .activation
            .as_ref()
            .expect("hidden layers have an activation")
            .params();
        grown.layers[layer] = ExpandableLayer {
            weight: trainable(Tensor::cat(vec![value(&widened.weight), neurons.weight], 1)),
            bias: trainable(Tensor::cat(vec![value(&widened.bias), neurons.bias], 0)),
            activation: Some(RationalActivation::new(concat_params(
                activation,
                neurons.activation,
            ))),
            curvature: widened.curvature.widen_outputs(k),
        };

        let consumer = &self.layers[layer + 1];
        let weight = value(&consumer.weight);
        let zeros = Tensor::zeros([k, consumer.d_output()], &weight.device());
        grown.layers[layer + 1].weight = trainable(Tensor::cat(vec![weight, zeros], 0));
        grown.layers[layer + 1].curvature = consumer.curvature.widen_inputs(k);
        Ok(grown.fit_history())
    }

    /// Adds `k` neurons to hidden layer `layer`, drawn with the network's initialisers.
    ///
    /// See [`widen`](Self::widen).
    pub fn widen_random(&self, layer: usize, k: usize) -> Result<Self, GrowthError> {
        self.check_layer(layer)?;
        let weight = self.layers[layer].weight.val();
        let d_input = self.layers[layer].d_input();
        self.widen(
            layer,
            NewNeurons::sample(self, d_input, k, &weight.device()),
        )
    }

    /// Inserts a hidden layer at `position` (0 = right after the input, `depth()` = right
    /// before the output layer).
    ///
    /// The new layer computes `x·B + s` with an identity [`RationalActivation`]
    /// (v = c = 0, l = 1), and B⁻¹ is folded into the layer after it, so the output does not
    /// change (up to the rounding of B⁻¹ in `f32`; exactly for [`NewLayer::identity`]).
    ///
    /// # Returns
    ///
    /// The deeper network, or an error (position out of range, wrong shapes, non-finite
    /// values, a singular B, above `max_depth` or `max_width`).
    pub fn insert_layer(&self, position: usize, layer: NewLayer) -> Result<Self, GrowthError> {
        let width = self.check_insert(position, &layer)?;
        let basis = host_values(&layer.basis);
        let shift = host_values(&layer.bias);
        if !basis.iter().chain(&shift).all(|x| x.is_finite()) {
            return Err(GrowthError::NonFinite {
                what: "basis or bias of the new layer",
            });
        }
        let device = self.layers[position].weight.val().device();
        let original = &self.layers[position];
        let consumer = if is_identity(&basis, &shift, width) {
            original.clone()
        } else {
            let inverse = linalg::invert(&basis, width, SINGULAR_PIVOT)
                .map_err(|pivot| GrowthError::SingularBasis { position, pivot })?;
            fold_basis(original, &basis, &inverse, &shift, &device)
        };
        let inserted = ExpandableLayer {
            weight: trainable(layer.basis),
            bias: trainable(layer.bias),
            activation: Some(RationalActivation::new(
                RationalInit::Identity.sample(width, &device),
            )),
            curvature: original
                .curvature
                .for_inserted_layer(value(&consumer.weight), width),
        };

        let mut grown = self.clone();
        grown.layers[position] = consumer;
        grown.layers.insert(position, inserted);
        Ok(grown.fit_history())
    }

    /// Inserts an identity layer at `position`: see [`insert_layer`](Self::insert_layer) with
    /// [`NewLayer::identity`].
    pub fn insert_identity_layer(&self, position: usize) -> Result<Self, GrowthError> {
        let width = match position {
            0 => self.d_input(),
            p if p <= self.depth() => self.layers[p - 1].d_output(),
            _ => return Err(self.position_error(position)),
        };
        let device = self.layers[0].weight.val().device();
        self.insert_layer(position, NewLayer::identity(width, &device))
    }

    fn check_layer(&self, layer: usize) -> Result<(), GrowthError> {
        if layer < self.depth() {
            Ok(())
        } else {
            Err(GrowthError::LayerOutOfRange {
                layer,
                depth: self.depth(),
            })
        }
    }

    fn position_error(&self, position: usize) -> GrowthError {
        GrowthError::PositionOutOfRange {
            position,
            depth: self.depth(),
        }
    }

    fn check_widen(&self, layer: usize, neurons: &NewNeurons) -> Result<(), GrowthError> {
        self.check_layer(layer)?;
        let k = neurons.count();
        let d_input = self.layers[layer].d_input();
        check_shape(
            "weight of the new neurons",
            &[d_input, k],
            &neurons.weight.dims(),
        )?;
        for (what, tensor) in [
            ("activation odd coefficients (v)", &neurons.activation.odd),
            ("activation even coefficients (c)", &neurons.activation.even),
            (
                "activation linear coefficients (l)",
                &neurons.activation.linear,
            ),
        ] {
            check_shape(what, &[k], &tensor.dims())?;
        }
        let width = self.layers[layer].d_output() + k;
        if let Some(max_width) = self.config.max_width.filter(|&max| width > max) {
            return Err(GrowthError::WidthLimit {
                layer,
                width,
                max_width,
            });
        }
        let all = [
            neurons.weight.clone().flatten::<1>(0, 1),
            neurons.bias.clone(),
            neurons.activation.odd.clone(),
            neurons.activation.even.clone(),
            neurons.activation.linear.clone(),
        ];
        if k > 0
            && !host_values(&Tensor::cat(all.to_vec(), 0))
                .iter()
                .all(|x| x.is_finite())
        {
            return Err(GrowthError::NonFinite {
                what: "new neurons",
            });
        }
        Ok(())
    }

    /// Checks an insertion and returns the width of the new layer.
    fn check_insert(&self, position: usize, layer: &NewLayer) -> Result<usize, GrowthError> {
        if position > self.depth() {
            return Err(self.position_error(position));
        }
        let width = self.layers[position].d_input();
        check_shape(
            "basis of the new layer",
            &[width, width],
            &layer.basis.dims(),
        )?;
        check_shape("bias of the new layer", &[width], &layer.bias.dims())?;
        let depth = self.depth() + 1;
        if let Some(max_depth) = self.config.max_depth.filter(|&max| depth > max) {
            return Err(GrowthError::DepthLimit { depth, max_depth });
        }
        if let Some(max_width) = self.config.max_width.filter(|&max| width > max) {
            return Err(GrowthError::WidthLimit {
                layer: position,
                width,
                max_width,
            });
        }
        Ok(width)
    }
}

/// The consumer of an inserted layer `y = x·B + s`: W′ = B⁻¹W, b′ = b − s·W′, with its
/// curvature carried over through the homogeneous map ā′ = ā·M, M = [[1, s], [0, B]].
fn fold_basis(
    consumer: &ExpandableLayer,
    basis: &[f64],
    basis_inverse: &[f64],
    shift: &[f64],
    device: &Device,
) -> ExpandableLayer {
    let width = shift.len();
    let inverse = to_tensor(basis_inverse, [width, width], device);
    let weight = inverse.matmul(value(&consumer.weight));
    let shift_row = to_tensor(shift, [1, width], device);
    let bias = value(&consumer.bias) - shift_row.matmul(weight.clone()).squeeze_dim::<1>(0);

    // s·B⁻¹, the top row of M⁻¹ = [[1, −s·B⁻¹], [0, B⁻¹]].
    let shifted_inverse: Vec<f64> = (0..width)
        .map(|j| {
            -(0..width)
                .map(|k| shift[k] * basis_inverse[k * width + j])
                .sum::<f64>()
        })
        .collect();
    let homogeneous = to_tensor(
        &homogeneous_block(shift, basis),
        [width + 1, width + 1],
        device,
    );
    let homogeneous_inverse = to_tensor(
        &homogeneous_block(&shifted_inverse, basis_inverse),
        [width + 1, width + 1],
        device,
    );
    ExpandableLayer {
        weight: trainable(weight),
        bias: trainable(bias),
        activation: consumer.activation.clone(),
        curvature: consumer
            .curvature
            .after_insertion(homogeneous, homogeneous_inverse),
    }
}

/// [[1, top], [0, block]] for a row `top` of length d and a d × d `block`, row-major.
fn homogeneous_block(top: &[f64], block: &[f64]) -> Vec<f64> {
    let width = top.len();
    let mut matrix = vec![0.0; (width + 1) * (width + 1)];
    matrix[0] = 1.0;
    matrix[1..=width].copy_from_slice(top);
    for row in 0..width {
        let start = (row + 1) * (width + 1) + 1;
        matrix[start..start + width].copy_from_slice(&block[row * width..(row + 1) * width]);
    }
    matrix
}

fn check_shape(
    what: &'static str,
    expected: &[usize],
    actual: &[usize],
) -> Result<(), GrowthError> {
    if expected == actual {
        Ok(())
    } else {
        Err(GrowthError::ShapeMismatch {
            what,
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        })
    }
}

fn concat_params(first: RationalParams, second: RationalParams) -> RationalParams {
    RationalParams {
        odd: Tensor::cat(vec![first.odd, second.odd], 0),
        even: Tensor::cat(vec![first.even, second.even], 0),
        linear: Tensor::cat(vec![first.linear, second.linear], 0),
    }
}

fn to_tensor<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let values: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn is_identity(basis: &[f64], shift: &[f64], width: usize) -> bool {
    let diagonal = |k: usize| k / width == k % width;
    let unit = basis
        .iter()
        .enumerate()
        .all(|(k, &x)| x == if diagonal(k) { 1.0 } else { 0.0 });
    unit && shift.iter().all(|&x| x == 0.0)
}
