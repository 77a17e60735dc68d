//! The natural-gradient optimiser: K-FAC updates whose curvature grows with the network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use burn::config::Config;
use burn::module::{Param, ParamId};
use burn::optim::{GradientsParams, LearningRate};
use burn::tensor::Tensor;

use crate::curvature::inverse::{damped_inverse, host_matrix, mean_eigenvalue, split_damping};
use crate::curvature::{
    CaptureError, CurvatureStatistics, FisherEstimate, LayerCurvature, LayerStatistics,
};
use crate::error::TrainStepError;
use crate::expansion::{self, ExpansionConfig};
use crate::layer::ExpandableLayer;
use crate::mlp::ExpandableMlp;
use crate::param::{host_values, updated};

/// Configuration of the [`NaturalGradient`] optimiser. The learning rate is not here: it is
/// handed to every [`step`](NaturalGradient::step), so burn's learning-rate schedulers work.
#[derive(Config, Debug)]
pub struct NaturalGradientConfig {
    /// Decay β of the exponential moving averages of the factors A and G (and of the
    /// diagonal Fisher of the activation coefficients). Early updates use
    /// min(β, 1 − 1/k) at the k-th update, so the first batch is not averaged with zeros.
    /// Default: 0.95.
    #[config(default = 0.95)]
    pub factor_decay: f64,
    /// Tikhonov damping γ, split between the factors as π√γ and √γ/π (π from their mean
    /// eigenvalues); also added to the diagonal Fisher of the activation coefficients.
    /// Default: 1e-2.
    #[config(default = 1e-2)]
    pub damping: f64,
    /// Factors are updated every this many steps. Default: 1. (The capture computes the
    /// batch statistics on every step; on the other steps they are dropped.)
    #[config(default = 1)]
    pub factor_period: usize,
    /// Factor inverses are recomputed, all layers together, every this many steps (and
    /// whenever a layer's factors are new, after growth or loading). Default: 10.
    #[config(default = 10)]
    pub inverse_period: usize,
    /// Momentum μ of the update: V ← μV + νU, θ ← θ − lr·V. Default: 0.5 (with KL
    /// clipping, 0.9 overshoots on the small problems the tests train).
    #[config(default = 0.5)]
    pub momentum: f64,
    /// L2 weight decay on the dense weights (not biases, not activation coefficients),
    /// added to the gradient before preconditioning. Default: 0.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// KL clipping κ: the preconditioned update U is scaled by
    /// ν = min(1, √(κ / (lr² Σ⟨U, ∇⟩))), bounding the predicted change of the output
    /// distribution (Ba, Grosse, Martens, *Distributed Second-Order Optimization using
    /// Kronecker-Factored Approximations*). `None` turns clipping off. Default: 1e-2.
    #[config(default = "Some(1e-2)")]
    pub kl_clip: Option<f64>,
    /// Which Fisher G estimates: read by the capture step that computes the statistics.
    /// Default: [`FisherEstimate::Empirical`].
    #[config(default = "FisherEstimate::Empirical")]
    pub fisher: FisherEstimate,
    /// Self-expansion: when set, the optimiser checks for growth every
    /// [`ExpansionConfig::interval`] steps and grows the network where the scores say so.
    /// Default: `None` (the network keeps its shape).
    #[config(default = "None")]
    pub expansion: Option<ExpansionConfig>,
}

/// Why a [`NaturalGradientConfig`] is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimizerConfigError {
    /// A value is outside its range.
    #[error("{name} = {value} is invalid; it must be {expected}")]
    OutOfRange {
        /// The field.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
}

