//! The natural-gradient optimiser: exact preconditioning, curvature that grows with the
//! network, faster convergence than SGD, and no NaN from bad curvature.

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;
use burn_senn::{
    CurvatureStatistics, ExpandableMlp, ExpandableMlpConfig, FisherEstimate, NaturalGradientConfig,
    NewLayer, OutputDistribution,
};

use crate::common::{cpu_device, normal, random_layer, reseeded, rng, Scale};

fn host(tensor: Tensor<2>) -> (Vec<f64>, [usize; 2]) {
    let dims = tensor.dims();
    let values = tensor
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap();
    (values, dims)
}

fn mse(output: Tensor<2>, target: &Tensor<2>) -> Tensor<1> {
    (output - target.clone()).square().mean()
}

/// Statistics-carrying gradients of the mean squared error on (x, y).
fn gradients(network: &ExpandableMlp, x: &Tensor<2>, y: &Tensor<2>) -> GradientsParams {
    let (output, capture) = network.forward_capture(x.clone());
    let loss = mse(output, y);
    capture
        .into_gradients(network, loss.backward(), &FisherEstimate::Empirical)
        .expect("autodiff device")
}

/// Solves K u = r densely for K = (A + γ_A I) ⊗ (G + γ_G I), with row-major vec.
fn dense_kronecker_solve(
    (a, p): (&[f64], usize),
    (g, q): (&[f64], usize),
    r: &[f64],
    damping: (f64, f64),
) -> Vec<f64> {
    let n = p * q;
    let damped = |m: &[f64], size: usize, gamma: f64, i: usize, j: usize| {
        m[i * size + j] + if i == j { gamma } else { 0.0 }
    };
    // Rows of the augmented system [K | r]; K[(i1 q + i2), (j1 q + j2)] = A[i1, j1] G[i2, j2].
    let mut rows: Vec<Vec<f64>> = (0..n)
        .map(|row| {
            let (i1, i2) = (row / q, row % q);
            let mut entries: Vec<f64> = (0..n)
                .map(|col| {
                    let (j1, j2) = (col / q, col % q);
                    damped(a, p, damping.0, i1, j1) * damped(g, q, damping.1, i2, j2)
                })
                .collect();
            entries.push(r[row]);
            entries
        })
        .collect();
    // Gauss–Jordan elimination with partial pivoting.
    for c in 0..n {
        let pivot = (c..n)
            .max_by(|&x, &y| rows[x][c].abs().total_cmp(&rows[y][c].abs()))
            .unwrap();
        rows.swap(c, pivot);
        let pivot_row = rows[c].clone();
        for (_, row) in rows.iter_mut().enumerate().filter(|(i, _)| *i != c) {
            let factor = row[c] / pivot_row[c];
            for (entry, pivot_entry) in row.iter_mut().zip(&pivot_row).skip(c) {
                *entry -= factor * pivot_entry;
            }
        }
    }
    rows.iter()
        .enumerate()
        .map(|(i, row)| row[n] / row[i])
        .collect()
}

fn mean_diagonal(m: &[f64], n: usize) -> f64 {
    (0..n).map(|i| m[i * n + i]).sum::<f64>() / n as f64
}

#[test]
fn preconditioned_update_equals_dense_kronecker_solve() {
    let device = cpu_device().autodiff();
    for (d_input, hidden, d_output) in [(2, vec![], 1), (3, vec![4], 2), (1, vec![3, 2], 3)] {
        let network = ExpandableMlpConfig::new(d_input, d_output)
            .with_hidden(hidden)
            .init(&device);
        let mut rng = rng(d_input as u64);
        let x = normal(&mut rng, [16, d_input], 1.0, &device);
        let y = normal(&mut rng, [16, d_output], 1.0, &device);
        let damping = 1e-2;
        let mut optimizer = NaturalGradientConfig::new()
            .with_momentum(0.0)
            .with_kl_clip(None)
            .with_damping(damping)
            .init();
        let mut grads = gradients(&network, &x, &y);
        let raw: Vec<_> = network
            .layers()
            .iter()
            .map(|l| {
                let b = grads.get::<1>(l.bias.id).unwrap().unsqueeze_dim::<2>(0);
                Tensor::cat(vec![b, grads.get::<2>(l.weight.id).unwrap()], 0)
            })
            .collect();
        let before: Vec<_> = network
            .layers()
            .iter()
            .map(|l| augmented(l.bias.val(), l.weight.val()))
            .collect();

        let stepped = optimizer.step(1.0, network, &mut grads);
        for (index, layer) in stepped.layers().iter().enumerate() {
            let (a, [p, _]) = host(layer.curvature.activation_covariance.val());
            let (g, [q, _]) = host(layer.curvature.gradient_covariance.val());
            let pi = (mean_diagonal(&a, p) / mean_diagonal(&g, q)).sqrt();
            let split = (pi * damping.sqrt(), damping.sqrt() / pi);
            let (r, _) = host(raw[index].clone());
            let expected = dense_kronecker_solve((&a, p), (&g, q), &r, split);
            let (old, _) = host(before[index].clone());
            let (new, _) = host(augmented(layer.bias.val(), layer.weight.val()));
            let actual: Vec<f64> = old.iter().zip(&new).map(|(o, n)| o - n).collect();
            let scale = expected.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
            for (e, a) in expected.iter().zip(&actual) {
                assert!(
                    (e - a).abs() <= 1e-4 * scale,
                    "layer {index}: {a} vs dense {e}"
                );
            }
        }
    }
}

