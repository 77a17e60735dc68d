//! The natural expansion score η, its upper bound λ, and the gain Δη′ (lower bound) and Δη
//! (exact) of new inputs to a layer, all in Kronecker-factored (K-FAC) form.
//!
//! For a dense layer with homogeneous inputs ā = [1, a] and pre-activation gradients g, the
//! Fisher block is approximated by A ⊗ S with A = E[āāᵀ] and S = E[ĝĝᵀ], where ĝ are the
//! pre-activation gradients of the network's outputs (the Fisher of a unit-variance Gaussian
//! on the outputs: the Gauss–Newton matrix with a Euclidean output metric, as in the method).
//! With ∇ = E[ā gᵀ] the gradient of the mean loss,
//!
//! - η = Tr[∇ᵀ A⁻¹ ∇ S⁻¹] per layer, and η_total is their sum;
//! - λ = E‖∂ℓ/∂y‖² bounds η from above (exactly for the full Fisher);
//! - new inputs a_p of a layer (new neurons of the layer before it, or a new layer in front
//!   of it) with zero outgoing weights raise η by
//!   Δη = Tr[S⁻¹ Cᵀ (A_p − A_pc A_c⁻¹ A_cp)⁻¹ C] ≥ Δη′ = Tr[S⁻¹ Cᵀ A_p⁻¹ C],
//!   where C = E[a_p g_rᵀ] and g_r = g − E[g āᵀ] A⁻¹ ā is the residual of the layer's output
//!   gradient that its current inputs cannot predict linearly (Mitchell et al., *Self-Expanding
//!   Neural Networks*, Theorem 3.2).
//!
//! Factors are inverted as pseudo-inverses (eigenvalues below [`SCORE_CUTOFF`] times the
//! largest count as zero), which keeps the scores finite and meaningful for singular factors
//! (a constant or duplicated input) and leaves well-conditioned ones exact.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use faer::{Mat, Side};

use crate::curvature::{backpropagate, gauss_newton_backward};
use crate::error::ExpansionError;
use crate::mlp::ExpandableMlp;
use crate::param::host_values;

/// Eigenvalues of a factor at or below this fraction of its largest are treated as zero when
/// it is inverted (a pseudo-inverse, as in the method): directions that the `f32` statistics
/// cannot resolve carry no score.
pub const SCORE_CUTOFF: f64 = 1e-7;

/// What scoring needs from a batch: the network's inputs and the gradient of each example's
/// loss with respect to the network's outputs. Every other quantity (activations, gradients,
/// curvature) is recomputed from these for the network being scored, which is what lets a
/// grown network be scored again without a new forward and backward pass: growth does not
/// change the outputs, so it does not change ∂ℓ/∂y.
#[derive(Debug, Clone)]
pub struct ScoringData {
    /// The network's inputs: `[batch, d_input]`.
    pub inputs: Tensor<2>,
    /// ∂ℓ/∂y per example (not divided by the batch size): `[batch, d_output]`.
    pub output_gradients: Tensor<2>,
}

/// One layer seen as the consumer of new inputs.
#[derive(Debug, Clone)]
struct ConsumerScores {
    /// a, the layer's inputs: `[batch, d_input]`.
    input: Tensor<2>,
    /// g_r, the residual output gradients: `[batch, d_output]`.
    residual: Tensor<2>,
    /// S⁺ on the device.
    gradient_inverse: Tensor<2>,
    /// S⁺ on the host.
    gradient_inverse_host: Mat<f64>,
    /// A⁺ on the host, over ā = [1, a].
    activation_inverse_host: Mat<f64>,
    /// The homogeneous inputs ā: `[batch, d_input + 1]`.
    homogeneous: Tensor<2>,
}

/// The scores of a network on one batch: η per layer, λ, and what the gains of candidate
/// inputs to each layer are computed from. Built by [`ExpandableMlp::expansion_scores`].
#[derive(Debug, Clone)]
pub struct NetworkScores {
    lambda: f64,
    eta: Vec<f64>,
    layers: Vec<ConsumerScores>,
    examples: usize,
}

