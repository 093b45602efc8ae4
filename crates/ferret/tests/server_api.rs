//! `ferret serve` over real HTTP on a SciFact index: searches in text and JSON form agree with
//! the command line (all 300 test queries, nDCG@10 as published), documents appear and
//! disappear, rerank reproduces the cross-encoder fixture, the model policy and limits hold,
//! bad requests get stable JSON errors, no request reaches files outside the index, and a
//! SIGTERM lets the request in flight finish.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::server::{code, Client, Server};
use common::{dataset, ferret_ok, s};
use serde_json::{json, Value};

/// One SciFact index shared by the read-only tests.
fn scifact() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::index(&dir.path().join("idx"), "beir-scifact", &[]);
        dir
    })
    .path()
    .join("idx")
    .leak()
}

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    assert!(
        dir.join("tiny-bert-cross-encoder/reference.json").exists(),
        "fixtures not found at {} — set FERRET_FIXTURES",
        dir.display()
    );
    dir
}

/// SciFact test queries: (id, text), in qrels order.
fn test_queries() -> Vec<(String, String)> {
    let dir = dataset("beir-scifact");
    let judged: BTreeSet<String> = std::fs::read_to_string(dir.join("qrels/test.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    let file = std::fs::File::open(dir.join("queries.jsonl")).unwrap();
    std::io::BufReader::new(file)
        .lines()
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
        .filter(|q| judged.contains(q["_id"].as_str().unwrap()))
        .map(|q| {
            (
                q["_id"].as_str().unwrap().to_string(),
                q["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn hit_ids(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {v}"))
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn http_search_matches_the_command_line_on_all_scifact_test_queries() {
    let index = scifact();
    let server = Server::start(index, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = dataset("beir-scifact");
    let qrels = dir.join("qrels/test.tsv");
    let cli_run = tmp.path().join("cli.run");
    ferret_ok(&[
        "run",
        "--index",
        s(index),
        "--queries",
        s(&dir.join("queries.jsonl")),
        "--qrels",
        s(&qrels),
        "--pipeline",
        "bm25",
        "-k",
        "100",
        "-o",
        s(&cli_run),
        // The API returns scores as computed.
        "--raw-scores",
    ]);
    let mut http_run = String::new();
    for (qid, text) in test_queries() {
        let (status, v) = server.post(
            "/v1/search",
            &json!({"query": text, "pipeline": "bm25", "k": 100}),
        );
        assert_eq!(status, 200, "{v}");
        for h in v["hits"].as_array().unwrap() {
            http_run.push_str(&format!(
                "{qid} Q0 {} {} {} http\n",
                h["id"].as_str().unwrap(),
                h["rank"],
                h["score"]
            ));
        }
    }
    let http_path = tmp.path().join("http.run");
    std::fs::write(&http_path, &http_run).unwrap();
    // Same documents in the same order, same scores, query by query.
    let rankings = |text: &str| -> HashMap<String, Vec<(String, f64)>> {
        let mut m: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            m.entry(f[0].to_string())
                .or_default()
                .push((f[2].to_string(), f[4].parse().unwrap()));
        }
        m
    };
    let cli = rankings(&std::fs::read_to_string(&cli_run).unwrap());
    let http = rankings(&http_run);
    assert_eq!(cli.len(), 300);
    assert_eq!(cli.len(), http.len());
    for (qid, c) in &cli {
        let h = &http[qid];
        assert_eq!(c.len(), h.len(), "query {qid}");
        for (a, b) in c.iter().zip(h) {
            assert_eq!(a.0, b.0, "query {qid}");
            assert!((a.1 - b.1).abs() < 1e-4, "query {qid}: {a:?} vs {b:?}");
        }
    }
    // And so Pyserini's published nDCG@10 for BM25 flat.
    let out = ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&http_path),
        "-m",
        "ndcg_cut.10",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let ndcg = find_number(&v, "nDCG@10").expect("nDCG@10 in the eval output");
    assert!((ndcg - 0.6789).abs() <= 0.003, "nDCG@10 over HTTP = {ndcg}");
}

/// The first number under a key named `name` anywhere in `v`.
fn find_number(v: &Value, name: &str) -> Option<f64> {
    match v {
        Value::Object(m) => m
            .get(name)
            .and_then(Value::as_f64)
            .or_else(|| m.values().find_map(|x| find_number(x, name))),
        Value::Array(a) => a.iter().find_map(|x| find_number(x, name)),
        _ => None,
    }
}

#[test]
fn json_pipelines_explain_and_the_pipeline_endpoint() {
    let server = Server::start(scifact(), &[]);
    let text = "bm25 % 1000 >> rm3(fb_docs=10, fb_terms=10)";
    let (status, checked) = server.post("/v1/pipeline", &json!({"pipeline": text}));
    assert_eq!(status, 200, "{checked}");
    let query = "microRNA regulation of cancer";
    let (_, by_text) = server.post(
        "/v1/search",
        &json!({"query": query, "pipeline": text, "k": 20}),
    );
    let (status, by_json) = server.post(
        "/v1/search",
        &json!({"query": query, "pipeline": checked["json"].clone(), "k": 20}),
    );
    assert_eq!(status, 200, "{by_json}");
    assert_eq!(hit_ids(&by_text), hit_ids(&by_json));
    assert_eq!(by_text["pipeline"], by_json["pipeline"]);
    assert_ne!(
        hit_ids(&by_text),
        hit_ids(
            &server
                .post("/v1/search", &json!({"query": query, "k": 20}))
                .1
        ),
        "rm3 should change BM25's ranking"
    );

    let (_, explained) = server.post(
        "/v1/search",
        &json!({"query": query, "pipeline": "rrf(bm25 % 100, bm25(k1=1.2, b=0.75) % 100, k=60)", "k": 5, "explain": true}),
    );
    let stages = explained["stages"].as_array().expect("stages with explain");
    assert!(stages.len() >= 3, "{explained}");
    assert!(stages
        .iter()
        .any(|s| s["formula"].as_str().is_some_and(|f| f.contains("60"))));
    for h in explained["hits"].as_array().unwrap() {
        let positions = h["explain"].as_array().unwrap();
        assert!(
            positions.len() >= 2,
            "each hit ranked by the fusion and an input: {h}"
        );
        assert!(
            h["snippet"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["hit"] == true),
            "{h}"
        );
    }
}

#[test]
fn documents_are_added_and_deleted_behind_the_api_key() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    common::index(&index, "beir-scifact", &[]);
    let key = "s3cret-key";
    let server = Server::start(&index, &["--api-key", key]);
    let (_, health) = server.get("/health");
    let (docs0, gen0) = (
        health["documents"].as_u64().unwrap(),
        health["generation"].as_u64().unwrap(),
    );

    let doc = json!({"documents": [{"id": "ferret-new-1", "title": "Zorblax quantum ferrets",
        "text": "A zorblax is a ferret that tunnels through quantum barriers.", "metadata": {"source": "test"}}]});
    let body = doc.to_string();
    let (status, v) = server.post_raw("/v1/documents", "application/json", &body, None);
    assert_eq!((status, code(&v)), (401, "unauthorized"));
    let (status, v) = server.post_raw("/v1/documents", "application/json", &body, Some("wrong"));
    assert_eq!((status, code(&v)), (401, "unauthorized"));
    let (status, v) = server.post_raw("/v1/documents", "application/json", &body, Some(key));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["added"].as_u64(), v["documents"].as_u64()),
        (Some(1), Some(docs0 + 1))
    );
    assert!(v["generation"].as_u64().unwrap() > gen0);

    let (_, found) = server.post("/v1/search", &json!({"query": "zorblax tunnels", "k": 3}));
    assert_eq!(
        hit_ids(&found).first().map(String::as_str),
        Some("ferret-new-1"),
        "{found}"
    );
    let (status, got) = server.get("/v1/documents/ferret-new-1");
    assert_eq!(status, 200);
    assert_eq!(got["title"], "Zorblax quantum ferrets");
    assert_eq!(got["metadata"]["source"], "test");

    // The same id again, or twice in one request: conflict, nothing written.
    let (status, v) = server.post_raw("/v1/documents", "application/json", &body, Some(key));
    assert_eq!((status, code(&v)), (409, "duplicate_document"), "{v}");
    let twice = json!({"documents": [{"id": "x1", "text": "a"}, {"id": "x1", "text": "b"}]});
    let (status, v) = server.post_raw(
        "/v1/documents",
        "application/json",
        &twice.to_string(),
        Some(key),
    );
    assert_eq!((status, code(&v)), (409, "duplicate_document"), "{v}");
    let empty = json!({"documents": [{"id": "x2", "title": "", "text": "  "}]});
    let (status, v) = server.post_raw(
        "/v1/documents",
        "application/json",
        &empty.to_string(),
        Some(key),
    );
    assert_eq!((status, code(&v)), (400, "invalid_document"), "{v}");
    assert_eq!(
        server.get("/health").1["documents"].as_u64(),
        Some(docs0 + 1)
    );

    // Delete: gone from search and look-up; deleting again is 404.
    let (status, v) = server.delete("/v1/documents/ferret-new-1", None);
    assert_eq!((status, code(&v)), (401, "unauthorized"));
    let (status, v) = server.delete("/v1/documents/ferret-new-1", Some(key));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["documents"].as_u64(), Some(docs0));
    let (_, after) = server.post("/v1/search", &json!({"query": "zorblax tunnels", "k": 3}));
    assert!(
        !hit_ids(&after).contains(&"ferret-new-1".to_string()),
        "{after}"
    );
    assert_eq!(server.get("/v1/documents/ferret-new-1").0, 404);
    let (status, v) = server.delete("/v1/documents/ferret-new-1", Some(key));
    assert_eq!((status, code(&v)), (404, "unknown_document"));
    // A SciFact document can be deleted too, and the index on disk agrees with the server.
    let (status, _) = server.delete("/v1/documents/4983", Some(key));
    assert_eq!(status, 200);
    drop(server);
    let cli = ferret_ok(&["search", "--index", s(&index), "zorblax", "--json"]);
    assert!(!cli.contains("ferret-new-1"));
}

