use std::path::Path;

use ferret_text::{Analyzer, AnalyzerKind};
use rayon::prelude::*;
use tantivy::schema::Term;
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{Index, IndexWriter, TantivyDocument};

use super::{FieldMode, LexicalSchema};
use crate::{DocNo, Document, IndexError};

/// Adds and deletes documents in the tantivy index; committed by [`crate::IndexWriter`].
pub struct LexicalWriter {
    schema: LexicalSchema,
    mode: FieldMode,
    analyzer: AnalyzerKind,
    writer: IndexWriter<TantivyDocument>,
    pool: rayon::ThreadPool,
}

/// tantivy refuses less than this per indexing thread.
const MIN_BYTES_PER_THREAD: usize = 15_000_000;

impl LexicalWriter {
    /// Opens (creating when `create`) the tantivy index in `dir`. `memory_budget` bytes are
    /// shared by tantivy's indexing threads; the thread count is lowered to fit it.
    pub fn open(
        dir: &Path,
        create: bool,
        mode: FieldMode,
        analyzer: AnalyzerKind,
        threads: usize,
        memory_budget: usize,
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
        if memory_budget < MIN_BYTES_PER_THREAD {
            return Err(IndexError::Invalid {
                path: dir.to_path_buf(),
                message: format!(
                    "memory budget of {} MB is too small: the lexical indexer needs at least {} MB",
                    memory_budget / 1_000_000,
                    MIN_BYTES_PER_THREAD / 1_000_000
                ),
            });
        }
        let threads = threads.clamp(1, (memory_budget / MIN_BYTES_PER_THREAD).max(1));
        let writer = index.writer_with_num_threads(threads, memory_budget)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("building a thread pool");
        Ok(LexicalWriter {
            schema,
            mode,
            analyzer,
            writer,
            pool,
        })
    }

    /// Analyzes a batch in parallel and adds it.
    pub fn add_batch(&mut self, batch: &[(DocNo, Document)]) -> Result<(), IndexError> {
        let schema = &self.schema;
        let mode = self.mode;
        let kind = self.analyzer;
        let docs: Vec<TantivyDocument> = self.pool.install(|| {
            batch
                .par_iter()
                .map_init(
                    || Analyzer::new(kind),
                    |analyzer, (docno, doc)| to_tantivy(schema, mode, analyzer, *docno, doc),
                )
                .collect()
        });
        for d in docs {
            self.writer.add_document(d)?;
        }
        Ok(())
    }

    pub fn delete(&mut self, external_id: &str) {
        self.writer
            .delete_term(Term::from_field_text(self.schema.id, external_id));
    }

    pub fn delete_all(&mut self) -> Result<(), IndexError> {
        self.writer.delete_all_documents()?;
        Ok(())
    }

    /// Commits with `payload` recorded in tantivy's meta.json, then lets merges finish.
    pub fn commit(mut self, payload: &str) -> Result<(), IndexError> {
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        self.writer.wait_merging_threads()?;
        Ok(())
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
    let texts: Vec<std::borrow::Cow<'_, str>> = match mode {
        FieldMode::Flat => vec![doc.contents().into()],
        FieldMode::Multi => vec![doc.title.as_str().into(), doc.text.as_str().into()],
    };
    for ((field, len_field), text) in schema.text.iter().zip(texts) {
        let mut tokens = Vec::new();
        analyzer.analyze(&text, &mut |t| {
            tokens.push(Token {
                offset_from: t.start,
                offset_to: t.end,
                position: t.position,
                text: t.text.to_string(),
                position_length: 1,
            })
        });
        out.add_u64(*len_field, tokens.len() as u64);
        if !tokens.is_empty() {
            out.add_pre_tokenized_text(
                *field,
                PreTokenizedString {
                    text: String::new(),
                    tokens,
                },
            );
        }
    }
    out
}
