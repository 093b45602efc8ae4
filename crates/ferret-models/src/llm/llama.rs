//! The llama and Qwen2 architectures run by ferret itself (Qwen2 is llama with biases on the
//! query, key and value projections and rotary pairs split by halves rather than interleaved).
//!
//! Generated tokens go through the file's quantised blocks, where one token's step is bound by
//! reading the weights ([`super::kernels`]). Prompts of a small model (SmolLM2-135M: 540 MB in
//! f32) use f32 copies of the projections: a GEMM over a chunk of tokens is compute-bound, and
//! exact arithmetic keeps ferret's log-probabilities on the file's weights (checked against a
//! float64 forward pass). A larger model (Qwen2.5-1.5B would be 7 GB in f32) keeps only its
//! blocks and runs prompts through the same integer kernels a chunk of tokens at a time. Both
//! fill the same KV cache. candle ran these models before: a tensor allocation per operation and
//! f32 weights (SmolLM2) or f32 per-row scales in repacked blocks (Qwen2) held its generation
//! well below llama.cpp's speed.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use half::f16;
use rayon::prelude::*;

use super::kernels::{attend, Format, Kernels, Q8Vector, QMatrix, BLOCK};
use super::tokenizer::number;
use crate::fastmath::{exp, softmax, Unfused};

/// Shapes and constants from the GGUF metadata.
#[derive(Debug, Clone)]
struct Config {
    layers: usize,
    dim: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    vocab: usize,
    eps: f32,
    theta: f64,
    /// Rotary pairs are (i, i + head_dim / 2) (GPT-NeoX's layout, Qwen2) rather than
    /// (2i, 2i + 1) (llama's GGUF layout).
    neox: bool,
}

impl Config {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// A projection y = W x with W `rows × cols`: quantised, as one matrix or as stacked parts of
/// different formats, and in f32 for a small model's prompts (see the module comment).
struct Linear {
    f32: Option<Vec<f32>>,
    q: Vec<QMatrix>,
    rows: usize,
    cols: usize,
}

impl Linear {
    /// y = W x on the quantised weights.
    fn matvec(&self, x: &Q8Vector, y: &mut [f32], k: Kernels) {
        let mut at = 0;
        for part in &self.q {
            part.matvec(x, &mut y[at..at + part.rows()], k);
            at += part.rows();
        }
    }

    /// Y (`tokens × rows`) = X Wᵀ, or Y += X Wᵀ when `accumulate`: an f32 GEMM where the f32
    /// weights are kept, else the quantised kernels over `X` quantised into `scratch`.
    fn forward(
        &self,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
        accumulate: bool,
        k: Kernels,
        scratch: &mut Vec<Q8Vector>,
    ) {
        if let Some(w) = &self.f32 {
            return self.gemm(w, x, tokens, y, accumulate);
        }
        Q8Vector::quantize_rows(&x[..tokens * self.cols], self.cols, scratch);
        let mut at = 0;
        for part in &self.q {
            part.matmul(&scratch[..tokens], y, self.rows, at, accumulate, k);
            at += part.rows();
        }
    }

