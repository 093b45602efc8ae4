//! Pipelines on real data: RM3 and Rocchio against Anserini, fusion, explain, run cards and
//! reproduction, tuning on a training split, and errors for bad pipelines.

mod common;
use common::*;

use std::path::Path;

fn scifact_index(dir: &Path) {
    index(dir, "beir-scifact", &[]);
}

/// Runs `pipeline` over SciFact test; returns (stdout with the metrics, run path).
fn run(idx: &Path, out: &Path, pipeline: &str, extra: &[&str]) -> String {
    let d = dataset("beir-scifact");
    let (queries, qrels) = (d.join("queries.jsonl"), d.join("qrels/test.tsv"));
    let mut args = vec![
        "run",
        "--index",
        s(idx),
        "--queries",
        s(&queries),
        "--qrels",
        s(&qrels),
        "--pipeline",
        pipeline,
        "-o",
        s(out),
        "-m",
        "nDCG@10",
        "R@100",
    ];
    args.extend_from_slice(extra);
    ferret_ok(&args)
}

fn metric(stdout: &str, name: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(name)).then(|| parts.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
}

#[test]
fn rm3_and_rocchio_reproduce_anserini_on_scifact() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    scifact_index(&idx);
    // Anserini 1.7.1 on this data (tests/reference/make_anserini_references.sh):
    // RM3 0.6457 / 0.9147, Rocchio 0.6278 / 0.9187.
    let out = run(&idx, &tmp.path().join("rm3.run"), "bm25 % 1000 >> rm3", &[]);
    assert!((metric(&out, "nDCG@10") - 0.6457).abs() < 0.0005, "{out}");
    assert!((metric(&out, "R@100") - 0.9147).abs() < 0.0005, "{out}");
    let out = run(
        &idx,
        &tmp.path().join("rocchio.run"),
        "bm25(k1=0.9, b=0.4) % 1000 >> rocchio(top_fb_docs=10, top_fb_terms=10, alpha=1, beta=0.75)",
        &[],
    );
    assert!((metric(&out, "nDCG@10") - 0.6278).abs() < 0.0005, "{out}");
    assert!((metric(&out, "R@100") - 0.9187).abs() < 0.0005, "{out}");
}

#[test]
fn explain_cards_and_reproduce() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    scifact_index(&idx);
    let run_path = tmp.path().join("fused.run");
    let explain = tmp.path().join("explain.jsonl");
    let pipeline = "let lex = bm25 % 1000; rrf($lex, $lex >> rm3(fb_terms=5), k=60) % 100";
    let out = run(
        &idx,
        &run_path,
        pipeline,
        &["--explain", s(&explain), "--explain-depth", "3"],
    );
    let fused = metric(&out, "nDCG@10");
    assert!(fused > 0.6, "{out}");

    // One explain record per query: the stage tree, the expansion RM3 made, and each hit's
    // rank and score in every stage.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&explain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 300);
    let r = &records[0];
    let stages = r["stages"].as_array().unwrap();
    assert!(
        stages[0]["stage"].as_str().unwrap().starts_with("rrf("),
        "{r}"
    );
    assert_eq!(stages[0]["formula"], "score = Σ 1 / (60 + rank_i)");
    assert!(stages
        .iter()
        .any(|s| s["stage"].as_str().unwrap().starts_with("rm3(")
            && s["note"].as_str().is_some_and(|n| n.contains('^'))));
    let hit = &r["hits"][0];
    assert_eq!(hit["rank"], 1);
    assert_eq!(hit["stages"].as_array().unwrap().len(), stages.len());
    // The fused score is the sum of the reciprocal ranks its inputs gave it.
    let ranks: Vec<f64> = stages
        .iter()
        .zip(hit["stages"].as_array().unwrap())
        .filter(|(s, _)| s["depth"] == 1)
        .filter_map(|(_, p)| p["rank"].as_f64())
        .collect();
    let expect: f64 = ranks.iter().map(|r| 1.0 / (60.0 + r)).sum();
    assert!(
        (hit["score"].as_f64().unwrap() - expect).abs() < 1e-6,
        "{hit}"
    );

    // The run card records the pipeline, the index and the metrics; reproduce checks them.
    let card_path = tmp.path().join("fused.run.card.json");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    assert_eq!(card["pipeline"], pipeline);
    assert!(card["pipeline_resolved"]
        .as_str()
        .unwrap()
        .contains("rm3(fb_docs=10, fb_terms=5, original_query_weight=0.5"));
    assert_eq!(card["index"]["manifest"]["doc_count"], 5183);
    assert_eq!(card["metrics"][0]["measure"], "nDCG@10");
    assert!((card["metrics"][0]["value"].as_f64().unwrap() - fused).abs() < 5e-5);
    let out = ferret_ok(&["reproduce", s(&card_path)]);
    assert!(
        out.contains("reproduced") && out.contains("identical"),
        "{out}"
    );

    let mut tampered = card.clone();
    tampered["metrics"][0]["value"] = serde_json::json!(fused + 0.01);
    let bad = tmp.path().join("tampered.card.json");
    std::fs::write(&bad, tampered.to_string()).unwrap();
    let err = ferret_err(&["reproduce", s(&bad)]);
    assert!(err.contains("1 metric(s) differ"), "{err}");
}

