//! `manifest.json`: what a committed index holds. Written atomically (temporary file, fsync,
//! rename); see [`crate::writer`] for how it is committed together with the lexical index.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::docstore::{write_synced, ChunkInfo};
use crate::lexical::LexicalParams;
use crate::representation::Entry;
use crate::IndexError;

/// 3: representations are a tagged list of [`Entry`]s (2: fixed lexical and dense fields; 1:
/// lexical fields as pre-tokenized strings).
pub const FORMAT_VERSION: u32 = 3;
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
    /// Every representation, lexical first when there is one (see [`crate::representation`]).
    pub representations: Vec<Entry>,
    /// This index as one shard of many (id, count); a single index is shard 0 of 1.
    pub shard: Shard,
    /// Size and CRC-32 of every file of the generation but tantivy's (see [`crate::checksum`];
    /// empty in manifests written before checksums were recorded).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub files: std::collections::BTreeMap<String, crate::checksum::FileSum>,
    /// CRC-32 of this manifest's own JSON written without this field (set by
    /// [`Manifest::write_atomic`], checked by [`Manifest::read`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    pub id: u32,
    pub count: u32,
}

impl Manifest {
    /// The lexical representation's parameters, if it has one.
    pub fn lexical(&self) -> Option<LexicalParams> {
        self.representations
            .iter()
            .find(|e| e.kind == crate::lexical::KIND.name)
            .and_then(|e| serde_json::from_value(e.params.clone()).ok())
    }

    /// The representations of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.representations.iter().filter(move |e| e.kind == kind)
    }

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
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if let Some(recorded) = manifest.crc32 {
            if unsealed_crc32(&bytes) != Some(recorded) {
                return Err(IndexError::Invalid {
                    path: path.to_path_buf(),
                    message: "corrupt manifest: checksum mismatch (the file changed after its commit); the index is damaged".into(),
                });
            }
        }
        Ok(manifest)
    }

    /// Writes `path` atomically: a temporary file is fsynced, then renamed over `path`.
    pub fn write_atomic(&self, path: &Path) -> Result<(), IndexError> {
        let tmp = path.with_extension("json.tmp");
        let unsealed = Manifest {
            crc32: None,
            ..self.clone()
        };
        let mut bytes = serde_json::to_vec_pretty(&unsealed).expect("manifest always serialises");
        // The checksum covers the bytes written before it (a reparsed manifest need not
        // serialise to the same bytes: float parsing is not exact), so it goes last.
        let crc = crc32fast::hash(&bytes);
        bytes.truncate(bytes.len() - CLOSE.len());
        bytes.extend_from_slice(format!("{SEAL}{crc}{CLOSE}").as_bytes());
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, path).map_err(IndexError::io(path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }
}

/// How a pretty-printed manifest ends, and what precedes its checksum.
const CLOSE: &str = "\n}";
const SEAL: &str = ",\n  \"crc32\": ";

/// The CRC-32 of a sealed manifest's bytes before its checksum field, as written.
fn unsealed_crc32(bytes: &[u8]) -> Option<u32> {
    let at = bytes
        .windows(SEAL.len())
        .rposition(|w| w == SEAL.as_bytes())?;
    let mut unsealed = bytes[..at].to_vec();
    unsealed.extend_from_slice(CLOSE.as_bytes());
    Some(crc32fast::hash(&unsealed))
}

/// fsyncs a directory so that renames inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(IndexError::io(dir))
}
