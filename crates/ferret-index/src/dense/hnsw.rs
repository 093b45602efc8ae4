//! Approximate nearest-neighbour search over a dense representation: an HNSW graph built with
//! usearch (inner product, f32), keyed by internal number, saved next to the vectors and
//! memory-mapped for search.

use std::borrow::Cow;
use std::path::Path;

use rayon::prelude::*;
use usearch::{Index as Graph, IndexOptions, MetricKind, ScalarKind};

use crate::{DocNo, IndexError};

/// Graph construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    /// Neighbours per node (M).
    pub connectivity: usize,
    /// Candidate list size while building (efConstruction).
    pub expansion_add: usize,
    /// Default candidate list size while searching (ef); a query can ask for more.
    pub expansion_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 128,
        }
    }
}

fn options(dim: usize, p: &HnswParams) -> IndexOptions {
    IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: ScalarKind::F32,
        connectivity: p.connectivity,
        expansion_add: p.expansion_add,
        expansion_search: p.expansion_search,
        multi: false,
    }
}

fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> IndexError {
    IndexError::Invalid {
        path: path.to_path_buf(),
        message: format!("HNSW {what}: {e}"),
    }
}

/// Memory a graph of `n` vectors takes while it is built: its own f32 copy of the vectors and
/// about two links of 4 bytes per connection at the base layer, plus per-node bookkeeping
/// (measured: 1,685 MB for 1M × 384 at M = 16, the size of the saved graph).
pub fn memory_bytes(n: usize, dim: usize, params: &HnswParams) -> usize {
    n * (dim * 4 + params.connectivity * 2 * 4 + 24)
}

/// Builds a graph over the vectors of `docs` (read through `vector`, which may convert each on
/// the fly: no copy of the whole set is made besides the graph's own) on the current rayon
/// pool and saves it to `path` (fsynced).
pub fn build<'a>(
    dim: usize,
    docs: &[DocNo],
    vector: impl Fn(DocNo) -> Option<Cow<'a, [f32]>> + Sync,
    params: &HnswParams,
    path: &Path,
) -> Result<(), IndexError> {
    let graph = Graph::new(&options(dim, params)).map_err(|e| err(path, "creating", e))?;
    graph
        .reserve_capacity_and_threads(docs.len(), rayon::current_num_threads())
        .map_err(|e| err(path, "reserving", e))?;
    docs.par_iter().try_for_each(|&d| match vector(d) {
        Some(v) => graph.add(d as u64, &v).map_err(|e| err(path, "adding", e)),
        None => Err(err(path, "adding", format!("document {d} has no vector"))),
    })?;
    let tmp = path.with_extension("tmp");
    let saved = graph.save(
        tmp.to_str()
            .ok_or_else(|| err(path, "saving", "non-UTF-8 path"))?,
    );
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(save_error(path, graph.serialized_length(), e));
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(IndexError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(IndexError::io(path))
}

/// usearch reports a failed save without its cause: a full disk is told as one.
fn save_error(path: &Path, needed: usize, e: impl std::fmt::Display) -> IndexError {
    let folder = path.parent().unwrap_or(Path::new("."));
    match fs4::available_space(folder) {
        Ok(free) if free < needed as u64 => IndexError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("No space left on device: the graph takes {needed} bytes, {free} are free"),
            ),
        },
        _ => err(path, "saving", e),
    }
}

/// A saved graph, memory-mapped.
pub struct Hnsw {
    graph: Graph,
}

impl Hnsw {
    pub fn open(dim: usize, params: &HnswParams, path: &Path) -> Result<Self, IndexError> {
        let graph = Graph::new(&options(dim, params)).map_err(|e| err(path, "creating", e))?;
        graph
            .view(
                path.to_str()
                    .ok_or_else(|| err(path, "opening", "non-UTF-8 path"))?,
            )
            .map_err(|e| err(path, "opening", e))?;
        Ok(Hnsw { graph })
    }

    pub fn len(&self) -> usize {
        self.graph.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the graph holds in memory (its mapped file included).
    pub fn memory_usage(&self) -> usize {
        self.graph.memory_usage()
    }

    /// The approximate top `k` by inner product among documents passing `keep`, best first.
    /// `ef` widens the candidate list (at least `k` is used).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: impl Fn(DocNo) -> bool,
    ) -> Result<Vec<(DocNo, f32)>, IndexError> {
        self.graph.change_expansion_search(ef.max(k));
        let m = self
            .graph
            .filtered_search(query, k, |key| keep(key as DocNo))
            .map_err(|e| IndexError::Invalid {
                path: std::path::PathBuf::from("<hnsw>"),
                message: format!("HNSW search: {e}"),
            })?;
        // usearch reports the inner-product *distance* 1 − q·d; scores are q·d.
        Ok(m.keys
            .iter()
            .zip(&m.distances)
            .map(|(k, dist)| (*k as DocNo, 1.0 - dist))
            .collect())
    }
}