impl ExpandableMlp {
    /// The natural expansion scores of this network on a batch (see the
    /// [module documentation](crate::expansion) for the formulas).
    ///
    /// # Returns
    ///
    /// The scores, or an error if the batch is empty, has the wrong shapes, or holds NaN or
    /// infinite values.
    pub fn expansion_scores(&self, data: &ScoringData) -> Result<NetworkScores, ExpansionError> {
        let inputs = data.inputs.clone().inner();
        let output_gradients = data.output_gradients.clone().inner();
        let [n, d_input] = inputs.dims();
        let [n_out, d_output] = output_gradients.dims();
        if n == 0 {
            return Err(ExpansionError::EmptyBatch);
        }
        if d_input != self.d_input() || d_output != self.d_output() || n_out != n {
            return Err(ExpansionError::ShapeMismatch {
                expected: [self.d_input(), self.d_output()],
                inputs: [n, d_input],
                output_gradients: [n_out, d_output],
            });
        }
        let device = inputs.device();
        let finite = |t: &Tensor<2>| t.clone().sum().into_scalar::<f64>().is_finite();
        if !finite(&inputs) || !finite(&output_gradients) {
            return Err(ExpansionError::NonFinite { what: "batch" });
        }

        let (layer_inputs, pre_activations) = self.plain_forward(inputs);
        let gradients: Vec<Tensor<2>> =
            backpropagate(self, &pre_activations, output_gradients.clone())
                .into_iter()
                .map(|(g, _)| g)
                .collect();
        let output_factors = self.output_gradient_factors(&pre_activations, n);

        let lambda = output_gradients.square().sum().into_scalar::<f64>() / n as f64;
        let mut eta = Vec::with_capacity(self.layers.len());
        let mut layers = Vec::with_capacity(self.layers.len());
        for ((input, g), s) in layer_inputs.into_iter().zip(gradients).zip(output_factors) {
            let homogeneous = homogeneous(input.clone());
            let scale = 1.0 / n as f64;
            let a = host(homogeneous.clone().transpose().matmul(homogeneous.clone()) * scale);
            let gradient = host(homogeneous.clone().transpose().matmul(g.clone()) * scale);
            let a_inverse = pseudo_inverse(&a)?;
            let s_inverse = pseudo_inverse(&s)?;
            let coefficients = &a_inverse * &gradient;
            eta.push(trace_of_product(
                &(gradient.transpose() * &coefficients),
                &s_inverse,
            ));
            let residual = g - homogeneous
                .clone()
                .matmul(device_matrix(&coefficients, &device));
            layers.push(ConsumerScores {
                input,
                residual,
                gradient_inverse: device_matrix(&s_inverse, &device),
                gradient_inverse_host: s_inverse,
                activation_inverse_host: a_inverse,
                homogeneous,
            });
        }
        if !lambda.is_finite() || !eta.iter().all(|e| e.is_finite()) {
            return Err(ExpansionError::NonFinite { what: "scores" });
        }
        Ok(NetworkScores {
            lambda,
            eta,
            layers,
            examples: n,
        })
    }

    /// Each layer's input and pre-activation for a batch, without autodiff.
    pub(crate) fn plain_forward(&self, inputs: Tensor<2>) -> (Vec<Tensor<2>>, Vec<Tensor<2>>) {
        let mut layer_inputs = Vec::with_capacity(self.layers.len());
        let mut pre_activations = Vec::with_capacity(self.layers.len());
        let mut activations = inputs;
        for layer in &self.layers {
            let layer = layer.clone().valid();
            let s = layer.pre_activation(activations.clone());
            layer_inputs.push(activations);
            activations = layer.activate(s.clone());
            pre_activations.push(s);
        }
        (layer_inputs, pre_activations)
    }

    /// S = E[ĝĝᵀ] per layer, ĝ the pre-activation gradients of each output.
    fn output_gradient_factors(&self, pre_activations: &[Tensor<2>], n: usize) -> Vec<Mat<f64>> {
        gauss_newton_backward(self, pre_activations)
            .into_iter()
            .map(|(g, _)| host(g.clone().transpose().matmul(g) / n as f64))
            .collect()
    }
}

impl NetworkScores {
    /// λ = E‖∂ℓ/∂y‖², the upper bound of η.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// η of each layer (hidden layers first, the output layer last).
    pub fn layer_etas(&self) -> &[f64] {
        &self.eta
    }

    /// η of the network: the sum over its layers.
    pub fn eta_total(&self) -> f64 {
        self.eta.iter().sum()
    }

    /// The number of examples scored.
    pub fn examples(&self) -> usize {
        self.examples
    }

    /// The inputs a of layer `layer`: `[batch, d_input]`. New neurons of hidden layer
    /// `layer` and a new layer inserted at position `layer` take these as their inputs.
    pub fn layer_inputs(&self, layer: usize) -> Tensor<2> {
        self.layers[layer].input.clone()
    }

    /// The residual output gradients g_r of layer `layer`: `[batch, d_output]`.
    pub fn residual_gradients(&self, layer: usize) -> Tensor<2> {
        self.layers[layer].residual.clone()
    }

    /// S⁺ of layer `layer` on the device.
    pub(crate) fn gradient_inverse(&self, layer: usize) -> Tensor<2> {
        self.layers[layer].gradient_inverse.clone()
    }

    /// The lower bound Δη′ = Tr[S⁻¹ Cᵀ A_p⁻¹ C] on the gain from giving layer `consumer` the
    /// new inputs `new_inputs` (`[batch, k]`, the new units' outputs per example) with zero
    /// weights.
    ///
    /// # Panics
    ///
    /// If `consumer` is not a layer or `new_inputs` has the wrong number of rows.
    pub fn lower_bound(&self, consumer: usize, new_inputs: Tensor<2>) -> f64 {
        let (c, a_p, _) = self.candidate_moments(consumer, new_inputs);
        self.gain(consumer, &c, &a_p)
    }

