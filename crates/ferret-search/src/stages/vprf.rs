//! `vprf(depth=3, alpha=1, beta=1, mode=rocchio, model=...)`: Vector-PRF (Li et al., "Pseudo
//! Relevance Feedback with Deep Language Models and Dense Retrievers: Successes and Pitfalls",
//! TOIS 2023). Takes the incoming ranking's top `depth` documents, builds a new query vector
//! from the query embedding q and their stored vectors d₁…d_k, and searches the whole
//! collection again:
//!
//! * `mode=rocchio`: q' = α·q + β·(1/k)·Σ dᵢ
//! * `mode=average`: q' = (q + Σ dᵢ) / (k + 1)
//!
//! Used after a dense stage: `dense % 1000 >> vprf(depth=3)`.

use std::sync::Arc;

use ferret_index::Index;

use super::dense::{bind, search, Method, QueryEncoder};
use crate::args::{Args, Build, StageSpec};
use crate::stage::{Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Rocchio,
    Average,
}

pub struct VectorPrf {
    index: Arc<Index>,
    model: String,
    encoder: QueryEncoder,
    depth: usize,
    alpha: f32,
    beta: f32,
    mode: Mode,
    method: Method,
}

pub const SPEC: StageSpec = StageSpec {
    name: "vprf",
    help: "Vector-PRF after a dense stage: depth, alpha, beta, mode=rocchio|average, model",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Stage(build),
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let depth = args.number("depth", 3.0)?;
    let alpha = args.number("alpha", 1.0)? as f32;
    let beta = args.number("beta", 1.0)? as f32;
    let mode = match args.text("mode")?.as_deref() {
        None | Some("rocchio") => Mode::Rocchio,
        Some("average") => Mode::Average,
        Some(other) => {
            return Err(SearchError::at(
                args.position(),
                format!("vprf: mode must be rocchio or average, not '{other}'"),
            ))
        }
    };
    if depth < 1.0 || depth.fract() != 0.0 {
        return Err(SearchError::at(
            args.position(),
            "vprf: depth must be a whole number >= 1",
        ));
    }
    let method = Method::from_args(args)?;
    let (model, encoder) = bind(args, index)?;
    Ok(Box::new(VectorPrf {
        index: index.clone(),
        model,
        encoder,
        depth: depth as usize,
        alpha,
        beta,
        mode,
        method,
    }))
}

impl Stage for VectorPrf {
    fn describe(&self) -> String {
        let mode = if self.mode == Mode::Rocchio {
            "rocchio"
        } else {
            "average"
        };
        format!(
            "vprf(depth={}, alpha={}, beta={}, mode={mode}, model={})",
            self.depth, self.alpha, self.beta, self.model
        )
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let Some(cands) = candidates else {
            return Err(SearchError::Invalid(
                "vprf needs a ranking to feed back from: use it after '>>', e.g. 'dense % 1000 >> vprf(depth=3)'".into(),
            ));
        };
        let reader = self.index.dense(Some(&self.model))?;
        let q = self.encoder.embed(query)?;
        let feedback: Vec<std::borrow::Cow<'_, [f32]>> = cands
            .iter()
            .take(self.depth)
            .filter_map(|h| reader.vector(h.doc))
            .collect();
        if feedback.is_empty() {
            return search(&self.index, &self.model, self.method, &q, None, k);
        }
        let n = feedback.len() as f32;
        let mut centroid = vec![0f32; q.len()];
        for d in &feedback {
            for (c, x) in centroid.iter_mut().zip(d.iter()) {
                *c += x;
            }
        }
        let new_q: Vec<f32> = match self.mode {
            Mode::Rocchio => q
                .iter()
                .zip(&centroid)
                .map(|(q, c)| self.alpha * q + self.beta * c / n)
                .collect(),
            Mode::Average => q
                .iter()
                .zip(&centroid)
                .map(|(q, c)| (q + c) / (n + 1.0))
                .collect(),
        };
        search(&self.index, &self.model, self.method, &new_q, None, k)
    }
}
