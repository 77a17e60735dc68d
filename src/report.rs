//! Growth reports: what a training run did, as JSON for tools and as a figure for people
//! (the figure needs the `plot` feature, see [`GrowthReport::plot`]).
//!
//! A [`GrowthReport`] holds the task, the data sizes, the initial and final architecture,
//! the final metrics, the loss and the hidden widths recorded along the way
//! ([`CurvePoint`]s), the [`ExpansionHistory`] and the wall time.
//!
//! ```
//! use burn::tensor::Device;
//! use burn_senn::report::{GrowthReport, Task};
//! use burn_senn::ExpandableMlpConfig;
//!
//! let network = ExpandableMlpConfig::new(2, 2).init(&Device::default());
//! let mut report = GrowthReport::new(Task::Classification, "flex", &network);
//! report.record(0, 0.69, Some(0.70), &network);
//! report.finish(&network, 0.5, Some(0.5), 1.0, 0.1);
//! let json = report.to_json();
//! assert_eq!(GrowthReport::from_json(&json).unwrap(), report);
//! ```

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::expansion::{ExpansionHistory, ExpansionKind};
use crate::io::write_atomically;
use crate::mlp::{Architecture, ExpandableMlp};

/// What a network was trained to do; it names the metric of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Class labels; the metric is accuracy (higher is better).
    Classification,
    /// Real-valued targets; the metric is the mean squared error (lower is better).
    Regression,
}

impl Task {
    /// The name of the task's metric: `accuracy` or `mse`.
    pub fn metric(self) -> &'static str {
        match self {
            Task::Classification => "accuracy",
            Task::Regression => "mse",
        }
    }
}

impl std::fmt::Display for Task {
    /// `classification` or `regression`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        })
    }
}

/// The state of a run at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimiser steps taken so far.
    pub step: u64,
    /// The training loss at this step.
    pub train_loss: f64,
    /// The held-out loss at this step, when there is held-out data.
    pub test_loss: Option<f64>,
    /// The width of every hidden layer at this step.
    pub hidden: Vec<usize>,
}

/// What a training run did: see the [module](self) documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrowthReport {
    /// Classification or regression.
    pub task: Task,
    /// The burn backend the run used, as the user named it (`flex`, `ndarray`, `wgpu`, …).
    pub backend: String,
    /// The number of training examples.
    pub train_examples: usize,
    /// The number of held-out examples (0 when there were none).
    pub test_examples: usize,
    /// The name of the metric: `accuracy` or `mse` (see [`Task::metric`]).
    pub metric: String,
    /// The final training metric.
    pub train_metric: f64,
    /// The final held-out metric, when there is held-out data.
    pub test_metric: Option<f64>,
    /// The network before training.
    pub initial_architecture: Architecture,
    /// The network after training.
    pub final_architecture: Architecture,
    /// Passes over the training data.
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Wall time of the whole run, in seconds.
    pub wall_seconds: f64,
    /// Of which spent deciding on growth (expansion checks), in seconds.
    pub expansion_seconds: f64,
    /// The losses and widths recorded along the way, in step order.
    pub curve: Vec<CurvePoint>,
    /// Every expansion, oldest first.
    pub history: ExpansionHistory,
}

impl GrowthReport {
    /// Starts a report for `network` before training: sizes and metrics are zero until
    /// [`finish`](Self::finish), and the data sizes are set with
    /// [`with_examples`](Self::with_examples).
    pub fn new(task: Task, backend: &str, network: &ExpandableMlp) -> Self {
        let architecture = network.architecture();
        Self {
            task,
            backend: backend.to_string(),
            train_examples: 0,
            test_examples: 0,
            metric: task.metric().to_string(),
            train_metric: 0.0,
            test_metric: None,
            initial_architecture: architecture.clone(),
            final_architecture: architecture,
            epochs: 0,
            steps: 0,
            wall_seconds: 0.0,
            expansion_seconds: 0.0,
            curve: Vec::new(),
            history: ExpansionHistory::default(),
        }
    }

