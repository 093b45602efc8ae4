//! Late interaction over the index's token representation (ColBERT, or a sentence encoder's
//! token vectors):
//!
//! * `colbert(model=…, method=plaid|xtr|exhaustive, …)`: retrieval. PLAID: `ncells`,
//!   `threshold`, `ndocs` (colbert-ai's defaults for the depth asked); XTR: `kprime` tokens
//!   per query token from `ncells` centroid lists, then exact MaxSim of the best `ndocs`
//!   (`maxsim=0` keeps XTR's own scores, missing similarities imputed). After `>>` it
//!   rescores the incoming documents by exact MaxSim.
//! * `maxsim(model=…)`: exact MaxSim of a candidate list (`bm25 % 1000 >> maxsim`).
//! * `colbert_prf(fb_docs=3, clusters=24, fb_embs=10, beta=1, …)`: ColBERT-PRF (Wang et al.,
//!   ICTIR 2021) after a ranking: k-means over the top `fb_docs` documents' token vectors;
//!   each cluster's mean is scored by the IDF, log((N+1)/(df+1)), of the vocabulary token most
//!   frequent among the 10 index tokens nearest to it; the `fb_embs` best are appended to the
//!   query with weight β·IDF, and the collection is searched again (`rerank=1`: the incoming
//!   ranking is rescored instead).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ferret_index::tokens::kmeans::{inner_products, kmeans, nearest};
use ferret_index::tokens::{Plaid, Xtr};
use ferret_index::{DocNo, Index, TokenReader};

use crate::args::{Args, Build, StageSpec};
use crate::encoders::LateModel;
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

const KIND: &str = "tokens";

/// A late-interaction model bound to the index's token representation made with it.
struct Bound {
    index: Arc<Index>,
    model_id: String,
    model: LateModel,
}

impl Bound {
    fn new(index: &Arc<Index>, args: &mut Args<'_>) -> Result<Self, SearchError> {
        let at = args.position();
        let requested = args.text("model")?;
        let requested = requested.as_deref().map(crate::encoders::canonical_id);
        let reader = index.representation::<TokenReader>(KIND, requested)?;
        let model_ref = reader.model().clone();
        let resolved = ferret_models::source::resolve(&model_ref.id)
            .map_err(|e| SearchError::at(at, e.to_string()))?;
        if resolved.info.weights_sha256 != model_ref.weights_sha256 {
            return Err(SearchError::at(
                at,
                format!(
                    "{} resolves to weights {} but the index was encoded with {}",
                    model_ref.id, resolved.info.weights_sha256, model_ref.weights_sha256
                ),
            ));
        }
        let model = crate::encoders::late_model(&resolved, reader.params().encoder.as_deref())
            .map_err(|e| SearchError::at(at, e))?;
        if model.get().dim() != reader.dim() {
            return Err(SearchError::at(
                at,
                format!(
                    "{} embeds tokens in {} dimensions, the index's have {}",
                    model_ref.id,
                    model.get().dim(),
                    reader.dim()
                ),
            ));
        }
        Ok(Bound {
            index: index.clone(),
            model_id: model_ref.id,
            model,
        })
    }

    fn reader(&self) -> Result<&TokenReader, SearchError> {
        Ok(self
            .index
            .representation::<TokenReader>(KIND, Some(&self.model_id))?)
    }

    /// The query's token vectors [tokens, dim].
    fn encode(&self, query: &Query) -> Result<Vec<f32>, SearchError> {
        if query.text.trim().is_empty() {
            return Err(SearchError::Invalid(format!(
                "query '{}' has no text to encode",
                query.id
            )));
        }
        let mut v = self
            .model
            .get()
            .encode_queries(&[&query.text])
            .map_err(|e| SearchError::Invalid(e.to_string()))?;
        Ok(v.remove(0).vectors)
    }

    fn is_deleted(&self) -> impl Fn(DocNo) -> bool + '_ {
        let docstore = self.index.docstore();
        move |d| docstore.is_deleted(d)
    }

    /// `candidates` reordered by exact MaxSim with `q`.
    fn rescore(&self, q: &[f32], candidates: &[Hit], k: usize) -> Result<Vec<Hit>, SearchError> {
        let docs: Vec<DocNo> = candidates.iter().map(|h| h.doc).collect();
        let scores: HashMap<DocNo, f32> = self.reader()?.maxsim(q, &docs).into_iter().collect();
        Ok(rescore(candidates, k, |d| scores[&d]))
    }

    fn retrieve(&self, q: &[f32], k: usize, method: &Method) -> Result<Vec<Hit>, SearchError> {
        let reader = self.reader()?;
        let deleted = self.is_deleted();
        let found = match method {
            Method::Exhaustive => reader.exhaustive(q, k, deleted),
            Method::Plaid(p) => reader.plaid(q, k, &p.for_k(k), deleted),
            Method::Xtr(x) => reader.xtr(q, k, &x.for_k(k), deleted),
        };
        Ok(found
            .into_iter()
            .map(|(doc, score)| Hit { doc, score })
            .collect())
    }
}

