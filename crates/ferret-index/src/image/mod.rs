//! The image representation: one embedding per document image (CLIP's image tower, or any
//! [`ImageEncoder`](crate::representation::ImageEncoder)), L2-normalised, stored like dense
//! vectors — one file per docstore chunk (`image/<model>/vectors-<chunk gen>.f32`) — plus a
//! thumbnail per image for result lists (`image/<model>/thumbs-<chunk gen>.bin`). Documents
//! without an image keep a zero row and are never returned.

mod builder;
mod folder;

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dense::{ChunkFile, DenseParams, DenseReader, VectorType};
use crate::docstore::ChunkInfo;
use crate::representation::{Entry, Kind, ModelRef, OpenContext, Opened, Reader};
use crate::{DocNo, IndexError};

pub use builder::ImageOptions;
pub(crate) use folder::list_files;

pub const KIND: Kind = Kind {
    name: "image",
    how_to_add: "add one with `ferret index --index DIR --clip MODEL` (documents need images: an `image` field in the corpus, or `ferret index --images FOLDER`)",
    open,
    build: Some(builder::build),
};

/// The image representation's parameters in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageParams {
    pub dim: usize,
    /// Longest side of the thumbnails, in pixels.
    pub thumbnail_edge: u32,
    /// Largest image decoded (width × height).
    pub max_pixels: u64,
    /// The embedding file of each docstore chunk (rows in internal-number order).
    pub vectors: Vec<ChunkFile>,
    /// The thumbnail file of each docstore chunk.
    pub thumbnails: Vec<ChunkFile>,
    /// Documents that have no image.
    #[serde(default)]
    pub without_image: Vec<DocNo>,
}

fn open(ctx: &OpenContext<'_>, entry: &Entry) -> Result<Box<dyn Reader>, IndexError> {
    let params: ImageParams = entry.params(ctx.dir)?;
    let model = entry.model_ref(ctx.dir)?;
    Ok(Box::new(Opened {
        entry: entry.clone(),
        reader: ImageReader::open(ctx.dir, model, params, ctx.chunks)?,
    }))
}

/// Read access to one model's image embeddings and the thumbnails.
pub struct ImageReader {
    vectors: DenseReader,
    params: ImageParams,
    without_image: HashSet<DocNo>,
    /// (first internal number, documents, mapped thumbnail file) per chunk, in order.
    thumbnails: Vec<(DocNo, usize, memmap2::Mmap)>,
}

impl ImageReader {
    fn open(
        dir: &Path,
        model: ModelRef,
        params: ImageParams,
        chunks: &[ChunkInfo],
    ) -> Result<Self, IndexError> {
        let vectors = DenseReader::open(
            dir,
            model,
            DenseParams {
                dim: params.dim,
                dtype: VectorType::F32,
                query_prefix: None,
                document_prefix: None,
                encoder: None,
                document_max_length: None,
                query_max_length: None,
                dims: None,
                int8: false,
                vectors: params.vectors.clone(),
                hnsw: None,
            },
            chunks,
        )?;
        let mut thumbnails = Vec::new();
        for c in chunks {
            let file = params
                .thumbnails
                .iter()
                .find(|f| f.chunk_generation == c.generation)
                .ok_or_else(|| IndexError::Invalid {
                    path: dir.to_path_buf(),
                    message: format!(
                        "image representation has no thumbnails for chunk {}",
                        c.generation
                    ),
                })?;
            let path = dir.join(&file.file);
            let f = std::fs::File::open(&path).map_err(IndexError::io(&path))?;
            // SAFETY: index files are immutable once committed; the map is only read.
            let mmap = unsafe { memmap2::Mmap::map(&f) }.map_err(IndexError::io(&path))?;
            builder::check_thumbnail_file(&mmap, c.count as usize)
                .map_err(|message| IndexError::Invalid { path, message })?;
            thumbnails.push((c.first, c.count as usize, mmap));
        }
        Ok(ImageReader {
            vectors,
            without_image: params.without_image.iter().copied().collect(),
            params,
            thumbnails,
        })
    }

    pub fn model(&self) -> &ModelRef {
        self.vectors.model()
    }

    pub fn dim(&self) -> usize {
        self.params.dim
    }

    pub fn has_image(&self, d: DocNo) -> bool {
        !self.without_image.contains(&d)
    }

    /// The stored (unit-length) embedding of document `d`'s image.
    pub fn vector(&self, d: DocNo) -> Option<Vec<f32>> {
        if !self.has_image(d) {
            return None;
        }
        self.vectors.vector(d).map(|v| v.into_owned())
    }

    /// Exact top-k by cosine over live documents that have an image.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        is_deleted: impl Fn(DocNo) -> bool,
    ) -> Vec<(DocNo, f32)> {
        self.vectors.search(query, k, |d| {
            is_deleted(d) || self.without_image.contains(&d)
        })
    }

    /// Document `d`'s thumbnail (JPEG bytes).
    pub fn thumbnail(&self, d: DocNo) -> Option<&[u8]> {
        let (first, count, m) = self
            .thumbnails
            .iter()
            .rev()
            .find(|(first, ..)| *first <= d)?;
        builder::thumbnail_at(m, *count, (d - first) as usize).filter(|t| !t.is_empty())
    }
}
