//! Stage names → declarations. Adding a stage: a file in `stages/` with its [`StageSpec`] and
//! one line in [`STAGES`].

use std::sync::Arc;

use ferret_index::Index;

use crate::args::{nearest, Args, Build, StageSpec};
use crate::pipeline::Expr;
use crate::reranker::{RerankStage, Reranker};
use crate::stage::{Cutoff, Given, Stage, Then};
use crate::stages;
use crate::SearchError;

/// Every stage: retrievers, feedback, fusion, and rerankers (which re-order passages by their
/// text and work without an index too; LLM arguments common to all of them: llm, api,
/// context, passage_tokens, cache).
pub const STAGES: &[&StageSpec] = &[
    &stages::bm25::SPEC,
    &stages::dense::SPEC,
    &stages::splade::SPEC,
    &stages::promptreps::SPEC,
    &stages::clip::SPEC,
    &stages::clip::CLIPSCORE,
    &stages::clip::NULLIFY,
    &stages::colbert::SPEC,
    &stages::colbert::MAXSIM,
    &stages::colbert::PRF,
    &stages::vprf::SPEC,
    &stages::rm3::SPEC,
    &stages::rocchio::SPEC,
    &stages::text_prf::SPEC,
    &stages::fusion::RRF,
    &stages::fusion::COMBSUM,
    &stages::fusion::COMBMNZ,
    &stages::fusion::INTERP,
    &stages::fusion::BORDA,
    &stages::rerank::SPEC,
    &stages::llm::pointwise::SPEC,
    &stages::llm::pairwise::SPEC,
    &stages::llm::listwise::LISTWISE,
    &stages::llm::listwise::INSERTRANK,
];

/// The declaration of a stage name.
pub fn spec(name: &str) -> Option<&'static StageSpec> {
    STAGES.iter().copied().find(|s| s.name == name)
}

/// Every stage name.
pub fn all_names() -> Vec<&'static str> {
    STAGES.iter().map(|s| s.name).collect()
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
    let Some((spec, build)) = spec(name).and_then(|s| match s.build {
        Build::Reranker(b) => Some((s, b)),
        Build::Stage(_) => None,
    }) else {
        let known: Vec<&str> = STAGES
            .iter()
            .filter(|s| matches!(s.build, Build::Reranker(_)))
            .map(|s| s.name)
            .collect();
        return Err(SearchError::at(
            *position,
            format!(
                "'{name}' is not a reranker (rerankers: {})",
                known.join(", ")
            ),
        ));
    };
    let mut a = Args::new(name, *position, args, inputs, spec.min_inputs, None);
    let reranker = build(&mut a)?;
    a.finish()?;
    Ok(reranker)
}

/// Turns a parsed expression into a prepared stage tree.
pub fn prepare(expr: &Expr, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    prepare_in(expr, index, false, None)
}

/// [`prepare`], the inputs of combining stages shared through `memo` when given.
pub(crate) fn prepare_with(
    expr: &Expr,
    index: &Arc<Index>,
    memo: Option<&crate::memo::Memo>,
) -> Result<Box<dyn Stage>, SearchError> {
    prepare_in(expr, index, false, memo)
}

/// Prepares `expr` as the right side of `>>`, fed an incoming ranking by its caller (a shard
/// running the part of a pipeline a router hands it).
pub fn prepare_fed(expr: &Expr, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    prepare_in(expr, index, true, None)
}

/// Prepares the combining stage `expr` (a fusion: `rrf(a, b)`) with `rankings` standing for its
/// input pipelines, in order: how a sharded search fuses the rankings it merged from shards.
pub fn prepare_combination(
    expr: &Expr,
    index: &Arc<Index>,
    rankings: Vec<Vec<crate::Hit>>,
) -> Result<Box<dyn Stage>, SearchError> {
    let Expr::Stage {
        name,
        inputs,
        args,
        position,
    } = expr
    else {
        return Err(SearchError::Invalid(format!("'{expr}' combines no inputs")));
    };
    let spec = spec(name).filter(|s| s.min_inputs > 0).ok_or_else(|| {
        SearchError::Invalid(format!("'{name}' is not a stage that combines inputs"))
    })?;
    if inputs.len() != rankings.len() {
        return Err(SearchError::Invalid(format!(
            "{name} has {} inputs but {} rankings were given",
            inputs.len(),
            rankings.len()
        )));
    }
    let Build::Stage(build) = spec.build else {
        return Err(SearchError::Invalid(format!("'{name}' combines no inputs")));
    };
    let given = std::sync::Mutex::new(rankings.into_iter());
    let prepare_input = |_: &Expr| -> Result<Box<dyn Stage>, SearchError> {
        let ranking = given
            .lock()
            .expect("not poisoned")
            .next()
            .unwrap_or_default();
        Ok(Box::new(Given(ranking)))
    };
    let mut a = Args::new(
        name,
        *position,
        args,
        inputs,
        spec.min_inputs,
        Some(&prepare_input),
    );
    let stage = build(&mut a, index)?;
    a.finish()?;
    Ok(stage)
}

/// `fed`: whether this expression receives an incoming ranking (it is the right side of
/// `>>`), which stages that need one check here, before anything runs. `memo`: where the
/// inputs of combining stages are shared between preparations.
fn prepare_in(
    expr: &Expr,
    index: &Arc<Index>,
    fed: bool,
    memo: Option<&crate::memo::Memo>,
) -> Result<Box<dyn Stage>, SearchError> {
    match expr {
        Expr::Stage {
            name,
            inputs,
            args,
            position,
        } => {
            let Some(spec) = spec(name) else {
                let known = all_names();
                let hint = nearest(name, &known)
                    .map(|s| format!(" — did you mean '{s}'?"))
                    .unwrap_or_default();
                return Err(SearchError::at(
                    *position,
                    format!("unknown stage '{name}'{hint} (known: {})", known.join(", ")),
                ));
            };
            if spec.needs_candidates && !fed {
                return Err(SearchError::at(
                    *position,
                    format!(
                        "{name} works on an incoming ranking: feed it one with '>>', e.g. 'bm25 % 100 >> {name}'"
                    ),
                ));
            }
            let prepare_input = |e: &Expr| {
                let prepare = || prepare_in(e, index, spec.feeds_inputs, memo);
                match memo {
                    Some(memo) => memo.input(
                        format!("{}{e}", if spec.feeds_inputs { ">> " } else { "" }),
                        prepare,
                    ),
                    None => prepare(),
                }
            };
            let mut a = Args::new(
                name,
                *position,
                args,
                inputs,
                spec.min_inputs,
                Some(&prepare_input),
            );
            let stage: Box<dyn Stage> = match spec.build {
                Build::Stage(build) => build(&mut a, index)?,
                Build::Reranker(build) => Box::new(RerankStage {
                    index: index.clone(),
                    reranker: build(&mut a)?,
                }),
            };
            a.finish()?;
            Ok(stage)
        }
        Expr::Cutoff { input, k } => Ok(Box::new(Cutoff {
            input: prepare_in(input, index, fed, memo)?,
            k: *k,
        })),
        Expr::Then { first, then } => Ok(Box::new(Then {
            first: prepare_in(first, index, fed, memo)?,
            then: prepare_in(then, index, true, memo)?,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_declarations_consistent() {
        let names = all_names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} registered twice");
        }
        for s in STAGES {
            // A reranker always needs its passages.
            if matches!(s.build, Build::Reranker(_)) {
                assert!(s.needs_candidates, "{}", s.name);
            }
        }
    }
}
