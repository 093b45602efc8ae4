//! ferret-index: the index directory.
//!
//! ```text
//! <index>/
//!   manifest.json          the commit point: generation, documents, representations
//!   docs/                  the docstore: chunk-<gen>.jsonl (+ .idx offsets, .ids), deleted-<gen>.bin
//!   lexical/               tantivy index (postings, field norms, exact lengths, internal numbers)
//!   dense/<model>/         vectors-<chunk gen>.f32|f16 (one row per document), hnsw-<gen>.usearch
//!   sparse/<model>/        forward-<chunk gen>.bin (term weights per document), impacts-<gen>.bin
//!   image/<model>/         vectors-<chunk gen>.f32 (image embeddings), thumbs-<chunk gen>.bin
//!   tokens/<model>/        chunk-<chunk gen>.bin (token vectors: f16 or residual-compressed),
//!                          centroids-<gen>.f32, ivf-<gen>.bin (centroid → tokens, documents)
//! ```
//!
//! The manifest records every file's size and CRC-32 (tantivy's files carry their own), checked
//! at open ([`checksum`]).
//!
//! Each representation is a module on one extension point ([`representation`]).
//!
//! Every document gets a dense internal number (u32) in the order it was added; numbers are
//! never reused, so every representation can be keyed by them. Writes are atomic: see
//! [`writer`] for the commit protocol.

pub mod budget;
pub mod checksum;
pub mod corpus;
pub mod dense;
pub mod docstore;
pub mod document;
pub mod error;
pub mod ids;
pub mod image;
pub mod lexical;
pub mod manifest;
pub mod reader;
pub mod representation;
pub mod sparse;
pub mod tokens;
pub mod writer;

pub use dense::{DenseOptions, VectorType};
pub use document::{DocImage, Document};
pub use error::IndexError;
pub use lexical::{FieldMode, LexicalReader, LexicalStatistics};
pub use manifest::Manifest;
pub use reader::Index;
pub use representation::{
    DenseEncoder, DocumentEncoder, EncoderSource, ImageEncoder, ModelRef, SparseEncoder,
    TokenEncoder, TokenRows,
};
pub use tokens::{TokenOptions, TokenReader};
pub use writer::{ImageChecks, IndexOptions, IndexStats, IndexWriter, Progress};

/// Internal document number, dense from 0, never reused inside one index.
pub type DocNo = u32;
