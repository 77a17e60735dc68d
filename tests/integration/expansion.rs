//! Self-expansion: the scores against dense computations, the bound between them, and growth
//! during training on the method's two toy problems.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_senn::datasets::{ClassificationSet, RandomRationalTarget, RegressionSet};
use burn_senn::{
    ExpandableMlp, ExpandableMlpConfig, ExpansionConfig, ExpansionKind, FisherEstimate,
    NaturalGradient, NaturalGradientConfig, ScoringData,
};
use rand::rngs::StdRng;

use crate::common::{cpu_device, normal, relative_change, reseeded, rng};

// ----- dense reference computations -------------------------------------------------------

/// A dense row-major matrix in f64.
#[derive(Clone, Debug)]
struct Dense {
    rows: usize,
    columns: usize,
    values: Vec<f64>,
}

impl Dense {
    fn from_tensor(tensor: &Tensor<2>) -> Self {
        let [rows, columns] = tensor.dims();
        let values = tensor
            .to_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap();
        Self {
            rows,
            columns,
            values,
        }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.values[i * self.columns + j]
    }

    /// Xᵀ Y / n for X, Y with n rows.
    fn cross(x: &Dense, y: &Dense) -> Dense {
        let n = x.rows as f64;
        let values = (0..x.columns)
            .flat_map(|i| (0..y.columns).map(move |j| (i, j)))
            .map(|(i, j)| (0..x.rows).map(|r| x.at(r, i) * y.at(r, j)).sum::<f64>() / n)
            .collect();
        Dense {
            rows: x.columns,
            columns: y.columns,
            values,
        }
    }

    /// [1, X] column-wise.
    fn homogeneous(&self) -> Dense {
        let values = (0..self.rows)
            .flat_map(|r| {
                std::iter::once(1.0).chain(
                    (0..self.columns)
                        .map(move |c| (r, c))
                        .map(|(r, c)| self.values[r * self.columns + c]),
                )
            })
            .collect();
        Dense {
            rows: self.rows,
            columns: self.columns + 1,
            values,
        }
    }

    fn concat_columns(&self, other: &Dense) -> Dense {
        let values = (0..self.rows)
            .flat_map(|r| {
                (0..self.columns)
                    .map(move |c| self.at(r, c))
                    .chain((0..other.columns).map(move |c| other.at(r, c)))
            })
            .collect();
        Dense {
            rows: self.rows,
            columns: self.columns + other.columns,
            values,
        }
    }
}

/// Solves M x = b by Gaussian elimination with partial pivoting.
fn solve(matrix: &[f64], n: usize, rhs: &[f64]) -> Vec<f64> {
    let mut a = matrix.to_vec();
    let mut b = rhs.to_vec();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let factor = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row * n + row];
    }
    x
}

/// vec(∇)ᵀ (A ⊗ S)⁻¹ vec(∇) with the Kronecker product formed explicitly.
fn kronecker_quadratic(a: &Dense, s: &Dense, gradient: &Dense) -> f64 {
    let (p, q) = (a.rows, s.rows);
    let n = p * q;
    let mut kronecker = vec![0.0; n * n];
    for i in 0..p {
        for j in 0..p {
            for x in 0..q {
                for y in 0..q {
                    kronecker[(i * q + x) * n + (j * q + y)] = a.at(i, j) * s.at(x, y);
                }
            }
        }
    }
    let solution = solve(&kronecker, n, &gradient.values);
    gradient
        .values
        .iter()
        .zip(&solution)
        .map(|(g, x)| g * x)
        .sum()
}

/// Per layer: inputs a and the gradients of Σ_x ⟨y_x, w_x⟩ with respect to each
/// pre-activation, by autodiff through probes added to a forward pass.
fn probe_gradients(
    network: &ExpandableMlp,
    x: &Tensor<2>,
    weights: &Tensor<2>,
) -> Vec<(Dense, Dense)> {
    let device = x.device().autodiff();
    let network = network.clone().fork(&device);
    let mut activations = x.clone().autodiff();
    let mut probes = Vec::new();
    let mut inputs = Vec::new();
    for layer in network.layers() {
        inputs.push(Dense::from_tensor(&activations.clone().inner()));
        let s = layer.pre_activation(activations);
        let probe = Tensor::<2>::zeros(s.dims(), &device).require_grad();
        let s = s + probe.clone();
        probes.push(probe);
        activations = match &layer.activation {
            Some(_) => layer.activate(s),
            None => s,
        };
    }
    let grads = (activations * weights.clone().autodiff()).sum().backward();
    inputs
        .into_iter()
        .zip(probes)
        .map(|(a, probe)| (a, Dense::from_tensor(&probe.grad(&grads).unwrap())))
        .collect()
}

