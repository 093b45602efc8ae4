//! BERT-family encoders from `config.json` + `model.safetensors`: BERT (and MiniLM, which is
//! BERT-shaped) and MPNet (`model_type: "mpnet"`: no token types, positions offset past the
//! padding id as in RoBERTa, and a learned relative-position bias added to every attention
//! score, bucketed as in T5).
//!
//! Why not candle: measured on the project's 2-core AVX-512 machine, candle 0.11's BERT encodes
//! ~4× slower than PyTorch, much of it allocating and freeing tensors. This runtime keeps one
//! set of buffers per thread, runs each sequence alone (so there is no padding and no attention
//! mask to apply), and leaves the arithmetic to the `gemm` crate's AVX-512/AVX2 kernels.
//! Sequences are spread over threads; each GEMM runs on one thread.

use std::cell::RefCell;
use std::path::Path;

use serde::Deserialize;

use crate::fastmath::{self, wide, MulAdd};
use crate::int8::{Int8Kernels, Int8Matrix, Int8Rows, WeightBits};
use crate::weights::Weights;
use crate::ModelError;

/// The fields of Hugging Face's `BertConfig` this runtime uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub model_type: String,
    /// MPNet and RoBERTa: the padding id; position ids start just after it.
    #[serde(default = "default_pad")]
    pub pad_token_id: usize,
    /// MPNet: buckets of the relative-position bias.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
}

fn default_pad() -> usize {
    1
}
fn default_buckets() -> usize {
    32
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}

/// y = x Wᵀ + b for a row-major x [rows, in] and W [out, in] (PyTorch's `Linear` layout).
pub(crate) struct Linear {
    w: LinearWeights,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

/// A linear layer's weights: f32, or quantised ([`Linear::quantize_int8`]).
enum LinearWeights {
    /// Wᵀ, row-major [in, out]. The gemm crate packs this layout with vector copies; W's own
    /// [out, in] layout, read transposed, it gathers one float at a time (that cost 17 % of
    /// MiniLM's encoding time, and the feed-forward output ran at 2/3 of the others' speed).
    F32(Vec<f32>),
    Int8(Box<Int8Matrix>, Int8Kernels),
}

thread_local! {
    /// Each thread's quantised activations (int8 layers).
    static INT8_ROWS: RefCell<Int8Rows> = RefCell::new(Int8Rows::default());
}

impl Linear {
    /// From a row-major weight [out, inp] and a bias [out].
    pub(crate) fn new(w: Vec<f32>, b: Vec<f32>, out: usize, inp: usize) -> Self {
        Linear {
            w: LinearWeights::F32(transpose(&w, out, inp)),
            b,
            inp,
            out,
        }
    }

    pub(crate) fn load(
        w: &Weights,
        name: &str,
        out: usize,
        inp: usize,
    ) -> Result<Self, ModelError> {
        Ok(Linear::new(
            w.get(&format!("{name}.weight"), &[out, inp])?,
            w.get(&format!("{name}.bias"), &[out])?,
            out,
            inp,
        ))
    }

    /// Replaces the f32 weights by integer ones (per-output scales on the `bits` grid:
    /// [`Int8Matrix`]), multiplied with per-token 8-bit activations by `kernels` from then on.
    pub(crate) fn quantize_int8(&mut self, kernels: Int8Kernels, bits: WeightBits) {
        if let LinearWeights::F32(wt) = &self.w {
            let w = transpose(wt, self.inp, self.out);
            let m = Int8Matrix::quantize(&w, self.out, self.inp, bits, kernels);
            self.w = LinearWeights::Int8(Box::new(m), kernels);
        }
    }

    pub(crate) fn forward(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        self.forward_outputs(x, rows, 0..self.out, y)
    }

