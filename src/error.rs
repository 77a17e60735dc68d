//! Error types of the public surface, one enum per surface.

use std::path::PathBuf;

/// An [`ExpandableMlpConfig`](crate::ExpandableMlpConfig) that cannot describe a network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A size that must be positive is zero.
    #[error("{what} is 0; it must be at least 1")]
    ZeroSize {
        /// Which size: `d_input`, `d_output` or `hidden[i]`.
        what: String,
    },
    /// An initial hidden layer is wider than `max_width`.
    #[error("hidden layer {layer} starts with {width} neurons, above max_width = {max_width}")]
    WidthAboveLimit {
        /// Index of the hidden layer.
        layer: usize,
        /// Its initial width.
        width: usize,
        /// The configured limit.
        max_width: usize,
    },
    /// The initial network has more hidden layers than `max_depth`.
    #[error("the network starts with {depth} hidden layers, above max_depth = {max_depth}")]
    DepthAboveLimit {
        /// Initial number of hidden layers.
        depth: usize,
        /// The configured limit.
        max_depth: usize,
    },
    /// A limit that must be positive is zero.
    #[error("{what} is 0; use None for no limit or a value of at least 1")]
    ZeroLimit {
        /// Which limit: `max_width` or `max_depth`.
        what: &'static str,
    },
    /// A parameter of the activation initialisation is negative or not finite.
    #[error("activation initialisation {what} = {value} is invalid; it must be finite and >= 0")]
    InvalidActivationInit {
        /// Which parameter.
        what: &'static str,
        /// Its value.
        value: f64,
    },
}

/// A growth operation that cannot be applied. Growth operations borrow the network, so the
/// original is still there, unchanged, when one fails.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GrowthError {
    /// The hidden layer index does not exist.
    #[error("hidden layer {layer} does not exist: the network has {depth} hidden layers")]
    LayerOutOfRange {
        /// The requested hidden layer.
        layer: usize,
        /// The number of hidden layers.
        depth: usize,
    },
    /// A layer cannot be inserted at this position.
    #[error("cannot insert a layer at position {position}: valid positions are 0..={depth}")]
    PositionOutOfRange {
        /// The requested position.
        position: usize,
        /// The number of hidden layers.
        depth: usize,
    },
    /// A tensor handed to a growth operation has the wrong shape.
    #[error("{what} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Which tensor.
        what: &'static str,
        /// The shape the operation needs.
        expected: Vec<usize>,
        /// The shape it received.
        actual: Vec<usize>,
    },
    /// The operation would make a hidden layer wider than `max_width`.
    #[error("hidden layer {layer} would have {width} neurons, above max_width = {max_width}")]
    WidthLimit {
        /// The hidden layer (after the operation).
        layer: usize,
        /// Its width after the operation.
        width: usize,
        /// The configured limit.
        max_width: usize,
    },
    /// The operation would give the network more hidden layers than `max_depth`.
    #[error("the network would have {depth} hidden layers, above max_depth = {max_depth}")]
    DepthLimit {
        /// The depth after the operation.
        depth: usize,
        /// The configured limit.
        max_depth: usize,
    },
    /// The basis of an inserted layer has no usable inverse.
    #[error(
        "the basis of the layer inserted at position {position} is singular or too badly \
         conditioned to invert (smallest pivot {pivot:e}); pass an invertible matrix"
    )]
    SingularBasis {
        /// The requested position.
        position: usize,
        /// The smallest relative pivot met during elimination.
        pivot: f64,
    },
    /// A tensor handed to a growth operation holds NaN or infinite values.
    #[error("{what} contains NaN or infinite values")]
    NonFinite {
        /// Which tensor.
        what: &'static str,
    },
}

