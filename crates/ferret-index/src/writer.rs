//! Building and changing an index, with atomic commits.
//!
//! Commit protocol (a crash at any point leaves the last committed generation readable):
//! 1. the new generation's docstore files (`chunk-<gen>.*`, `deleted-<gen>.bin`) are written and
//!    fsynced under names no committed manifest refers to;
//! 2. its manifest is written to `manifest.next.json` and fsynced;
//! 3. tantivy commits with the generation number as its commit payload — the single atomic
//!    switch from the old generation to the new one;
//! 4. `manifest.next.json` is renamed to `manifest.json`.
//!
//! A reader that finds tantivy's payload one generation ahead of `manifest.json` (a crash
//! between 3 and 4) uses `manifest.next.json`, which step 2 made durable. Files of generations
//! that never committed are removed by the next writer.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ferret_text::AnalyzerKind;

use crate::corpus::CorpusReader;
use crate::dense;
use crate::docstore::{deleted_path, write_deleted, ChunkInfo, ChunkWriter, Docstore};
use crate::hnsw::{self, HnswParams};
use crate::lexical::{FieldMode, LexicalWriter};
use crate::manifest::{
    sync_dir, DenseFile, DenseInfo, HnswInfo, LexicalInfo, Manifest, Representations, Shard,
    VectorType, FORMAT_VERSION, MANIFEST, MANIFEST_NEXT,
};
use crate::reader::{committed_manifest, Index};
use crate::{DocNo, Document, IndexError};

/// Removes an index's files from `dir`, the manifest first (so that an interruption leaves no
/// index rather than part of one); anything else in `dir` is left alone.
fn remove_index_files(dir: &Path) -> Result<(), IndexError> {
    for name in [MANIFEST, MANIFEST_NEXT] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(IndexError::io(&path))?;
        }
    }
    sync_dir(dir)?;
    for name in ["lexical", "docs", "dense"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(IndexError::io(&path))?;
        }
    }
    Ok(())
}

/// How `IndexWriter::add_dense` stores a dense representation.
#[derive(Debug, Clone, Default)]
pub struct DenseOptions {
    /// Build an HNSW graph over the vectors.
    pub hnsw: Option<HnswParams>,
    pub dtype: VectorType,
    /// Override the model's query / document prompts (recorded in the manifest).
    pub query_prefix: Option<String>,
    pub document_prefix: Option<String>,
}

/// How to build the lexical representation and how much to use while doing it.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub analyzer: AnalyzerKind,
    pub fields: FieldMode,
    /// Worker threads for analysis and indexing.
    pub threads: usize,
    /// Memory the lexical indexer may use for its in-memory segments, in bytes.
    pub memory_budget: usize,
    /// Skip (and count) invalid documents instead of failing on the first one.
    pub skip_invalid: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            analyzer: AnalyzerKind::En,
            fields: FieldMode::Flat,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_budget: 256_000_000,
            skip_invalid: false,
        }
    }
}

/// What a writer did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexStats {
    pub added: u64,
    pub deleted: u64,
    /// Skipped documents: (file:line, reason), when `skip_invalid` is set.
    pub skipped: Vec<String>,
}

/// Progress of reading a corpus: bytes of the file consumed, its size, documents added.
pub trait Progress {
    fn update(&mut self, bytes_done: u64, bytes_total: u64, docs: u64);
}

impl<F: FnMut(u64, u64, u64)> Progress for F {
    fn update(&mut self, bytes_done: u64, bytes_total: u64, docs: u64) {
        self(bytes_done, bytes_total, docs)
    }
}

const BATCH: usize = 2048;

