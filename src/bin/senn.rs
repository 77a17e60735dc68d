//! `senn`: train, apply and inspect self-expanding networks on CSV files, without writing
//! Rust.
//!
//! ```text
//! senn train --data train.csv --target COLUMN --task classification|regression
//!            [--test test.csv] [--backend flex|ndarray|wgpu|cuda] [--epochs N]
//!            [--batch-size N] [--seed N] [--hidden W,W,...] [--out DIR]
//! senn predict --model DIR --data x.csv [--output predictions.csv]
//! senn inspect --model DIR
//! ```

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_senn::datasets::permutation;
use burn_senn::report::{GrowthReport, Task};
use burn_senn::{
    backends, ExpandableMlp, ExpandableMlpConfig, ExpansionConfig, FisherEstimate,
    NaturalGradientConfig,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "senn",
    version,
    about = "Train networks that grow as they learn (Self-Expanding Neural Networks) on CSV files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on a CSV file; it starts small and adds neurons and layers as needed.
    Train(TrainArgs),
    /// Predict with a trained model: one output row per input row.
    Predict {
        /// The model directory written by `senn train`.
        #[arg(long)]
        model: PathBuf,
        /// A CSV file with the model's feature columns (the target column may be there too;
        /// it is ignored).
        #[arg(long)]
        data: PathBuf,
        /// Where to write the predictions (CSV); standard output when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The backend to run on.
        #[arg(long, default_value_t = default_backend())]
        backend: String,
    },
    /// Describe a trained model: task, columns, architecture and how it grew.
    Inspect {
        /// The model directory written by `senn train`.
        #[arg(long)]
        model: PathBuf,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// The training data: CSV with a header row; every column but the target is a numeric
    /// feature.
    #[arg(long)]
    data: PathBuf,
    /// The name of the column to predict.
    #[arg(long)]
    target: String,
    /// Classification (integer or string labels) or regression (numeric targets).
    #[arg(long, value_enum)]
    task: TaskArg,
    /// Held-out data with the same columns; without it, 20% of the training file is held out
    /// (chosen with the seed).
    #[arg(long)]
    test: Option<PathBuf>,
    /// The backend to train on.
    #[arg(long, default_value_t = default_backend())]
    backend: String,
    /// Passes over the training data.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Examples per optimiser step.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Seed of the weights, the held-out split, the batch order and the candidate search.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initial hidden widths, e.g. `8,8`; without it the network starts with no hidden layer.
    #[arg(long, value_delimiter = ',')]
    hidden: Vec<usize>,
    /// The most neurons a hidden layer may grow to.
    #[arg(long, default_value_t = 64)]
    max_width: usize,
    /// The most hidden layers the network may grow to.
    #[arg(long, default_value_t = 4)]
    max_depth: usize,
    /// The learning rate; 0.1 for classification and 1.0 (with momentum 0.9) for regression
    /// when absent.
    #[arg(long)]
    lr: Option<f64>,
    /// The directory that receives the model, `report.json`, `growth.svg` and `growth.png`.
    #[arg(long, default_value = "senn-out")]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum TaskArg {
    Classification,
    Regression,
}

impl From<TaskArg> for Task {
    fn from(task: TaskArg) -> Self {
        match task {
            TaskArg::Classification => Task::Classification,
            TaskArg::Regression => Task::Regression,
        }
    }
}

fn default_backend() -> String {
    backends::available()
        .first()
        .copied()
        .unwrap_or("flex")
        .to_string()
}

/// A failure, reported as one line.
type Failure = String;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Predict {
            model,
            data,
            output,
            backend,
        } => predict(&model, &data, output.as_deref(), &backend),
        Command::Inspect { model } => inspect(&model),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("senn: {message}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading CSV files.

/// A CSV file: its header and its rows, all of the header's length.
struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &Path) -> Result<Self, Failure> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .iter()
            .map(str::to_string)
            .collect();
        if headers.iter().all(String::is_empty) {
            return Err(format!(
                "{} is empty: expected a header row and at least one data row",
                path.display()
            ));
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| format!("{} is not valid CSV: {e}", path.display()))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err(format!(
                "{} has a header row but no data rows",
                path.display()
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The values of the named columns as numbers, one row per data row.
    fn numbers(&self, names: &[String]) -> Result<Vec<Vec<f64>>, Failure> {
        let columns: Vec<usize> = names
            .iter()
            .map(|n| self.column(n).expect("callers check the columns"))
            .collect();
        self.rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                columns
                    .iter()
                    .zip(names)
                    .map(|(&c, name)| self.number(r, &row[c], name))
                    .collect()
            })
            .collect()
    }

    /// `value`, from data row `row` of column `name`, as a finite number.
    fn number(&self, row: usize, value: &str, name: &str) -> Result<f64, Failure> {
        let at = || format!("{}, line {}, column `{name}`", self.path.display(), row + 2);
        if value.is_empty() {
            return Err(format!("{}: the value is missing", at()));
        }
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(format!(
                "{}: `{value}` is not a finite number (NaN and infinities are not allowed)",
                at()
            )),
            Err(_) => Err(format!("{}: `{value}` is not a number", at())),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The model directory.

/// What turns CSV columns into network inputs and network outputs into predictions; saved as
/// `preprocessing.json` in the model directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Preprocessing {
    task: Task,
    target: String,
    features: Vec<String>,
    /// Per feature: the training mean and standard deviation (1 where it is 0).
    means: Vec<f64>,
    scales: Vec<f64>,
    /// Classification: the label of each class, in output order.
    classes: Option<Vec<String>>,
    /// Regression: the training mean and standard deviation of the target.
    target_mean: f64,
    target_scale: f64,
}

const PREPROCESSING: &str = "preprocessing.json";
const MODEL: &str = "model";
const REPORT: &str = "report.json";

impl Preprocessing {
    fn load(dir: &Path) -> Result<Self, Failure> {
        let path = dir.join(PREPROCESSING);
        let json = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{} is not a senn model directory: cannot read {PREPROCESSING}: {e}",
                dir.display()
            )
        })?;
        serde_json::from_str(&json).map_err(|e| format!("{} is damaged: {e}", path.display()))
    }

    /// Standardised features of `table`, whose columns must be this model's features (the
    /// target column may be there too).
    fn inputs(&self, table: &Table) -> Result<Vec<Vec<f64>>, Failure> {
        for name in &self.features {
            if table.column(name).is_none() {
                return Err(format!(
                    "{} does not match the model: it has no column `{name}` (the model was trained on {})",
                    table.path.display(),
                    self.features.join(", ")
                ));
            }
        }
        if let Some(extra) = table
            .headers
            .iter()
            .find(|h| **h != self.target && !self.features.contains(h))
        {
            return Err(format!(
                "{} does not match the model: column `{extra}` was not among the features the model was trained on ({})",
                table.path.display(),
                self.features.join(", ")
            ));
        }
        let mut rows = table.numbers(&self.features)?;
        for row in &mut rows {
            for ((value, mean), scale) in row.iter_mut().zip(&self.means).zip(&self.scales) {
                *value = (*value - mean) / scale;
            }
        }
        Ok(rows)
    }
}

