//! Self-expansion: when and where the network grows.
//!
//! At every check (every [`ExpansionConfig::interval`] optimiser steps) the
//! [`NaturalGradient`](crate::NaturalGradient) optimiser scores the network on the step's batch
//! ([`ExpandableMlp::expansion_scores`]): the natural expansion score η = gᵀF⁻¹g per layer,
//! its upper bound λ = E‖∂ℓ/∂y‖², and for candidate new units the lower bound Δη′ on how much
//! they would raise η (see [`NetworkScores`] for the formulas). Candidates are searched
//! ([`ExpansionConfig::width_candidates`] random neurons per hidden layer,
//! [`ExpansionConfig::depth_candidates`] random layers per position, each improved by
//! [`ExpansionConfig::ascent_steps`] steps of gradient ascent on Δη′), and the policy runs
//! greedy rounds:
//!
//! 1. a candidate passes if Δη′ > max(α·λ, `min_gain`) and (η_c + Δη′)/η_c > τ, where η_c is
//!    the η of the layer that would consume the new units (for depth, Δη′ is first divided by
//!    `depth_cost`), and if η_c + Δη′ ≤ λ: no network's η exceeds λ, so a candidate that
//!    claims more is an artefact of a nearly singular factor (typically near zero loss, where
//!    the residual is rounding noise), not a gain;
//! 2. the passing candidate with the largest (cost-adjusted) Δη′ is applied, the network is
//!    scored again, and the next round starts, until nothing passes;
//! 3. at most N rounds run per check, N the largest integer below 1 + ln(λ/α′)/ln τ with
//!    α′ = max(α·λ, `min_gain`): the method's bound on how many additions can pass in a row
//!    (each multiplies η by more than τ, the first leaves η above α′, and η ≤ λ), enforced as a
//!    hard cap because the K-FAC scores satisfy its premises only approximately.
//!
//! A width expansion adds the winning candidate neuron itself, with zero outgoing weights. A
//! depth expansion inserts an identity layer ([`ExpandableMlp::insert_identity_layer`]): as in
//! the method, its score was measured for a nonlinear candidate layer, so for depth Δη′ is a
//! proxy; the new layer becomes nonlinear as its activations train away from the identity.
//! Neither changes the network's outputs.
//!
//! Every accepted expansion is an `info` event of the `tracing` crate and an
//! [`ExpansionEvent`] in the network's [`ExpansionHistory`]; a check that adds nothing logs
//! its best candidate at `debug` level.

mod history;
mod score;
mod search;

pub(crate) use history::empty_history;
pub use history::{ExpansionEvent, ExpansionHistory, ExpansionKind};
pub(crate) use score::homogeneous;
pub use score::{NetworkScores, ScoringData, SCORE_CUTOFF};

use burn::config::Config;
use burn::tensor::{Tensor, TensorData};

use crate::activation::RationalParams;
use crate::growth::NewNeurons;
use crate::mlp::ExpandableMlp;
use crate::optim::{counts, OptimizerConfigError};
use crate::random::SplitMix;
use search::{search, CandidateUnits, SearchEffort, SearchProblem};

