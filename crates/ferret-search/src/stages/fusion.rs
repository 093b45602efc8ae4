//! The fusion family: stages that combine the rankings of several input pipelines.
//!
//! Every input runs on the same query (and on the same candidates when the fusion follows
//! `>>`) to depth `depth` (default 1000; a `% k` inside an input cuts it further). With
//! input rankings L₁…Lₙ, weights wᵢ (default 1), rank r starting at 1:
//!
//! * `rrf(k=60)`:         s(d) = Σ wᵢ / (k + rᵢ(d))                 (absent: no term)
//! * `combsum(norm)`:     s(d) = Σ wᵢ · N(sᵢ(d))
//! * `combmnz(norm)`:     s(d) = |{i : d ∈ Lᵢ}| · Σ wᵢ · N(sᵢ(d))
//! * `interp(alpha)`:     s(d) = α · N(s₁(d)) + (1 − α) · N(s₂(d))    (exactly two inputs)
//! * `borda`:             s(d) = Σ wᵢ · (|Lᵢ| − rᵢ(d) + 1)            (absent: no points)
//!
//! N is the normalisation over each list: `minmax` (s − min)/(max − min) (all 1 when the list
//! is flat), `zscore` (s − mean)/sd (all 0 when sd = 0), or `none`. A document absent from a
//! list counts as that list's minimum normalised score — 0 under min-max, the usual CombSUM
//! convention, and Pyserini's hybrid convention (the list's lowest score) under `none`.
//! Equal fused scores keep the order in which the documents were first seen (input order,
//! then rank).

use std::collections::HashMap;
use std::sync::Arc;

use ferret_index::{DocNo, Index};

