//! A stage's declaration ([`StageSpec`]) and its arguments ([`Args`]), taken one by one by its
//! constructor. Stages depend on this module and the registry on the stages, never the other
//! way round.

use std::sync::Arc;

use ferret_index::Index;

use crate::pipeline::{Arg, Expr, Value};
use crate::reranker::Reranker;
use crate::stage::Stage;
use crate::SearchError;

/// What a stage is, declared beside its code and listed once in [`crate::registry::STAGES`].
pub struct StageSpec {
    pub name: &'static str,
    /// One line for `--help` texts and error messages.
    pub help: &'static str,
    /// Input pipelines it combines (`rrf(bm25, dense)`): how many at least; 0 takes none.
    pub min_inputs: usize,
    /// Whether it needs an incoming ranking (`a >> stage`): it is refused where it gets none,
    /// when the pipeline is prepared.
    pub needs_candidates: bool,
    /// Whether it hands its incoming ranking to its input pipelines (`tprf(scorer)` re-scores
    /// with them), so that they may need one.
    pub feeds_inputs: bool,
    /// Arguments that name a model (weights read from disk or fetched), which a server's
    /// model policy checks.
    pub model_args: &'static [&'static str],
    /// Arguments that name a network endpoint, which a server's policy checks.
    pub endpoint_args: &'static [&'static str],
    pub build: Build,
}

