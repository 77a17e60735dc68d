//! [`ExpandableMlp`], its configuration and its description.

use std::fmt;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::activation::{RationalActivation, RationalInit};
use crate::curvature::LayerCurvature;
use crate::error::{ConfigError, InputError};
use crate::expansion::empty_history;
use crate::layer::ExpandableLayer;

/// Configuration of an [`ExpandableMlp`], turned into one by [`init`](Self::init).
///
/// The same type describes a grown network: [`ExpandableMlp::config`] returns a configuration
/// whose `hidden` holds the current widths.
#[derive(Config, Debug, PartialEq)]
pub struct ExpandableMlpConfig {
    /// The number of input features.
    pub d_input: usize,
    /// The number of outputs.
    pub d_output: usize,
    /// Initial widths of the hidden layers, first to last. Default: none, so the network starts
    /// as a single affine map from inputs to outputs.
    #[config(default = "Vec::new()")]
    pub hidden: Vec<usize>,
    /// How the (v, c, l) of the hidden neurons' rational activations are drawn. Default:
    /// N(0, 1) each, as in the method's reference experiments.
    #[config(default = "RationalInit::Normal { std: 1.0 }")]
    pub activation: RationalInit,
    /// How weights are drawn. Default: LeCun normal, N(0, 1/d_input).
    #[config(default = "Initializer::KaimingNormal { gain: 1.0, fan_out_only: false }")]
    pub initializer: Initializer,
    /// How biases are drawn. Default: zeros.
    #[config(default = "Initializer::Zeros")]
    pub bias_initializer: Initializer,
    /// The largest width any hidden layer may grow to. Default: no limit.
    #[config(default = "None")]
    pub max_width: Option<usize>,
    /// The largest number of hidden layers. Default: no limit.
    #[config(default = "None")]
    pub max_depth: Option<usize>,
}

/// A multilayer perceptron whose hidden layers can grow in width and depth while the function
/// it computes stays the same.
///
/// Hidden layers are dense layers followed by a per-neuron [`RationalActivation`]; the output
/// layer is affine. Widths are the shapes of the weights, so a record of the module describes
/// its architecture by itself.
///
/// Growth: [`widen`](Self::widen) and [`insert_layer`](Self::insert_layer).
/// Persistence: [`save`](Self::save) and [`load`](Self::load).
#[derive(Module, Debug)]
pub struct ExpandableMlp {
    /// The hidden layers, then the output layer (always last, never activated).
    pub(crate) layers: Vec<ExpandableLayer>,
    /// Natural-gradient counters `[steps, factor updates, expansion check interval]` (not
    /// trainable). Saved with the model, so a resumed run continues its schedules.
    pub(crate) step_counts: Param<Tensor<1>>,
    /// The expansion history (not trainable), encoded as described in
    /// [`ExpansionHistory`](crate::ExpansionHistory)'s module.
    pub(crate) history: Param<Tensor<2>>,
    /// The configuration the network was built or loaded from; its `hidden` is not kept up to
    /// date as the network grows (see [`ExpandableMlp::config`]).
    #[module(skip)]
    pub(crate) config: ExpandableMlpConfig,
}

/// A serialisable description of an [`ExpandableMlp`]'s current shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// The number of input features.
    pub d_input: usize,
    /// The number of outputs.
    pub d_output: usize,
    /// The width of each hidden layer, first to last.
    pub hidden: Vec<usize>,
    /// The number of hidden layers.
    pub depth: usize,
    /// The number of trainable scalars: weights, biases and activation parameters.
    pub num_params: usize,
}

impl fmt::Display for Architecture {
    /// Writes `d_input-w1-…-wn-d_output (p parameters)`, e.g. `2-5-3-1 (38 parameters)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.d_input)?;
        for width in &self.hidden {
            write!(f, "-{width}")?;
        }
        write!(f, "-{} ({} parameters)", self.d_output, self.num_params)
    }
}

