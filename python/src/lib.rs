//! `ferret._ferret`: the extension module under the Python package (`python/ferret`).
//!
//! It stays thin: indexes, prepared pipelines, evaluation and encoders cross the boundary as
//! plain columns (lists of ids, texts, scores) and bytes; the DataFrame conventions of
//! PyTerrier live in Python. Every call that indexes, searches, evaluates or encodes releases
//! the GIL, and every ferret error becomes a `ferret.FerretError` with ferret's message.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use ferret_eval::{EvalOptions, Measure, Qrels, Run};
use ferret_index::{Document, IndexOptions, IndexWriter};
use ferret_search::{Hit, Query, Trace};

mod card;
mod shard;

pyo3::create_exception!(
    _ferret,
    FerretError,
    PyException,
    "An error reported by ferret: bad input (file, line, position), an unknown model or \
     stage, a broken or missing index."
);

fn error(e: impl std::fmt::Display) -> PyErr {
    FerretError::new_err(e.to_string())
}

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Columns of a ranking: one row per (query, document).
type RankingColumns = (Vec<String>, Vec<String>, Vec<f64>);

/// An index directory, opened read-only (memory-mapped; cheap to share between threads).
#[pyclass(frozen, module = "ferret._ferret")]
struct Index {
    inner: Arc<ferret_index::Index>,
}

/// What `Index.build` adds besides the lexical representation (a dict with every key).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Representations {
    dense: Vec<String>,
    sparse: Vec<String>,
    tokens: Vec<String>,
    colbert: Vec<String>,
    hnsw: bool,
    dense_dtype: String,
    dense_int8: bool,
    tokens_nbits: u32,
}

#[pymethods]
impl Index {
    #[new]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| ferret_index::Index::open(&path))
            .map_err(error)?;
        Ok(Index {
            inner: Arc::new(inner),
        })
    }

    /// Builds (or, with `append`, extends) the index at `path` from a corpus file and/or
    /// `(id, title, text)` rows, with the representations asked for; returns
    /// `(added, skipped messages)`.
    #[staticmethod]
    #[pyo3(signature = (path, corpus, documents, analyzer, fields, representations, overwrite, append, skip_invalid, threads))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        path: PathBuf,
        corpus: Option<PathBuf>,
        documents: Vec<(String, String, String)>,
        analyzer: &str,
        fields: &str,
        representations: Representations,
        overwrite: bool,
        append: bool,
        skip_invalid: bool,
        threads: Option<usize>,
    ) -> PyResult<(u64, Vec<String>)> {
        let opts = IndexOptions {
            analyzer: analyzer.parse().map_err(error)?,
            fields: fields.parse().map_err(error)?,
            threads: self::threads(threads),
            skip_invalid,
            ..Default::default()
        };
        py.detach(move || {
            let mut writer = if append {
                IndexWriter::open(&path, opts)
            } else {
                IndexWriter::create(&path, opts, overwrite)
            }
            .map_err(error)?;
            writer.set_encoders(ferret_search::encoders::ModelEncoders::shared());
            if let Some(corpus) = &corpus {
                writer
                    .add_corpus(corpus, &mut |_, _, _| {})
                    .map_err(error)?;
            }
            for (id, title, text) in documents {
                writer
                    .add(Document {
                        id,
                        title,
                        text,
                        ..Default::default()
                    })
                    .map_err(error)?;
            }
            request_representations(&mut writer, &representations)?;
            let stats = writer.commit().map_err(error)?;
            Ok((stats.added, stats.skipped))
        })
    }

    /// Live documents.
    fn __len__(&self) -> usize {
        self.inner.manifest().doc_count as usize
    }

    /// The committed manifest (generation, documents, representations) as JSON.
    fn manifest_json(&self) -> PyResult<String> {
        serde_json::to_string(self.inner.manifest()).map_err(error)
    }

    /// The stored document `docno`: (title, text), or None when the index has no such id.
    fn document(&self, py: Python<'_>, docno: &str) -> PyResult<Option<(String, String)>> {
        py.detach(|| {
            let Some(d) = self.inner.docstore().find(docno) else {
                return Ok(None);
            };
            let doc = self.inner.document(d).map_err(error)?;
            Ok(Some((doc.title, doc.text)))
        })
    }

    /// The contents (title and text, as encoders and feedback read them) of the documents
    /// with these internal numbers.
    fn contents(&self, py: Python<'_>, docnos: Vec<u32>) -> PyResult<Vec<String>> {
        py.detach(|| {
            docnos
                .into_iter()
                .map(|d| Ok(self.inner.document(d).map_err(error)?.contents()))
                .collect()
        })
    }

    fn __repr__(&self) -> String {
        let m = self.inner.manifest();
        let kinds: Vec<String> = self
            .inner
            .entries()
            .map(|e| format!("{}:{}", e.kind, e.name))
            .collect();
        format!(
            "ferret.Index('{}', {} documents, generation {}, [{}])",
            self.inner.dir().display(),
            m.doc_count,
            m.generation,
            kinds.join(", ")
        )
    }
}