/// When and how an [`ExpandableMlp`] grows during natural-gradient training; set it with
/// [`NaturalGradientConfig::with_expansion`](crate::NaturalGradientConfig). The defaults follow
/// the method's 1-D regression and half-moons experiments (τ = 2, α = 2.5e-3, depth cost 2).
#[derive(Config, Debug, PartialEq)]
pub struct ExpansionConfig {
    /// Steps between expansion checks: a check runs on the step whose number of previous
    /// steps is a positive multiple of this. Default: 30.
    #[config(default = 30)]
    pub interval: usize,
    /// Relative threshold τ > 1: new units must raise the consuming layer's η by a factor above
    /// τ, (η_c + Δη′)/η_c > τ. (The method's reference code calls τ − 1 `thresh`.) Default: 2.
    #[config(default = 2.0)]
    pub tau: f64,
    /// Absolute threshold α in (0, 1), in units of λ = E‖∂ℓ/∂y‖²: Δη′ must exceed α·λ.
    /// Default: 2.5e-3.
    #[config(default = 2.5e-3)]
    pub alpha: f64,
    /// Absolute floor on Δη′, in the loss's own units: Δη′ must also exceed this. It stops
    /// growth once the loss is essentially zero (where α·λ vanishes with λ, and the residual is
    /// rounding noise). Default: 1e-9.
    #[config(default = 1e-9)]
    pub min_gain: f64,
    /// A layer's Δη′ is divided by this before it is compared (depth costs more than width).
    /// Default: 2.
    #[config(default = 2.0)]
    pub depth_cost: f64,
    /// After a layer is inserted, no other layer is inserted for this many checks. Default: 3.
    #[config(default = 3)]
    pub depth_cooldown: usize,
    /// Candidate neurons drawn per hidden layer and round. Default: 32.
    #[config(default = 32)]
    pub width_candidates: usize,
    /// Candidate layers drawn per position and round. Default: 16.
    #[config(default = 16)]
    pub depth_candidates: usize,
    /// Adam steps of gradient ascent on Δη′ per search. Default: 20. (On half-moons 5 steps
    /// are as accurate for a third of the check time, but on the 1-D regression they leave
    /// the held-out error 2–5× higher; 40 steps double the check time for no better accuracy.)
    #[config(default = 20)]
    pub ascent_steps: usize,
    /// The Adam step size of the ascent. Default: 0.05.
    #[config(default = 0.05)]
    pub ascent_rate: f64,
    /// Whether neurons may be added to existing layers. Default: true.
    #[config(default = true)]
    pub grow_width: bool,
    /// Whether layers may be inserted. Default: true.
    #[config(default = true)]
    pub grow_depth: bool,
    /// The largest width growth may produce (in addition to the network's own
    /// `max_width`). Default: no limit.
    #[config(default = "None")]
    pub max_width: Option<usize>,
    /// The largest number of hidden layers growth may produce (in addition to the network's
    /// own `max_depth`). Default: no limit.
    #[config(default = "None")]
    pub max_depth: Option<usize>,
    /// Seed of the candidate draws (mixed with the step number), so that runs are
    /// reproducible. Default: 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl ExpansionConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), OptimizerConfigError> {
        let check = |name, value: f64, ok: bool, expected| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(OptimizerConfigError::OutOfRange {
                    name,
                    value,
                    expected,
                })
            }
        };
        let positive_counts = [
            ("expansion.interval", self.interval),
            ("expansion.width_candidates", self.width_candidates),
            ("expansion.depth_candidates", self.depth_candidates),
        ];
        for (name, count) in positive_counts {
            check(name, count as f64, count > 0, ">= 1")?;
        }
        check("expansion.tau", self.tau, self.tau > 1.0, "> 1")?;
        let alpha = self.alpha;
        check(
            "expansion.alpha",
            alpha,
            alpha > 0.0 && alpha < 1.0,
            "in (0, 1)",
        )?;
        check(
            "expansion.min_gain",
            self.min_gain,
            self.min_gain >= 0.0,
            ">= 0",
        )?;
        check(
            "expansion.depth_cost",
            self.depth_cost,
            self.depth_cost > 0.0,
            "> 0",
        )?;
        let rate = self.ascent_rate;
        check("expansion.ascent_rate", rate, rate > 0.0, "> 0")?;
        for (name, limit) in [
            ("expansion.max_width", self.max_width),
            ("expansion.max_depth", self.max_depth),
        ] {
            if let Some(limit) = limit {
                check(name, limit as f64, limit > 0, ">= 1 (or None)")?;
            }
        }
        Ok(())
    }

    /// The most expansions one check may make when additions must exceed `threshold` and
    /// λ = `lambda`: the largest integer N < 1 + ln(λ/threshold)/ln τ (0 when threshold ≥ λ).
    pub fn rate_bound(&self, lambda: f64, threshold: f64) -> usize {
        let bound = 1.0 + (lambda / threshold).ln() / self.tau.ln();
        if bound.is_finite() && bound > 1.0 {
            // The largest integer strictly below the bound.
            (bound.ceil() - 1.0) as usize
        } else if bound == f64::INFINITY {
            usize::MAX
        } else {
            0
        }
    }
}

/// A growth decided at a check, to be applied to the network after the step's update.
#[derive(Debug, Clone)]
enum Growth {
    Widen { layer: usize, units: CandidateUnits },
    Insert { position: usize },
}