use crate::args::{Args, Build, StageSpec};
use crate::stage::{Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

use crate::stage::FEED_DEPTH as DEFAULT_DEPTH;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Norm {
    MinMax,
    ZScore,
    None,
}

impl Norm {
    fn from_args(args: &mut Args<'_>) -> Result<Self, SearchError> {
        Ok(match args.choice("norm", &["minmax", "zscore", "none"])? {
            "minmax" => Norm::MinMax,
            "zscore" => Norm::ZScore,
            _ => Norm::None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Norm::MinMax => "minmax",
            Norm::ZScore => "zscore",
            Norm::None => "none",
        }
    }

    /// Normalised scores of `hits`, and the value an absent document gets.
    fn apply(self, hits: &[Hit]) -> (Vec<f64>, f64) {
        let scores: Vec<f64> = hits.iter().map(|h| h.score as f64).collect();
        if scores.is_empty() {
            return (scores, 0.0);
        }
        let normalised: Vec<f64> = match self {
            Norm::None => scores,
            Norm::MinMax => {
                let (lo, hi) = min_max(&scores);
                if hi > lo {
                    scores.iter().map(|s| (s - lo) / (hi - lo)).collect()
                } else {
                    vec![1.0; scores.len()]
                }
            }
            Norm::ZScore => {
                let n = scores.len() as f64;
                let mean = scores.iter().sum::<f64>() / n;
                let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
                if sd > 0.0 {
                    scores.iter().map(|s| (s - mean) / sd).collect()
                } else {
                    vec![0.0; scores.len()]
                }
            }
        };
        let absent = min_max(&normalised).0;
        (normalised, absent)
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Method {
    Rrf { k: f64 },
    CombSum { norm: Norm, mnz: bool },
    Borda,
}

pub struct Fusion {
    name: &'static str,
    method: Method,
    inputs: Vec<Box<dyn Stage>>,
    weights: Vec<f64>,
    depth: usize,
    /// Arguments for `describe`, in text form.
    shown_args: String,
}

fn weights(args: &mut Args<'_>, n: usize) -> Result<Vec<f64>, SearchError> {
    match args.list("weights")? {
        None => Ok(vec![1.0; n]),
        Some(w) if w.len() == n && w.iter().all(|x| x.is_finite()) => Ok(w),
        Some(w) => Err(args.error_at(
            "weights",
            format!("weights has {} numbers but there are {n} inputs", w.len()),
        )),
    }
}

fn finish(
    name: &'static str,
    method: Method,
    inputs: Vec<Box<dyn Stage>>,
    weights: Vec<f64>,
    depth: usize,
    mut shown: Vec<String>,
) -> Box<dyn Stage> {
    if weights.iter().any(|w| *w != 1.0) {
        let w: Vec<String> = weights.iter().map(f64::to_string).collect();
        shown.push(format!("weights=[{}]", w.join(", ")));
    }
    if depth != DEFAULT_DEPTH {
        shown.push(format!("depth={depth}"));
    }
    Box::new(Fusion {
        name,
        method,
        inputs,
        weights,
        depth,
        shown_args: shown.join(", "),
    })
}

pub const RRF: StageSpec = StageSpec {
    name: "rrf",
    help: "reciprocal rank fusion of the input pipelines: k=60, weights=[...]",
    min_inputs: 1,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build_rrf),
};

pub fn build_rrf(args: &mut Args<'_>, _: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let inputs = args.inputs()?;
    let k = args.number_in("k", 60.0, 0.0..=f64::MAX)?;
    let weights = weights(args, inputs.len())?;
    let depth = args.count("depth", DEFAULT_DEPTH, 1)?;
    Ok(finish(
        "rrf",
        Method::Rrf { k },
        inputs,
        weights,
        depth,
        vec![format!("k={k}")],
    ))
}

fn build_comb(args: &mut Args<'_>, mnz: bool) -> Result<Box<dyn Stage>, SearchError> {
    let inputs = args.inputs()?;
    let norm = Norm::from_args(args)?;
    let weights = weights(args, inputs.len())?;
    let depth = args.count("depth", DEFAULT_DEPTH, 1)?;
    Ok(finish(
        if mnz { "combmnz" } else { "combsum" },
        Method::CombSum { norm, mnz },
        inputs,
        weights,
        depth,
        vec![format!("norm={}", norm.name())],
    ))
}

pub const COMBSUM: StageSpec = StageSpec {
    name: "combsum",
    help: "CombSUM: weighted sum of normalised scores; norm=minmax|zscore|none, weights=[...]",
    min_inputs: 1,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build_combsum),
};

pub fn build_combsum(args: &mut Args<'_>, _: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    build_comb(args, false)
}

pub const COMBMNZ: StageSpec = StageSpec {
    name: "combmnz",
    help: "CombMNZ: CombSUM times the number of inputs that returned the document; norm, weights",
    min_inputs: 1,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build_combmnz),
};

pub fn build_combmnz(args: &mut Args<'_>, _: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    build_comb(args, true)
}

pub const INTERP: StageSpec = StageSpec {
    name: "interp",
    help: "linear interpolation of two inputs: alpha*first + (1-alpha)*second, alpha=0.5, norm=minmax|zscore|none",
    min_inputs: 2,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build_interp),
};

pub fn build_interp(args: &mut Args<'_>, _: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let inputs = args.inputs()?;
    if inputs.len() != 2 {
        return Err(args.error_at(
            "alpha",
            format!(
                "interp takes exactly two inputs (got {}); use combsum(..., weights=[...]) for more",
                inputs.len()
            ),
        ));
    }
    let alpha = args.number_in("alpha", 0.5, 0.0..=1.0)?;
    let norm = Norm::from_args(args)?;
    let depth = args.count("depth", DEFAULT_DEPTH, 1)?;
    let mut fusion = Fusion {
        name: "interp",
        method: Method::CombSum { norm, mnz: false },
        inputs,
        weights: vec![alpha, 1.0 - alpha],
        depth,
        shown_args: format!("alpha={alpha}, norm={}", norm.name()),
    };
    if depth != DEFAULT_DEPTH {
        fusion.shown_args.push_str(&format!(", depth={depth}"));
    }
    Ok(Box::new(fusion))
}

