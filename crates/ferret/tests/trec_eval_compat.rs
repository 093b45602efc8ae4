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

/// (query, document, rank, score) rows of a TREC run file.
fn run_rows(run: &Path) -> Vec<(String, String, usize, f64)> {
    std::fs::read_to_string(run)
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].to_string(),
                c[2].to_string(),
                c[3].parse().unwrap(),
                c[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Reciprocal rank of each query's first relevant document, read from the rank column.
fn rr_by_rank_column(
    rows: &[(String, String, usize, f64)],
    relevant: &[(&str, &str)],
) -> BTreeMap<String, f64> {
    let mut rr = BTreeMap::new();
    for (qid, doc) in relevant {
        let rank = rows
            .iter()
            .find(|r| r.0 == *qid && r.1 == *doc)
            .map(|r| r.2)
            .unwrap();
        rr.insert(qid.to_string(), 1.0 / rank as f64);
    }
    rr
}

#[test]
fn exact_ties_are_evaluated_in_the_order_ferret_ranked() {
    // Duplicated documents score exactly alike; each query's relevant document is the first
    // copy, which ferret ranks first among its copies, while trec_eval re-sorts exact ties by
    // document id descending (the last copy first).
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.jsonl");
    let docs = [
        ("a1", "the quick brown fox jumps over the fence"),
        ("a2", "the quick brown fox jumps over the fence"),
        ("a3", "the quick brown fox jumps over the fence"),
        ("b1", "lazy dogs sleep in the sun all day"),
        ("b2", "lazy dogs sleep in the sun all day"),
        ("c1", "a fox and a dog meet in the forest"),
        ("c2", "brown bread and butter for breakfast"),
        ("c3", "the sun rises over the quiet forest"),
    ];
    let text: String = docs
        .iter()
        .map(|(id, t)| {
            format!(
                "{}\n",
                serde_json::json!({"_id": id, "title": "", "text": t})
            )
        })
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let queries = tmp.path().join("queries.tsv");
    std::fs::write(&queries, "q1\tbrown fox jumps\nq2\tlazy dogs sleep\n").unwrap();
    let qrels = tmp.path().join("qrels.tsv");
    std::fs::write(&qrels, "query-id\tcorpus-id\tscore\nq1\ta1\t1\nq2\tb1\t1\n").unwrap();
    let relevant = [("q1", "a1"), ("q2", "b1")];
    let idx = tmp.path().join("idx");
    ferret_ok(&["index", "--corpus", s(&corpus), "--index", s(&idx)]);

    let run_with = |name: &str, extra: &[&str]| {
        let run = tmp.path().join(name);
        let mut args = vec![
            "run",
            "--index",
            s(&idx),
            "--queries",
            s(&queries),
            "--qrels",
            s(&qrels),
            "-m",
            "RR",
            "-o",
            s(&run),
        ];
        args.extend_from_slice(extra);
        let printed = ferret_ok(&args);
        (run, printed)
    };

    // Default: separated scores. The rank column, ferret's own evaluation (in memory and of
    // the file) and trec_eval all see the ranked order: each relevant copy at rank 1.
    let (separated, printed) = run_with("separated.run", &[]);
    let rows = run_rows(&separated);
    let by_rank = rr_by_rank_column(&rows, &relevant);
    assert_eq!(
        by_rank.values().copied().collect::<Vec<_>>(),
        [1.0, 1.0],
        "{rows:?}"
    );
    for q in ["q1", "q2"] {
        let mut docs: Vec<&(String, String, usize, f64)> =
            rows.iter().filter(|r| r.0 == q).collect();
        docs.sort_by(|x, y| y.3.total_cmp(&x.3).then_with(|| y.1.cmp(&x.1)));
        let ranks: Vec<usize> = docs.iter().map(|r| r.2).collect();
        assert_eq!(
            ranks,
            (1..=ranks.len()).collect::<Vec<_>>(),
            "{q}: trec_eval's sort is not the rank column: {docs:?}"
        );
    }
    assert!(printed.contains("RR         1.0000"), "{printed}");
    let theirs = reference_values(&qrels, &separated, "1");
    let (ours, _) = ferret_values(&qrels, &separated, "1");
    for (q, rr) in &by_rank {
        assert_eq!(theirs[q]["RR"], *rr, "trec_eval, {q}");
        assert_eq!(ours[q]["RR"], *rr, "ferret eval, {q}");
    }
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("separated.run.card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["scores"], "separated");

    // --raw-scores writes the exact ties, and trec_eval evaluates another order than the rank
    // column's: the reason for the default.
    let (raw, _) = run_with("raw.run", &["--raw-scores"]);
    let raw_rows = run_rows(&raw);
    assert_eq!(rr_by_rank_column(&raw_rows, &relevant), by_rank);
    let theirs = reference_values(&qrels, &raw, "1");
    assert_eq!(theirs["q1"]["RR"], 1.0 / 3.0, "{raw_rows:?}");
    assert_eq!(theirs["q2"]["RR"], 0.5, "{raw_rows:?}");
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("raw.run.card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["scores"], "raw");
}
