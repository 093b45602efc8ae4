//! The extension point every representation plugs into.
//!
//! A representation is one module (folder) of this crate that registers a [`Kind`] in
//! [`KINDS`]: how to open it for reading and how to build it at a commit. The manifest lists
//! representations as [`Entry`]s — kind, name, model, the kind's own parameters, its files — so
//! a new kind needs no change to the manifest, the reader or the writer.
//!
//! The lexical representation (tantivy) is built document by document alongside the docstore
//! and its commit is the index's atomic switch (see [`crate::writer`]); every other
//! representation is derived from the docstore at commit time by its [`Builder`]: it encodes
//! the chunks it has no files for yet (through an encoder the layer above hands in, see
//! [`EncoderSource`]: this crate never loads a model) and rebuilds whatever spans the whole
//! collection (a graph, an inverted index) when documents were added or deleted.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::docstore::{ChunkInfo, Docstore};
use crate::{DocNo, IndexError};

/// One representation in `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Which module reads it: `lexical`, `dense`, `sparse`, …
    pub kind: String,
    /// Tells representations of one kind apart: the canonical model id; empty for lexical.
    #[serde(default)]
    pub name: String,
    /// The model that made it, when a model did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    /// The kind's own parameters; only its module reads them.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Every file it holds, relative to the index directory (fsynced before the commit;
    /// files of its folders that no entry lists are removed after it).
    #[serde(default)]
    pub files: Vec<String>,
}

impl Entry {
    /// `kind/name`, or the kind alone when the name is empty: how messages name it.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.kind.clone()
        } else {
            format!("{}/{}", self.kind, self.name)
        }
    }

    /// The model that made it (an error for a model-made kind whose entry names none).
    pub fn model_ref(&self, dir: &Path) -> Result<ModelRef, IndexError> {
        self.model.clone().ok_or_else(|| IndexError::Invalid {
            path: dir.join(crate::manifest::MANIFEST),
            message: format!("representation {} names no model", self.label()),
        })
    }

    /// The parameters as the kind's own type.
    pub fn params<T: serde::de::DeserializeOwned>(&self, dir: &Path) -> Result<T, IndexError> {
        serde_json::from_value(self.params.clone()).map_err(|e| IndexError::Invalid {
            path: dir.join(crate::manifest::MANIFEST),
            message: format!("representation {}: bad parameters: {e}", self.label()),
        })
    }
}

/// A model as recorded in the manifest: its canonical id and the sha256 of its weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelRef {
    pub id: String,
    pub weights_sha256: String,
}

/// Turns documents into dense vectors (one per text, all of one dimension).
pub trait DenseEncoder: Send + Sync {
    fn dim(&self) -> usize;
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

/// Turns documents into sparse vectors: (term, weight) pairs with positive weights.
pub trait SparseEncoder: Send + Sync {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<(String, f32)>>, String>;
}

/// Turns decoded images into vectors (one per image, all of one dimension).
pub trait ImageEncoder: Send + Sync {
    fn dim(&self) -> usize;
    fn encode(&self, images: &[&ferret_image::RgbImage]) -> Result<Vec<Vec<f32>>, String>;
}

/// One text's token vectors: `ids[i]` is the vocabulary id of row `i` of `vectors`
/// (`ids.len()` unit vectors of one dimension).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenRows {
    pub ids: Vec<u32>,
    pub vectors: Vec<f32>,
}

/// Turns documents into token vectors (late interaction).
pub trait TokenEncoder: Send + Sync {
    fn dim(&self) -> usize;
    fn encode(&self, texts: &[&str]) -> Result<Vec<TokenRows>, String>;
}

/// A document encoder of the shape a kind needs.
#[derive(Clone)]
pub enum DocumentEncoder {
    Dense(Arc<dyn DenseEncoder>),
    Sparse(Arc<dyn SparseEncoder>),
    Image(Arc<dyn ImageEncoder>),
    Tokens(Arc<dyn TokenEncoder>),
}

/// Finds and loads document encoders; given to the writer by the layer that knows models.
pub trait EncoderSource: Send + Sync {
    /// The canonical id and weights hash `model` (an id, alias or folder) resolves to, without
    /// loading it: tells whether a request names a representation the index already has.
    fn model_ref(&self, kind: &str, model: &str) -> Result<ModelRef, String>;

    /// The document encoder for a representation of `kind` made with `model` (an id, alias or
    /// folder as the user gave it, or the canonical id of an existing representation), with
    /// the representation's parameters (a document prefix, a length limit). Returns the
    /// model's canonical id and weights hash with it.
    fn document_encoder(
        &self,
        kind: &str,
        model: &str,
        params: &serde_json::Value,
    ) -> Result<(ModelRef, DocumentEncoder), String>;
}

/// What a builder is given at commit.
pub struct CommitContext<'a> {
    pub dir: &'a Path,
    /// The generation being committed (names files that must not collide with the committed
    /// generation's).
    pub generation: u64,
    /// Every docstore chunk of the new generation.
    pub chunks: &'a [ChunkInfo],
    pub docstore: &'a Docstore,
    /// Internal numbers assigned so far (live and deleted).
    pub slots: DocNo,
    pub is_deleted: &'a (dyn Fn(DocNo) -> bool + Sync),
    /// Whether this commit adds or deletes documents (collection-wide structures are rebuilt).
    pub documents_changed: bool,
    pub pool: &'a rayon::ThreadPool,
    pub encoders: Option<&'a dyn EncoderSource>,
    /// The writer's memory budget ([`crate::budget`]) and what the writer holds already.
    pub memory_budget: usize,
    pub memory_held: usize,
}

