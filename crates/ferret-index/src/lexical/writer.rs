use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use ferret_text::{Analyzer, AnalyzerKind};
use rayon::prelude::*;
use tantivy::schema::Term;
use tantivy::{Index, IndexWriter, TantivyDocument};

use super::{push_term, FieldMode, LexicalSchema, TermListTokenizer, TERMS_TOKENIZER};
use crate::budget::LEXICAL_PER_THREAD;
use crate::{DocNo, Document, IndexError};

/// Adds and deletes documents in the tantivy index; committed by [`crate::IndexWriter`].
///
/// Analysis runs on a worker thread (fanning out over a pool of `threads`) while the caller
/// goes on reading the corpus; tantivy's own indexing threads build the postings. Batches
/// travel through a channel of two slots, so at most a few batches are in memory.
pub struct LexicalWriter {
    sender: Option<SyncSender<Op>>,
    worker: Option<JoinHandle<Result<IndexWriter<TantivyDocument>, IndexError>>>,
    dir: std::path::PathBuf,
}

enum Op {
    Add(Vec<(DocNo, Document)>),
    Delete(String),
}

impl LexicalWriter {
    /// Opens (creating when `create`) the tantivy index in `dir`. `heap` bytes are shared by
    /// tantivy's indexing threads; the thread count is lowered to fit it. With
    /// `delete_all`, every committed document is deleted first (a rebuild).
    pub fn open(
        dir: &Path,
        create: bool,
        mode: FieldMode,
        analyzer: AnalyzerKind,
        threads: usize,
        heap: usize,
        delete_all: bool,
    ) -> Result<Self, IndexError> {
        let (index, schema) = if create {
            std::fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
            let schema = LexicalSchema::build(mode);
            (Index::create_in_dir(dir, schema.schema.clone())?, schema)
        } else {
            let index = Index::open_in_dir(dir)?;
            let schema = LexicalSchema::from_schema(index.schema(), mode).map_err(|message| {
                IndexError::Invalid {
                    path: dir.to_path_buf(),
                    message,
                }
            })?;
            (index, schema)
        };
        if heap < LEXICAL_PER_THREAD {
            return Err(IndexError::Invalid {
                path: dir.to_path_buf(),
                message: format!(
                    "{} MB for the lexical indexer is too little: it needs at least {} MB",
                    heap / 1_000_000,
                    LEXICAL_PER_THREAD / 1_000_000
                ),
            });
        }
        index
            .tokenizers()
            .register(TERMS_TOKENIZER, TermListTokenizer::default());
        let threads = threads.clamp(1, (heap / LEXICAL_PER_THREAD).max(1));
        let writer: IndexWriter<TantivyDocument> = index.writer_with_num_threads(threads, heap)?;
        // A writer killed before its commit leaves files tantivy registered but never
        // committed; a `.del` file among them is named by the opstamp this writer will reach
        // again, and creating it would fail ("file already exists"). tantivy removes such
        // files only when asked.
        writer.garbage_collect_files().wait()?;
        if delete_all {
            writer.delete_all_documents()?;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("building a thread pool");
        let (sender, receiver) = sync_channel::<Op>(2);
        // One analyzer per thread for the whole run, so their stem caches stay warm.
        let mut analyzers: Vec<Analyzer> = (0..threads).map(|_| Analyzer::new(analyzer)).collect();
        let worker = std::thread::Builder::new()
            .name("ferret-analyze".into())
            .spawn(move || {
                for op in receiver {
                    match op {
                        Op::Add(batch) => {
                            let per_thread = batch.len().div_ceil(analyzers.len()).max(1);
                            let docs: Vec<Vec<TantivyDocument>> = pool.install(|| {
                                batch
                                    .par_chunks(per_thread)
                                    .zip(analyzers.par_iter_mut())
                                    .map(|(docs, a)| {
                                        docs.iter()
                                            .map(|(docno, doc)| {
                                                to_tantivy(&schema, mode, a, *docno, doc)
                                            })
                                            .collect()
                                    })
                                    .collect()
                            });
                            for d in docs.into_iter().flatten() {
                                writer.add_document(d)?;
                            }
                        }
                        Op::Delete(id) => {
                            writer.delete_term(Term::from_field_text(schema.id, &id));
                        }
                    }
                }
                Ok(writer)
            })
            .map_err(IndexError::io(dir))?;
        Ok(LexicalWriter {
            sender: Some(sender),
            worker: Some(worker),
            dir: dir.to_path_buf(),
        })
    }

    fn send(&mut self, op: Op) -> Result<(), IndexError> {
        let sent = self.sender.as_ref().map(|s| s.send(op).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The worker stopped: it failed, and its error says why.
        Err(self.finish().err().unwrap_or_else(|| IndexError::Invalid {
            path: self.dir.clone(),
            message: "the analysis worker stopped".into(),
        }))
    }

    /// Queues a batch for analysis and indexing.
    pub fn add_batch(&mut self, batch: Vec<(DocNo, Document)>) -> Result<(), IndexError> {
        self.send(Op::Add(batch))
    }

    /// Queues the deletion of a document; it applies to everything queued before it.
    pub fn delete(&mut self, external_id: &str) -> Result<(), IndexError> {
        self.send(Op::Delete(external_id.to_string()))
    }

    /// Waits for the worker to index everything queued and returns tantivy's writer.
    fn finish(&mut self) -> Result<IndexWriter<TantivyDocument>, IndexError> {
        drop(self.sender.take());
        match self.worker.take() {
            Some(w) => w.join().unwrap_or_else(|_| {
                Err(IndexError::Invalid {
                    path: self.dir.clone(),
                    message: "the analysis worker panicked".into(),
                })
            }),
            None => Err(IndexError::Invalid {
                path: self.dir.clone(),
                message: "the lexical writer was already finished".into(),
            }),
        }
    }

    /// Commits with `payload` recorded in tantivy's meta.json, then lets merges finish.
    pub fn commit(mut self, payload: &str) -> Result<(), IndexError> {
        let mut writer = self.finish()?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        writer.wait_merging_threads()?;
        Ok(())
    }
}

impl Drop for LexicalWriter {
    /// A writer given up without a commit waits for its worker, so tantivy's writer (and the
    /// directory lock it holds) is gone when this returns: the next writer must not find the
    /// index locked by an abandoned one.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(w) = self.worker.take() {
            // Its result is the abandoned writer or its error; neither matters any more.
            let _ = w.join();
        }
    }
}

fn to_tantivy(
    schema: &LexicalSchema,
    mode: FieldMode,
    analyzer: &mut Analyzer,
    docno: DocNo,
    doc: &Document,
) -> TantivyDocument {
    let mut out = TantivyDocument::new();
    out.add_text(schema.id, &doc.id);
    out.add_u64(schema.ord, docno as u64);
    // Flat mode indexes title and text as one field. Analysing them one after the other gives
    // the terms of Pyserini's "title\ntext" contents: a line break always ends a word.
    let texts: &[&[&str]] = match mode {
        FieldMode::Flat => &[&[&doc.title, &doc.text]],
        FieldMode::Multi => &[&[&doc.title], &[&doc.text]],
    };
    for ((field, len_field), parts) in schema.text.iter().zip(texts) {
        let mut terms = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut count = 0u64;
        for part in *parts {
            analyzer.analyze(part, &mut |t| {
                push_term(&mut terms, t.text);
                count += 1;
            });
        }
        out.add_u64(*len_field, count);
        if count > 0 {
            out.add_text(*field, terms);
        }
    }
    out
}