impl NaturalGradientConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), OptimizerConfigError> {
        let check = |name, value: f64, ok: bool, expected| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(OptimizerConfigError::OutOfRange {
                    name,
                    value,
                    expected,
                })
            }
        };
        let decay = self.factor_decay;
        check(
            "factor_decay",
            decay,
            (0.0..1.0).contains(&decay),
            "in [0, 1)",
        )?;
        check("damping", self.damping, self.damping > 0.0, "> 0")?;
        let periods = [
            ("factor_period", self.factor_period),
            ("inverse_period", self.inverse_period),
        ];
        for (name, period) in periods {
            check(name, period as f64, period > 0, ">= 1")?;
        }
        let momentum = self.momentum;
        check(
            "momentum",
            momentum,
            (0.0..1.0).contains(&momentum),
            "in [0, 1)",
        )?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            ">= 0",
        )?;
        if let Some(kl_clip) = self.kl_clip {
            check("kl_clip", kl_clip, kl_clip > 0.0, "> 0 (or None)")?;
        }
        match &self.expansion {
            Some(expansion) => expansion.validate(),
            None => Ok(()),
        }
    }

    /// Builds the optimiser, or says which field is invalid.
    pub fn try_init(&self) -> Result<NaturalGradient, OptimizerConfigError> {
        self.validate()?;
        Ok(NaturalGradient {
            config: self.clone(),
            inverses: HashMap::new(),
            expansion_time: Duration::ZERO,
        })
    }

    /// Builds the optimiser.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid; [`try_init`](Self::try_init) returns the error.
    pub fn init(&self) -> NaturalGradient {
        self.try_init()
            .unwrap_or_else(|e| panic!("invalid NaturalGradientConfig: {e}"))
    }
}

/// The damped factor inverses of one layer, cached between inverse updates.
#[derive(Debug, Clone)]
struct LayerInverses {
    gradient_covariance: ParamId,
    activation: Tensor<2>,
    gradient: Tensor<2>,
}

/// K-FAC natural gradient for [`ExpandableMlp`]: per layer,
/// ΔW̄ = (A + γ_A I)⁻¹ ∇W̄ (G + γ_G I)⁻¹ for W̄ = [b; W], and a diagonal Fisher for the
/// activation coefficients; then KL clipping, momentum and the step.
///
/// The factors, velocities and counters live in the network (they are saved with it and
/// grow with it); this struct holds only the configuration and the cached inverses, which
/// are rebuilt when missing.
#[derive(Debug, Clone)]
pub struct NaturalGradient {
    config: NaturalGradientConfig,
    /// Keyed by the id of each layer's activation covariance.
    inverses: HashMap<ParamId, LayerInverses>,
    /// Wall time spent in expansion checks so far.
    expansion_time: Duration,
}

/// The update direction of one layer, before the step size.
struct LayerDirection {
    /// U for [b; W]: `[d_input + 1, d_output]`.
    weight: Tensor<2>,
    /// U for (v, c, l): `[3, d_output]`.
    activation: Option<Tensor<2>>,
}

impl NaturalGradient {
    /// The configuration.
    pub fn config(&self) -> &NaturalGradientConfig {
        &self.config
    }

    /// The wall time this optimiser has spent in expansion checks (scoring, candidate search
    /// and the decision; not the growth itself, which is cheap).
    pub fn expansion_time(&self) -> Duration {
        self.expansion_time
    }