/// PLAID settings as given.
#[derive(Debug, Clone, Copy)]
struct PlaidArgs {
    ncells: Option<usize>,
    threshold: Option<f32>,
    ndocs: Option<usize>,
}

impl PlaidArgs {
    fn for_k(&self, k: usize) -> Plaid {
        let d = Plaid::for_k(k);
        Plaid {
            ncells: self.ncells.unwrap_or(d.ncells),
            threshold: self.threshold.unwrap_or(d.threshold),
            ndocs: self.ndocs.unwrap_or(d.ndocs),
        }
    }
}

/// How `colbert` finds its documents.
#[derive(Debug, Clone, Copy)]
enum Method {
    Exhaustive,
    /// Settings given; the others are colbert-ai's defaults for the depth asked.
    Plaid(PlaidArgs),
    Xtr(XtrArgs),
}

/// XTR settings as given; the others are ferret's defaults for the depth asked.
#[derive(Debug, Clone, Copy)]
struct XtrArgs {
    kprime: Option<usize>,
    ncells: Option<usize>,
    ndocs: Option<usize>,
    maxsim: bool,
}

impl XtrArgs {
    fn for_k(&self, k: usize) -> Xtr {
        let d = Xtr::for_k(k);
        Xtr {
            kprime: self.kprime.unwrap_or(d.kprime),
            ncells: self.ncells.unwrap_or(d.ncells),
            maxsim: self.maxsim.then(|| self.ndocs.or(d.maxsim)).flatten(),
        }
    }
}

impl Method {
    fn from_args(args: &mut Args<'_>) -> Result<Self, SearchError> {
        Ok(
            match args.choice("method", &["plaid", "xtr", "exhaustive"])? {
                "exhaustive" => Method::Exhaustive,
                "plaid" => {
                    let whole = |args: &mut Args<'_>,
                                 name: &str,
                                 min: f64|
                     -> Result<Option<usize>, SearchError> {
                        match args.optional_number(name)? {
                            Some(n) if n.fract() != 0.0 || n < min => Err(args.error_at(
                                name,
                                format!("colbert: '{name}' must be a whole number >= {min}"),
                            )),
                            n => Ok(n.map(|n| n as usize)),
                        }
                    };
                    Method::Plaid(PlaidArgs {
                        ncells: whole(args, "ncells", 1.0)?,
                        threshold: args.optional_number("threshold")?.map(|t| t as f32),
                        ndocs: whole(args, "ndocs", 4.0)?,
                    })
                }
                _ => {
                    let whole =
                        |args: &mut Args<'_>, name: &str| -> Result<Option<usize>, SearchError> {
                            match args.optional_number(name)? {
                                Some(n) if n.fract() != 0.0 || n < 1.0 => Err(args.error_at(
                                    name,
                                    format!("colbert: '{name}' must be a whole number >= 1"),
                                )),
                                n => Ok(n.map(|n| n as usize)),
                            }
                        };
                    Method::Xtr(XtrArgs {
                        kprime: whole(args, "kprime")?,
                        ncells: whole(args, "ncells")?,
                        ndocs: whole(args, "ndocs")?,
                        maxsim: args.number("maxsim", 1.0)? != 0.0,
                    })
                }
            },
        )
    }

    fn describe(&self) -> String {
        match self {
            Method::Exhaustive => "method=exhaustive".into(),
            Method::Plaid(p) => {
                let mut s = "method=plaid".to_string();
                if let Some(n) = p.ncells {
                    s += &format!(", ncells={n}");
                }
                if let Some(t) = p.threshold {
                    s += &format!(", threshold={t}");
                }
                if let Some(n) = p.ndocs {
                    s += &format!(", ndocs={n}");
                }
                s
            }
            Method::Xtr(x) => {
                let mut s = "method=xtr".to_string();
                for (name, v) in [
                    ("kprime", x.kprime),
                    ("ncells", x.ncells),
                    ("ndocs", x.ndocs),
                ] {
                    if let Some(v) = v {
                        s += &format!(", {name}={v}");
                    }
                }
                if !x.maxsim {
                    s += ", maxsim=0";
                }
                s
            }
        }
    }
}

