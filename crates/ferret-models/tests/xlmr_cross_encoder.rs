//! The cross-encoder on an XLM-RoBERTa sequence classifier (the bge-reranker layout) against
//! transformers' `XLMRobertaForSequenceClassification`: tiny random weights and a
//! SentencePiece-Unigram tokenizer trained on SciFact, made by
//! `tests/reference/make_xlmr_cross_encoder.py` (no real XLM-R weights are reachable here).
//! Token ids exactly, logits to 1e-4, on SciFact pairs at max length 128 and 64
//! (`only_second`): RoBERTa's offset positions, single token type and classification head.

use std::path::PathBuf;

use ferret_models::CrossEncoder;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/tiny-xlmr-cross-encoder")
}

#[test]
fn matches_transformers_xlm_roberta() {
    let dir = fixture();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 48);
    let mut lengths_seen = std::collections::BTreeSet::new();
    let mut logits = Vec::new();
    for case in cases {
        let max_length = case["max_length"].as_u64().unwrap() as usize;
        lengths_seen.insert(max_length);
        let model = CrossEncoder::load(&dir, max_length).unwrap();
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
        let logit = model.score(q, &[p]).unwrap()[0] as f64;
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
    // The fixture's encoder alone: config and tokenizer, weights without `classifier.*`.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("classifier."))
        .collect();
    safetensors::serialize_to_file(kept, None, &tmp.path().join("model.safetensors")).unwrap();
    let err = CrossEncoder::load(tmp.path(), 128).err().expect("no head");
    assert!(
        err.to_string()
            .contains("not a sequence-classification checkpoint"),
        "{err}"
    );
}