    /// One optimisation step: updates the curvature from the statistics registered in
    /// `grads` (see [`CurvatureCapture::into_gradients`](crate::CurvatureCapture)), then
    /// applies the preconditioned, clipped, momentum update to every parameter of `network`
    /// that has a gradient, and removes all of the network's entries from `grads` so that a
    /// stock burn optimiser can handle what remains (the rest of a user's model).
    ///
    /// A step whose update is not finite is skipped with a warning: no weight becomes NaN.
    ///
    /// With [`expansion`](NaturalGradientConfig::expansion) set, a step that is an expansion
    /// check scores the network on the batch the gradients came from (as it was before the
    /// update), decides what to grow, applies the update, then grows the updated network
    /// (which leaves its outputs unchanged) and records the growth in its history.
    pub fn step(
        &mut self,
        lr: LearningRate,
        network: ExpandableMlp,
        grads: &mut GradientsParams,
    ) -> ExpandableMlp {
        let [steps, updates, _] = counts(&network);
        let mut statistics = CurvatureStatistics::take(&network, grads);
        let scoring = statistics.as_mut().and_then(|s| s.scoring.take());
        let plan = match (&self.config.expansion, scoring) {
            (Some(expansion), Some(data)) if network.expansion_due() => {
                let start = Instant::now();
                let plan = expansion::plan(&network, &data, expansion, steps);
                self.expansion_time += start.elapsed();
                Some(plan)
            }
            _ => None,
        };
        let (network, updates) = self.observe(network, statistics, [steps, updates]);
        let refresh_all = steps % self.config.inverse_period as u64 == 0;
        let mut network = self.refresh_inverses(network, refresh_all);

        let weight_decay = self.config.weight_decay;
        let gradients: Vec<_> = network
            .layers
            .iter()
            .map(|l| take_gradients(l, grads, weight_decay))
            .collect();
        let directions: Vec<_> = network
            .layers
            .iter()
            .zip(&gradients)
            .map(|(layer, gradient)| self.direction(layer, gradient))
            .collect();
        let scale = self.step_scale(lr, &directions, &gradients);
        if let Some(scale) = scale {
            network.layers = network
                .layers
                .into_iter()
                .zip(directions)
                .map(|(layer, direction)| self.apply(layer, direction, lr, scale))
                .collect();
        }
        if let Some(plan) = plan {
            network = plan.apply(network);
        }
        let interval = self.config.expansion.as_ref().map_or(0, |e| e.interval);
        set_counts(network, [steps + 1, updates, interval as u64])
    }

    /// One step of a custom training loop: [`forward_capture`](ExpandableMlp::forward_capture)
    /// of `inputs`, `loss` of the outputs (a mean over the batch of per-example losses),
    /// backward, statistics, and [`step`](Self::step), which updates `network` in place and
    /// may grow it.
    ///
    /// # Returns
    ///
    /// The batch's loss before the update, or an error, with `network` untouched, if the
    /// inputs are not a batch the network can take ([`ExpandableMlp::check_inputs`]) or not on
    /// an autodiff device. The inputs' values are searched for NaN and infinities only when
    /// the loss is not finite, so a healthy step reads nothing more back from the device than
    /// the loss. A loss that is NaN or infinite with finite inputs (from bad targets, say) is
    /// returned as it is, and the step skips the update with a warning.
    pub fn train_step(
        &mut self,
        lr: LearningRate,
        network: &mut ExpandableMlp,
        inputs: Tensor<2>,
        loss: impl FnOnce(Tensor<2>) -> Tensor<1>,
    ) -> Result<f64, TrainStepError> {
        network.check_input_shape(&inputs)?;
        if !inputs.device().is_autodiff() {
            return Err(CaptureError::NotAutodiff.into());
        }
        let (outputs, capture) = network.forward_capture(inputs.clone());
        let loss = loss(outputs);
        let value = loss.clone().into_scalar::<f64>();
        if !value.is_finite() {
            network.check_inputs(&inputs)?;
        }
        let mut grads = capture.into_gradients(network, loss.backward(), &self.config.fisher)?;
        *network = self.step(lr, network.clone(), &mut grads);
        Ok(value)
    }

    /// Folds the batch statistics into the factors on factor-update steps; returns the
    /// network and the new number of factor updates.
    fn observe(
        &self,
        network: ExpandableMlp,
        statistics: Option<CurvatureStatistics>,
        [steps, updates]: [u64; 2],
    ) -> (ExpandableMlp, u64) {
        match statistics {
            Some(statistics) if steps % self.config.factor_period as u64 == 0 => (
                self.update_factors(network, statistics, updates),
                updates + 1,
            ),
            _ => (network, updates),
        }
    }