    fn gemm(&self, w: &[f32], x: &[f32], tokens: usize, y: &mut [f32], accumulate: bool) {
        assert!(x.len() >= tokens * self.cols && y.len() >= tokens * self.rows);
        // SAFETY: x holds tokens×cols floats, W rows×cols (read as its transpose) and y
        // tokens×rows (asserted); the strides are those row-major shapes.
        unsafe {
            gemm::gemm(
                tokens,
                self.rows,
                self.cols,
                y.as_mut_ptr(),
                1,
                self.rows as isize,
                accumulate,
                x.as_ptr(),
                1,
                self.cols as isize,
                w.as_ptr(),
                self.cols as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// Query, key and value rows stacked.
    qkv: Linear,
    /// Their biases, stacked the same way (Qwen2).
    qkv_bias: Option<Vec<f32>>,
    out: Linear,
    /// Gate and up rows stacked.
    gate_up: Linear,
    down: Linear,
}

/// Token embeddings (vocabulary × dim): f32 for a small model, else the file's blocks, one row
/// dequantised per token.
enum Embeddings {
    F32(Vec<f32>),
    Quantized(QMatrix),
}

/// The weights, shared by every [`Session`].
pub(crate) struct Weights {
    cfg: Config,
    embed: Embeddings,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    /// The vocabulary projection in f32 for a small model's prompts (`None` when tied to f32
    /// embeddings, or for a large model), and quantised.
    output_f32: Option<Vec<f32>>,
    output_q: QMatrix,
    kernels: Kernels,
    /// Prompts in exact f32 arithmetic (a small model, held in f32). Otherwise they follow
    /// llama.cpp's numerics: 8-bit activations, and attention over keys and values rounded to
    /// f16 as in its cache (which brings Qwen2.5-1.5B's log-probabilities from within 0.28 of
    /// llama.cpp's to within 0.1).
    exact: bool,
    /// Rotary inverse frequencies, one per pair of dimensions.
    inv_freq: Vec<f64>,
}

/// Whether ferret's own runtime takes this file: llama or Qwen2, with only the tensors it
/// knows.
pub(crate) fn handles(arch: &str, ct: &Content) -> bool {
    matches!(arch, "llama" | "qwen2")
        && ct.tensor_infos.keys().all(|name| {
            matches!(
                name.as_str(),
                "token_embd.weight" | "output_norm.weight" | "output.weight"
            ) || name.strip_prefix("blk.").is_some_and(|rest| {
                rest.split_once('.').is_some_and(|(_, t)| {
                    matches!(
                        t,
                        "attn_norm.weight"
                            | "attn_q.weight"
                            | "attn_k.weight"
                            | "attn_v.weight"
                            | "attn_q.bias"
                            | "attn_k.bias"
                            | "attn_v.bias"
                            | "attn_output.weight"
                            | "ffn_norm.weight"
                            | "ffn_gate.weight"
                            | "ffn_up.weight"
                            | "ffn_down.weight"
                    )
                })
            })
        })
}

/// Reads a tensor: its shape (rows, cols) and f32 values, plus its quantised form for a matrix.
struct Reader<'a> {
    ct: &'a Content,
    file: &'a mut std::fs::File,
}

impl Reader<'_> {
    fn f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let t = self.tensor(name)?;
        Ok((t.shape().dims().to_vec(), dequantize(&t, name)?))
    }

    fn tensor(&mut self, name: &str) -> Result<QTensor, String> {
        self.ct
            .tensor(self.file, name, &Device::Cpu)
            .map_err(|e| format!("tensor {name}: {e}"))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        let (dims, v) = self.f32(name)?;
        if v.len() != len {
            return Err(format!(
                "tensor {name} has shape {dims:?}, expected [{len}]"
            ));
        }
        Ok(v)
    }

