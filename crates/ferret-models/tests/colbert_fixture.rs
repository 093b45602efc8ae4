//! ColBERT against colbert-ai 0.2.22 on the shared fixture (tiny random weights in the
//! ColBERTv2 checkpoint layout, the real BERT uncased tokenizer, SciFact queries and passages):
//! token ids exactly; query and document embeddings and the MaxSim matrix to 1e-4.

use std::path::PathBuf;

use ferret_models::colbert::{maxsim, ColbertEncoder, ColbertLayout};

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
        .join(name);
    assert!(
        dir.join("reference.json").exists(),
        "fixture not found at {} — set FERRET_FIXTURES to the shared fixtures folder",
        dir.display()
    );
    dir
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_f64().unwrap() as f32).collect(),
            None => vec![x.as_f64().unwrap() as f32],
        })
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn colbert_ai_checkpoint_matches_the_fixture() {
    let dir = fixture("tiny-colbert");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let model = ColbertEncoder::load(&dir).unwrap();
    assert_eq!(model.config().layout, ColbertLayout::ColbertAi);
    assert_eq!(model.dim(), 16);
    let queries = reference["queries"].as_array().unwrap();
    let docs = reference["docs"].as_array().unwrap();
    let q_texts: Vec<&str> = queries
        .iter()
        .map(|q| q["text"].as_str().unwrap())
        .collect();
    let d_texts: Vec<&str> = docs.iter().map(|d| d["text"].as_str().unwrap()).collect();

    let mut worst_q = 0f32;
    let encoded_q = model.encode_queries(&q_texts).unwrap();
    for (q, got) in queries.iter().zip(&encoded_q) {
        let (tokens, attended) = model.query_ids(q["text"].as_str().unwrap()).unwrap();
        assert_eq!(tokens, ids(&q["input_ids"]), "query token ids");
        let mask = ids(&q["attention_mask"]);
        assert_eq!(attended, mask.iter().filter(|&&m| m == 1).count());
        assert_eq!(got.ids, tokens);
        worst_q = worst_q.max(max_diff(&got.vectors, &floats(&q["embeddings"])));
    }
    let encoded_d = model.encode_documents(&d_texts).unwrap();
    let mut worst_d = 0f32;
    for (d, got) in docs.iter().zip(&encoded_d) {
        let tokens = model.document_ids(d["text"].as_str().unwrap()).unwrap();
        assert_eq!(tokens, ids(&d["input_ids"]), "document token ids");
        let expected = floats(&d["embeddings"]);
        assert_eq!(
            got.vectors.len(),
            expected.len(),
            "tokens kept after punctuation masking"
        );
        worst_d = worst_d.max(max_diff(&got.vectors, &expected));
    }
    let mut worst_s = 0f32;
    for (qi, row) in reference["maxsim"].as_array().unwrap().iter().enumerate() {
        for (di, expected) in floats(row).iter().enumerate() {
            let got = maxsim(&encoded_q[qi].vectors, &encoded_d[di].vectors, 16);
            worst_s = worst_s.max((got - expected).abs());
        }
    }
    println!("query {worst_q:e}, document {worst_d:e}, maxsim {worst_s:e}");
    assert!(
        worst_q < 1e-4 && worst_d < 1e-4,
        "embeddings differ: {worst_q} / {worst_d}"
    );
    assert!(worst_s < 1e-4, "MaxSim differs by {worst_s}");
}

#[test]
fn inconsistent_checkpoints_are_refused_with_the_file_named() {
    let src = fixture("tiny-colbert");
    let copy = |edit: &dyn Fn(&mut serde_json::Value)| {
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let meta = dir.path().join("artifact.metadata");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&meta, v.to_string()).unwrap();
        dir
    };
    let message = |dir: &tempfile::TempDir| match ColbertEncoder::load(dir.path()) {
        Ok(_) => panic!("loaded an inconsistent checkpoint"),
        Err(e) => e.to_string(),
    };
    let d = copy(&|v| v["dim"] = 32.into());
    let m = message(&d);
    assert!(
        m.contains("artifact.metadata") && m.contains("dim 32"),
        "{m}"
    );
    let d = copy(&|v| v["query_token_id"] = "[NOPE]".into());
    let m = message(&d);
    assert!(m.contains("query_token_id '[NOPE]'"), "{m}");
    let d = copy(&|v| {
        v.as_object_mut().unwrap().remove("doc_maxlen");
    });
    let m = message(&d);
    assert!(
        m.contains("artifact.metadata") && m.contains("doc_maxlen"),
        "{m}"
    );
    let d = copy(&|v| v["doc_maxlen"] = 4096.into());
    let m = message(&d);
    assert!(m.contains("exceed the model's 512 positions"), "{m}");
    // No metadata at all: not taken for a ColBERT checkpoint, and the message says what is.
    let d = copy(&|_| {});
    std::fs::remove_file(d.path().join("artifact.metadata")).unwrap();
    let m = message(&d);
    assert!(
        m.contains("no artifact.metadata") && m.contains("--tokens"),
        "{m}"
    );
}

/// The PyLate folder of `tests/fixtures/tiny-pylate` (PyLate's own configuration files, made
/// by `tests/reference/make_pylate_fixture.py`) with tiny-colbert's weights and tokenizer,
/// which are the tensors PyLate saved (the script checks it).
fn pylate_folder() -> tempfile::TempDir {
    let src = fixture("tiny-colbert");
    let configs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-pylate");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("1_Dense")).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(
        src.join("model.safetensors"),
        dir.path().join("1_Dense/model.safetensors"),
    )
    .unwrap();
    for f in [
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
        "1_Dense/config.json",
        "reference.json",
    ] {
        std::fs::copy(configs.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn pylate_checkpoint_matches_pylate() {
    let dir = pylate_folder();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("reference.json")).unwrap())
            .unwrap();
    let model = ColbertEncoder::load(dir.path()).unwrap();
    assert_eq!(model.config().layout, ColbertLayout::Pylate);
    assert_eq!(
        (model.config().query_maxlen, model.config().doc_maxlen),
        (24, 64)
    );
    let queries = reference["queries"].as_array().unwrap();
    let docs = reference["docs"].as_array().unwrap();
    let q_texts: Vec<&str> = queries
        .iter()
        .map(|q| q["text"].as_str().unwrap())
        .collect();
    let d_texts: Vec<&str> = docs.iter().map(|d| d["text"].as_str().unwrap()).collect();
    let mut worst = 0f32;
    for (q, got) in queries.iter().zip(model.encode_queries(&q_texts).unwrap()) {
        let (tokens, attended) = model.query_ids(q["text"].as_str().unwrap()).unwrap();
        assert_eq!(tokens, ids(&q["input_ids"]), "query token ids");
        let mask = ids(&q["attention_mask"]);
        assert_eq!(attended, mask.iter().filter(|&&m| m == 1).count());
        worst = worst.max(max_diff(&got.vectors, &floats(&q["embeddings"])));
    }
    for (d, got) in docs.iter().zip(model.encode_documents(&d_texts).unwrap()) {
        let tokens = model.document_ids(d["text"].as_str().unwrap()).unwrap();
        assert_eq!(tokens, ids(&d["input_ids"]), "document token ids");
        let expected = floats(&d["embeddings"]);
        assert_eq!(
            got.vectors.len(),
            expected.len(),
            "tokens kept after the skiplist"
        );
        worst = worst.max(max_diff(&got.vectors, &expected));
    }
    println!("pylate: embeddings within {worst:e}");
    assert!(worst < 1e-4, "embeddings differ by {worst}");
}
