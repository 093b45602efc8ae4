//! RM3 and Rocchio on a toy collection small enough to check by hand: the expansion terms and
//! weights each stage reports are derived here from the formulas in docs/PIPELINES.md.
//!
//! Twenty documents, analyzer `none` (no stemming, no stop words). Only d0 and d1 contain the
//! query word "zebra"; the other eighteen hold one distinct filler word each, so every content
//! word has df <= 2 = 10 % of the collection and passes Anserini's df filter.
//!
//! ```text
//! d0: zebra alpha alpha beta         tf: alpha 2, beta 1, zebra 1     |v|₁ = 4, |v|₂ = √6
//! d1: zebra alpha gamma gamma gamma  tf: alpha 1, gamma 3, zebra 1    |v|₁ = 5, |v|₂ = √11
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use ferret_index::{Index, IndexOptions, IndexWriter};
use ferret_search::{Query, Trace};

fn toy_index(dir: &std::path::Path) -> Arc<Index> {
    let corpus = dir.join("corpus.jsonl");
    let mut f = std::fs::File::create(&corpus).unwrap();
    let mut docs = vec![
        "zebra alpha alpha beta".to_string(),
        "zebra alpha gamma gamma gamma".to_string(),
    ];
    docs.extend((2..20).map(|i| format!("filler{i}")));
    for (i, text) in docs.iter().enumerate() {
        writeln!(
            f,
            "{}",
            serde_json::json!({"_id": format!("d{i}"), "text": text})
        )
        .unwrap();
    }
    drop(f);
    let idx = dir.join("idx");
    let opts = IndexOptions {
        analyzer: "none".parse().unwrap(),
        threads: 1,
        ..IndexOptions::default()
    };
    let mut w = IndexWriter::create(&idx, opts, false).unwrap();
    w.add_corpus(&corpus, &mut |_, _, _| {}).unwrap();
    w.commit().unwrap();
    Arc::new(Index::open(&idx).unwrap())
}

/// Runs `pipeline` for "zebra"; returns the first-stage scores of d0 and d1 and the expanded
/// query the feedback stage noted.
fn expansion(index: &Arc<Index>, pipeline: &str) -> (f64, f64, BTreeMap<String, f64>) {
    let stage = ferret_search::prepare(pipeline, index).unwrap();
    let mut trace = Trace::on();
    trace
        .run(stage.as_ref(), &Query::new("q", "zebra"), None, 10)
        .unwrap();
    let first = &trace.entries[1];
    assert!(first.stage.starts_with("bm25"), "{:?}", first.stage);
    let score = |id: &str| {
        first
            .hits
            .iter()
            .find(|h| index.external_id(h.doc) == id)
            .map(|h| h.score as f64)
            .unwrap()
    };
    let note = trace.entries[2].note.clone().expect("expanded query noted");
    let terms = note
        .split_whitespace()
        .map(|tw| {
            let (t, w) = tw.rsplit_once('^').unwrap();
            (t.to_string(), w.parse().unwrap())
        })
        .collect();
    (score("d0"), score("d1"), terms)
}

fn assert_terms(got: &BTreeMap<String, f64>, expected: &[(&str, f64)]) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.iter().map(|(t, _)| t).collect::<Vec<_>>(),
        "{got:?}"
    );
    for (t, w) in expected {
        assert!(
            (got[*t] - w).abs() < 1e-6,
            "{t}: {} vs {w} in {got:?}",
            got[*t]
        );
    }
}

#[test]
fn rm3_weights_follow_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let index = toy_index(dir.path());
    let (s0, s1, terms) = expansion(&index, "bm25 % 10 >> rm3(fb_docs=2, fb_terms=10)");
    assert!(s0 > 0.0 && s1 > 0.0);
    // rm(t) = Σᵢ vᵢ(t)/|vᵢ|₁ · sᵢ, then scaled to sum 1 (the sum is s0 + s1), then
    // w = ½·q + ½·rm with q(zebra) = 1.
    let z = s0 + s1;
    let rm = |a: f64, b: f64| (a / 4.0 * s0 + b / 5.0 * s1) / z;
    assert_terms(
        &terms,
        &[
            ("alpha", 0.5 * rm(2.0, 1.0)),
            ("beta", 0.5 * rm(1.0, 0.0)),
            ("gamma", 0.5 * rm(0.0, 3.0)),
            ("zebra", 0.5 + 0.5 * rm(1.0, 1.0)),
        ],
    );
    // fb_terms=2 keeps only the two heaviest feedback terms (gamma, alpha) before scaling.
    let (_, _, terms) = expansion(&index, "bm25 % 10 >> rm3(fb_docs=2, fb_terms=2)");
    assert_eq!(
        terms.keys().collect::<Vec<_>>(),
        ["alpha", "gamma", "zebra"]
    );
}

#[test]
fn rocchio_weights_follow_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let index = toy_index(dir.path());
    let (_, _, terms) = expansion(
        &index,
        "bm25 % 10 >> rocchio(top_fb_docs=2, top_fb_terms=10)",
    );
    // rel(t) = ½ (v0(t)/√6 + v1(t)/√11), scaled to unit L2 norm; w = 1·q + 0.75·rel.
    let raw = |a: f64, b: f64| 0.5 * (a / 6f64.sqrt() + b / 11f64.sqrt());
    let rel = [
        ("alpha", raw(2.0, 1.0)),
        ("beta", raw(1.0, 0.0)),
        ("gamma", raw(0.0, 3.0)),
        ("zebra", raw(1.0, 1.0)),
    ];
    let norm = rel.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
    let expected: Vec<(&str, f64)> = rel
        .iter()
        .map(|(t, w)| (*t, 0.75 * w / norm + if *t == "zebra" { 1.0 } else { 0.0 }))
        .collect();
    assert_terms(&terms, &expected);
}

#[test]
fn text_prf_rescores_with_the_query_plus_each_top_passage() {
    let dir = tempfile::tempdir().unwrap();
    let index = toy_index(dir.path());
    let run = |pipeline: &str, text: &str| {
        let stage = ferret_search::prepare(pipeline, &index).unwrap();
        let hits = Trace::off()
            .run(stage.as_ref(), &Query::new("q", text), None, 10)
            .unwrap();
        hits.iter()
            .map(|h| (index.external_id(h.doc).to_string(), h.score))
            .collect::<Vec<_>>()
    };
    // With depth 1 and sum, the scores are BM25's for "zebra" + d0's text, over the same
    // candidates (d0, d1).
    let prf = run("bm25 % 10 >> tprf(bm25, depth=1, agg=sum)", "zebra");
    let direct = run("bm25 % 10 >> bm25", "zebra zebra alpha alpha beta");
    assert_eq!(prf, direct);
    // depth 2 with max: each candidate keeps its best score over the two expanded queries.
    let max = run("bm25 % 10 >> tprf(bm25, depth=2, agg=max)", "zebra");
    let second = run("bm25 % 10 >> bm25", "zebra zebra alpha gamma gamma gamma");
    for (id, score) in &max {
        let a = direct.iter().find(|(d, _)| d == id).unwrap().1;
        let b = second.iter().find(|(d, _)| d == id).unwrap().1;
        assert_eq!(*score, a.max(b), "{id}");
    }
}