/// `interp(first, second, alpha, norm=minmax)`, for stages made of others.
pub(crate) fn min_max_interpolation(
    first: Box<dyn Stage>,
    second: Box<dyn Stage>,
    alpha: f64,
) -> Box<dyn Stage> {
    Box::new(Fusion {
        name: "interp",
        method: Method::CombSum {
            norm: Norm::MinMax,
            mnz: false,
        },
        inputs: vec![first, second],
        weights: vec![alpha, 1.0 - alpha],
        depth: DEFAULT_DEPTH,
        shown_args: format!("alpha={alpha}, norm=minmax"),
    })
}

pub const BORDA: StageSpec = StageSpec {
    name: "borda",
    help: "Borda count: each input gives (n - rank + 1) points; weights=[...]",
    min_inputs: 1,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build_borda),
};

pub fn build_borda(args: &mut Args<'_>, _: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let inputs = args.inputs()?;
    let weights = weights(args, inputs.len())?;
    let depth = args.count("depth", DEFAULT_DEPTH, 1)?;
    Ok(finish(
        "borda",
        Method::Borda,
        inputs,
        weights,
        depth,
        vec![],
    ))
}

/// Fuses `lists` (one ranking per input) into one ranking of at most `k` hits.
fn fuse(method: Method, weights: &[f64], lists: &[Vec<Hit>], k: usize) -> Vec<Hit> {
    let mut slot: HashMap<DocNo, usize> = HashMap::new();
    let mut docs: Vec<(DocNo, f64, u32)> = Vec::new();
    let mut entry = |d: DocNo| {
        *slot.entry(d).or_insert_with(|| {
            docs.push((d, 0.0, 0));
            docs.len() - 1
        })
    };
    let mut contributions: Vec<(usize, f64)> = Vec::new();
    for (list, w) in lists.iter().zip(weights) {
        match method {
            Method::Rrf { k } => {
                for (r, h) in list.iter().enumerate() {
                    contributions.push((entry(h.doc), w / (k + (r + 1) as f64)));
                }
            }
            Method::Borda => {
                let n = list.len();
                for (r, h) in list.iter().enumerate() {
                    contributions.push((entry(h.doc), w * (n - r) as f64));
                }
            }
            Method::CombSum { .. } => {
                for h in list {
                    entry(h.doc);
                }
            }
        }
    }
    if let Method::CombSum { norm, mnz } = method {
        // Every document gets every list's contribution: its normalised score or the list's
        // floor.
        let mut total = vec![0f64; docs.len()];
        let mut count = vec![0u32; docs.len()];
        for (list, w) in lists.iter().zip(weights) {
            let (normalised, absent) = norm.apply(list);
            let mut seen = vec![false; docs.len()];
            for (h, s) in list.iter().zip(&normalised) {
                let i = slot[&h.doc];
                if !seen[i] {
                    seen[i] = true;
                    total[i] += w * s;
                    count[i] += 1;
                }
            }
            for (i, s) in seen.iter().enumerate() {
                if !s {
                    total[i] += w * absent;
                }
            }
        }
        for (i, d) in docs.iter_mut().enumerate() {
            d.1 = if mnz {
                total[i] * count[i] as f64
            } else {
                total[i]
            };
        }
    } else {
        for (i, c) in contributions {
            docs[i].1 += c;
        }
    }
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by(|&a, &b| docs[b].1.total_cmp(&docs[a].1).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Hit {
            doc: docs[i].0,
            score: docs[i].1 as f32,
        })
        .collect()
}

impl Stage for Fusion {
    fn describe(&self) -> String {
        let inputs: Vec<String> = self.inputs.iter().map(|s| s.describe()).collect();
        format!("{}({}, {})", self.name, inputs.join(", "), self.shown_args)
    }

