//! Kronecker-factored curvature owned by each layer, and how it is captured and grown.
//!
//! For a dense layer `s = a·W + b` with homogeneous input ā = [1, a] and output gradient
//! g = ∂ℓ/∂s, K-FAC approximates the Fisher block of [b; W] by A ⊗ G with
//! A = E[āᵀā] and G = E[gᵀg] (Martens and Grosse, *Optimizing Neural Networks with
//! Kronecker-factored Approximate Curvature*). The activation coefficients (v, c, l) of a
//! hidden layer get a diagonal Fisher.

mod capture;
pub(crate) mod inverse;

pub(crate) use capture::{backpropagate, gauss_newton_backward};
pub use capture::{
    CaptureError, CurvatureCapture, CurvatureStatistics, FisherEstimate, LayerStatistics,
    OutputDistribution,
};

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::param::{state, value};

/// The curvature and momentum state of one layer: non-trainable module state, saved with
/// every record and grown together with the layer.
#[derive(Module, Debug)]
pub struct LayerCurvature {
    /// A = E\[āᵀā\] with ā = \[1, a\] (the homogeneous coordinate first): `[d_input + 1, d_input + 1]`.
    pub activation_covariance: Param<Tensor<2>>,
    /// G = E\[gᵀg\] with g = ∂ℓ/∂s per example: `[d_output, d_output]`.
    pub gradient_covariance: Param<Tensor<2>>,
    /// The diagonal Fisher of the activation coefficients, rows v, c, l: `[3, d_output]`;
    /// `None` for the output layer.
    pub activation_fisher: Option<Param<Tensor<2>>>,
    /// Momentum of [b; W] (bias row first): `[d_input + 1, d_output]`.
    pub weight_velocity: Param<Tensor<2>>,
    /// Momentum of the activation coefficients, rows v, c, l: `[3, d_output]`.
    pub activation_velocity: Option<Param<Tensor<2>>>,
}

/// Lazily zero-initialised non-trainable state: nothing is allocated until it is used.
fn lazy_zeros<const D: usize>(shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Initializer::Zeros
        .init_with(shape, None, None, device)
        .set_require_grad(false)
}

/// `tensor` with `rows` zero rows appended below and `columns` zero columns to the right.
pub(crate) fn pad_zeros(tensor: Tensor<2>, rows: usize, columns: usize) -> Tensor<2> {
    let [height, width] = tensor.dims();
    let device = tensor.device();
    let tensor = if columns > 0 {
        Tensor::cat(vec![tensor, Tensor::zeros([height, columns], &device)], 1)
    } else {
        tensor
    };
    if rows > 0 {
        Tensor::cat(
            vec![tensor, Tensor::zeros([rows, width + columns], &device)],
            0,
        )
    } else {
        tensor
    }
}

impl LayerCurvature {
    /// Zero state for a layer of the given shape (allocated lazily).
    pub fn zeros(d_input: usize, d_output: usize, hidden: bool, device: &Device) -> Self {
        Self {
            activation_covariance: lazy_zeros([d_input + 1, d_input + 1], device),
            gradient_covariance: lazy_zeros([d_output, d_output], device),
            activation_fisher: hidden.then(|| lazy_zeros([3, d_output], device)),
            weight_velocity: lazy_zeros([d_input + 1, d_output], device),
            activation_velocity: hidden.then(|| lazy_zeros([3, d_output], device)),
        }
    }

    /// The state after the layer gained `k` outputs (neurons).
    ///
    /// G gains k zero rows and columns: while the new neurons' outgoing weights are zero, so
    /// is their output gradient, so these are exactly the statistics a fresh computation on
    /// the grown network gives. Velocities and the activation Fisher of the new neurons start
    /// at zero. A is unchanged.
    pub(crate) fn widen_outputs(&self, k: usize) -> Self {
        let pad_columns = |p: &Param<Tensor<2>>| state(pad_zeros(value(p), 0, k));
        Self {
            activation_covariance: self.activation_covariance.clone(),
            gradient_covariance: state(pad_zeros(value(&self.gradient_covariance), k, k)),
            activation_fisher: self.activation_fisher.as_ref().map(pad_columns),
            weight_velocity: pad_columns(&self.weight_velocity),
            activation_velocity: self.activation_velocity.as_ref().map(pad_columns),
        }
    }

