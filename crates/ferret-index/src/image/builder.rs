//! Building the image representation at commit: for every chunk without embeddings yet, each
//! document's image is decoded once, embedded by the image encoder and shrunk to a thumbnail.

use std::path::Path;

use rayon::prelude::*;

use super::{ImageParams, KIND};
use crate::dense::ChunkFile;
use crate::representation::{
    model_slug, Builder, CommitContext, DocumentEncoder, Entry, ImageEncoder, ModelRef, Request,
};
use crate::IndexError;

/// How a new image representation is made (the `params` of its [`Request`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageOptions {
    pub thumbnail_edge: u32,
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            thumbnail_edge: 192,
            max_pixels: ferret_image::DecodeLimits::default().max_pixels,
        }
    }
}

impl ImageOptions {
    /// The request for an image representation made with `model`.
    pub fn request(&self, model: &str) -> Request {
        Request::new(KIND.name, model, self)
    }
}

struct ImageBuilder {
    existing: Option<Entry>,
    request: Option<Request>,
}

pub(super) fn build(existing: Option<Entry>, request: Option<Request>) -> Box<dyn Builder> {
    Box::new(ImageBuilder { existing, request })
}

fn image_encoder(
    ctx: &CommitContext<'_>,
    model: &str,
    params: &serde_json::Value,
    made_with: Option<&ModelRef>,
) -> Result<(ModelRef, std::sync::Arc<dyn ImageEncoder>), IndexError> {
    match ctx.encoder(KIND.name, model, params, made_with)? {
        (m, DocumentEncoder::Image(e)) => Ok((m, e)),
        (m, _) => Err(IndexError::Invalid {
            path: ctx.dir.to_path_buf(),
            message: format!("{} is not an image encoder (CLIP)", m.id),
        }),
    }
}

impl Builder for ImageBuilder {
    fn commit(&mut self, ctx: &CommitContext<'_>) -> Result<Entry, IndexError> {
        let mut encoder = None;
        let (model, mut params) = match self.existing.take() {
            Some(entry) => (
                entry.model_ref(ctx.dir)?,
                entry.params::<ImageParams>(ctx.dir)?,
            ),
            None => {
                let request = self
                    .request
                    .as_ref()
                    .expect("a new representation is requested");
                let options: ImageOptions = request.options(ctx.dir)?;
                let (model, e) = image_encoder(ctx, &request.model, &request.params, None)?;
                let params = ImageParams {
                    dim: e.dim(),
                    thumbnail_edge: options.thumbnail_edge,
                    max_pixels: options.max_pixels,
                    vectors: Vec::new(),
                    thumbnails: Vec::new(),
                    without_image: Vec::new(),
                };
                encoder = Some(e);
                (model, params)
            }
        };
        let slug = model_slug(&model.id);
        let limits = ferret_image::DecodeLimits {
            max_pixels: params.max_pixels,
        };
        for c in ctx.chunks {
            if params
                .vectors
                .iter()
                .any(|f| f.chunk_generation == c.generation)
            {
                continue;
            }
            let encoder = match &encoder {
                Some(e) => e.clone(),
                None => {
                    let json = serde_json::to_value(&params).expect("serialises");
                    let (_, e) = image_encoder(ctx, &model.id, &json, Some(&model))?;
                    encoder.insert(e).clone()
                }
            };
            if encoder.dim() != params.dim {
                return Err(IndexError::Invalid {
                    path: ctx.dir.to_path_buf(),
                    message: format!(
                        "{} embeds in {} dimensions, the index's image vectors have {}",
                        model.id,
                        encoder.dim(),
                        params.dim
                    ),
                });
            }
            let vectors_file = format!("image/{slug}/vectors-{:06}.f32", c.generation);
            let thumbs_file = format!("image/{slug}/thumbs-{:06}.bin", c.generation);
            let vectors_path = ctx.dir.join(&vectors_file);
            tracing::info!(
                "embedding the images of {} documents with {}",
                c.count,
                model.id
            );
            let mut vectors = Vec::with_capacity(c.count as usize * params.dim * 4);
            let mut thumbs: Vec<Vec<u8>> = Vec::with_capacity(c.count as usize);
            const BATCH: u32 = 64;
            let end = c.first + c.count;
            let mut d = c.first;
            while d < end {
                let upto = (d + BATCH).min(end);
                let docs = (d..upto)
                    .map(|i| ctx.docstore.get(i).map(|doc| (i, doc)))
                    .collect::<Result<Vec<_>, _>>()?;
                // Decoded in parallel; a file that changed since it was added fails the commit.
                let decoded = ctx.pool.install(|| {
                    docs.par_iter()
                        .map(|(_, doc)| match &doc.image {
                            None => Ok(None),
                            Some(img) => ferret_image::decode_file(Path::new(&img.path), limits)
                                .map(|x| Some(x.rgb))
                                .map_err(|e| IndexError::Invalid {
                                    path: ctx.dir.to_path_buf(),
                                    message: format!("document '{}': {e}", doc.id),
                                }),
                        })
                        .collect::<Result<Vec<_>, _>>()
                })?;
                let present: Vec<&ferret_image::RgbImage> = decoded.iter().flatten().collect();
                let embedded = ctx
                    .pool
                    .install(|| encoder.encode(&present))
                    .map_err(crate::representation::encode_error(&vectors_path))?;
                let small: Vec<Vec<u8>> = ctx.pool.install(|| {
                    present
                        .par_iter()
                        .map(|img| ferret_image::thumbnail_jpeg(img, params.thumbnail_edge))
                        .collect()
                });
                let (mut embedded, mut small) = (embedded.into_iter(), small.into_iter());
                for ((docno, _), img) in docs.iter().zip(&decoded) {
                    if img.is_some() {
                        let v = embedded.next().ok_or_else(|| IndexError::Invalid {
                            path: vectors_path.clone(),
                            message: "the image encoder returned fewer vectors than images".into(),
                        })?;
                        vectors.extend(unit(v).iter().flat_map(|x| x.to_le_bytes()));
                        thumbs.push(small.next().expect("one per image"));
                    } else {
                        vectors.extend(std::iter::repeat_n(0u8, params.dim * 4));
                        thumbs.push(Vec::new());
                        params.without_image.push(*docno);
                    }
                }
                d = upto;
            }
            if vectors.len() != c.count as usize * params.dim * 4 {
                return Err(IndexError::Invalid {
                    path: vectors_path,
                    message: format!("the image encoder returned vectors of the wrong size (expected {} dimensions)", params.dim),
                });
            }
            crate::docstore::write_synced_creating(&vectors_path, &vectors)?;
            crate::docstore::write_synced_creating(
                &ctx.dir.join(&thumbs_file),
                &thumbnail_file(&thumbs),
            )?;
            params.vectors.push(ChunkFile {
                chunk_generation: c.generation,
                file: vectors_file,
            });
            params.thumbnails.push(ChunkFile {
                chunk_generation: c.generation,
                file: thumbs_file,
            });
        }
        let files = params
            .vectors
            .iter()
            .chain(&params.thumbnails)
            .map(|f| f.file.clone())
            .collect();
        Ok(Entry {
            kind: KIND.name.to_string(),
            name: model.id.clone(),
            model: Some(model),
            params: serde_json::to_value(&params).expect("image parameters serialise"),
            files,
        })
    }
}