/// What the dense computation needs of one layer.
struct DenseLayer {
    homogeneous: Dense,
    gradients: Dense,
    s: Dense,
}

fn dense_layers(network: &ExpandableMlp, x: &Tensor<2>, dy: &Tensor<2>) -> Vec<DenseLayer> {
    let [n, m] = dy.dims();
    let loss = probe_gradients(network, x, dy);
    // S = Σ_k E[ĝ_k ĝ_kᵀ], ĝ_k the pre-activation gradients of output k.
    let mut factors: Vec<Option<Dense>> = vec![None; loss.len()];
    for k in 0..m {
        let mut unit = vec![0.0f32; n * m];
        for r in 0..n {
            unit[r * m + k] = 1.0;
        }
        let unit = Tensor::<2>::from_data(TensorData::new(unit, [n, m]), &x.device());
        for (factor, (_, g)) in factors.iter_mut().zip(probe_gradients(network, x, &unit)) {
            let term = Dense::cross(&g, &g);
            *factor = Some(match factor.take() {
                None => term,
                Some(mut sum) => {
                    sum.values
                        .iter_mut()
                        .zip(&term.values)
                        .for_each(|(a, b)| *a += b);
                    sum
                }
            });
        }
    }
    loss.into_iter()
        .zip(factors)
        .map(|((a, g), s)| DenseLayer {
            homogeneous: a.homogeneous(),
            gradients: g,
            s: s.unwrap(),
        })
        .collect()
}

fn dense_eta(layer: &DenseLayer, inputs: &Dense) -> f64 {
    let a = Dense::cross(inputs, inputs);
    let gradient = Dense::cross(inputs, &layer.gradients);
    kronecker_quadratic(&a, &layer.s, &gradient)
}

/// g_r = g − ā A⁻¹ E[ā gᵀ], row by row.
fn dense_residual(layer: &DenseLayer) -> Dense {
    let a = Dense::cross(&layer.homogeneous, &layer.homogeneous);
    let gradient = Dense::cross(&layer.homogeneous, &layer.gradients);
    let p = a.rows;
    let q = gradient.columns;
    // Coefficients A⁻¹∇, column by column.
    let mut coefficients = vec![0.0; p * q];
    for column in 0..q {
        let rhs: Vec<f64> = (0..p).map(|i| gradient.at(i, column)).collect();
        for (i, value) in solve(&a.values, p, &rhs).into_iter().enumerate() {
            coefficients[i * q + column] = value;
        }
    }
    let g = &layer.gradients;
    let values = (0..g.rows)
        .flat_map(|r| (0..q).map(move |c| (r, c)))
        .map(|(r, c)| {
            let fit: f64 = (0..p)
                .map(|i| layer.homogeneous.at(r, i) * coefficients[i * q + c])
                .sum();
            g.at(r, c) - fit
        })
        .collect();
    Dense {
        rows: g.rows,
        columns: q,
        values,
    }
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    let error = (actual - expected).abs() / expected.abs().max(1e-12);
    assert!(
        error < 1e-4,
        "{what}: {actual} vs dense {expected} (relative error {error:e})"
    );
}

fn tiny_problem(seed: u64) -> (ExpandableMlp, Tensor<2>, Tensor<2>, StdRng) {
    let device = cpu_device();
    let mut rng = rng(seed);
    let network = ExpandableMlpConfig::new(2, 2)
        .with_hidden(vec![3])
        .init(&device);
    let network = reseeded(network, &mut rng);
    let x = normal(&mut rng, [12, 2], 1.0, &device);
    let dy = normal(&mut rng, [12, 2], 1.0, &device);
    (network, x, dy, rng)
}

#[test]
fn scores_equal_a_dense_kronecker_computation() {
    for seed in 0..4 {
        let (network, x, dy, mut rng) = tiny_problem(seed);
        let scores = network
            .expansion_scores(&ScoringData {
                inputs: x.clone(),
                output_gradients: dy.clone(),
            })
            .unwrap();
        let layers = dense_layers(&network, &x, &dy);
        let dy_dense = Dense::from_tensor(&dy);
        let lambda = dy_dense.values.iter().map(|v| v * v).sum::<f64>() / dy_dense.rows as f64;
        assert_close(scores.lambda(), lambda, "λ");
        for (index, layer) in layers.iter().enumerate() {
            let eta = dense_eta(layer, &layer.homogeneous);
            assert_close(
                scores.layer_etas()[index],
                eta,
                &format!("η of layer {index}"),
            );

            // Two new inputs to this layer, with arbitrary values per example.
            let new = normal(&mut rng, [12, 2], 1.0, &x.device());
            let f = Dense::from_tensor(&new);
            let residual = dense_residual(layer);
            let c = Dense::cross(&f, &residual);
            let lower = kronecker_quadratic(&Dense::cross(&f, &f), &layer.s, &c);
            assert_close(scores.lower_bound(index, new.clone()), lower, "Δη′");

            let enlarged = layer.homogeneous.concat_columns(&f);
            let exact = dense_eta(layer, &enlarged) - eta;
            assert_close(scores.exact_gain(index, new), exact, "Δη");
            assert!(
                lower <= exact * (1.0 + 1e-9),
                "dense Δη′ {lower} > Δη {exact}"
            );
        }
    }
}