fn augmented(bias: Tensor<1>, weight: Tensor<2>) -> Tensor<2> {
    Tensor::cat(vec![bias.unsqueeze_dim::<2>(0), weight], 0)
}

/// A network whose factors are exactly the statistics of (x, y): one step with lr = 0.
fn with_batch_factors(network: ExpandableMlp, x: &Tensor<2>, y: &Tensor<2>) -> ExpandableMlp {
    let mut optimizer = NaturalGradientConfig::new().init();
    let mut grads = gradients(&network, x, y);
    optimizer.step(0.0, network, &mut grads)
}

/// The statistics of (x, y) computed from scratch.
fn fresh_statistics(network: &ExpandableMlp, x: &Tensor<2>, y: &Tensor<2>) -> CurvatureStatistics {
    let (output, capture) = network.forward_capture(x.clone());
    let grads = mse(output, y).backward();
    capture
        .statistics(network, &grads, &FisherEstimate::Empirical)
        .unwrap()
}

fn assert_close(actual: Tensor<2>, expected: Tensor<2>, what: &str) {
    let (actual, dims_a) = host(actual);
    let (expected, dims_e) = host(expected);
    assert_eq!(dims_a, dims_e, "{what}: shapes");
    let scale = expected.iter().fold(1e-6_f64, |m, x| m.max(x.abs()));
    for (a, e) in actual.iter().zip(&expected) {
        assert!((a - e).abs() <= 1e-4 * scale, "{what}: {a} vs {e}");
    }
}

#[test]
fn factors_after_insertion_equal_factors_computed_from_scratch() {
    let device = cpu_device().autodiff();
    let mut rng = rng(21);
    let x = normal(&mut rng, [32, 3], 1.0, &device);
    let y = normal(&mut rng, [32, 2], 1.0, &device);
    let network = ExpandableMlpConfig::new(3, 2)
        .with_hidden(vec![4])
        .init(&device);
    let network = with_batch_factors(network, &x, &y);

    for (position, layer) in [
        (1, random_layer(&mut rng, 4, &device)),
        (0, random_layer(&mut rng, 3, &device)),
        (1, NewLayer::identity(4, &device)),
    ] {
        let grown = network.insert_layer(position, layer).unwrap();
        let fresh = fresh_statistics(&grown, &x, &y);
        for (index, (layer, expected)) in grown.layers().iter().zip(fresh.layers).enumerate() {
            let what = format!("insert at {position}, layer {index}");
            assert_close(
                layer.curvature.activation_covariance.val(),
                expected.activation_covariance,
                &format!("{what} A"),
            );
            assert_close(
                layer.curvature.gradient_covariance.val(),
                expected.gradient_covariance,
                &format!("{what} G"),
            );
        }
    }
}

