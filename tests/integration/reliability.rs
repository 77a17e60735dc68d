//! Reliability: hostile configurations and inputs get errors (never panics), numerical faults
//! leave the model finite and never cause growth, interrupted work loses nothing, and seeded
//! runs repeat exactly.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Tensor, TensorData};
use burn_senn::datasets::{ClassificationSet, RandomRationalTarget};
use burn_senn::{
    CaptureError, ConfigError, ExpandableMlp, ExpandableMlpConfig, ExpansionConfig, FisherEstimate,
    InputError, NaturalGradient, NaturalGradientConfig, OptimizerConfigError, PersistenceError,
    TrainStepError,
};
use proptest::prelude::*;

use crate::common::{cpu_device, relative_change, reseeded, rng, Scale};

/// Every parameter value of `network` (weights, activations, curvature, counters, history),
/// in module order, as raw bits: equal only if the networks are identical.
fn fingerprint(network: &ExpandableMlp) -> Vec<u32> {
    let record = network.clone().valid();
    let mut values = Vec::new();
    for layer in record.layers() {
        let curvature = &layer.curvature;
        let mut tensors = vec![
            layer.weight.val().flatten::<1>(0, 1),
            layer.bias.val(),
            curvature.activation_covariance.val().flatten(0, 1),
            curvature.gradient_covariance.val().flatten(0, 1),
            curvature.weight_velocity.val().flatten(0, 1),
        ];
        if let Some(activation) = &layer.activation {
            tensors.extend([
                activation.odd.val(),
                activation.even.val(),
                activation.linear.val(),
            ]);
        }
        for tensor in tensors {
            let data = tensor.into_data().convert::<f32>();
            values.extend(data.iter::<f32>().map(f32::to_bits));
        }
    }
    values
}

fn all_finite(network: &ExpandableMlp) -> bool {
    fingerprint(network)
        .into_iter()
        .all(|bits| f32::from_bits(bits).is_finite())
}

// ----- bad configurations -------------------------------------------------------------------

/// What `ExpandableMlpConfig::validate` must say, worked out independently.
fn expected_network_error(
    d_input: usize,
    d_output: usize,
    hidden: &[usize],
    max_width: Option<usize>,
    max_depth: Option<usize>,
) -> Option<ConfigError> {
    let zero = |what: String| Some(ConfigError::ZeroSize { what });
    if d_input == 0 {
        return zero("d_input".into());
    }
    if d_output == 0 {
        return zero("d_output".into());
    }
    if let Some(layer) = hidden.iter().position(|&w| w == 0) {
        return zero(format!("hidden[{layer}]"));
    }
    if max_width == Some(0) {
        return Some(ConfigError::ZeroLimit { what: "max_width" });
    }
    if let Some(max_width) = max_width {
        if let Some(layer) = hidden.iter().position(|&w| w > max_width) {
            return Some(ConfigError::WidthAboveLimit {
                layer,
                width: hidden[layer],
                max_width,
            });
        }
    }
    // max_depth = 0 is a real limit (no hidden layer), unlike max_width = 0.
    match max_depth {
        Some(max_depth) if hidden.len() > max_depth => Some(ConfigError::DepthAboveLimit {
            depth: hidden.len(),
            max_depth,
        }),
        _ => None,
    }
}

/// Values that probe every range check: out of range, on the edges, and not numbers.
fn hostile_value() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        -1e-12,
        0.0,
        1e-12,
        0.5,
        1.0,
        1.5,
        1e300,
    ])
}

