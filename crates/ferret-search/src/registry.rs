//! Stage names → constructors. Adding a stage: a file in `stages/` and one line in `STAGES`.

use std::sync::Arc;

use ferret_index::Index;

use crate::pipeline::{Arg, Expr, Value};
use crate::stage::{Cutoff, Stage, Then};
use crate::stages;
use crate::SearchError;

type Constructor = fn(&mut Args<'_>, &Arc<Index>) -> Result<Box<dyn Stage>, SearchError>;

/// Every stage: name, one-line help, constructor.
pub const STAGES: &[(&str, &str, Constructor)] = &[
    (
        "bm25",
        "BM25 over the lexical representation: k1, b (Anserini defaults 0.9, 0.4); per-field weights by field name (title=, text=) on multi-field indexes",
        stages::bm25::build,
    ),
    (
        "dense",
        "inner-product search over a dense representation: model (optional when the index has one), ef (HNSW candidate list), exact=1 to skip the graph",
        stages::dense::build,
    ),
    (
        "vprf",
        "Vector-PRF after a dense stage: depth, alpha, beta, mode=rocchio|average, model",
        stages::vprf::build,
    ),
];

/// Turns a parsed expression into a prepared stage tree.
pub fn prepare(expr: &Expr, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    match expr {
        Expr::Stage {
            name,
            args,
            position,
        } => {
            let Some((_, _, build)) = STAGES.iter().find(|(n, _, _)| n == name) else {
                let known: Vec<&str> = STAGES.iter().map(|(n, _, _)| *n).collect();
                let hint = nearest(name, &known)
                    .map(|s| format!(" — did you mean '{s}'?"))
                    .unwrap_or_default();
                return Err(SearchError::at(
                    *position,
                    format!("unknown stage '{name}'{hint} (known: {})", known.join(", ")),
                ));
            };
            let mut a = Args::new(name, *position, args);
            let stage = build(&mut a, index)?;
            a.finish()?;
            Ok(stage)
        }
        Expr::Cutoff { input, k } => Ok(Box::new(Cutoff {
            input: prepare(input, index)?,
            k: *k,
        })),
        Expr::Then { first, then } => Ok(Box::new(Then {
            first: prepare(first, index)?,
            then: prepare(then, index)?,
        })),
    }
}

/// The closest known name within edit distance 2, for "did you mean".
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A stage's arguments, taken one by one by its constructor; whatever is left is an error.
pub struct Args<'a> {
    stage: &'a str,
    position: usize,
    args: &'a [Arg],
    taken: Vec<bool>,
    accepted: Vec<String>,
}

impl<'a> Args<'a> {
    fn new(stage: &'a str, position: usize, args: &'a [Arg]) -> Self {
        Args {
            stage,
            position,
            args,
            taken: vec![false; args.len()],
            accepted: Vec::new(),
        }
    }

    /// Where the stage starts in the text, for errors about the stage as a whole.
    pub fn position(&self) -> usize {
        self.position
    }

    /// A number argument, or `default` when absent.
    pub fn number(&mut self, name: &str, default: f64) -> Result<f64, SearchError> {
        self.accepted.push(name.to_string());
        let Some(i) = self.args.iter().position(|a| a.name == name) else {
            return Ok(default);
        };
        self.taken[i] = true;
        match &self.args[i].value {
            Value::Number(n) if n.is_finite() => Ok(*n),
            Value::Number(_) | Value::Text(_) => Err(SearchError::at(
                self.args[i].position,
                format!("{}: argument '{name}' must be a number", self.stage),
            )),
        }
    }

    /// A text argument (a bare word or a quoted string), or `None` when absent.
    pub fn text(&mut self, name: &str) -> Result<Option<String>, SearchError> {
        self.accepted.push(name.to_string());
        let Some(i) = self.args.iter().position(|a| a.name == name) else {
            return Ok(None);
        };
        self.taken[i] = true;
        Ok(Some(match &self.args[i].value {
            Value::Text(t) => t.clone(),
            Value::Number(n) => n.to_string(),
        }))
    }

    fn finish(self) -> Result<(), SearchError> {
        if let Some(i) = self.taken.iter().position(|t| !t) {
            let a = &self.args[i];
            let hint = {
                let accepted: Vec<&str> = self.accepted.iter().map(String::as_str).collect();
                nearest(&a.name, &accepted)
                    .map(|s| format!(" — did you mean '{s}'?"))
                    .unwrap_or_default()
            };
            return Err(SearchError::at(
                a.position,
                format!(
                    "{} has no argument '{}'{hint} (accepted: {})",
                    self.stage,
                    a.name,
                    self.accepted.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names() {
        assert_eq!(nearest("bm52", &["bm25", "rm3"]), Some("bm25"));
        assert_eq!(nearest("dense", &["bm25"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