    /// A `rows × cols` matrix: the file's blocks where a kernel reads them (Q4_1, Q8_0, Q4_K,
    /// Q6_K), else requantised to Q8_0 from its f32 values; and those f32 values when `dense`.
    fn matrix(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        dense: bool,
    ) -> Result<Linear, String> {
        let t = self.tensor(name)?;
        let dims = t.shape().dims();
        if dims != [rows, cols] {
            return Err(format!(
                "tensor {name} has shape {dims:?}, expected [{rows}, {cols}]"
            ));
        }
        let format = match t.dtype() {
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            GgmlDType::Q4K => Some(Format::Q4K),
            GgmlDType::Q6K => Some(Format::Q6K),
            _ => None,
        };
        let f32 = match (dense, format) {
            (false, Some(_)) => None,
            _ => Some(dequantize(&t, name)?),
        };
        let q = match (format, &f32) {
            // candle holds these types as GGML's blocks, byte for byte.
            (Some(format), _) => {
                let bytes = t.data().map_err(|e| format!("tensor {name}: {e}"))?;
                QMatrix::from_blocks(format, rows, cols, bytes.into_owned())?
            }
            (None, Some(f32)) => QMatrix::quantize_q8_0(rows, cols, f32)?,
            (None, None) => unreachable!("dequantised above"),
        };
        Ok(Linear {
            f32: f32.filter(|_| dense),
            q: vec![q],
            rows,
            cols,
        })
    }
}

fn dequantize(t: &QTensor, name: &str) -> Result<Vec<f32>, String> {
    t.dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
        .map_err(|e| format!("tensor {name}: {e}"))
}

/// Stacks projections that read the same input: one quantised matrix when the file stores them
/// in one format, else one part per format run (Q4_K_M files keep some value projections in
/// Q6_K).
fn stack(parts: Vec<Linear>) -> Result<Linear, String> {
    let cols = parts[0].cols;
    let rows = parts.iter().map(|p| p.rows).sum();
    let f32 = parts
        .iter()
        .map(|p| p.f32.as_deref())
        .collect::<Option<Vec<_>>>()
        .map(|f| f.concat());
    let mut q: Vec<QMatrix> = Vec::new();
    for m in parts.into_iter().flat_map(|p| p.q) {
        match q.last_mut() {
            Some(last) if last.format() == m.format() => {
                let prev = q.pop().expect("a last part");
                q.push(QMatrix::stack(vec![prev, m])?);
            }
            _ => q.push(m),
        }
    }
    Ok(Linear { f32, q, rows, cols })
}

impl Weights {
    /// The weights of a `arch` file ([`handles`]); with `dense`, f32 copies for prompts too.
    pub(crate) fn load(
        arch: &str,
        ct: &Content,
        file: &mut std::fs::File,
        dense: bool,
    ) -> Result<Self, String> {
        let key = |k: &str| number(ct, &format!("{arch}.{k}")).map(|n| n as usize);
        let float = |k: &str| match ct.metadata.get(&format!("{arch}.{k}")) {
            Some(candle_core::quantized::gguf_file::Value::F32(x)) => Some(*x as f64),
            Some(candle_core::quantized::gguf_file::Value::F64(x)) => Some(*x),
            _ => None,
        };
        let need = |k: &str| key(k).ok_or(format!("GGUF metadata has no {arch}.{k}"));
        let dim = need("embedding_length")?;
        let heads = need("attention.head_count")?;
        let kv_heads = key("attention.head_count_kv").unwrap_or(heads);
        if heads == 0
            || kv_heads == 0
            || !dim.is_multiple_of(heads)
            || !heads.is_multiple_of(kv_heads)
        {
            return Err(format!(
                "{heads} attention heads ({kv_heads} for keys and values) do not divide {dim} dimensions"
            ));
        }
        let head_dim = dim / heads;
        if key("rope.dimension_count").is_some_and(|r| r != head_dim) {
            return Err("rotary dimensions other than the head size are not supported".into());
        }
        let mut reader = Reader { ct, file };
        let embed_dims = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or("GGUF has no token_embd.weight")?
            .shape
            .dims()
            .to_vec();
        let vocab = embed_dims[0];
        let cfg = Config {
            layers: need("block_count")?,
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn: need("feed_forward_length")?,
            vocab,
            eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f32,
            theta: float("rope.freq_base").unwrap_or(10_000.0),
            neox: arch == "qwen2",
        };
        if embed_dims != [vocab, dim]
            || !dim.is_multiple_of(BLOCK)
            || !cfg.ffn.is_multiple_of(BLOCK)
        {
            return Err(format!(
                "token embeddings of shape {embed_dims:?} with {dim} dimensions and a feed-forward of {} (both must be multiples of 32)",
                cfg.ffn
            ));
        }
        let embed = if dense {
            Embeddings::F32(reader.f32("token_embd.weight")?.1)
        } else {
            let e = reader.matrix("token_embd.weight", vocab, dim, false)?;
            Embeddings::Quantized(e.q.into_iter().next().expect("one part"))
        };
        let kv = cfg.kv_dim();
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let mut m = |t: &str, rows, cols| {
                reader.matrix(&format!("blk.{i}.{t}.weight"), rows, cols, dense)
            };
            let qkv = stack(vec![
                m("attn_q", dim, dim)?,
                m("attn_k", kv, dim)?,
                m("attn_v", kv, dim)?,
            ])?;
            let out = m("attn_output", dim, dim)?;
            let gate_up = stack(vec![
                m("ffn_gate", cfg.ffn, dim)?,
                m("ffn_up", cfg.ffn, dim)?,
            ])?;
            let down = m("ffn_down", dim, cfg.ffn)?;
            let bias = |t: &str| format!("blk.{i}.attn_{t}.bias");
            let qkv_bias = if ct.tensor_infos.contains_key(&bias("q")) {
                let mut b = reader.vector(&bias("q"), dim)?;
                b.extend(reader.vector(&bias("k"), kv)?);
                b.extend(reader.vector(&bias("v"), kv)?);
                Some(b)
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: reader.vector(&format!("blk.{i}.attn_norm.weight"), dim)?,
                ffn_norm: reader.vector(&format!("blk.{i}.ffn_norm.weight"), dim)?,
                qkv,
                qkv_bias,
                out,
                gate_up,
                down,
            });
        }
        let output_norm = reader.vector("output_norm.weight", dim)?;
        let name = if ct.tensor_infos.contains_key("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let o = reader.matrix(name, vocab, dim, dense && name == "output.weight")?;
        let (output_f32, output_q) = (o.f32, o.q.into_iter().next().expect("one part"));
        let inv_freq = (0..head_dim / 2)
            .map(|i| cfg.theta.powf(-((2 * i) as f64) / head_dim as f64))
            .collect();
        Ok(Weights {
            cfg,
            embed,
            layers,
            output_norm,
            output_f32,
            output_q,
            kernels: Kernels::detect(),
            exact: dense,
            inv_freq,
        })
    }