/// The optimiser or expansion configuration with real field number `field` set to `value`:
/// the field's name in errors, the configuration, and whether the value is in range.
fn with_real_field(field: usize, value: f64) -> (&'static str, NaturalGradientConfig, bool) {
    let config = NaturalGradientConfig::new();
    let expansion = |set: fn(ExpansionConfig, f64) -> ExpansionConfig| {
        NaturalGradientConfig::new().with_expansion(Some(set(ExpansionConfig::new(), value)))
    };
    let (name, config, in_range) = match field {
        0 => (
            "factor_decay",
            config.with_factor_decay(value),
            (0.0..1.0).contains(&value),
        ),
        1 => ("damping", config.with_damping(value), value > 0.0),
        2 => (
            "momentum",
            config.with_momentum(value),
            (0.0..1.0).contains(&value),
        ),
        3 => (
            "weight_decay",
            config.with_weight_decay(value),
            value >= 0.0,
        ),
        4 => ("kl_clip", config.with_kl_clip(Some(value)), value > 0.0),
        5 => (
            "expansion.tau",
            expansion(|e, v| e.with_tau(v)),
            value > 1.0,
        ),
        6 => (
            "expansion.alpha",
            expansion(|e, v| e.with_alpha(v)),
            value > 0.0 && value < 1.0,
        ),
        7 => (
            "expansion.min_gain",
            expansion(|e, v| e.with_min_gain(v)),
            value >= 0.0,
        ),
        8 => (
            "expansion.depth_cost",
            expansion(|e, v| e.with_depth_cost(v)),
            value > 0.0,
        ),
        _ => (
            "expansion.ascent_rate",
            expansion(|e, v| e.with_ascent_rate(v)),
            value > 0.0,
        ),
    };
    (name, config, in_range && value.is_finite())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn hostile_network_configurations_are_errors(
        d_input in 0usize..4,
        d_output in 0usize..4,
        hidden in prop::collection::vec(0usize..5, 0..4),
        max_width in prop::option::of(0usize..5),
        max_depth in prop::option::of(0usize..4),
    ) {
        let config = ExpandableMlpConfig::new(d_input, d_output)
            .with_hidden(hidden.clone())
            .with_max_width(max_width)
            .with_max_depth(max_depth);
        let expected = expected_network_error(d_input, d_output, &hidden, max_width, max_depth);
        match config.try_init(&cpu_device()) {
            Ok(network) => {
                prop_assert_eq!(expected, None);
                prop_assert_eq!(network.hidden_widths(), hidden);
            }
            Err(error) => {
                prop_assert!(!error.to_string().is_empty());
                prop_assert_eq!(Some(error), expected);
            }
        }
    }

    #[test]
    fn hostile_optimizer_settings_are_errors(
        field in 0usize..10,
        value in hostile_value(),
    ) {
        let (name, config, valid) = with_real_field(field, value);
        let result = config.try_init();
        if valid {
            prop_assert!(result.is_ok(), "{} = {} was refused", name, value);
        } else {
            let Err(OptimizerConfigError::OutOfRange { name: reported, .. }) = result else {
                return Err(TestCaseError::fail(format!("{name} = {value} was accepted")));
            };
            prop_assert_eq!(reported, name);
        }
    }

    #[test]
    fn hostile_batches_are_errors_and_leave_the_network_as_it_was(
        rows in 0usize..4,
        columns in 0usize..5,
        poison in prop::option::of((0usize..20, prop::sample::select(vec![
            f32::NAN, f32::INFINITY, f32::NEG_INFINITY,
        ]))),
    ) {
        let device = cpu_device().autodiff();
        let network = ExpandableMlpConfig::new(3, 2).with_hidden(vec![4]).init(&device);
        let mut values: Vec<f32> = (0..rows * columns).map(|i| i as f32 * 0.1).collect();
        let poisoned = match poison {
            Some((at, bad)) if !values.is_empty() => {
                let at = at % values.len();
                values[at] = bad;
                true
            }
            _ => false,
        };
        let inputs = Tensor::<2>::from_data(TensorData::new(values, [rows, columns]), &device);
        let expected = if columns != 3 {
            Some(InputError::FeatureCount { expected: 3, actual: columns })
        } else if rows == 0 {
            Some(InputError::Empty)
        } else if poisoned {
            Some(InputError::NonFinite { count: 1 })
        } else {
            None
        };
        prop_assert_eq!(network.try_forward(inputs.clone()).err(), expected.clone());

        let mut trained = network.clone();
        let mut optimizer = NaturalGradientConfig::new().init();
        let result = optimizer.train_step(0.1, &mut trained, inputs, |out| out.square().mean());
        match expected {
            Some(error) => {
                prop_assert_eq!(result, Err(TrainStepError::Input(error)));
                prop_assert_eq!(fingerprint(&trained), fingerprint(&network));
                prop_assert_eq!(trained.natural_gradient_steps(), 0);
            }
            None => {
                prop_assert!(result.is_ok());
                prop_assert_eq!(trained.natural_gradient_steps(), 1);
            }
        }
    }
}

#[test]
fn a_training_step_off_the_autodiff_device_is_an_error() {
    let device = cpu_device();
    let network = ExpandableMlpConfig::new(2, 1).init(&device);
    let mut trained = network.clone();
    let inputs = Tensor::<2>::ones([4, 2], &device);
    let result = NaturalGradientConfig::new()
        .init()
        .train_step(0.1, &mut trained, inputs, |out| out.mean());
    assert_eq!(
        result,
        Err(TrainStepError::Capture(CaptureError::NotAutodiff))
    );
    assert_eq!(fingerprint(&trained), fingerprint(&network));
}

