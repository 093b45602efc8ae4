//! CLIP (`CLIPModel` in Hugging Face folders): a ViT image tower and a causal text tower, each
//! with a linear projection into one shared space.
//!
//! Both towers are pre-LayerNorm transformers (x + attn(ln1 x), then x + mlp(ln2 x)) run by the
//! same per-thread, one-sequence-at-a-time code as the BERT runtime (`gemm` kernels, the
//! shared attention in `attention.rs`): the vision tower embeds 32×32 (or 14×14, 16×16)
//! patches plus a class token and pools the class token after `post_layernorm`; the text tower
//! uses a causal mask and pools the end-of-text token after `final_layer_norm`. Images are
//! prepared exactly as `CLIPImageProcessor` does with Pillow (shortest-edge bicubic resize,
//! centre crop, rescale, normalise), through `ferret-image`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use ferret_image::{resample::resize_bicubic, DecodeLimits, RgbImage};
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{gelu_erf_all, LayerNorm, Linear};
use crate::fastmath::{self, wide};
use crate::weights::Weights;
use crate::ModelError;

#[derive(Debug, Clone, Deserialize)]
struct TowerConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    // Text tower.
    #[serde(default)]
    max_position_embeddings: usize,
    #[serde(default)]
    vocab_size: usize,
    #[serde(default = "default_eos")]
    eos_token_id: u32,
    // Vision tower.
    #[serde(default)]
    image_size: usize,
    #[serde(default)]
    patch_size: usize,
    #[serde(default = "default_channels")]
    num_channels: usize,
}

fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_eos() -> u32 {
    2
}
fn default_channels() -> usize {
    3
}

#[derive(Debug, Clone, Deserialize)]
struct ClipConfig {
    text_config: TowerConfig,
    vision_config: TowerConfig,
    projection_dim: usize,
}

/// `preprocessor_config.json` (`CLIPImageProcessor`).
#[derive(Debug, Clone, Deserialize)]
struct ProcessorConfig {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Size,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Size,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "default_rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: [f32; 3],
    image_std: [f32; 3],
    #[serde(default = "bicubic")]
    resample: u32,
}

fn yes() -> bool {
    true
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn bicubic() -> u32 {
    3
}

/// A size as the processors write it: `{"shortest_edge": n}`, `{"height": h, "width": w}`,
/// or a bare number (older configs).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Edge { shortest_edge: usize },
    Box { height: usize, width: usize },
    Square(usize),
}

#[derive(Clone, Copy)]
enum Act {
    QuickGelu,
    Gelu,
}

