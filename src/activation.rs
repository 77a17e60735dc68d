//! The rational activation of Self-Expanding Neural Networks, which can be the identity.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::error::ConfigError;
use crate::param::trainable;

/// The ε under the square root of the normalisation, as in the method's definition.
pub const RATIONAL_EPSILON: f64 = 1e-8;

/// A per-neuron rational activation with parameters (v, c, l):
///
/// σ(x) = [(2v·x + c)/(1 + x²) + l·x] / √(v² + c² + l² + ε)
///
/// The first term is odd in x, the second even, the third linear. With v = c = 0 and l = 1,
/// σ is the identity (to within the factor 1/√(1 + ε), which is 1 in `f32`). That is what lets
/// a new layer start as an identity map, so that depth can grow without changing the function
/// (Mitchell et al., *Self-Expanding Neural Networks*, §3). Positive multiples of (v, c, l)
/// give the same σ.
#[derive(Module, Debug)]
pub struct RationalActivation {
    /// v, the coefficient of the odd term, one per neuron: shape `[width]`.
    pub odd: Param<Tensor<1>>,
    /// c, the coefficient of the even term, one per neuron: shape `[width]`.
    pub even: Param<Tensor<1>>,
    /// l, the coefficient of the linear term, one per neuron: shape `[width]`.
    pub linear: Param<Tensor<1>>,
}

/// The values of (v, c, l) for a set of neurons, each of shape `[k]`.
#[derive(Debug, Clone)]
pub struct RationalParams {
    /// v, the odd coefficients.
    pub odd: Tensor<1>,
    /// c, the even coefficients.
    pub even: Tensor<1>,
    /// l, the linear coefficients.
    pub linear: Tensor<1>,
}

/// How the (v, c, l) of new neurons are drawn.
#[derive(Config, Debug, PartialEq)]
pub enum RationalInit {
    /// v = c = 0, l = 1: every neuron starts as the identity.
    Identity,
    /// v, c, l each drawn from N(0, std²), as in the method's reference experiments (std = 1).
    Normal {
        /// Standard deviation of each coefficient.
        std: f64,
    },
}

impl RationalInit {
    /// Checks that the initialisation can be sampled.
    ///
    /// # Returns
    ///
    /// [`ConfigError::InvalidActivationInit`] for a negative or non-finite standard deviation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            RationalInit::Identity => Ok(()),
            RationalInit::Normal { std } if std.is_finite() && std >= 0.0 => Ok(()),
            RationalInit::Normal { std } => Err(ConfigError::InvalidActivationInit {
                what: "std",
                value: std,
            }),
        }
    }

    /// Draws the parameters of `width` neurons.
    pub fn sample(&self, width: usize, device: &Device) -> RationalParams {
        match *self {
            RationalInit::Identity => RationalParams::identity(width, device),
            RationalInit::Normal { std } => {
                let draw = || Tensor::random([width], Distribution::Normal(0.0, std), device);
                RationalParams {
                    odd: draw(),
                    even: draw(),
                    linear: draw(),
                }
            }
        }
    }
}

impl RationalParams {
    /// v = c = 0, l = 1 for `width` neurons: the identity.
    pub fn identity(width: usize, device: &Device) -> Self {
        Self {
            odd: Tensor::zeros([width], device),
            even: Tensor::zeros([width], device),
            linear: Tensor::ones([width], device),
        }
    }

    /// The number of neurons described.
    pub fn width(&self) -> usize {
        self.odd.dims()[0]
    }
}

impl RationalActivation {
    /// An activation whose parameters are `params`, each a fresh trainable parameter.
    pub fn new(params: RationalParams) -> Self {
        Self {
            odd: trainable(params.odd),
            even: trainable(params.even),
            linear: trainable(params.linear),
        }
    }

    /// The number of neurons.
    pub fn width(&self) -> usize {
        self.odd.lazy_shape()[0]
    }

    /// The current (v, c, l), detached from any autodiff graph.
    pub fn params(&self) -> RationalParams {
        RationalParams {
            odd: self.odd.val().detach(),
            even: self.even.val().detach(),
            linear: self.linear.val().detach(),
        }
    }

    /// Applies σ element-wise, each column with its own neuron's parameters.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, width]`
    /// - output: `[batch, width]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.values().apply(input)
    }

    /// ∂σ/∂x at every entry of `pre_activation`:
    /// [(2v(1 − x²) − 2cx)/(1 + x²)² + l] / √(v² + c² + l² + ε).
    ///
    /// # Shapes
    ///
    /// - pre_activation: `[batch, width]`
    /// - output: `[batch, width]`
    pub fn derivative(&self, pre_activation: Tensor<2>) -> Tensor<2> {
        let (odd, even, linear) = self.normalised_coefficients();
        let x = pre_activation;
        let denominator = x.clone().square() + 1.0;
        // odd holds 2v/r and even c/r: 2v(1 − x²)/r − 2cx/r over (1 + x²)².
        let numerator = odd * (x.clone().square().neg() + 1.0) - x * even * 2.0;
        numerator / denominator.square() + linear
    }

    /// ∂σ/∂v, ∂σ/∂c, ∂σ/∂l at every entry of `pre_activation`, each `[batch, width]`:
    /// ∂σ/∂θ = (∂N/∂θ − σ·θ/r)/r with N the numerator and r the norm, where
    /// ∂N/∂v = 2x/(1 + x²), ∂N/∂c = 1/(1 + x²), ∂N/∂l = x.
    pub fn parameter_derivatives(&self, pre_activation: Tensor<2>) -> [Tensor<2>; 3] {
        let row = |t: Tensor<1>| t.unsqueeze_dim::<2>(0);
        let (v, c, l) = (self.odd.val(), self.even.val(), self.linear.val());
        let norm = (v.clone().square() + c.clone().square() + l.clone().square())
            .add_scalar(RATIONAL_EPSILON)
            .sqrt();
        let inverse_norm = row(norm.recip());
        let x = pre_activation;
        let sigma = self.forward(x.clone());
        let reciprocal = (x.clone().square() + 1.0).recip();
        let scaled_sigma = sigma * inverse_norm.clone();
        let derivative = |dn: Tensor<2>, theta: Tensor<1>| {
            (dn - scaled_sigma.clone() * row(theta)) * inverse_norm.clone()
        };
        [
            derivative(x.clone() * reciprocal.clone() * 2.0, v),
            derivative(reciprocal, c),
            derivative(x, l),
        ]
    }

    /// The current (v, c, l), still attached to the autodiff graph.
    fn values(&self) -> RationalParams {
        RationalParams {
            odd: self.odd.val(),
            even: self.even.val(),
            linear: self.linear.val(),
        }
    }

    fn normalised_coefficients(&self) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        self.values().normalised_coefficients()
    }
}