    /// The f32 vocabulary projection of a small model's prompts, if it has one.
    fn projection_f32(&self) -> Option<&[f32]> {
        match (&self.output_f32, &self.embed) {
            (Some(p), _) | (None, Embeddings::F32(p)) => Some(p),
            _ => None,
        }
    }

    /// The vocabulary projection (vocabulary × dim, f32; dequantised for a large model).
    pub(crate) fn projection(&self) -> (Cow<'_, [f32]>, usize, usize) {
        let p = match self.projection_f32() {
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(self.output_q.dequantize()),
        };
        (p, self.cfg.vocab, self.cfg.dim)
    }

    /// Appends token `token`'s embedding to `out`.
    fn embed_into(&self, token: u32, out: &mut Vec<f32>) -> Result<(), String> {
        let (t, dim) = (token as usize, self.cfg.dim);
        if t >= self.cfg.vocab {
            return Err(format!(
                "token {t} is outside the vocabulary of {}",
                self.cfg.vocab
            ));
        }
        match &self.embed {
            Embeddings::F32(e) => out.extend_from_slice(&e[t * dim..(t + 1) * dim]),
            Embeddings::Quantized(m) => {
                let at = out.len();
                out.resize(at + dim, 0.0);
                m.dequantize_row(t, &mut out[at..]);
            }
        }
        Ok(())
    }

    /// The rotation (cosine, sine) of each pair of dimensions at `position`; computed once per
    /// token, shared by the layers.
    fn rotation(&self, position: usize) -> Vec<(f32, f32)> {
        self.inv_freq
            .iter()
            .map(|f| {
                let a = position as f64 * f;
                (a.cos() as f32, a.sin() as f32)
            })
            .collect()
    }

    /// Rotates each head of `x` by `rotation` (pairs as [`Config::neox`] says).
    fn rope(&self, x: &mut [f32], rotation: &[(f32, f32)]) {
        let half = self.cfg.head_dim / 2;
        for head in x.chunks_exact_mut(self.cfg.head_dim) {
            for (i, &(cos, sin)) in rotation.iter().enumerate() {
                let (ia, ib) = if self.cfg.neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (a, b) = (head[ia], head[ib]);
                head[ia] = a * cos - b * sin;
                head[ib] = a * sin + b * cos;
            }
        }
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (mean + eps).sqrt();
    for ((o, v), g) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + exp::<Unfused>(-x))
}

/// A session's KV cache after some tokens ([`Session::snapshot`]): only the values the rest
/// derives from — f32 in exact mode, else the f16 copy (the f32 one holds the same values).
pub(crate) struct KvSnapshot {
    len: usize,
    stored: Stored,
}

/// Per layer and key/value head: keys and values.
enum Stored {
    Exact(Vec<Vec<f32>>, Vec<Vec<f32>>),
    Half(Vec<Vec<f16>>, Vec<Vec<f16>>),
}

