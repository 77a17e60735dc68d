//! What several examples share: their command line, the growth log and an accuracy.
// Each example uses part of this module; the rest is dead code for that example.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::{Int, Tensor};

/// `--steps N --seed N [--out DIR]`, each optional.
pub struct Options {
    pub steps: usize,
    pub seed: u64,
    pub out: PathBuf,
}

/// Parses the command line: `steps` is the default number of steps, `out` the default output
/// directory, or `None` for an example that writes nothing (then `--out` is refused).
pub fn options(steps: usize, out: Option<&str>) -> Result<Options, String> {
    let mut options = Options {
        steps,
        seed: 0,
        out: PathBuf::from(out.unwrap_or_default()),
    };
    let usage = if out.is_some() {
        "--steps, --seed, --out"
    } else {
        "--steps, --seed"
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--steps" => options.steps = number()? as usize,
            "--seed" => options.seed = number()?,
            "--out" if out.is_some() => options.out = PathBuf::from(&value),
            _ => return Err(format!("unknown option {flag}; use {usage}")),
        }
    }
    Ok(options)
}

/// Prints the library's growth events (`RUST_LOG` overrides the default `burn_senn=info`).
pub fn log_growth() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "burn_senn=info".into()),
        )
        .init();
}

/// The fraction of `logits` whose largest entry is the label.
pub fn accuracy(logits: Tensor<2>, labels: Tensor<1, Int>) -> f64 {
    let predictions = logits.argmax(1).squeeze_dim::<1>(1);
    predictions
        .equal(labels)
        .float()
        .mean()
        .into_scalar::<f64>()
}