    /// A ← βA + (1 − β)A_batch and likewise for G and the activation Fisher, unless the
    /// statistics are not finite (then they are dropped with a warning).
    fn update_factors(
        &self,
        mut network: ExpandableMlp,
        statistics: CurvatureStatistics,
        updates: u64,
    ) -> ExpandableMlp {
        if !statistics_are_finite(&statistics) {
            tracing::warn!(
                updates,
                "curvature statistics are not finite; factors left unchanged"
            );
            return network;
        }
        let decay = self
            .config
            .factor_decay
            .min(1.0 - 1.0 / (updates + 1) as f64);
        for (layer, batch) in network.layers.iter_mut().zip(statistics.layers) {
            let curvature = &mut layer.curvature;
            let average = |param: Param<Tensor<2>>, batch: Tensor<2>| {
                updated(param, |old| old * decay + batch * (1.0 - decay))
            };
            curvature.activation_covariance = average(
                curvature.activation_covariance.clone(),
                batch.activation_covariance,
            );
            curvature.gradient_covariance = average(
                curvature.gradient_covariance.clone(),
                batch.gradient_covariance,
            );
            if let (Some(param), Some(fisher)) =
                (curvature.activation_fisher.clone(), batch.activation_fisher)
            {
                // An entry that is exactly zero was never observed (a new neuron or layer):
                // it takes the batch value instead of a decayed share of it, or its first
                // steps would be preconditioned by a Fisher many times too small.
                curvature.activation_fisher = Some(updated(param, |old| {
                    let unseen = old.clone().equal_elem(0.0);
                    (old * decay + fisher.clone() * (1.0 - decay)).mask_where(unseen, fisher)
                }));
            }
        }
        network
    }

    /// Recomputes the damped inverses of every layer (`all`) or of the layers that have none.
    /// A factor found to hold NaN or infinite values is reset to zero (with a warning), so
    /// the moving average starts again from the next statistics.
    fn refresh_inverses(&mut self, mut network: ExpandableMlp, all: bool) -> ExpandableMlp {
        let current: Vec<ParamId> = network
            .layers
            .iter()
            .map(|l| l.curvature.activation_covariance.id)
            .collect();
        self.inverses.retain(|id, _| current.contains(id));
        for layer in network.layers.iter_mut() {
            let curvature = &mut layer.curvature;
            let cached = self.inverses.get(&curvature.activation_covariance.id);
            let fresh =
                cached.is_some_and(|c| c.gradient_covariance == curvature.gradient_covariance.id);
            if all || !fresh {
                let (inverses, replaced) = self.layer_inverses(curvature);
                let reset = |param: Param<Tensor<2>>| updated(param, |f| f.zeros_like());
                if replaced[0] {
                    curvature.activation_covariance =
                        reset(curvature.activation_covariance.clone());
                }
                if replaced[1] {
                    curvature.gradient_covariance = reset(curvature.gradient_covariance.clone());
                }
                self.inverses
                    .insert(curvature.activation_covariance.id, inverses);
            }
        }
        network
    }

    /// The damped inverses of A and G, and whether each factor was non-finite.
    fn layer_inverses(&self, curvature: &LayerCurvature) -> (LayerInverses, [bool; 2]) {
        let device = curvature.activation_covariance.val().device().inner();
        let (a, a_size) = host_matrix(curvature.activation_covariance.val());
        let (g, g_size) = host_matrix(curvature.gradient_covariance.val());
        let (damping_a, damping_g) = split_damping(
            self.config.damping,
            mean_eigenvalue(&a, a_size),
            mean_eigenvalue(&g, g_size),
        );
        let activation = damped_inverse(&a, a_size, damping_a, &device);
        let gradient = damped_inverse(&g, g_size, damping_g, &device);
        for (factor, inverse) in [("A", &activation), ("G", &gradient)] {
            if inverse.replaced || inverse.raised > 0 {
                tracing::warn!(
                    factor,
                    reset = inverse.replaced,
                    damping_raised_tenfold = inverse.raised,
                    damping = inverse.damping,
                    "curvature factor was not usable as it was"
                );
            }
        }
        let replaced = [activation.replaced, gradient.replaced];
        let inverses = LayerInverses {
            gradient_covariance: curvature.gradient_covariance.id,
            activation: activation.inverse,
            gradient: gradient.inverse,
        };
        (inverses, replaced)
    }

