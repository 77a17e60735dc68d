//! Per-example statistics from a forward pass with zero probes.

use burn::config::Config;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Gradients, Tensor};

use crate::expansion::{homogeneous, ScoringData};
use crate::layer::ExpandableLayer;
use crate::mlp::ExpandableMlp;

/// Which Fisher the output-gradient covariance G estimates.
#[derive(Config, Debug, PartialEq)]
pub enum FisherEstimate {
    /// G from the gradients of the observed targets: the empirical Fisher. Costs nothing
    /// beyond the backward pass that training does anyway.
    Empirical,
    /// G from the gradients of targets drawn from the model's own predictive distribution:
    /// the true Fisher, estimated with one sample per example. Costs one extra backward
    /// sweep through the network, done by hand (no autodiff).
    Sampled {
        /// The predictive distribution the network's outputs parameterise.
        distribution: OutputDistribution,
    },
    /// G as the exact expectation of the Gauss–Newton matrix with a Euclidean output metric,
    /// E\[J_sᵀJ_s\] with J_s = ∂y/∂s: one backward sweep (by hand) of each unit output vector,
    /// so m sweeps for m outputs. For a squared-error loss it is the true Fisher without
    /// sampling noise; for any loss it is the metric of the method's expansion score. Unlike
    /// the empirical Fisher, it does not vanish as the loss goes to zero, which keeps
    /// regression steps stable near convergence.
    GaussNewton,
}

/// The predictive distribution that a network's outputs parameterise.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum OutputDistribution {
    /// Outputs are logits of a categorical distribution (softmax cross-entropy): a target
    /// t ~ softmax(y) has ∂ℓ/∂y = softmax(y) − onehot(t).
    Categorical,
    /// Outputs are the mean of a unit-variance Gaussian (ℓ = ½‖y − t‖²): a target
    /// t ~ N(y, I) has ∂ℓ/∂y = y − t ~ N(0, I).
    Gaussian,
}

/// Why statistics could not be taken from a capture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The forward pass ran on a device without autodiff, so there are no probe gradients.
    #[error("the captured forward pass did not run on an autodiff device; use device.autodiff()")]
    NotAutodiff,
    /// The capture was taken from a network of another shape.
    #[error("the capture has {captured} layers of shapes {shapes:?}, the network {actual:?}")]
    NetworkMismatch {
        /// The number of layers captured.
        captured: usize,
        /// The captured layers' (d_input, d_output).
        shapes: Vec<(usize, usize)>,
        /// The network's layers' (d_input, d_output).
        actual: Vec<(usize, usize)>,
    },
}

/// What [`ExpandableMlp::forward_capture`] keeps of one layer.
#[derive(Debug, Clone)]
struct LayerCapture {
    /// a, the layer's input, detached: `[batch, d_input]`.
    input: Tensor<2>,
    /// s, the pre-activation, detached: `[batch, d_output]`.
    pre_activation: Tensor<2>,
    /// The zero leaf added to s; its gradient is ∂L/∂s.
    pre_probe: Tensor<2>,
    /// The zero leaf added to σ(s) in hidden layers; its gradient is ∂L/∂σ(s).
    post_probe: Option<Tensor<2>>,
}

/// The inputs and probes of a forward pass, from which [`statistics`](Self::statistics)
/// computes the per-layer curvature statistics once the loss has been back-propagated.
#[derive(Debug, Clone)]
pub struct CurvatureCapture {
    layers: Vec<LayerCapture>,
    /// The network's output, detached: `[batch, d_output]`.
    output: Tensor<2>,
    autodiff: bool,
}

/// One layer's statistics of one batch.
#[derive(Debug, Clone)]
pub struct LayerStatistics {
    /// E\[āᵀā\] over the batch, ā = \[1, a\]: `[d_input + 1, d_input + 1]`.
    pub activation_covariance: Tensor<2>,
    /// E\[gᵀg\] over the batch, g = ∂ℓ/∂s per example: `[d_output, d_output]`.
    pub gradient_covariance: Tensor<2>,
    /// E[(∂ℓ/∂θ)²] over the batch for θ = v, c, l (rows): `[3, d_output]`; hidden layers only.
    pub activation_fisher: Option<Tensor<2>>,
}

/// The statistics of every layer of a network for one batch.
#[derive(Debug, Clone)]
pub struct CurvatureStatistics {
    /// One entry per layer, hidden layers first.
    pub layers: Vec<LayerStatistics>,
    /// The batch's inputs and output gradients, for the expansion check. They travel to the
    /// optimiser only on steps where a check is due (see [`register`](Self::register)).
    pub scoring: Option<ScoringData>,
}

