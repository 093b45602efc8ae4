//! `manifest.json`: what a committed index holds. Written atomically (temporary file, fsync,
//! rename); see [`crate::writer`] for how it is committed together with the lexical index.

use std::path::Path;

use ferret_text::AnalyzerKind;
use serde::{Deserialize, Serialize};

use crate::docstore::{write_synced, ChunkInfo};
use crate::lexical::FieldMode;
use crate::IndexError;

/// 2: lexical fields are term lists for the `ferret_terms` tokenizer (1: pre-tokenized strings).
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST: &str = "manifest.json";
/// The manifest of a generation whose lexical commit may have happened but whose
/// `manifest.json` rename did not (see the commit protocol in [`crate::writer`]).
pub const MANIFEST_NEXT: &str = "manifest.next.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    /// ferret version that wrote this generation.
    pub ferret_version: String,
    /// Incremented by every commit.
    pub generation: u64,
    /// Live documents.
    pub doc_count: u64,
    /// Internal numbers assigned so far (live + deleted).
    pub slots: u64,
    pub chunks: Vec<ChunkInfo>,
    /// Generation whose `deleted-<gen>.bin` lists the deleted documents, if any.
    pub deleted_generation: Option<u64>,
    pub representations: Representations,
    /// This index as one shard of many (id, count); a single index is shard 0 of 1.
    pub shard: Shard,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    pub id: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Representations {
    pub lexical: Option<LexicalInfo>,
    /// Dense vectors, one entry per model.
    #[serde(default)]
    pub dense: Vec<DenseInfo>,
}

/// A dense representation: one little-endian f32 file per docstore chunk, rows in internal
/// number order (deleted documents keep their rows).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DenseInfo {
    /// Canonical model id.
    pub model: String,
    pub dim: usize,
    /// sha256 of the weights that made the vectors.
    pub weights_sha256: String,
    /// How the vectors are stored.
    #[serde(default)]
    pub dtype: VectorType,
    /// Prefixes given at indexing time instead of the model's own prompts (the query prefix is
    /// used by every search of these vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_prefix: Option<String>,
    pub files: Vec<DenseFile>,
    /// An HNSW graph over the live documents' vectors, if one was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswInfo>,
}

/// The element type of stored vectors: f32, or f16 at half the size (converted back to f32
/// when read; scores are computed in f32).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorType {
    #[default]
    F32,
    F16,
}

impl VectorType {
    pub fn bytes(self) -> usize {
        match self {
            VectorType::F32 => 4,
            VectorType::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VectorType::F32 => "f32",
            VectorType::F16 => "f16",
        }
    }
}

impl std::str::FromStr for VectorType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(VectorType::F32),
            "f16" => Ok(VectorType::F16),
            _ => Err(format!("unknown vector type '{s}' (known: f32, f16)")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HnswInfo {
    /// Path relative to the index directory.
    pub file: String,
    pub params: crate::hnsw::HnswParams,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DenseFile {
    pub chunk_generation: u64,
    /// Path relative to the index directory.
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LexicalInfo {
    pub analyzer: AnalyzerKind,
    pub fields: FieldMode,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(IndexError::io(path))?;
        let corrupt = |e: serde_json::Error| IndexError::Invalid {
            path: path.to_path_buf(),
            message: format!("corrupt manifest: {e}"),
        };
        // The version first: another version's manifest may not parse as this one.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if version.format_version != FORMAT_VERSION {
            return Err(IndexError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: version.format_version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(&bytes).map_err(corrupt)
    }

    /// Writes `path` atomically: a temporary file is fsynced, then renamed over `path`.
    pub fn write_atomic(&self, path: &Path) -> Result<(), IndexError> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("manifest always serialises");
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, path).map_err(IndexError::io(path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }
}

/// fsyncs a directory so that renames inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(IndexError::io(dir))
}