#[test]
fn factors_after_widening_keep_old_entries_and_define_new_ones() {
    let device = cpu_device().autodiff();
    let mut rng = rng(22);
    let x = normal(&mut rng, [32, 3], 1.0, &device);
    let y = normal(&mut rng, [32, 1], 1.0, &device);
    let network = ExpandableMlpConfig::new(3, 1)
        .with_hidden(vec![2, 3])
        .init(&device);
    let network = with_batch_factors(network, &x, &y);
    let grown = network.widen_random(0, 2).unwrap();
    let fresh = fresh_statistics(&grown, &x, &y);

    // G of the widened layer: exactly the fresh statistics (new rows are zero in both).
    assert_close(
        grown.layers()[0].curvature.gradient_covariance.val(),
        fresh.layers[0].gradient_covariance.clone(),
        "G0",
    );
    let (g_new, [w, _]) = host(grown.layers()[0].curvature.gradient_covariance.val());
    assert_eq!(w, 4);
    for i in 0..w {
        for j in (0..w).filter(|&j| i >= 2 || j >= 2) {
            assert_eq!(g_new[i * w + j], 0.0, "G0[{i},{j}] of a new neuron");
        }
    }

    // A of the next layer: the old block unchanged, new rows zero off the diagonal, and the
    // mean old input variance on the new diagonal.
    let (old_a, [n, _]) = host(network.layers()[1].curvature.activation_covariance.val());
    let (new_a, [m, _]) = host(grown.layers()[1].curvature.activation_covariance.val());
    assert_eq!((n, m), (3, 5));
    let prior = (1..n).map(|i| old_a[i * n + i]).sum::<f64>() / (n - 1) as f64;
    for i in 0..m {
        for j in 0..m {
            let expected = match (i < n, j < n) {
                (true, true) => old_a[i * n + j],
                _ if i == j => prior,
                _ => 0.0,
            };
            assert!(
                (new_a[i * m + j] - expected).abs() <= 1e-6 * prior.max(1.0),
                "A1[{i},{j}]"
            );
        }
    }
    // Everything else is untouched.
    assert_eq!(
        host(grown.layers()[2].curvature.activation_covariance.val()),
        host(network.layers()[2].curvature.activation_covariance.val())
    );
    assert_close(
        grown.layers()[2].curvature.gradient_covariance.val(),
        fresh.layers[2].gradient_covariance.clone(),
        "G2",
    );
}

#[test]
fn sampled_categorical_fisher_has_the_structure_of_softmax_gradients() {
    let device = cpu_device().autodiff();
    let mut rng = rng(23);
    let network = ExpandableMlpConfig::new(2, 3)
        .with_hidden(vec![4])
        .init(&device);
    let x = normal(&mut rng, [64, 2], 1.0, &device);
    let (output, capture) = network.forward_capture(x);
    let grads = output.sum().backward();
    let fisher = FisherEstimate::Sampled {
        distribution: OutputDistribution::Categorical,
    };
    let statistics = capture.statistics(&network, &grads, &fisher).unwrap();
    let (g_out, [q, _]) = host(statistics.layers[1].gradient_covariance.clone());
    assert_eq!(q, 3);
    // ∂ℓ/∂y = p − onehot(t) has squared norm at most 2, so 0 < tr G ≤ 2.
    let trace: f64 = (0..q).map(|i| g_out[i * q + i]).sum();
    assert!(trace > 0.0 && trace <= 2.0 + 1e-6, "trace {trace}");
    // The entries of p − onehot(t) sum to zero, so G·1 = 0.
    for i in 0..q {
        let row: f64 = (0..q).map(|j| g_out[i * q + j]).sum();
        assert!(row.abs() < 1e-5, "row {i} sums to {row}");
    }
}

/// The most steps any optimiser gets to reach the target loss.
const STEP_LIMIT: usize = 2000;

/// A fixed-size network, full-batch data, a loss and a target value for it.
struct Task {
    network: ExpandableMlp,
    x: Tensor<2>,
    y: Tensor<2>,
    loss: fn(Tensor<2>, &Tensor<2>) -> Tensor<1>,
    target: f32,
}

impl Task {
    /// Steps until the loss falls below the target (`usize::MAX` if it never does).
    fn steps_to_target(&self, mut step: impl FnMut(&mut ExpandableMlp) -> f32) -> usize {
        let mut network = self.network.clone();
        (1..=STEP_LIMIT)
            .find(|_| step(&mut network) < self.target)
            .unwrap_or(usize::MAX)
    }

    fn sgd_steps(&self, lr: f64) -> usize {
        let mut optimizer = SgdConfig::new().init();
        self.steps_to_target(|network| {
            let value = (self.loss)(network.forward(self.x.clone()), &self.y);
            let scalar = value.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(value.backward(), network);
            *network = optimizer.step(lr, network.clone(), grads);
            scalar
        })
    }