    /// Sets the number of training and held-out examples.
    pub fn with_examples(mut self, train: usize, test: usize) -> Self {
        self.train_examples = train;
        self.test_examples = test;
        self
    }

    /// Records the losses and the hidden widths of `network` after `step` optimiser steps.
    pub fn record(
        &mut self,
        step: u64,
        train_loss: f64,
        test_loss: Option<f64>,
        network: &ExpandableMlp,
    ) {
        self.curve.push(CurvePoint {
            step,
            train_loss,
            test_loss,
            hidden: network.hidden_widths(),
        });
        self.steps = self.steps.max(step);
    }

    /// Completes the report from the trained `network`: final architecture, history, metrics
    /// and times (in seconds).
    pub fn finish(
        &mut self,
        network: &ExpandableMlp,
        train_metric: f64,
        test_metric: Option<f64>,
        wall_seconds: f64,
        expansion_seconds: f64,
    ) {
        self.final_architecture = network.architecture();
        self.history = network.expansion_history();
        self.train_metric = train_metric;
        self.test_metric = test_metric;
        self.wall_seconds = wall_seconds;
        self.expansion_seconds = expansion_seconds;
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// Reads a report from JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Writes the report as JSON to `path` (through a temporary file, so a failed write leaves
    /// a previous report intact).
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        let path = path.as_ref();
        write_atomically(path, self.to_json().as_bytes()).map_err(|source| ReportError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a report written by [`save_json`](Self::save_json).
    pub fn load_json(path: impl AsRef<Path>) -> Result<Self, ReportError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&json).map_err(|e| ReportError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// A few lines for a terminal: one per expansion (the growth timeline), then the final
    /// architecture, metrics and times.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "start  {}", self.initial_architecture);
        let mut hidden = self.initial_architecture.hidden.clone();
        for event in &self.history.events {
            match event.kind {
                ExpansionKind::Width => {
                    if let Some(width) = hidden.get_mut(event.layer) {
                        *width += event.neurons;
                    }
                }
                ExpansionKind::Depth => {
                    hidden.insert(event.layer.min(hidden.len()), event.neurons);
                }
            }
            let what = match event.kind {
                ExpansionKind::Width => format!(
                    "+{} neuron{} in layer {}",
                    event.neurons,
                    if event.neurons == 1 { "" } else { "s" },
                    event.layer + 1
                ),
                ExpansionKind::Depth => format!(
                    "new layer {} of {} neuron{}",
                    event.layer + 1,
                    event.neurons,
                    if event.neurons == 1 { "" } else { "s" }
                ),
            };
            let _ = writeln!(
                text,
                "step {:>6}  {what:<28} Δη′ {:.2e}  η {:.2e}  λ {:.2e}  → {}",
                event.step,
                event.gain,
                event.eta_total,
                event.lambda,
                shape(
                    self.initial_architecture.d_input,
                    &hidden,
                    self.initial_architecture.d_output
                ),
            );
        }
        let _ = writeln!(text, "final  {}", self.final_architecture);
        // Accuracies read best as fractions, errors (which may be tiny) in scientific notation.
        let value = |m: f64| match self.task {
            Task::Classification => format!("{m:.4}"),
            Task::Regression => format!("{m:.3e}"),
        };
        let test = self
            .test_metric
            .map(|m| format!("  test {} {}", self.metric, value(m)))
            .unwrap_or_default();
        let _ = write!(
            text,
            "train {} {}{test}  ({} expansions, {} steps, {:.2} s, of which {:.2} s in expansion checks)",
            self.metric,
            value(self.train_metric),
            self.history.events.len(),
            self.steps,
            self.wall_seconds,
            self.expansion_seconds,
        );
        text
    }
}

/// `d_input-w1-…-d_output`.
fn shape(d_input: usize, hidden: &[usize], d_output: usize) -> String {
    let mut parts = vec![d_input.to_string()];
    parts.extend(hidden.iter().map(usize::to_string));
    parts.push(d_output.to_string());
    parts.join("-")
}
