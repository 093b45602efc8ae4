//! `promptreps(model=…, mode=hybrid, alpha=0.5)`: PromptReps retrieval over the dense and
//! sparse representations an index made with an instruction-tuned LLM (`ferret index
//! --promptreps MODEL`): `mode=dense` ranks by the last token's hidden state (exact inner
//! product), `mode=sparse` by its next-token logits on the impact index, and `mode=hybrid` (the
//! default) interpolates the two min-max-normalised lists, alpha · dense + (1 − alpha) · sparse,
//! as the authors fuse them (alpha 0.5). It is those stages put together, and describes itself
//! as them.

use std::sync::Arc;

use ferret_index::sparse::Method;
use ferret_index::Index;

use super::dense::{bind_model, Dense};
use super::fusion::min_max_interpolation;
use crate::args::{Args, Build, StageSpec};
use crate::encoders::{canonical_id, is_promptreps};
use crate::stage::Stage;
use crate::SearchError;

pub const SPEC: StageSpec = StageSpec {
    name: "promptreps",
    help: "PromptReps: an LLM's last-token representations (ferret index --promptreps MODEL): model (optional when the index has one), mode=hybrid|dense|sparse, alpha=0.5 (hybrid: weight of the dense list, min-max normalised)",
    min_inputs: 0,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Stage(build),
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let mode = args.choice("mode", &["hybrid", "dense", "sparse"])?;
    let alpha = args.number_in("alpha", 0.5, 0.0..=1.0)?;
    let requested = args.text("model")?;
    let at = args.position();
    let model = match requested {
        Some(m) => canonical_id(&m).to_string(),
        None => only_promptreps_model(index).map_err(|e| SearchError::at(at, e))?,
    };
    let reader = index.dense(Some(&model)).map_err(|_| {
        SearchError::at(
            at,
            format!("promptreps: the index has no PromptReps representations made with {model}; add them with `ferret index --index DIR --promptreps {model}`"),
        )
    })?;
    if !is_promptreps(reader.params().encoder.as_deref()).map_err(|e| SearchError::at(at, e))? {
        return Err(SearchError::at(
            at,
            format!("promptreps: the dense representation made with {model} is a sentence encoder's, not PromptReps' (use dense(model={model}))"),
        ));
    }
    let dense = || -> Result<Box<dyn Stage>, SearchError> {
        let (model, encoder) = bind_model(index, Some(&model), at)?;
        Ok(Box::new(Dense::exact(index, model, encoder)))
    };
    let sparse = || -> Result<Box<dyn Stage>, SearchError> {
        Ok(Box::new(super::splade::for_model(
            index,
            Some(&model),
            Method::Auto,
            at,
        )?))
    };
    Ok(match mode {
        "dense" => dense()?,
        "sparse" => sparse()?,
        _ => min_max_interpolation(dense()?, sparse()?, alpha),
    })
}

/// The model of the index's only PromptReps dense representation.
fn only_promptreps_model(index: &Index) -> Result<String, String> {
    let made: Vec<String> = index
        .entries()
        .filter(|e| e.kind == ferret_index::dense::KIND.name)
        .filter(|e| {
            e.params
                .get("encoder")
                .is_some_and(|v| v.as_str() == Some("promptreps"))
        })
        .map(|e| e.model.as_ref().map_or(e.name.clone(), |m| m.id.clone()))
        .collect();
    match made.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("promptreps: the index has no PromptReps representations; add them with `ferret index --index DIR --promptreps smollm2`".into()),
        _ => Err(format!(
            "promptreps: the index has PromptReps representations of several models ({}): name one with model=",
            made.join(", ")
        )),
    }
}
