//! Training through burn's Learner: wrappers, gradient accumulation, several devices, and
//! resuming a grown model from a checkpoint.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsAccumulator, MultiGradientsParams, SgdConfig};
use burn::tensor::Device;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use burn_senn::{
    ClassificationBatch, ClassificationItem, CurvatureStatistics, ExpandableBatcher,
    ExpandableClassifier, ExpandableMlp, ExpandableMlpConfig, ExpandableRegressor, ExpansionConfig,
    FisherEstimate, NaturalGradientConfig, RegressionBatch, RegressionItem,
};

use burn_senn::datasets::ClassificationSet;

use crate::common::cpu_device;

fn moons(count: usize, seed: u64) -> Vec<ClassificationItem> {
    ClassificationSet::two_moons(count, 0.2, seed).items()
}

fn loader(
    items: Vec<ClassificationItem>,
    batch: usize,
) -> Arc<dyn DataLoader<ClassificationBatch>> {
    DataLoaderBuilder::new(ExpandableBatcher)
        .batch_size(batch)
        .shuffle(7)
        .num_workers(1)
        .build(InMemDataset::new(items))
}

fn batch(items: &[ClassificationItem], device: &Device) -> ClassificationBatch {
    use burn::data::dataloader::batcher::Batcher;
    ExpandableBatcher.batch(items.to_vec(), device)
}

fn classifier(hidden: Vec<usize>, device: &Device) -> ExpandableClassifier {
    let network = ExpandableMlpConfig::new(2, 2)
        .with_hidden(hidden)
        .init(device);
    ExpandableClassifier::new(network, NaturalGradientConfig::new().init())
}

/// Mean loss of `model` on `items`.
fn loss<M: InferenceStep<Input = ClassificationBatch, Output = ClassificationOutput>>(
    model: &M,
    items: &[ClassificationItem],
) -> f32 {
    let device = cpu_device();
    model.step(batch(items, &device)).loss.into_scalar::<f32>()
}

fn accuracy(network: &ExpandableMlp, items: &[ClassificationItem]) -> f32 {
    let device = cpu_device();
    let batch = batch(items, &device);
    let predicted = network.forward(batch.inputs).argmax(1).squeeze_dim::<1>(1);
    let correct = predicted
        .equal(batch.targets)
        .int()
        .sum()
        .into_scalar::<i64>();
    correct as f32 / items.len() as f32
}

fn training(
    directory: &std::path::Path,
    items: &[ClassificationItem],
) -> SupervisedTraining<ExpandableClassifier> {
    SupervisedTraining::new(
        directory,
        loader(items.to_vec(), 32),
        loader(moons(64, 9), 64),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()))
    .with_application_logger(None)
}

#[test]
fn classifier_trains_through_supervised_training() {
    let directory = tempfile::tempdir().unwrap();
    let items = moons(256, 1);
    let model = classifier(vec![8], &cpu_device());
    let before = loss(&model, &items);
    let result = training(directory.path(), &items)
        .num_epochs(6)
        .grads_accumulation(2)
        .launch(Learner::new(model, SgdConfig::new().init(), 0.3));
    assert!(result.error.is_none(), "{:?}", result.error);
    let after = loss(&result.model, &items);
    assert!(after < 0.5 * before, "loss {before} → {after}");
    assert!(accuracy(&result.model.network, &items) > 0.85);
}

#[test]
fn regressor_trains_through_supervised_training() {
    let items: Vec<RegressionItem> = (0..128)
        .map(|i| {
            let x = -2.0 + 4.0 * i as f32 / 127.0;
            RegressionItem {
                features: vec![x],
                targets: vec![(2.0 * x).sin()],
            }
        })
        .collect();
    let regression_loader = |items: Vec<RegressionItem>| -> Arc<dyn DataLoader<RegressionBatch>> {
        DataLoaderBuilder::new(ExpandableBatcher)
            .batch_size(32)
            .shuffle(3)
            .num_workers(1)
            .build(InMemDataset::new(items))
    };
    let network = ExpandableMlpConfig::new(1, 1)
        .with_hidden(vec![8])
        .init(&cpu_device());
    let model = ExpandableRegressor::new(network, NaturalGradientConfig::new().init());
    let everything = || {
        use burn::data::dataloader::batcher::Batcher;
        ExpandableBatcher.batch(items.clone(), &cpu_device())
    };
    let before = InferenceStep::step(&model, everything())
        .loss
        .into_scalar::<f32>();
    let directory = tempfile::tempdir().unwrap();
    let result = SupervisedTraining::new(
        directory.path(),
        regression_loader(items.clone()),
        regression_loader(items.clone()),
    )
    .metrics((LossMetric::new(),))
    .with_application_logger(None)
    .num_epochs(10)
    .launch(Learner::new(model, SgdConfig::new().init(), 0.3));
    assert!(result.error.is_none(), "{:?}", result.error);
    let after = InferenceStep::step(&result.model, everything())
        .loss
        .into_scalar::<f32>();
    assert!(
        after < 0.2 * before,
        "half squared error {before} → {after}"
    );
}

