//! The record of every accepted expansion, kept inside the network so that it is saved with
//! it (in [`save`](crate::ExpandableMlp::save) files and in Learner checkpoints alike).
//!
//! The history is stored as a non-trainable `[rows, FIELDS]` tensor whose first row holds the
//! number of events. Every event adds at least one hidden neuron, so a network never has more
//! events than hidden neurons: the tensor has `1 + Σ hidden widths` rows, a shape that follows
//! from the architecture alone, which is what lets a checkpoint of a grown model be loaded
//! into a model built from its widths.

use std::fmt;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::mlp::ExpandableMlp;
use crate::param::{host_values, state};

/// The number of values stored per event.
pub(crate) const FIELDS: usize = 11;

/// What an expansion added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpansionKind {
    /// Neurons added to an existing hidden layer.
    Width,
    /// A hidden layer inserted.
    Depth,
}

impl fmt::Display for ExpansionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpansionKind::Width => "width",
            ExpansionKind::Depth => "depth",
        })
    }
}

/// One accepted expansion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpansionEvent {
    /// The number of optimiser steps taken before the expansion.
    pub step: u64,
    /// Width or depth.
    pub kind: ExpansionKind,
    /// Width: the hidden layer that was widened. Depth: the position of the new layer
    /// (0 = right after the input).
    pub layer: usize,
    /// The number of neurons added (for depth, the width of the new layer).
    pub neurons: usize,
    /// The lower bound Δη′ of the accepted candidate (for depth, before the depth cost).
    pub gain: f64,
    /// η of the layer that consumes the new inputs, before the expansion.
    pub eta: f64,
    /// η of the whole network (sum over layers), before the expansion.
    pub eta_total: f64,
    /// λ = E‖∂ℓ/∂y‖², the upper bound of η.
    pub lambda: f64,
    /// The relative threshold τ in force: accepted because (η + Δη′)/η > τ.
    pub tau: f64,
    /// The absolute threshold in force, in units of the score: accepted because
    /// Δη′ > `threshold` (α·λ, or the configured minimum gain if larger).
    pub threshold: f64,
    /// The position of this expansion within its check (0 for the first).
    pub round: usize,
}

/// Every accepted expansion of a network, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpansionHistory {
    /// The events.
    pub events: Vec<ExpansionEvent>,
}

impl ExpansionHistory {
    /// The number of events of `kind`.
    pub fn count(&self, kind: ExpansionKind) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }

    /// The total number of neurons added (by both kinds).
    pub fn neurons_added(&self) -> usize {
        self.events.iter().map(|e| e.neurons).sum()
    }

    /// The step of the last depth expansion, if any.
    pub fn last_depth_step(&self) -> Option<u64> {
        self.events
            .iter()
            .rev()
            .find(|e| e.kind == ExpansionKind::Depth)
            .map(|e| e.step)
    }

    fn encode(&self) -> Vec<f32> {
        let mut values = vec![0.0; FIELDS];
        values[0] = self.events.len() as f32;
        for e in &self.events {
            let kind = match e.kind {
                ExpansionKind::Width => 0.0,
                ExpansionKind::Depth => 1.0,
            };
            values.extend(
                [
                    e.step as f64,
                    kind,
                    e.layer as f64,
                    e.neurons as f64,
                    e.gain,
                    e.eta,
                    e.eta_total,
                    e.lambda,
                    e.tau,
                    e.threshold,
                    e.round as f64,
                ]
                .map(|x| x as f32),
            );
        }
        values
    }

    fn decode(values: &[f64]) -> Self {
        let count = values.first().map_or(0, |&c| c as usize);
        let events = values
            .chunks_exact(FIELDS)
            .skip(1)
            .take(count)
            .map(|row| ExpansionEvent {
                step: row[0] as u64,
                kind: if row[1] == 0.0 {
                    ExpansionKind::Width
                } else {
                    ExpansionKind::Depth
                },
                layer: row[2] as usize,
                neurons: row[3] as usize,
                gain: row[4],
                eta: row[5],
                eta_total: row[6],
                lambda: row[7],
                tau: row[8],
                threshold: row[9],
                round: row[10] as usize,
            })
            .collect();
        Self { events }
    }
}

/// The number of history rows a network of these hidden widths keeps.
pub(crate) fn history_rows(hidden: &[usize]) -> usize {
    1 + hidden.iter().sum::<usize>()
}

/// An empty history tensor for a network with these hidden widths.
pub(crate) fn empty_history(hidden: &[usize], device: &Device) -> Param<Tensor<2>> {
    state(Tensor::zeros([history_rows(hidden), FIELDS], device))
}

fn history_tensor(history: &ExpansionHistory, rows: usize, device: &Device) -> Tensor<2> {
    let mut values = history.encode();
    values.resize(rows * FIELDS, 0.0);
    let value = Tensor::from_data(
        TensorData::new(values, [rows, FIELDS]),
        &device.clone().inner(),
    );
    if device.is_autodiff() {
        value.autodiff()
    } else {
        value
    }
}

impl ExpandableMlp {
    /// Every expansion this network has gone through, oldest first. It is saved with the
    /// network, so it survives [`save`](Self::save) / [`load`](Self::load) and Learner
    /// checkpoints.
    pub fn expansion_history(&self) -> ExpansionHistory {
        ExpansionHistory::decode(&host_values(&self.history.val()))
    }

    /// The network with `events` appended to its history.
    pub(crate) fn with_events(mut self, events: &[ExpansionEvent]) -> Self {
        let mut history = self.expansion_history();
        history.events.extend_from_slice(events);
        self.set_history(&history);
        self
    }

    /// Resizes the history tensor to the current architecture (after growth), keeping its
    /// events.
    pub(crate) fn fit_history(mut self) -> Self {
        let rows = history_rows(&self.hidden_widths());
        if self.history.val().dims()[0] != rows {
            let history = self.expansion_history();
            self.set_history(&history);
        }
        self
    }

    fn set_history(&mut self, history: &ExpansionHistory) {
        let rows = history_rows(&self.hidden_widths()).max(1 + history.events.len());
        let device = self.history.val().device();
        self.history = state(history_tensor(history, rows, &device));
    }
}