impl ExpandableMlp {
    /// [`forward`](Self::forward) that also keeps what the curvature statistics need: each
    /// layer's input, and zero probe tensors added to each pre-activation and each hidden
    /// activation, whose gradients after `backward` are the per-example ∂L/∂s and ∂L/∂σ(s).
    ///
    /// On a device without autodiff no probes are added and the capture cannot produce
    /// statistics. Plain [`forward`](Self::forward) is unaffected.
    pub fn forward_capture(&self, input: Tensor<2>) -> (Tensor<2>, CurvatureCapture) {
        let autodiff = input.device().is_autodiff();
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut activations = input;
        for layer in &self.layers {
            let captured_input = activations.clone().detach();
            let pre_activation = layer.pre_activation(activations);
            let (pre_activation, pre_probe) = add_probe(pre_activation, autodiff);
            let captured = pre_activation.clone().detach();
            let (output, post_probe) = match &layer.activation {
                Some(activation) => {
                    let (output, probe) = add_probe(activation.forward(pre_activation), autodiff);
                    (output, Some(probe))
                }
                None => (pre_activation, None),
            };
            layers.push(LayerCapture {
                input: captured_input,
                pre_activation: captured,
                pre_probe,
                post_probe,
            });
            activations = output;
        }
        let output = activations.clone().detach();
        (
            activations,
            CurvatureCapture {
                layers,
                output,
                autodiff,
            },
        )
    }
}

/// `tensor + probe` with a zero leaf `probe` that requires a gradient (when autodiff is on).
fn add_probe(tensor: Tensor<2>, autodiff: bool) -> (Tensor<2>, Tensor<2>) {
    let probe = Tensor::zeros(tensor.dims(), &tensor.device());
    if autodiff {
        let probe = probe.require_grad();
        (tensor + probe.clone(), probe)
    } else {
        (tensor, probe)
    }
}

impl CurvatureCapture {
    /// The per-layer statistics of the batch, from the gradients of a loss that is the mean
    /// over the batch of per-example losses ℓ.
    ///
    /// # Arguments
    ///
    /// - `network`: the network that produced the capture.
    /// - `grads`: the result of `loss.backward()`.
    /// - `fisher`: which Fisher G estimates.
    pub fn statistics(
        &self,
        network: &ExpandableMlp,
        grads: &Gradients,
        fisher: &FisherEstimate,
    ) -> Result<CurvatureStatistics, CaptureError> {
        if !self.autodiff {
            return Err(CaptureError::NotAutodiff);
        }
        self.check_network(network)?;
        let (examples, repeats) = match fisher {
            FisherEstimate::Empirical => (self.empirical_examples(grads), 1),
            FisherEstimate::Sampled { distribution } => {
                (self.sampled_examples(network, *distribution), 1)
            }
            FisherEstimate::GaussNewton => (
                gauss_newton_backward(network, &self.pre_activations()),
                network.d_output(),
            ),
        };
        let layers = network
            .layers
            .iter()
            .zip(&self.layers)
            .zip(examples)
            .map(|((layer, capture), (g, e))| layer_statistics(layer, capture, g, e, repeats))
            .collect();
        let last = self.layers.last().expect("a network has an output layer");
        let scoring = ScoringData {
            inputs: self.layers[0].input.clone().inner(),
            output_gradients: per_example_gradient(&last.pre_probe, grads, self.batch_size()),
        };
        Ok(CurvatureStatistics {
            layers,
            scoring: Some(scoring),
        })
    }

    /// The gradients of the network's parameters as `GradientsParams`, with the batch's
    /// statistics registered beside them: what
    /// [`NaturalGradient::step`](crate::NaturalGradient::step) takes.
    pub fn into_gradients(
        self,
        network: &ExpandableMlp,
        grads: Gradients,
        fisher: &FisherEstimate,
    ) -> Result<GradientsParams, CaptureError> {
        let statistics = self.statistics(network, &grads, fisher)?;
        let mut params = GradientsParams::from_grads(grads, network);
        statistics.register(network, &mut params);
        Ok(params)
    }