#[test]
fn lower_bound_never_exceeds_the_exact_gain() {
    let device = cpu_device();
    for seed in 0..40u64 {
        let mut rng = rng(100 + seed);
        let widths = [vec![], vec![3], vec![4, 2]][seed as usize % 3].clone();
        let network = ExpandableMlpConfig::new(3, 2)
            .with_hidden(widths)
            .init(&device);
        let network = reseeded(network, &mut rng);
        let n = 6 + seed as usize % 20;
        let data = ScoringData {
            inputs: normal(&mut rng, [n, 3], 1.0, &device),
            output_gradients: normal(&mut rng, [n, 2], 1.0, &device),
        };
        let scores = network.expansion_scores(&data).unwrap();
        for consumer in 0..network.layers().len() {
            let k = 1 + seed as usize % 3;
            let new = normal(&mut rng, [n, k], 1.0, &device);
            let lower = scores.lower_bound(consumer, new.clone());
            let exact = scores.exact_gain(consumer, new);
            assert!(
                lower >= 0.0 && lower.is_finite(),
                "seed {seed}: Δη′ = {lower}"
            );
            assert!(
                lower <= exact * (1.0 + 1e-6) + 1e-12,
                "seed {seed}, layer {consumer}: Δη′ {lower} > Δη {exact}"
            );
        }
    }
}

#[test]
fn scoring_rejects_bad_batches_with_errors() {
    let (network, x, dy, _) = tiny_problem(0);
    let nan = x.clone().mask_fill(x.clone().greater_elem(0.5), f32::NAN);
    let cases = [
        (nan, dy.clone(), "holds NaN or infinite values"),
        (
            x.clone().narrow(1, 0, 1),
            dy.clone(),
            "does not fit the network",
        ),
        (
            x.clone(),
            dy.clone().narrow(0, 0, 5),
            "does not fit the network",
        ),
    ];
    for (inputs, output_gradients, message) in cases {
        let error = network
            .expansion_scores(&ScoringData {
                inputs,
                output_gradients,
            })
            .unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    }
}

// ----- growth during training ---------------------------------------------------------------

fn mse(outputs: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (outputs - targets).square().mean()
}

/// Full-batch training with a custom loop; returns the final network.
fn fit_regression(
    network: ExpandableMlp,
    optimizer: &mut NaturalGradient,
    data: &RegressionSet,
    steps: usize,
    lr: f64,
) -> ExpandableMlp {
    let device = cpu_device().autodiff();
    let (x, y) = (data.inputs(&device), data.target_tensor(&device));
    let mut network = network.fork(&device).train();
    for _ in 0..steps {
        let targets = y.clone();
        optimizer
            .train_step(lr, &mut network, x.clone(), |out| mse(out, targets) * 0.5)
            .unwrap();
    }
    network.valid()
}

fn regression_optimizer(expansion: Option<ExpansionConfig>) -> NaturalGradient {
    NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.9)
        .with_expansion(expansion)
        .init()
}

/// A 1-1-1 network drawn from `seed` alone (not from burn's generator, which tests running at
/// the same time share).
fn one_neuron(device: &Device, seed: u64) -> ExpandableMlp {
    let network = ExpandableMlpConfig::new(1, 1)
        .with_hidden(vec![1])
        .init(device);
    reseeded(network, &mut rng(seed))
}

fn dataset_mse(network: &ExpandableMlp, data: &RegressionSet) -> f64 {
    let device = cpu_device();
    mse(
        network.forward(data.inputs(&device)),
        data.target_tensor(&device),
    )
    .into_scalar::<f64>()
}