/// A failure to save or load an [`ExpandableMlp`](crate::ExpandableMlp).
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// The file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a burnpack file at all.
    #[error("{path} is not a saved model: it does not start with the burnpack header")]
    NotAModel {
        /// The file.
        path: PathBuf,
    },
    /// The file starts like a model but is cut short or damaged.
    #[error("{path} is truncated or corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the reader found.
        reason: String,
    },
    /// The file is a burnpack file but does not hold an `ExpandableMlp`.
    #[error("{path} does not hold an ExpandableMlp: {reason}")]
    NotAnExpandableMlp {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The architecture JSON does not describe the weights it accompanies.
    #[error("architecture {json} does not match the weights in {path}: {reason}")]
    ArchitectureMismatch {
        /// The weights file.
        path: PathBuf,
        /// The architecture file.
        json: PathBuf,
        /// The first disagreement found.
        reason: String,
    },
    /// The architecture JSON cannot be parsed.
    #[error("{path} is not a valid architecture description: {reason}")]
    InvalidArchitecture {
        /// The architecture file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
}

/// A batch of inputs that a network cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// The batch has no examples.
    #[error("the batch is empty; it needs at least one example")]
    Empty,
    /// The examples have the wrong number of features.
    #[error("the inputs have {actual} features per example; the network expects {expected}")]
    FeatureCount {
        /// The network's `d_input`.
        expected: usize,
        /// The inputs' second dimension.
        actual: usize,
    },
    /// Some inputs are NaN or infinite.
    #[error("the inputs hold {count} NaN or infinite values; every value must be finite")]
    NonFinite {
        /// How many values are not finite.
        count: usize,
    },
    /// A training example has the wrong number of features or targets.
    #[error("example {index} has {actual} {what}; the network expects {expected}")]
    ExampleSize {
        /// The example's position.
        index: usize,
        /// `features` or `targets`.
        what: &'static str,
        /// The network's `d_input` or `d_output`.
        expected: usize,
        /// The example's count.
        actual: usize,
    },
    /// A training example holds a NaN or infinite value.
    #[error("example {index} has a NaN or infinite value in its {what}")]
    ExampleNonFinite {
        /// The example's position.
        index: usize,
        /// `features` or `targets`.
        what: &'static str,
    },
    /// A classification example's label is not one of the network's classes.
    #[error("example {index} has label {label}; the network has {classes} classes, 0 to {}", classes - 1)]
    LabelOutOfRange {
        /// The example's position.
        index: usize,
        /// The label.
        label: usize,
        /// The network's `d_output`.
        classes: usize,
    },
}

/// Why [`NaturalGradient::train_step`](crate::NaturalGradient::train_step) took no step; the
/// network is left as it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainStepError {
    /// The inputs do not fit the network.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The forward pass could not be captured (not on an autodiff device).
    #[error(transparent)]
    Capture(#[from] crate::CaptureError),
}

/// Why a network could not be scored for expansion.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpansionError {
    /// The batch has no examples.
    #[error("the scoring batch is empty; it needs at least one example")]
    EmptyBatch,
    /// The batch does not fit the network.
    #[error(
        "the scoring batch does not fit the network: inputs are {inputs:?} and output gradients \
         {output_gradients:?}, expected [n, {}] and [n, {}]",
        expected[0],
        expected[1]
    )]
    ShapeMismatch {
        /// The network's `[d_input, d_output]`.
        expected: [usize; 2],
        /// The inputs' shape.
        inputs: [usize; 2],
        /// The output gradients' shape.
        output_gradients: [usize; 2],
    },
    /// NaN or infinite values where scores are computed.
    #[error("the {what} holds NaN or infinite values; nothing is scored")]
    NonFinite {
        /// What was not finite: the batch, a factor or the scores.
        what: &'static str,
    },
}

/// A [`GrowthReport`](crate::report::GrowthReport) or figure that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a growth report.
    #[error("{path} is not a growth report: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the JSON reader found.
        reason: String,
    },
    /// The figure's file name ends in neither `.svg` nor `.png`.
    #[error("cannot draw {path}: the file name must end in .svg or .png")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// The plotting library failed.
    #[error("cannot draw {path}: {reason}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