/// Adds and deletes documents; nothing is visible to readers until [`IndexWriter::commit`].
pub struct IndexWriter {
    dir: PathBuf,
    previous: Option<Manifest>,
    generation: u64,
    opts: IndexOptions,
    chunks: Vec<ChunkInfo>,
    chunk: Option<ChunkWriter>,
    lexical: LexicalWriter,
    next_docno: DocNo,
    /// Live external ids → internal number (committed plus added here).
    live: HashMap<String, DocNo>,
    /// First internal number this writer assigns.
    first_new: DocNo,
    /// Source line of each document this writer added (by internal number − `first_new`), for
    /// duplicate errors; 4 bytes a document rather than a copy of every id.
    added_lines: Vec<u32>,
    deleted: BTreeSet<DocNo>,
    batch: Vec<(DocNo, Document)>,
    stats: IndexStats,
    /// Dense representations: those of the index being changed plus any added here.
    dense: Vec<DenseInfo>,
    /// Models whose representation is new in this writer (id as given), and whether to build
    /// an HNSW graph for each.
    dense_requested: Vec<(String, DenseOptions)>,
}

impl IndexWriter {
    /// Starts a new index in `dir`. With `overwrite`, an existing index there is replaced by
    /// this one at commit (until then it stays readable); without, an existing index is an
    /// error.
    pub fn create(dir: &Path, opts: IndexOptions, overwrite: bool) -> Result<Self, IndexError> {
        let previous = match committed_manifest(dir) {
            Ok(m) => Some(m),
            Err(IndexError::NotAnIndex { .. }) => None,
            // This ferret cannot read that index anyway: nothing to keep readable until commit.
            Err(IndexError::UnsupportedFormat { .. }) if overwrite => {
                remove_index_files(dir)?;
                None
            }
            Err(e) => return Err(e),
        };
        if previous.is_some() && !overwrite {
            return Err(IndexError::Invalid {
                path: dir.to_path_buf(),
                message: "an index already exists here; use --append to add documents or --overwrite to rebuild it".into(),
            });
        }
        let lexical_dir = dir.join("lexical");
        let fresh_lexical = match &previous {
            // A replaced index keeps its tantivy directory (and so its commit history) only
            // when the schema stays the same; otherwise the lexical directory must be new.
            Some(m) => m.representations.lexical.as_ref().map(|l| l.fields) != Some(opts.fields),
            None => true,
        };
        if fresh_lexical && previous.is_some() {
            return Err(IndexError::Invalid {
                path: dir.to_path_buf(),
                message: "--overwrite cannot change the field mode of an existing index; index into a new directory".into(),
            });
        }
        if previous.is_none() {
            // Leftovers of an interrupted first build: nothing committed, safe to clear.
            if lexical_dir.exists() {
                std::fs::remove_dir_all(&lexical_dir).map_err(IndexError::io(&lexical_dir))?;
            }
        }
        let lexical = LexicalWriter::open(
            &lexical_dir,
            previous.is_none(),
            opts.fields,
            opts.analyzer,
            opts.threads,
            opts.memory_budget,
            previous.is_some(),
        )?;
        let generation = previous.as_ref().map_or(1, |m| m.generation + 1);
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            previous,
            generation,
            opts,
            chunks: Vec::new(),
            chunk: None,
            lexical,
            next_docno: 0,
            live: HashMap::new(),
            first_new: 0,
            added_lines: Vec::new(),
            deleted: BTreeSet::new(),
            batch: Vec::new(),
            stats: IndexStats::default(),
            dense: Vec::new(),
            dense_requested: Vec::new(),
        })
    }

    /// Opens an existing index to add or delete documents. Analyzer and field mode are the
    /// index's own; `threads`, `memory_budget` and `skip_invalid` are taken from `opts`.
    pub fn open(dir: &Path, opts: IndexOptions) -> Result<Self, IndexError> {
        let index = Index::open(dir)?;
        let manifest = index.manifest().clone();
        let lex = manifest
            .representations
            .lexical
            .clone()
            .ok_or_else(|| IndexError::Invalid {
                path: dir.to_path_buf(),
                message: "index has no lexical representation".into(),
            })?;
        let live = index
            .docstore()
            .live_id_map()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let deleted = index.docstore().deleted_list().into_iter().collect();
        drop(index);
        let opts = IndexOptions {
            analyzer: lex.analyzer,
            fields: lex.fields,
            ..opts
        };
        let lexical = LexicalWriter::open(
            &dir.join("lexical"),
            false,
            lex.fields,
            lex.analyzer,
            opts.threads,
            opts.memory_budget,
            false,
        )?;
        let manifest_slots = manifest.slots as DocNo;
        let previous_dense = manifest.representations.dense.clone();
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            generation: manifest.generation + 1,
            chunks: manifest.chunks.clone(),
            next_docno: manifest.slots as DocNo,
            previous: Some(manifest),
            opts,
            chunk: None,
            lexical,
            live,
            first_new: manifest_slots,
            added_lines: Vec::new(),
            deleted,
            batch: Vec::new(),
            stats: IndexStats::default(),
            dense: previous_dense,
            dense_requested: Vec::new(),
        })
    }

    /// Reads and adds every document of a corpus file.
    pub fn add_corpus(
        &mut self,
        path: &Path,
        progress: &mut dyn Progress,
    ) -> Result<(), IndexError> {
        let mut reader = CorpusReader::open(path)?;
        while let Some(doc) = reader.next_document() {
            match doc.and_then(|d| self.check_new_id(d, reader.path(), reader.line())) {
                Ok(d) => self.add_checked(d, reader.line())?,
                Err(e @ IndexError::Corpus { .. }) if self.opts.skip_invalid => {
                    self.stats.skipped.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
            if self.stats.added.is_multiple_of(1024) {
                let (done, total) = reader.progress_bytes();
                progress.update(done, total, self.stats.added);
            }
        }
        let (done, total) = reader.progress_bytes();
        progress.update(done, total, self.stats.added);
        Ok(())
    }

    /// Adds one document (ids must be new to the index).
    pub fn add(&mut self, doc: Document) -> Result<(), IndexError> {
        let n = self.stats.added as usize + 1;
        let doc = self.check_new_id(doc, Path::new("<added documents>"), n)?;
        self.add_checked(doc, n)
    }

    fn check_new_id(
        &self,
        doc: Document,
        path: &Path,
        line: usize,
    ) -> Result<Document, IndexError> {
        if let Some(c) = doc.id.chars().find(|c| c.is_whitespace() || c.is_control()) {
            // The docstore keeps one id per line and TREC runs separate columns by
            // whitespace: such an id would corrupt both.
            return Err(IndexError::Corpus {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "document id {:?} contains {c:?}: ids may not contain whitespace or control characters",
                    doc.id
                ),
            });
        }
        if let Some(&d) = self.live.get(&doc.id) {
            let message = if d >= self.first_new {
                let first = self.added_lines[(d - self.first_new) as usize];
                format!(
                    "duplicate document id '{}' (first seen on line {first})",
                    doc.id
                )
            } else {
                format!("document id '{}' is already in the index", doc.id)
            };
            return Err(IndexError::Corpus {
                path: path.to_path_buf(),
                line,
                message,
            });
        }
        Ok(doc)
    }

    fn add_checked(&mut self, doc: Document, line: usize) -> Result<(), IndexError> {
        if self.chunk.is_none() {
            let docs_dir = self.dir.join("docs");
            self.chunk = Some(ChunkWriter::create(
                &docs_dir,
                self.generation,
                self.next_docno,
            )?);
        }
        let docno = self.chunk.as_mut().expect("created above").add(&doc)?;
        self.next_docno = docno + 1;
        self.live.insert(doc.id.clone(), docno);
        self.added_lines.push(line as u32);
        self.batch.push((docno, doc));
        self.stats.added += 1;
        if self.batch.len() >= BATCH {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), IndexError> {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.lexical.add_batch(batch)?;
        }
        Ok(())
    }

    /// Deletes documents by external id; an unknown id is an error and deletes nothing.
    pub fn delete(&mut self, ids: &[String]) -> Result<(), IndexError> {
        if let Some(unknown) = ids.iter().find(|id| !self.live.contains_key(id.as_str())) {
            return Err(IndexError::UnknownDocument(unknown.clone()));
        }
        self.flush_batch()?;
        for id in ids {
            if let Some(d) = self.live.remove(id) {
                self.deleted.insert(d);
                self.lexical.delete(id)?;
                self.stats.deleted += 1;
            }
        }
        Ok(())
    }

    /// Adds a dense representation made with `model` (an id, alias or folder; fetched if
    /// needed). Every document, existing or added by this writer, is encoded at commit.
    /// With `hnsw`, an HNSW graph is built over its vectors too (and rebuilt by later commits
    /// that add or delete documents).
    pub fn add_dense(&mut self, model: &str, options: DenseOptions) {
        self.dense_requested.push((model.to_string(), options));
    }

    /// Encodes every chunk that lacks vectors for a dense representation.
    fn encode_dense(&mut self, docs_dir: &Path) -> Result<(), IndexError> {
        if self.dense.is_empty() && self.dense_requested.is_empty() {
            return Ok(());
        }
        let model_err = |e: ferret_models::ModelError| IndexError::Invalid {
            path: self.dir.clone(),
            message: e.to_string(),
        };
        let docstore = Docstore::open(docs_dir, &self.chunks, None)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.threads.max(1))
            .build()
            .expect("building a thread pool");
        let mut rebuild_graph: Vec<bool> = vec![self.stats.deleted > 0; self.dense.len()];
        for (model, options) in std::mem::take(&mut self.dense_requested) {
            let hnsw = options.hnsw;
            let resolved = ferret_models::source::resolve(&model).map_err(model_err)?;
            if let Some(i) = self.dense.iter().position(|d| d.model == resolved.info.id) {
                if let Some(params) = hnsw {
                    self.dense[i].hnsw = Some(HnswInfo {
                        file: String::new(),
                        params,
                    });
                    rebuild_graph[i] = true;
                }
                continue;
            }
            let encoder = ferret_models::SentenceEncoder::load(&resolved.dir).map_err(model_err)?;
            self.dense.push(DenseInfo {
                model: resolved.info.id.clone(),
                dim: encoder.dim(),
                weights_sha256: resolved.info.weights_sha256.clone(),
                dtype: options.dtype,
                query_prefix: options.query_prefix,
                document_prefix: options.document_prefix,
                files: Vec::new(),
                hnsw: hnsw.map(|params| HnswInfo {
                    file: String::new(),
                    params,
                }),
            });
            rebuild_graph.push(hnsw.is_some());
        }
        for (info, rebuild) in self.dense.iter_mut().zip(&mut rebuild_graph) {
            let missing: Vec<&ChunkInfo> = self
                .chunks
                .iter()
                .filter(|c| {
                    !info
                        .files
                        .iter()
                        .any(|f| f.chunk_generation == c.generation)
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            *rebuild = true;
            let resolved = ferret_models::source::resolve(&info.model).map_err(model_err)?;
            if resolved.info.weights_sha256 != info.weights_sha256 {
                return Err(IndexError::Invalid {
                    path: resolved.dir.clone(),
                    message: format!(
                        "weights sha256 {} differ from the {} the index's {} vectors were made with",
                        resolved.info.weights_sha256, info.weights_sha256, info.model
                    ),
                });
            }
            let mut encoder =
                ferret_models::SentenceEncoder::load(&resolved.dir).map_err(model_err)?;
            if let Some(p) = &info.document_prefix {
                encoder.document_prefix = p.clone();
            }
            for c in missing {
                let file = format!(
                    "dense/{}/vectors-{:06}.{}",
                    dense::model_slug(&info.model),
                    c.generation,
                    info.dtype.name()
                );
                tracing::info!("encoding {} documents with {}", c.count, info.model);
                pool.install(|| {
                    dense::encode_chunk(
                        &encoder,
                        &docstore,
                        c.first,
                        c.count,
                        info.dtype,
                        &self.dir.join(&file),
                    )
                })?;
                info.files.push(DenseFile {
                    chunk_generation: c.generation,
                    file,
                });
            }
        }
        for (info, rebuild) in self.dense.iter_mut().zip(rebuild_graph) {
            let Some(params) = info.hnsw.as_ref().filter(|_| rebuild).map(|h| h.params) else {
                continue;
            };
            let file = format!(
                "dense/{}/hnsw-{:06}.usearch",
                dense::model_slug(&info.model),
                self.generation
            );
            // The vectors only: the graph being replaced is not opened.
            let vectors = DenseInfo {
                hnsw: None,
                ..info.clone()
            };
            let reader = dense::DenseReader::open(&self.dir, &vectors, &self.chunks)?;
            let owned: Vec<(DocNo, std::borrow::Cow<'_, [f32]>)> = (0..self.next_docno)
                .filter(|d| !self.deleted.contains(d))
                .filter_map(|d| reader.vector(d).map(|v| (d, v)))
                .collect();
            let rows: Vec<(DocNo, &[f32])> = owned.iter().map(|(d, v)| (*d, v.as_ref())).collect();
            tracing::info!(
                "building an HNSW graph over {} vectors of {}",
                rows.len(),
                info.model
            );
            pool.install(|| hnsw::build(info.dim, rows, &params, &self.dir.join(&file)))?;
            info.hnsw = Some(HnswInfo { file, params });
        }
        Ok(())
    }

    /// Makes everything added and deleted visible, atomically. Returns what was done.
    pub fn commit(mut self) -> Result<IndexStats, IndexError> {
        self.flush_batch()?;
        if let Some(chunk) = self.chunk.take() {
            self.chunks.push(chunk.finish()?);
        }
        let docs_dir = self.dir.join("docs");
        std::fs::create_dir_all(&docs_dir).map_err(IndexError::io(&docs_dir))?;
        self.encode_dense(&docs_dir)?;
        let deleted_generation = if self.deleted.is_empty() {
            None
        } else if self.stats.deleted == 0 {
            self.previous.as_ref().and_then(|m| m.deleted_generation)
        } else {
            let list: Vec<DocNo> = self.deleted.iter().copied().collect();
            write_deleted(&deleted_path(&docs_dir, self.generation), &list)?;
            Some(self.generation)
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            ferret_version: env!("CARGO_PKG_VERSION").to_string(),
            generation: self.generation,
            doc_count: self.live.len() as u64,
            slots: self.next_docno as u64,
            chunks: self.chunks.clone(),
            deleted_generation,
            representations: Representations {
                lexical: Some(LexicalInfo {
                    analyzer: self.opts.analyzer,
                    fields: self.opts.fields,
                }),
                dense: self.dense.clone(),
            },
            shard: self
                .previous
                .as_ref()
                .map_or(Shard { id: 0, count: 1 }, |m| m.shard),
        };
        let next = self.dir.join(MANIFEST_NEXT);
        manifest.write_atomic(&next)?;
        sync_dir(&docs_dir)?;
        self.lexical.commit(&self.generation.to_string())?;
        std::fs::rename(&next, self.dir.join(MANIFEST)).map_err(IndexError::io(&next))?;
        sync_dir(&self.dir)?;
        remove_unreferenced(&docs_dir, &manifest);
        remove_unreferenced_dense(&self.dir, &manifest);
        Ok(self.stats)
    }
}

/// Removes vector and graph files the committed manifest does not refer to (replaced graphs,
/// vectors of an overwritten index). Failures are harmless and ignored.
fn remove_unreferenced_dense(dir: &Path, manifest: &Manifest) {
    let keep: BTreeSet<PathBuf> = manifest
        .representations
        .dense
        .iter()
        .flat_map(|d| {
            d.files
                .iter()
                .map(|f| f.file.clone())
                .chain(d.hnsw.as_ref().map(|h| h.file.clone()))
        })
        .map(|f| dir.join(f))
        .collect();
    let Ok(models) = std::fs::read_dir(dir.join("dense")) else {
        return;
    };
    for model in models.flatten() {
        if let Ok(files) = std::fs::read_dir(model.path()) {
            for f in files.flatten() {
                if !keep.contains(&f.path()) {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }
}

/// Removes docstore files no committed generation refers to (left by replaced indexes or
/// interrupted writers). Failures are harmless and ignored: the files are only clutter.
fn remove_unreferenced(docs_dir: &Path, manifest: &Manifest) {
    let keep: BTreeSet<String> = manifest
        .chunks
        .iter()
        .flat_map(|c| ["jsonl", "ids", "idx"].map(|ext| format!("chunk-{:06}.{ext}", c.generation)))
        .chain(
            manifest
                .deleted_generation
                .map(|g| format!("deleted-{g:06}.bin")),
        )
        .collect();
    if let Ok(entries) = std::fs::read_dir(docs_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