#[test]
fn one_dimensional_regression_grows_and_fits() {
    let device = cpu_device();
    device.seed(1);
    let target = RandomRationalTarget::new(&[16, 16, 16, 16], 1);
    let train = target.sample(50, 2);
    let test = target.sample(1000, 3);
    let width_only = ExpansionConfig::new().with_grow_depth(false).with_seed(1);

    let grown = fit_regression(
        one_neuron(&device, 1),
        &mut regression_optimizer(Some(width_only)),
        &train,
        2000,
        1.0,
    );
    let fixed = fit_regression(
        one_neuron(&device, 1),
        &mut regression_optimizer(None),
        &train,
        2000,
        1.0,
    );

    let history = grown.expansion_history();
    assert_eq!(grown.depth(), 1);
    assert!(
        grown.hidden_widths()[0] >= 3,
        "grew to {}",
        grown.architecture()
    );
    assert_eq!(history.neurons_added(), grown.hidden_widths()[0] - 1);
    let (grown_mse, fixed_mse) = (dataset_mse(&grown, &train), dataset_mse(&fixed, &train));
    assert!(
        grown_mse * 100.0 <= fixed_mse,
        "train MSE {grown_mse:e} grown vs {fixed_mse:e} with one neuron"
    );
    let test_mse = dataset_mse(&grown, &test);
    assert!(test_mse <= 1e-3, "held-out MSE {test_mse:e}");
}

/// `count` points x ~ N(0, I) with the exactly affine targets x·M + m.
fn affine_set(rng: &mut StdRng, count: usize, d_input: usize, d_output: usize) -> RegressionSet {
    let device = cpu_device();
    let host = |t: Tensor<2>| t.to_data().try_to_vec::<f32>().unwrap();
    let x = normal(rng, [count, d_input], 1.0, &device);
    let map = normal(rng, [d_input, d_output], 1.0, &device);
    let offset = normal(rng, [1, d_output], 1.0, &device);
    let y = x.clone().matmul(map) + offset;
    RegressionSet {
        features: host(x).chunks(d_input).map(<[f32]>::to_vec).collect(),
        targets: host(y).chunks(d_output).map(<[f32]>::to_vec).collect(),
    }
}

#[test]
fn an_exactly_linear_target_never_grows() {
    // A network with no hidden layer represents an affine target exactly: its error stays
    // affine in the inputs, so no residual is left for new units to explain.
    let device = cpu_device();
    let mut rng = rng(7);
    for (d_input, d_output) in [(1, 1), (2, 1), (3, 2)] {
        let data = affine_set(&mut rng, 64, d_input, d_output);
        let network = ExpandableMlpConfig::new(d_input, d_output).init(&device);
        let network = reseeded(network, &mut rng);
        let expansion = ExpansionConfig::new().with_interval(10);
        let trained = fit_regression(
            network.clone(),
            &mut regression_optimizer(Some(expansion)),
            &data,
            600,
            1.0,
        );
        assert_eq!(trained.expansion_history().events, vec![]);
        assert_eq!(trained.architecture(), network.architecture());
        assert!(dataset_mse(&trained, &data) < 1e-4);
    }
}

#[test]
fn harder_targets_grow_wider() {
    let device = cpu_device();
    let train_width = |hidden: &[usize]| {
        let target = RandomRationalTarget::new(hidden, 5);
        let data = target.sample(50, 6);
        let config = ExpansionConfig::new().with_grow_depth(false).with_seed(5);
        let grown = fit_regression(
            one_neuron(&device, 5),
            &mut regression_optimizer(Some(config)),
            &data,
            1500,
            1.0,
        );
        grown.hidden_widths()[0]
    };
    let easy = train_width(&[1]);
    let hard = train_width(&[16, 16, 16, 16]);
    assert!(
        hard > easy,
        "width {hard} for the hard target, {easy} for the easy one"
    );
}

fn accuracy(network: &ExpandableMlp, data: &ClassificationSet) -> f64 {
    let device = cpu_device();
    let predictions = network
        .forward(data.inputs(&device))
        .argmax(1)
        .squeeze_dim::<1>(1);
    let labels: Tensor<1, Int> = data.label_tensor(&device);
    predictions
        .equal(labels)
        .float()
        .mean()
        .into_scalar::<f64>()
}

/// Half-moons as the method's second experiment: no hidden layer at first, at most three
/// hidden layers of at most 16 neurons, 400 full-batch steps.
fn half_moons(seed: u64, steps: usize) -> ExpandableMlp {
    let device = cpu_device().autodiff();
    let train = ClassificationSet::two_moons(200, 0.3, seed);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));
    let network = ExpandableMlpConfig::new(2, 2).init(&device);
    let mut network = reseeded(network, &mut rng(seed));
    let expansion = ExpansionConfig::new()
        .with_seed(seed)
        .with_max_depth(Some(3))
        .with_max_width(Some(16));
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_expansion(Some(expansion))
        .init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    for _ in 0..steps {
        let labels = y.clone();
        optimizer
            .train_step(0.1, &mut network, x.clone(), |logits| {
                loss.forward(logits, labels)
            })
            .unwrap();
    }
    network.valid()
}

