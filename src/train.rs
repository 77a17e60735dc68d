//! Training through burn's `Learner` (`SupervisedTraining`): ready model wrappers for
//! classification and regression, batchers, and the helpers a user's own model needs.
//!
//! # A user's own model
//!
//! A model that contains an [`ExpandableMlp`] next to other burn layers implements
//! `TrainStep` in a few lines (as with any burn model, a model that has already run on a
//! device without autodiff must be put back in training mode with `.train()` before it is
//! handed to the Learner, or its parameters will not track gradients): capture in `step`, natural gradient for the expandable part and
//! the Learner's stock optimiser for the rest in `optimize`.
//!
//! ```rust,ignore
//! #[derive(Module, Debug)]
//! struct MyModel {
//!     embedding: Embedding,
//!     head: ExpandableMlp,
//!     #[module(skip)]
//!     natural_gradient: NaturalGradient,
//! }
//!
//! impl TrainStep for MyModel {
//!     type Input = MyBatch;
//!     type Output = ClassificationOutput;
//!
//!     fn step(&self, batch: MyBatch) -> TrainOutput<ClassificationOutput> {
//!         let features = self.embedding.forward(batch.tokens).mean_dim(1).squeeze_dim(1);
//!         let (logits, capture) = self.head.forward_capture(features);
//!         let loss = CrossEntropyLossConfig::new()
//!             .init(&logits.device())
//!             .forward(logits.clone(), batch.targets.clone());
//!         let mut grads = loss.backward();
//!         let statistics = capture
//!             .statistics(&self.head, &grads, &self.natural_gradient.config().fisher)
//!             .expect("the Learner trains on an autodiff device");
//!         let mut params = GradientsParams::from_module(&mut grads, self);
//!         statistics.register(&self.head, &mut params);
//!         let item = ClassificationOutput::new(loss, logits, batch.targets);
//!         TrainOutput { grads: params, item }
//!     }
//!
//!     fn optimize(mut self, optim: &mut ModuleOptimizer, lr: ModuleLearningRate, mut grads: GradientsParams) -> Self {
//!         self.head = self.natural_gradient.step(lr.base(), self.head, &mut grads);
//!         optim.step(lr, self, grads) // the embedding, with the Learner's optimiser
//!     }
//! }
//! ```

use burn::data::dataloader::batcher::Batcher;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::{ClassificationOutput, InferenceStep, RegressionOutput, TrainOutput, TrainStep};

use crate::curvature::CurvatureCapture;
use crate::datasets::{ClassificationSet, RegressionSet};
use crate::error::InputError;
use crate::mlp::ExpandableMlp;
use crate::optim::NaturalGradient;

/// One labelled example for classification.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassificationItem {
    /// The features.
    pub features: Vec<f32>,
    /// The class index.
    pub label: usize,
}

/// One example for regression.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegressionItem {
    /// The features.
    pub features: Vec<f32>,
    /// The targets.
    pub targets: Vec<f32>,
}

/// A batch of [`ClassificationItem`]s.
#[derive(Debug, Clone)]
pub struct ClassificationBatch {
    /// Features, `[batch, d_input]`.
    pub inputs: Tensor<2>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
}

/// A batch of [`RegressionItem`]s.
#[derive(Debug, Clone)]
pub struct RegressionBatch {
    /// Features, `[batch, d_input]`.
    pub inputs: Tensor<2>,
    /// Targets, `[batch, d_output]`.
    pub targets: Tensor<2>,
}

impl ClassificationSet {
    /// The examples as items for [`ExpandableBatcher`] and burn's datasets.
    pub fn items(self) -> Vec<ClassificationItem> {
        self.features
            .into_iter()
            .zip(self.labels)
            .map(|(features, label)| ClassificationItem { features, label })
            .collect()
    }
}

impl RegressionSet {
    /// The examples as items for [`ExpandableBatcher`] and burn's datasets.
    pub fn items(self) -> Vec<RegressionItem> {
        self.features
            .into_iter()
            .zip(self.targets)
            .map(|(features, targets)| RegressionItem { features, targets })
            .collect()
    }
}

/// Checks one example's values against the expected count.
fn check_values(
    index: usize,
    what: &'static str,
    values: &[f32],
    expected: usize,
) -> Result<(), InputError> {
    if values.len() != expected {
        return Err(InputError::ExampleSize {
            index,
            what,
            expected,
            actual: values.len(),
        });
    }
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(InputError::ExampleNonFinite { index, what })
    }
}