/// Mean and standard deviation of each column of `rows` (standard deviation 1 where it is 0).
fn moments(rows: &[Vec<f64>], width: usize) -> (Vec<f64>, Vec<f64>) {
    let count = rows.len() as f64;
    let means: Vec<f64> = (0..width)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / count)
        .collect();
    let scales = (0..width)
        .map(|j| {
            let variance = rows.iter().map(|r| (r[j] - means[j]).powi(2)).sum::<f64>() / count;
            if variance > 0.0 {
                variance.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    (means, scales)
}

// ---------------------------------------------------------------------------------------
// Training.

/// Examples ready for the network: standardised inputs and either class indices or
/// standardised targets.
struct Examples {
    inputs: Vec<Vec<f64>>,
    labels: Vec<usize>,
    targets: Vec<f64>,
}

impl Examples {
    fn len(&self) -> usize {
        self.inputs.len()
    }

    fn subset(&self, indices: &[usize]) -> Self {
        Self {
            inputs: indices.iter().map(|&i| self.inputs[i].clone()).collect(),
            labels: indices
                .iter()
                .filter_map(|&i| self.labels.get(i).copied())
                .collect(),
            targets: indices
                .iter()
                .filter_map(|&i| self.targets.get(i).copied())
                .collect(),
        }
    }

    fn input_tensor(&self, device: &Device) -> Tensor<2> {
        let width = self.inputs.first().map_or(0, Vec::len);
        let values: Vec<f32> = self.inputs.iter().flatten().map(|v| *v as f32).collect();
        Tensor::from_data(TensorData::new(values, [self.len(), width]), device)
    }

    fn label_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_data(TensorData::new(labels, [self.len()]), device)
    }

    fn target_tensor(&self, device: &Device) -> Tensor<2> {
        let targets: Vec<f32> = self.targets.iter().map(|&t| t as f32).collect();
        Tensor::from_data(TensorData::new(targets, [self.len(), 1]), device)
    }
}

/// The labels of `table`'s target column, in sorted order (numerically when they are all
/// numbers).
fn class_labels(table: &Table, column: usize) -> Vec<String> {
    let labels: BTreeSet<&str> = table.rows.iter().map(|r| r[column].as_str()).collect();
    let mut labels: Vec<String> = labels.into_iter().map(str::to_string).collect();
    if labels.iter().all(|l| l.parse::<f64>().is_ok()) {
        labels.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap()
                .total_cmp(&b.parse::<f64>().unwrap())
        });
    }
    labels
}

