//! Self-Expanding Neural Networks for [burn](https://burn.dev).
//!
//! A self-expanding network starts small and adds neurons (width) and layers (depth) during
//! training, only where they are needed, and always so that the function it computes does not
//! change at the moment of growth (Mitchell, Menzenbach, Kersting, Mundt, *Self-Expanding
//! Neural Networks*).
//!
//! This crate provides [`ExpandableMlp`], a burn [`Module`](burn::module::Module) that can be
//! used alone or as a field of any model, together with exact, function-preserving growth
//! operations: [`ExpandableMlp::widen`] adds neurons whose outgoing weights start at zero, and
//! [`ExpandableMlp::insert_layer`] adds a layer that starts as an invertible linear map (with
//! an identity [`RationalActivation`]) whose inverse is folded into the next layer.
//!
//! Training: [`NaturalGradient`] is a K-FAC natural-gradient optimiser whose curvature
//! factors live in the layers ([`LayerCurvature`]), are saved with them and grow with them.
//! [`ExpandableMlp::forward_capture`] records what the factors need; the statistics travel
//! inside burn's `GradientsParams` to [`NaturalGradient::step`]. With the `train` feature,
//! `ExpandableClassifier` and `ExpandableRegressor` train through burn's `Learner`.
//!
//! Self-expansion: with [`NaturalGradientConfig::with_expansion`], the optimiser checks every
//! few steps whether new neurons or layers would speed up training enough, by the natural
//! expansion score and its lower bound (see the [`expansion`] module), grows the network
//! where they would, and records every growth in the network's [`ExpansionHistory`].
//!
//! Reports: [`report::GrowthReport`] records a run (losses, widths, expansions, metrics) and
//! saves it as JSON; with the `plot` feature it also draws it (SVG or PNG).
//!
//! The code names no backend: it runs on whatever burn device it is given (Flex, NdArray,
//! wgpu, CUDA), chosen by this crate's Cargo features.
//!
//! # Example
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use burn_senn::{ExpandableMlpConfig, NewLayer};
//!
//! let device = Device::default();
//! let mlp = ExpandableMlpConfig::new(2, 1).with_hidden(vec![3]).init(&device);
//! let x = Tensor::<2>::random([8, 2], Distribution::Normal(0.0, 1.0), &device);
//! let before = mlp.forward(x.clone());
//!
//! // Four more neurons in the hidden layer, then a new layer right before the output.
//! let mlp = mlp.widen_random(0, 4).unwrap();
//! let mlp = mlp.insert_layer(1, NewLayer::identity(7, &device)).unwrap();
//! assert_eq!(mlp.architecture().hidden, vec![7, 7]);
//!
//! let after = mlp.forward(x);
//! let change = (after - before.clone()).abs().max().into_scalar::<f32>();
//! let scale = before.abs().max().into_scalar::<f32>();
//! assert!(change <= 1e-5 * scale.max(1.0));
//! ```
#![deny(missing_docs)]

mod activation;
pub mod backends;
mod curvature;
pub mod datasets;
mod error;
pub mod expansion;
mod growth;
mod io;
mod layer;
mod linalg;
mod mlp;
mod optim;
mod param;
#[cfg(feature = "plot")]
pub mod plot;
mod random;
pub mod report;
#[cfg(feature = "train")]
mod train;

pub use activation::{RationalActivation, RationalInit, RationalParams, RATIONAL_EPSILON};
pub use curvature::{
    CaptureError, CurvatureCapture, CurvatureStatistics, FisherEstimate, LayerCurvature,
    LayerStatistics, OutputDistribution,
};
pub use error::{
    ConfigError, ExpansionError, GrowthError, InputError, PersistenceError, ReportError,
    TrainStepError,
};
pub use expansion::{
    ExpansionConfig, ExpansionEvent, ExpansionHistory, ExpansionKind, NetworkScores, ScoringData,
};
pub use growth::{NewLayer, NewNeurons};
pub use io::{SavedArchitecture, SavedFiles, CONFIG_METADATA_KEY};
pub use layer::ExpandableLayer;
pub use mlp::{Architecture, ExpandableMlp, ExpandableMlpConfig};
pub use optim::{NaturalGradient, NaturalGradientConfig, OptimizerConfigError};
#[cfg(feature = "train")]
pub use train::{
    gather_gradients, half_squared_error, ClassificationBatch, ClassificationItem,
    ExpandableBatcher, ExpandableClassifier, ExpandableRegressor, RegressionBatch, RegressionItem,
};

/// The device unit tests run on: Flex when it is compiled in, else burn's default.
#[cfg(test)]
pub(crate) fn test_device() -> burn::tensor::Device {
    #[cfg(feature = "flex")]
    return burn::tensor::Device::flex();
    #[cfg(not(feature = "flex"))]
    return burn::tensor::Device::default();
}