impl ExpandableMlpConfig {
    /// Checks that the configuration describes a network.
    ///
    /// # Returns
    ///
    /// The first problem found: a zero size, a zero limit, an initial width above
    /// `max_width`, more initial layers than `max_depth`, or an invalid activation
    /// initialisation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = |what: String| Err(ConfigError::ZeroSize { what });
        if self.d_input == 0 {
            return zero("d_input".into());
        }
        if self.d_output == 0 {
            return zero("d_output".into());
        }
        if let Some(layer) = self.hidden.iter().position(|&width| width == 0) {
            return zero(format!("hidden[{layer}]"));
        }
        self.validate_limits()?;
        self.activation.validate()
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        if self.max_width == Some(0) {
            return Err(ConfigError::ZeroLimit { what: "max_width" });
        }
        if let Some(max_width) = self.max_width {
            if let Some(layer) = self.hidden.iter().position(|&width| width > max_width) {
                let width = self.hidden[layer];
                return Err(ConfigError::WidthAboveLimit {
                    layer,
                    width,
                    max_width,
                });
            }
        }
        match self.max_depth {
            Some(max_depth) if self.hidden.len() > max_depth => Err(ConfigError::DepthAboveLimit {
                depth: self.hidden.len(),
                max_depth,
            }),
            _ => Ok(()),
        }
    }

    /// Builds the network on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<ExpandableMlp, ConfigError> {
        self.validate()?;
        let mut sizes = vec![self.d_input];
        sizes.extend(&self.hidden);
        sizes.push(self.d_output);

        let last = sizes.len() - 2;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(index, pair)| self.init_layer(pair[0], pair[1], index < last, device))
            .collect();
        Ok(ExpandableMlp {
            layers,
            step_counts: Initializer::Zeros
                .init_with([3], None, None, device)
                .set_require_grad(false),
            history: empty_history(&self.hidden, device),
            config: self.clone(),
        })
    }

    /// Builds the network on `device`.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid; [`try_init`](Self::try_init) returns the error instead.
    pub fn init(&self, device: &Device) -> ExpandableMlp {
        self.try_init(device)
            .unwrap_or_else(|error| panic!("invalid ExpandableMlpConfig: {error}"))
    }

    fn init_layer(
        &self,
        d_input: usize,
        d_output: usize,
        hidden: bool,
        device: &Device,
    ) -> ExpandableLayer {
        let fans = (Some(d_input), Some(d_output));
        ExpandableLayer {
            weight: self
                .initializer
                .init_with([d_input, d_output], fans.0, fans.1, device),
            bias: self
                .bias_initializer
                .init_with([d_output], fans.0, fans.1, device),
            activation: hidden
                .then(|| RationalActivation::new(self.activation.sample(d_output, device))),
            curvature: LayerCurvature::zeros(d_input, d_output, hidden, device),
        }
    }
}

