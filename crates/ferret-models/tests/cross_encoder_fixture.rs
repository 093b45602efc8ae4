//! The cross-encoder against `transformers`' BertForSequenceClassification on the shared
//! fixture (tiny random weights, real WordPiece tokenizer, real SciFact pairs): token ids
//! exactly, logits to 1e-4, at max length 512 and 64 (`only_second` truncation).

use std::path::PathBuf;

use ferret_models::CrossEncoder;

fn fixture() -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
        .join("tiny-bert-cross-encoder");
    assert!(
        dir.join("reference.json").exists(),
        "fixture not found at {} — set FERRET_FIXTURES to the shared fixtures folder",
        dir.display()
    );
    dir
}

#[test]
fn matches_transformers_on_the_fixture() {
    let dir = fixture();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 24);
    let mut lengths_seen = std::collections::BTreeSet::new();
    for case in cases {
        let max_length = case["max_length"].as_u64().unwrap() as usize;
        assert_eq!(case["truncation"], "only_second");
        lengths_seen.insert(max_length);
        let model = CrossEncoder::load(&dir, max_length).unwrap();
        let (q, p) = (
            case["query"].as_str().unwrap(),
            case["passage"].as_str().unwrap(),
        );
        let ids = model.token_ids(q, p).unwrap();
        let expected: Vec<u32> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, expected, "token ids for {q:?} at {max_length}");
        let logit = model
            .score(q, &[p], &ferret_models::Cancel::never())
            .unwrap()[0] as f64;
        let want = case["logit"].as_f64().unwrap();
        assert!(
            (logit - want).abs() < 1e-4,
            "{q:?} at {max_length}: {logit} vs {want}"
        );
    }
    assert_eq!(lengths_seen.into_iter().collect::<Vec<_>>(), [64, 512]);
}