    fn natural_steps(&self, lr: f64, fisher: FisherEstimate) -> usize {
        let mut optimizer = NaturalGradientConfig::new()
            .with_fisher(fisher.clone())
            .init();
        self.steps_to_target(|network| {
            let (output, capture) = network.forward_capture(self.x.clone());
            let value = (self.loss)(output, &self.y);
            let scalar = value.clone().into_scalar::<f32>();
            let mut grads = capture
                .into_gradients(network, value.backward(), &fisher)
                .unwrap();
            *network = optimizer.step(lr, network.clone(), &mut grads);
            scalar
        })
    }

    /// Natural gradient at one learning rate against SGD at the best of a grid.
    fn assert_natural_gradient_is_faster(&self, lr: f64, fisher: FisherEstimate) {
        let sgd = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
            .map(|lr| self.sgd_steps(lr))
            .into_iter()
            .min()
            .unwrap();
        let natural = self.natural_steps(lr, fisher);
        eprintln!(
            "steps to loss {}: natural gradient {natural}, best SGD {sgd}",
            self.target
        );
        assert!(
            natural < sgd,
            "natural gradient: {natural} steps, best SGD: {sgd} steps to loss {}",
            self.target
        );
    }
}

fn cross_entropy(output: Tensor<2>, target: &Tensor<2>) -> Tensor<1> {
    -(log_softmax(output, 1) * target.clone()).sum_dim(1).mean()
}

#[test]
fn natural_gradient_beats_tuned_sgd_on_regression() {
    let device = cpu_device().autodiff();
    let mut rng = rng(31);
    let x = normal(&mut rng, [128, 2], 1.0, &device);
    let y = (x.clone().slice([0..128, 0..1]) * 1.5).sin() + x.clone().slice([0..128, 1..2]) * 0.5;
    let network = ExpandableMlpConfig::new(2, 1)
        .with_hidden(vec![16])
        .init(&device);
    let network = reseeded(network, &mut rng);
    let task = Task {
        network,
        x,
        y,
        loss: mse,
        target: 0.02,
    };
    task.assert_natural_gradient_is_faster(0.3, FisherEstimate::Empirical);
}

#[test]
fn natural_gradient_beats_tuned_sgd_on_classification() {
    let device = cpu_device().autodiff();
    let mut rng = rng(32);
    let x = normal(&mut rng, [128, 2], 1.0, &device);
    // Two classes split by a circle.
    let inside = x.clone().square().sum_dim(1).lower_elem(1.4).float();
    let y = Tensor::cat(vec![inside.clone(), inside.neg() + 1.0], 1);
    let network = ExpandableMlpConfig::new(2, 2)
        .with_hidden(vec![8])
        .init(&device);
    let network = reseeded(network, &mut rng);
    let task = Task {
        network,
        x,
        y,
        loss: cross_entropy,
        target: 0.15,
    };
    let fisher = FisherEstimate::Sampled {
        distribution: OutputDistribution::Categorical,
    };
    task.assert_natural_gradient_is_faster(0.3, fisher);
}

#[test]
fn bad_curvature_never_makes_weights_non_finite() {
    let device = cpu_device().autodiff();
    let mut rng = rng(41);
    let x = normal(&mut rng, [16, 2], 1.0, &device);
    let y = normal(&mut rng, [16, 1], 1.0, &device);
    let mut network = ExpandableMlpConfig::new(2, 1)
        .with_hidden(vec![3])
        .init(&device);
    let mut optimizer = NaturalGradientConfig::new().with_inverse_period(1).init();
    for step in 0..6 {
        let mut grads = gradients(&network, &x, &y);
        let curvature = &network.layers()[0].curvature;
        // Inject a NaN factor, then a singular (zero) one, then an infinite statistic.
        match step {
            1 => {
                let id = curvature.activation_covariance.id;
                network = network.map(&mut Scale {
                    id,
                    factor: f32::NAN,
                });
            }
            2 => {
                let id = curvature.gradient_covariance.id;
                network = network.map(&mut Scale { id, factor: 0.0 });
            }
            3 => {
                let id = curvature.gradient_covariance.id;
                let g = grads.remove::<2>(id).unwrap();
                grads.register(id, g * f32::INFINITY);
            }
            _ => {}
        }
        network = optimizer.step(0.1, network, &mut grads);
        for layer in network.layers() {
            for value in [layer.weight.val().abs().max(), layer.bias.val().abs().max()] {
                assert!(value.into_scalar::<f32>().is_finite(), "step {step}");
            }
            let factor = layer.curvature.activation_covariance.val().abs().max();
            assert!(
                factor.into_scalar::<f32>().is_finite(),
                "factor repaired at step {step}"
            );
        }
    }
}
