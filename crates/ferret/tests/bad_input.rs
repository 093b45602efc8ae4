//! Bad input gives a clear error naming the file and line (or position), never a panic.

mod common;
use common::*;

use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn index_err(corpus: &Path, dir: &Path) -> String {
    ferret_err(&["index", "--corpus", s(corpus), "--index", s(dir)])
}

#[test]
fn corpus_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let good = b"{\"_id\": \"a\", \"title\": \"T\", \"text\": \"first\"}\n";
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "malformed.jsonl",
            b"{\"_id\": \"b\", \"text\": \"x\"\n",
            "malformed.jsonl:2: malformed JSON at column",
        ),
        (
            "noid.jsonl",
            b"{\"text\": \"x\"}\n",
            "noid.jsonl:2: missing \"_id\"",
        ),
        (
            "dup.jsonl",
            b"{\"_id\": \"a\", \"text\": \"again\"}\n",
            "dup.jsonl:2: duplicate document id 'a' (first seen on line 1)",
        ),
        (
            "utf8.jsonl",
            b"{\"_id\": \"b\", \"text\": \"\xc3\x28\"}\n",
            "utf8.jsonl:2: invalid UTF-8",
        ),
        (
            "empty.jsonl",
            b"{\"_id\": \"b\", \"title\": \"\", \"text\": \"  \"}\n",
            "empty.jsonl:2: document 'b' has an empty title and text",
        ),
    ];
    for (name, line, want) in cases {
        let mut content = good.to_vec();
        content.extend_from_slice(line);
        let corpus = write(t, name, &content);
        let err = index_err(&corpus, &t.join(format!("idx-{name}")));
        assert!(err.contains(want), "{name}: {err}");
        // Nothing was committed: the directory is not an index.
        let err = ferret_err(&["search", "--index", s(&t.join(format!("idx-{name}"))), "x"]);
        assert!(err.contains("not a ferret index"), "{err}");
    }
}

#[test]
fn skip_invalid_counts_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write(
        tmp.path(),
        "c.jsonl",
        b"{\"_id\": \"a\", \"text\": \"alpha\"}\n{broken\n{\"_id\": \"a\", \"text\": \"dup\"}\n{\"_id\": \"b\", \"text\": \"beta\"}\n",
    );
    let idx = tmp.path().join("idx");
    let out = common::ferret(&[
        "index",
        "--corpus",
        s(&corpus),
        "--index",
        s(&idx),
        "--skip-invalid",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("added 2, deleted 0, skipped 2; 2 documents"),
        "{stdout}"
    );
    assert!(
        stderr.contains("c.jsonl:2: malformed JSON") && stderr.contains("c.jsonl:3: duplicate"),
        "{stderr}"
    );
}

#[test]
fn qrels_run_index_and_pipeline_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let qrels = write(t, "q.tsv", b"query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\n");
    let run = write(t, "r.run", b"1 Q0 d1 1 3.5 x\n");
    let err = ferret_err(&["eval", "--qrels", s(&qrels), s(&run), "-m", "AP"]);
    assert!(err.contains("q.tsv:3: expected 4 columns"), "{err}");

    let qrels = write(t, "q2.tsv", b"1 0 d1 1\n");
    let run = write(t, "r2.run", b"1 Q0 d1 1 3.5 x\n1 Q0 d2 2 high x\n");
    let err = ferret_err(&["eval", "--qrels", s(&qrels), s(&run), "-m", "AP"]);
    assert!(
        err.contains("r2.run:2: score 'high' is not a number"),
        "{err}"
    );
    let err = ferret_err(&["eval", "--qrels", s(&qrels), s(&run), "-m", "nDCG@ten"]);
    assert!(err.contains("unknown measure 'nDCG@ten'"), "{err}");

    // Without -m: trec_eval's default measures (those ferret computes), as trec_eval does.
    let good = write(t, "good.run", b"1 Q0 d1 1 3.5 x\n");
    let out = ferret_ok(&["eval", "--qrels", s(&qrels), s(&good)]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "run", "queries", "AP", "Rprec", "Bpref", "RR", "P@5", "P@10", "P@20", "P@100",
            "nDCG@10", "R@100", "R@1000"
        ],
        "{out}"
    );

    // A run of another query set: an error naming both files, not "0 queries, -0.0000".
    let other = write(
        t,
        "other.run",
        b"7 Q0 d1 1 3.5 x
8 Q0 d1 1 3.5 x
",
    );
    for extra in [&[][..], &["-c"][..]] {
        let mut args = vec!["eval", "--qrels", s(&qrels), s(&other)];
        args.extend_from_slice(extra);
        let err = ferret_err(&args);
        assert!(
            err.contains("other.run and ") && err.contains("q2.tsv share no query id"),
            "{err}"
        );
        assert!(err.contains("the run has 2 queries: 7, 8"), "{err}");
    }

    let err = ferret_err(&["search", "--index", s(&t.join("nowhere")), "query"]);
    assert!(
        err.contains("nowhere: not a ferret index: the directory does not exist"),
        "{err}"
    );

    let corpus = write(
        t,
        "c.jsonl",
        b"{\"_id\": \"a\", \"text\": \"alpha beta\"}\n",
    );
    let idx = t.join("idx");
    ferret_ok(&["index", "--corpus", s(&corpus), "--index", s(&idx)]);
    let err = ferret_err(&[
        "search",
        "--index",
        s(&idx),
        "alpha",
        "--pipeline",
        "bm25(k1=0.9 b=0.4)",
    ]);
    assert!(
        err.contains("position 13: expected ',' or ')'") && err.contains('^'),
        "{err}"
    );
    let err = ferret_err(&[
        "search",
        "--index",
        s(&idx),
        "alpha",
        "--pipeline",
        "bm52 % 10",
    ]);
    assert!(
        err.contains("unknown stage 'bm52' — did you mean 'bm25'?"),
        "{err}"
    );
    let err = ferret_err(&[
        "search",
        "--index",
        s(&idx),
        "alpha",
        "--pipeline",
        "bm25(k=3)",
    ]);
    assert!(err.contains("bm25 has no argument 'k'"), "{err}");
    let err = ferret_err(&["search", "--index", s(&idx), "  "]);
    assert!(err.contains("the query is empty"), "{err}");
    let err = ferret_err(&["index", "--index", s(&idx), "--delete", "zzz"]);
    assert!(err.contains("unknown document id 'zzz'"), "{err}");
    let queries = write(
        t,
        "queries.jsonl",
        b"{\"_id\": \"1\", \"text\": \"alpha\"}\n{\"_id\": \"2\" \"text\": \"x\"}\n",
    );
    let err = ferret_err(&[
        "run",
        "--index",
        s(&idx),
        "--queries",
        s(&queries),
        "-o",
        s(&t.join("o.run")),
    ]);
    assert!(err.contains("queries.jsonl:2: malformed JSON"), "{err}");
}

#[test]
fn truncated_index_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write(
        tmp.path(),
        "c.jsonl",
        b"{\"_id\": \"a\", \"text\": \"alpha beta\"}\n{\"_id\": \"b\", \"text\": \"gamma\"}\n",
    );
    let idx = tmp.path().join("idx");
    ferret_ok(&["index", "--corpus", s(&corpus), "--index", s(&idx)]);
    let chunk = std::fs::read_dir(idx.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
    let err = ferret_err(&["search", "--index", s(&idx), "alpha"]);
    let name = chunk.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name) && err.contains("truncated"), "{err}");
}
