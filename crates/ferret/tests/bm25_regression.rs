//! BM25 on real collections against the published Anserini/Pyserini regressions.

mod common;
use common::*;

fn mean(stdout: &str, measure: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(stdout).expect("eval --json output");
    v["runs"][0]["mean"][measure]
        .as_f64()
        .unwrap_or_else(|| panic!("no {measure} in {stdout}"))
}

fn run_and_eval(
    index: &std::path::Path,
    dataset_name: &str,
    qrels: &str,
    pipeline: &str,
) -> String {
    let dir = dataset(dataset_name);
    let run = index.with_extension("run");
    let qrels = dir.join(qrels);
    ferret_ok(&[
        "run",
        "--index",
        s(index),
        "--queries",
        s(&dir.join("queries.jsonl")),
        "--qrels",
        s(&qrels),
        "--pipeline",
        pipeline,
        "-k",
        "1000",
        "-o",
        s(&run),
    ]);
    ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&run),
        "-m",
        "nDCG@10",
        "R@100",
        "RR@10",
        "R@10",
        "--json",
    ])
}

#[test]
fn scifact_flat_and_multifield_match_pyserini() {
    let tmp = tempfile::tempdir().unwrap();
    let flat = tmp.path().join("flat");
    index(&flat, "beir-scifact", &[]);
    let out = run_and_eval(
        &flat,
        "beir-scifact",
        "qrels/test.tsv",
        "bm25(k1=0.9,b=0.4) % 1000",
    );
    let (ndcg, r100) = (mean(&out, "nDCG@10"), mean(&out, "R@100"));
    assert!((ndcg - 0.6789).abs() <= 0.003, "flat nDCG@10 {ndcg}");
    assert!((r100 - 0.9253).abs() <= 0.005, "flat R@100 {r100}");

    let multi = tmp.path().join("multi");
    index(&multi, "beir-scifact", &["--fields", "multi"]);
    let out = run_and_eval(
        &multi,
        "beir-scifact",
        "qrels/test.tsv",
        "bm25(title=1.0, text=1.0) % 1000",
    );
    let ndcg = mean(&out, "nDCG@10");
    assert!((ndcg - 0.6647).abs() <= 0.003, "multi-field nDCG@10 {ndcg}");
}

#[test]
fn classic_collections_and_chinese_give_sound_baselines() {
    let tmp = tempfile::tempdir().unwrap();
    // Cranfield has two empty records, which (like Anserini) are skipped and reported.
    let cran = tmp.path().join("cran");
    index(&cran, "cranfield", &["--skip-invalid"]);
    let out = run_and_eval(&cran, "cranfield", "qrels/test.tsv", "bm25 % 1000");
    assert!(mean(&out, "nDCG@10") > 0.3, "{out}");

    let cisi = tmp.path().join("cisi");
    index(&cisi, "cisi", &[]);
    let out = run_and_eval(&cisi, "cisi", "qrels/test.tsv", "bm25 % 1000");
    assert!(mean(&out, "nDCG@10") > 0.3, "{out}");

    // Word segmentation must beat character unigrams on early precision for Chinese.
    let zh = tmp.path().join("zh");
    index(&zh, "cmrc2018-zh-retrieval", &["--analyzer", "zh"]);
    let words = run_and_eval(&zh, "cmrc2018-zh-retrieval", "qrels/dev.tsv", "bm25 % 1000");
    let zh_char = tmp.path().join("zhchar");
    index(
        &zh_char,
        "cmrc2018-zh-retrieval",
        &["--analyzer", "zh-char"],
    );
    let chars = run_and_eval(
        &zh_char,
        "cmrc2018-zh-retrieval",
        "qrels/dev.tsv",
        "bm25 % 1000",
    );
    assert!(mean(&words, "RR@10") > 0.9, "{words}");
    assert!(
        mean(&words, "RR@10") > mean(&chars, "RR@10"),
        "{words} vs {chars}"
    );
}