/// The growths one check decided on, with their history entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpansionPlan {
    growths: Vec<Growth>,
    events: Vec<ExpansionEvent>,
}

/// A scored proposal of one round.
struct Proposal {
    growth: Growth,
    kind: ExpansionKind,
    consumer: usize,
    neurons: usize,
    /// Δη′ (before the depth cost).
    gain: f64,
    /// Δη′ after the depth cost: what is compared and ranked.
    adjusted: f64,
}

impl ExpandableMlp {
    /// Whether the next optimiser step is an expansion check (so its batch's scoring data
    /// must travel to the optimiser).
    pub(crate) fn expansion_due(&self) -> bool {
        let [steps, _, interval] = counts(self);
        interval > 0 && steps > 0 && steps % interval == 0
    }

    fn width_limit(&self, config: &ExpansionConfig) -> usize {
        let limits = [self.config.max_width, config.max_width];
        limits.into_iter().flatten().min().unwrap_or(usize::MAX)
    }

    fn depth_limit(&self, config: &ExpansionConfig) -> usize {
        let limits = [self.config.max_depth, config.max_depth];
        limits.into_iter().flatten().min().unwrap_or(usize::MAX)
    }
}

/// Runs one expansion check on `network` (as it was when the batch was captured) at `step`:
/// greedy rounds of scoring, search and acceptance on a copy. Returns what to grow.
pub(crate) fn plan(
    network: &ExpandableMlp,
    data: &ScoringData,
    config: &ExpansionConfig,
    step: u64,
) -> ExpansionPlan {
    let mut plan = ExpansionPlan::default();
    let mut grown = network.clone();
    let cooldown = (config.depth_cooldown * config.interval) as u64;
    let mut depth_allowed = config.grow_depth
        && network
            .expansion_history()
            .last_depth_step()
            .is_none_or(|last| step >= last + cooldown.max(1));
    let mut rng = SplitMix::new(config.seed ^ step.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut cap = None;

    for round in 0.. {
        let scores = match grown.expansion_scores(data) {
            Ok(scores) => scores,
            Err(error) => {
                tracing::warn!(step, %error, "expansion check skipped");
                break;
            }
        };
        let lambda = scores.lambda();
        let threshold = (config.alpha * lambda).max(config.min_gain);
        let cap = *cap.get_or_insert_with(|| config.rate_bound(lambda, threshold));
        if round >= cap {
            if cap > 0 {
                tracing::debug!(
                    step,
                    cap,
                    "rate bound reached: no more expansions this check"
                );
            }
            break;
        }
        let proposals = propose(&grown, &scores, config, depth_allowed, &mut rng);
        let etas = scores.layer_etas();
        let best = proposals
            .iter()
            .filter(|p| passes(p, etas[p.consumer], lambda, threshold, config.tau))
            .max_by(|a, b| a.adjusted.total_cmp(&b.adjusted));
        let Some(best) = best else {
            let top = proposals
                .iter()
                .max_by(|a, b| a.adjusted.total_cmp(&b.adjusted));
            tracing::debug!(
                step,
                round,
                lambda,
                eta_total = scores.eta_total(),
                threshold,
                best_gain = top.map(|p| p.adjusted),
                best_eta = top.map(|p| etas[p.consumer]),
                "no candidate passes; no expansion"
            );
            break;
        };
        let event = ExpansionEvent {
            step,
            kind: best.kind,
            layer: match best.growth {
                Growth::Widen { layer, .. } => layer,
                Growth::Insert { position } => position,
            },
            neurons: best.neurons,
            gain: best.gain,
            eta: etas[best.consumer],
            eta_total: scores.eta_total(),
            lambda,
            tau: config.tau,
            threshold,
            round,
        };
        match apply(&grown, &best.growth) {
            Ok(next) => grown = next,
            Err(error) => {
                tracing::warn!(step, %error, "accepted expansion could not be applied");
                break;
            }
        }
        tracing::info!(
            step = event.step,
            kind = %event.kind,
            layer = event.layer,
            neurons = event.neurons,
            gain = event.gain,
            eta = event.eta,
            eta_total = event.eta_total,
            lambda = event.lambda,
            tau = event.tau,
            threshold = event.threshold,
            round = event.round,
            architecture = %grown.architecture(),
            "network expanded"
        );
        if best.kind == ExpansionKind::Depth {
            depth_allowed = false;
        }
        plan.growths.push(best.growth.clone());
        plan.events.push(event);
    }
    plan
}

/// Whether `proposal` passes the thresholds against the consumer's η and λ. A score that is
/// NaN or infinite never passes, so growth never follows from one.
fn passes(proposal: &Proposal, eta: f64, lambda: f64, threshold: f64, tau: f64) -> bool {
    let scores = [proposal.gain, proposal.adjusted, eta, lambda, threshold];
    scores.iter().all(|score| score.is_finite())
        && proposal.adjusted > threshold
        && proposal.adjusted > (tau - 1.0) * eta
        && eta + proposal.gain <= lambda
}

impl ExpansionPlan {
    /// Applies the planned growths to `network` (the network after the step's update) and
    /// appends their events to its history.
    pub(crate) fn apply(self, network: ExpandableMlp) -> ExpandableMlp {
        let mut network = network;
        for (done, growth) in self.growths.iter().enumerate() {
            match apply(&network, growth) {
                Ok(next) => network = next,
                Err(error) => {
                    tracing::warn!(%error, "planned expansion could not be applied");
                    return network.with_events(&self.events[..done]);
                }
            }
        }
        network.with_events(&self.events)
    }
}

fn apply(network: &ExpandableMlp, growth: &Growth) -> Result<ExpandableMlp, crate::GrowthError> {
    match growth {
        Growth::Widen { layer, units } => {
            let device = network.layers[*layer].weight.val().device();
            let k = units.bias.len();
            let d = units.weight.len() / k;
            let vector =
                |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [k]), &device);
            let neurons = NewNeurons {
                weight: Tensor::from_data(TensorData::new(units.weight.clone(), [d, k]), &device),
                bias: vector(&units.bias),
                activation: RationalParams {
                    odd: vector(&units.odd),
                    even: vector(&units.even),
                    linear: vector(&units.linear),
                },
            };
            network.widen(*layer, neurons)
        }
        Growth::Insert { position } => network.insert_identity_layer(*position),
    }
}