    /// Only the outputs `outputs` (rows of W): y [rows, outputs.len()]. Lets a caller walk a
    /// wide layer (a vocabulary projection) in cache-sized blocks.
    pub(crate) fn forward_outputs(
        &self,
        x: &[f32],
        rows: usize,
        outputs: std::ops::Range<usize>,
        y: &mut Vec<f32>,
    ) {
        assert!(
            x.len() >= rows * self.inp,
            "linear layer: input shorter than rows × inputs"
        );
        let w = match &self.w {
            LinearWeights::F32(w) => w,
            LinearWeights::Int8(m, kernels) => {
                return INT8_ROWS.with(|cell| {
                    let xq = &mut *cell.borrow_mut();
                    xq.quantize(x, rows, self.inp);
                    m.matmul(xq, outputs, &self.b, y, *kernels);
                });
            }
        };
        let n = outputs.len();
        y.clear();
        for _ in 0..rows {
            y.extend_from_slice(&self.b[outputs.clone()]);
        }
        // SAFETY: x holds rows×inp floats, w inp×out (Wᵀ; the columns `outputs` are read, with
        // row stride out) and y rows×n; the strides match those row-major shapes.
        unsafe {
            gemm::gemm(
                rows,
                n,
                self.inp,
                y.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                self.inp as isize,
                w.as_ptr().add(outputs.start),
                1,
                self.out as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// The transpose of a row-major [rows, cols] matrix.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(m.len(), rows * cols, "matrix is not rows × cols");
    let mut t = vec![0.0; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

pub(crate) struct LayerNorm {
    g: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    pub(crate) fn new(g: Vec<f32>, b: Vec<f32>, eps: f64) -> Self {
        LayerNorm {
            g,
            b,
            eps: eps as f32,
        }
    }

    /// `name.weight` / `name.bias`, or the older `name.gamma` / `name.beta` (checkpoints saved
    /// by early versions of transformers, which its loader still renames).
    pub(crate) fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self, ModelError> {
        let (g, b) = if w.has(&format!("{name}.gamma")) && !w.has(&format!("{name}.weight")) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(LayerNorm {
            g: w.get(&format!("{name}.{g}"), &[dim])?,
            b: w.get(&format!("{name}.{b}"), &[dim])?,
            eps: eps as f32,
        })
    }

    /// In place, row by row.
    pub(crate) fn apply(&self, x: &mut [f32]) {
        layer_norm_rows(x, &self.g, &self.b, self.eps);
    }
}

wide! {
    fn layer_norm_rows(x: &mut [f32], g: &[f32], b: &[f32], eps: f32) {
        let dim = g.len();
        for row in x.chunks_exact_mut(dim) {
            let mean = fastmath::sum(row) / dim as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let var = fastmath::sum_squares(row) / dim as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(g).zip(b) {
                *v = *v * inv * g + b;
            }
        }
    }
}

wide! {
    /// x += y, element by element.
    pub(crate) fn add_assign(x: &mut [f32], y: &[f32]) {
        for (x, y) in x.iter_mut().zip(y) {
            *x += y;
        }
    }
}

wide! {
    /// GELU (with erf) in place.
    pub(crate) fn gelu_erf_all(v: &mut [f32]) {
        for x in v.iter_mut() {
            *x = gelu_erf::<M>(*x);
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// What differs between the architectures this runtime runs.
enum Arch {
    /// BERT, and RoBERTa / XLM-RoBERTa (`position_offset` = padding id + 1, one token type).
    Bert {
        token_type: Vec<f32>,
        position_offset: usize,
    },
    MpNet {
        /// [buckets, heads]: the bias each head adds for a relative-position bucket.
        relative_bias: Vec<f32>,
        /// The bucket of relative position r (key − query) at index r + max_len.
        buckets: Vec<usize>,
    },
}

/// A loaded BERT-family encoder.
pub struct Bert {
    pub config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    arch: Arch,
}

/// MPNet's (T5's) bidirectional relative-position bucket, evaluated in f32 as PyTorch does:
/// half the buckets per direction, exact below `num_buckets / 4`, logarithmic up to
/// `max_distance`.
fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = (num_buckets / 2) as i64;
    let n = -relative;
    let mut bucket = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    bucket += if n < max_exact {
        n
    } else {
        let scale = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
        let large = max_exact
            + ((n as f32 / max_exact as f32).ln() / scale * (half - max_exact) as f32) as i64;
        large.min(half - 1)
    };
    bucket as usize
}

/// Per-thread scratch buffers, reused across sequences.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
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

impl Bert {
    /// Loads `config.json` and `model.safetensors` from `dir`. Weight names may carry a `bert.`
    /// prefix (task-head checkpoints) or not (bare `BertModel`).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(ModelError::io(&config_path))?;
        let config: BertConfig = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(&config_path, format!("not a BERT config: {e}")))?;
        if !matches!(
            config.hidden_act.as_str(),
            "gelu" | "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(ModelError::invalid(
                &config_path,
                format!("unsupported hidden_act '{}'", config.hidden_act),
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(ModelError::invalid(
                &config_path,
                "hidden_size is not a multiple of num_attention_heads",
            ));
        }
        let w = Weights::open(&dir.join("model.safetensors"))?;
        let mpnet = config.model_type == "mpnet";
        let roberta = matches!(config.model_type.as_str(), "roberta" | "xlm-roberta");
        let p = ["bert.", "mpnet.", "roberta."]
            .into_iter()
            .find(|p| w.has(&format!("{p}embeddings.word_embeddings.weight")))
            .unwrap_or("");
        let (h, i, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let n = |s: &str| format!("{p}encoder.layer.{l}.{s}");
                // The same blocks under MPNet's names.
                let (q, k, v, o, norm) = if mpnet {
                    (
                        "attention.attn.q",
                        "attention.attn.k",
                        "attention.attn.v",
                        "attention.attn.o",
                        "attention.LayerNorm",
                    )
                } else {
                    (
                        "attention.self.query",
                        "attention.self.key",
                        "attention.self.value",
                        "attention.output.dense",
                        "attention.output.LayerNorm",
                    )
                };
                Ok(Layer {
                    query: Linear::load(&w, &n(q), h, h)?,
                    key: Linear::load(&w, &n(k), h, h)?,
                    value: Linear::load(&w, &n(v), h, h)?,
                    attn_out: Linear::load(&w, &n(o), h, h)?,
                    attn_norm: LayerNorm::load(&w, &n(norm), h, eps)?,
                    intermediate: Linear::load(&w, &n("intermediate.dense"), i, h)?,
                    output: Linear::load(&w, &n("output.dense"), h, i)?,
                    out_norm: LayerNorm::load(&w, &n("output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let arch = if mpnet {
            let heads = config.num_attention_heads;
            let num_buckets = config.relative_attention_num_buckets;
            let max = config.max_position_embeddings as i64;
            Arch::MpNet {
                relative_bias: w.get(
                    &format!("{p}encoder.relative_attention_bias.weight"),
                    &[num_buckets, heads],
                )?,
                buckets: (-max..=max)
                    .map(|r| relative_position_bucket(r, num_buckets, 128))
                    .collect(),
            }
        } else {
            Arch::Bert {
                token_type: w.get(
                    &format!("{p}embeddings.token_type_embeddings.weight"),
                    &[config.type_vocab_size, h],
                )?,
                // RoBERTa numbers positions from just past the padding id.
                position_offset: if roberta { config.pad_token_id + 1 } else { 0 },
            }
        };
        Ok(Bert {
            word: w.get(
                &format!("{p}embeddings.word_embeddings.weight"),
                &[config.vocab_size, h],
            )?,
            position: w.get(
                &format!("{p}embeddings.position_embeddings.weight"),
                &[config.max_position_embeddings, h],
            )?,
            emb_norm: LayerNorm::load(&w, &format!("{p}embeddings.LayerNorm"), h, eps)?,
            layers,
            arch,
            config,
        })
    }

    /// Quantises the encoder layers' linear weights to int8 (dynamic quantisation: activations
    /// per token at run time; see [`crate::int8`]). Embeddings, layer norms and attention stay
    /// f32. The feed-forward output layers get 12-bit weights: 8-bit ones there cost MPNet most
    /// of its int8 error (docs/ENCODER.md).
    pub fn quantize_int8(&mut self) {
        let kernels = Int8Kernels::detect();
        for l in &mut self.layers {
            for linear in [
                &mut l.query,
                &mut l.key,
                &mut l.value,
                &mut l.attn_out,
                &mut l.intermediate,
            ] {
                linear.quantize_int8(kernels, WeightBits::Eight);
            }
            l.output.quantize_int8(kernels, WeightBits::Twelve);
        }
    }

    /// The word embedding table [vocab, hidden] (the tied decoder of masked-LM heads).
    pub(crate) fn word_embeddings(&self) -> &[f32] {
        &self.word
    }

    /// The longest sequence the position table allows (RoBERTa and MPNet start past the padding
    /// id).
    pub fn max_tokens(&self) -> usize {
        let offset = match &self.arch {
            Arch::Bert {
                position_offset, ..
            } => *position_offset,
            Arch::MpNet { .. } => self.config.pad_token_id + 1,
        };
        self.config.max_position_embeddings.saturating_sub(offset)
    }

    /// Runs one sequence (no padding) and calls `f` with the last hidden states [len, hidden].
    /// Token ids must be below the vocabulary size and the sequence no longer than the
    /// position table (the tokenizer's truncation guarantees both).
    pub fn forward<R>(&self, ids: &[u32], type_ids: &[u32], f: impl FnOnce(&[f32]) -> R) -> R {
        self.forward_attending(ids, type_ids, ids.len(), f)
    }

    /// As [`Bert::forward`], but no token attends to the positions from `attended` on (they
    /// still get hidden states): padding that is masked out yet read, as ColBERT's [MASK]
    /// query augmentation is.
    pub fn forward_attending<R>(
        &self,
        ids: &[u32],
        type_ids: &[u32],
        attended: usize,
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        WORKSPACE.with(|cell| {
            let ws = &mut *cell.borrow_mut();
            self.forward_in(ids, type_ids, attended, ws);
            f(&ws.x)
        })
    }

    fn forward_in(&self, ids: &[u32], type_ids: &[u32], attended: usize, ws: &mut Workspace) {
        let h = self.config.hidden_size;
        let len = ids.len();
        ws.x.clear();
        for (pos, (&id, &t)) in ids.iter().zip(type_ids).enumerate() {
            let word = &self.word[id as usize * h..][..h];
            match &self.arch {
                Arch::Bert {
                    token_type,
                    position_offset,
                } => {
                    let position = &self.position[(pos + position_offset) * h..][..h];
                    // A model with one token type (RoBERTa) gives every token type 0, as its
                    // tokenizers do.
                    let t = if self.config.type_vocab_size == 1 {
                        0
                    } else {
                        t
                    };
                    let typ = &token_type[t as usize * h..][..h];
                    ws.x.extend(
                        word.iter()
                            .zip(position)
                            .zip(typ)
                            .map(|((a, b), c)| a + b + c),
                    );
                }
                Arch::MpNet { .. } => {
                    // No padding inside a sequence run alone, so position i is pad + 1 + i.
                    let p = self.config.pad_token_id + 1 + pos;
                    let position = &self.position[p * h..][..h];
                    ws.x.extend(word.iter().zip(position).map(|(a, b)| a + b));
                }
            }
        }
        self.emb_norm.apply(&mut ws.x);
        for layer in &self.layers {
            self.attention(layer, len, attended, ws);
            layer.attn_out.forward(&ws.ctx, len, &mut ws.tmp);
            add_assign(&mut ws.tmp, &ws.x);
            layer.attn_norm.apply(&mut ws.tmp);
            std::mem::swap(&mut ws.x, &mut ws.tmp);
            layer.intermediate.forward(&ws.x, len, &mut ws.inter);
            if self.config.hidden_act == "gelu" {
                gelu_erf_all(&mut ws.inter);
            } else {
                ws.inter.iter_mut().for_each(|v| *v = gelu_tanh(*v));
            }
            layer.output.forward(&ws.inter, len, &mut ws.tmp);
            add_assign(&mut ws.tmp, &ws.x);
            layer.out_norm.apply(&mut ws.tmp);
            std::mem::swap(&mut ws.x, &mut ws.tmp);
        }
    }

    /// Multi-head self-attention of ws.x into ws.ctx.
    fn attention(&self, layer: &Layer, len: usize, attended: usize, ws: &mut Workspace) {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let dh = h / heads;
        layer.query.forward(&ws.x, len, &mut ws.q);
        layer.key.forward(&ws.x, len, &mut ws.k);
        layer.value.forward(&ws.x, len, &mut ws.v);
        // Every element is overwritten head by head.
        ws.ctx.resize(len * h, 0.0);
        ws.scores.resize(len * len, 0.0);
        let scale = 1.0 / (dh as f32).sqrt();
        for head in 0..heads {
            crate::attention::attend_head(
                crate::attention::Head {
                    q: &ws.q,
                    k: &ws.k,
                    v: &ws.v,
                    len,
                    width: h,
                    offset: head * dh,
                    dim: dh,
                    scale,
                },
                &mut ws.scores,
                &mut ws.ctx,
                |scores| {
                    if let Arch::MpNet {
                        relative_bias,
                        buckets,
                    } = &self.arch
                    {
                        let max = self.config.max_position_embeddings;
                        for (i, row) in scores.chunks_exact_mut(len).enumerate() {
                            for (j, v) in row.iter_mut().enumerate() {
                                let bucket = buckets[j + max - i];
                                *v += relative_bias[bucket * heads + head];
                            }
                        }
                    }
                    if attended < len {
                        for row in scores.chunks_exact_mut(len) {
                            row[attended..].fill(f32::NEG_INFINITY);
                        }
                    }
                },
            );
        }
    }
}

/// GELU with the error function (Hugging Face's "gelu").
#[inline(always)]
fn gelu_erf<M: MulAdd>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<M>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7 in exact arithmetic, about
/// 3e-7 evaluated in f32): a polynomial and one (vectorisable) `exp`, several times cheaper than libm's `erff`, which
/// otherwise costs a tenth of the encoder's time.
#[inline(always)]
fn erf<M: MulAdd>(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / M::mul_add(P, ax, 1.0);
    let poly = M::mul_add(t, A[4], A[3]);
    let poly = M::mul_add(t, poly, A[2]);
    let poly = M::mul_add(t, poly, A[1]);
    let poly = t * M::mul_add(t, poly, A[0]);
    let y = M::mul_add(-poly, fastmath::exp_nonpositive::<M>(-ax * ax), 1.0);
    y.copysign(x)
}

/// GELU's tanh approximation ("gelu_new", "gelu_pytorch_tanh").
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/π)
    0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mpnet_buckets_match_pytorch() {
        // Where transformers' MPNetEncoder.relative_position_bucket (PyTorch 2.15) changes value
        // over relative positions -520..=520: (first relative position, bucket).
        const STEPS: [(i64, usize); 31] = [
            (-520, 15),
            (-90, 14),
            (-63, 13),
            (-45, 12),
            (-31, 11),
            (-22, 10),
            (-15, 9),
            (-11, 8),
            (-7, 7),
            (-6, 6),
            (-5, 5),
            (-4, 4),
            (-3, 3),
            (-2, 2),
            (-1, 1),
            (0, 0),
            (1, 17),
            (2, 18),
            (3, 19),
            (4, 20),
            (5, 21),
            (6, 22),
            (7, 23),
            (8, 24),
            (12, 25),
            (16, 26),
            (23, 27),
            (32, 28),
            (46, 29),
            (64, 30),
            (91, 31),
        ];
        for (i, &(start, bucket)) in STEPS.iter().enumerate() {
            let end = STEPS.get(i + 1).map_or(521, |s| s.0);
            for r in start..end {
                assert_eq!(
                    super::relative_position_bucket(r, 32, 128),
                    bucket,
                    "r = {r}"
                );
            }
        }
    }

    #[test]
    fn erf_is_accurate() {
        // A&S 7.1.26 is within 1.5e-7 in exact arithmetic; evaluated in f32 the error measured
        // on this grid stays near 3e-7 (f32 spacing near 0.5 is 6e-8).
        use crate::fastmath::{Fused, MulAdd, Unfused};
        fn worst<M: MulAdd>() -> f64 {
            (-400..=400)
                .map(|i| {
                    let x = i as f32 / 100.0;
                    (super::erf::<M>(x) as f64 - libm::erf(x as f64)).abs()
                })
                .fold(0.0, f64::max)
        }
        for worst in [worst::<Fused>(), worst::<Unfused>()] {
            assert!(worst < 4e-7, "worst error {worst}");
        }
    }
}