/// Scaled to unit length, so that inner products are cosines (a zero vector stays zero).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// A chunk's thumbnails: `count + 1` little-endian u64 offsets (relative to the end of the
/// table), then the JPEGs back to back; a document without an image has an empty one.
fn thumbnail_file(thumbs: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 * (thumbs.len() + 1) + thumbs.iter().map(Vec::len).sum::<usize>());
    let mut offset = 0u64;
    out.extend(offset.to_le_bytes());
    for t in thumbs {
        offset += t.len() as u64;
        out.extend(offset.to_le_bytes());
    }
    for t in thumbs {
        out.extend_from_slice(t);
    }
    out
}

fn offset(file: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(file[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
}

/// Checks a thumbnail file's table against its size (a truncated or corrupt file is refused
/// at open, not when a page asks for a thumbnail).
pub(super) fn check_thumbnail_file(file: &[u8], count: usize) -> Result<(), String> {
    let table = 8 * (count + 1);
    if file.len() < table {
        return Err(format!(
            "truncated thumbnail file: {} bytes for {count} documents",
            file.len()
        ));
    }
    let mut previous = 0;
    for i in 0..=count {
        let o = offset(file, i);
        if o < previous || (i == 0 && o != 0) {
            return Err(format!("corrupt thumbnail file: offset {i} goes backwards"));
        }
        previous = o;
    }
    if table as u64 + previous != file.len() as u64 {
        return Err(format!(
            "truncated or corrupt thumbnail file: the table says {} bytes, the file has {}",
            table as u64 + previous,
            file.len()
        ));
    }
    Ok(())
}

/// The `i`-th of a checked file's `count` thumbnails.
pub(super) fn thumbnail_at(file: &[u8], count: usize, i: usize) -> Option<&[u8]> {
    if i >= count {
        return None;
    }
    let table = 8 * (count + 1);
    let (a, b) = (offset(file, i) as usize, offset(file, i + 1) as usize);
    file.get(table + a..table + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_files_round_trip_and_refuse_truncation() {
        let thumbs = vec![b"abc".to_vec(), Vec::new(), b"defgh".to_vec()];
        let file = thumbnail_file(&thumbs);
        check_thumbnail_file(&file, 3).unwrap();
        assert_eq!(thumbnail_at(&file, 3, 0), Some(&b"abc"[..]));
        assert_eq!(thumbnail_at(&file, 3, 1), Some(&b""[..]));
        assert_eq!(thumbnail_at(&file, 3, 2), Some(&b"defgh"[..]));
        assert_eq!(thumbnail_at(&file, 3, 3), None);
        assert!(check_thumbnail_file(&file[..file.len() - 1], 3).is_err());
        assert!(check_thumbnail_file(&file, 4).is_err());
    }
}