impl CommitContext<'_> {
    /// Checks that `bytes` more for `what` fit in the writer's memory budget.
    pub fn check_memory(&self, what: &str, bytes: usize) -> Result<(), IndexError> {
        crate::budget::check(
            self.memory_budget,
            &[("document ids", self.memory_held), (what, bytes)],
        )
    }

    /// The encoder for `entry` (or, for a new representation, `model` as requested), checked
    /// against the weights the representation was made with.
    pub fn encoder(
        &self,
        kind: &str,
        model: &str,
        params: &serde_json::Value,
        made_with: Option<&ModelRef>,
    ) -> Result<(ModelRef, DocumentEncoder), IndexError> {
        let invalid = |message: String| IndexError::Invalid {
            path: self.dir.to_path_buf(),
            message,
        };
        let source = self.encoders.ok_or_else(|| {
            invalid(format!(
                "the {kind} representation made with {model} needs its model to encode documents, and this writer was given no models"
            ))
        })?;
        let (found, encoder) = source
            .document_encoder(kind, model, params)
            .map_err(|e| invalid(format!("{kind} representation {model}: {e}")))?;
        if let Some(made_with) = made_with {
            if found.weights_sha256 != made_with.weights_sha256 {
                return Err(invalid(format!(
                    "{} resolves to weights {} but the index's {kind} representation was made with {}",
                    made_with.id, found.weights_sha256, made_with.weights_sha256
                )));
            }
        }
        Ok((found, encoder))
    }
}

/// Builds one representation's files for a commit and returns its new manifest entry.
pub trait Builder {
    fn commit(&mut self, ctx: &CommitContext<'_>) -> Result<Entry, IndexError>;
}

/// A representation asked for by a writer: made with `model`, with the kind's parameters.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: String,
    pub model: String,
    pub params: serde_json::Value,
}

impl Request {
    /// A request for a representation of `kind` made with `model`, with the kind's options.
    pub fn new(kind: &str, model: &str, options: &impl Serialize) -> Self {
        Request {
            kind: kind.to_string(),
            model: model.to_string(),
            params: serde_json::to_value(options).expect("representation options serialise"),
        }
    }

    /// The parameters as the kind's options type.
    pub fn options<T: serde::de::DeserializeOwned>(&self, dir: &Path) -> Result<T, IndexError> {
        serde_json::from_value(self.params.clone()).map_err(|e| IndexError::Invalid {
            path: dir.to_path_buf(),
            message: format!("{} options: {e}", self.kind),
        })
    }
}

/// A representation opened for reading.
pub trait Reader: Any + Send + Sync {
    fn entry(&self) -> &Entry;
    fn as_any(&self) -> &dyn Any;
}

/// A kind's reader with its manifest entry: what a kind's `open` returns.
pub struct Opened<T> {
    pub entry: Entry,
    pub reader: T,
}

impl<T: Send + Sync + 'static> Reader for Opened<T> {
    fn entry(&self) -> &Entry {
        &self.entry
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What opening a representation needs.
pub struct OpenContext<'a> {
    pub dir: &'a Path,
    pub chunks: &'a [ChunkInfo],
    pub slots: usize,
}

type Open = fn(&OpenContext<'_>, &Entry) -> Result<Box<dyn Reader>, IndexError>;
/// A builder for an existing entry (`None` for a new one) with what a writer asked for (if
/// anything) merged in.
type Build = fn(Option<Entry>, Option<Request>) -> Box<dyn Builder>;

/// One kind of representation: its name, reader and (for derived kinds) builder.
pub struct Kind {
    pub name: &'static str,
    /// The `ferret index` flag that adds one, for messages.
    pub how_to_add: &'static str,
    pub open: Open,
    pub build: Option<Build>,
}

/// Every kind this ferret knows. Adding a representation: a module and one line here.
pub const KINDS: &[Kind] = &[
    crate::lexical::KIND,
    crate::dense::KIND,
    crate::sparse::KIND,
    crate::image::KIND,
    crate::tokens::KIND,
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// Refuses an index that holds a representation this ferret does not know (written by a newer
/// one): reading it would be incomplete and writing it would drop that representation.
pub(crate) fn check_known(dir: &Path, entries: &[Entry]) -> Result<(), IndexError> {
    match entries.iter().find(|e| kind(&e.kind).is_none()) {
        None => Ok(()),
        Some(e) => Err(IndexError::Invalid {
            path: dir.join(crate::manifest::MANIFEST),
            message: format!(
                "the index holds a representation of kind '{}' ({}) that this ferret ({}) does not know (it knows: {}); it was written by a newer ferret — use that one, this one will neither read nor change the index",
                e.kind,
                e.label(),
                env!("CARGO_PKG_VERSION"),
                KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// Folder name of a model's files inside its kind's folder (`dense/<slug>/`).
pub fn model_slug(model: &str) -> String {
    model.replace('/', "--")
}

/// Calls `f` with the texts ([`crate::dense::document_text`]) of a chunk's documents, in
/// batches, in internal-number order. Deleted documents are included, so that per-chunk files
/// keep one row per internal number.
pub(crate) fn for_each_text_batch(
    docstore: &Docstore,
    chunk: &ChunkInfo,
    mut f: impl FnMut(&[&str]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    const BATCH: u32 = 256;
    let end = chunk.first + chunk.count;
    let mut d = chunk.first;
    while d < end {
        let upto = (d + BATCH).min(end);
        let texts = (d..upto)
            .map(|i| docstore.get(i).map(|doc| crate::dense::document_text(&doc)))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        f(&refs)?;
        d = upto;
    }
    Ok(())
}

/// An encoder error as an index error naming `path`.
pub(crate) fn encode_error(path: &Path) -> impl Fn(String) -> IndexError + '_ {
    move |message| IndexError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}