    /// The state after the layer gained `k` inputs (the previous layer was widened).
    ///
    /// A gains k rows and columns that are zero off the diagonal, with the mean of the
    /// existing input variances on the diagonal: a prior at the scale of the other inputs
    /// that the moving average replaces as statistics of the new inputs arrive. The weight
    /// velocity gains k zero rows. G is unchanged.
    pub(crate) fn widen_inputs(&self, k: usize) -> Self {
        let covariance = value(&self.activation_covariance);
        let n = covariance.dims()[0];
        let device = covariance.device();
        let variances = (covariance.clone() * Tensor::eye(n, &device)).sum_dim(0);
        let prior = match n {
            1 => Tensor::zeros([1, 1], &device),
            _ => variances.slice([0..1, 1..n]).mean().unsqueeze_dim::<2>(0),
        };
        let new_block = Tensor::<2>::eye(k, &device) * prior;
        let grown = pad_zeros(covariance, k, k).slice_assign([n..n + k, n..n + k], new_block);
        Self {
            activation_covariance: state(grown),
            gradient_covariance: self.gradient_covariance.clone(),
            activation_fisher: self.activation_fisher.clone(),
            weight_velocity: state(pad_zeros(value(&self.weight_velocity), k, 0)),
            activation_velocity: self.activation_velocity.clone(),
        }
    }

    /// The state of a layer `y = x·B + s` inserted in front of a layer with this state,
    /// whose rewritten weight is W′ = B⁻¹W.
    ///
    /// The new layer sees the same inputs, so its A is this layer's A; its output gradient is
    /// g·W′ᵀ while its activation is the identity, so its G is W′ G W′ᵀ. Both are exactly the
    /// statistics a fresh computation on the grown network gives. Velocities and the
    /// activation Fisher start at zero.
    pub(crate) fn for_inserted_layer(&self, consumer_weight: Tensor<2>, width: usize) -> Self {
        let device = consumer_weight.device();
        let g = value(&self.gradient_covariance);
        let gradient_covariance = consumer_weight
            .clone()
            .matmul(g)
            .matmul(consumer_weight.transpose());
        Self {
            activation_covariance: state(value(&self.activation_covariance)),
            gradient_covariance: state(gradient_covariance),
            activation_fisher: Some(state(Tensor::zeros([3, width], &device))),
            weight_velocity: state(Tensor::zeros([width + 1, width], &device)),
            activation_velocity: Some(state(Tensor::zeros([3, width], &device))),
        }
    }

    /// The state of the consumer of an inserted layer, whose homogeneous input is now
    /// ā′ = ā·M with M = [[1, s], [0, B]]: A′ = Mᵀ A M, and the velocity of [b; W] is
    /// carried to the new parameters [b′; W′] = M⁻¹ [b; W].
    pub(crate) fn after_insertion(
        &self,
        homogeneous: Tensor<2>,
        homogeneous_inverse: Tensor<2>,
    ) -> Self {
        let a = value(&self.activation_covariance);
        let velocity = value(&self.weight_velocity);
        Self {
            activation_covariance: state(
                homogeneous
                    .clone()
                    .transpose()
                    .matmul(a)
                    .matmul(homogeneous),
            ),
            gradient_covariance: self.gradient_covariance.clone(),
            activation_fisher: self.activation_fisher.clone(),
            weight_velocity: state(homogeneous_inverse.matmul(velocity)),
            activation_velocity: self.activation_velocity.clone(),
        }
    }
}