    fn check_network(&self, network: &ExpandableMlp) -> Result<(), CaptureError> {
        let shapes: Vec<_> = self
            .layers
            .iter()
            .map(|l| (l.input.dims()[1], l.pre_activation.dims()[1]))
            .collect();
        let actual: Vec<_> = network
            .layers
            .iter()
            .map(|l| (l.d_input(), l.d_output()))
            .collect();
        if shapes == actual {
            Ok(())
        } else {
            Err(CaptureError::NetworkMismatch {
                captured: shapes.len(),
                shapes,
                actual,
            })
        }
    }

    fn batch_size(&self) -> usize {
        self.output.dims()[0]
    }

    /// Per layer: (g, e) = (∂ℓ/∂s, ∂ℓ/∂σ(s)) per example, read from the probes. The loss is
    /// a batch mean, so each probe gradient is the per-example gradient divided by n.
    fn empirical_examples(&self, grads: &Gradients) -> Vec<(Tensor<2>, Option<Tensor<2>>)> {
        let per_example = |probe: &Tensor<2>| per_example_gradient(probe, grads, self.batch_size());
        self.layers
            .iter()
            .map(|l| {
                (
                    per_example(&l.pre_probe),
                    l.post_probe.as_ref().map(per_example),
                )
            })
            .collect()
    }

    /// Per layer: (g, e) for targets sampled from the predictive distribution, propagated
    /// back through the network by hand: e_l = g_{l+1}·W_{l+1}ᵀ and g_l = e_l ⊙ σ′(s_l).
    fn sampled_examples(
        &self,
        network: &ExpandableMlp,
        distribution: OutputDistribution,
    ) -> Vec<(Tensor<2>, Option<Tensor<2>>)> {
        let output = self.output.clone().inner();
        let output_gradient = sampled_output_gradient(output, distribution);
        backpropagate(network, &self.pre_activations(), output_gradient)
    }

    fn pre_activations(&self) -> Vec<Tensor<2>> {
        self.layers
            .iter()
            .map(|l| l.pre_activation.clone().inner())
            .collect()
    }
}

/// The probe's gradient times the batch size: for a loss that is a batch mean, the gradient
/// of each example's own loss (zero where nothing reached the probe).
fn per_example_gradient(probe: &Tensor<2>, grads: &Gradients, batch_size: usize) -> Tensor<2> {
    match probe.grad(grads) {
        Some(gradient) => gradient * batch_size as f64,
        None => Tensor::zeros(probe.dims(), &probe.device()).inner(),
    }
}

/// Per layer: (g, e) = (∂ℓ/∂s, ∂ℓ/∂σ(s)) per example when the per-example output gradient is
/// `output_gradient`, propagated back by hand (no autodiff) through `network` at the given
/// pre-activations: e_l = g_{l+1}·W_{l+1}ᵀ and g_l = e_l ⊙ σ′(s_l).
pub(crate) fn backpropagate(
    network: &ExpandableMlp,
    pre_activations: &[Tensor<2>],
    output_gradient: Tensor<2>,
) -> Vec<(Tensor<2>, Option<Tensor<2>>)> {
    let mut g = output_gradient;
    let mut examples = Vec::with_capacity(pre_activations.len());
    let mut e: Option<Tensor<2>> = None;
    for (layer, pre_activation) in network.layers.iter().zip(pre_activations).rev() {
        let layer = layer.clone().valid();
        if let Some(activation) = &layer.activation {
            let upstream = e.take().expect("a hidden layer always has a successor");
            g = upstream.clone() * activation.derivative(pre_activation.clone().inner());
            e = Some(upstream);
        }
        examples.push((g.clone(), e.take()));
        e = Some(g.clone().matmul(layer.weight.val().transpose()));
    }
    examples.reverse();
    examples
}

/// Per layer: (ĝ, ê), the backward sweeps of every unit output vector e_k for every example
/// (row k·n + x for output k and example x), through `network` at the given pre-activations.
/// Σ_k ĝᵀĝ / n is the Gauss–Newton factor E[J_sᵀJ_s].
pub(crate) fn gauss_newton_backward(
    network: &ExpandableMlp,
    pre_activations: &[Tensor<2>],
) -> Vec<(Tensor<2>, Option<Tensor<2>>)> {
    let m = network.d_output();
    let [n, _] = pre_activations[0].dims();
    let device = pre_activations[0].device();
    let repeated: Vec<Tensor<2>> = pre_activations
        .iter()
        .map(|s| s.clone().repeat_dim(0, m))
        .collect();
    let units = Tensor::<2>::eye(m, &device)
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, n)
        .reshape([m * n, m]);
    backpropagate(network, &repeated, units)
}