#[test]
fn accumulated_statistics_are_the_mean_over_batches() {
    let device = cpu_device().autodiff();
    let model = classifier(vec![3], &device);
    let items = moons(32, 2);
    let (first, second) = items.split_at(16);
    let output = |part: &[ClassificationItem]| TrainStep::step(&model, batch(part, &device));
    let mut accumulator = GradientsAccumulator::new();
    accumulator.accumulate(&model, output(first).grads);
    accumulator.accumulate(&model, output(second).grads);
    let mut accumulated = accumulator.grads();
    let mean = CurvatureStatistics::take(&model.network, &mut accumulated).unwrap();

    let mut one = output(first).grads;
    let mut two = output(second).grads;
    let one = CurvatureStatistics::take(&model.network, &mut one).unwrap();
    let two = CurvatureStatistics::take(&model.network, &mut two).unwrap();
    for ((m, a), b) in mean.layers.iter().zip(&one.layers).zip(&two.layers) {
        let expected = (a.activation_covariance.clone() + b.activation_covariance.clone()) / 2.0;
        let error = (m.activation_covariance.clone() - expected)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(error < 1e-5, "A differs by {error}");
        let expected = (a.gradient_covariance.clone() + b.gradient_covariance.clone()) / 2.0;
        let error = (m.gradient_covariance.clone() - expected)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(error < 1e-5, "G differs by {error}");
    }
}

#[test]
fn optimize_multi_equals_optimize_on_summed_gradients() {
    let device = cpu_device().autodiff();
    let model = classifier(vec![4], &device);
    let items = moons(32, 3);
    let (first, second) = items.split_at(16);
    let grads = |part: &[ClassificationItem]| TrainStep::step(&model, batch(part, &device)).grads;
    let lr = || ModuleLearningRate::from(0.1);
    let mut optim = SgdConfig::new().init();

    // With NdArray compiled in, the second half's gradients live on a second device.
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    let second_device = Device::ndarray().autodiff();
    #[cfg(not(feature = "ndarray"))]
    let second_device = device.clone();
    let multi = MultiGradientsParams {
        grads: vec![
            (grads(first), device.clone()),
            (
                grads(second).to_device(&second_device, &model),
                second_device.clone(),
            ),
        ],
    };
    let from_multi = model.clone().optimize_multi(&mut optim, lr(), multi);

    let mut accumulator = GradientsAccumulator::new();
    accumulator.accumulate(&model, grads(first));
    accumulator.accumulate(&model, grads(second));
    let from_single = model
        .clone()
        .optimize(&mut optim, lr(), accumulator.grads());

    let a = from_multi.network.forward(batch(&items, &device).inputs);
    let b = from_single.network.forward(batch(&items, &device).inputs);
    let error = (a - b).abs().max().into_scalar::<f32>();
    assert!(error < 1e-5, "outputs differ by {error}");
}

/// An [`ExpandableClassifier`] that grows once, after a given number of optimiser steps:
/// the pattern of a user model that grows inside `optimize`.
#[derive(Module, Debug)]
struct GrowingClassifier {
    inner: ExpandableClassifier,
    #[module(skip)]
    grow_after: Option<usize>,
    #[module(skip)]
    steps: usize,
}

impl TrainStep for GrowingClassifier {
    type Input = ClassificationBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ClassificationBatch) -> TrainOutput<ClassificationOutput> {
        TrainStep::step(&self.inner, batch)
    }

    fn optimize(
        mut self,
        optim: &mut burn::optim::ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: burn::optim::GradientsParams,
    ) -> Self {
        self.inner = self.inner.optimize(optim, lr, grads);
        self.steps += 1;
        if self.grow_after == Some(self.steps) {
            self.inner.network = self
                .inner
                .network
                .widen_random(0, 3)
                .and_then(|n| n.insert_identity_layer(1))
                .expect("growth within limits");
        }
        self
    }
}

impl InferenceStep for GrowingClassifier {
    type Input = ClassificationBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ClassificationBatch) -> ClassificationOutput {
        InferenceStep::step(&self.inner, batch)
    }
}

