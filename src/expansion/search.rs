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

/// The parameters of all P candidates side by side in one `[d + 4, P·k]` tensor on the inner
/// device: the fan-in weights in the first d rows, then one row each for the bias and the
/// activation's odd, even and linear coefficients. One tensor keeps each ascent step's update
/// to a handful of tensor operations.
#[derive(Clone)]
struct Parameters(Tensor<2>);

impl Parameters {
    fn draw(d: usize, width: usize, rng: &mut SplitMix, device: &Device) -> Self {
        let mut values = rng.normals(d * width, 1.0 / (d as f64).sqrt());
        for _ in 0..4 {
            values.extend(rng.normals(width, 1.0));
        }
        Self(Tensor::from_data(
            TensorData::new(values, [d + 4, width]),
            device,
        ))
    }

    /// The weights `[d, width]` and the bias, odd, even and linear rows `[width]`.
    fn split(&self) -> (Tensor<2>, [Tensor<1>; 4]) {
        let [rows, _] = self.0.dims();
        let d = rows - 4;
        let row = |i: usize| self.0.clone().narrow(0, d + i, 1).squeeze_dim::<1>(0);
        (
            self.0.clone().narrow(0, 0, d),
            [row(0), row(1), row(2), row(3)],
        )
    }

    /// The units of candidate `index` (`k` columns) on the host.
    fn candidate(&self, index: usize, k: usize) -> CandidateUnits {
        let [rows, _] = self.0.dims();
        let d = rows - 4;
        let values: Vec<f32> = host_values(&self.0.clone().narrow(1, index * k, k))
            .into_iter()
            .map(|x| x as f32)
            .collect();
        let row = |i: usize| values[(d + i) * k..(d + i + 1) * k].to_vec();
        CandidateUnits {
            weight: values[..d * k].to_vec(),
            bias: row(0),
            odd: row(1),
            even: row(2),
            linear: row(3),
        }
    }
}

/// Runs the search and returns the best candidate seen at any ascent step, or `None` if no
/// candidate ever had a finite score.
pub(crate) fn search(
    problem: &SearchProblem,
    effort: SearchEffort,
    rng: &mut SplitMix,
) -> Option<CandidateUnits> {
    let device = problem.input.device();
    let [_, d] = problem.input.dims();
    let k = problem.units;
    let p = effort.candidates;
    let mut params = Parameters::draw(d, p * k, rng, &device);
    let (mut first, mut second) = (params.0.zeros_like(), params.0.zeros_like());
    let (beta1, beta2, epsilon) = (0.9_f64, 0.999_f64, 1e-8);
    // The best gain seen, the parameters it was seen with and the candidate's index; its units
    // are read back to the host once, at the end.
    let mut best: Option<(f64, Parameters, usize)> = None;

    for step in 0..=effort.steps {
        let leaves = Parameters(params.0.clone().autodiff().require_grad());
        let (gains, objective) = objective(problem, &leaves, p);
        if let Some((index, &gain)) = gains
            .iter()
            .enumerate()
            .filter(|(_, g)| g.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))
        {
            if best
                .as_ref()
                .is_none_or(|(best_gain, ..)| gain > *best_gain)
            {
                best = Some((gain, params.clone(), index));
            }
        }
        if step == effort.steps {
            break;
        }
        let grads = objective.backward();
        let gradient = leaves
            .0
            .grad(&grads)
            .unwrap_or_else(|| params.0.zeros_like());
        // Non-finite gradients (a degenerate candidate) become zero: that candidate stays.
        let gradient = gradient
            .clone()
            .mask_fill(gradient.is_finite().bool_not(), 0.0);
        first = first * beta1 + gradient.clone() * (1.0 - beta1);
        second = second * beta2 + gradient.square() * (1.0 - beta2);
        let t = (step + 1) as i32;
        let correction1 = 1.0 - beta1.powi(t);
        let correction2 = 1.0 - beta2.powi(t);
        let step_size = effort.rate / correction1;
        let direction = first.clone() / ((second.clone() / correction2).sqrt() + epsilon);
        params = Parameters(params.0 + direction * step_size);
    }
    best.map(|(_, params, index)| params.candidate(index, k))
}

/// Each candidate's Δη′ (on the host) and a scalar whose gradient is the gradient of their
/// sum.
fn objective(problem: &SearchProblem, leaves: &Parameters, p: usize) -> (Vec<f64>, Tensor<1>) {
    let k = problem.units;
    let input = problem.input.clone().autodiff();
    let (weight, [bias, odd, even, linear]) = leaves.split();
    let activation = RationalParams { odd, even, linear };
    let outputs = activation.apply(input.matmul(weight) + bias.unsqueeze_dim(0));
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
