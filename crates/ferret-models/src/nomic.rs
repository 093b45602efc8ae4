//! NomicBERT (nomic-embed-text) from a GGUF file, as llama.cpp, Ollama and GPT4All ship it:
//! BERT's post-norm layers with rotary positions instead of a position table (NeoX halves, base
//! from the file), one fused QKV projection, a SwiGLU feed-forward and no biases outside the
//! layer norms. The WordPiece vocabulary comes from the file too, so a GGUF alone is a model.
//!
//! The arithmetic is the BERT runtime's (`bert.rs`): weights dequantised to f32 once, one
//! sequence at a time, GEMMs from the `gemm` crate, buffers reused per thread.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::Tokenizer;

use crate::bert::{LayerNorm, Linear};
use crate::fastmath::{self, wide};
use crate::sentence::Pooling;
use crate::ModelError;

/// The architectures ferret runs from GGUF encoder files.
pub const GGUF_ENCODERS: &[&str] = &["nomic-bert"];

/// Tensor types read (dequantised to f32 at load).
const TENSOR_TYPES: &[GgmlDType] = &[GgmlDType::F32, GgmlDType::F16, GgmlDType::Q8_0];

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    gate: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// A loaded NomicBERT encoder.
pub struct NomicBert {
    pub hidden_size: usize,
    heads: usize,
    /// The longest sequence: the file's context length.
    pub context_length: usize,
    /// How the file says to pool token states (llama.cpp's `pooling_type`).
    pub pooling: Pooling,
    word: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    /// cos and sin of position × frequency, [context_length, head_dim / 2] each.
    cos: Vec<f32>,
    sin: Vec<f32>,
    tokenizer: Tokenizer,
}

#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    qkv: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    scores: Vec<f32>,
    tmp: Vec<f32>,
    up: Vec<f32>,
    gate: Vec<f32>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// A GGUF file's header and tensor table, with the file kept open to read tensors.
struct Gguf {
    path: PathBuf,
    content: Content,
    file: std::fs::File,
}

impl Gguf {
    fn open(path: &Path) -> Result<Self, ModelError> {
        let (content, file) = crate::gguf_header::read(path)?;
        Ok(Gguf {
            path: path.to_path_buf(),
            content,
            file,
        })
    }