impl KvSnapshot {
    /// Positions held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Memory held, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        fn count<T>(v: &[Vec<T>]) -> usize {
            v.iter().map(Vec::len).sum::<usize>() * std::mem::size_of::<T>()
        }
        match &self.stored {
            Stored::Exact(k, v) => count(k) + count(v),
            Stored::Half(k, v) => count(k) + count(v),
        }
    }

    /// `len` positions of zeros in f16, one head of `head_dim` (for tests of what holds them).
    #[cfg(test)]
    pub(crate) fn zeros(len: usize, head_dim: usize) -> Self {
        let zeros = vec![vec![f16::ZERO; len * head_dim]];
        KvSnapshot {
            len,
            stored: Stored::Half(zeros.clone(), zeros),
        }
    }
}

/// One conversation's state: the KV cache (per layer and key/value head, position × head_dim,
/// so that a head's attention reads one contiguous block) and buffers. The cache is kept in
/// f32 for prompts' GEMMs and in f16 for steps, which read all of it for every token (as
/// llama.cpp's f16 cache: half the bytes).
pub(crate) struct Session {
    w: Arc<Weights>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    keys16: Vec<Vec<f16>>,
    values16: Vec<Vec<f16>>,
    len: usize,
    xq: Q8Vector,
    /// A prompt chunk's quantised rows (large models).
    rows: Vec<Q8Vector>,
}

impl Session {
    pub(crate) fn new(w: Arc<Weights>) -> Self {
        let n = w.cfg.layers * w.cfg.kv_heads;
        Session {
            w,
            keys: vec![Vec::new(); n],
            values: vec![Vec::new(); n],
            keys16: vec![Vec::new(); n],
            values16: vec![Vec::new(); n],
            len: 0,
            xq: Q8Vector::default(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.keys.iter_mut().for_each(Vec::clear);
        self.values.iter_mut().for_each(Vec::clear);
        self.keys16.iter_mut().for_each(Vec::clear);
        self.values16.iter_mut().for_each(Vec::clear);
        self.len = 0;
    }

    /// A copy of the KV cache as it is, to start later prompts that begin with the same tokens
    /// from ([`Session::restore`]).
    pub(crate) fn snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            len: self.len,
            stored: if self.w.exact {
                Stored::Exact(self.keys.clone(), self.values.clone())
            } else {
                Stored::Half(self.keys16.clone(), self.values16.clone())
            },
        }
    }

    /// Puts the first `len` positions of `s` in the cache, as if a prompt of those tokens had
    /// just been fed: the same f32 and f16 values [`Session::append`] would have stored.
    pub(crate) fn restore(&mut self, s: &KvSnapshot, len: usize) {
        assert!(len <= s.len, "restoring {len} of {} positions", s.len);
        let n = len * self.w.cfg.head_dim;
        let half = |v: &[f32]| v[..n].iter().map(|&x| f16::from_f32(x)).collect();
        let full = |v: &[f16]| v[..n].iter().map(|x| x.to_f32()).collect();
        for at in 0..self.keys.len() {
            match &s.stored {
                Stored::Exact(k, v) => {
                    self.keys[at] = k[at][..n].to_vec();
                    self.values[at] = v[at][..n].to_vec();
                    self.keys16[at] = half(&k[at]);
                    self.values16[at] = half(&v[at]);
                }
                Stored::Half(k, v) => {
                    self.keys16[at] = k[at][..n].to_vec();
                    self.values16[at] = v[at][..n].to_vec();
                    self.keys[at] = full(&k[at]);
                    self.values[at] = full(&v[at]);
                }
            }
        }
        self.len = len;
    }

    /// Adds a token's keys and values (a row of projected queries, keys, values) to layer
    /// `l`'s cache.
    fn append(&mut self, l: usize, qkv: &[f32]) {
        let c = &self.w.cfg;
        let (dim, kv, hd) = (c.dim, c.kv_dim(), c.head_dim);
        for g in 0..c.kv_heads {
            let at = l * c.kv_heads + g;
            let k = &qkv[dim + g * hd..dim + (g + 1) * hd];
            let v = &qkv[dim + kv + g * hd..dim + kv + (g + 1) * hd];
            if self.w.exact {
                self.keys[at].extend_from_slice(k);
                self.values[at].extend_from_slice(v);
            } else {
                let rounded = |x: &f32| f16::from_f32(*x).to_f32();
                self.keys[at].extend(k.iter().map(rounded));
                self.values[at].extend(v.iter().map(rounded));
            }
            self.keys16[at].extend(k.iter().map(|&x| f16::from_f32(x)));
            self.values16[at].extend(v.iter().map(|&x| f16::from_f32(x)));
        }
    }

