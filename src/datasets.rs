//! The synthetic data sets of the method's experiments, generated deterministically from a
//! seed (the same seed gives the same data on every machine).

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::activation::RATIONAL_EPSILON;
use crate::random::SplitMix;

/// Labelled examples for classification.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationSet {
    /// One feature vector per example, all of the same length.
    pub features: Vec<Vec<f32>>,
    /// The class of each example.
    pub labels: Vec<usize>,
}

/// Examples for regression.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionSet {
    /// One feature vector per example, all of the same length.
    pub features: Vec<Vec<f32>>,
    /// One target vector per example, all of the same length.
    pub targets: Vec<Vec<f32>>,
}

/// A random permutation of `0..count` drawn from `seed` (Fisher–Yates with the crate's own
/// generator), the same on every machine: for shuffling examples and holding some out.
pub fn permutation(count: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix::new(seed);
    let mut order: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        let j = (rng.uniform() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    order
}

/// A seeded [`permutation`] of `0..count`, cut into `count - round(fraction · count)`
/// training and `round(fraction · count)` held-out indices.
pub(crate) fn split_indices(count: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    assert!(
        (0.0..=1.0).contains(&fraction),
        "the held-out fraction {fraction} is not within 0..=1"
    );
    let mut order = permutation(count, seed);
    let held_out = (fraction * count as f64).round() as usize;
    let test = order.split_off(count - held_out);
    (order, test)
}

fn matrix(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let width = rows.first().map_or(0, Vec::len);
    Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), width]), device)
}