#[test]
fn tune_picks_on_train_and_reports_on_test() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    scifact_index(&idx);
    let d = dataset("beir-scifact");
    let queries = d.join("queries.jsonl");
    let base = [
        "tune",
        "--index",
        s(&idx),
        "--queries",
        s(&queries),
        "--pipeline",
        "bm25(k1={k1}, b=0.4) % 1000",
        "--grid",
        "k1=0.6,0.9",
        "-m",
        "nDCG@10",
    ];
    let train = d.join("qrels/train.tsv");
    let test = d.join("qrels/test.tsv");
    let chart = tmp.path().join("tune.svg");
    let mut args = base.to_vec();
    args.extend([
        "--qrels",
        s(&train),
        "--report-qrels",
        s(&test),
        "--plot",
        s(&chart),
    ]);
    let out = ferret_ok(&args);
    assert!(out.contains("k1=0.6") && out.contains("k1=0.9"), "{out}");
    assert!(out.contains("best on") && out.contains("held-out"), "{out}");
    // The chart: both splits over k1's two settings, the chosen one marked.
    let svg = std::fs::read_to_string(&chart).unwrap();
    for text in [
        "nDCG@10 over the tuning grid",
        "training split",
        "held-out split",
        "chosen on the training split",
        "\nk1\n",
    ] {
        assert!(svg.contains(text), "{text} in {svg}");
    }
    for color in ["#0000FF", "#D95F02"] {
        let line = svg
            .lines()
            .find(|l| {
                l.starts_with("<polyline")
                    && l.contains(&format!("stroke=\"{color}\" stroke-width=\"2\""))
            })
            .unwrap_or_else(|| panic!("a {color} line in {svg}"));
        let points = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split_whitespace().count(), 2, "{line}");
    }
    // Tuning on the split that is reported is refused.
    let mut args = base.to_vec();
    args.extend(["--qrels", s(&test), "--report-qrels", s(&test)]);
    let err = ferret_err(&args);
    assert!(err.contains("share 300 queries"), "{err}");
}

