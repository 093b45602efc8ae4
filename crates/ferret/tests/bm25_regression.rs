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
