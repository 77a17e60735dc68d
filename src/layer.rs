//! One dense layer of an [`ExpandableMlp`](crate::ExpandableMlp).

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use crate::activation::RationalActivation;
use crate::curvature::LayerCurvature;

/// A dense layer `s = a·W + b` followed, in hidden layers, by a [`RationalActivation`].
///
/// The weight is stored `[d_input, d_output]`, as burn's `Linear` stores it, so a batch of
/// row vectors `a` maps to `a·W + b`.
#[derive(Module, Debug)]
pub struct ExpandableLayer {
    /// W, shape `[d_input, d_output]`.
    pub weight: Param<Tensor<2>>,
    /// b, shape `[d_output]`.
    pub bias: Param<Tensor<1>>,
    /// σ for a hidden layer; `None` for the output layer, which is affine.
    pub activation: Option<RationalActivation>,
    /// Curvature factors and momentum for the natural-gradient optimiser (not trainable).
    pub curvature: LayerCurvature,
}

impl ExpandableLayer {
    /// The number of inputs.
    pub fn d_input(&self) -> usize {
        self.weight.lazy_shape()[0]
    }

    /// The number of outputs (neurons).
    pub fn d_output(&self) -> usize {
        self.weight.lazy_shape()[1]
    }

    /// The number of scalars in W, b and the activation.
    pub fn num_params(&self) -> usize {
        let activation = if self.activation.is_some() { 3 } else { 0 };
        (self.d_input() + 1 + activation) * self.d_output()
    }

    /// The pre-activation `s = a·W + b`.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, d_input]`
    /// - output: `[batch, d_output]`
    pub fn pre_activation(&self, input: Tensor<2>) -> Tensor<2> {
        input.matmul(self.weight.val()) + self.bias.val().unsqueeze_dim(0)
    }

    /// Applies the activation, if any, to a pre-activation.
    pub fn activate(&self, pre_activation: Tensor<2>) -> Tensor<2> {
        match &self.activation {
            Some(activation) => activation.forward(pre_activation),
            None => pre_activation,
        }
    }

    /// `σ(a·W + b)`, or `a·W + b` for the output layer.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.activate(self.pre_activation(input))
    }
}
