//! `ferret eval` against trec_eval (pytrec_eval) and ir_measures, per query and mean, on real
//! runs: SciFact (binary), Cranfield (graded 0–4, two relevance levels), CISI, and a run with
//! many tied scores.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;

const MEASURES: &[&str] = &[
    "P@5",
    "P@10",
    "R@10",
    "R@100",
    "R@1000",
    "nDCG",
    "nDCG@10",
    "nDCG@100",
    "AP",
    "AP@100",
    "RR",
    "RR@10",
    "Rprec",
    "Bpref",
    "Success@1",
    "Success@10",
    "Judged@10",
    "Judged@100",
];

type PerQuery = BTreeMap<String, BTreeMap<String, f64>>;

fn ferret_values(qrels: &Path, run: &Path, level: &str) -> (PerQuery, BTreeMap<String, f64>) {
    let mut args = vec![
        "eval",
        "--qrels",
        s(qrels),
        s(run),
        "-q",
        "--json",
        "-l",
        level,
        "-m",
    ];
    args.extend_from_slice(MEASURES);
    let v: serde_json::Value = serde_json::from_str(&ferret_ok(&args)).unwrap();
    let per_query = serde_json::from_value(v["runs"][0]["per_query"].clone()).unwrap();
    let mean = serde_json::from_value(v["runs"][0]["mean"].clone()).unwrap();
    (per_query, mean)
}

fn reference_values(qrels: &Path, run: &Path, level: &str) -> PerQuery {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/trec_eval_reference.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .args([s(qrels), s(run), level])
        .args(MEASURES)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(v["per_query"].clone()).unwrap()
}

fn assert_agree(qrels: &Path, run: &Path, level: &str) {
    let (ours, our_mean) = ferret_values(qrels, run, level);
    let theirs = reference_values(qrels, run, level);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "evaluated query sets differ"
    );
    for m in MEASURES {
        let mut sum = 0.0;
        for (qid, values) in &theirs {
            let want = values[*m];
            let got = ours[qid][*m];
            assert!(
                (got - want).abs() <= 1e-4,
                "{} q{qid} {m}: ferret {got}, reference {want}",
                run.display()
            );
            sum += want;
        }
        let want_mean = sum / theirs.len() as f64;
        let got_mean = our_mean[*m];
        assert!(
            (got_mean - want_mean).abs() <= 1e-4,
            "{} mean {m}: ferret {got_mean}, reference {want_mean}",
            run.display()
        );
    }
}

fn bm25_run(tmp: &Path, dataset_name: &str, qrels: &str, extra: &[&str]) -> std::path::PathBuf {
    let dir = dataset(dataset_name);
    let idx = tmp.join(dataset_name);
    index(&idx, dataset_name, extra);
    let run = tmp.join(format!("{dataset_name}.run"));
    ferret_ok(&[
        "run",
        "--index",
        s(&idx),
        "--queries",
        s(&dir.join("queries.jsonl")),
        "--qrels",
        s(&dir.join(qrels)),
        "-k",
        "1000",
        "-o",
        s(&run),
    ]);
    run
}

#[test]
fn agrees_with_trec_eval_on_scifact_cranfield_cisi_and_ties() {
    let tmp = tempfile::tempdir().unwrap();
    let scifact_qrels = dataset("beir-scifact").join("qrels/test.tsv");
    let scifact = bm25_run(tmp.path(), "beir-scifact", "qrels/test.tsv", &[]);
    assert_agree(&scifact_qrels, &scifact, "1");

    let cran_qrels = dataset("cranfield").join("qrels/test.tsv");
    let cran = bm25_run(
        tmp.path(),
        "cranfield",
        "qrels/test.tsv",
        &["--skip-invalid"],
    );
    assert_agree(&cran_qrels, &cran, "1");
    assert_agree(&cran_qrels, &cran, "3");

    let cisi = bm25_run(tmp.path(), "cisi", "qrels/test.tsv", &[]);
    assert_agree(&dataset("cisi").join("qrels/test.tsv"), &cisi, "1");

    // Ties: the SciFact run with scores rounded to one decimal, so most documents tie and
    // only the tie-breaking rule orders them.
    let tied = tmp.path().join("tied.run");
    let text: String = std::fs::read_to_string(&scifact)
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let score: f64 = c[4].parse().unwrap();
            format!("{} Q0 {} {} {:.1} tied\n", c[0], c[2], c[3], score)
        })
        .collect();
    std::fs::write(&tied, text).unwrap();
    assert_agree(&scifact_qrels, &tied, "1");
}