#[test]
fn tune_searches_many_weights_and_saves_the_winner_as_a_run_card() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    scifact_index(&idx);
    let d = dataset("beir-scifact");
    let queries = d.join("queries.jsonl");
    let (train, test) = (d.join("qrels/train.tsv"), d.join("qrels/test.tsv"));
    let run = tmp.path().join("tuned.run");
    // Three fusion weights: BM25 with three settings of k1 and b, combined by CombSUM.
    let pipeline = "combsum(bm25(k1=0.9, b=0.4) % 1000, bm25(k1=1.2, b=0.75) % 1000, \
                    bm25(k1=0.5, b=0.2) % 1000, norm=zscore, weights=[{w1}, {w2}, {w3}]) % 100";
    let base = [
        "tune",
        "--index",
        s(&idx),
        "--queries",
        s(&queries),
        "--qrels",
        s(&train),
        "--pipeline",
        pipeline,
        "--grid",
        "w1=0,0.5,1",
        "--grid",
        "w2=0,0.5,1",
        "--grid",
        "w3=0,0.5,1",
        "-m",
        "nDCG@10",
        "-k",
        "100",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--search",
        "coordinate",
        "--report-qrels",
        s(&test),
        "-o",
        s(&run),
    ]);
    let out = ferret_ok(&args);
    let tried = out.lines().filter(|l| l.starts_with("w1=")).count();
    // From the middle (0.5, 0.5, 0.5): at least one pass of 2 + 2 + 2 other values, and never
    // a setting twice — fewer than the grid's 27.
    assert!((7..27).contains(&tried), "{tried} settings: {out}");
    let best_line = out.lines().find(|l| l.starts_with("best on")).unwrap();
    assert!(
        best_line.contains(&format!("of {tried} settings tried")),
        "{out}"
    );
    let held_out = out.lines().find(|l| l.starts_with("held-out")).unwrap();
    // The run card records the chosen pipeline and the held-out numbers it printed.
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("tuned.run.card.json")).unwrap(),
    )
    .unwrap();
    let chosen = out
        .lines()
        .find_map(|l| l.strip_prefix("pipeline: "))
        .unwrap();
    assert_eq!(card["pipeline"], chosen);
    assert!(!chosen.contains('{'), "{chosen}");
    assert_eq!(card["timings"]["queries"], 300);
    let ndcg = card["metrics"][0]["value"].as_f64().unwrap();
    assert!(
        held_out.contains(&format!("nDCG@10 {ndcg:.4}")),
        "{held_out} vs {card}"
    );
    let out = ferret_ok(&["reproduce", s(&tmp.path().join("tuned.run.card.json"))]);
    assert!(
        out.contains("reproduced") && out.contains("identical"),
        "{out}"
    );

    // Random search: the seed fixes the settings drawn.
    let random = |seed: &'static str| {
        let mut args = base.to_vec();
        args.extend(["--search", "random", "--samples", "4", "--seed", seed]);
        let out = ferret_ok(&args);
        let lines: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("w1="))
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), 4, "{out}");
        lines
    };
    assert_eq!(random("11"), random("11"));
    assert_ne!(random("11"), random("12"));
}

