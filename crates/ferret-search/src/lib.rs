//! ferret-search: pipelines of stages over an index.
//!
//! A pipeline goes through the same three phases as a tantivy query: a [`pipeline::Expr`]
//! parsed from text (what the user asked for), a [`Stage`] prepared against an
//! [`ferret_index::Index`] (statistics and models bound once), and a run over one query's
//! candidates. Each stage declares itself ([`args::StageSpec`]: name, help, inputs, whether it
//! needs an incoming ranking, which arguments name models or endpoints) and is listed in
//! [`registry`]: adding one is one file in `stages/` and one line there.

pub mod args;
pub mod batch;
pub mod encoders;
pub mod error;
pub mod experiment;
pub mod memo;
pub mod pipeline;
pub mod queries;
pub mod registry;
pub mod reranker;
pub mod run_card;
pub mod stage;
pub mod stages;
pub mod trace;
pub mod vision;

pub use error::SearchError;
pub use pipeline::Expr;
pub use queries::{Query, QueryImage};
pub use stage::{Hit, Stage};
pub use trace::Trace;

/// Builds a ready-to-run stage tree from a pipeline in text or JSON form (text starting with
/// `{`).
pub fn prepare(
    text: &str,
    index: &std::sync::Arc<ferret_index::Index>,
) -> Result<Box<dyn Stage>, SearchError> {
    let expr = pipeline::parse_any(text)?;
    if pipeline::is_json(text) {
        // Positions point into text; the JSON form has none to show.
        registry::prepare(&expr, index).map_err(|e| match e {
            SearchError::Pipeline(p) => SearchError::Invalid(format!("pipeline: {}", p.message)),
            other => other,
        })
    } else {
        registry::prepare(&expr, index).map_err(|e| e.with_source_text(text))
    }
}