fn request_representations(writer: &mut IndexWriter, r: &Representations) -> PyResult<()> {
    let dtype = if r.dense_dtype.is_empty() {
        ferret_index::VectorType::F32
    } else {
        r.dense_dtype.parse().map_err(error)?
    };
    for model in &r.dense {
        let options = ferret_index::DenseOptions {
            hnsw: r.hnsw.then(ferret_index::dense::hnsw::HnswParams::default),
            dtype,
            int8: r.dense_int8,
            ..Default::default()
        };
        writer
            .add_representation(options.request(model))
            .map_err(error)?;
    }
    for model in &r.sparse {
        let options = ferret_index::sparse::SparseOptions {
            document_max_length: Some(256),
            query_max_length: Some(64),
            ..Default::default()
        };
        writer
            .add_representation(options.request(model))
            .map_err(error)?;
    }
    let token_models = r.colbert.iter().map(|m| (m, None));
    for (model, encoder) in token_models.chain(r.tokens.iter().map(|m| (m, Some("tokens")))) {
        let options = ferret_index::TokenOptions {
            encoder: encoder.map(String::from),
            nbits: r.tokens_nbits,
            ..Default::default()
        };
        writer
            .add_representation(options.request(model))
            .map_err(error)?;
    }
    Ok(())
}

/// A pipeline prepared against an index: models loaded and statistics bound once, then run
/// over any number of queries.
#[pyclass(frozen, module = "ferret._ferret")]
struct Prepared {
    index: Arc<ferret_index::Index>,
    stage: Box<dyn ferret_search::Stage>,
}

#[pymethods]
impl Prepared {
    /// `fed`: prepare the pipeline as the right side of `>>`, run with an incoming ranking
    /// (`run_one(candidates=…)`; how a shard runs its part of a router's pipeline).
    #[new]
    #[pyo3(signature = (index, pipeline, fed=false))]
    fn new(py: Python<'_>, index: &Index, pipeline: &str, fed: bool) -> PyResult<Self> {
        let index = index.inner.clone();
        let stage = py
            .detach(|| {
                if fed {
                    let expr = ferret_search::pipeline::parse_any(pipeline)?;
                    ferret_search::registry::prepare_fed(&expr, &index)
                } else {
                    ferret_search::prepare(pipeline, &index)
                }
            })
            .map_err(error)?;
        Ok(Prepared { index, stage })
    }

    /// Runs one query: rows of (internal number, docno, score), best first. `candidates`
    /// ((internal number, score) best first) is the incoming ranking of a stage that follows
    /// `>>`; `feedback` the contents of feedback documents by the numbers `candidates` gives
    /// them, when they live in other shards (see `feedback_positions`).
    #[pyo3(signature = (qid, text, k, candidates=None, feedback=None))]
    fn run_one(
        &self,
        py: Python<'_>,
        qid: String,
        text: String,
        k: usize,
        candidates: Option<Vec<(u32, f32)>>,
        feedback: Option<HashMap<u32, String>>,
    ) -> PyResult<Vec<(u32, String, f32)>> {
        if text.trim().is_empty() {
            return Err(error(format!("query '{qid}' is empty")));
        }
        py.detach(|| {
            let mut query = Query::new(qid, text);
            query.feedback_contents = feedback.map(Arc::new);
            let candidates: Option<Vec<Hit>> = candidates.map(|c| {
                c.into_iter()
                    .map(|(doc, score)| Hit { doc, score })
                    .collect()
            });
            let hits = self
                .stage
                .run(&query, candidates.as_deref(), k, &mut Trace::off())
                .map_err(error)?;
            Ok(hits
                .into_iter()
                .map(|h| (h.doc, self.index.external_id(h.doc).to_string(), h.score))
                .collect())
        })
    }