pub struct Colbert {
    bound: Bound,
    method: Method,
}

pub const SPEC: StageSpec = StageSpec {
    model_args: &["model"],
    ..StageSpec::plain(
        "colbert",
        "late-interaction retrieval over the index's token vectors: method=plaid (ncells, threshold, ndocs) | xtr (kprime, ncells, ndocs, maxsim=0|1) | exhaustive; model optional when the index has one; after >> rescores by MaxSim",
        build,
    )
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let method = Method::from_args(args)?;
    Ok(Box::new(Colbert {
        bound: Bound::new(index, args)?,
        method,
    }))
}

impl Stage for Colbert {
    fn describe(&self) -> String {
        format!(
            "colbert(model={}, {})",
            self.bound.model_id,
            self.method.describe()
        )
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let q = self.bound.encode(query)?;
        match candidates {
            None => self.bound.retrieve(&q, k, &self.method),
            Some(c) => self.bound.rescore(&q, c, k),
        }
    }
}

pub struct MaxSim(Bound);

pub const MAXSIM: StageSpec = StageSpec {
    name: "maxsim",
    help: "rescores a ranking by exact late-interaction MaxSim over the index's token vectors (bm25 % 1000 >> maxsim); model optional when the index has one",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Stage(build_maxsim),
};

fn build_maxsim(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    Ok(Box::new(MaxSim(Bound::new(index, args)?)))
}

impl Stage for MaxSim {
    fn describe(&self) -> String {
        format!("maxsim(model={})", self.0.model_id)
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let Some(c) = candidates else {
            return Err(SearchError::Invalid(
                "maxsim rescores a ranking: use it after '>>', e.g. 'bm25 % 1000 >> maxsim'".into(),
            ));
        };
        let q = self.0.encode(query)?;
        self.0.rescore(&q, c, k)
    }
}

pub struct ColbertPrf {
    bound: Bound,
    method: Method,
    fb_docs: usize,
    clusters: usize,
    fb_embs: usize,
    beta: f32,
    rerank: bool,
    /// Document frequency of each vocabulary id over the live documents, counted once.
    df: OnceLock<HashMap<u32, u32>>,
}

pub const PRF: StageSpec = StageSpec {
    name: "colbert_prf",
    help: "ColBERT-PRF after a ranking: fb_docs=3, clusters=24, fb_embs=10, beta=1, rerank=0|1, method as colbert's",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Stage(build_prf),
};

fn build_prf(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let fb_docs = args.count("fb_docs", 3, 1)?;
    let clusters = args.count("clusters", 24, 1)?;
    let fb_embs = args.count("fb_embs", 10, 1)?;
    if fb_embs > clusters {
        return Err(args.error_at(
            "fb_embs",
            format!("colbert_prf: fb_embs ({fb_embs}) cannot exceed clusters ({clusters})"),
        ));
    }
    let beta = args.number("beta", 1.0)? as f32;
    let rerank = args.number("rerank", 0.0)? != 0.0;
    let method = Method::from_args(args)?;
    Ok(Box::new(ColbertPrf {
        bound: Bound::new(index, args)?,
        method,
        fb_docs,
        clusters,
        fb_embs,
        beta,
        rerank,
        df: OnceLock::new(),
    }))
}

/// Index tokens looked at to name a feedback cluster (ColBERT-PRF's nearest neighbours).
const NEIGHBOURS: usize = 10;
/// Centroid lists searched for them.
const NEIGHBOUR_CELLS: usize = 4;

impl ColbertPrf {
    fn idf(&self, reader: &TokenReader, id: u32) -> f32 {
        let df = self.df.get_or_init(|| {
            let mut df: HashMap<u32, u32> = HashMap::new();
            let live = (0..self.bound.index.docstore().num_slots() as DocNo)
                .filter(|&d| !self.bound.index.docstore().is_deleted(d));
            for d in live {
                let mut ids = reader.document_ids(d).to_vec();
                ids.sort_unstable();
                ids.dedup();
                for id in ids {
                    *df.entry(id).or_default() += 1;
                }
            }
            df
        });
        let n = self.bound.index.docstore().num_live() as f32;
        ((n + 1.0) / (df.get(&id).copied().unwrap_or(0) as f32 + 1.0)).ln()
    }