/// ∂ℓ/∂y per example for a target drawn from the distribution the outputs parameterise.
fn sampled_output_gradient(output: Tensor<2>, distribution: OutputDistribution) -> Tensor<2> {
    match distribution {
        OutputDistribution::Categorical => {
            let [_, classes] = output.dims();
            let probabilities = softmax(output, 1);
            let sample = probabilities
                .clone()
                .categorical(1)
                .squeeze_dim::<1>(1)
                .one_hot::<2>(classes)
                .float();
            probabilities - sample
        }
        OutputDistribution::Gaussian => output.random_like(Distribution::Normal(0.0, 1.0)),
    }
}

/// A = āᵀā/n, G = gᵀg/n and the diagonal Fisher of (v, c, l) from the per-example e, where
/// g and e hold `repeats` rows per example (one per backward sweep) whose outer products are
/// summed.
fn layer_statistics(
    layer: &ExpandableLayer,
    capture: &LayerCapture,
    g: Tensor<2>,
    e: Option<Tensor<2>>,
    repeats: usize,
) -> LayerStatistics {
    let homogeneous = homogeneous(capture.input.clone().inner());
    let [n, _] = homogeneous.dims();
    let scale = 1.0 / n as f64;
    let activation_fisher = layer.activation.as_ref().zip(e).map(|(activation, e)| {
        let pre_activation = capture
            .pre_activation
            .clone()
            .inner()
            .repeat_dim(0, repeats);
        let derivatives = activation.parameter_derivatives(pre_activation);
        let rows = derivatives
            .map(|d| (d * e.clone()).square().sum_dim(0) * scale)
            .to_vec();
        Tensor::cat(rows, 0)
    });
    LayerStatistics {
        activation_covariance: homogeneous.clone().transpose().matmul(homogeneous) * scale,
        gradient_covariance: g.clone().transpose().matmul(g) * scale,
        activation_fisher,
    }
}

impl CurvatureStatistics {
    /// Registers the statistics in `grads` under the ids of the network's curvature state,
    /// with a batch count under its step counter, so that they travel with the gradients
    /// (through burn's gradient accumulation and multi-device summation, which add them).
    /// On a step where the network's optimiser will check for expansion, the scoring data
    /// (the batch's inputs and output gradients) is registered too, under the first layer's
    /// momentum.
    ///
    /// [`NaturalGradient::step`](crate::NaturalGradient::step) takes them out again.
    pub fn register(self, network: &ExpandableMlp, grads: &mut GradientsParams) {
        if let Some(scoring) = self.scoring.filter(|_| network.expansion_due()) {
            grads.register(
                network.layers[0].curvature.weight_velocity.id,
                Tensor::cat(vec![scoring.inputs, scoring.output_gradients], 1),
            );
        }
        for (layer, statistics) in network.layers.iter().zip(self.layers) {
            let curvature = &layer.curvature;
            grads.register(
                curvature.activation_covariance.id,
                statistics.activation_covariance,
            );
            grads.register(
                curvature.gradient_covariance.id,
                statistics.gradient_covariance,
            );
            if let (Some(param), Some(fisher)) =
                (&curvature.activation_fisher, statistics.activation_fisher)
            {
                grads.register(param.id, fisher);
            }
        }
        let device = network.step_counts.val().device().inner();
        grads.register(
            network.step_counts.id,
            Tensor::<1>::from_floats([1.0, 0.0, 0.0], &device),
        );
    }