    /// For a feedback stage: the positions in an incoming ranking of `ranking_len` documents
    /// whose contents it reads; None for other stages.
    fn feedback_positions(&self, ranking_len: usize) -> Option<Vec<usize>> {
        self.stage.feedback_positions(ranking_len)
    }

    /// Every stage with every parameter, defaults included.
    fn describe(&self) -> String {
        self.stage.describe()
    }

    /// Runs the queries (in parallel over `threads`); rows of (qid, docno, score), each
    /// query's hits best first.
    #[pyo3(signature = (qids, texts, k, threads=None))]
    fn search(
        &self,
        py: Python<'_>,
        qids: Vec<String>,
        texts: Vec<String>,
        k: usize,
        threads: Option<usize>,
    ) -> PyResult<RankingColumns> {
        if qids.len() != texts.len() {
            return Err(error(format!(
                "{} query ids for {} query texts",
                qids.len(),
                texts.len()
            )));
        }
        py.detach(|| {
            let queries: Vec<Query> = qids
                .into_iter()
                .zip(texts)
                .map(|(id, text)| Query::new(id, text))
                .collect();
            if let Some(q) = queries.iter().find(|q| q.text.trim().is_empty()) {
                return Err(error(format!("query '{}' is empty", q.id)));
            }
            let rankings = ferret_search::batch::search_queries(
                self.stage.as_ref(),
                &queries,
                k,
                self::threads(threads),
                &|_| {},
            )
            .map_err(error)?;
            let mut out = RankingColumns::default();
            for (q, hits) in queries.iter().zip(rankings) {
                for h in hits {
                    out.0.push(q.id.clone());
                    out.1.push(self.index.external_id(h.doc).to_string());
                    out.2.push(h.score as f64);
                }
            }
            Ok(out)
        })
    }
}

/// The canonical text of a pipeline (checks its syntax; stages are checked when prepared).
#[pyfunction]
fn canonical_pipeline(text: &str) -> PyResult<String> {
    let expr =
        ferret_search::pipeline::parse_any(text).map_err(|e| error(e.with_source_text(text)))?;
    Ok(expr.to_string())
}

/// A TREC run or qrels file as columns (ferret's readers: errors name file and line).
#[pyfunction]
fn read_run(py: Python<'_>, path: PathBuf) -> PyResult<RankingColumns> {
    py.detach(|| {
        let run = Run::read(&path).map_err(error)?;
        let mut out = RankingColumns::default();
        for q in run.query_ids() {
            for (d, s) in run.get(q).unwrap_or_default() {
                out.0.push(q.to_string());
                out.1.push(d.clone());
                out.2.push(*s);
            }
        }
        Ok(out)
    })
}

#[pyfunction]
fn read_qrels(py: Python<'_>, path: PathBuf) -> PyResult<(Vec<String>, Vec<String>, Vec<i32>)> {
    py.detach(|| {
        let qrels = Qrels::read(&path).map_err(error)?;
        let mut out: (Vec<String>, Vec<String>, Vec<i32>) = Default::default();
        for q in qrels.query_ids() {
            let mut judged: Vec<(&String, &i32)> = qrels.get(q).into_iter().flatten().collect();
            judged.sort();
            for (d, r) in judged {
                out.0.push(q.to_string());
                out.1.push(d.clone());
                out.2.push(*r);
            }
        }
        Ok(out)
    })
}

#[pyfunction]
fn read_queries(py: Python<'_>, path: PathBuf) -> PyResult<(Vec<String>, Vec<String>)> {
    py.detach(|| {
        let queries = ferret_search::queries::read_queries(&path).map_err(error)?;
        Ok(queries.into_iter().map(|q| (q.id, q.text)).unzip())
    })
}