    /// U = (A + γ_A I)⁻¹ ∇W̄ (G + γ_G I)⁻¹ and u = ∇θ / (F + γ).
    fn direction(&self, layer: &ExpandableLayer, gradient: &LayerGradients) -> LayerDirection {
        let inverses = &self.inverses[&layer.curvature.activation_covariance.id];
        let weight = inverses
            .activation
            .clone()
            .matmul(gradient.weight.clone())
            .matmul(inverses.gradient.clone());
        let activation = gradient.activation.clone().map(|g| {
            let fisher = layer
                .curvature
                .activation_fisher
                .as_ref()
                .expect("hidden layers have an activation Fisher")
                .val()
                .inner();
            g / (fisher + self.config.damping)
        });
        LayerDirection { weight, activation }
    }

    /// ν = min(1, √(κ / (lr² Σ⟨U, ∇⟩))), or `None` (skip the step) if the update is not
    /// finite.
    fn step_scale(
        &self,
        lr: LearningRate,
        directions: &[LayerDirection],
        gradients: &[LayerGradients],
    ) -> Option<f64> {
        let mut inner = Vec::new();
        for (direction, gradient) in directions.iter().zip(gradients) {
            inner.push((direction.weight.clone() * gradient.weight.clone()).sum());
            if let (Some(u), Some(g)) = (&direction.activation, &gradient.activation) {
                inner.push((u.clone() * g.clone()).sum());
            }
        }
        let inner = Tensor::cat(inner, 0).sum().into_scalar::<f64>();
        if !inner.is_finite() {
            tracing::warn!(inner, "natural-gradient update is not finite; step skipped");
            return None;
        }
        Some(match self.config.kl_clip {
            Some(kl_clip) if inner > 0.0 => (kl_clip / (lr * lr * inner)).sqrt().min(1.0),
            _ => 1.0,
        })
    }

    /// V ← μV + νU, θ ← θ − lr·V for [b; W] and (v, c, l).
    fn apply(
        &self,
        mut layer: ExpandableLayer,
        direction: LayerDirection,
        lr: LearningRate,
        scale: f64,
    ) -> ExpandableLayer {
        let momentum = self.config.momentum;
        let advance = |velocity: Param<Tensor<2>>, update: Tensor<2>| {
            updated(velocity, |v| v * momentum + update * scale)
        };
        let velocity = advance(layer.curvature.weight_velocity, direction.weight);
        let step = velocity.val().inner() * lr;
        let rows = step.dims()[0];
        let bias_step = step.clone().narrow(0, 0, 1).squeeze_dim::<1>(0);
        layer.bias = updated(layer.bias, |b| b - bias_step);
        layer.weight = updated(layer.weight, |w| w - step.narrow(0, 1, rows - 1));
        layer.curvature.weight_velocity = velocity;

        if let (Some(activation), Some(update), Some(velocity)) = (
            layer.activation.as_mut(),
            direction.activation,
            layer.curvature.activation_velocity.take(),
        ) {
            let velocity = advance(velocity, update);
            let step = velocity.val().inner() * lr;
            let row = |i: usize| step.clone().narrow(0, i, 1).squeeze_dim::<1>(0);
            activation.odd = updated(activation.odd.clone(), |p| p - row(0));
            activation.even = updated(activation.even.clone(), |p| p - row(1));
            activation.linear = updated(activation.linear.clone(), |p| p - row(2));
            layer.curvature.activation_velocity = Some(velocity);
        }
        layer
    }
}

/// The gradients of one layer, zero where a parameter has none.
struct LayerGradients {
    /// ∇[b; W] plus weight decay: `[d_input + 1, d_output]`.
    weight: Tensor<2>,
    /// ∇(v, c, l): `[3, d_output]`.
    activation: Option<Tensor<2>>,
}

