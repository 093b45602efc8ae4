//! Stage names → constructors. Adding a stage: a file in `stages/` and one line in `STAGES`.

use std::sync::Arc;

use ferret_index::Index;

use crate::pipeline::{Arg, Expr, Value};
use crate::reranker::{RerankStage, Reranker};
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
    (
        "rm3",
        "RM3 query expansion after a ranking (Anserini's): fb_docs=10, fb_terms=10, original_query_weight=0.5, filter=1 (English term filter), then BM25 k1, b, field weights",
        stages::rm3::build,
    ),
    (
        "rocchio",
        "Rocchio query expansion after a ranking (Anserini's): top_fb_docs=10, top_fb_terms=10, alpha=1, beta=0.75, negative=0 with bottom_fb_docs=10, bottom_fb_terms=10, gamma=0.15; then BM25 k1, b, field weights",
        stages::rocchio::build,
    ),
    (
        "tprf",
        "text-based PRF for a re-scoring stage: tprf(scorer, depth=3, agg=sum|max|borda) re-scores the candidates with the query + each top passage",
        stages::text_prf::build,
    ),
    (
        "rrf",
        "reciprocal rank fusion of the input pipelines: k=60, weights=[...]",
        stages::fusion::build_rrf,
    ),
    (
        "combsum",
        "CombSUM: weighted sum of normalised scores; norm=minmax|zscore|none, weights=[...]",
        stages::fusion::build_combsum,
    ),
    (
        "combmnz",
        "CombMNZ: CombSUM times the number of inputs that returned the document; norm, weights",
        stages::fusion::build_combmnz,
    ),
    (
        "interp",
        "linear interpolation of two inputs: alpha*first + (1-alpha)*second, alpha=0.5, norm=minmax|zscore|none",
        stages::fusion::build_interp,
    ),
    (
        "borda",
        "Borda count: each input gives (n - rank + 1) points; weights=[...]",
        stages::fusion::build_borda,
    ),
];

type RerankerConstructor = fn(&mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError>;

/// Rerankers: stages that re-order the passages they are given by text alone (usable without
/// an index too, by `ferret rerank`). LLM arguments common to all: llm, api, context,
/// passage_tokens, cache.
pub const RERANKERS: &[(&str, &str, RerankerConstructor)] = &[
    (
        "rerank",
        "cross-encoder re-scoring of the incoming candidates: model=<folder or id> (BertForSequenceClassification), max_length=512",
        stages::rerank::build,
    ),
    (
        "pointwise",
        "LLM pointwise relevance: mode=yesno (P(Yes)) or fine (expected grade 0..scale, ProRank), scale=4; llm=<GGUF or id>, api=<OpenAI-compatible URL>",
        stages::llm::pointwise::build,
    ),
    (
        "prp",
        "LLM pairwise ranking prompting, both orders per pair: method=heapsort|allpairs|sliding, top=10; llm, api",
        stages::llm::pairwise::build,
    ),
    (
        "listwise",
        "LLM listwise sliding window (RankGPT): window=20, step=10, window=0 for the full list in one pass; llm, api",
        stages::llm::listwise::build_listwise,
    ),
    (
        "insertrank",
        "listwise with the first-stage scores shown in the prompt (InsertRank): window=20, step=10; llm, api",
        stages::llm::listwise::build_insertrank,
    ),
];

/// Every stage name (retrievers, feedback, fusion and rerankers).
pub fn all_names() -> Vec<&'static str> {
    STAGES
        .iter()
        .map(|(n, _, _)| *n)
        .chain(RERANKERS.iter().map(|(n, _, _)| *n))
        .collect()
}

/// The reranker expression for what a user gave as "model": a stage expression as it is
/// (`listwise(llm=smollm2)`), or a cross-encoder's name or folder alone, which means
/// `rerank(model=…)` (with `max_length` when given).
pub fn reranker_expression(model: &str, max_length: Option<usize>) -> String {
    if model.contains('(') {
        return model.to_string();
    }
    match max_length {
        Some(n) => format!("rerank(model={model:?}, max_length={n})"),
        None => format!("rerank(model={model:?})"),
    }
}

/// A reranker from a single-stage expression such as `listwise(llm=smollm2, window=10)`, with
/// no index (for ad-hoc candidates).
pub fn prepare_reranker(expr: &Expr) -> Result<Box<dyn Reranker>, SearchError> {
    let Expr::Stage {
        name,
        inputs,
        args,
        position,
    } = expr
    else {
        return Err(SearchError::Invalid(
            "a reranker is a single stage such as listwise(llm=smollm2), not a pipeline".into(),
        ));
    };
    let Some((_, _, build)) = RERANKERS.iter().find(|(n, _, _)| n == name) else {
        let known: Vec<&str> = RERANKERS.iter().map(|(n, _, _)| *n).collect();
        return Err(SearchError::at(
            *position,
            format!(
                "'{name}' is not a reranker (rerankers: {})",
                known.join(", ")
            ),
        ));
    };
    let mut a = Args::new(name, *position, args, inputs, None);
    let reranker = build(&mut a)?;
    a.finish()?;
    Ok(reranker)
}

/// Turns a parsed expression into a prepared stage tree.
pub fn prepare(expr: &Expr, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    match expr {
        Expr::Stage {
            name,
            inputs,
            args,
            position,
        } => {
            if let Some((_, _, build)) = RERANKERS.iter().find(|(n, _, _)| n == name) {
                let mut a = Args::new(name, *position, args, inputs, Some(index));
                let reranker = build(&mut a)?;
                a.finish()?;
                return Ok(Box::new(RerankStage {
                    index: index.clone(),
                    reranker,
                }));
            }
            let Some((_, _, build)) = STAGES.iter().find(|(n, _, _)| n == name) else {
                let known = all_names();
                let hint = nearest(name, &known)
                    .map(|s| format!(" — did you mean '{s}'?"))
                    .unwrap_or_default();
                return Err(SearchError::at(
                    *position,
                    format!("unknown stage '{name}'{hint} (known: {})", known.join(", ")),
                ));
            };
            let mut a = Args::new(name, *position, args, inputs, Some(index));
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
    /// Input pipelines, prepared when the stage asks for them.
    inputs: Option<&'a [Expr]>,
    /// `None` when preparing a reranker on its own, with no index.
    index: Option<&'a Arc<Index>>,
}

impl<'a> Args<'a> {
    fn new(
        stage: &'a str,
        position: usize,
        args: &'a [Arg],
        inputs: &'a [Expr],
        index: Option<&'a Arc<Index>>,
    ) -> Self {
        Args {
            stage,
            position,
            args,
            taken: vec![false; args.len()],
            accepted: Vec::new(),
            inputs: Some(inputs),
            index,
        }
    }

    /// The prepared input pipelines (for stages that combine several); at least `min`.
    pub fn inputs(&mut self, min: usize) -> Result<Vec<Box<dyn Stage>>, SearchError> {
        let inputs = self.inputs.take().unwrap_or_default();
        let index = self.index.ok_or_else(|| {
            SearchError::at(self.position, format!("{} needs an index", self.stage))
        })?;
        let inputs = inputs
            .iter()
            .map(|e| prepare(e, index))
            .collect::<Result<Vec<_>, _>>()?;
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

    fn finish(self) -> Result<(), SearchError> {
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