/// Builds a stage bound to an index.
pub type BuildStage = fn(&mut Args<'_>, &Arc<Index>) -> Result<Box<dyn Stage>, SearchError>;

/// How a stage is built.
pub enum Build {
    /// Bound to an index.
    Stage(BuildStage),
    /// Re-orders passages by text alone: usable with no index too (`ferret rerank`).
    Reranker(fn(&mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError>),
}

impl StageSpec {
    /// A retriever or other stage with no inputs, no model and no endpoint, that works with or
    /// without an incoming ranking: the fields to change are given with `..StageSpec::plain`.
    pub const fn plain(name: &'static str, help: &'static str, build: BuildStage) -> Self {
        StageSpec {
            name,
            help,
            min_inputs: 0,
            needs_candidates: false,
            feeds_inputs: false,
            model_args: &[],
            endpoint_args: &[],
            build: Build::Stage(build),
        }
    }
}

/// The closest known name within edit distance 2, for "did you mean".
pub(crate) fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
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
    /// Input pipelines, prepared when the stage asks for them.
    inputs: Option<&'a [Expr]>,
    /// How many input pipelines the stage declares it needs.
    min_inputs: usize,
    /// Prepares an input pipeline (the registry's `prepare`); `None` when preparing a reranker
    /// on its own, with no index.
    prepare_input: Option<&'a PrepareInput<'a>>,
}

/// Prepares one input pipeline of a stage.
pub type PrepareInput<'a> = dyn Fn(&Expr) -> Result<Box<dyn Stage>, SearchError> + 'a;

impl<'a> Args<'a> {
    pub(crate) fn new(
        stage: &'a str,
        position: usize,
        args: &'a [Arg],
        inputs: &'a [Expr],
        min_inputs: usize,
        prepare_input: Option<&'a PrepareInput<'a>>,
    ) -> Self {
        Args {
            stage,
            position,
            args,
            taken: vec![false; args.len()],
            accepted: Vec::new(),
            inputs: Some(inputs),
            min_inputs,
            prepare_input,
        }
    }

    /// The prepared input pipelines (for stages that combine several), at least as many as
    /// the stage declares.
    pub fn inputs(&mut self) -> Result<Vec<Box<dyn Stage>>, SearchError> {
        let min = self.min_inputs;
        let inputs = self.inputs.take().unwrap_or_default();
        let prepare = self.prepare_input.ok_or_else(|| {
            SearchError::at(self.position, format!("{} needs an index", self.stage))
        })?;
        let inputs = inputs.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
        if inputs.len() < min {
            return Err(SearchError::at(
                self.position,
                format!(
                    "{} needs at least {min} input pipelines, e.g. {}(bm25 % 1000, dense % 1000), got {}",
                    self.stage,
                    self.stage,
                    inputs.len()
                ),
            ));
        }
        Ok(inputs)
    }

    /// A number argument that must be a whole number of at least `min`.
    pub fn count(&mut self, name: &str, default: usize, min: usize) -> Result<usize, SearchError> {
        let n = self.number(name, default as f64)?;
        if n.fract() != 0.0 || n < min as f64 || n > u32::MAX as f64 {
            return Err(self.error_at(
                name,
                format!("{}: '{name}' must be a whole number >= {min}", self.stage),
            ));
        }
        Ok(n as usize)
    }

    /// A number argument that must lie in `range`.
    pub fn number_in(
        &mut self,
        name: &str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<f64, SearchError> {
        let n = self.number(name, default)?;
        if !range.contains(&n) {
            return Err(self.error_at(
                name,
                format!(
                    "{}: '{name}' must be between {} and {}",
                    self.stage,
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(n)
    }

    /// One of `choices` (the first is the default).
    pub fn choice(
        &mut self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<&'static str, SearchError> {
        match self.text(name)? {
            None => Ok(choices[0]),
            Some(v) => choices.iter().find(|c| **c == v).copied().ok_or_else(|| {
                self.error_at(
                    name,
                    format!(
                        "{}: '{name}' must be one of {}, not '{v}'",
                        self.stage,
                        choices.join(", ")
                    ),
                )
            }),
        }
    }

    /// A list of numbers (`[1, 0.5]`), or `None` when absent.
    pub fn list(&mut self, name: &str) -> Result<Option<Vec<f64>>, SearchError> {
        self.accepted.push(name.to_string());
        let Some(i) = self.args.iter().position(|a| a.name == name) else {
            return Ok(None);
        };
        self.taken[i] = true;
        match &self.args[i].value {
            Value::List(items) => Ok(Some(items.clone())),
            Value::Number(n) => Ok(Some(vec![*n])),
            Value::Text(_) => Err(SearchError::at(
                self.args[i].position,
                format!(
                    "{}: '{name}' must be a list of numbers, e.g. [0.3, 0.7]",
                    self.stage
                ),
            )),
        }
    }

    /// An error pointing at argument `name` (or at the stage when it was not given).
    pub fn error_at(&self, name: &str, message: String) -> SearchError {
        let position = self
            .args
            .iter()
            .find(|a| a.name == name)
            .map_or(self.position, |a| a.position);
        SearchError::at(position, message)
    }

    /// The stage's name, for messages.
    pub fn stage(&self) -> &str {
        self.stage
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
            Value::Number(_) | Value::Text(_) | Value::List(_) => Err(SearchError::at(
                self.args[i].position,
                format!("{}: argument '{name}' must be a number", self.stage),
            )),
        }
    }

    /// A number argument, or `None` when absent (for defaults that depend on other things).
    pub fn optional_number(&mut self, name: &str) -> Result<Option<f64>, SearchError> {
        let given = self.args.iter().any(|a| a.name == name);
        let n = self.number(name, 0.0)?;
        Ok(given.then_some(n))
    }

    /// A text argument (a bare word or a quoted string), or `None` when absent.
    pub fn text(&mut self, name: &str) -> Result<Option<String>, SearchError> {
        self.accepted.push(name.to_string());
        let Some(i) = self.args.iter().position(|a| a.name == name) else {
            return Ok(None);
        };
        self.taken[i] = true;
        match &self.args[i].value {
            Value::Text(t) => Ok(Some(t.clone())),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::List(_) => Err(SearchError::at(
                self.args[i].position,
                format!(
                    "{}: '{name}' must be a single value, not a list",
                    self.stage
                ),
            )),
        }
    }

    pub(crate) fn finish(self) -> Result<(), SearchError> {
        if let Some(inputs) = self.inputs {
            if !inputs.is_empty() {
                return Err(SearchError::at(
                    self.position,
                    format!(
                        "{} takes no input pipelines (arguments are named: name=value; to feed it a ranking, use '>>')",
                        self.stage
                    ),
                ));
            }
        }
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