#[test]
fn bad_pipelines_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    scifact_index(&idx);
    let search =
        |pipeline: &str| ferret_err(&["search", s(&idx), "cancer", "--pipeline", pipeline]);
    for (pipeline, expected) in [
        ("rm4", "unknown stage 'rm4' — did you mean 'rm3'?"),
        ("dense", "no dense representation"),
        ("rrf()", "rrf needs at least 1 input pipelines"),
        ("interp(bm25)", "interp needs at least 2 input pipelines"),
        (
            "interp(bm25, bm25, alpha=2)",
            "'alpha' must be between 0 and 1",
        ),
        ("bm25 % 0", "the cut-off after '%' must be at least 1"),
        (
            "bm25 >> rm3(fb_docs=x)",
            "argument 'fb_docs' must be a number",
        ),
        (
            "bm25 >> rm3(fb_docs=2.5)",
            "'fb_docs' must be a whole number >= 1",
        ),
        ("bm25(k1)", "bm25 takes no input pipelines"),
        (
            "combsum(bm25, bm25, norm=l2)",
            "'norm' must be one of minmax, zscore, none",
        ),
        (
            "rrf(bm25, bm25, weights=[1])",
            "weights has 1 numbers but there are 2 inputs",
        ),
        // Checked when the pipeline is prepared, with a caret under the stage.
        (
            "rm3",
            "rm3 works on an incoming ranking: feed it one with '>>'",
        ),
        ("tprf(bm25)", "tprf works on an incoming ranking"),
        ("rrf(bm25, vprf)", "vprf works on an incoming ranking"),
        (
            "bm25 >> tprf(bm25, bm25)",
            "tprf takes one scorer pipeline, got 2",
        ),
    ] {
        let err = search(pipeline);
        assert!(err.contains(expected), "{pipeline}: {err}");
    }
    // The JSON form: the same stages, and errors without a text position.
    let json = r#"{"op": "stage", "name": "rrf", "inputs": [{"op": "stage", "name": "bm25"}, {"op": "stage", "name": "bm25", "args": [{"name": "k1", "value": 1.2}]}]}"#;
    let out = ferret_ok(&["search", s(&idx), "cancer", "--pipeline", json, "-k", "3"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let err = search(r#"{"op": "stage", "name": "rm4"}"#);
    assert!(
        err.contains("unknown stage 'rm4'") && !err.contains("position"),
        "{err}"
    );
    let err = search(r#"{"op": "stage", "nam": "bm25"}"#);
    assert!(err.contains("pipeline JSON: unknown field `nam`"), "{err}");
    let err = search(r#"{"op": "stage", "name": "#);
    assert!(
        err.contains("pipeline JSON:") && err.contains("column"),
        "{err}"
    );
    // Parse errors point at the position with a caret.
    let err = search("rrf(bm25,, dense)");
    assert!(
        err.contains("position 10") && err.contains("\n           ^"),
        "{err}"
    );
}

/// The cross-encoder stage and `ferret rerank` score the same pairs the same way (the model is
/// the shared tiny fixture, whose outputs are checked against transformers in ferret-models).
#[test]
fn rerank_stage_and_command_agree() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/tiny-bert-cross-encoder");
    assert!(
        fixture.join("model.safetensors").exists(),
        "fixture missing"
    );
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    scifact_index(&idx);
    let pipeline = format!("bm25 % 10 >> rerank(model='{}')", s(&fixture));
    let out = ferret_ok(&[
        "search",
        s(&idx),
        "vitamin D deficiency",
        "--pipeline",
        &pipeline,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 10);
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    // The same ten documents as ad-hoc candidates for `ferret rerank`.
    let cands = tmp.path().join("cands.jsonl");
    let lines: Vec<String> = hits
        .iter()
        .map(|h| {
            serde_json::json!({"_id": h["id"], "title": h["title"], "text": h["text"]}).to_string()
        })
        .collect();
    std::fs::write(&cands, lines.join("\n")).unwrap();
    let out = ferret_ok(&[
        "rerank",
        "--model",
        s(&fixture),
        "--query",
        "vitamin D deficiency",
        "--candidates",
        s(&cands),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    for (a, b) in hits.iter().zip(results) {
        assert_eq!(a["id"], b["id"]);
        assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() < 1e-6);
    }
    // Text-based PRF with the cross-encoder as the scorer runs.
    let prf = format!(
        "bm25 % 10 >> tprf(rerank(model='{}'), depth=2, agg=max)",
        s(&fixture)
    );
    ferret_ok(&[
        "search",
        s(&idx),
        "vitamin D deficiency",
        "--pipeline",
        &prf,
    ]);
    // Errors: no model, a model without a classification head, nothing to re-score.
    let err = ferret_err(&["search", s(&idx), "x", "--pipeline", "bm25 >> rerank"]);
    assert!(err.contains("rerank needs model="), "{err}");
    let err = ferret_err(&[
        "search",
        s(&idx),
        "x",
        "--pipeline",
        &format!("rerank(model='{}')", s(&fixture)),
    ]);
    assert!(
        err.contains("rerank works on an incoming ranking: feed it one with '>>'"),
        "{err}"
    );
    let err = ferret_err(&[
        "rerank",
        "--model",
        s(&fixture),
        "--query",
        " ",
        "--candidates",
        s(&cands),
    ]);
    assert!(err.contains("the query is empty"), "{err}");
}
