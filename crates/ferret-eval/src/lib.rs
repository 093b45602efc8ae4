//! ferret-eval: TREC runs and qrels, trec_eval-identical measures, and significance tests.
//!
//! This crate has no heavy dependencies and can be used on its own. Every measure follows NIST
//! `trec_eval` 9.x exactly (tie-breaking, which queries count, `-c`, `-l`), with the definitions
//! written next to the code in [`measures`].

pub mod compare;
pub mod error;
pub mod evaluate;
pub mod measures;
pub mod qrels;
pub mod read;
pub mod report;
pub mod run;
pub mod significance;

pub use compare::{compare_with_first, Comparison};
pub use error::EvalError;
pub use evaluate::{evaluate, EvalOptions, Evaluation};
pub use measures::Measure;
pub use qrels::Qrels;
pub use run::{Run, RunScores};