impl ExpandableMlp {
    /// Checks classification examples before they go to a Learner, whose `TrainStep` cannot
    /// return an error: at least one example, `d_input` finite features each, labels below
    /// `d_output`. The first bad example is named in the error.
    pub fn check_classification_items(
        &self,
        items: &[ClassificationItem],
    ) -> Result<(), InputError> {
        let (d_input, classes) = (self.d_input(), self.d_output());
        if items.is_empty() {
            return Err(InputError::Empty);
        }
        for (index, item) in items.iter().enumerate() {
            check_values(index, "features", &item.features, d_input)?;
            if item.label >= classes {
                return Err(InputError::LabelOutOfRange {
                    index,
                    label: item.label,
                    classes,
                });
            }
        }
        Ok(())
    }

    /// Checks regression examples before they go to a Learner: at least one example,
    /// `d_input` finite features and `d_output` finite targets each. The first bad example is
    /// named in the error.
    pub fn check_regression_items(&self, items: &[RegressionItem]) -> Result<(), InputError> {
        let (d_input, d_output) = (self.d_input(), self.d_output());
        if items.is_empty() {
            return Err(InputError::Empty);
        }
        for (index, item) in items.iter().enumerate() {
            check_values(index, "features", &item.features, d_input)?;
            check_values(index, "targets", &item.targets, d_output)?;
        }
        Ok(())
    }
}

/// Turns items into batches on the Learner's device. Items must have equal lengths (check
/// them first with [`ExpandableMlp::check_classification_items`] or
/// [`ExpandableMlp::check_regression_items`]: a batcher cannot return an error, so it panics
/// on items of different lengths).
#[derive(Debug, Clone, Default)]
pub struct ExpandableBatcher;

fn stack(rows: Vec<Vec<f32>>, device: &Device) -> Tensor<2> {
    let width = rows.first().map_or(0, Vec::len);
    assert!(
        rows.iter().all(|r| r.len() == width),
        "every item of a batch must have {width} values"
    );
    let shape = [rows.len(), width];
    Tensor::from_data(TensorData::new(rows.concat(), shape), device)
}

impl Batcher<ClassificationItem, ClassificationBatch> for ExpandableBatcher {
    fn batch(&self, items: Vec<ClassificationItem>, device: &Device) -> ClassificationBatch {
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        let count = labels.len();
        ClassificationBatch {
            inputs: stack(items.into_iter().map(|i| i.features).collect(), device),
            targets: Tensor::from_data(TensorData::new(labels, [count]), device),
        }
    }
}

impl Batcher<RegressionItem, RegressionBatch> for ExpandableBatcher {
    fn batch(&self, items: Vec<RegressionItem>, device: &Device) -> RegressionBatch {
        let (features, targets) = items.into_iter().map(|i| (i.features, i.targets)).unzip();
        RegressionBatch {
            inputs: stack(features, device),
            targets: stack(targets, device),
        }
    }
}

/// An [`ExpandableMlp`] trained by the [`NaturalGradient`] optimiser it carries, for
/// classification with softmax cross-entropy. The Learner's own optimiser is not used (pass
/// a stateless one such as `SgdConfig::new().init()`); the Learner's learning rate and
/// schedulers are.
#[derive(Module, Debug)]
pub struct ExpandableClassifier {
    /// The network; its outputs are logits.
    pub network: ExpandableMlp,
    /// The optimiser (not part of the record: its state lives in the network).
    #[module(skip)]
    pub optimizer: NaturalGradient,
}

/// An [`ExpandableMlp`] trained by the [`NaturalGradient`] optimiser it carries, for
/// regression with the mean squared error ½‖y − t‖² averaged over the batch (per output
/// dimension summed). See [`ExpandableClassifier`] for the Learner's optimiser.
#[derive(Module, Debug)]
pub struct ExpandableRegressor {
    /// The network.
    pub network: ExpandableMlp,
    /// The optimiser (not part of the record: its state lives in the network).
    #[module(skip)]
    pub optimizer: NaturalGradient,
}

impl ExpandableClassifier {
    /// Wraps `network` with `optimizer`, in training mode (see [`Module::train`]), so that
    /// its parameters track gradients once the Learner moves it to its autodiff device even
    /// if the network was already used on a device without autodiff.
    pub fn new(network: ExpandableMlp, optimizer: NaturalGradient) -> Self {
        let network = network.train();
        Self { network, optimizer }
    }

    fn forward_loss(&self, batch: ClassificationBatch) -> (ClassificationOutput, CurvatureCapture) {
        let (logits, capture) = self.network.forward_capture(batch.inputs);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        (
            ClassificationOutput::new(loss, logits, batch.targets),
            capture,
        )
    }
}

impl ExpandableRegressor {
    /// Wraps `network` with `optimizer`, in training mode: see [`ExpandableClassifier::new`].
    pub fn new(network: ExpandableMlp, optimizer: NaturalGradient) -> Self {
        let network = network.train();
        Self { network, optimizer }
    }