/// The `en` analyzer gives exactly Anserini's terms and counts on every SciFact document
/// (reference made with Anserini 1.7.1 by tests/reference/make_anserini_references.sh).
#[test]
fn scifact_analysis_matches_anserini_on_every_document() {
    use sha2::{Digest, Sha256};
    use std::collections::{BTreeMap, HashMap};
    use std::io::BufRead;

    let reference_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference/scifact-anserini-analysis.tsv.gz");
    let file = std::fs::File::open(&reference_path).expect("reference file");
    let reference: HashMap<String, String> =
        std::io::BufReader::new(flate2::read::GzDecoder::new(file))
            .lines()
            .map(|l| l.unwrap())
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (id, hash) = l.split_once('\t').unwrap();
                (id.to_string(), hash.to_string())
            })
            .collect();
    assert_eq!(reference.len(), 5183);

    let corpus = dataset("beir-scifact").join("corpus.jsonl.gz");
    let mut reader = ferret_index::corpus::CorpusReader::open(&corpus).unwrap();
    let mut analyzer = ferret_text::Analyzer::new("en".parse().unwrap());
    let (mut checked, mut differing) = (0, Vec::new());
    while let Some(doc) = reader.next_document() {
        let doc = doc.unwrap();
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        analyzer.analyze(&doc.contents(), &mut |t| {
            *counts.entry(t.text.to_string()).or_default() += 1
        });
        let joined: Vec<String> = counts.iter().map(|(t, c)| format!("{t}^{c}")).collect();
        let digest = Sha256::digest(joined.join(" ").as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        if reference.get(&doc.id) != Some(&hash) {
            differing.push(doc.id.clone());
        }
        checked += 1;
    }
    assert_eq!(checked, 5183);
    assert!(
        differing.is_empty(),
        "{} documents analyzed differently from Anserini, e.g. {:?}",
        differing.len(),
        &differing[..differing.len().min(5)]
    );
}

#[test]
fn analyze_shows_terms_dropped_words_and_document_frequencies() {
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["analyze", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ferret_ok(&all)).unwrap()
    };
    let terms = |v: &serde_json::Value| -> Vec<(String, u64, String)> {
        v["terms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["term"].as_str().unwrap().to_string(),
                    t["position"].as_u64().unwrap(),
                    t["text"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let owned = |v: &[(&str, u64, &str)]| -> Vec<(String, u64, String)> {
        v.iter()
            .map(|(a, p, b)| (a.to_string(), *p, b.to_string()))
            .collect()
    };
    // English: possessive, stop words (positions kept, as Lucene counts them), Porter stems.
    let en = json(&["The irons of John's stem cells"]);
    assert_eq!(en["analyzer"], "en");
    assert_eq!(
        terms(&en),
        owned(&[
            ("iron", 1, "irons"),
            ("john", 3, "John"),
            ("stem", 4, "stem"),
            ("cell", 5, "cells")
        ])
    );
    let dropped: Vec<(&str, u64)> = en["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["word"].as_str().unwrap(), d["position"].as_u64().unwrap()))
        .collect();
    assert_eq!(dropped, [("The", 0), ("of", 2)]);
    let none = json(&["--analyzer", "none", "The irons of John's"]);
    assert_eq!(
        terms(&none),
        owned(&[
            ("the", 0, "The"),
            ("irons", 1, "irons"),
            ("of", 2, "of"),
            ("john's", 3, "John's")
        ])
    );
    let zh = json(&["--analyzer", "zh", "我爱北京天安门"]);
    let words: Vec<String> = terms(&zh).into_iter().map(|t| t.0).collect();
    assert_eq!(words, ["我", "爱", "北京", "天安门"]);

    // With an index: its analyzer, and document frequencies equal to the documents a
    // one-term BM25 search finds.
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("scifact");
    index(&idx, "beir-scifact", &[]);
    let v = json(&["--index", s(&idx), "Iron uptake in zyxwvut"]);
    assert_eq!(v["analyzer"], "en");
    assert_eq!(v["documents"], 5183);
    assert_eq!(v["fields"], serde_json::json!(["contents"]));
    for t in v["terms"].as_array().unwrap() {
        let term = t["term"].as_str().unwrap();
        let found = search_hits(&ferret_ok(&[
            "search",
            "--index",
            s(&idx),
            term,
            "-k",
            "10000",
            "--json",
        ]))
        .len() as u64;
        assert_eq!(t["doc_freq"][0].as_u64(), Some(found), "{term}");
    }
    assert_eq!(v["terms"][2]["term"], "zyxwvut");
    assert_eq!(v["terms"][2]["doc_freq"][0], 0);
    let table = ferret_ok(&["analyze", "--index", s(&idx), "Iron uptake in zyxwvut"]);
    assert!(
        table.contains("df contents") && table.contains("(stop word)"),
        "{table}"
    );

    // Bad input: an unknown analyzer, one that contradicts the index's.
    let err = ferret_err(&["analyze", "--analyzer", "klingon", "x"]);
    assert!(err.contains("unknown analyzer 'klingon'"), "{err}");
    let err = ferret_err(&["analyze", "--index", s(&idx), "--analyzer", "zh", "x"]);
    assert!(
        err.contains("differs from the index's analyzer en"),
        "{err}"
    );
}