fn take_gradients(
    layer: &ExpandableLayer,
    grads: &mut GradientsParams,
    weight_decay: f64,
) -> LayerGradients {
    let weight_value = layer.weight.val().inner();
    let device = weight_value.device();
    let mut take_1d = |param: &Param<Tensor<1>>| {
        grads
            .remove::<1>(param.id)
            .unwrap_or_else(|| Tensor::zeros(param.val().dims(), &device))
    };
    let bias = take_1d(&layer.bias).unsqueeze_dim::<2>(0);
    let activation = layer.activation.as_ref().map(|a| {
        let rows = [&a.odd, &a.even, &a.linear].map(|p| take_1d(p).unsqueeze_dim::<2>(0));
        Tensor::cat(rows.to_vec(), 0)
    });
    let weight = match grads.remove::<2>(layer.weight.id) {
        Some(gradient) if weight_decay > 0.0 => gradient + weight_value * weight_decay,
        Some(gradient) => gradient,
        None => Tensor::zeros(weight_value.dims(), &device),
    };
    LayerGradients {
        weight: Tensor::cat(vec![bias, weight], 0),
        activation,
    }
}

fn statistics_are_finite(statistics: &CurvatureStatistics) -> bool {
    let sums: Vec<Tensor<1>> = statistics
        .layers
        .iter()
        .flat_map(|l: &LayerStatistics| {
            [
                Some(&l.activation_covariance),
                Some(&l.gradient_covariance),
                l.activation_fisher.as_ref(),
            ]
        })
        .flatten()
        .map(|t| t.clone().sum())
        .collect();
    Tensor::cat(sums, 0).sum().into_scalar::<f64>().is_finite()
}

impl ExpandableMlp {
    /// The number of [`NaturalGradient`] steps this network has taken. It is saved with the
    /// network, so it carries on across checkpoints.
    pub fn natural_gradient_steps(&self) -> u64 {
        counts(self)[0]
    }
}

/// `[steps, factor updates, expansion check interval]`.
pub(crate) fn counts(network: &ExpandableMlp) -> [u64; 3] {
    let values = host_values(&network.step_counts.val());
    [values[0] as u64, values[1] as u64, values[2] as u64]
}

fn set_counts(mut network: ExpandableMlp, counts: [u64; 3]) -> ExpandableMlp {
    network.step_counts = updated(network.step_counts, |old| {
        Tensor::from_floats(counts.map(|c| c as f32), &old.device())
    });
    network
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_configuration_is_valid() {
        assert!(NaturalGradientConfig::new().try_init().is_ok());
    }

    #[test]
    fn invalid_configurations_name_the_field_and_the_range() {
        let cases = [
            (
                NaturalGradientConfig::new().with_factor_decay(1.0),
                "factor_decay = 1 is invalid; it must be in [0, 1)",
            ),
            (
                NaturalGradientConfig::new().with_damping(0.0),
                "damping = 0 is invalid; it must be > 0",
            ),
            (
                NaturalGradientConfig::new().with_damping(f64::NAN),
                "damping = NaN is invalid; it must be > 0",
            ),
            (
                NaturalGradientConfig::new().with_inverse_period(0),
                "inverse_period = 0 is invalid; it must be >= 1",
            ),
            (
                NaturalGradientConfig::new().with_factor_period(0),
                "factor_period = 0 is invalid; it must be >= 1",
            ),
            (
                NaturalGradientConfig::new().with_momentum(-0.1),
                "momentum = -0.1 is invalid; it must be in [0, 1)",
            ),
            (
                NaturalGradientConfig::new().with_weight_decay(-1.0),
                "weight_decay = -1 is invalid; it must be >= 0",
            ),
            (
                NaturalGradientConfig::new().with_kl_clip(Some(0.0)),
                "kl_clip = 0 is invalid; it must be > 0 (or None)",
            ),
        ];
        for (config, message) in cases {
            let error = config.try_init().expect_err(message);
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    #[should_panic(expected = "invalid NaturalGradientConfig: damping = -1")]
    fn init_panics_on_an_invalid_configuration() {
        NaturalGradientConfig::new().with_damping(-1.0).init();
    }
}