/// trec_eval-identical evaluation of a run (columns) against qrels (columns): the measures'
/// canonical names, their means and the per-query values.
#[pyfunction]
#[pyo3(signature = (run, qrels, measures, relevance_level=1, complete=false))]
#[allow(clippy::type_complexity)]
fn evaluate(
    py: Python<'_>,
    run: RankingColumns,
    qrels: (Vec<String>, Vec<String>, Vec<i32>),
    measures: Vec<String>,
    relevance_level: i32,
    complete: bool,
) -> PyResult<(Vec<String>, Vec<f64>, Vec<(String, Vec<f64>)>)> {
    py.detach(|| {
        let measures = Measure::parse_all(&measures).map_err(error)?;
        let mut r = Run::new("python");
        let mut seen = std::collections::HashSet::new();
        for ((q, d), s) in run.0.iter().zip(&run.1).zip(&run.2) {
            if !s.is_finite() {
                return Err(error(format!(
                    "run: score {s} of document '{d}' for query '{q}' is not finite"
                )));
            }
            if !seen.insert((q, d)) {
                return Err(error(format!(
                    "run: document '{d}' appears twice for query '{q}'"
                )));
            }
            r.push(q, d, *s);
        }
        let mut j = Qrels::default();
        for ((q, d), rel) in qrels.0.iter().zip(&qrels.1).zip(&qrels.2) {
            j.insert(q, d, *rel);
        }
        if !r.query_ids().any(|q| j.get(q).is_some()) {
            return Err(error(format!(
                "the run ({} queries) and the qrels ({} queries) share no query id",
                r.len(),
                j.len()
            )));
        }
        let opts = EvalOptions {
            relevance_level,
            average_over_judged: complete,
        };
        let e = ferret_eval::evaluate(&j, &r, &measures, opts);
        Ok((
            e.measures.iter().map(|m| m.to_string()).collect(),
            e.mean.clone(),
            e.per_query.into_iter().collect(),
        ))
    })
}

/// Embeddings of `texts` with a sentence encoder (id, alias or folder) after its query or
/// document prefix: little-endian f32 bytes, rows, dimensions.
#[pyfunction]
#[pyo3(signature = (model, texts, kind, threads=None))]
fn encode(
    py: Python<'_>,
    model: &str,
    texts: Vec<String>,
    kind: &str,
    threads: Option<usize>,
) -> PyResult<(Py<PyBytes>, usize, usize)> {
    let (bytes, rows, dim) = py.detach(|| -> PyResult<_> {
        let resolved = ferret_models::source::resolve(model).map_err(error)?;
        let encoder = ferret_models::SentenceEncoder::load(&resolved.dir).map_err(error)?;
        let prefix = match kind {
            "query" => &encoder.query_prefix,
            "document" => &encoder.document_prefix,
            other => {
                return Err(error(format!(
                    "kind '{other}': expected 'query' or 'document'"
                )))
            }
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self::threads(threads))
            .build()
            .map_err(error)?;
        let vectors = pool
            .install(|| encoder.encode(&refs, prefix))
            .map_err(error)?;
        let bytes: Vec<u8> = vectors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        Ok((bytes, vectors.len(), encoder.dim()))
    })?;
    Ok((PyBytes::new(py, &bytes).unbind(), rows, dim))
}

#[pymodule]
fn _ferret(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FerretError", m.py().get_type::<FerretError>())?;
    m.add_class::<Index>()?;
    m.add_class::<Prepared>()?;
    m.add_function(wrap_pyfunction!(canonical_pipeline, m)?)?;
    m.add_function(wrap_pyfunction!(read_run, m)?)?;
    m.add_function(wrap_pyfunction!(read_qrels, m)?)?;
    m.add_function(wrap_pyfunction!(read_queries, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(card::run_query_set, m)?)?;
    m.add_function(wrap_pyfunction!(card::read_card, m)?)?;
    m.add_function(wrap_pyfunction!(card::reproduce, m)?)?;
    m.add_function(wrap_pyfunction!(shard::build_shard, m)?)?;
    m.add_function(wrap_pyfunction!(shard::sum_statistics, m)?)?;
    m.add_function(wrap_pyfunction!(shard::document_text, m)?)?;
    m.add_function(wrap_pyfunction!(shard::open_shard, m)?)?;
    m.add_function(wrap_pyfunction!(shard::parse_pipeline, m)?)?;
    m.add_function(wrap_pyfunction!(shard::stage_info, m)?)?;
    m.add_function(wrap_pyfunction!(shard::fuse, m)?)?;
    Ok(())
}