    /// The exact K-FAC gain Δη = Tr[S⁻¹ Cᵀ (A_p − A_pc A_c⁻¹ A_cp)⁻¹ C] (the Schur
    /// complement of the current inputs in the enlarged activation covariance): the increase
    /// of layer `consumer`'s η when it gets the new inputs. Costs a solve with the layer's
    /// full input covariance; meant for small layers and for checking the bound.
    ///
    /// # Panics
    ///
    /// As [`lower_bound`](Self::lower_bound).
    pub fn exact_gain(&self, consumer: usize, new_inputs: Tensor<2>) -> f64 {
        let (c, a_p, cross) = self.candidate_moments(consumer, new_inputs);
        let layer = &self.layers[consumer];
        let schur = &a_p - &cross * (&layer.activation_inverse_host * cross.transpose());
        self.gain(consumer, &c, &schur)
    }

    /// C = E[a_p g_rᵀ], A_p = E[a_p a_pᵀ] and A_pc = E[a_p āᵀ] on the host.
    fn candidate_moments(
        &self,
        consumer: usize,
        new_inputs: Tensor<2>,
    ) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
        let layer = &self.layers[consumer];
        let new_inputs = new_inputs.inner();
        assert_eq!(
            new_inputs.dims()[0],
            self.examples,
            "new inputs need one row per scored example"
        );
        let scale = 1.0 / self.examples as f64;
        let transposed = new_inputs.clone().transpose();
        let c = host(transposed.clone().matmul(layer.residual.clone()) * scale);
        let a_p = host(transposed.clone().matmul(new_inputs) * scale);
        let cross = host(transposed.matmul(layer.homogeneous.clone()) * scale);
        (c, a_p, cross)
    }

    /// Tr[S⁺ Cᵀ M⁺ C].
    fn gain(&self, consumer: usize, c: &Mat<f64>, m: &Mat<f64>) -> f64 {
        match pseudo_inverse(m) {
            Ok(inverse) => trace_of_product(
                &(c.transpose() * (&inverse * c)),
                &self.layers[consumer].gradient_inverse_host,
            ),
            Err(_) => f64::NAN,
        }
    }
}

/// [1, a] row by row.
pub(crate) fn homogeneous(input: Tensor<2>) -> Tensor<2> {
    let [n, _] = input.dims();
    let ones = Tensor::ones([n, 1], &input.device());
    Tensor::cat(vec![ones, input], 1)
}

/// Tr[X·Y] for square X, Y of the same size.
fn trace_of_product(x: &Mat<f64>, y: &Mat<f64>) -> f64 {
    let n = x.nrows();
    (0..n)
        .map(|i| (0..n).map(|k| x[(i, k)] * y[(k, i)]).sum::<f64>())
        .sum()
}

/// A tensor's entries as a host matrix.
pub(crate) fn host(tensor: Tensor<2>) -> Mat<f64> {
    let [rows, columns] = tensor.dims();
    let values = host_values(&tensor);
    Mat::from_fn(rows, columns, |i, j| values[i * columns + j])
}

/// A host matrix as a tensor on `device`.
pub(crate) fn device_matrix(matrix: &Mat<f64>, device: &Device) -> Tensor<2> {
    let (rows, columns) = (matrix.nrows(), matrix.ncols());
    let values: Vec<f32> = (0..rows * columns)
        .map(|k| matrix[(k / columns, k % columns)] as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, [rows, columns]), device)
}

/// The pseudo-inverse of a symmetric positive semi-definite M by its eigendecomposition,
/// with eigenvalues at or below [`SCORE_CUTOFF`] times the largest treated as zero.
pub(crate) fn pseudo_inverse(matrix: &Mat<f64>) -> Result<Mat<f64>, ExpansionError> {
    let n = matrix.nrows();
    let symmetric = Mat::from_fn(n, n, |i, j| 0.5 * (matrix[(i, j)] + matrix[(j, i)]));
    if !(0..n).all(|j| (0..n).all(|i| symmetric[(i, j)].is_finite())) {
        return Err(ExpansionError::NonFinite { what: "factor" });
    }
    let eigen = symmetric
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| ExpansionError::NonFinite { what: "factor" })?;
    let values = eigen.S().column_vector();
    let largest = (0..n).map(|i| values[i]).fold(0.0_f64, f64::max);
    let cutoff = SCORE_CUTOFF * largest;
    let u = eigen.U();
    let kept: Vec<usize> = (0..n).filter(|&i| values[i] > cutoff).collect();
    Ok(Mat::from_fn(n, n, |i, j| {
        kept.iter()
            .map(|&k| u[(i, k)] * u[(j, k)] / values[k])
            .sum()
    }))
}