    /// Refuses tensor types this runtime does not read, naming the first such tensor.
    fn check_types(&self) -> Result<(), ModelError> {
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let dtype = self.content.tensor_infos[name].ggml_dtype;
            if !TENSOR_TYPES.contains(&dtype) {
                return Err(ModelError::invalid(
                    &self.path,
                    format!(
                        "tensor '{name}' has type {dtype:?}; ferret's GGUF encoders read {TENSOR_TYPES:?}"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<&Value, ModelError> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| ModelError::invalid(&self.path, format!("no '{key}' in the metadata")))
    }

    fn string(&self, key: &str) -> Result<&str, ModelError> {
        self.meta(key)?
            .to_string()
            .map(String::as_str)
            .map_err(|_| ModelError::invalid(&self.path, format!("'{key}' is not a string")))
    }

    fn number(&self, key: &str) -> Result<f64, ModelError> {
        let n = match self.meta(key)? {
            Value::U8(v) => *v as f64,
            Value::U16(v) => *v as f64,
            Value::U32(v) => *v as f64,
            Value::U64(v) => *v as f64,
            Value::I8(v) => *v as f64,
            Value::I16(v) => *v as f64,
            Value::I32(v) => *v as f64,
            Value::I64(v) => *v as f64,
            Value::F32(v) => *v as f64,
            Value::F64(v) => *v,
            _ => {
                return Err(ModelError::invalid(
                    &self.path,
                    format!("'{key}' is not a number"),
                ))
            }
        };
        Ok(n)
    }

    fn count(&self, key: &str) -> Result<usize, ModelError> {
        let n = self.number(key)?;
        if n < 1.0 || n.fract() != 0.0 {
            return Err(ModelError::invalid(
                &self.path,
                format!("'{key}' is {n}, not a positive whole number"),
            ));
        }
        Ok(n as usize)
    }

    /// The tensor `name` as f32, row-major, checking its shape (outer dimension first).
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let path = &self.path;
        let err =
            |e: candle_core::Error| ModelError::invalid(path, format!("tensor '{name}': {e}"));
        if !self.content.tensor_infos.contains_key(name) {
            return Err(ModelError::invalid(
                path,
                format!("missing tensor '{name}'"),
            ));
        }
        let t = self
            .content
            .tensor(&mut self.file, name, &Device::Cpu)
            .map_err(err)?;
        if t.shape().dims() != shape {
            return Err(ModelError::invalid(
                path,
                format!(
                    "tensor '{name}' has shape {:?}, the metadata implies {shape:?}",
                    t.shape().dims()
                ),
            ));
        }
        t.dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear, ModelError> {
        let w = self.tensor(&format!("{name}.weight"), &[out, inp])?;
        Ok(Linear::new(w, vec![0.0; out], out, inp))
    }

    fn layer_norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm, ModelError> {
        Ok(LayerNorm::new(
            self.tensor(&format!("{name}.weight"), &[dim])?,
            self.tensor(&format!("{name}.bias"), &[dim])?,
            eps,
        ))
    }

    /// BERT's uncased WordPiece from the file's vocabulary (`tokenizer.ggml.model` = `bert`),
    /// adding [CLS] … [SEP] as the file's BOS and separator ids say.
    fn wordpiece(&self) -> Result<Tokenizer, ModelError> {
        let bad = |m: String| ModelError::invalid(&self.path, m);
        let model = self.string("tokenizer.ggml.model")?;
        if model != "bert" {
            return Err(bad(format!(
                "tokenizer '{model}': ferret's GGUF encoders read BERT WordPiece vocabularies"
            )));
        }
        let tokens = self
            .meta("tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|_| bad("'tokenizer.ggml.tokens' is not a list".into()))?
            .iter()
            .map(|t| t.to_string().cloned())
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| bad("'tokenizer.ggml.tokens' holds a non-string".into()))?;
        let tokens = wordpiece_tokens(tokens);
        let token = |key: &str| -> Result<(String, u32), ModelError> {
            let id = self.number(key)?;
            if id < 0.0 || id.fract() != 0.0 {
                return Err(bad(format!("'{key}' = {id} is not a token id")));
            }
            let id = id as usize;
            let text = tokens
                .get(id)
                .ok_or_else(|| bad(format!("'{key}' = {id} is past the vocabulary")))?;
            Ok((text.clone(), id as u32))
        };
        let (cls, sep, unk) = (
            token("tokenizer.ggml.bos_token_id")?,
            token("tokenizer.ggml.seperator_token_id")
                .or_else(|_| token("tokenizer.ggml.eos_token_id"))?,
            token("tokenizer.ggml.unknown_token_id")?,
        );
        let vocab: ahash::AHashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let wordpiece = WordPiece::builder()
            .vocab(vocab)
            .unk_token(unk.0)
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| bad(format!("vocabulary: {e}")))?;
        let mut tokenizer = Tokenizer::new(wordpiece);
        // Lower-cased, accents stripped, CJK characters split: llama.cpp's WPM preprocessing.
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .map_err(|e| bad(format!("normalizer: {e}")))?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        tokenizer.with_post_processor(Some(BertProcessing::new(sep, cls)));
        Ok(tokenizer)
    }
}

/// The vocabulary in WordPiece's spelling. llama.cpp's converter writes BERT vocabularies with
/// a phantom space instead: a word's first piece as "▁piece", a continuation without its "##",
/// special tokens ("[CLS]") as they are. Such a list (one with any "▁" token) is spelled back.
fn wordpiece_tokens(tokens: Vec<String>) -> Vec<String> {
    if !tokens.iter().any(|t| t.starts_with('\u{2581}')) {
        return tokens;
    }
    tokens
        .into_iter()
        .map(|t| {
            if let Some(word) = t.strip_prefix('\u{2581}') {
                word.to_string()
            } else if t.starts_with('[') && t.ends_with(']') {
                t
            } else {
                format!("##{t}")
            }
        })
        .collect()
}

impl NomicBert {
    /// Loads a NomicBERT GGUF (f32, f16 or q8_0 tensors).
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let mut g = Gguf::open(path)?;
        let arch = g.string("general.architecture")?.to_string();
        if !GGUF_ENCODERS.contains(&arch.as_str()) {
            return Err(ModelError::invalid(
                path,
                format!(
                    "architecture '{arch}' is not an encoder ferret runs from GGUF (it runs: {})",
                    GGUF_ENCODERS.join(", ")
                ),
            ));
        }
        g.check_types()?;
        let key = |k: &str| format!("{arch}.{k}");
        let h = g.count(&key("embedding_length"))?;
        let heads = g.count(&key("attention.head_count"))?;
        let inter = g.count(&key("feed_forward_length"))?;
        let blocks = g.count(&key("block_count"))?;
        let context_length = g.count(&key("context_length"))?;
        let eps = g.number(&key("attention.layer_norm_epsilon"))?;
        let base = g.number(&key("rope.freq_base"))?;
        if !h.is_multiple_of(heads) || !(h / heads).is_multiple_of(2) {
            return Err(ModelError::invalid(
                path,
                format!("{h} dimensions do not split into {heads} heads of an even size"),
            ));
        }
        if g.content
            .metadata
            .get(&key("attention.causal"))
            .is_some_and(|v| v.to_bool().unwrap_or(false))
        {
            return Err(ModelError::invalid(
                path,
                "a causal nomic-bert is not an encoder",
            ));
        }
        let pooling = match g.number(&key("pooling_type")).unwrap_or(1.0) as i64 {
            1 => Pooling::Mean,
            2 => Pooling::Cls,
            other => {
                return Err(ModelError::invalid(
                    path,
                    format!("pooling_type {other}: ferret pools by mean (1) or [CLS] (2)"),
                ))
            }
        };
        let tokenizer = g.wordpiece()?;
        let vocab = tokenizer.get_vocab_size(true);
        let word = g.tensor("token_embd.weight", &[vocab, h])?;
        let token_type = g.tensor("token_types.weight", &[2, h])?;
        let emb_norm = g.layer_norm("token_embd_norm", h, eps)?;
        let layers = (0..blocks)
            .map(|l| {
                let n = |s: &str| format!("blk.{l}.{s}");
                Ok(Layer {
                    qkv: g.linear(&n("attn_qkv"), 3 * h, h)?,
                    attn_out: g.linear(&n("attn_output"), h, h)?,
                    attn_norm: g.layer_norm(&n("attn_output_norm"), h, eps)?,
                    up: g.linear(&n("ffn_up"), inter, h)?,
                    gate: g.linear(&n("ffn_gate"), inter, h)?,
                    down: g.linear(&n("ffn_down"), h, inter)?,
                    out_norm: g.layer_norm(&n("layer_output_norm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let half = h / heads / 2;
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for p in 0..context_length {
            for i in 0..half {
                let angle = p as f64 * base.powf(-2.0 * i as f64 / (2 * half) as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok(NomicBert {
            hidden_size: h,
            heads,
            context_length,
            pooling,
            word,
            token_type,
            emb_norm,
            layers,
            cos,
            sin,
            tokenizer,
        })
    }

    /// The file's WordPiece tokenizer (adds [CLS] and [SEP]; no truncation set).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Runs one sequence (at most `context_length` tokens, ids inside the vocabulary) and calls
    /// `f` with the last hidden states [len, hidden].
    pub fn forward<R>(&self, ids: &[u32], f: impl FnOnce(&[f32]) -> R) -> R {
        WORKSPACE.with(|cell| {
            let ws = &mut *cell.borrow_mut();
            self.forward_in(ids, ws);
            f(&ws.x)
        })
    }

    fn forward_in(&self, ids: &[u32], ws: &mut Workspace) {
        let h = self.hidden_size;
        let len = ids.len();
        assert!(
            len <= self.context_length,
            "sequence longer than the context"
        );
        ws.x.clear();
        for &id in ids {
            let word = &self.word[id as usize * h..][..h];
            // Token type 0 for every token, as llama.cpp adds it.
            ws.x.extend(word.iter().zip(&self.token_type[..h]).map(|(a, b)| a + b));
        }
        self.emb_norm.apply(&mut ws.x);
        for layer in &self.layers {
            self.attention(layer, len, ws);
            layer.attn_out.forward(&ws.ctx, len, &mut ws.tmp);
            for (t, x) in ws.tmp.iter_mut().zip(&ws.x) {
                *t += x;
            }
            layer.attn_norm.apply(&mut ws.tmp);
            std::mem::swap(&mut ws.x, &mut ws.tmp);
            layer.up.forward(&ws.x, len, &mut ws.up);
            layer.gate.forward(&ws.x, len, &mut ws.gate);
            silu_gate(&mut ws.up, &ws.gate);
            layer.down.forward(&ws.up, len, &mut ws.tmp);
            for (t, x) in ws.tmp.iter_mut().zip(&ws.x) {
                *t += x;
            }
            layer.out_norm.apply(&mut ws.tmp);
            std::mem::swap(&mut ws.x, &mut ws.tmp);
        }
    }

    /// Rotates each head's two halves by position (NeoX layout), in place over [len, hidden].
    fn rotate(&self, x: &mut [f32]) {
        let dh = self.hidden_size / self.heads;
        let half = dh / 2;
        for (p, row) in x.chunks_exact_mut(self.hidden_size).enumerate() {
            let (cos, sin) = (&self.cos[p * half..][..half], &self.sin[p * half..][..half]);
            for head in row.chunks_exact_mut(dh) {
                let (a, b) = head.split_at_mut(half);
                for i in 0..half {
                    let (x1, x2) = (a[i], b[i]);
                    a[i] = x1 * cos[i] - x2 * sin[i];
                    b[i] = x2 * cos[i] + x1 * sin[i];
                }
            }
        }
    }

    fn attention(&self, layer: &Layer, len: usize, ws: &mut Workspace) {
        let h = self.hidden_size;
        let dh = h / self.heads;
        layer.qkv.forward(&ws.x, len, &mut ws.qkv);
        for (buf, part) in [(&mut ws.q, 0), (&mut ws.k, 1), (&mut ws.v, 2)] {
            buf.clear();
            for row in ws.qkv.chunks_exact(3 * h) {
                buf.extend_from_slice(&row[part * h..][..h]);
            }
        }
        self.rotate(&mut ws.q);
        self.rotate(&mut ws.k);
        ws.ctx.clear();
        ws.ctx.resize(len * h, 0.0);
        let scale = 1.0 / (dh as f32).sqrt();
        for head in 0..self.heads {
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
                |_| {},
            );
        }
    }
}

wide! {
    /// SwiGLU's gate: up ·= SiLU(gate), element by element.
    fn silu_gate(up: &mut [f32], gate: &[f32]) {
        for (u, &g) in up.iter_mut().zip(gate) {
            *u *= g / (1.0 + fastmath::exp::<M>(-g));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{gguf_file, QTensor};
    use candle_core::Tensor;

    const H: usize = 32;

    /// A tiny NomicBERT GGUF (1 layer, 32 dimensions, 2 heads, a 10-token vocabulary) with
    /// `dtype` tensors and architecture `arch`.
    fn write_tiny(path: &Path, arch: &str, dtype: GgmlDType) {
        // As llama.cpp's converter writes BERT vocabularies: "▁" starts a word, no "##".
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "▁cell", "▁gene", "s", "▁brain", "▁the", "▁.",
        ];
        let mut metadata: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(arch.into())),
            (format!("{arch}.block_count"), Value::U32(1)),
            (format!("{arch}.context_length"), Value::U32(16)),
            (format!("{arch}.embedding_length"), Value::U32(H as u32)),
            (format!("{arch}.feed_forward_length"), Value::U32(64)),
            (format!("{arch}.attention.head_count"), Value::U32(2)),
            (
                format!("{arch}.attention.layer_norm_epsilon"),
                Value::F32(1e-12),
            ),
            (format!("{arch}.rope.freq_base"), Value::F32(1000.0)),
            (format!("{arch}.pooling_type"), Value::U32(1)),
            ("tokenizer.ggml.model".into(), Value::String("bert".into())),
            ("tokenizer.ggml.bos_token_id".into(), Value::U32(2)),
            ("tokenizer.ggml.seperator_token_id".into(), Value::U32(3)),
            ("tokenizer.ggml.unknown_token_id".into(), Value::U32(1)),
        ];
        metadata.push((
            "tokenizer.ggml.tokens".into(),
            Value::Array(
                tokens
                    .iter()
                    .map(|t| Value::String(t.to_string()))
                    .collect(),
            ),
        ));
        let mut seed = 1u32;
        let mut tensor = |shape: &[usize], dtype: GgmlDType| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as f32 / 65_536.0 - 0.5
                })
                .collect();
            let t = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
            QTensor::quantize(&t, dtype).unwrap()
        };
        let mut tensors = vec![
            (
                "token_embd.weight".to_string(),
                tensor(&[tokens.len(), H], dtype),
            ),
            ("token_types.weight".into(), tensor(&[2, H], GgmlDType::F32)),
            (
                "token_embd_norm.weight".into(),
                tensor(&[H], GgmlDType::F32),
            ),
            ("token_embd_norm.bias".into(), tensor(&[H], GgmlDType::F32)),
        ];
        for (name, shape) in [
            ("attn_qkv.weight", vec![3 * H, H]),
            ("attn_output.weight", vec![H, H]),
            ("ffn_up.weight", vec![64, H]),
            ("ffn_gate.weight", vec![64, H]),
            ("ffn_down.weight", vec![H, 64]),
        ] {
            tensors.push((format!("blk.0.{name}"), tensor(&shape, dtype)));
        }
        for name in ["attn_output_norm", "layer_output_norm"] {
            for part in ["weight", "bias"] {
                tensors.push((format!("blk.0.{name}.{part}"), tensor(&[H], GgmlDType::F32)));
            }
        }
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut file, &metadata, &tensors).unwrap();
    }

    fn error(path: &Path) -> String {
        match NomicBert::load(path) {
            Ok(_) => panic!("{} loaded", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_tiny_model_runs_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("tiny.gguf");
        write_tiny(&good, "nomic-bert", GgmlDType::F16);
        let model = NomicBert::load(&good).unwrap();
        let ids = model
            .tokenizer()
            .encode("The cells, gene brain.", true)
            .unwrap();
        // [CLS] the cell ##s [UNK] gene brain . [SEP]: lower-cased, WordPiece, punctuation split.
        assert_eq!(ids.get_ids(), [2, 8, 4, 6, 1, 5, 7, 9, 3]);
        let hidden = model.forward(ids.get_ids(), |h| h.to_vec());
        assert_eq!(hidden.len(), 9 * H);
        assert!(hidden.iter().all(|v| v.is_finite()));
        // Rotary positions: the same token at two positions gets two different states.
        let twice = model.forward(&[4, 4], |h| h.to_vec());
        assert!(twice[..H] != twice[H..]);
        // The folder (one .gguf file) loads as a sentence encoder, which refuses int8.
        let mut encoder = crate::SentenceEncoder::load(dir.path()).unwrap();
        let e = encoder.quantize_int8().unwrap_err().to_string();
        assert!(e.contains("int8 applies to safetensors encoders"), "{e}");

        let llama = dir.path().join("llama.gguf");
        write_tiny(&llama, "llama", GgmlDType::F32);
        assert!(
            error(&llama).contains("architecture 'llama' is not an encoder ferret runs from GGUF")
        );
        let q4 = dir.path().join("q4.gguf");
        write_tiny(&q4, "nomic-bert", GgmlDType::Q4_0);
        let e = error(&q4);
        assert!(e.contains("q4.gguf") && e.contains("has type Q4_0"), "{e}");
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.gguf");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let e = error(&cut);
        assert!(e.contains("cut.gguf") && e.contains("truncated"), "{e}");
        let header_only = dir.path().join("header.gguf");
        std::fs::write(&header_only, &bytes[..40]).unwrap();
        assert!(error(&header_only).contains("not a readable GGUF file"));
    }
}
