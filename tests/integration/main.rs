//! Integration tests, one module per capability, all in one test binary (each extra binary
//! links all of burn again).

#[cfg(feature = "cli")]
mod cli;
mod common;
mod examples;
mod expansion;
mod gradients;
#[cfg(feature = "train")]
mod learner;
mod natural_gradient;
mod persistence;
mod preservation;
mod reliability;