    fn formula(&self) -> Option<String> {
        let w = if self.weights.iter().all(|w| *w == 1.0) {
            ""
        } else {
            "w_i · "
        };
        Some(match self.method {
            Method::Rrf { k } => format!("score = Σ {w}1 / ({k} + rank_i)"),
            Method::Borda => format!("score = Σ {w}(n_i − rank_i + 1)"),
            Method::CombSum { norm, .. } if self.name == "interp" => format!(
                "score = {} · {n}(score_1) + {} · {n}(score_2); absent = the list's minimum",
                self.weights[0],
                self.weights[1],
                n = norm.name(),
            ),
            Method::CombSum { norm, mnz } => format!(
                "score = {}Σ {w}{}(score_i); absent = the list's minimum",
                if mnz { "(lists containing it) · " } else { "" },
                norm.name()
            ),
        })
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let depth = self.depth.max(k);
        let lists = self
            .inputs
            .iter()
            .map(|input| trace.run(input.as_ref(), query, candidates, depth))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fuse(self.method, &self.weights, &lists, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[(u32, f32)]) -> Vec<Hit> {
        v.iter().map(|&(doc, score)| Hit { doc, score }).collect()
    }

    fn ranked(hits: &[Hit]) -> Vec<(u32, f64)> {
        hits.iter()
            .map(|h| (h.doc, (h.score as f64 * 1e6).round() / 1e6))
            .collect()
    }

    #[test]
    fn rrf_sums_reciprocal_ranks() {
        let a = list(&[(1, 9.0), (2, 8.0), (3, 7.0)]);
        let b = list(&[(3, 0.9), (1, 0.8)]);
        let fused = fuse(Method::Rrf { k: 60.0 }, &[1.0, 1.0], &[a, b], 10);
        // doc 1: 1/61 + 1/62; doc 3: 1/63 + 1/61; doc 2: 1/62
        let expect = [
            (1, 1.0 / 61.0 + 1.0 / 62.0),
            (3, 1.0 / 63.0 + 1.0 / 61.0),
            (2, 1.0 / 62.0),
        ];
        for (got, (doc, score)) in fused.iter().zip(expect) {
            assert_eq!(got.doc, doc);
            assert!((got.score as f64 - score).abs() < 1e-7);
        }
    }

    #[test]
    fn combsum_minmax_treats_absent_as_zero_and_mnz_multiplies() {
        let a = list(&[(1, 10.0), (2, 6.0), (3, 2.0)]); // → 1, 0.5, 0
        let b = list(&[(2, 4.0), (4, 1.0)]); // → 1, 0
        let sum = fuse(
            Method::CombSum {
                norm: Norm::MinMax,
                mnz: false,
            },
            &[1.0, 1.0],
            &[a.clone(), b.clone()],
            10,
        );
        assert_eq!(ranked(&sum), vec![(2, 1.5), (1, 1.0), (3, 0.0), (4, 0.0)]);
        let mnz = fuse(
            Method::CombSum {
                norm: Norm::MinMax,
                mnz: true,
            },
            &[1.0, 1.0],
            &[a, b],
            2,
        );
        assert_eq!(ranked(&mnz), vec![(2, 3.0), (1, 1.0)]);
    }

    #[test]
    fn interpolation_without_normalisation_fills_absent_with_list_minimum() {
        let a = list(&[(1, 10.0), (2, 6.0)]);
        let b = list(&[(3, 0.9), (1, 0.5)]);
        let fused = fuse(
            Method::CombSum {
                norm: Norm::None,
                mnz: false,
            },
            &[0.25, 0.75],
            &[a, b],
            10,
        );
        // doc 1: .25*10 + .75*.5; doc 2: .25*6 + .75*.5 (absent → .5); doc 3: .25*6 + .75*.9
        assert_eq!(ranked(&fused), vec![(1, 2.875), (3, 2.175), (2, 1.875)]);
    }

    #[test]
    fn zscore_and_borda() {
        let (z, absent) = Norm::ZScore.apply(&list(&[(1, 3.0), (2, 1.0)]));
        assert_eq!(z, vec![1.0, -1.0]);
        assert_eq!(absent, -1.0);
        let a = list(&[(1, 3.0), (2, 2.0), (3, 1.0)]);
        let b = list(&[(3, 1.0)]);
        let fused = fuse(Method::Borda, &[1.0, 2.0], &[a, b], 10);
        // doc 1: 3; doc 2: 2; doc 3: 1 + 2*1
        assert_eq!(ranked(&fused), vec![(1, 3.0), (3, 3.0), (2, 2.0)]);
    }
}