#[test]
fn half_moons_grows_layers_and_generalises() {
    let mut accuracies = Vec::new();
    for seed in 0..3 {
        let network = half_moons(seed, 400);
        let history = network.expansion_history();
        assert!(
            history.count(ExpansionKind::Depth) >= 1,
            "seed {seed}: no layer inserted"
        );
        assert!(network.depth() >= 1 && network.depth() <= 3);
        accuracies.push(accuracy(
            &network,
            &ClassificationSet::two_moons(500, 0.3, 1000 + seed),
        ));
    }
    let mean = accuracies.iter().sum::<f64>() / 3.0;
    assert!(
        mean >= 0.89,
        "held-out accuracies {accuracies:?}, mean {mean}"
    );
}

#[test]
fn expansion_never_changes_the_outputs() {
    // Replays every step that grew the network with a copy of the optimiser that does not
    // grow: the grown network must compute what the un-grown one does.
    let device = cpu_device().autodiff();
    let train = ClassificationSet::two_moons(200, 0.3, 4);
    let (x, y) = (train.inputs(&device), train.label_tensor(&device));
    let loss = CrossEntropyLossConfig::new().init(&device);
    let config = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(0.0)
        .with_inverse_period(1);
    let mut optimizer = config
        .clone()
        .with_expansion(Some(ExpansionConfig::new().with_interval(10).with_seed(4)))
        .init();
    let network = ExpandableMlpConfig::new(2, 2).init(&device);
    let mut network = reseeded(network, &mut rng(4));
    let mut events = 0;
    for _ in 0..200 {
        let before = network.clone();
        let step = |optimizer: &mut NaturalGradient, network: &mut ExpandableMlp| {
            let labels = y.clone();
            optimizer
                .train_step(0.1, network, x.clone(), |logits| {
                    loss.forward(logits, labels)
                })
                .unwrap();
        };
        step(&mut optimizer, &mut network);
        if network.architecture() != before.architecture() {
            events += 1;
            let mut ungrown = before;
            step(&mut config.init(), &mut ungrown);
            let expected = ungrown.valid().forward(x.clone().inner());
            let actual = network.clone().valid().forward(x.clone().inner());
            let change = relative_change(&expected, &actual);
            assert!(
                change < 1e-4,
                "growth to {} changed the outputs by {change}",
                network.architecture()
            );
        }
    }
    assert!(events >= 3, "only {events} growth steps");
}

#[test]
fn the_rate_bound_caps_every_check() {
    // A loose relative threshold lets many candidates pass; the cap must stop each check.
    let device = cpu_device();
    let target = RandomRationalTarget::new(&[16, 16, 16, 16], 1);
    let config = ExpansionConfig::new()
        .with_tau(4.0)
        .with_alpha(0.1)
        .with_seed(1)
        .with_grow_depth(false);
    assert_eq!(config.rate_bound(1.0, 0.1), 2, "1 + ln(10)/ln(4) = 2.66");
    let network = ExpandableMlpConfig::new(1, 1)
        .with_hidden(vec![1, 1, 1])
        .init(&device);
    let grown = fit_regression(
        reseeded(network, &mut rng(1)),
        &mut regression_optimizer(Some(config.clone())),
        &target.sample(50, 2),
        600,
        1.0,
    );
    let events = grown.expansion_history().events;
    assert!(!events.is_empty());
    let mut capped = 0;
    for step in events
        .iter()
        .map(|e| e.step)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let check: Vec<_> = events.iter().filter(|e| e.step == step).collect();
        let cap = config.rate_bound(check[0].lambda, check[0].threshold);
        assert!(
            check.len() <= cap,
            "{} expansions at step {step}, cap {cap}",
            check.len()
        );
        assert!(check.iter().enumerate().all(|(i, e)| e.round == i));
        capped += usize::from(check.len() == cap);
    }
    assert!(
        capped > 0,
        "no check reached the cap, so the test shows nothing"
    );
}

#[test]
fn history_survives_save_and_load() {
    let directory = tempfile::tempdir().unwrap();
    let network = half_moons(1, 120);
    let history = network.expansion_history();
    assert!(!history.events.is_empty());
    let files = network.save(directory.path().join("grown")).unwrap();
    let loaded = ExpandableMlp::load(&files.weights, &cpu_device()).unwrap();
    assert_eq!(loaded.expansion_history(), history);
    assert_eq!(loaded.architecture(), network.architecture());
}
