//! The `senn` command-line tool, end to end on generated CSV files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn_senn::datasets::ClassificationSet;
use burn_senn::report::{GrowthReport, Task};

fn senn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_senn"))
        .args(args)
        .output()
        .expect("the senn binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Half-moons with string labels, columns `x,y,label`.
fn moons_csv(path: &Path, count: usize, seed: u64) {
    let set = ClassificationSet::two_moons(count, 0.2, seed);
    let mut csv = String::from("x,y,label\n");
    for (features, label) in set.features.iter().zip(&set.labels) {
        let name = if *label == 0 { "upper" } else { "lower" };
        writeln!(csv, "{},{},{name}", features[0], features[1]).unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

/// `y = sin(2a) + 0.5 b` on a grid, columns `a,b,y`.
fn wave_csv(path: &Path, count: usize) {
    let mut csv = String::from("a,b,y\n");
    for i in 0..count {
        let a = -2.0 + 4.0 * i as f64 / count as f64;
        let b = ((i * 7) % 11) as f64 / 11.0;
        writeln!(csv, "{a},{b},{}", (2.0 * a).sin() + 0.5 * b).unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// `senn train` of a two-epoch classifier of column `label` in `data`, written to `out`.
fn train_classifier(data: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let mut args = vec![
        "train",
        "--data",
        data,
        "--target",
        "label",
        "--task",
        "classification",
        "--epochs",
        "2",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    senn(&args)
}

/// Checks that `run` failed with one line on standard error that says `expected`.
fn assert_fails_with(run: &Output, expected: &str) {
    let stderr = text(&run.stderr);
    assert!(!run.status.success(), "accepted: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{stderr:?} does not say {expected:?}"
    );
}

#[test]
fn trains_predicts_and_inspects_a_classifier() {
    let dir = tempfile::tempdir().unwrap();
    moons_csv(&dir.path().join("train.csv"), 300, 1);
    moons_csv(&dir.path().join("test.csv"), 200, 2);
    let out = dir.path().join("model");
    let run = senn(&[
        "train",
        "--data",
        &path(dir.path(), "train.csv"),
        "--test",
        &path(dir.path(), "test.csv"),
        "--target",
        "label",
        "--task",
        "classification",
        "--epochs",
        "60",
        "--batch-size",
        "100",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    // Not a terminal: plain progress lines.
    assert!(
        text(&run.stderr).contains("epoch 60/60"),
        "{}",
        text(&run.stderr)
    );

    let report = GrowthReport::load_json(out.join("report.json")).unwrap();
    assert_eq!(report.task, Task::Classification);
    assert_eq!((report.train_examples, report.test_examples), (300, 200));
    assert_eq!(report.epochs, 60);
    assert_eq!(report.steps, 180);
    assert_eq!(report.curve.len(), 60);
    assert_eq!(report.initial_architecture.hidden, Vec::<usize>::new());
    assert!(!report.history.events.is_empty(), "no growth on half-moons");
    assert_eq!(
        report.final_architecture.hidden.iter().sum::<usize>(),
        report
            .history
            .events
            .iter()
            .map(|e| e.neurons)
            .sum::<usize>()
    );
    let accuracy = report.test_metric.unwrap();
    assert!(accuracy > 0.9, "held-out accuracy {accuracy}");
    let svg = std::fs::read_to_string(out.join("growth.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("optimiser step"));
    let png = std::fs::read(out.join("growth.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let preprocessing = std::fs::read_to_string(out.join("preprocessing.json")).unwrap();
    assert!(preprocessing.contains("\"lower\"") && preprocessing.contains("\"upper\""));

    // Predictions: one row per input row, labels from the training data's mapping, and as
    // accurate as the report says.
    let predictions = dir.path().join("predictions.csv");
    let run = senn(&[
        "predict",
        "--model",
        &out.display().to_string(),
        "--data",
        &path(dir.path(), "test.csv"),
        "--output",
        &predictions.display().to_string(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let predicted = std::fs::read_to_string(&predictions).unwrap();
    let mut lines = predicted.lines();
    assert_eq!(lines.next(), Some("label,p(lower),p(upper)"));
    let truth = std::fs::read_to_string(dir.path().join("test.csv")).unwrap();
    let truth: Vec<&str> = truth
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    let predicted: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(predicted.len(), 200);
    let agree = predicted.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / 200.0;
    assert!((agree - accuracy).abs() < 1e-6, "{agree} vs {accuracy}");

    let run = senn(&["inspect", "--model", &out.display().to_string()]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let shown = text(&run.stdout);
    assert!(
        shown.contains("classification") && shown.contains("lower, upper"),
        "{shown}"
    );
    assert!(
        shown.contains(&report.final_architecture.to_string()),
        "{shown}"
    );
}

#[test]
fn trains_a_regressor_with_a_held_out_fifth() {
    let dir = tempfile::tempdir().unwrap();
    wave_csv(&dir.path().join("wave.csv"), 200);
    let out = dir.path().join("wave-model");
    let run = senn(&[
        "train",
        "--data",
        &path(dir.path(), "wave.csv"),
        "--target",
        "y",
        "--task",
        "regression",
        "--epochs",
        "100",
        "--batch-size",
        "200",
        "--hidden",
        "2",
        "--seed",
        "3",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let report = GrowthReport::load_json(out.join("report.json")).unwrap();
    assert_eq!(report.metric, "mse");
    assert_eq!((report.train_examples, report.test_examples), (160, 40));
    assert_eq!(report.initial_architecture.hidden, vec![2]);
    // The target's variance is about 0.5; a network that learnt something is far below.
    let mse = report.test_metric.unwrap();
    assert!(mse < 0.05, "held-out mse {mse}");

    // Predictions come back in the target's units.
    let run = senn(&[
        "predict",
        "--model",
        &out.display().to_string(),
        "--data",
        &path(dir.path(), "wave.csv"),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    let predictions: Vec<f64> = stdout.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    let truth = std::fs::read_to_string(dir.path().join("wave.csv")).unwrap();
    let truth: Vec<f64> = truth
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(predictions.len(), 200);
    let error = predictions
        .iter()
        .zip(&truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / 200.0;
    assert!(error < 0.05, "mse of the predictions {error}");
}

/// Runs `senn train` on `csv`, expects failure with one line naming `expected`, and checks
/// that nothing was written to `--out`.
fn rejects(csv: Option<&str>, extra: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    if let Some(csv) = csv {
        std::fs::write(&data, csv).unwrap();
    }
    let out = dir.path().join("out");
    let run = train_classifier(&data.display().to_string(), &out, extra);
    assert_fails_with(&run, expected);
    assert!(!out.exists(), "{} was written", out.display());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "data.csv")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn bad_training_input_fails_with_one_line_and_writes_nothing() {
    rejects(None, &[], "cannot read");
    rejects(Some(""), &[], "is empty");
    rejects(Some("x,y,label\n"), &[], "no data rows");
    rejects(Some("x,y,class\n1,2,a\n3,4,b\n"), &[], "no column `label`");
    rejects(
        Some("x,y,label\n1,two,a\n3,4,b\n"),
        &[],
        "`two` is not a number",
    );
    rejects(
        Some("x,y,label\n1,NaN,a\n3,4,b\n"),
        &[],
        "not a finite number",
    );
    rejects(
        Some("x,y,label\n1,inf,a\n3,4,b\n"),
        &[],
        "not a finite number",
    );
    rejects(Some("x,y,label\n1,,a\n3,4,b\n"), &[], "missing");
    rejects(
        Some("x,y,label\n1,2,a\n3,4,a\n5,6,a\n7,8,a\n9,0,a\n"),
        &[],
        "only one class",
    );
    rejects(Some("x,y,label\n1,2,a\n3,4\n"), &[], "not valid CSV");
    rejects(Some("label\na\nb\n"), &[], "no feature columns");
    rejects(
        Some("x,y,label\n1,2,a\n3,4,b\n"),
        &["--backend", "abacus"],
        "backend `abacus` is not available",
    );
}

#[test]
fn a_model_meets_data_of_another_feature_set() {
    let dir = tempfile::tempdir().unwrap();
    moons_csv(&dir.path().join("train.csv"), 100, 5);
    let out = dir.path().join("model");
    let run = train_classifier(&path(dir.path(), "train.csv"), &out, &[]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let model = out.display().to_string();
    let predict = |csv: &str, expected: &str| {
        let data = dir.path().join("other.csv");
        std::fs::write(&data, csv).unwrap();
        let output = dir.path().join("predictions.csv");
        let run = senn(&[
            "predict",
            "--model",
            &model,
            "--data",
            &data.display().to_string(),
            "--output",
            &output.display().to_string(),
        ]);
        assert_fails_with(&run, expected);
        assert!(!output.exists(), "{csv:?}");
    };
    predict("x,z\n1,2\n", "no column `y`");
    predict("x,y,w\n1,2,3\n", "column `w` was not among the features");
    predict("x,y\n1,oops\n", "`oops` is not a number");

    let run = senn(&["inspect", "--model", &path(dir.path(), "nowhere")]);
    assert!(!run.status.success());
    assert!(text(&run.stderr).contains("not a senn model directory"));
    std::fs::write(out.join("model.bpk"), b"not a model").unwrap();
    let run = senn(&["inspect", "--model", &model]);
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("not a saved model"),
        "{}",
        text(&run.stderr)
    );
}

#[test]
fn a_failed_run_keeps_the_previous_model() {
    let dir = tempfile::tempdir().unwrap();
    moons_csv(&dir.path().join("train.csv"), 100, 6);
    let out = dir.path().join("model");
    let train = |data: &str| train_classifier(data, &out, &[]);
    assert!(train(&path(dir.path(), "train.csv")).status.success());
    let before = std::fs::read(out.join("model.bpk")).unwrap();
    std::fs::write(dir.path().join("bad.csv"), "x,y,label\n1,NaN,a\n").unwrap();
    assert!(!train(&path(dir.path(), "bad.csv")).status.success());
    assert_eq!(std::fs::read(out.join("model.bpk")).unwrap(), before);
    // A second good run replaces the model directory as a whole.
    assert!(train(&path(dir.path(), "train.csv")).status.success());
    assert!(out.join("report.json").exists());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".partial-") && !n.contains(".old-")),
        "{names:?}"
    );
}
