//! Building and changing an index, with atomic commits.
//!
//! Commit protocol (a crash at any point leaves the last committed generation readable):
//! 0. a writer first completes a commit a crash left between steps 3 and 4 (renames
//!    `manifest.next.json` into place): its own step 2 would overwrite that file, which is then
//!    the only manifest of the committed generation;
//! 1. the new generation's docstore files (`chunk-<gen>.*`, `deleted-<gen>.bin`) and every
//!    representation's new files (see [`crate::representation`]) are written and fsynced under
//!    names no committed manifest refers to, and so is every folder holding them;
//! 2. its manifest is written to `manifest.next.json` and fsynced;
//! 3. tantivy commits with the generation number as its commit payload — the single atomic
//!    switch from the old generation to the new one;
//! 4. `manifest.next.json` is renamed to `manifest.json`.
//!
//! A reader that finds tantivy's payload one generation ahead of `manifest.json` (a crash
//! between 3 and 4) uses `manifest.next.json`, which step 2 made durable. Files of generations
//! that never committed are removed by the next writer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferret_text::AnalyzerKind;

use crate::corpus::CorpusReader;
use crate::docstore::{deleted_path, write_deleted, ChunkInfo, ChunkWriter, Docstore};
use crate::ids::IdTable;
use crate::lexical::{FieldMode, LexicalParams, LexicalWriter};
use crate::manifest::{sync_dir, Manifest, Shard, FORMAT_VERSION, MANIFEST, MANIFEST_NEXT};
use crate::reader::{committed_manifest, complete_pending_commit, Index};
use crate::representation::{self, CommitContext, EncoderSource, Entry, Request, KINDS};
use crate::{DocImage, DocNo, Document, IndexError};

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
    let kinds = KINDS.iter().map(|k| k.name);
    for name in ["docs"].into_iter().chain(kinds) {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(IndexError::io(&path))?;
        }
    }
    Ok(())
}

/// How to build the lexical representation and how much to use while doing it.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub analyzer: AnalyzerKind,
    pub fields: FieldMode,
    /// Worker threads for analysis and indexing.
    pub threads: usize,
    /// Memory indexing may take, in bytes: shared and checked as [`crate::budget`] says.
    pub memory_budget: usize,
    /// Skip (and count) invalid documents instead of failing on the first one.
    pub skip_invalid: bool,
    /// Documents' images: decoded when added (a broken one never reaches the index).
    pub images: ImageChecks,
}

/// How a writer treats documents' images.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageChecks {
    pub limits: ferret_image::DecodeLimits,
    /// A document whose image cannot be used is an error; otherwise it is skipped and counted
    /// (image collections are messy; one bad file should not stop a build of a million).
    pub strict: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            analyzer: AnalyzerKind::En,
            fields: FieldMode::Flat,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_budget: crate::budget::DEFAULT_BUDGET,
            skip_invalid: false,
            images: ImageChecks::default(),
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
    /// Ids of every internal number (committed plus added here); live ones can be looked up.
    ids: IdTable,
    /// First internal number this writer assigns.
    first_new: DocNo,
    /// Source line of each document this writer added (by internal number − `first_new`), for
    /// duplicate errors; 4 bytes a document rather than a copy of every id.
    added_lines: Vec<u32>,
    deleted: BTreeSet<DocNo>,
    batch: Vec<(DocNo, Document)>,
    stats: IndexStats,
    /// The derived representations of the index being changed (all but lexical).
    representations: Vec<Entry>,
    /// Representations asked for by this writer (new ones, or changes to existing ones).
    requested: Vec<Request>,
    /// Where document encoders come from (needed when a representation encodes documents).
    encoders: Option<Arc<dyn EncoderSource>>,
    /// Which shard of a collection this index is, when set by [`IndexWriter::set_shard`].
    shard: Option<Shard>,
}