#[test]
fn rerank_reproduces_the_cross_encoder_fixture_and_follows_the_model_policy() {
    let model = fixtures().join("tiny-bert-cross-encoder");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("reference.json")).unwrap())
            .unwrap();
    let server = Server::start(scifact(), &["--allow-model", s(&model)]);
    let mut by_query: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for c in reference["cases"].as_array().unwrap() {
        if c["max_length"] == 512 {
            by_query
                .entry(c["query"].as_str().unwrap().to_string())
                .or_default()
                .push((
                    c["passage"].as_str().unwrap().to_string(),
                    c["logit"].as_f64().unwrap(),
                ));
        }
    }
    assert!(!by_query.is_empty());
    for (query, cases) in &by_query {
        let documents: Vec<Value> = cases
            .iter()
            .enumerate()
            .map(|(i, (p, _))| json!({"id": format!("p{i}"), "text": p}))
            .collect();
        let (status, v) = server.post(
            "/v1/rerank",
            &json!({"query": query, "documents": documents, "model": s(&model)}),
        );
        assert_eq!(status, 200, "{v}");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), cases.len());
        let mut last = f64::INFINITY;
        for r in results {
            let i = r["index"].as_u64().unwrap() as usize;
            let score = r["score"].as_f64().unwrap();
            assert!(
                (score - cases[i].1).abs() < 1e-4,
                "{query}: passage {i} scored {score}, reference {}",
                cases[i].1
            );
            assert_eq!(r["id"], format!("p{i}"));
            assert!(score <= last);
            last = score;
        }
    }
    // Plain strings work too, and top_n cuts.
    let (query, cases) = by_query.iter().next().unwrap();
    let texts: Vec<&str> = cases.iter().map(|(p, _)| p.as_str()).collect();
    let (status, v) = server.post(
        "/v1/rerank",
        &json!({"query": query, "documents": texts, "model": format!("rerank(model={:?})", s(&model)), "top_n": 2}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 2);

    // Models the server was not told about never reach the file system.
    for model in [
        "/etc",
        "../../etc/passwd",
        "rerank(model='/tmp')",
        "pointwise(llm='/etc/passwd')",
        "pointwise(llm=smollm2, api='http://169.254.169.254')",
    ] {
        let (status, v) = server.post(
            "/v1/rerank",
            &json!({"query": "q", "documents": ["a"], "model": model}),
        );
        assert_eq!(
            (status, code(&v)),
            (403, "model_not_allowed"),
            "{model}: {v}"
        );
    }
    let (status, v) = server.post(
        "/v1/search",
        &json!({"query": "q", "pipeline": "bm25 % 10 >> rerank(model='/etc')"}),
    );
    assert_eq!((status, code(&v)), (403, "model_not_allowed"), "{v}");
    let (status, v) = server.post(
        "/v1/rerank",
        &json!({"query": "q", "documents": [], "model": s(&model)}),
    );
    assert_eq!((status, code(&v)), (400, "bad_document_count"), "{v}");
    let (status, v) = server.post(
        "/v1/rerank",
        &json!({"query": "q", "documents": ["a"], "model": "bm25(k1=1)"}),
    );
    assert_eq!((status, code(&v)), (400, "invalid_pipeline"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a reranker"),
        "{v}"
    );
}

#[test]
fn bad_requests_get_stable_json_errors() {
    let server = Server::start(scifact(), &["--max-body-bytes", "4096"]);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"query": ""}), 400, "empty_query"),
        (json!({"query": "   "}), 400, "empty_query"),
        (json!({"query": "x".repeat(1001)}), 400, "query_too_long"),
        (json!({"query": "cells", "k": 0}), 400, "k_out_of_range"),
        (json!({"query": "cells", "k": 1001}), 400, "k_out_of_range"),
        (json!({"query": "cells", "k": -1}), 400, "invalid_json"),
        (
            json!({"query": "cells", "pipeline": 7}),
            400,
            "invalid_pipeline",
        ),
        (
            json!({"query": "cells", "pipeline": {"op": "nope"}}),
            400,
            "invalid_pipeline",
        ),
        (
            json!({"query": "cells", "pipeline": "bm25 >> bm26"}),
            400,
            "invalid_pipeline",
        ),
        (
            json!({"query": "cells", "colour": "red"}),
            400,
            "invalid_json",
        ),
        (json!({"k": 3}), 400, "invalid_json"),
        (
            json!({"query": "cells", "pipeline": "rrf(bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25, bm25)"}),
            400,
            "pipeline_too_large",
        ),
    ];
    for (body, status, want) in cases {
        let (got, v) = server.post("/v1/search", &body);
        assert_eq!((got, code(&v)), (status, want), "{body}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A parse error points at the position (in characters).
    let (_, v) = server.post(
        "/v1/search",
        &json!({"query": "cells", "pipeline": "bm25 >> rm3(fb_docs=)"}),
    );
    assert_eq!(v["error"]["position"], 20, "{v}");
    let (status, v) = server.post_raw("/v1/search", "application/json", "{\"query\": ", None);
    assert_eq!((status, code(&v)), (400, "invalid_json"));
    let (status, v) = server.post_raw("/v1/search", "text/plain", "{\"query\": \"cells\"}", None);
    assert_eq!((status, code(&v)), (415, "unsupported_media_type"));
    let big =
        json!({"query": "cells", "pipeline": format!("bm25{}", " ".repeat(5000))}).to_string();
    let (status, v) = server.post_raw("/v1/search", "application/json", &big, None);
    assert_eq!((status, code(&v)), (413, "payload_too_large"), "{v}");
    let (status, v) = server.get("/v1/nothing-here");
    assert_eq!((status, code(&v)), (404, "not_found"));
    let (status, v) = server.delete("/v1/search", None);
    assert_eq!((status, code(&v)), (405, "method_not_allowed"));
    let (status, v) = server.get("/v1/documents/no-such-id");
    assert_eq!((status, code(&v)), (404, "unknown_document"));
    let (status, v) = server.get("/v1/documents/4983/image");
    assert_eq!((status, code(&v)), (404, "no_image"));
    // Server still healthy.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn no_request_path_reaches_files_outside_the_index() {
    let index = scifact();
    let server = Server::start(index, &[]);
    let manifest = std::fs::read_to_string(index.join("manifest.json")).unwrap();
    let attempts = [
        "GET /../../../../etc/passwd HTTP/1.1",
        "GET /v1/documents/..%2F..%2F..%2Fetc%2Fpasswd HTTP/1.1",
        "GET /v1/documents/%2e%2e%2fmanifest.json HTTP/1.1",
        "GET /v1/documents/../manifest.json HTTP/1.1",
        "GET /v1/documents/..%2Fmanifest.json/image HTTP/1.1",
        "GET /app.js/../../manifest.json HTTP/1.1",
        "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1",
        "GET //etc/passwd HTTP/1.1",
        "GET /manifest.json HTTP/1.1",
        "GET /docs/ HTTP/1.1",
    ];
    for a in attempts {
        let (status, response) = server.raw(a);
        assert!(status == 404 || status == 400, "{a}: {status}\n{response}");
        assert!(!response.contains("root:"), "{a} leaked /etc/passwd");
        assert!(
            !response.contains("format_version"),
            "{a} leaked the manifest"
        );
        assert!(!response.contains(&manifest), "{a} leaked the manifest");
    }
}

#[test]
fn openapi_document_and_metrics() {
    let server = Server::start(scifact(), &[]);
    let (status, doc) = server.get("/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/v1/index",
        "/v1/search",
        "/v1/pipeline",
        "/v1/rerank",
        "/v1/documents",
        "/v1/documents/{id}",
        "/v1/documents/{id}/image",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["SearchRequest"].is_object());
    let (_, info) = server.get("/v1/index");
    assert_eq!(info["documents"].as_u64(), Some(5183));
    assert!(info["presets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pipeline"] == "bm25"));
    server.post("/v1/search", &json!({"query": "cells"}));
    server.post("/v1/search", &json!({"query": ""}));
    let (status, text) = server.get_text("/metrics");
    assert_eq!(status, 200);
    for needle in [
        r#"ferret_http_requests_total{route="/v1/search",method="POST",status="200"} 1"#,
        r#"ferret_http_requests_total{route="/v1/search",method="POST",status="400"} 1"#,
        "ferret_http_request_duration_seconds_bucket",
        "ferret_index_documents 5183",
        "ferret_process_resident_memory_bytes",
    ] {
        assert!(text.contains(needle), "{needle} not in /metrics:\n{text}");
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_slow_work_times_out() {
    // A real slow request: loading SmolLM2 and pointwise LLM reranking of 5 SciFact passages.
    ferret_models::llm::gguf::locate("smollm2").expect("the SmolLM2 GGUF (fetched from PyPI)");
    let pipeline = "bm25 % 5 >> pointwise(llm=smollm2, cache=0)";
    let body = json!({"query": "microRNA regulation of cancer", "pipeline": pipeline, "k": 5});

    let server = Server::start(scifact(), &["--timeout-s", "0.05"]);
    let (status, v) = server.post("/v1/search", &body);
    assert_eq!((status, code(&v)), (503, "timeout"), "{v}");
    drop(server);

    // A generous limit: the machine may be busy with other tests.
    let server = Server::start(scifact(), &["--timeout-s", "600"]);
    let probe = Client {
        url: server.url.clone(),
    };
    let client = std::thread::spawn(move || probe.post("/v1/search", &body));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (exit, printed) = server.terminate();
    let (status, v) = client.join().unwrap();
    assert_eq!(status, 200, "the request in flight should finish: {v}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 5);
    assert!(exit.success(), "{exit:?}");
    assert!(printed.contains("shut down"), "{printed}");
}

#[test]
fn searches_are_answered_while_a_write_is_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    common::index(&index, "beir-scifact", &[]);
    let server = Server::start(&index, &["--max-body-bytes", "16000000"]);
    let (_, health) = server.get("/health");
    let gen0 = health["generation"].as_u64().unwrap();
    // 1000 SciFact documents again under new ids: one large write.
    let corpus = dataset("beir-scifact").join("corpus.jsonl.gz");
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(corpus).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let documents: Vec<Value> = text
        .lines()
        .take(1000)
        .map(|l| {
            let d: Value = serde_json::from_str(l).unwrap();
            json!({"id": format!("copy-{}", d["_id"].as_str().unwrap()), "title": d["title"], "text": d["text"]})
        })
        .collect();
    let body = json!({ "documents": documents });
    let writer = Client {
        url: server.url.clone(),
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let write = std::thread::spawn(move || {
        let r = writer.post("/v1/documents", &body);
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    });
    let mut during = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let (status, v) = server.post("/v1/search", &json!({"query": "cancer cells", "k": 5}));
        assert_eq!(status, 200, "{v}");
        if !done.load(std::sync::atomic::Ordering::SeqCst) {
            during += 1;
            // Until the write returns, searches see a committed generation: the old one, or the
            // new one once it has been swapped in.
            assert!(v["generation"].as_u64().unwrap() >= gen0);
        }
    }
    let (status, v) = write.join().unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["added"].as_u64(), Some(1000));
    assert!(during > 0, "no search was answered while the write ran");
    let (_, after) = server.get("/health");
    assert_eq!(after["documents"].as_u64(), Some(5183 + 1000));
    let (_, hit) = server.get("/v1/documents/copy-4983");
    assert!(hit["text"].as_str().is_some_and(|t| !t.is_empty()), "{hit}");
    println!("{during} searches answered during the write");
}

/// A metric's value in /metrics text (`name value` lines).
fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = server.get_text("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn timed_out_llm_searches_are_cancelled_and_cannot_starve_bm25() {
    ferret_models::llm::gguf::locate("smollm2").expect("the SmolLM2 GGUF (fetched from PyPI)");
    // Two workers: LLM pipelines (slow from the start: they rerank with a model) may hold one;
    // the other stays for fast pipelines.
    let server = Server::start(scifact(), &["--timeout-s", "6", "--workers", "2"]);
    let query = "microRNA regulation of cancer";
    // Loads the model (which is not cancelled) and times one pointwise LLM call.
    let warm =
        json!({"query": query, "pipeline": "bm25 % 1 >> pointwise(llm=smollm2, cache=0)", "k": 1});
    let (status, v) = server.post("/v1/search", &warm);
    assert!(status == 200 || code(&v) == "timeout", "{status} {v}");
    let (status, v) = server.post("/v1/search", &warm);
    assert_eq!(status, 200, "{v}");
    let per_call_s = v["took_ms"].as_f64().unwrap() / 1000.0;
    let (status, _) = server.post("/v1/search", &json!({"query": query, "k": 10}));
    assert_eq!(status, 200);

    // A flood: three searches that each ask the LLM about 200 passages — minutes of work.
    let calls = 200.0;
    let slow = json!({"query": query, "pipeline": "bm25 % 200 >> pointwise(llm=smollm2, cache=0)", "k": 10});
    let flood: Vec<_> = (0..3)
        .map(|_| {
            let (client, body) = ((*server).clone(), slow.clone());
            std::thread::spawn(move || client.post("/v1/search", &body))
        })
        .collect();
    // Meanwhile BM25 searches keep being answered (each would time out if the LLM searches
    // held every worker).
    let start = std::time::Instant::now();
    let mut bm25 = Vec::new();
    while !flood.iter().all(|t| t.is_finished()) {
        let t = std::time::Instant::now();
        let (status, v) = server.post("/v1/search", &json!({"query": query, "k": 10}));
        assert_eq!(status, 200, "a BM25 search during the LLM flood: {v}");
        bm25.push(t.elapsed().as_secs_f64());
    }
    let flood_s = start.elapsed().as_secs_f64();
    for t in flood {
        let (status, v) = t.join().unwrap();
        assert_eq!((status, code(&v)), (503, "timeout"), "{v}");
    }
    assert!(!bm25.is_empty());
    bm25.sort_by(f64::total_cmp);
    // The LLM search that got a worker was cancelled: it stopped and freed its slot soon
    // after its deadline, not after its ~`calls` LLM calls.
    let mut waited = 0.0;
    while metric(&server, "ferret_work_overrun_seconds_count") < 1.0 {
        assert!(
            waited < calls * per_call_s,
            "the timed-out work is still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 0.1;
    }
    let count = metric(&server, "ferret_work_overrun_seconds_count");
    let overrun = metric(&server, "ferret_work_overrun_seconds_sum") / count;
    println!(
        "LLM flood {flood_s:.1} s: {} BM25 searches answered, max {:.3} s; cancelled work freed its slot {overrun:.3} s after its deadline (uncancelled it needed ~{:.0} s more)",
        bm25.len(),
        bm25[bm25.len() - 1],
        calls * per_call_s
    );
    assert!(
        overrun < calls * per_call_s / 4.0,
        "the cancelled work ran {overrun:.1} s past its deadline"
    );
}

/// `ferret serve --qrels`: on all 300 SciFact test queries, each judged search's measures equal
/// `ferret eval`'s on `ferret run`'s run of the same pipeline, and each hit carries its grade;
/// unknown sets, unjudged queries and sets without texts get their errors.
#[test]
fn judged_searches_carry_grades_and_the_measures_of_ferret_eval() {
    let index = scifact();
    let tmp = tempfile::tempdir().unwrap();
    let dir = dataset("beir-scifact");
    let (qrels, queries) = (dir.join("qrels/test.tsv"), dir.join("queries.jsonl"));
    let run = tmp.path().join("bm25.run");
    ferret_ok(&[
        "run",
        "--index",
        s(index),
        "--queries",
        s(&queries),
        "--qrels",
        s(&qrels),
        "-o",
        s(&run),
    ]);
    let eval: Value = serde_json::from_str(&ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&run),
        "-q",
        "--json",
        "-m",
        "nDCG@10",
        "R@100",
        "AP",
    ]))
    .unwrap();
    let per_query = &eval["runs"][0]["per_query"];
    let judged: HashMap<(String, String), i64> = std::fs::read_to_string(&qrels)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            ((f[0].to_string(), f[1].to_string()), f[2].parse().unwrap())
        })
        .collect();
    let test = format!("test={}", s(&qrels));
    let bare = format!("bare={}", s(&qrels));
    let server = Server::start(
        index,
        &[
            "--qrels",
            &test,
            "--qrels",
            &bare,
            "--queries",
            &format!("test={}", s(&queries)),
        ],
    );
    let (status, sets) = server.get("/v1/qrels");
    assert_eq!(status, 200, "{sets}");
    assert_eq!(sets[0]["queries_with_text"], 300, "{sets}");
    assert_eq!(sets[1]["queries_with_text"], 0, "{sets}");
    let mut graded = 0;
    for (qid, text) in test_queries() {
        let (status, v) = server.post(
            "/v1/search",
            &json!({"query": text, "k": 20, "qrels": {"set": "test", "query_id": qid}}),
        );
        assert_eq!(status, 200, "{v}");
        for m in ["nDCG@10", "R@100", "AP"] {
            let (page, cli) = (&v["evaluation"]["measures"][m], &per_query[&qid][m]);
            assert!(
                (page.as_f64().unwrap() - cli.as_f64().unwrap()).abs() < 1e-12,
                "query {qid} {m}: {page} on the server, {cli} from ferret eval"
            );
        }
        for h in v["hits"].as_array().unwrap() {
            let want = judged.get(&(qid.clone(), h["id"].as_str().unwrap().to_string()));
            assert_eq!(h["relevance"].as_i64(), want.copied(), "query {qid}: {h}");
            graded += usize::from(want.is_some());
        }
    }
    // SciFact judges ~1.1 documents per query, most of them found in the top 20.
    assert!(graded > 250, "{graded} judged hits in the top 20s");
    let search = |set: &str, qid: &str| {
        server.post(
            "/v1/search",
            &json!({"query": "x", "qrels": {"set": set, "query_id": qid}}),
        )
    };
    let (status, v) = search("nope", "1");
    assert_eq!((status, code(&v)), (404, "unknown_qrels"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("there are: test, bare"));
    let (status, v) = search("test", "2");
    assert_eq!((status, code(&v)), (400, "unjudged_query"), "{v}");
    let (status, text) = server.get_text("/compare?qrels=bare&a=bm25&b=bm25");
    assert!(
        status == 400 && text.contains("no_query_texts"),
        "{status} {text}"
    );
    let (status, text) = server.get_text("/compare?qrels=test&a=bm25&b=bm25(k1=");
    assert!(
        status == 400 && text.contains("pipeline b"),
        "{status} {text}"
    );
}
