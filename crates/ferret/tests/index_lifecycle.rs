//! Appends, deletes and interrupted writes on real data: statistics stay exact and the last
//! committed index stays readable.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;

/// Splits SciFact's corpus into two JSONL files (first `n` documents, the rest).
fn split_corpus(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let lines = scifact_lines();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    std::fs::write(&a, lines[..n].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[n..].join("\n") + "\n").unwrap();
    (a, b)
}

fn run(index: &Path, out: &Path) -> String {
    let d = dataset("beir-scifact");
    ferret_ok(&[
        "run",
        "--index",
        s(index),
        "--queries",
        s(&d.join("queries.jsonl")),
        "--qrels",
        s(&d.join("qrels/test.tsv")),
        "-k",
        "100",
        "-o",
        s(out),
    ]);
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn append_gives_the_same_scores_as_one_build() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let full = t.join("full");
    index(&full, "beir-scifact", &[]);
    let (a, b) = split_corpus(t, 2000);
    let parts = t.join("parts");
    ferret_ok(&["index", "--corpus", s(&a), "--index", s(&parts)]);
    ferret_ok(&["index", "--corpus", s(&b), "--index", s(&parts), "--append"]);
    assert_eq!(
        run(&full, &t.join("full.run")),
        run(&parts, &t.join("parts.run"))
    );
    // Appending an id that is already there is refused.
    let err = ferret_err(&["index", "--corpus", s(&b), "--index", s(&parts), "--append"]);
    assert!(
        err.contains("b.jsonl:1: document id") && err.contains("is already in the index"),
        "{err}"
    );
}

#[test]
fn delete_gives_the_same_scores_as_never_indexing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (a, b) = split_corpus(t, 5000);
    // Index everything, then delete the documents of b: BM25 statistics must then equal an
    // index built from a alone.
    let only_a = t.join("only-a");
    ferret_ok(&["index", "--corpus", s(&a), "--index", s(&only_a)]);
    let both = t.join("both");
    ferret_ok(&["index", "--corpus", s(&a), "--index", s(&both)]);
    ferret_ok(&["index", "--corpus", s(&b), "--index", s(&both), "--append"]);
    let ids: Vec<String> = std::fs::read_to_string(&b)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut args = vec!["index", "--index", s(&both)];
    for id in &ids {
        args.extend(["--delete", id.as_str()]);
    }
    let out = ferret_ok(&args);
    assert!(
        out.contains(&format!("deleted {}", ids.len())) && out.contains("5000 documents"),
        "{out}"
    );
    assert_eq!(
        run(&only_a, &t.join("a.run")),
        run(&both, &t.join("both.run"))
    );
}

#[test]
fn killing_an_index_build_leaves_the_previous_commit_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let idx = t.join("idx");
    index(&idx, "cisi", &[]);
    let before = ferret_ok(&[
        "search",
        "--index",
        s(&idx),
        "library classification",
        "--json",
    ]);

    // A corpus large enough to be killed midway: SciFact five times over, with fresh ids.
    let big = t.join("big.jsonl");
    let lines = scifact_lines();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    for copy in 0..5 {
        for l in &lines {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["_id"] = format!("{copy}-{}", v["_id"].as_str().unwrap()).into();
            writeln!(w, "{v}").unwrap();
        }
    }
    drop(w);
    for extra in [&["--overwrite"][..], &["--append"][..]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferret"))
            .args([
                "index",
                "--corpus",
                s(&big),
                "--index",
                s(&idx),
                "--threads",
                "1",
            ])
            .args(extra)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build finished before it could be killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let after = ferret_ok(&[
            "search",
            "--index",
            s(&idx),
            "library classification",
            "--json",
        ]);
        assert_eq!(before, after, "after killing {extra:?}");
    }
    // A killed first build leaves no index, and says so.
    let fresh = t.join("fresh");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args([
            "index",
            "--corpus",
            s(&big),
            "--index",
            s(&fresh),
            "--threads",
            "1",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    let err = ferret_err(&["search", "--index", s(&fresh), "x"]);
    assert!(err.contains("not a ferret index"), "{err}");
}

#[test]
fn an_index_of_another_format_version_is_refused_and_replaced_by_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = split_corpus(tmp.path(), 50);
    let idx = tmp.path().join("idx");
    ferret_ok(&["index", "--corpus", s(&a), "--index", s(&idx)]);
    // An index written by an older ferret: same layout, older format version.
    let manifest_path = idx.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["format_version"] = 1.into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();

    let err = ferret_err(&["search", "--index", s(&idx), "stem cells"]);
    assert!(
        err.contains("manifest.json: index format version 1 is not supported")
            && err.contains("--overwrite"),
        "{err}"
    );
    let err = ferret_err(&["index", "--corpus", s(&a), "--index", s(&idx), "--append"]);
    assert!(err.contains("format version 1"), "{err}");
    let err = ferret_err(&["index", "--corpus", s(&a), "--index", s(&idx)]);
    assert!(err.contains("format version 1"), "{err}");

    ferret_ok(&[
        "index",
        "--corpus",
        s(&a),
        "--index",
        s(&idx),
        "--overwrite",
    ]);
    let out = ferret_ok(&["search", "--index", s(&idx), "stem cells", "--json"]);
    assert!(out.contains("\"id\""), "{out}");
}

#[test]
fn indexing_past_the_memory_budget_stops_and_keeps_the_last_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (a, _) = split_corpus(t, 1000);
    let index = t.join("index");
    ferret_ok(&[
        "index",
        "--corpus",
        s(&a),
        "--index",
        s(&index),
        "--memory-budget",
        "188M",
    ]);
    let before = run(&index, &t.join("before.run"));
    // 1,200 documents with 20 kB ids: 24 MB of ids, more than the 13 MB a 188 MB budget leaves
    // them (after the base and the lexical indexer's quarter).
    let big = t.join("big-ids.jsonl");
    let lines: Vec<String> = (0..1200)
        .map(|i| {
            format!(
                r#"{{"_id": "{i}-{}", "text": "text {i}"}}"#,
                "x".repeat(20_000)
            )
        })
        .collect();
    std::fs::write(&big, lines.join("\n") + "\n").unwrap();
    let err = ferret_err(&[
        "index",
        "--corpus",
        s(&big),
        "--index",
        s(&index),
        "--append",
        "--memory-budget",
        "188M",
    ]);
    assert!(
        err.contains("more than the memory budget of 188 MB")
            && err.contains("document ids")
            && err.contains("--memory-budget"),
        "{err}"
    );
    assert_eq!(before, run(&index, &t.join("after.run")));
    // Within a larger budget the same append goes through.
    let out = ferret_ok(&[
        "index",
        "--corpus",
        s(&big),
        "--index",
        s(&index),
        "--append",
        "--memory-budget",
        "1G",
    ]);
    assert!(out.contains("2200 documents in the index"), "{out}");
    let err = ferret_err(&[
        "index",
        "--corpus",
        s(&a),
        "--index",
        s(&t.join("small")),
        "--memory-budget",
        "100M",
    ]);
    assert!(
        err.contains("too small") && err.contains("at least 188 MB"),
        "{err}"
    );
    let err = ferret_err(&[
        "index",
        "--corpus",
        s(&a),
        "--index",
        s(&t.join("small")),
        "--memory-budget",
        "lots",
    ]);
    assert!(err.contains("not a size"), "{err}");
}
