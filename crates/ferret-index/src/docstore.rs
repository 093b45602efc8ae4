//! The docstore: documents by internal number.
//!
//! Each batch of added documents is one immutable *chunk* named by the generation that wrote
//! it: `chunk-<gen>.jsonl` (one JSON document per line), `chunk-<gen>.idx` (little-endian u64
//! byte offsets, one per document plus the end) and `chunk-<gen>.ids` (the external ids, one
//! per line, read at open so hits can be named without touching the documents). Deletions are
//! a sorted list of internal numbers, `deleted-<gen>.bin` (little-endian u32), rewritten by the
//! generation that changes it. The manifest says which files are current.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::IdTable;
use crate::{DocNo, Document, IndexError};

/// A chunk as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkInfo {
    pub generation: u64,
    /// Internal number of the chunk's first document.
    pub first: DocNo,
    pub count: u32,
}

/// A docstore chunk's file (`ids`, `idx` or `jsonl`) of the commit `generation`.
pub fn chunk_path(docs_dir: &Path, generation: u64, ext: &str) -> PathBuf {
    docs_dir.join(format!("chunk-{generation:06}.{ext}"))
}

/// The deleted list written by the commit `generation`.
pub fn deleted_path(docs_dir: &Path, generation: u64) -> PathBuf {
    docs_dir.join(format!("deleted-{generation:06}.bin"))
}

/// Writes one chunk, streaming.
pub struct ChunkWriter {
    info: ChunkInfo,
    data: BufWriter<File>,
    ids: BufWriter<File>,
    /// Record offsets, written as they come (not kept: 8 bytes a document).
    offsets: BufWriter<File>,
    end: u64,
    paths: [PathBuf; 3],
}

impl ChunkWriter {
    pub fn create(docs_dir: &Path, generation: u64, first: DocNo) -> Result<Self, IndexError> {
        std::fs::create_dir_all(docs_dir).map_err(IndexError::io(docs_dir))?;
        let paths = [
            chunk_path(docs_dir, generation, "jsonl"),
            chunk_path(docs_dir, generation, "ids"),
            chunk_path(docs_dir, generation, "idx"),
        ];
        let open = |p: &PathBuf| {
            File::create(p)
                .map(BufWriter::new)
                .map_err(IndexError::io(p))
        };
        let mut offsets = open(&paths[2])?;
        offsets
            .write_all(&0u64.to_le_bytes())
            .map_err(IndexError::io(&paths[2]))?;
        Ok(ChunkWriter {
            info: ChunkInfo {
                generation,
                first,
                count: 0,
            },
            data: open(&paths[0])?,
            ids: open(&paths[1])?,
            offsets,
            end: 0,
            paths,
        })
    }

    /// Appends a document; returns its internal number.
    pub fn add(&mut self, doc: &Document) -> Result<DocNo, IndexError> {
        let mut line = serde_json::to_vec(doc).expect("documents always serialise");
        line.push(b'\n');
        self.data
            .write_all(&line)
            .map_err(IndexError::io(&self.paths[0]))?;
        writeln!(self.ids, "{}", doc.id).map_err(IndexError::io(&self.paths[1]))?;
        self.end += line.len() as u64;
        self.offsets
            .write_all(&self.end.to_le_bytes())
            .map_err(IndexError::io(&self.paths[2]))?;
        let docno = self.info.first + self.info.count;
        self.info.count += 1;
        Ok(docno)
    }

    /// Flushes and fsyncs the chunk's files.
    pub fn finish(self) -> Result<ChunkInfo, IndexError> {
        let [data, ids, offsets] = &self.paths;
        sync_buffered(self.data, data)?;
        sync_buffered(self.ids, ids)?;
        sync_buffered(self.offsets, offsets)?;
        Ok(self.info)
    }
}

/// Creates a file to be written through a buffer (and its folder when needed); finished with
/// [`sync_buffered`].
pub(crate) fn create_buffered(path: &Path) -> Result<BufWriter<File>, IndexError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(IndexError::io(parent))?;
    }
    File::create(path)
        .map(BufWriter::new)
        .map_err(IndexError::io(path))
}

/// Flushes and fsyncs a file written through a buffer.
pub(crate) fn sync_buffered(w: BufWriter<File>, path: &Path) -> Result<(), IndexError> {
    let f = w.into_inner().map_err(|e| IndexError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(IndexError::io(path))
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let mut f = File::create(path).map_err(IndexError::io(path))?;
    f.write_all(bytes).map_err(IndexError::io(path))?;
    f.sync_all().map_err(IndexError::io(path))
}

/// [`write_synced`], creating the file's folder first when needed (a representation's folder
/// is fsynced by the writer before the commit).
pub(crate) fn write_synced_creating(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(IndexError::io(parent))?;
    }
    write_synced(path, bytes)
}

pub(crate) fn write_deleted(path: &Path, deleted: &[DocNo]) -> Result<(), IndexError> {
    let bytes: Vec<u8> = deleted.iter().flat_map(|d| d.to_le_bytes()).collect();
    write_synced(path, &bytes)
}

struct ChunkReader {
    first: DocNo,
    data: File,
    data_path: PathBuf,
    offsets: Vec<u64>,
}