/// The best candidate of every allowed location, scored with the exact host Δη′.
fn propose(
    network: &ExpandableMlp,
    scores: &NetworkScores,
    config: &ExpansionConfig,
    depth_allowed: bool,
    rng: &mut SplitMix,
) -> Vec<Proposal> {
    let mut proposals = Vec::new();
    let width_limit = network.width_limit(config);
    let effort = |candidates| SearchEffort {
        candidates,
        steps: config.ascent_steps,
        rate: config.ascent_rate,
    };
    if config.grow_width {
        for layer in 0..network.depth() {
            if network.layers[layer].d_output() >= width_limit {
                continue;
            }
            let problem = SearchProblem {
                input: scores.layer_inputs(layer),
                residual: scores.residual_gradients(layer + 1),
                gradient_inverse: scores.gradient_inverse(layer + 1),
                units: 1,
            };
            if let Some(units) = search(&problem, effort(config.width_candidates), rng) {
                let gain = scores.lower_bound(layer + 1, units.outputs(problem.input));
                proposals.push(Proposal {
                    growth: Growth::Widen { layer, units },
                    kind: ExpansionKind::Width,
                    consumer: layer + 1,
                    neurons: 1,
                    gain,
                    adjusted: gain,
                });
            }
        }
    }
    if depth_allowed && network.depth() < network.depth_limit(config) {
        for position in 0..=network.depth() {
            let units = network.layers[position].d_input();
            if units > width_limit {
                continue;
            }
            let problem = SearchProblem {
                input: scores.layer_inputs(position),
                residual: scores.residual_gradients(position),
                gradient_inverse: scores.gradient_inverse(position),
                units,
            };
            if let Some(layer) = search(&problem, effort(config.depth_candidates), rng) {
                let gain = scores.lower_bound(position, layer.outputs(problem.input));
                proposals.push(Proposal {
                    growth: Growth::Insert { position },
                    kind: ExpansionKind::Depth,
                    consumer: position,
                    neurons: units,
                    gain,
                    adjusted: gain / config.depth_cost,
                });
            }
        }
    }
    proposals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::ExpandableMlpConfig;
    use crate::test_device;

    #[test]
    fn default_configuration_is_valid() {
        assert_eq!(ExpansionConfig::new().validate(), Ok(()));
    }

    #[test]
    fn invalid_configurations_name_the_field_and_the_range() {
        let cases = [
            (
                ExpansionConfig::new().with_tau(1.0),
                "expansion.tau = 1 is invalid; it must be > 1",
            ),
            (
                ExpansionConfig::new().with_alpha(0.0),
                "expansion.alpha = 0 is invalid; it must be in (0, 1)",
            ),
            (
                ExpansionConfig::new().with_interval(0),
                "expansion.interval = 0 is invalid; it must be >= 1",
            ),
            (
                ExpansionConfig::new().with_min_gain(-1.0),
                "expansion.min_gain = -1 is invalid; it must be >= 0",
            ),
            (
                ExpansionConfig::new().with_depth_cost(f64::NAN),
                "expansion.depth_cost = NaN is invalid; it must be > 0",
            ),
            (
                ExpansionConfig::new().with_max_width(Some(0)),
                "expansion.max_width = 0 is invalid; it must be >= 1 (or None)",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn rate_bound_is_the_largest_integer_below_the_bound() {
        let config = ExpansionConfig::new();
        // τ = 2, α/λ = 1e-3: 1 + ln(1000)/ln 2 = 10.97.
        assert_eq!(config.rate_bound(1.0, 1e-3), 10);
        // 1 + ln(4)/ln 2 = 3 exactly: N < 3.
        assert_eq!(config.rate_bound(1.0, 0.25), 2);
        assert_eq!(config.rate_bound(1.0, 1.0), 0);
        assert_eq!(config.rate_bound(1.0, 2.0), 0);
        assert_eq!(config.rate_bound(0.0, 1e-9), 0);
    }

    #[test]
    fn non_finite_scores_never_pass() {
        let proposal = |gain: f64| Proposal {
            growth: Growth::Insert { position: 0 },
            kind: ExpansionKind::Depth,
            consumer: 0,
            neurons: 1,
            gain,
            adjusted: gain,
        };
        // η = 0.1, λ = 1, threshold 0.01, τ = 2: a gain of 0.5 passes.
        assert!(passes(&proposal(0.5), 0.1, 1.0, 0.01, 2.0));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!passes(&proposal(bad), 0.1, 1.0, 0.01, 2.0), "gain {bad}");
            assert!(!passes(&proposal(0.5), bad, 1.0, 0.01, 2.0), "eta {bad}");
            assert!(!passes(&proposal(0.5), 0.1, bad, 0.01, 2.0), "lambda {bad}");
            assert!(
                !passes(&proposal(0.5), 0.1, 1.0, bad, 2.0),
                "threshold {bad}"
            );
        }
        // Each threshold on its own: too small, too little relative gain, more than λ.
        assert!(!passes(&proposal(0.005), 0.001, 1.0, 0.01, 2.0));
        assert!(!passes(&proposal(0.5), 0.6, 2.0, 0.01, 2.0));
        assert!(!passes(&proposal(0.95), 0.1, 1.0, 0.01, 2.0));
    }

    #[test]
    fn history_round_trips_through_the_network() {
        let device = test_device();
        let network = ExpandableMlpConfig::new(2, 1)
            .with_hidden(vec![1])
            .init(&device);
        assert_eq!(network.expansion_history(), ExpansionHistory::default());
        let event = ExpansionEvent {
            step: 120,
            kind: ExpansionKind::Depth,
            layer: 1,
            neurons: 2,
            gain: 0.5,
            eta: 0.25,
            eta_total: 0.75,
            lambda: 2.0,
            tau: 2.0,
            threshold: 0.0078125,
            round: 1,
        };
        let widened = network.widen_random(0, 1).unwrap();
        let recorded = widened.with_events(std::slice::from_ref(&event));
        assert_eq!(recorded.expansion_history().events, vec![event.clone()]);
        // Growth keeps the history and resizes its storage to the architecture.
        let deeper = recorded.insert_identity_layer(1).unwrap();
        assert_eq!(deeper.expansion_history().events, vec![event]);
        assert_eq!(deeper.history.val().dims()[0], 1 + 2 + 2);
    }
}