    fn check_position(&self, position: usize) -> Result<(), String> {
        if position != self.len {
            return Err(format!(
                "tokens fed at position {position}, but the cache holds {}",
                self.len
            ));
        }
        Ok(())
    }

    /// Runs a chunk of prompt tokens at `position` (= tokens already in the cache) with f32
    /// GEMMs or the quantised kernels ([`Linear::forward`]); the final hidden state of the last
    /// token (after the output norm).
    pub(crate) fn prompt(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, String> {
        self.check_position(position)?;
        if tokens.is_empty() {
            return Err("an empty prompt".into());
        }
        let w = Arc::clone(&self.w);
        let c = &w.cfg;
        let (t, dim, kv, hd) = (tokens.len(), c.dim, c.kv_dim(), c.head_dim);
        let width = dim + 2 * kv;
        let k = w.kernels;
        let mut x = Vec::with_capacity(t * dim);
        for &tok in tokens {
            w.embed_into(tok, &mut x)?;
        }
        let mut h = vec![0f32; t * dim];
        let mut qkv = vec![0f32; t * width];
        let mut ctx = vec![0f32; t * dim];
        let mut gu = vec![0f32; t * 2 * c.ffn];
        let mut act = vec![0f32; t * c.ffn];
        let total = position + t;
        let scale = 1.0 / (hd as f32).sqrt();
        let rotations: Vec<_> = (0..t).map(|i| w.rotation(position + i)).collect();
        // Each head's scores (t × total) and output (t × hd), reused by every layer.
        let mut per_head = vec![(vec![0f32; t * total], vec![0f32; t * hd]); c.heads];
        for (l, layer) in w.layers.iter().enumerate() {
            for (xr, hr) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                rms_norm(xr, &layer.attn_norm, c.eps, hr);
            }
            layer.qkv.forward(&h, t, &mut qkv, false, k, &mut self.rows);
            for (i, row) in qkv.chunks_exact_mut(width).enumerate() {
                if let Some(b) = &layer.qkv_bias {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                w.rope(&mut row[..dim + kv], &rotations[i]);
                self.append(l, row);
            }
            let groups = l * c.kv_heads..(l + 1) * c.kv_heads;
            let (keys, values) = (&self.keys[groups.clone()], &self.values[groups]);
            // Heads in parallel, each into its own t × hd block.
            per_head
                .par_iter_mut()
                .enumerate()
                .for_each(|(head, (scores, out))| {
                    let g = head / (c.heads / c.kv_heads);
                    // SAFETY: qkv holds t rows of `width`, the cache `total` rows of kv; the
                    // head's columns lie inside both; scores is t×total and out t×hd.
                    unsafe {
                        gemm::gemm(
                            t,
                            total,
                            hd,
                            scores.as_mut_ptr(),
                            1,
                            total as isize,
                            false,
                            qkv.as_ptr().add(head * hd),
                            1,
                            width as isize,
                            keys[g].as_ptr(),
                            hd as isize,
                            1,
                            0.0,
                            scale,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    for (i, row) in scores.chunks_exact_mut(total).enumerate() {
                        row[position + i + 1..].fill(f32::NEG_INFINITY);
                        softmax(row);
                    }
                    // SAFETY: as above.
                    unsafe {
                        gemm::gemm(
                            t,
                            hd,
                            total,
                            out.as_mut_ptr(),
                            1,
                            hd as isize,
                            false,
                            scores.as_ptr(),
                            1,
                            total as isize,
                            values[g].as_ptr(),
                            1,
                            hd as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                });
            for (head, (_, out)) in per_head.iter().enumerate() {
                for (i, row) in out.chunks_exact(hd).enumerate() {
                    ctx[i * dim + head * hd..i * dim + (head + 1) * hd].copy_from_slice(row);
                }
            }
            layer.out.forward(&ctx, t, &mut x, true, k, &mut self.rows);
            for (xr, hr) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                rms_norm(xr, &layer.ffn_norm, c.eps, hr);
            }
            layer
                .gate_up
                .forward(&h, t, &mut gu, false, k, &mut self.rows);
            for (g, a) in gu.chunks_exact(2 * c.ffn).zip(act.chunks_exact_mut(c.ffn)) {
                let (gate, up) = g.split_at(c.ffn);
                for ((a, &g), &u) in a.iter_mut().zip(gate).zip(up) {
                    *a = silu(g) * u;
                }
            }
            layer.down.forward(&act, t, &mut x, true, k, &mut self.rows);
        }
        self.len = total;
        let mut last = vec![0f32; dim];
        rms_norm(&x[(t - 1) * dim..], &w.output_norm, c.eps, &mut last);
        Ok(last)
    }

    /// Logits from a final hidden state: in f32 (exact on the file's weights) where the
    /// projection is held in f32, else by the quantised kernels.
    pub(crate) fn logits(&mut self, hidden: &[f32]) -> Vec<f32> {
        let (vocab, dim) = (self.w.cfg.vocab, self.w.cfg.dim);
        let mut out = vec![0f32; vocab];
        let Some(p) = self.w.projection_f32() else {
            self.xq.quantize(hidden);
            self.w.output_q.matvec(&self.xq, &mut out, self.w.kernels);
            return out;
        };
        assert!(hidden.len() == dim && p.len() == vocab * dim);
        // SAFETY: hidden is 1×dim, p vocab×dim (read as its transpose), out 1×vocab (asserted).
        unsafe {
            gemm::gemm(
                1,
                vocab,
                dim,
                out.as_mut_ptr(),
                1,
                vocab as isize,
                false,
                hidden.as_ptr(),
                1,
                dim as isize,
                p.as_ptr(),
                dim as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
        out
    }

    /// Feeds one generated token at `position` through the quantised weights; the logits.
    pub(crate) fn step(&mut self, token: u32, position: usize) -> Result<Vec<f32>, String> {
        self.check_position(position)?;
        let w = Arc::clone(&self.w);
        let c = &w.cfg;
        let (dim, kv, hd) = (c.dim, c.kv_dim(), c.head_dim);
        let k = w.kernels;
        let mut x = Vec::with_capacity(dim);
        w.embed_into(token, &mut x)?;
        let mut h = vec![0f32; dim];
        let mut qkv = vec![0f32; dim + 2 * kv];
        let mut ctx = vec![0f32; dim];
        let mut o = vec![0f32; dim];
        let mut gu = vec![0f32; 2 * c.ffn];
        let mut act = vec![0f32; c.ffn];
        let total = position + 1;
        let scale = 1.0 / (hd as f32).sqrt();
        let rotation = w.rotation(position);
        for (l, layer) in w.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut h);
            self.xq.quantize(&h);
            layer.qkv.matvec(&self.xq, &mut qkv, k);
            if let Some(b) = &layer.qkv_bias {
                qkv.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
            w.rope(&mut qkv[..dim + kv], &rotation);
            self.append(l, &qkv);
            let groups = l * c.kv_heads..(l + 1) * c.kv_heads;
            let (keys, values) = (&self.keys16[groups.clone()], &self.values16[groups]);
            let q = &qkv[..dim];
            ctx.par_chunks_mut(hd).enumerate().for_each(|(head, out)| {
                let g = head / (c.heads / c.kv_heads);
                let qh = &q[head * hd..(head + 1) * hd];
                let mut scores = Vec::with_capacity(total);
                attend(qh, &keys[g], &values[g], scale, &mut scores, out, k);
            });
            self.xq.quantize(&ctx);
            layer.out.matvec(&self.xq, &mut o, k);
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut h);
            self.xq.quantize(&h);
            layer.gate_up.matvec(&self.xq, &mut gu, k);
            let (gate, up) = gu.split_at(c.ffn);
            for ((a, &g), &u) in act.iter_mut().zip(gate).zip(up) {
                *a = silu(g) * u;
            }
            self.xq.quantize(&act);
            layer.down.matvec(&self.xq, &mut o, k);
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
        }
        self.len = total;
        rms_norm(&x.clone(), &w.output_norm, c.eps, &mut h);
        self.xq.quantize(&h);
        let mut logits = vec![0f32; c.vocab];
        w.output_q.matvec(&self.xq, &mut logits, k);
        Ok(logits)
    }
}
