//! The tokenizer of a GGUF file, rebuilt from its metadata (`tokenizer.ggml.*`) as a Hugging
//! Face `tokenizers` byte-level BPE. Only the pre-tokenizers we can reproduce exactly are
//! accepted; any other `tokenizer.ggml.pre` is refused rather than guessed (a wrong split gives
//! silently different token ids).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::ModelError;

/// Qwen2's split before byte-level BPE (its tokenizer.json; llama.cpp's `qwen2` pre-tokenizer):
/// GPT-4's pattern with single digits.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token types: 3 = control (e.g. `<|im_start|>`), 4 = user-defined.
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

pub(crate) fn strings(ct: &Content, key: &str, path: &Path) -> Result<Vec<String>, ModelError> {
    let bad = |m: String| ModelError::invalid(path, m);
    let v = ct
        .metadata
        .get(key)
        .ok_or_else(|| bad(format!("GGUF metadata has no '{key}'")))?;
    v.to_vec()
        .map_err(|e| bad(format!("{key}: {e}")))?
        .iter()
        .map(|s| {
            s.to_string()
                .cloned()
                .map_err(|e| bad(format!("{key}: {e}")))
        })
        .collect()
}

pub(crate) fn text<'a>(ct: &'a Content, key: &str) -> Option<&'a str> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
}

pub(crate) fn number(ct: &Content, key: &str) -> Option<u64> {
    let v = ct.metadata.get(key)?;
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

/// Builds the tokenizer; special (control and user-defined) tokens are registered so that
/// chat-template markers such as `<|im_start|>` encode to their single ids.
pub(crate) fn from_gguf(ct: &Content, path: &Path) -> Result<Tokenizer, ModelError> {
    let bad = |m: String| ModelError::invalid(path, m);
    let model = text(ct, "tokenizer.ggml.model").unwrap_or("(none)");
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer model '{model}' is not supported (supported: gpt2 byte-level BPE)"
        )));
    }
    let pre = text(ct, "tokenizer.ggml.pre").unwrap_or("default");
    // Digits-then-byte-level is SmolLM's tokenizer.json; "gpt2"/"default" is plain GPT-2.
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
        "qwen2" => {
            let split = Split::new(
                SplitPattern::Regex(QWEN2_SPLIT.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| bad(format!("the qwen2 pre-tokenizer: {e}")))?;
            Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, false, false).into(),
            ])
            .into()
        }
        other => {
            return Err(bad(format!(
                "pre-tokenizer '{other}' is not supported (supported: smollm, gpt2, qwen2)"
            )))
        }
    };
    let tokens = strings(ct, "tokenizer.ggml.tokens", path)?;
    let merges = strings(ct, "tokenizer.ggml.merges", path)?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| bad(format!("tokenizer.ggml.merges: bad entry '{m}'")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| bad(format!("building the BPE tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| bad(format!("tokenizer.ggml.token_type: {e}")))?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => Vec::new(),
    };
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| **t == CONTROL || **t == USER_DEFINED)
        .map(|(tok, _)| AddedToken::from(tok.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| bad(format!("registering special tokens: {e}")))?;
    Ok(tokenizer)
}