/// Reads `table` into examples with `preprocessing`.
fn examples(table: &Table, preprocessing: &Preprocessing) -> Result<Examples, Failure> {
    let column = table.column(&preprocessing.target).ok_or_else(|| {
        format!(
            "{} has no column `{}`; its columns are: {}",
            table.path.display(),
            preprocessing.target,
            table.headers.join(", ")
        )
    })?;
    let inputs = preprocessing.inputs(table)?;
    let mut labels = Vec::new();
    let mut targets = Vec::new();
    match &preprocessing.classes {
        Some(classes) => {
            for (r, row) in table.rows.iter().enumerate() {
                let label = &row[column];
                let class = classes.iter().position(|c| c == label).ok_or_else(|| {
                    format!(
                        "{}, line {}: label `{label}` does not occur in the training data ({})",
                        table.path.display(),
                        r + 2,
                        classes.join(", ")
                    )
                })?;
                labels.push(class);
            }
        }
        None => {
            for (r, row) in table.rows.iter().enumerate() {
                let value = table.number(r, &row[column], &preprocessing.target)?;
                targets.push((value - preprocessing.target_mean) / preprocessing.target_scale);
            }
        }
    }
    Ok(Examples {
        inputs,
        labels,
        targets,
    })
}

/// Checks that `table` can be trained on: the target column exists, there are feature
/// columns, every feature (and a regression target) is a finite number, and a classification
/// target has at least two classes. Errors name the file, line and column.
fn check_table(table: &Table, target: &str, task: Task) -> Result<(), Failure> {
    let column = table.column(target).ok_or_else(|| {
        format!(
            "{} has no column `{target}`; its columns are: {}",
            table.path.display(),
            table.headers.join(", ")
        )
    })?;
    let features = feature_names(table, target);
    if features.is_empty() {
        return Err(format!(
            "{} has no feature columns: every column but `{target}` is a feature",
            table.path.display()
        ));
    }
    table.numbers(&features)?;
    match task {
        Task::Classification => {
            let classes = class_labels(table, column);
            if classes.len() < 2 {
                return Err(format!(
                    "column `{target}` of {} has only one class ({}): classification needs at least two",
                    table.path.display(),
                    classes.join(", ")
                ));
            }
        }
        Task::Regression => {
            table.numbers(&[target.to_string()])?;
        }
    }
    Ok(())
}

/// Every column but the target.
fn feature_names(table: &Table, target: &str) -> Vec<String> {
    table
        .headers
        .iter()
        .filter(|h| *h != target)
        .cloned()
        .collect()
}

/// The preprocessing learnt from a training table that passed [`check_table`].
fn fit_preprocessing(table: &Table, target: &str, task: Task) -> Result<Preprocessing, Failure> {
    check_table(table, target, task)?;
    let column = table.column(target).expect("checked");
    let features = feature_names(table, target);
    let raw = table.numbers(&features)?;
    let (means, scales) = moments(&raw, features.len());
    let mut preprocessing = Preprocessing {
        task,
        target: target.to_string(),
        features,
        means,
        scales,
        classes: None,
        target_mean: 0.0,
        target_scale: 1.0,
    };
    match task {
        Task::Classification => preprocessing.classes = Some(class_labels(table, column)),
        Task::Regression => {
            let values = table.numbers(&[target.to_string()])?;
            let (mean, scale) = moments(&values, 1);
            preprocessing.target_mean = mean[0];
            preprocessing.target_scale = scale[0];
        }
    }
    Ok(preprocessing)
}