#[test]
fn grown_model_resumes_from_its_checkpoint_and_continues() {
    let directory = tempfile::tempdir().unwrap();
    let items = moons(128, 4);
    let device = cpu_device();
    let batches_per_epoch = 128 / 32;
    let base = ExpandableMlpConfig::new(2, 2).with_hidden(vec![4]);
    let optimizer = NaturalGradientConfig::new().init();
    let model = GrowingClassifier {
        inner: ExpandableClassifier::new(base.init(&device), optimizer.clone()),
        grow_after: Some(batches_per_epoch + 1),
        steps: 0,
    };
    let launch = |model: GrowingClassifier, epochs: usize, checkpoint: Option<usize>| {
        let mut training = SupervisedTraining::new(
            directory.path(),
            loader(items.clone(), 32),
            loader(moons(64, 9), 64),
        )
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_application_logger(None)
        .with_default_checkpointers()
        .num_epochs(epochs);
        if let Some(epoch) = checkpoint {
            training = training.checkpoint(epoch);
        }
        training.launch(Learner::new(model, SgdConfig::new().init(), 0.2))
    };

    let first = launch(model, 2, None);
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!(first.model.inner.network.architecture().hidden, vec![7, 7]);
    let steps_after_first = first.model.inner.network.natural_gradient_steps();
    assert_eq!(steps_after_first, 2 * batches_per_epoch as u64);
    let loss_at_stop = loss(&first.model, &items);

    // A fresh process knows only the base configuration: the shape comes from the checkpoint.
    let checkpoint = directory.path().join("checkpoint").join("model-2.bpk");
    let grown = base
        .with_shapes_from_record(&checkpoint, "inner.network.")
        .unwrap();
    assert_eq!(grown.hidden, vec![7, 7]);
    let resumed = GrowingClassifier {
        inner: ExpandableClassifier::new(grown.init(&device), optimizer),
        grow_after: None,
        steps: 0,
    };
    let second = launch(resumed, 4, Some(2));
    assert!(second.error.is_none(), "{:?}", second.error);
    let network = &second.model.inner.network;
    assert_eq!(network.architecture().hidden, vec![7, 7]);
    assert_eq!(
        network.natural_gradient_steps(),
        steps_after_first + 2 * batches_per_epoch as u64
    );
    let loss_after = loss(&second.model, &items);
    assert!(
        loss_after < loss_at_stop,
        "loss {loss_at_stop} at the checkpoint, {loss_after} after resuming"
    );

    // The checkpoint holds exactly the model the first run ended with.
    let record = burn::store::ModuleRecord::load(&checkpoint).unwrap();
    let restored = GrowingClassifier {
        inner: ExpandableClassifier::new(grown.init(&device), NaturalGradientConfig::new().init()),
        grow_after: None,
        steps: 0,
    }
    .load_record(record);
    assert_eq!(loss(&restored, &items), loss_at_stop);
}

#[test]
fn growth_inside_the_learner_is_recorded_and_survives_checkpoints() {
    let directory = tempfile::tempdir().unwrap();
    let items = moons(200, 5);
    let device = cpu_device();
    let base = ExpandableMlpConfig::new(2, 2);
    let optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(ExpansionConfig::new().with_interval(8).with_seed(5)))
        .init();
    let launch = |model: ExpandableClassifier, epochs: usize, checkpoint: Option<usize>| {
        let mut training = SupervisedTraining::new(
            directory.path(),
            loader(items.clone(), 50),
            loader(moons(64, 9), 64),
        )
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_application_logger(None)
        .with_default_checkpointers()
        .num_epochs(epochs);
        if let Some(epoch) = checkpoint {
            training = training.checkpoint(epoch);
        }
        training.launch(Learner::new(model, SgdConfig::new().init(), 0.3))
    };

    let first = launch(
        ExpandableClassifier::new(base.init(&device), optimizer.clone()),
        12,
        None,
    );
    assert!(first.error.is_none(), "{:?}", first.error);
    let network = &first.model.network;
    let history = network.expansion_history();
    assert!(!history.events.is_empty(), "no growth in 48 steps");
    assert_eq!(
        history.neurons_added(),
        network.hidden_widths().iter().sum::<usize>(),
        "every hidden neuron came from an expansion"
    );
    assert!(history.events.iter().all(|e| e.step % 8 == 0 && e.step > 0));

    // The last checkpoint rebuilds the grown model with its history.
    let checkpoint = directory.path().join("checkpoint").join("model-12.bpk");
    let grown = base
        .with_shapes_from_record(&checkpoint, "network.")
        .unwrap();
    assert_eq!(grown.hidden, network.hidden_widths());
    let record = burn::store::ModuleRecord::load(&checkpoint).unwrap();
    let restored =
        ExpandableClassifier::new(grown.init(&device), optimizer.clone()).load_record(record);
    assert_eq!(restored.network.expansion_history(), history);

    // Resuming carries the history on.
    let resumed = launch(
        ExpandableClassifier::new(grown.init(&device), optimizer),
        14,
        Some(12),
    );
    assert!(resumed.error.is_none(), "{:?}", resumed.error);
    let after = resumed.model.network.expansion_history();
    assert_eq!(after.events[..history.events.len()], history.events[..]);
    assert_eq!(resumed.model.network.natural_gradient_steps(), 56);
}
