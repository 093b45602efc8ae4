//! The cross-encoder on an XLM-RoBERTa sequence classifier (the bge-reranker layout) against
//! transformers' `XLMRobertaForSequenceClassification`: tiny pseudo-random weights and a
//! SentencePiece-Unigram tokenizer trained on SciFact, made by
//! `tests/reference/make_xlmr_cross_encoder.py` (no real XLM-R weights are reachable here).
//! Token ids exactly, logits to 1e-4, on SciFact pairs at max length 128 and 64
//! (`only_second`): RoBERTa's offset positions, single token type and classification head.
//! The weights are not stored: both sides fill them from the same 64-bit LCG stream.

use std::path::PathBuf;

use ferret_models::CrossEncoder;
use safetensors::tensor::TensorView;
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/tiny-xlmr-cross-encoder")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap())
        .unwrap()
}

/// The model folder: the fixture's config and tokenizer, and `model.safetensors` rebuilt from
/// the LCG exactly as `make_xlmr_cross_encoder.py` filled the parameters (name order,
/// row-major, values computed in f64 and rounded to f32), keeping the tensors `keep` accepts.
fn model_dir(keep: impl Fn(&str) -> bool) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), tmp.path().join(f)).unwrap();
    }
    let mut x: u64 = 20261126;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in reference()["tensors"].as_array().unwrap() {
        let name = t[0].as_str().unwrap().to_string();
        let shape: Vec<usize> = t[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let scale = |u: f64| {
            if name.contains("LayerNorm.weight") {
                1.0 + 0.2 * u
            } else if name.starts_with("classifier") {
                u
            } else {
                0.2 * u
            }
        };
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| (scale(next()) as f32).to_le_bytes())
            .collect();
        tensors.push((name, shape, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .filter(|(name, _, _)| keep(name))
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();
    tmp
}

#[test]
fn matches_transformers_xlm_roberta() {
    let model_dir = model_dir(|_| true);
    let dir = model_dir.path();
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 48);
    let mut lengths_seen = std::collections::BTreeSet::new();
    let mut logits = Vec::new();
    for case in cases {
        let max_length = case["max_length"].as_u64().unwrap() as usize;
        lengths_seen.insert(max_length);
        let model = CrossEncoder::load(dir, max_length).unwrap();
        let (q, p) = (
            case["query"].as_str().unwrap(),
            case["passage"].as_str().unwrap(),
        );
        let expected: Vec<u32> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            model.token_ids(q, p).unwrap(),
            expected,
            "{q:?} at {max_length}"
        );
        let logit = model
            .score(q, &[p], &ferret_models::Cancel::never())
            .unwrap()[0] as f64;
        let want = case["logit"].as_f64().unwrap();
        assert!(
            (logit - want).abs() < 1e-4,
            "{q:?} at {max_length}: {logit} vs {want}"
        );
        logits.push(want);
    }
    assert_eq!(lengths_seen.into_iter().collect::<Vec<_>>(), [64, 128]);
    // The fixture discriminates: the logits are not all alike.
    let spread = logits.iter().cloned().fold(f64::MIN, f64::max)
        - logits.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.1, "logit spread {spread}");
}

#[test]
fn a_roberta_encoder_without_a_classification_head_is_refused() {
    // The fixture's encoder alone: weights without `classifier.*`.
    let tmp = model_dir(|name| !name.starts_with("classifier."));
    let err = CrossEncoder::load(tmp.path(), 128).err().expect("no head");
    assert!(
        err.to_string()
            .contains("not a sequence-classification checkpoint"),
        "{err}"
    );
}