impl ExpandableMlp {
    /// The network's output for a batch of inputs.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, d_input]`
    /// - output: `[batch, d_output]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.layers
            .iter()
            .fold(input, |activations, layer| layer.forward(activations))
    }

    /// Checks that `input` is a batch this network can take: at least one example,
    /// `d_input` features each, every value finite. (This reads the batch back from the
    /// device once.)
    pub fn check_inputs(&self, input: &Tensor<2>) -> Result<(), InputError> {
        self.check_input_shape(input)?;
        let bad = input.clone().is_finite().bool_not().int().sum();
        match bad.into_scalar::<i64>() {
            0 => Ok(()),
            count => Err(InputError::NonFinite {
                count: count as usize,
            }),
        }
    }

    /// The part of [`check_inputs`](Self::check_inputs) that needs no values: the feature
    /// count and at least one example.
    pub(crate) fn check_input_shape(&self, input: &Tensor<2>) -> Result<(), InputError> {
        let [batch, features] = input.dims();
        let expected = self.d_input();
        if features != expected {
            return Err(InputError::FeatureCount {
                expected,
                actual: features,
            });
        }
        if batch == 0 {
            return Err(InputError::Empty);
        }
        Ok(())
    }

    /// [`forward`](Self::forward) after [`check_inputs`](Self::check_inputs): an error instead
    /// of a panic (or NaN outputs) for a batch the network cannot take.
    pub fn try_forward(&self, input: Tensor<2>) -> Result<Tensor<2>, InputError> {
        self.check_inputs(&input)?;
        Ok(self.forward(input))
    }

    /// The layers, hidden layers first and the output layer last.
    pub fn layers(&self) -> &[ExpandableLayer] {
        &self.layers
    }

    /// The number of hidden layers.
    pub fn depth(&self) -> usize {
        self.layers.len() - 1
    }

    /// The width of each hidden layer.
    pub fn hidden_widths(&self) -> Vec<usize> {
        self.layers[..self.depth()]
            .iter()
            .map(ExpandableLayer::d_output)
            .collect()
    }

    /// The number of input features.
    pub fn d_input(&self) -> usize {
        self.layers[0].d_input()
    }

    /// The number of outputs.
    pub fn d_output(&self) -> usize {
        self.layers[self.depth()].d_output()
    }

    /// The current shape of the network.
    pub fn architecture(&self) -> Architecture {
        let hidden = self.hidden_widths();
        Architecture {
            d_input: self.d_input(),
            d_output: self.d_output(),
            depth: hidden.len(),
            hidden,
            num_params: self.layers.iter().map(ExpandableLayer::num_params).sum(),
        }
    }

    /// The configuration of the network as it is now: the one it was built from, with
    /// `hidden` set to the current widths. `config().init(device)` builds a network of the same
    /// shape (with fresh weights).
    pub fn config(&self) -> ExpandableMlpConfig {
        self.config.clone().with_hidden(self.hidden_widths())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_device;

    #[test]
    fn init_builds_the_configured_shape() {
        let device = test_device();
        let mlp = ExpandableMlpConfig::new(3, 2)
            .with_hidden(vec![4, 5])
            .init(&device);
        let architecture = mlp.architecture();
        assert_eq!(architecture.hidden, vec![4, 5]);
        assert_eq!(architecture.depth, 2);
        // (3+1+3)·4 + (4+1+3)·5 + (5+1)·2
        assert_eq!(architecture.num_params, 28 + 40 + 12);
        assert_eq!(architecture.to_string(), "3-4-5-2 (80 parameters)");
        let output = mlp.forward(Tensor::ones([7, 3], &device));
        assert_eq!(output.dims(), [7, 2]);
    }

    #[test]
    fn empty_hidden_list_is_an_affine_map() {
        let device = test_device();
        let mlp = ExpandableMlpConfig::new(3, 2).init(&device);
        assert_eq!(mlp.depth(), 0);
        assert!(mlp.layers()[0].activation.is_none());
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device);
        let expected = x.clone().matmul(mlp.layers()[0].weight.val());
        let error = (mlp.forward(x) - expected).abs().max().into_scalar::<f32>();
        assert!(error < 1e-6);
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let device = test_device();
        let cases = [
            (ExpandableMlpConfig::new(0, 1), "d_input is 0"),
            (ExpandableMlpConfig::new(1, 0), "d_output is 0"),
            (
                ExpandableMlpConfig::new(1, 1).with_hidden(vec![2, 0]),
                "hidden[1] is 0",
            ),
            (
                ExpandableMlpConfig::new(1, 1)
                    .with_hidden(vec![2, 5])
                    .with_max_width(Some(4)),
                "hidden layer 1 starts with 5 neurons, above max_width = 4",
            ),
            (
                ExpandableMlpConfig::new(1, 1)
                    .with_hidden(vec![2, 2])
                    .with_max_depth(Some(1)),
                "the network starts with 2 hidden layers, above max_depth = 1",
            ),
            (
                ExpandableMlpConfig::new(1, 1).with_max_width(Some(0)),
                "max_width is 0",
            ),
        ];
        for (config, message) in cases {
            let error = config.try_init(&device).expect_err(message);
            assert!(error.to_string().starts_with(message), "{error}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid ExpandableMlpConfig: d_output is 0")]
    fn init_panics_on_invalid_configuration() {
        ExpandableMlpConfig::new(1, 0).init(&test_device());
    }
}