/// Read access to the committed documents.
pub struct Docstore {
    chunks: Vec<ChunkReader>,
    ids: IdTable,
    deleted: Vec<bool>,
    num_deleted: usize,
}

impl Docstore {
    pub(crate) fn open(
        docs_dir: &Path,
        chunks: &[ChunkInfo],
        deleted_generation: Option<u64>,
    ) -> Result<Self, IndexError> {
        let mut readers = Vec::with_capacity(chunks.len());
        let mut id_lines = Vec::with_capacity(chunks.len());
        let mut slots = 0usize;
        for c in chunks {
            let corrupt = |p: &Path, what: &str| IndexError::Invalid {
                path: p.to_path_buf(),
                message: format!("truncated or corrupt docstore chunk: {what}"),
            };
            let idx_path = chunk_path(docs_dir, c.generation, "idx");
            let raw = std::fs::read(&idx_path).map_err(IndexError::io(&idx_path))?;
            if raw.len() != (c.count as usize + 1) * 8 {
                return Err(corrupt(
                    &idx_path,
                    &format!("{} offsets for {} documents", raw.len() / 8, c.count),
                ));
            }
            let offsets: Vec<u64> = raw
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            // Records lie end to end from the file's start: `get` reads offsets[i]..offsets[i+1].
            if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
                return Err(corrupt(&idx_path, "record offsets out of order"));
            }
            let data_path = chunk_path(docs_dir, c.generation, "jsonl");
            let data = File::open(&data_path).map_err(IndexError::io(&data_path))?;
            let len = data.metadata().map_err(IndexError::io(&data_path))?.len();
            if len != *offsets.last().expect("count + 1 offsets") {
                return Err(corrupt(
                    &data_path,
                    &format!("{len} bytes, expected {}", offsets.last().unwrap()),
                ));
            }
            let ids_path = chunk_path(docs_dir, c.generation, "ids");
            let text = std::fs::read_to_string(&ids_path).map_err(IndexError::io(&ids_path))?;
            if text.lines().count() != c.count as usize || slots != c.first as usize {
                return Err(corrupt(&ids_path, "id count does not match the manifest"));
            }
            slots += c.count as usize;
            id_lines.push(text);
            readers.push(ChunkReader {
                first: c.first,
                data,
                data_path,
                offsets,
            });
        }
        let mut deleted = vec![false; slots];
        let mut num_deleted = 0;
        if let Some(g) = deleted_generation {
            let path = deleted_path(docs_dir, g);
            let raw = std::fs::read(&path).map_err(IndexError::io(&path))?;
            for b in raw.chunks_exact(4) {
                let d = u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
                if d >= deleted.len() {
                    return Err(IndexError::Invalid {
                        path,
                        message: format!("deleted document {d} does not exist"),
                    });
                }
                if !deleted[d] {
                    deleted[d] = true;
                    num_deleted += 1;
                }
            }
        }
        let id_bytes = id_lines.iter().map(String::len).sum();
        let ids = IdTable::read(
            id_lines.iter().flat_map(|text| text.lines()),
            deleted.clone(),
            id_bytes,
        );
        Ok(Docstore {
            chunks: readers,
            ids,
            deleted,
            num_deleted,
        })
    }

    /// Number of internal numbers ever assigned (live and deleted).
    pub fn num_slots(&self) -> usize {
        self.ids.len()
    }

    pub fn num_live(&self) -> usize {
        self.ids.len() - self.num_deleted
    }

    pub fn is_deleted(&self, d: DocNo) -> bool {
        self.deleted.get(d as usize).copied().unwrap_or(true)
    }

    /// External id of an internal number.
    pub fn external_id(&self, d: DocNo) -> &str {
        self.ids.get(d)
    }

    /// Memory held for the ids.
    pub fn ids_bytes(&self) -> usize {
        self.ids.heap_bytes()
    }

    /// Internal number of a live document's external id.
    pub fn find(&self, id: &str) -> Option<DocNo> {
        self.ids.find(id)
    }

    /// Internal numbers of deleted documents, in order.
    pub fn deleted_list(&self) -> Vec<DocNo> {
        (0..self.deleted.len() as DocNo)
            .filter(|&d| self.deleted[d as usize])
            .collect()
    }

    /// The ids of every internal number, for a writer that goes on from this docstore.
    pub(crate) fn into_ids(self) -> IdTable {
        self.ids
    }

    /// Reads a document.
    pub fn get(&self, d: DocNo) -> Result<Document, IndexError> {
        let chunk = self
            .chunks
            .iter()
            .rev()
            .find(|c| c.first <= d)
            .filter(|c| ((d - c.first) as usize) < c.offsets.len() - 1)
            .ok_or_else(|| IndexError::UnknownDocument(format!("#{d}")))?;
        let i = (d - chunk.first) as usize;
        let (start, end) = (chunk.offsets[i], chunk.offsets[i + 1]);
        let mut buf = vec![0u8; (end - start) as usize];
        chunk
            .data
            .read_exact_at(&mut buf, start)
            .map_err(IndexError::io(&chunk.data_path))?;
        serde_json::from_slice(&buf).map_err(|e| IndexError::Invalid {
            path: chunk.data_path.clone(),
            message: format!("corrupt document record #{d}: {e}"),
        })
    }
}