impl IndexWriter {
    /// Starts a new index in `dir`. With `overwrite`, an existing index there is replaced by
    /// this one at commit (until then it stays readable); without, an existing index is an
    /// error.
    pub fn create(dir: &Path, opts: IndexOptions, overwrite: bool) -> Result<Self, IndexError> {
        crate::budget::check_minimum(opts.memory_budget, dir)?;
        let previous = match complete_pending_commit(dir).and_then(|_| committed_manifest(dir)) {
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
            Some(m) => m.lexical().map(|l| l.fields) != Some(opts.fields),
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
            crate::budget::lexical_share(opts.memory_budget),
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
            ids: IdTable::new(),
            first_new: 0,
            added_lines: Vec::new(),
            deleted: BTreeSet::new(),
            batch: Vec::new(),
            stats: IndexStats::default(),
            representations: Vec::new(),
            requested: Vec::new(),
            encoders: None,
            shard: None,
        })
    }

    /// Opens an existing index to add or delete documents. Analyzer and field mode are the
    /// index's own; `threads`, `memory_budget` and `skip_invalid` are taken from `opts`.
    pub fn open(dir: &Path, opts: IndexOptions) -> Result<Self, IndexError> {
        crate::budget::check_minimum(opts.memory_budget, dir)?;
        complete_pending_commit(dir)?;
        let index = Index::open(dir)?;
        let manifest = index.manifest().clone();
        let lex = manifest.lexical().ok_or_else(|| IndexError::Invalid {
            path: dir.to_path_buf(),
            message: "index has no lexical representation".into(),
        })?;
        let deleted = index.docstore().deleted_list().into_iter().collect();
        let ids = index.into_ids();
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
            crate::budget::lexical_share(opts.memory_budget),
            false,
        )?;
        let manifest_slots = manifest.slots as DocNo;
        let derived = manifest
            .representations
            .iter()
            .filter(|e| e.kind != crate::lexical::KIND.name)
            .cloned()
            .collect();
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            generation: manifest.generation + 1,
            chunks: manifest.chunks.clone(),
            next_docno: manifest.slots as DocNo,
            previous: Some(manifest),
            opts,
            chunk: None,
            lexical,
            ids,
            first_new: manifest_slots,
            added_lines: Vec::new(),
            deleted,
            batch: Vec::new(),
            stats: IndexStats::default(),
            representations: derived,
            requested: Vec::new(),
            encoders: None,
            shard: None,
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
            let checked = doc
                .and_then(|d| self.check_new_id(d, reader.path(), reader.line()))
                .and_then(|d| self.check_image(d, reader.path(), reader.line()));
            self.add_or_skip(checked, reader.line())?;
            if self.stats.added.is_multiple_of(1024) {
                let (done, total) = reader.progress_bytes();
                progress.update(done, total, self.stats.added);
            }
        }
        let (done, total) = reader.progress_bytes();
        progress.update(done, total, self.stats.added);
        Ok(())
    }

    /// Adds every image file under `folder` (recursively, in path order) as a document whose
    /// id is the file's path relative to `folder` without its extension.
    pub fn add_image_folder(
        &mut self,
        folder: &Path,
        progress: &mut dyn Progress,
    ) -> Result<(), IndexError> {
        let root = folder.canonicalize().map_err(IndexError::io(folder))?;
        let files = crate::image::list_files(&root)?;
        for (n, file) in files.iter().enumerate() {
            let relative = file.strip_prefix(&root).expect("listed under root");
            let id = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let doc = Document {
                id,
                image: Some(DocImage {
                    path: file.to_string_lossy().into_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let checked = self
                .check_new_id(doc, file, 1)
                .and_then(|d| self.check_image(d, file, 1));
            self.add_or_skip(checked, n + 1)?;
            progress.update(n as u64 + 1, files.len() as u64, self.stats.added);
        }
        Ok(())
    }

    /// Adds a checked document, or records why it was skipped when skipping is allowed.
    fn add_or_skip(
        &mut self,
        checked: Result<Document, IndexError>,
        line: usize,
    ) -> Result<(), IndexError> {
        match checked {
            Ok(d) => self.add_checked(d, line),
            Err(e @ IndexError::Corpus { .. }) if self.opts.skip_invalid => {
                self.stats.skipped.push(e.to_string());
                Ok(())
            }
            Err(e @ IndexError::Image { .. }) if !self.opts.images.strict => {
                self.stats.skipped.push(e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Decodes a document's image (so a broken one never reaches the index) and records its
    /// size and format.
    fn check_image(
        &self,
        mut doc: Document,
        path: &Path,
        line: usize,
    ) -> Result<Document, IndexError> {
        if let Some(image) = &mut doc.image {
            let decoded =
                ferret_image::decode_file(Path::new(&image.path), self.opts.images.limits)
                    .map_err(|e| IndexError::Image {
                        path: path.to_path_buf(),
                        line,
                        message: format!("document '{}': {e}", doc.id),
                    })?;
            image.width = decoded.rgb.width();
            image.height = decoded.rgb.height();
            image.format = decoded.format.to_string();
        }
        Ok(doc)
    }

    /// Adds one document (ids must be new to the index).
    pub fn add(&mut self, doc: Document) -> Result<(), IndexError> {
        let n = self.stats.added as usize + 1;
        let doc = self.check_new_id(doc, Path::new("<added documents>"), n)?;
        let doc = self.check_image(doc, Path::new("<added documents>"), n)?;
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
        if let Some(d) = self.ids.find(&doc.id) {
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
        let pushed = self.ids.push(&doc.id, true);
        debug_assert_eq!(pushed, docno, "one id per internal number");
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
            crate::budget::check(
                self.opts.memory_budget,
                &[("document ids", self.ids_bytes())],
            )?;
        }
        Ok(())
    }

    /// Memory held for the ids of the documents (and the lines they came from).
    fn ids_bytes(&self) -> usize {
        self.ids.heap_bytes() + self.added_lines.capacity() * std::mem::size_of::<u32>()
    }

    /// Deletes documents by external id; an unknown id is an error and deletes nothing.
    pub fn delete(&mut self, ids: &[String]) -> Result<(), IndexError> {
        if let Some(unknown) = ids.iter().find(|id| self.ids.find(id).is_none()) {
            return Err(IndexError::UnknownDocument(unknown.clone()));
        }
        self.flush_batch()?;
        for id in ids {
            if let Some(d) = self.ids.remove(id) {
                self.deleted.insert(d);
                self.lexical.delete(id)?;
                self.stats.deleted += 1;
            }
        }
        Ok(())
    }

    /// Where document encoders come from: needed when the index has (or is asked for) a
    /// representation that encodes documents.
    pub fn set_encoders(&mut self, encoders: Arc<dyn EncoderSource>) {
        self.encoders = Some(encoders);
    }

    /// Records in the manifest that this index is shard `id` of `count` of a collection.
    pub fn set_shard(&mut self, id: u32, count: u32) -> Result<(), IndexError> {
        if id >= count {
            return Err(IndexError::Invalid {
                path: self.dir.clone(),
                message: format!("shard {id} of {count}: the id must be below the count"),
            });
        }
        self.shard = Some(Shard { id, count });
        Ok(())
    }

    /// Asks for a representation (e.g. [`crate::dense::DenseOptions::request`]): every
    /// document, existing or added by this writer, gets it at commit. Asking again for one the
    /// index has may change what its kind allows (a dense graph).
    pub fn add_representation(&mut self, request: Request) -> Result<(), IndexError> {
        let kind = representation::kind(&request.kind).filter(|k| k.build.is_some());
        if kind.is_none() {
            return Err(IndexError::Invalid {
                path: self.dir.clone(),
                message: format!(
                    "no representation of kind '{}' can be added (kinds: {})",
                    request.kind,
                    KINDS
                        .iter()
                        .filter(|k| k.build.is_some())
                        .map(|k| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        self.requested.push(request);
        Ok(())
    }

    /// Builds every derived representation for the new generation; returns their entries.
    fn build_representations(&mut self, docs_dir: &Path) -> Result<Vec<Entry>, IndexError> {
        if self.representations.is_empty() && self.requested.is_empty() {
            return Ok(Vec::new());
        }
        let encoders = self.encoders.clone();
        // Which existing representation each request names (by the model's canonical id).
        let mut builders: Vec<Box<dyn representation::Builder>> = Vec::new();
        let mut existing = std::mem::take(&mut self.representations);
        for request in std::mem::take(&mut self.requested) {
            let id = match &encoders {
                Some(e) => {
                    e.model_ref(&request.kind, &request.model)
                        .map_err(|m| IndexError::Invalid {
                            path: self.dir.clone(),
                            message: format!(
                                "{} representation {}: {m}",
                                request.kind, request.model
                            ),
                        })?
                        .id
                }
                None => request.model.clone(),
            };
            let build = representation::kind(&request.kind)
                .and_then(|k| k.build)
                .expect("checked by add_representation");
            let found = existing
                .iter()
                .position(|e| e.kind == request.kind && e.name == id);
            builders.push(build(found.map(|i| existing.remove(i)), Some(request)));
        }
        for entry in existing {
            let build = representation::kind(&entry.kind)
                .and_then(|k| k.build)
                .ok_or_else(|| IndexError::Invalid {
                    path: self.dir.clone(),
                    message: format!("representation {} cannot be rebuilt", entry.label()),
                })?;
            builders.push(build(Some(entry), None));
        }
        if builders.is_empty() {
            return Ok(Vec::new());
        }
        let docstore = Docstore::open(docs_dir, &self.chunks, None)?;
        // The builders read documents through a docstore: its ids are a second copy.
        let memory_held = self.ids_bytes() + docstore.ids_bytes();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.threads.max(1))
            .build()
            .expect("building a thread pool");
        let deleted = &self.deleted;
        let ctx = CommitContext {
            dir: &self.dir,
            generation: self.generation,
            chunks: &self.chunks,
            docstore: &docstore,
            slots: self.next_docno,
            is_deleted: &|d| deleted.contains(&d),
            documents_changed: self.stats.added > 0 || self.stats.deleted > 0,
            pool: &pool,
            encoders: encoders.as_deref(),
            memory_budget: self.opts.memory_budget,
            memory_held,
        };
        let mut entries = Vec::new();
        for mut b in builders {
            let entry = b.commit(&ctx)?;
            if entries
                .iter()
                .any(|e: &Entry| e.kind == entry.kind && e.name == entry.name)
            {
                return Err(IndexError::Invalid {
                    path: self.dir.clone(),
                    message: format!("representation {} asked for twice", entry.label()),
                });
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Makes everything added and deleted visible, atomically. Returns what was done.
    pub fn commit(mut self) -> Result<IndexStats, IndexError> {
        self.flush_batch()?;
        if let Some(chunk) = self.chunk.take() {
            self.chunks.push(chunk.finish()?);
        }
        let docs_dir = self.dir.join("docs");
        std::fs::create_dir_all(&docs_dir).map_err(IndexError::io(&docs_dir))?;
        let derived = self.build_representations(&docs_dir)?;
        sync_folders(&self.dir, &derived)?;
        let deleted_generation = if self.deleted.is_empty() {
            None
        } else if self.stats.deleted == 0 {
            self.previous.as_ref().and_then(|m| m.deleted_generation)
        } else {
            let list: Vec<DocNo> = self.deleted.iter().copied().collect();
            write_deleted(&deleted_path(&docs_dir, self.generation), &list)?;
            Some(self.generation)
        };
        let mut manifest = Manifest {
            format_version: FORMAT_VERSION,
            ferret_version: env!("CARGO_PKG_VERSION").to_string(),
            generation: self.generation,
            doc_count: self.ids.live_count() as u64,
            slots: self.next_docno as u64,
            chunks: self.chunks.clone(),
            deleted_generation,
            representations: std::iter::once(
                LexicalParams {
                    analyzer: self.opts.analyzer,
                    fields: self.opts.fields,
                }
                .entry(),
            )
            .chain(derived)
            .collect(),
            shard: self.shard.unwrap_or_else(|| {
                self.previous
                    .as_ref()
                    .map_or(Shard { id: 0, count: 1 }, |m| m.shard)
            }),
            files: Default::default(),
            crc32: None,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.threads.max(1))
            .build()
            .expect("building a thread pool");
        manifest.files =
            crate::checksum::record(&self.dir, &manifest, self.previous.as_ref(), &pool)?;
        let next = self.dir.join(MANIFEST_NEXT);
        manifest.write_atomic(&next)?;
        sync_dir(&docs_dir)?;
        self.lexical.commit(&self.generation.to_string())?;
        std::fs::rename(&next, self.dir.join(MANIFEST)).map_err(IndexError::io(&next))?;
        sync_dir(&self.dir)?;
        remove_unreferenced(&docs_dir, &manifest);
        remove_unreferenced_files(&self.dir, &manifest);
        Ok(self.stats)
    }
}

/// fsyncs every folder holding a representation's files, up to the index directory, so that
/// the files (and the folders themselves) are durable before the commit's switch.
fn sync_folders(dir: &Path, entries: &[Entry]) -> Result<(), IndexError> {
    let mut folders = BTreeSet::new();
    for file in entries.iter().flat_map(|e| &e.files) {
        let mut f = dir.join(file);
        while let Some(parent) = f.parent() {
            if !parent.starts_with(dir) || parent == dir {
                break;
            }
            folders.insert(parent.to_path_buf());
            f = parent.to_path_buf();
        }
    }
    for folder in folders.iter().rev() {
        sync_dir(folder)?;
    }
    sync_dir(dir)
}

/// Removes files in derived representations' folders (`<kind>/<name>/`) that the committed
/// manifest does not list (replaced graphs and inverted indexes, files of an overwritten
/// index or of representations built by writers that never committed). Failures are
/// harmless and ignored: the files are only clutter.
fn remove_unreferenced_files(dir: &Path, manifest: &Manifest) {
    let keep: BTreeSet<PathBuf> = manifest
        .representations
        .iter()
        .flat_map(|e| &e.files)
        .map(|f| dir.join(f))
        .collect();
    for kind in KINDS.iter().filter(|k| k.build.is_some()) {
        let Ok(names) = std::fs::read_dir(dir.join(kind.name)) else {
            continue;
        };
        for name in names.flatten() {
            if let Ok(files) = std::fs::read_dir(name.path()) {
                for f in files.flatten() {
                    if !keep.contains(&f.path()) {
                        let _ = std::fs::remove_file(f.path());
                    }
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