impl ClassificationSet {
    /// Two interleaving half circles (scikit-learn's `make_moons`): `count` points, half of
    /// each class, with Gaussian noise of standard deviation `noise` on both coordinates.
    pub fn two_moons(count: usize, noise: f64, seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let outer = count / 2;
        let mut features = Vec::with_capacity(count);
        let mut labels = Vec::with_capacity(count);
        for i in 0..count {
            let (label, k, n) = if i < outer {
                (0, i, outer)
            } else {
                (1, i - outer, count - outer)
            };
            let t = std::f64::consts::PI * k as f64 / (n.max(2) - 1) as f64;
            let (x, y) = if label == 0 {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            let jitter = rng.normals(2, noise);
            features.push(vec![x as f32 + jitter[0], y as f32 + jitter[1]]);
            labels.push(label);
        }
        Self { features, labels }
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features as a `[count, d]` tensor.
    pub fn inputs(&self, device: &Device) -> Tensor<2> {
        matrix(&self.features, device)
    }

    /// Splits the examples at random (seeded) into a training set and a held-out set holding
    /// `round(test_fraction · count)` examples.
    ///
    /// # Panics
    ///
    /// If `test_fraction` is not within `0..=1`.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Self, Self) {
        let (train, test) = split_indices(self.len(), test_fraction, seed);
        let pick = |indices: &[usize]| Self {
            features: indices.iter().map(|&i| self.features[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        };
        (pick(&train), pick(&test))
    }

    /// The labels as a `[count]` integer tensor.
    pub fn label_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_data(TensorData::new(labels, [self.len()]), device)
    }
}

impl RegressionSet {
    /// The number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The features as a `[count, d_input]` tensor.
    pub fn inputs(&self, device: &Device) -> Tensor<2> {
        matrix(&self.features, device)
    }

    /// The targets as a `[count, d_output]` tensor.
    pub fn target_tensor(&self, device: &Device) -> Tensor<2> {
        matrix(&self.targets, device)
    }
}

/// A smooth random function ℝ → ℝ: a multilayer perceptron with random weights and random
/// rational activations, as in the method's 1-D regression experiment (there: hidden widths
/// 16-16-16-16). Its values are the network's raw outputs, as in the method (their spread
/// over x ~ N(0, 1) is typically 0.05–0.5).
#[derive(Debug, Clone)]
pub struct RandomRationalTarget {
    /// Per layer: weights `[d_in][d_out]`, biases, and per-neuron (v, c, l) (hidden only).
    layers: Vec<TargetLayer>,
}

#[derive(Debug, Clone)]
struct TargetLayer {
    weight: Vec<Vec<f64>>,
    bias: Vec<f64>,
    activation: Option<Vec<[f64; 3]>>,
}

impl RandomRationalTarget {
    /// A function with the given hidden widths, drawn from `seed`: weights N(0, 1/d_in),
    /// biases N(0, 1), activation coefficients N(0, 1).
    pub fn new(hidden: &[usize], seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let mut sizes = vec![1];
        sizes.extend(hidden);
        sizes.push(1);
        let last = sizes.len() - 2;
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(index, pair)| {
                let (d_in, d_out) = (pair[0], pair[1]);
                let mut draw = |n: usize, std: f64| -> Vec<f64> {
                    rng.normals(n, std).into_iter().map(f64::from).collect()
                };
                let weight = (0..d_in)
                    .map(|_| draw(d_out, 1.0 / (d_in as f64).sqrt()))
                    .collect();
                let bias = draw(d_out, 1.0);
                let activation = (index < last).then(|| {
                    (0..d_out)
                        .map(|_| {
                            let c = draw(3, 1.0);
                            [c[0], c[1], c[2]]
                        })
                        .collect()
                });
                TargetLayer {
                    weight,
                    bias,
                    activation,
                }
            })
            .collect();
        Self { layers }
    }

    /// `count` points with x ~ N(0, 1) drawn from `seed`, and their exact targets.
    pub fn sample(&self, count: usize, seed: u64) -> RegressionSet {
        let xs = SplitMix::new(seed).normals(count, 1.0);
        RegressionSet {
            features: xs.iter().map(|&x| vec![x]).collect(),
            targets: xs
                .iter()
                .map(|&x| vec![self.eval(f64::from(x)) as f32])
                .collect(),
        }
    }

    /// The function's value at `x`.
    pub fn eval(&self, x: f64) -> f64 {
        let mut activations = vec![x];
        for layer in &self.layers {
            let mut next = layer.bias.clone();
            for (a, row) in activations.iter().zip(&layer.weight) {
                for (out, w) in next.iter_mut().zip(row) {
                    *out += a * w;
                }
            }
            if let Some(coefficients) = &layer.activation {
                for (s, &[v, c, l]) in next.iter_mut().zip(coefficients) {
                    let norm = (v * v + c * c + l * l + RATIONAL_EPSILON).sqrt();
                    *s = ((2.0 * v * *s + c) / (1.0 + *s * *s) + l * *s) / norm;
                }
            }
            activations = next;
        }
        activations[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_moons_is_balanced_and_seeded() {
        let a = ClassificationSet::two_moons(101, 0.3, 7);
        assert_eq!(a.len(), 101);
        assert_eq!(a.labels.iter().filter(|&&l| l == 0).count(), 50);
        assert_eq!(a, ClassificationSet::two_moons(101, 0.3, 7));
        assert_ne!(a, ClassificationSet::two_moons(101, 0.3, 8));
    }

    #[test]
    fn random_target_is_seeded_smooth_and_not_constant() {
        let target = RandomRationalTarget::new(&[16, 16, 16, 16], 3);
        let set = target.sample(200, 11);
        assert_eq!(
            set,
            RandomRationalTarget::new(&[16, 16, 16, 16], 3).sample(200, 11)
        );
        let ys: Vec<f64> = set.targets.iter().map(|t| f64::from(t[0])).collect();
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        let spread = ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / ys.len() as f64;
        assert!(spread > 1e-4, "variance {spread}");
        // Smooth: nearby inputs give nearby outputs.
        let step = (target.eval(0.501) - target.eval(0.5)).abs();
        assert!(step < 0.01, "jump {step} over 0.001");
    }
}
