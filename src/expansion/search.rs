//! Candidate search: many random candidate units improved together by gradient ascent on
//! their lower bound Δη′, on the device, with burn's autodiff over the small candidate
//! tensors.
//!
//! A candidate is a group of `k` units (k = 1 for a new neuron, k = the width in front of the
//! insertion point for a new layer) computing σ(a·W + b) from a layer's inputs a. P candidates
//! are laid side by side as one `[d, P·k]` layer, so one forward and one backward pass serve
//! them all. Each candidate's Δη′ depends only on its own units, so ascending the sum ascends
//! each one. The ascent is Adam (deterministic, from seeded draws); the method's reference
//! sampler (Langevin with a sign error in its drift) is not reproduced.

use burn::tensor::{Device, Tensor, TensorData};
use faer::Mat;

use crate::activation::RationalParams;
use crate::expansion::score::{pseudo_inverse, SCORE_CUTOFF};
use crate::param::host_values;
use crate::random::SplitMix;

/// What a search scores candidates against: the inputs the new units read and the consumer
/// they feed.
pub(crate) struct SearchProblem {
    /// a: `[batch, d]`.
    pub input: Tensor<2>,
    /// g_r of the consumer: `[batch, m]`.
    pub residual: Tensor<2>,
    /// S⁺ of the consumer: `[m, m]`.
    pub gradient_inverse: Tensor<2>,
    /// k, the units per candidate.
    pub units: usize,
}

/// How hard to search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchEffort {
    pub candidates: usize,
    pub steps: usize,
    pub rate: f64,
}

/// The parameters of one candidate on the host.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CandidateUnits {
    /// `[d, k]`, row-major.
    pub weight: Vec<f32>,
    /// `[k]` each.
    pub bias: Vec<f32>,
    pub odd: Vec<f32>,
    pub even: Vec<f32>,
    pub linear: Vec<f32>,
}

impl CandidateUnits {
    /// The units' outputs σ(a·W + b) for inputs a on `device`: `[batch, k]`.
    pub(crate) fn outputs(&self, input: Tensor<2>) -> Tensor<2> {
        let device = input.device();
        let k = self.bias.len();
        let d = self.weight.len() / k;
        let vector =
            |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [k]), &device);
        let weight = Tensor::from_data(TensorData::new(self.weight.clone(), [d, k]), &device);
        let params = RationalParams {
            odd: vector(&self.odd),
            even: vector(&self.even),
            linear: vector(&self.linear),
        };
        params.apply(input.matmul(weight) + vector(&self.bias).unsqueeze_dim(0))
    }
}

/// The best candidate found: its Δη′ as the search measured it (in `f32` on the device) and
/// its parameters.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub gain: f64,
    pub units: CandidateUnits,
}

/// The candidate parameters of all P candidates side by side, on the inner device.
#[derive(Clone)]
struct Parameters {
    weight: Tensor<2>,
    tensors: [Tensor<1>; 4],
}

impl Parameters {
    fn draw(d: usize, width: usize, rng: &mut SplitMix, device: &Device) -> Self {
        let weight = rng.normals(d * width, 1.0 / (d as f64).sqrt());
        let vector = |values: Vec<f32>| Tensor::from_data(TensorData::new(values, [width]), device);
        Self {
            weight: Tensor::from_data(TensorData::new(weight, [d, width]), device),
            tensors: [(); 4].map(|_| vector(rng.normals(width, 1.0))),
        }
    }

    fn map(self, mut f: impl FnMut(Tensor<2>) -> Tensor<2>) -> Self {
        let row = |t: Tensor<1>| t.unsqueeze_dim::<2>(0);
        Self {
            weight: f(self.weight),
            tensors: self.tensors.map(|t| f(row(t)).squeeze_dim::<1>(0)),
        }
    }

    fn zip(self, other: Self, mut f: impl FnMut(Tensor<2>, Tensor<2>) -> Tensor<2>) -> Self {
        let row = |t: Tensor<1>| t.unsqueeze_dim::<2>(0);
        let [a0, a1, a2, a3] = self.tensors;
        let [b0, b1, b2, b3] = other.tensors;
        Self {
            weight: f(self.weight, other.weight),
            tensors: [(a0, b0), (a1, b1), (a2, b2), (a3, b3)]
                .map(|(a, b)| f(row(a), row(b)).squeeze_dim::<1>(0)),
        }
    }

    /// The units of candidate `index` (`k` columns) on the host.
    fn candidate(&self, index: usize, k: usize) -> CandidateUnits {
        let columns = |t: &Tensor<1>| {
            host_values(&t.clone().narrow(0, index * k, k))
                .into_iter()
                .map(|x| x as f32)
                .collect()
        };
        let weight = self.weight.clone().narrow(1, index * k, k);
        let [bias, odd, even, linear] = self.tensors.each_ref().map(columns);
        CandidateUnits {
            weight: host_values(&weight).into_iter().map(|x| x as f32).collect(),
            bias,
            odd,
            even,
            linear,
        }
    }
}