impl RationalParams {
    /// Applies σ element-wise with these coefficients, each column with its own neuron's;
    /// differentiable in the coefficients as well as in the input.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, width]`
    /// - output: `[batch, width]`
    pub fn apply(&self, input: Tensor<2>) -> Tensor<2> {
        let (odd, even, linear) = self.normalised_coefficients();
        // σ(x) = (2v'x + c')/(1 + x²) + l'x with (v', c', l') already divided by the norm.
        let rational = (input.clone() * odd + even) / (input.clone().square() + 1.0);
        rational + input * linear
    }

    /// (2v, c, l) / √(v² + c² + l² + ε), each of shape `[1, width]`.
    fn normalised_coefficients(&self) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let (v, c, l) = (self.odd.clone(), self.even.clone(), self.linear.clone());
        let norm = (v.clone().square() + c.clone().square() + l.clone().square())
            .add_scalar(RATIONAL_EPSILON)
            .sqrt();
        let scale = norm.recip();
        let row = |t: Tensor<1>| t.unsqueeze_dim::<2>(0);
        (
            row(v * scale.clone() * 2.0),
            row(c * scale.clone()),
            row(l * scale),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_device;

    fn reference(x: f64, v: f64, c: f64, l: f64) -> f64 {
        ((2.0 * v * x + c) / (1.0 + x * x) + l * x) / (v * v + c * c + l * l + 1e-8).sqrt()
    }

    #[test]
    fn rational_matches_scalar_formula() {
        let device = test_device();
        let (v, c, l) = ([0.5, -1.0, 0.0], [0.3, 2.0, 0.0], [-0.7, 0.1, 1.0]);
        let activation = RationalActivation::new(RationalParams {
            odd: Tensor::from_floats(v, &device),
            even: Tensor::from_floats(c, &device),
            linear: Tensor::from_floats(l, &device),
        });
        let xs = [-3.0, -0.5, 0.0, 0.25, 4.0];
        let input = Tensor::<2>::from_floats([xs, xs, xs], &device).transpose();
        let output = activation
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (row, &x) in xs.iter().enumerate() {
            for j in 0..3 {
                let expected = reference(x, v[j], c[j], l[j]);
                let actual = output[row * 3 + j] as f64;
                assert!((actual - expected).abs() <= 1e-6 * (1.0 + expected.abs()));
            }
        }
    }

    #[test]
    fn identity_parameters_give_the_identity() {
        let device = test_device();
        let activation = RationalActivation::new(RationalParams::identity(4, &device));
        let input = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 10.0), &device);
        let output = activation.forward(input.clone());
        let error = (output - input).abs().max().into_scalar::<f32>();
        assert_eq!(error, 0.0);
    }

    #[test]
    fn derivatives_match_autodiff() {
        let device = test_device().autodiff();
        let params = RationalParams {
            odd: Tensor::from_floats([0.5, -1.0, 0.0], &device),
            even: Tensor::from_floats([0.3, 2.0, 0.0], &device),
            linear: Tensor::from_floats([-0.7, 0.1, 1.0], &device),
        };
        let activation = RationalActivation::new(params);
        let x =
            Tensor::<2>::from_floats([[-2.0, 0.3, 1.5], [0.7, -0.1, 3.0]], &device).require_grad();
        let grads = activation.forward(x.clone()).sum().backward();

        let dx = x.grad(&grads).unwrap();
        let expected_dx = activation.derivative(x.clone().detach()).inner();
        let error = (dx - expected_dx).abs().max().into_scalar::<f32>();
        assert!(error < 1e-5, "∂σ/∂x off by {error}");

        let [dv, dc, dl] = activation.parameter_derivatives(x.detach());
        for (param, per_example) in [
            (&activation.odd, dv),
            (&activation.even, dc),
            (&activation.linear, dl),
        ] {
            let total = param.grad(&grads).unwrap();
            let summed = per_example.sum_dim(0).squeeze_dim::<1>(0).inner();
            let error = (total - summed).abs().max().into_scalar::<f32>();
            assert!(error < 1e-5, "parameter derivative off by {error}");
        }
    }

    #[test]
    fn invalid_normal_std_is_rejected() {
        assert!(RationalInit::Normal { std: -1.0 }.validate().is_err());
        assert!(RationalInit::Normal { std: f64::NAN }.validate().is_err());
        assert!(RationalInit::Normal { std: 0.5 }.validate().is_ok());
    }
}
