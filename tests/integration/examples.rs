//! Every example, run as a program in a reduced form, with its output checked.
//!
//! `cargo test` builds the examples next to this test binary before it runs the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_senn::report::GrowthReport;

/// The built example `name`, next to the directory of this test binary.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// Runs example `name` with `args`; its standard output, after checking that it succeeded.
pub(crate) fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example(name))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> f64 {
    let start = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len();
    text[start..]
        .split(|c: char| c.is_whitespace() || c == ',' || c == ')')
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {text}"))
}

fn assert_figures(dir: &Path, names: &[&str]) {
    if !cfg!(feature = "plot") {
        return;
    }
    for name in names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        if name.ends_with(".svg") {
            assert!(bytes.starts_with(b"<svg"), "{name} is not SVG");
        } else {
            assert!(bytes.starts_with(b"\x89PNG"), "{name} is not PNG");
        }
    }
}

#[test]
fn quickstart_grows_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let stdout = run("quickstart", &["--steps", "150", "--out", &out]);
    assert!(stdout.contains("start  2-2"), "{stdout}");
    let report = GrowthReport::load_json(dir.path().join("report.json")).unwrap();
    assert_eq!(report.steps, 150);
    assert!(!report.history.events.is_empty(), "no growth: {stdout}");
    assert!(stdout.contains(&format!("final  {}", report.final_architecture)));
    assert!(report.test_metric.unwrap() > 0.8, "{stdout}");
    assert_figures(dir.path(), &["growth.svg", "growth.png"]);
}

#[test]
fn regression_1d_beats_one_neuron() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let stdout = run(
        "regression_1d",
        &["--steps", "600", "--seed", "1", "--out", &out],
    );
    let report = GrowthReport::load_json(dir.path().join("report.json")).unwrap();
    assert!(report.final_architecture.hidden[0] > 1, "{stdout}");
    let fixed = number_after(&stdout, "one neuron, no growth: train mse");
    assert!(report.train_metric < fixed, "{stdout}");
    assert_figures(
        dir.path(),
        &["growth.svg", "growth.png", "fit.svg", "fit.png"],
    );
}

#[test]
fn digits_compares_with_a_fixed_network() {
    let stdout = run("digits", &["--steps", "60"]);
    let grown = number_after(&stdout, "test accuracy: self-expanding");
    let fixed = number_after(&stdout, "fixed final size");
    assert!(grown > 0.85, "{stdout}");
    assert!((0.0..=1.0).contains(&fixed), "{stdout}");
}

#[test]
fn custom_model_grows_its_head() {
    let stdout = run("custom_model", &["--steps", "150"]);
    assert!(stdout.contains("head grew from 8-2"), "{stdout}");
    assert!(number_after(&stdout, "test accuracy") > 0.85, "{stdout}");
}

#[cfg(feature = "train")]
#[test]
fn learner_example_trains_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let stdout = run("learner", &["--epochs", "3", "--out", &out]);
    assert!(stdout.contains("final 2-"), "{stdout}");
    assert!(dir.path().join("checkpoint").join("model-3.bpk").exists());
}

#[test]
fn backends_agree() {
    let results: Vec<(String, String)> = burn_senn::backends::available()
        .into_iter()
        .filter(|b| *b != "cuda")
        .map(|backend| {
            (
                backend.to_string(),
                run("backends", &["--backend", backend, "--steps", "90"]),
            )
        })
        .collect();
    let (reference_name, reference) = &results[0];
    let line = |text: &str, label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .to_string()
    };
    for (name, stdout) in &results[1..] {
        assert_eq!(
            line(stdout, "architecture"),
            line(reference, "architecture"),
            "{name} vs {reference_name}"
        );
        for label in ["loss ", "mean output "] {
            let (a, b) = (number_after(stdout, label), number_after(reference, label));
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1e-2),
                "{label}: {name} {a} vs {reference_name} {b}"
            );
        }
    }
}