/// Runs the search and returns the best candidate seen at any ascent step, or `None` if no
/// candidate ever had a finite score.
pub(crate) fn search(
    problem: &SearchProblem,
    effort: SearchEffort,
    rng: &mut SplitMix,
) -> Option<Found> {
    let device = problem.input.device();
    let [_, d] = problem.input.dims();
    let k = problem.units;
    let p = effort.candidates;
    let mut params = Parameters::draw(d, p * k, rng, &device);
    let zeros = params.clone().map(|t| t.zeros_like());
    let (mut first, mut second) = (zeros.clone(), zeros);
    let (beta1, beta2, epsilon) = (0.9_f64, 0.999_f64, 1e-8);
    let mut best: Option<Found> = None;

    for step in 0..=effort.steps {
        let leaves = params.clone().map(|t| t.autodiff().require_grad());
        let (gains, objective) = objective(problem, &leaves, p);
        let measured: Vec<f64> = gains;
        if let Some((index, &gain)) = measured
            .iter()
            .enumerate()
            .filter(|(_, g)| g.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))
        {
            if best.as_ref().is_none_or(|b| gain > b.gain) {
                best = Some(Found {
                    gain,
                    units: params.candidate(index, k),
                });
            }
        }
        if step == effort.steps {
            break;
        }
        let grads = objective.backward();
        let gradient = leaves.map(|leaf| {
            leaf.grad(&grads)
                .unwrap_or_else(|| leaf.clone().inner().zeros_like())
        });
        // Non-finite gradients (a degenerate candidate) become zero: that candidate stays.
        let gradient = gradient.map(|g| {
            let bad = g.clone().is_nan().bool_or(g.clone().is_inf());
            g.mask_fill(bad, 0.0)
        });
        first = first.zip(gradient.clone(), |m, g| m * beta1 + g * (1.0 - beta1));
        second = second.zip(gradient, |v, g| v * beta2 + g.square() * (1.0 - beta2));
        let t = (step + 1) as i32;
        let correction1 = 1.0 - beta1.powi(t);
        let correction2 = 1.0 - beta2.powi(t);
        let step_size = effort.rate / correction1;
        let direction = first.clone().zip(second.clone(), |m, v| {
            m / ((v / correction2).sqrt() + epsilon)
        });
        params = params.zip(direction, |theta, u| theta + u * step_size);
    }
    best
}

/// Each candidate's Δη′ (on the host) and a scalar whose gradient is the gradient of their
/// sum.
fn objective(problem: &SearchProblem, leaves: &Parameters, p: usize) -> (Vec<f64>, Tensor<1>) {
    let k = problem.units;
    let input = problem.input.clone().autodiff();
    let [bias, odd, even, linear] = leaves.tensors.clone();
    let activation = RationalParams { odd, even, linear };
    let outputs = activation.apply(input.matmul(leaves.weight.clone()) + bias.unsqueeze_dim(0));
    let [n, _] = outputs.dims();
    let scale = 1.0 / n as f64;
    let residual = problem.residual.clone().autodiff();
    let gradient_inverse = problem.gradient_inverse.clone().autodiff();
    if k == 1 {
        // C: [m, P]; Δη′ = cᵀS⁻¹c / E[f²] per candidate.
        let c = residual.transpose().matmul(outputs.clone()) * scale;
        let quadratic = (gradient_inverse.matmul(c.clone()) * c).sum_dim(0);
        let second_moment = outputs.square().mean_dim(0);
        let ridge = second_moment.clone() * SCORE_CUTOFF + f64::MIN_POSITIVE;
        let gains = quadratic / (second_moment + ridge);
        let values = host_values(&gains.clone().inner());
        return (values, gains.sum());
    }
    // [P, batch, k] per candidate.
    let grouped = outputs.reshape([n, p, k]).swap_dims(0, 1);
    let transposed = grouped.clone().swap_dims(1, 2);
    let [m, _] = problem.gradient_inverse.dims();
    let second_moment = transposed.clone().matmul(grouped) * scale;
    let c = transposed.matmul(residual.unsqueeze_dim::<3>(0).expand([p, n, m])) * scale;
    let q = c
        .clone()
        .matmul(gradient_inverse.unsqueeze_dim::<3>(0).expand([p, m, m]))
        .matmul(c.swap_dims(1, 2));
    // Tr[A⁻¹Q] with A⁻¹ computed on the host. Its gradient is A⁻¹ in Q and −A⁻¹QA⁻¹ in A,
    // which the surrogate Tr[KQ] − Tr[(KQK)·A] has at the current point (K = A⁻¹ held fixed).
    let inverses = batched_inverse(&second_moment.clone().inner(), p, k);
    let inverses = inverses.autodiff();
    let kq = inverses.clone().matmul(q.clone());
    let gains = kq.clone().inner();
    let values: Vec<f64> = host_values(&gains)
        .chunks_exact(k * k)
        .map(|block| (0..k).map(|i| block[i * k + i]).sum())
        .collect();
    let kqk = kq.matmul(inverses.clone()).inner().autodiff();
    let surrogate =
        (inverses.swap_dims(1, 2) * q).sum() - (kqk.swap_dims(1, 2) * second_moment).sum();
    (values, surrogate)
}

/// The pseudo-inverse of each `[k, k]` block of `[p, k, k]` (NaN blocks for failures).
fn batched_inverse(blocks: &Tensor<3>, p: usize, k: usize) -> Tensor<3> {
    let device = blocks.device();
    let values = host_values(blocks);
    let mut inverses = Vec::with_capacity(p * k * k);
    for block in values.chunks_exact(k * k) {
        let matrix = Mat::from_fn(k, k, |i, j| block[i * k + j]);
        match pseudo_inverse(&matrix) {
            Ok(inverse) => {
                inverses.extend((0..k * k).map(|e| inverse[(e / k, e % k)] as f32));
            }
            Err(_) => inverses.extend(std::iter::repeat_n(f32::NAN, k * k)),
        }
    }
    Tensor::from_data(TensorData::new(inverses, [p, k, k]), &device)
}