/// The task's loss of `outputs` (cross-entropy or half the squared error) and metric
/// (accuracy, or the squared error in the target's units).
fn evaluate(
    network: &ExpandableMlp,
    data: &Examples,
    preprocessing: &Preprocessing,
    device: &Device,
) -> (f64, f64) {
    let outputs = network.forward(data.input_tensor(device));
    match preprocessing.task {
        Task::Classification => {
            let labels = data.label_tensor(device);
            let loss = CrossEntropyLossConfig::new()
                .init(device)
                .forward(outputs.clone(), labels.clone())
                .into_scalar::<f64>();
            let correct = outputs
                .argmax(1)
                .squeeze_dim::<1>(1)
                .equal(labels)
                .float()
                .mean()
                .into_scalar::<f64>();
            (loss, correct)
        }
        Task::Regression => {
            let error = (outputs - data.target_tensor(device))
                .square()
                .mean()
                .into_scalar::<f64>();
            (0.5 * error, error * preprocessing.target_scale.powi(2))
        }
    }
}

/// Epoch progress: a bar on a terminal, a line every tenth of the run otherwise.
struct Progress {
    epochs: usize,
    terminal: bool,
}

impl Progress {
    fn update(&self, epoch: usize, loss: f64, test_loss: f64, network: &ExpandableMlp) {
        let shape = shape(network);
        if self.terminal {
            let filled = 30 * epoch / self.epochs.max(1);
            eprint!(
                "\r[{}{}] epoch {epoch}/{}  loss {loss:.4}  held-out {test_loss:.4}  {shape}   ",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                self.epochs
            );
            if epoch == self.epochs {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        } else if epoch % (self.epochs / 10).max(1) == 0 || epoch == self.epochs {
            eprintln!(
                "epoch {epoch}/{}  loss {loss:.4}  held-out {test_loss:.4}  {shape}",
                self.epochs
            );
        }
    }
}

fn shape(network: &ExpandableMlp) -> String {
    let mut parts = vec![network.d_input().to_string()];
    parts.extend(network.hidden_widths().iter().map(usize::to_string));
    parts.push(network.d_output().to_string());
    parts.join("-")
}

fn train(args: TrainArgs) -> Result<(), Failure> {
    let task = Task::from(args.task);
    if args.epochs == 0 || args.batch_size == 0 {
        return Err("--epochs and --batch-size must be at least 1".into());
    }
    if let Some(zero) = args.hidden.iter().position(|&w| w == 0) {
        return Err(format!("--hidden: layer {} has width 0", zero + 1));
    }
    let device = backends::device(&args.backend).map_err(|e| e.to_string())?;

    // Everything the run needs is read and checked before anything is written.
    // Line numbers in errors refer to the files as given: check before splitting.
    let table = Table::read(&args.data)?;
    check_table(&table, &args.target, task)?;
    let (train_table, test_table) = match &args.test {
        Some(path) => (table, Table::read(path)?),
        None => split(table, args.seed)?,
    };
    let preprocessing = fit_preprocessing(&train_table, &args.target, task)?;
    let train_set = examples(&train_table, &preprocessing)?;
    let test_set = examples(&test_table, &preprocessing)?;
    let outputs = preprocessing.classes.as_ref().map_or(1, Vec::len);
    let config = ExpandableMlpConfig::new(preprocessing.features.len(), outputs)
        .with_hidden(args.hidden.clone())
        .with_max_width(Some(args.max_width))
        .with_max_depth(Some(args.max_depth));
    config
        .validate()
        .map_err(|e| format!("invalid network: {e}"))?;

    let plain_device = device.clone();
    let device = device.autodiff();
    device.seed(args.seed);
    let mut network = config.init(&device);
    let (lr, momentum) = match (task, args.lr) {
        (_, Some(lr)) if !(lr.is_finite() && lr > 0.0) => {
            return Err(format!(
                "--lr {lr} is invalid; it must be a positive number"
            ))
        }
        (Task::Classification, lr) => (lr.unwrap_or(0.1), 0.0),
        (Task::Regression, lr) => (lr.unwrap_or(1.0), 0.9),
    };
    let mut optimizer = NaturalGradientConfig::new()
        .with_fisher(FisherEstimate::GaussNewton)
        .with_momentum(momentum)
        .with_expansion(Some(
            ExpansionConfig::new()
                .with_seed(args.seed)
                .with_max_width(Some(args.max_width))
                .with_max_depth(Some(args.max_depth)),
        ))
        .try_init()
        .map_err(|e| format!("invalid optimiser settings: {e}"))?;
    let mut report = GrowthReport::new(task, &args.backend, &network)
        .with_examples(train_set.len(), test_set.len());
    let progress = Progress {
        epochs: args.epochs,
        terminal: std::io::stderr().is_terminal(),
    };
    let cross_entropy = CrossEntropyLossConfig::new().init(&device);

    let start = Instant::now();
    let mut steps = 0u64;
    for epoch in 1..=args.epochs {
        let order = permutation(train_set.len(), args.seed.wrapping_add(epoch as u64));
        let mut total = 0.0;
        for batch in order.chunks(args.batch_size) {
            let batch = train_set.subset(batch);
            let inputs = batch.input_tensor(&device);
            let loss = match task {
                Task::Classification => {
                    let labels = batch.label_tensor(&device);
                    optimizer.train_step(lr, &mut network, inputs, |logits| {
                        cross_entropy.forward(logits, labels)
                    })
                }
                Task::Regression => {
                    let targets = batch.target_tensor(&device);
                    optimizer.train_step(lr, &mut network, inputs, |outputs| {
                        (outputs - targets).square().mean() * 0.5
                    })
                }
            }
            .map_err(|e| format!("training failed: {e}"))?;
            steps += 1;
            total += loss * batch.len() as f64;
        }
        let train_loss = total / train_set.len() as f64;
        let valid = network.valid();
        let (test_loss, _) = evaluate(&valid, &test_set, &preprocessing, &plain_device);
        report.record(steps, train_loss, Some(test_loss), &network);
        progress.update(epoch, train_loss, test_loss, &network);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let network = network.valid();
    let (_, train_metric) = evaluate(&network, &train_set, &preprocessing, &plain_device);
    let (_, test_metric) = evaluate(&network, &test_set, &preprocessing, &plain_device);
    report.epochs = args.epochs;
    report.finish(
        &network,
        train_metric,
        Some(test_metric),
        elapsed,
        optimizer.expansion_time().as_secs_f64(),
    );

    write_model_directory(&args.out, &network, &preprocessing, &report)?;
    println!("{}", report.summary());
    println!(
        "wrote the model, {REPORT}, growth.svg and growth.png to {}",
        args.out.display()
    );
    Ok(())
}

/// The table split into training rows and 20% held-out rows, chosen with `seed`.
fn split(table: Table, seed: u64) -> Result<(Table, Table), Failure> {
    if table.rows.len() < 2 {
        return Err(format!(
            "{} has {} data row: holding out 20% needs at least 2 (or pass --test)",
            table.path.display(),
            table.rows.len()
        ));
    }
    let order = permutation(table.rows.len(), seed);
    let held_out = ((table.rows.len() as f64 * 0.2).round() as usize).max(1);
    let (train, test) = order.split_at(table.rows.len() - held_out);
    let pick = |indices: &[usize]| Table {
        path: table.path.clone(),
        headers: table.headers.clone(),
        rows: indices.iter().map(|&i| table.rows[i].clone()).collect(),
    };
    Ok((pick(train), pick(test)))
}

/// Writes everything into a fresh directory beside `out`, then moves it into place, so a
/// failure leaves `out` as it was.
fn write_model_directory(
    out: &Path,
    network: &ExpandableMlp,
    preprocessing: &Preprocessing,
    report: &GrowthReport,
) -> Result<(), Failure> {
    let name = out
        .file_name()
        .ok_or_else(|| format!("--out {} is not a directory name", out.display()))?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staging_name = name.to_os_string();
    staging_name.push(format!(".partial-{}", std::process::id()));
    let staging = parent.join(staging_name);
    let result = (|| {
        std::fs::create_dir_all(&staging)
            .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        network
            .save(staging.join(MODEL))
            .map_err(|e| e.to_string())?;
        let json = serde_json::to_string_pretty(preprocessing).expect("preprocessing serialises");
        std::fs::write(staging.join(PREPROCESSING), json)
            .map_err(|e| format!("cannot write {PREPROCESSING}: {e}"))?;
        report
            .save_json(staging.join(REPORT))
            .map_err(|e| e.to_string())?;
        report
            .plot(staging.join("growth.svg"))
            .map_err(|e| e.to_string())?;
        report
            .plot(staging.join("growth.png"))
            .map_err(|e| e.to_string())?;
        replace_directory(&staging, out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Moves `staging` to `out`, replacing a previous `out` only once the new one is in place.
fn replace_directory(staging: &Path, out: &Path) -> Result<(), Failure> {
    let moved = |e: std::io::Error| format!("cannot move the results to {}: {e}", out.display());
    if out.exists() {
        let mut old = out.as_os_str().to_owned();
        old.push(format!(".old-{}", std::process::id()));
        let old = PathBuf::from(old);
        std::fs::rename(out, &old).map_err(moved)?;
        if let Err(e) = std::fs::rename(staging, out) {
            let _ = std::fs::rename(&old, out);
            return Err(moved(e));
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    } else {
        std::fs::rename(staging, out).map_err(moved)
    }
}

// ---------------------------------------------------------------------------------------
// Prediction and inspection.

fn load_model(dir: &Path, device: &Device) -> Result<(ExpandableMlp, Preprocessing), Failure> {
    let preprocessing = Preprocessing::load(dir)?;
    let network = ExpandableMlp::load(dir.join(MODEL), device).map_err(|e| e.to_string())?;
    let expected = preprocessing.classes.as_ref().map_or(1, Vec::len);
    if network.d_input() != preprocessing.features.len() || network.d_output() != expected {
        return Err(format!(
            "{} is inconsistent: the network has {} inputs and {} outputs, {PREPROCESSING} describes {} and {expected}",
            dir.display(),
            network.d_input(),
            network.d_output(),
            preprocessing.features.len()
        ));
    }
    Ok((network, preprocessing))
}

fn predict(model: &Path, data: &Path, output: Option<&Path>, backend: &str) -> Result<(), Failure> {
    let device = backends::device(backend).map_err(|e| e.to_string())?;
    let (network, preprocessing) = load_model(model, &device)?;
    let table = Table::read(data)?;
    let inputs = Examples {
        inputs: preprocessing.inputs(&table)?,
        labels: Vec::new(),
        targets: Vec::new(),
    };
    let outputs = network.forward(inputs.input_tensor(&device));
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| format!("cannot write predictions: {e}");
    match &preprocessing.classes {
        Some(classes) => {
            let probabilities = burn::tensor::activation::softmax(outputs, 1)
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("cannot read the predictions: {e:?}"))?;
            let mut header = vec![preprocessing.target.clone()];
            header.extend(classes.iter().map(|c| format!("p({c})")));
            writer.write_record(&header).map_err(csv_error)?;
            for row in probabilities.chunks(classes.len()) {
                let best = (0..row.len())
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0);
                let mut record = vec![classes[best].clone()];
                record.extend(row.iter().map(|p| format!("{p:.6}")));
                writer.write_record(&record).map_err(csv_error)?;
            }
        }
        None => {
            let values = outputs
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("cannot read the predictions: {e:?}"))?;
            writer
                .write_record([preprocessing.target.as_str()])
                .map_err(csv_error)?;
            for value in values {
                let value = value as f64 * preprocessing.target_scale + preprocessing.target_mean;
                writer
                    .write_record([format!("{value}")])
                    .map_err(csv_error)?;
            }
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| format!("cannot write predictions: {e}"))?;
    match output {
        Some(path) => {
            let mut temporary = path.as_os_str().to_owned();
            temporary.push(format!(".partial-{}", std::process::id()));
            let temporary = PathBuf::from(temporary);
            std::fs::write(&temporary, &bytes)
                .and_then(|()| std::fs::rename(&temporary, path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&temporary);
                    format!("cannot write {}: {e}", path.display())
                })
        }
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| format!("cannot write the predictions: {e}")),
    }
}

fn inspect(model: &Path) -> Result<(), Failure> {
    let device = backends::device(&default_backend()).map_err(|e| e.to_string())?;
    let (network, preprocessing) = load_model(model, &device)?;
    println!("task          {}", preprocessing.task);
    println!("target        {}", preprocessing.target);
    println!("features      {}", preprocessing.features.join(", "));
    if let Some(classes) = &preprocessing.classes {
        println!("classes       {}", classes.join(", "));
    }
    println!("architecture  {}", network.architecture());
    let history = network.expansion_history();
    println!("expansions    {}", history.events.len());
    match GrowthReport::load_json(model.join(REPORT)) {
        Ok(report) => println!("\n{}", report.summary()),
        Err(e) => println!("(no report: {e})"),
    }
    Ok(())
}