    /// Removes the statistics that [`register`](Self::register) put in `grads`, divided by
    /// the number of batches they were summed over; `None` when there are none (or only
    /// some of them).
    ///
    /// Scoring data summed over several batches (gradient accumulation, several devices) is
    /// meaningless and is dropped: growth needs the check step's batch to come from one
    /// device in one piece.
    pub fn take(network: &ExpandableMlp, grads: &mut GradientsParams) -> Option<Self> {
        let scoring = grads.remove::<2>(network.layers[0].curvature.weight_velocity.id);
        let batches = grads.remove::<1>(network.step_counts.id)?;
        let batches = batches.narrow(0, 0, 1);
        let scoring = scoring.and_then(|data| {
            let count = batches.clone().into_scalar::<f64>();
            if count != 1.0 {
                tracing::debug!(
                    batches = count,
                    "scoring data summed over several batches is dropped; no expansion check"
                );
                return None;
            }
            let [_, columns] = data.dims();
            let d_input = network.d_input();
            Some(ScoringData {
                inputs: data.clone().narrow(1, 0, d_input),
                output_gradients: data.narrow(1, d_input, columns - d_input),
            })
        });
        let mut layers = Vec::with_capacity(network.layers.len());
        let mut complete = true;
        for layer in &network.layers {
            let curvature = &layer.curvature;
            let a = grads.remove::<2>(curvature.activation_covariance.id);
            let g = grads.remove::<2>(curvature.gradient_covariance.id);
            let fisher = curvature
                .activation_fisher
                .as_ref()
                .and_then(|p| grads.remove::<2>(p.id));
            complete &= a.is_some() && g.is_some();
            complete &= fisher.is_some() == curvature.activation_fisher.is_some();
            if let (Some(a), Some(g)) = (a, g) {
                let mean = |t: Tensor<2>| t / batches.clone().unsqueeze_dim::<2>(0);
                layers.push(LayerStatistics {
                    activation_covariance: mean(a),
                    gradient_covariance: mean(g),
                    activation_fisher: fisher.map(mean),
                });
            }
        }
        complete.then_some(Self { layers, scoring })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::ExpandableMlpConfig;
    use crate::test_device;

    #[test]
    fn hand_backward_pass_equals_probe_gradients() {
        let device = test_device().autodiff();
        device.seed(3);
        let network = ExpandableMlpConfig::new(3, 2)
            .with_hidden(vec![4, 5])
            .init(&device);
        let input = Tensor::<2>::random([7, 3], Distribution::Normal(0.0, 1.0), &device);
        let (output, capture) = network.forward_capture(input);
        // L = mean over examples of ⟨y, δ⟩, so ∂ℓ/∂y = δ for every example.
        let delta = Tensor::<2>::random([7, 2], Distribution::Normal(0.0, 1.0), &device).inner();
        let loss = (output * delta.clone().autodiff()).sum() / 7.0;
        let grads = loss.backward();

        let from_probes = capture.empirical_examples(&grads);
        let by_hand = backpropagate(&network, &capture.pre_activations(), delta);
        for (layer, ((g_probe, e_probe), (g_hand, e_hand))) in
            from_probes.into_iter().zip(by_hand).enumerate()
        {
            let error = (g_probe - g_hand).abs().max().into_scalar::<f32>();
            assert!(error < 1e-5, "layer {layer}: g differs by {error}");
            assert_eq!(e_probe.is_some(), e_hand.is_some());
            if let (Some(a), Some(b)) = (e_probe, e_hand) {
                let error = (a - b).abs().max().into_scalar::<f32>();
                assert!(error < 1e-5, "layer {layer}: e differs by {error}");
            }
        }
    }

    #[test]
    fn statistics_match_dense_sums() {
        let device = test_device().autodiff();
        let network = ExpandableMlpConfig::new(2, 1).init(&device);
        let input = Tensor::<2>::from_floats([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]], &device);
        let (output, capture) = network.forward_capture(input);
        let grads = output.sum().backward();
        let statistics = capture
            .statistics(&network, &grads, &FisherEstimate::Empirical)
            .unwrap();
        // ā = [1, x]: A = Σ āᵀā / 3.
        let expected =
            [[3.0, 0.0, 5.5], [0.0, 2.0, 1.5], [5.5, 1.5, 13.25]].map(|row| row.map(|x| x / 3.0));
        let actual = statistics.layers[0].activation_covariance.clone();
        let expected = Tensor::<2>::from_floats(expected, &actual.device());
        assert!((actual - expected).abs().max().into_scalar::<f32>() < 1e-6);
        // L = Σ y (a sum, not a mean): each probe gradient is 1, so g = n·1 = 3 and G = 9.
        let g = statistics.layers[0]
            .gradient_covariance
            .clone()
            .into_scalar::<f32>();
        assert!((g - 9.0).abs() < 1e-5);
    }

    #[test]
    fn capture_without_autodiff_is_an_error() {
        let device = test_device();
        let network = ExpandableMlpConfig::new(2, 1).init(&device);
        let (output, capture) = network.forward_capture(Tensor::ones([2, 2], &device));
        assert_eq!(output.dims(), [2, 1]);
        let autodiff = device.autodiff();
        let probe = Tensor::<1>::ones([1], &autodiff).require_grad();
        let grads = probe.sum().backward();
        let error = capture
            .statistics(&network, &grads, &FisherEstimate::Empirical)
            .unwrap_err();
        assert_eq!(error, CaptureError::NotAutodiff);
    }
}