#[cfg(feature = "train")]
#[test]
fn examples_for_the_learner_are_checked_before_it_starts() {
    use burn_senn::{ClassificationItem, RegressionItem};

    let network = ExpandableMlpConfig::new(2, 3).init(&cpu_device());
    let item = |features: Vec<f32>, label| ClassificationItem { features, label };
    let good = || vec![item(vec![0.0, 1.0], 0), item(vec![2.0, -1.0], 2)];
    assert_eq!(network.check_classification_items(&good()), Ok(()));
    let with = |index: usize, bad: ClassificationItem| {
        let mut items = good();
        items.insert(index, bad);
        network.check_classification_items(&items).unwrap_err()
    };
    assert_eq!(
        network.check_classification_items(&[]),
        Err(InputError::Empty)
    );
    assert_eq!(
        with(1, item(vec![1.0], 0)),
        InputError::ExampleSize {
            index: 1,
            what: "features",
            expected: 2,
            actual: 1
        }
    );
    assert_eq!(
        with(2, item(vec![f32::NAN, 0.0], 0)),
        InputError::ExampleNonFinite {
            index: 2,
            what: "features"
        }
    );
    let error = with(0, item(vec![0.0, 0.0], 3));
    assert_eq!(
        error,
        InputError::LabelOutOfRange {
            index: 0,
            label: 3,
            classes: 3
        }
    );
    assert_eq!(
        error.to_string(),
        "example 0 has label 3; the network has 3 classes, 0 to 2"
    );

    let network = ExpandableMlpConfig::new(1, 2).init(&cpu_device());
    let item = |features: Vec<f32>, targets: Vec<f32>| RegressionItem { features, targets };
    assert_eq!(
        network.check_regression_items(&[item(vec![1.0], vec![0.0, 1.0])]),
        Ok(())
    );
    assert_eq!(
        network.check_regression_items(&[item(vec![1.0], vec![0.0])]),
        Err(InputError::ExampleSize {
            index: 0,
            what: "targets",
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        network.check_regression_items(&[
            item(vec![1.0], vec![0.0, 1.0]),
            item(vec![1.0], vec![f32::INFINITY, 1.0]),
        ]),
        Err(InputError::ExampleNonFinite {
            index: 1,
            what: "targets"
        })
    );
}

// ----- numerical faults ---------------------------------------------------------------------

fn growing_regression_optimizer(seed: u64) -> NaturalGradient {
    NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.9)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_interval(10)
                .with_grow_depth(false)
                .with_seed(seed),
        ))
        .init()
}

#[test]
fn bad_batches_and_factors_are_skipped_and_never_grow_the_network() {
    let device = cpu_device().autodiff();
    let data = RandomRationalTarget::new(&[16, 16, 16, 16], 1).sample(50, 2);
    let (x, y) = (data.inputs(&device), data.target_tensor(&device));
    let network = ExpandableMlpConfig::new(1, 1)
        .with_hidden(vec![1])
        .init(&device);
    let mut network = reseeded(network, &mut rng(1)).train();
    let mut optimizer = growing_regression_optimizer(1);
    let mse = |out: Tensor<2>, targets: Tensor<2>| (out - targets).square().mean() * 0.5;
    let mut first_loss = None;
    // Steps 20 and 40 are expansion checks: their batches carry NaN and infinite targets.
    let faulty_batches = [20u64, 40];
    for step in 0..300u64 {
        if step == 30 {
            // A NaN curvature factor, between two checks.
            let id = network.layers()[0].curvature.activation_covariance.id;
            network = network.map(&mut Scale {
                id,
                factor: f32::NAN,
            });
        }
        let targets = match step {
            20 => y.clone().mul_scalar(f32::NAN),
            40 => y.clone().add_scalar(f32::INFINITY),
            _ => y.clone(),
        };
        let loss = optimizer
            .train_step(1.0, &mut network, x.clone(), |out| mse(out, targets))
            .unwrap();
        first_loss.get_or_insert(loss);
        assert_eq!(
            loss.is_finite(),
            !faulty_batches.contains(&step),
            "step {step}: loss {loss}"
        );
        assert!(
            all_finite(&network),
            "step {step}: a parameter is not finite"
        );
    }
    let history = network.expansion_history();
    assert!(!history.events.is_empty(), "the clean checks grew nothing");
    for event in &history.events {
        assert!(
            !faulty_batches.contains(&event.step),
            "grew from a bad batch: {event:?}"
        );
        let scores = [event.gain, event.eta, event.eta_total, event.lambda];
        assert!(scores.iter().all(|s| s.is_finite()), "{event:?}");
    }
    let final_loss = mse(network.forward(x), y).into_scalar::<f64>();
    assert!(
        final_loss < 0.5 * first_loss.unwrap(),
        "training did not go on: loss {first_loss:?} at first, {final_loss} at the end"
    );
}