    fn forward_loss(&self, batch: RegressionBatch) -> (RegressionOutput, CurvatureCapture) {
        let (output, capture) = self.network.forward_capture(batch.inputs);
        let loss = half_squared_error(output.clone(), batch.targets.clone());
        (RegressionOutput::new(loss, output, batch.targets), capture)
    }
}

/// ½‖y − t‖² per example, averaged over the batch.
pub fn half_squared_error(output: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (output - targets).square().sum_dim(1).mean() * 0.5
}

/// The Learner's item, with the statistics registered beside the gradients.
fn train_output<O>(
    network: &ExpandableMlp,
    optimizer: &NaturalGradient,
    loss: &Tensor<1>,
    capture: CurvatureCapture,
    item: O,
) -> TrainOutput<O> {
    let grads = capture
        .into_gradients(network, loss.backward(), &optimizer.config().fisher)
        .expect("the Learner trains on an autodiff device");
    TrainOutput { grads, item }
}

/// `TrainStep` and `InferenceStep` for a wrapper with fields `network` and `optimizer` and a
/// `forward_loss(batch) -> (item, capture)`: the natural-gradient step replaces the
/// Learner's optimiser.
macro_rules! natural_gradient_steps {
    ($model:ty, $batch:ty, $output:ty) => {
        impl TrainStep for $model {
            type Input = $batch;
            type Output = $output;

            fn step(&self, batch: $batch) -> TrainOutput<$output> {
                let (item, capture) = self.forward_loss(batch);
                let loss = item.loss.clone();
                train_output(&self.network, &self.optimizer, &loss, capture, item)
            }

            fn optimize(
                mut self,
                _optim: &mut ModuleOptimizer,
                lr: ModuleLearningRate,
                mut grads: GradientsParams,
            ) -> Self {
                self.network = self.optimizer.step(lr.base(), self.network, &mut grads);
                self
            }

            fn optimize_multi(
                mut self,
                _optim: &mut ModuleOptimizer,
                lr: ModuleLearningRate,
                mut grads: MultiGradientsParams,
            ) -> Self {
                let mut grads = gather_gradients(&self.network, &mut grads);
                self.network = self.optimizer.step(lr.base(), self.network, &mut grads);
                self
            }
        }

        impl InferenceStep for $model {
            type Input = $batch;
            type Output = $output;

            fn step(&self, batch: $batch) -> $output {
                self.forward_loss(batch).0
            }
        }
    };
}

natural_gradient_steps!(
    ExpandableClassifier,
    ClassificationBatch,
    ClassificationOutput
);
natural_gradient_steps!(ExpandableRegressor, RegressionBatch, RegressionOutput);

/// Collects every float parameter's id and rank.
#[derive(Default)]
struct ParamRanks(Vec<(ParamId, usize)>);

impl ModuleVisitor for ParamRanks {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push((param.id, D));
    }
}

/// Moves the network's entries (gradients and statistics) out of multi-device gradients,
/// summed over the devices and placed on the network's device, into one `GradientsParams`
/// for [`NaturalGradient::step`]. What remains is left for the Learner's optimiser.
pub fn gather_gradients(
    network: &ExpandableMlp,
    grads: &mut MultiGradientsParams,
) -> GradientsParams {
    let mut ranks = ParamRanks::default();
    network.visit(&mut ranks);
    let device = network.layers()[0].weight.val().device().inner();
    let mut gathered = GradientsParams::new();
    for (id, rank) in ranks.0 {
        match rank {
            1 => {
                if let Some((tensor, _)) = grads.remove::<1>(id) {
                    gathered.register(id, tensor.to_device(&device));
                }
            }
            2 => {
                if let Some((tensor, _)) = grads.remove::<2>(id) {
                    gathered.register(id, tensor.to_device(&device));
                }
            }
            _ => unreachable!("ExpandableMlp holds only rank-1 and rank-2 tensors"),
        }
    }
    gathered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sets_become_items_in_order() {
        let classification = ClassificationSet {
            features: vec![vec![1.0, 2.0], vec![3.0, 4.0]],
            labels: vec![1, 0],
        };
        assert_eq!(
            classification.items(),
            vec![
                ClassificationItem {
                    features: vec![1.0, 2.0],
                    label: 1
                },
                ClassificationItem {
                    features: vec![3.0, 4.0],
                    label: 0
                },
            ]
        );
        let regression = RegressionSet {
            features: vec![vec![1.0], vec![2.0]],
            targets: vec![vec![0.5, -0.5], vec![1.5, -1.5]],
        };
        assert_eq!(
            regression.items(),
            vec![
                RegressionItem {
                    features: vec![1.0],
                    targets: vec![0.5, -0.5]
                },
                RegressionItem {
                    features: vec![2.0],
                    targets: vec![1.5, -1.5]
                },
            ]
        );
    }
}