struct Block {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// A stack of pre-LayerNorm blocks.
struct Encoder {
    blocks: Vec<Block>,
    hidden: usize,
    heads: usize,
    act: Act,
    causal: bool,
}

#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    scores: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

impl Encoder {
    fn load(w: &Weights, prefix: &str, c: &TowerConfig, causal: bool) -> Result<Self, ModelError> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let blocks = (0..c.num_hidden_layers)
            .map(|l| {
                let n = |s: &str| format!("{prefix}.encoder.layers.{l}.{s}");
                Ok(Block {
                    ln1: LayerNorm::load(w, &n("layer_norm1"), h, eps)?,
                    q: Linear::load(w, &n("self_attn.q_proj"), h, h)?,
                    k: Linear::load(w, &n("self_attn.k_proj"), h, h)?,
                    v: Linear::load(w, &n("self_attn.v_proj"), h, h)?,
                    out: Linear::load(w, &n("self_attn.out_proj"), h, h)?,
                    ln2: LayerNorm::load(w, &n("layer_norm2"), h, eps)?,
                    fc1: Linear::load(w, &n("mlp.fc1"), i, h)?,
                    fc2: Linear::load(w, &n("mlp.fc2"), h, i)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Encoder {
            blocks,
            hidden: h,
            heads: c.num_attention_heads,
            act: match c.hidden_act.as_str() {
                "quick_gelu" => Act::QuickGelu,
                _ => Act::Gelu,
            },
            causal,
        })
    }

    /// Runs the blocks in place over ws.x: `seqs` sequences of `len` tokens, [seqs·len, hidden].
    /// The linear layers see all the sequences' rows at once (one larger GEMM: images all have
    /// the same length, so a batch costs no padding); attention runs per sequence.
    fn forward(&self, seqs: usize, len: usize, ws: &mut Workspace) {
        let h = self.hidden;
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let rows = seqs * len;
        for b in &self.blocks {
            ws.normed.clone_from(&ws.x);
            b.ln1.apply(&mut ws.normed);
            b.q.forward(&ws.normed, rows, &mut ws.q);
            b.k.forward(&ws.normed, rows, &mut ws.k);
            b.v.forward(&ws.normed, rows, &mut ws.v);
            ws.ctx.clear();
            ws.ctx.resize(rows * h, 0.0);
            for s in 0..seqs {
                let span = s * len * h..(s + 1) * len * h;
                for head in 0..self.heads {
                    crate::attention::attend_head(
                        crate::attention::Head {
                            q: &ws.q[span.clone()],
                            k: &ws.k[span.clone()],
                            v: &ws.v[span.clone()],
                            len,
                            width: h,
                            offset: head * dh,
                            dim: dh,
                            scale,
                        },
                        &mut ws.scores,
                        &mut ws.ctx[span.clone()],
                        |scores| {
                            if self.causal {
                                for (i, row) in scores.chunks_exact_mut(len).enumerate() {
                                    row[i + 1..].fill(f32::NEG_INFINITY);
                                }
                            }
                        },
                    );
                }
            }
            b.out.forward(&ws.ctx, rows, &mut ws.tmp);
            for (x, t) in ws.x.iter_mut().zip(&ws.tmp) {
                *x += t;
            }
            ws.normed.clone_from(&ws.x);
            b.ln2.apply(&mut ws.normed);
            b.fc1.forward(&ws.normed, rows, &mut ws.inter);
            match self.act {
                Act::QuickGelu => quick_gelu_all(&mut ws.inter),
                Act::Gelu => gelu_erf_all(&mut ws.inter),
            }
            b.fc2.forward(&ws.inter, rows, &mut ws.tmp);
            for (x, t) in ws.x.iter_mut().zip(&ws.tmp) {
                *x += t;
            }
        }
    }
}

struct TextTower {
    token: Vec<f32>,
    position: Vec<f32>,
    encoder: Encoder,
    final_norm: LayerNorm,
    projection: Linear,
    eos: u32,
}

struct VisionTower {
    /// The patch convolution as a [hidden, channels·patch·patch] matrix (no bias).
    patch: Linear,
    class: Vec<f32>,
    position: Vec<f32>,
    pre_norm: LayerNorm,
    encoder: Encoder,
    post_norm: LayerNorm,
    projection: Linear,
    image_size: usize,
    patch_size: usize,
    channels: usize,
}

/// A loaded CLIP model.
pub struct ClipModel {
    dir: PathBuf,
    tokenizer: Tokenizer,
    processor: ProcessorConfig,
    text: TextTower,
    vision: VisionTower,
    dim: usize,
    max_positions: usize,
}

/// The CLIP model of a folder, loaded once per process.
pub fn shared(dir: &Path) -> Result<std::sync::Arc<ClipModel>, ModelError> {
    crate::loaded::shared(dir, ClipModel::load)
}

/// Whether `dir` holds a CLIP checkpoint (its config names one).
pub fn is_clip(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|c| {
            c["model_type"] == "clip"
                || c["architectures"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "CLIPModel"))
        })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(ModelError::io(path))?;
    serde_json::from_str(&text).map_err(|e| ModelError::invalid(path, format!("not a {what}: {e}")))
}

impl ClipModel {
    /// Loads `config.json`, `preprocessor_config.json`, `tokenizer.json` and
    /// `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let config: ClipConfig = read_json(&config_path, "CLIP config")?;
        let processor: ProcessorConfig = read_json(
            &dir.join("preprocessor_config.json"),
            "CLIP image processor config",
        )?;
        if processor.resample != 3 {
            return Err(ModelError::invalid(
                dir.join("preprocessor_config.json"),
                format!(
                    "resample {} is not supported (only 3, bicubic, as every CLIP checkpoint uses)",
                    processor.resample
                ),
            ));
        }
        let (t, v) = (&config.text_config, &config.vision_config);
        for (name, c) in [("text", t), ("vision", v)] {
            if !matches!(c.hidden_act.as_str(), "quick_gelu" | "gelu")
                || c.num_attention_heads == 0
                || !c.hidden_size.is_multiple_of(c.num_attention_heads)
            {
                return Err(ModelError::invalid(
                    &config_path,
                    format!(
                        "unsupported {name} tower: activation '{}', {} heads for {} dimensions",
                        c.hidden_act, c.num_attention_heads, c.hidden_size
                    ),
                ));
            }
        }
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(ModelError::invalid(
                &config_path,
                "vision_config: image_size must be a multiple of patch_size",
            ));
        }
        let w = Weights::open(&dir.join("model.safetensors"))?;
        let p = config.projection_dim;
        let text = TextTower {
            token: w.get(
                "text_model.embeddings.token_embedding.weight",
                &[t.vocab_size, t.hidden_size],
            )?,
            position: w.get(
                "text_model.embeddings.position_embedding.weight",
                &[t.max_position_embeddings, t.hidden_size],
            )?,
            encoder: Encoder::load(&w, "text_model", t, true)?,
            final_norm: LayerNorm::load(
                &w,
                "text_model.final_layer_norm",
                t.hidden_size,
                t.layer_norm_eps,
            )?,
            projection: no_bias(&w, "text_projection.weight", p, t.hidden_size)?,
            eos: t.eos_token_id,
        };
        let patches = (v.image_size / v.patch_size).pow(2);
        let patch_in = v.num_channels * v.patch_size * v.patch_size;
        let vision = VisionTower {
            patch: Linear::new(
                w.get(
                    "vision_model.embeddings.patch_embedding.weight",
                    &[v.hidden_size, v.num_channels, v.patch_size, v.patch_size],
                )?,
                vec![0.0; v.hidden_size],
                v.hidden_size,
                patch_in,
            ),
            class: w.get("vision_model.embeddings.class_embedding", &[v.hidden_size])?,
            position: w.get(
                "vision_model.embeddings.position_embedding.weight",
                &[patches + 1, v.hidden_size],
            )?,
            // "pre_layrnorm" is transformers' spelling.
            pre_norm: LayerNorm::load(
                &w,
                "vision_model.pre_layrnorm",
                v.hidden_size,
                v.layer_norm_eps,
            )?,
            encoder: Encoder::load(&w, "vision_model", v, false)?,
            post_norm: LayerNorm::load(
                &w,
                "vision_model.post_layernorm",
                v.hidden_size,
                v.layer_norm_eps,
            )?,
            projection: no_bias(&w, "visual_projection.weight", p, v.hidden_size)?,
            image_size: v.image_size,
            patch_size: v.patch_size,
            channels: v.num_channels,
        };
        let mut tokenizer = crate::sentence::load_tokenizer(dir)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: t.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| ModelError::invalid(dir, e.to_string()))?;
        Ok(ClipModel {
            dir: dir.to_path_buf(),
            tokenizer,
            processor,
            text,
            vision,
            dim: p,
            max_positions: t.max_position_embeddings,
        })
    }

    /// Dimension of the shared space.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The longest text in tokens (77 for CLIP, 248 for Long-CLIP); longer texts are cut.
    pub fn max_text_tokens(&self) -> usize {
        self.max_positions
    }

    /// Token ids of `text` as the model sees them (start and end of text included, cut to the
    /// position table).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let e = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::invalid(&self.dir, format!("tokenizing: {e}")))?;
        Ok(e.get_ids().to_vec())
    }

    /// Projected (not normalised) text features, as `get_text_features`.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids.par_iter().map(|ids| self.text_features(ids)).collect())
    }

    fn text_features(&self, ids: &[u32]) -> Vec<f32> {
        let t = &self.text;
        let h = t.encoder.hidden;
        WORKSPACE.with(|cell| {
            let ws = &mut *cell.borrow_mut();
            ws.x.clear();
            for (pos, &id) in ids.iter().enumerate() {
                let word = &t.token[id as usize * h..][..h];
                let position = &t.position[pos * h..][..h];
                ws.x.extend(word.iter().zip(position).map(|(a, b)| a + b));
            }
            t.encoder.forward(1, ids.len(), ws);
            // transformers pools the first end-of-text token, or (configs from before the
            // end-of-text id was recorded, eos_token_id 2) the highest id, which is it.
            let at = if t.eos == 2 {
                (0..ids.len())
                    .max_by_key(|&i| (ids[i], std::cmp::Reverse(i)))
                    .unwrap_or(0)
            } else {
                ids.iter()
                    .position(|&i| i == t.eos)
                    .unwrap_or(ids.len() - 1)
            };
            let mut pooled = ws.x[at * h..][..h].to_vec();
            t.final_norm.apply(&mut pooled);
            let mut out = Vec::new();
            t.projection.forward(&pooled, 1, &mut out);
            out
        })
    }

    /// The pixel tensor [channels, size, size] of an image, as `CLIPImageProcessor` makes it.
    pub fn pixels(&self, rgb: &RgbImage) -> Vec<f32> {
        let p = &self.processor;
        let mut img = std::borrow::Cow::Borrowed(rgb);
        if p.do_resize {
            let (w, h) = (img.width() as usize, img.height() as usize);
            let (nw, nh) = match p.size {
                Size::Edge { shortest_edge: s } => {
                    // transformers' get_resize_output_image_size: the long side is
                    // int(size * long / short).
                    let (short, long) = (w.min(h), w.max(h));
                    let new_long = (s as f64 * long as f64 / short as f64) as usize;
                    if w <= h {
                        (s, new_long)
                    } else {
                        (new_long, s)
                    }
                }
                Size::Box { height, width } => (width, height),
                Size::Square(s) => (s, s),
            };
            img = std::borrow::Cow::Owned(resize_bicubic(&img, nw as u32, nh as u32));
        }
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (cw, ch) = if p.do_center_crop {
            match p.crop_size {
                Size::Box { height, width } => (width, height),
                Size::Square(s) | Size::Edge { shortest_edge: s } => (s, s),
            }
        } else {
            (w, h)
        };
        // transformers' center_crop: offsets floor((orig − crop) / 2), zero padding where the
        // image is smaller than the crop.
        let top = (h as i64 - ch as i64).div_euclid(2);
        let left = (w as i64 - cw as i64).div_euclid(2);
        let mut out = vec![0f32; 3 * ch * cw];
        for c in 0..3 {
            for y in 0..ch {
                for x in 0..cw {
                    let (sy, sx) = (y as i64 + top, x as i64 + left);
                    let v = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        img.get_pixel(sx as u32, sy as u32).0[c]
                    } else {
                        0
                    };
                    // As transformers: rescale in double, then normalise in single precision.
                    let mut f = if p.do_rescale {
                        (v as f64 * p.rescale_factor) as f32
                    } else {
                        v as f32
                    };
                    if p.do_normalize {
                        f = (f - p.image_mean[c]) / p.image_std[c];
                    }
                    out[(c * ch + y) * cw + x] = f;
                }
            }
        }
        out
    }

    /// Projected (not normalised) image features of decoded images, as `get_image_features`:
    /// images in batches of [`IMAGE_BATCH`] spread over the current rayon pool.
    pub fn encode_images(&self, images: &[&RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        let batches: Vec<Vec<Vec<f32>>> = images
            .par_chunks(IMAGE_BATCH)
            .map(|batch| {
                let pixels: Vec<Vec<f32>> = batch.iter().map(|img| self.pixels(img)).collect();
                self.image_features_batch(&pixels)
            })
            .collect::<Result<_, _>>()?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// Decodes and encodes image files; an unreadable file is an error naming it.
    pub fn encode_image_files(
        &self,
        paths: &[&Path],
        limits: DecodeLimits,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let batches: Vec<Vec<Vec<f32>>> = paths
            .par_chunks(IMAGE_BATCH)
            .map(|batch| {
                let pixels = batch
                    .iter()
                    .map(|p| {
                        let d = ferret_image::decode_file(p, limits)
                            .map_err(|e| ModelError::invalid(p, e.to_string()))?;
                        Ok(self.pixels(&d.rgb))
                    })
                    .collect::<Result<Vec<_>, ModelError>>()?;
                self.image_features_batch(&pixels)
            })
            .collect::<Result<_, _>>()?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// Image features from a pixel tensor [channels, size, size].
    pub fn image_features(&self, pixels: &[f32]) -> Result<Vec<f32>, ModelError> {
        Ok(self.image_features_batch(&[pixels.to_vec()])?.remove(0))
    }

    /// Image features of several pixel tensors, run through the tower together.
    fn image_features_batch(&self, pixels: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let v = &self.vision;
        let (s, ps, c) = (v.image_size, v.patch_size, v.channels);
        if let Some(bad) = pixels.iter().find(|p| p.len() != c * s * s) {
            return Err(ModelError::invalid(
                &self.dir,
                format!(
                    "a pixel tensor of {} values, the model takes {c}×{s}×{s} (is crop_size the model's image_size?)",
                    bad.len()
                ),
            ));
        }
        let h = v.encoder.hidden;
        let grid = s / ps;
        let len = grid * grid + 1;
        Ok(WORKSPACE.with(|cell| {
            let ws = &mut *cell.borrow_mut();
            // Patches as rows in the convolution weight's (channel, row, column) order.
            let mut patches = Vec::with_capacity(pixels.len() * grid * grid * c * ps * ps);
            for image in pixels {
                for gy in 0..grid {
                    for gx in 0..grid {
                        for ch in 0..c {
                            for y in 0..ps {
                                let row = (ch * s + gy * ps + y) * s + gx * ps;
                                patches.extend_from_slice(&image[row..row + ps]);
                            }
                        }
                    }
                }
            }
            let mut embedded = Vec::new();
            v.patch
                .forward(&patches, pixels.len() * grid * grid, &mut embedded);
            ws.x.clear();
            for patches in embedded.chunks_exact(grid * grid * h) {
                ws.x.extend_from_slice(&v.class);
                ws.x.extend_from_slice(patches);
            }
            for sequence in ws.x.chunks_exact_mut(len * h) {
                for (x, p) in sequence.iter_mut().zip(&v.position) {
                    *x += p;
                }
            }
            v.pre_norm.apply(&mut ws.x);
            v.encoder.forward(pixels.len(), len, ws);
            let mut pooled: Vec<f32> =
                ws.x.chunks_exact(len * h)
                    .flat_map(|sequence| sequence[..h].iter().copied())
                    .collect();
            v.post_norm.apply(&mut pooled);
            let mut out = Vec::new();
            v.projection.forward(&pooled, pixels.len(), &mut out);
            out.chunks_exact(self.dim).map(<[f32]>::to_vec).collect()
        }))
    }
}

/// Images run through the vision tower together (one GEMM over 16 × 50 rows at ViT-B/32; 32 measured slower on 2 cores).
const IMAGE_BATCH: usize = 16;

wide! {
    /// x·σ(1.702x) in place, as transformers' QuickGELUActivation.
    fn quick_gelu_all(v: &mut [f32]) {
        for x in v.iter_mut() {
            *x *= 1.0 / (1.0 + fastmath::exp::<M>(-1.702 * *x));
        }
    }
}

fn no_bias(w: &Weights, name: &str, out: usize, inp: usize) -> Result<Linear, ModelError> {
    Ok(Linear::new(
        w.get(name, &[out, inp])?,
        vec![0.0; out],
        out,
        inp,
    ))
}