/// Half-moons with a third input column made by `extra` from the first two.
fn moons_with_column(extra: fn(f32, f32) -> f32) -> ClassificationSet {
    let mut set = ClassificationSet::two_moons(200, 0.3, 3);
    for features in &mut set.features {
        features.push(extra(features[0], features[1]));
    }
    set
}

#[test]
fn singular_input_statistics_train_on_and_grow_only_from_finite_scores() {
    // A constant column makes A (over [1, x]) singular through the bias coordinate; a
    // duplicated column makes it singular directly.
    for (what, extra) in [
        ("zero-variance feature", (|_, _| 0.7) as fn(f32, f32) -> f32),
        ("duplicated column", |x, _| x),
    ] {
        let device = cpu_device().autodiff();
        let train = moons_with_column(extra);
        let (x, y) = (train.inputs(&device), train.label_tensor(&device));
        let network = ExpandableMlpConfig::new(3, 2).init(&device);
        let mut network = reseeded(network, &mut rng(3)).train();
        let mut optimizer = NaturalGradientConfig::new()
            .with_fisher(FisherEstimate::GaussNewton)
            .with_momentum(0.0)
            .with_expansion(Some(ExpansionConfig::new().with_interval(10).with_seed(3)))
            .init();
        let loss = CrossEntropyLossConfig::new().init(&device);
        for step in 0..150 {
            let labels = y.clone();
            let value = optimizer
                .train_step(0.1, &mut network, x.clone(), |logits| {
                    loss.forward(logits, labels)
                })
                .unwrap();
            assert!(value.is_finite(), "{what}, step {step}: loss {value}");
            assert!(
                all_finite(&network),
                "{what}, step {step}: a parameter is not finite"
            );
        }
        for event in network.expansion_history().events {
            let scores = [event.gain, event.eta, event.eta_total, event.lambda];
            assert!(scores.iter().all(|s| s.is_finite()), "{what}: {event:?}");
        }
        let predictions = network.forward(x).argmax(1).squeeze_dim::<1>(1);
        let accuracy = predictions.equal(y).float().mean().into_scalar::<f64>();
        assert!(accuracy > 0.8, "{what}: training accuracy {accuracy}");
    }
}

// ----- interrupted work ---------------------------------------------------------------------

#[test]
fn a_save_that_fails_half_way_keeps_the_previous_model() {
    let device = cpu_device();
    let first = reseeded(
        ExpandableMlpConfig::new(2, 1)
            .with_hidden(vec![3])
            .init(&device),
        &mut rng(8),
    );
    let second = first.widen_random(0, 2).unwrap();
    let x = Tensor::<2>::ones([5, 2], &device);
    // A save stages `model.bpk.{pid}.tmp` and `model.json.{pid}.tmp` before it renames them
    // into place; a directory in the way of either makes it fail part-way.
    for blocked in ["bpk", "json"] {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("model");
        let files = first.save(&path).unwrap();
        let blocker = format!("model.{blocked}.{}.tmp", std::process::id());
        std::fs::create_dir(directory.path().join(blocker)).unwrap();
        let error = second.save(&path).unwrap_err();
        assert!(matches!(error, PersistenceError::Io { .. }), "{error}");

        // The previous pair is intact and consistent (load checks the JSON against the
        // weights), and no staged file is left behind.
        let loaded = ExpandableMlp::load(&files.weights, &device).unwrap();
        assert_eq!(loaded.architecture(), first.architecture(), "{blocked}");
        let change = relative_change(&first.forward(x.clone()), &loaded.forward(x.clone()));
        assert_eq!(change, 0.0, "{blocked}");
        let left: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp") && !name.starts_with(&format!("model.{blocked}")))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "{blocked}");
    }
}