    /// The vocabulary id most frequent among the index tokens nearest to `v`.
    fn likely_token(&self, reader: &TokenReader, v: &[f32]) -> Option<u32> {
        let dim = reader.dim();
        let mut scores = Vec::new();
        inner_products(v, reader.centroids(), dim, &mut scores);
        let mut cells: Vec<usize> = (0..scores.len()).collect();
        cells.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut near: Vec<(f32, usize)> = Vec::new();
        let mut vectors = Vec::new();
        for &c in cells.iter().take(NEIGHBOUR_CELLS) {
            for &t in reader.ivf().tokens(c) {
                let t = t as usize;
                reader.token_vectors(t..t + 1, &mut vectors);
                near.push((vectors.iter().zip(v).map(|(a, b)| a * b).sum(), t));
            }
        }
        near.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        near.truncate(NEIGHBOURS);
        let mut counts: Vec<(u32, usize, usize)> = Vec::new(); // (id, count, first rank)
        for (rank, &(_, t)) in near.iter().enumerate() {
            let id = reader.token_id(t);
            match counts.iter_mut().find(|c| c.0 == id) {
                Some(c) => c.1 += 1,
                None => counts.push((id, 1, rank)),
            }
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
            .map(|c| c.0)
    }

    /// The query's vectors with the expansion embeddings appended, each row scaled by its
    /// weight (1 for query tokens, β·IDF for expansions): MaxSim of the scaled rows is the
    /// weighted MaxSim. Also returns a note for explain.
    fn expand(&self, q: Vec<f32>, feedback: &[Hit]) -> Result<(Vec<f32>, String), SearchError> {
        let reader = self.bound.reader()?;
        let dim = reader.dim();
        let mut pool = Vec::new();
        let mut vectors = Vec::new();
        for h in feedback.iter().take(self.fb_docs) {
            reader.document_vectors(h.doc, &mut vectors);
            pool.extend_from_slice(&vectors);
        }
        let n = pool.len() / dim;
        let k = self.clusters.min(n);
        if k == 0 {
            return Ok((q, "no feedback tokens".into()));
        }
        let centroids = kmeans(&pool, dim, k, 20, 0xC0FFEE).map_err(SearchError::Invalid)?;
        // Each cluster's plain mean (as ColBERT-PRF's k-means gives), not the unit centroid.
        let assigned = nearest(&pool, dim, &centroids);
        let mut means = vec![0f32; k * dim];
        let mut counts = vec![0usize; k];
        for (row, &c) in pool.chunks_exact(dim).zip(&assigned) {
            counts[c as usize] += 1;
            for (m, x) in means[c as usize * dim..][..dim].iter_mut().zip(row) {
                *m += x;
            }
        }
        let mut scored: Vec<(f32, u32, usize)> = Vec::new();
        for c in (0..k).filter(|&c| counts[c] > 0) {
            let mean = &mut means[c * dim..(c + 1) * dim];
            mean.iter_mut().for_each(|m| *m /= counts[c] as f32);
            if let Some(id) = self.likely_token(reader, mean) {
                scored.push((self.idf(reader, id), id, c));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
        scored.truncate(self.fb_embs);
        let mut out = q;
        let mut note = Vec::new();
        for &(idf, id, c) in &scored {
            let w = self.beta * idf;
            out.extend(means[c * dim..(c + 1) * dim].iter().map(|x| x * w));
            note.push(format!("{id}:{w:.3}"));
        }
        if k < self.clusters {
            note.push(format!("(only {n} feedback tokens: {k} clusters)"));
        }
        Ok((
            out,
            format!("expansion (vocabulary id:weight) {}", note.join(" ")),
        ))
    }
}

impl Stage for ColbertPrf {
    fn describe(&self) -> String {
        format!(
            "colbert_prf(model={}, fb_docs={}, clusters={}, fb_embs={}, beta={}, rerank={}, {})",
            self.bound.model_id,
            self.fb_docs,
            self.clusters,
            self.fb_embs,
            self.beta,
            u8::from(self.rerank),
            self.method.describe()
        )
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let Some(c) = candidates else {
            return Err(SearchError::Invalid(
                "colbert_prf feeds back from a ranking: use it after '>>', e.g. 'colbert % 3 >> colbert_prf'".into(),
            ));
        };
        let q = self.bound.encode(query)?;
        let (expanded, note) = self.expand(q, c)?;
        trace.note(|| note);
        if self.rerank {
            self.bound.rescore(&expanded, c, k)
        } else {
            self.bound.retrieve(&expanded, k, &self.method)
        }
    }
}