#[cfg(feature = "train")]
#[test]
fn a_killed_learner_run_resumes_from_its_last_checkpoint() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use burn_senn::ExpandableClassifier;

    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().display().to_string();
    let checkpoints = directory.path().join("checkpoint");
    let device = cpu_device();
    let base = ExpandableMlpConfig::new(2, 2);
    // The history stored in a checkpoint, if the checkpoint can be read whole.
    let stored_history = |epoch: usize| {
        let path = checkpoints.join(format!("model-{epoch}.bpk"));
        let config = base.with_shapes_from_record(&path, "network.").ok()?;
        // Read whole at once: a record loaded from the path reads the file lazily, and the
        // running child deletes old checkpoints.
        let bytes = std::fs::read(&path).ok()?;
        let bytes = burn::tensor::Bytes::from_bytes_vec(bytes);
        let record = burn::store::ModuleRecord::from_bytes(bytes).ok()?;
        let optimizer = NaturalGradientConfig::new().init();
        let model = ExpandableClassifier::new(config.init(&device), optimizer);
        Some(model.load_record(record).network.expansion_history())
    };

    let epochs = "40";
    let mut child = Command::new(crate::examples::example("learner"))
        .args(["--epochs", epochs, "--out", &out])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let grown_epoch = 'wait: loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed after growing");
        }
        for epoch in 1..=40 {
            if stored_history(epoch).is_some_and(|h| !h.events.is_empty()) {
                child.kill().unwrap(); // SIGKILL
                break 'wait epoch;
            }
        }
        assert!(Instant::now() < deadline, "no grown checkpoint in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was not killed: {status}");
    assert!(!directory.path().join("final.bpk").exists());

    let resumed = Command::new(crate::examples::example("learner"))
        .args(["--epochs", epochs, "--out", &out, "--resume"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    // It resumed from a grown checkpoint at or after the one seen before the kill.
    let from: usize = stdout
        .split("resuming after epoch ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or_else(|| panic!("no resume line in {stdout}"));
    assert!(
        from >= grown_epoch,
        "resumed from {from}, grown at {grown_epoch}\n{stdout}"
    );
    let at_resume = stored_history(from).unwrap();
    assert!(!at_resume.events.is_empty());

    let finished = ExpandableMlp::load(directory.path().join("final.bpk"), &device).unwrap();
    let history = finished.expansion_history();
    assert_eq!(
        history.events[..at_resume.events.len()],
        at_resume.events[..]
    );
    assert_eq!(
        finished.natural_gradient_steps(),
        40 * 10,
        "40 epochs of 10 batches"
    );
    assert_eq!(
        history.neurons_added(),
        finished.hidden_widths().iter().sum::<usize>(),
        "every hidden neuron came from a recorded expansion"
    );
}

// ----- determinism --------------------------------------------------------------------------

/// Half-moons from no hidden layer with growth, the network drawn from `seed` alone.
fn seeded_run(device: &Device, seed: u64) -> ExpandableMlp {
    let device = device.clone().autodiff();
    let train = ClassificationSet::two_moons(200, 0.3, seed);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));
    let network = ExpandableMlpConfig::new(2, 2).init(&device);
    let mut network = reseeded(network, &mut rng(seed)).train();
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(
            ExpansionConfig::new().with_interval(10).with_seed(seed),
        ))
        .init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    for _ in 0..120 {
        let labels = y.clone();
        optimizer
            .train_step(0.1, &mut network, x.clone(), |logits| {
                loss.forward(logits, labels)
            })
            .unwrap();
    }
    network
}

#[test]
fn the_same_seed_gives_the_same_growth_and_weights() {
    let device = cpu_device();
    let first = seeded_run(&device, 11);
    let second = seeded_run(&device, 11);
    assert!(!first.expansion_history().events.is_empty());
    assert_eq!(first.expansion_history(), second.expansion_history());
    assert_eq!(first.architecture(), second.architecture());
    assert!(
        fingerprint(&first) == fingerprint(&second),
        "weights differ"
    );
    let other = seeded_run(&device, 12);
    assert!(
        fingerprint(&other) != fingerprint(&first),
        "the seed changes nothing"
    );
}

#[test]
fn the_same_seed_gives_the_same_report_in_two_processes() {
    let reports: Vec<_> = (0..2)
        .map(|_| {
            let directory = tempfile::tempdir().unwrap();
            let out = directory.path().display().to_string();
            crate::examples::run("quickstart", &["--steps", "120", "--out", &out]);
            burn_senn::report::GrowthReport::load_json(directory.path().join("report.json"))
                .unwrap()
        })
        .collect();
    assert!(!reports[0].history.events.is_empty());
    assert_eq!(reports[0].history, reports[1].history);
    assert_eq!(reports[0].final_architecture, reports[1].final_architecture);
    assert_eq!(reports[0].train_metric, reports[1].train_metric);
    assert_eq!(reports[0].test_metric, reports[1].test_metric);
}
