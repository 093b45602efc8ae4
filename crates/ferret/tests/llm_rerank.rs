//! LLM rerankers end to end: the ordering logic with oracle preferences from SciFact's qrels,
//! the local GGUF model through `ferret rerank` (with the prompt cache), the OpenAI-compatible
//! backend against a real llama.cpp server (llama-cpp-python) on 127.0.0.1, and servers that
//! fail (HTTP 500, malformed answers, timeouts) without stopping a run.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferret_eval::{evaluate, EvalOptions, Measure, Qrels, Run};
use ferret_search::stages::llm::order::{all_pairs, bubble_passes, heap_top_k, sliding_windows};

const QUERY: &str = "What is the capital of France?";
const CANDIDATES: &str = "a\tParis is the capital and largest city of France.\nb\tBananas are rich in potassium.\nc\tFrance is a country in Western Europe; its capital is Paris.\n";

/// With preferences read from the qrels, every ordering procedure must put BM25's top-20 in
/// the ideal order (at least for the top 10), i.e. reach the ideal nDCG@10 of the candidates.
#[test]
fn ordering_logic_with_qrels_as_the_oracle_reaches_the_ideal_ndcg() {
    let dir = tempfile::tempdir().unwrap();
    let scifact = dataset("beir-scifact");
    index(dir.path(), "beir-scifact", &[]);
    let run_path = dir.path().join("bm25.run");
    let qrels_path = scifact.join("qrels/test.tsv");
    ferret_ok(&[
        "run",
        "--index",
        s(dir.path()),
        "--queries",
        s(&scifact.join("queries.jsonl")),
        "--qrels",
        s(&qrels_path),
        "--pipeline",
        "bm25 % 20",
        "-k",
        "20",
        "-o",
        s(&run_path),
    ]);
    let qrels = Qrels::read(&qrels_path).unwrap();
    let bm25 = Run::read(&run_path).unwrap();
    let grade = |q: &str, d: &str| qrels.get(q).and_then(|j| j.get(d)).copied().unwrap_or(0);
    let measure = Measure::parse_all(&["ndcg_cut.10".to_string()]).unwrap();
    let ndcg = |run: &Run| evaluate(&qrels, run, &measure, EvalOptions::default()).mean[0];

    let mut ideal = Run::new("ideal");
    let mut runs: Vec<(&str, Run)> = ["allpairs", "heapsort", "sliding", "listwise"]
        .iter()
        .map(|n| (*n, Run::new(*n)))
        .collect();
    for q in bm25.query_ids() {
        let docs: Vec<&str> = bm25
            .get(q)
            .unwrap()
            .iter()
            .map(|(d, _)| d.as_str())
            .collect();
        let g: Vec<i32> = docs.iter().map(|d| grade(q, d)).collect();
        let prefer = |a: usize, b: usize| match g[a].cmp(&g[b]) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Less => 0.0,
            std::cmp::Ordering::Equal => 0.5,
        };
        let items: Vec<usize> = (0..docs.len()).collect();
        let scores = all_pairs(docs.len(), prefer);
        let mut by_pairs = items.clone();
        by_pairs.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let listwise = sliding_windows(&items, 10, 5, |w| {
            let mut perm: Vec<usize> = (0..w.len()).collect();
            perm.sort_by(|&a, &b| g[w[b]].cmp(&g[w[a]]));
            Ok::<_, ()>(perm)
        })
        .unwrap();
        let mut best = items.clone();
        best.sort_by(|&a, &b| g[b].cmp(&g[a]));
        let orders = [
            by_pairs,
            heap_top_k(&items, 10, prefer),
            bubble_passes(&items, 10, prefer),
            listwise,
        ];
        let as_ranking = |order: &[usize]| -> Vec<(String, f64)> {
            order
                .iter()
                .enumerate()
                .map(|(r, &i)| (docs[i].to_string(), (100 - r) as f64))
                .collect()
        };
        ideal.set_ranking(q, as_ranking(&best));
        for ((_, run), order) in runs.iter_mut().zip(&orders) {
            run.set_ranking(q, as_ranking(order));
        }
    }
    let (base, top) = (ndcg(&bm25), ndcg(&ideal));
    eprintln!("BM25 top-20 nDCG@10 {base:.4}; ideal reordering {top:.4}");
    assert!(top > base + 0.05);
    for (name, run) in &runs {
        let v = ndcg(run);
        eprintln!("{name} with qrels preferences: {v:.4}");
        // The sliding window (10, step 5) fixes only the top 5 in one pass; the rest fix the top 10.
        if *name == "listwise" {
            assert!(v > base + 0.04 && v <= top + 1e-9, "{name}: {v}");
        } else {
            assert!((v - top).abs() < 1e-9, "{name}: {v} vs ideal {top}");
        }
    }
}

fn candidates(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("cands.tsv");
    std::fs::write(&p, CANDIDATES).unwrap();
    p
}

fn rerank_json(model: &str, cands: &std::path::Path, env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args([
            "rerank",
            "--model",
            model,
            "--query",
            QUERY,
            "--candidates",
            s(cands),
            "--json",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ferret rerank {model} failed: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn scores(v: &serde_json::Value) -> std::collections::HashMap<String, f64> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn local_llm_reranks_ad_hoc_candidates_and_caches_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cands = candidates(dir.path());
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("models")).unwrap();
    // The model from the shared cache; the prompt cache in a fresh home.
    let model = ferret_models::llm::gguf::locate("smollm2").unwrap().0;
    let spec = format!("pointwise(llm={:?})", model.to_str().unwrap());
    let env = [("FERRET_HOME", s(&home))];
    let first = rerank_json(&spec, &cands, &env);
    let usage = &first["llm_usage"][0];
    assert_eq!(
        (usage["calls"].as_u64(), usage["cache_hits"].as_u64()),
        (Some(3), Some(0))
    );
    let again = rerank_json(&spec, &cands, &env);
    let usage = &again["llm_usage"][0];
    assert_eq!(
        (usage["calls"].as_u64(), usage["cache_hits"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(scores(&first), scores(&again));
    // P(Yes) puts both Paris passages above the bananas.
    assert_eq!(ids(&first)[2], "b", "{first}");
    for strategy in [
        "prp(method=allpairs)",
        "listwise(window=0)",
        "insertrank(window=2, step=1)",
    ] {
        let spec = strategy.replace('(', &format!("(llm={:?}, ", model.to_str().unwrap()));
        let v = rerank_json(&spec, &cands, &env);
        let mut got = ids(&v);
        got.sort();
        assert_eq!(got, ["a", "b", "c"], "{strategy}: every candidate once");
        assert!(v["llm_usage"][0]["calls"].as_u64().unwrap() >= 1);
    }
}

/// A llama.cpp server (llama-cpp-python) on a free loopback port, stopped on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn llama_server(model: &std::path::Path) -> Server {
    let python = std::env::var("FERRET_PYTHON").unwrap_or_else(|_| "python3".into());
    let port = free_port();
    let child = Command::new(&python)
        .args([
            "-m",
            "llama_cpp.server",
            "--model",
            s(model),
            "--host",
            "127.0.0.1",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python} -m llama_cpp.server: {e} (run through scripts/test.sh)")
        });
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}/v1"),
    };
    let start = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(s, "GET /v1/models HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                return server;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "llama_cpp.server did not come up on port {port} (is llama-cpp-python[server] installed in {python}?)"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn openai_backend_against_a_local_llama_cpp_server() {
    let dir = tempfile::tempdir().unwrap();
    let cands = candidates(dir.path());
    let model = ferret_models::llm::gguf::locate("smollm2").unwrap().0;
    let server = llama_server(&model);
    let remote = rerank_json(
        &format!("pointwise(llm=smollm2, api={:?}, cache=0)", server.url),
        &cands,
        &[],
    );
    let usage = &remote["llm_usage"][0];
    assert_eq!(usage["calls"].as_u64(), Some(3), "{remote}");
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 100,
        "the server reports usage"
    );
    // The same model locally: P(Yes) agrees up to llama.cpp's activation quantisation.
    let local = rerank_json(
        &format!("pointwise(llm={:?}, cache=0)", model.to_str().unwrap()),
        &cands,
        &[],
    );
    let (r, l) = (scores(&remote), scores(&local));
    for id in ["a", "b", "c"] {
        assert!(
            (r[id] - l[id]).abs() < 0.05,
            "{id}: server {} vs local {}",
            r[id],
            l[id]
        );
    }
    // A generating strategy over the server.
    let listwise = rerank_json(
        &format!(
            "listwise(llm=smollm2, api={:?}, window=0, cache=0)",
            server.url
        ),
        &cands,
        &[],
    );
    assert_eq!(listwise["llm_usage"][0]["calls"].as_u64(), Some(1));
    assert!(
        listwise["llm_usage"][0]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(ids(&listwise).len(), 3);
}

/// A loopback HTTP server that misbehaves in one way, counting the requests it gets.
fn faulty_server(kind: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                // Read the request head and body.
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, text) = match kind {
                    "500" => (
                        "500 Internal Server Error",
                        "{\"error\":\"boom\"}".to_string(),
                    ),
                    "malformed" => ("200 OK", "this is not JSON at all".to_string()),
                    "no-content" => ("200 OK", "{\"choices\":[{\"message\":{}}]}".to_string()),
                    _ => {
                        std::thread::sleep(Duration::from_secs(5));
                        ("200 OK", "{}".to_string())
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    (url, hits)
}

#[test]
fn failing_servers_do_not_stop_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let cands = candidates(dir.path());
    let env = [
        ("FERRET_LLM_TIMEOUT", "1"),
        ("FERRET_LLM_RETRIES", "1"),
        ("FERRET_LLM_CONCURRENCY", "1"),
    ];
    // (failure, requests per call: retried once for 500 and timeouts, not for bad answers)
    for (kind, per_call) in [
        ("500", 2),
        ("timeout", 2),
        ("malformed", 1),
        ("no-content", 1),
    ] {
        let (url, hits) = faulty_server(kind);
        for strategy in ["pointwise", "listwise"] {
            let spec = format!("{strategy}(llm=m, api={url:?}, cache=0)");
            let before = hits.load(Ordering::SeqCst);
            let out = Command::new(env!("CARGO_BIN_EXE_ferret"))
                .args([
                    "rerank",
                    "--model",
                    &spec,
                    "--query",
                    QUERY,
                    "--candidates",
                    s(&cands),
                ])
                .envs(env)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{kind}/{strategy}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                stderr.contains("LLM call failed"),
                "{kind}/{strategy}: {stderr}"
            );
            // Every candidate is still there, in the incoming order (no information came back).
            let order: Vec<&str> = stdout
                .lines()
                .map(|l| l.split_whitespace().nth(2).unwrap())
                .collect();
            assert_eq!(order, ["a", "b", "c"], "{kind}/{strategy}");
            let calls = if strategy == "pointwise" { 3 } else { 1 };
            assert_eq!(
                hits.load(Ordering::SeqCst) - before,
                calls * per_call,
                "{kind}/{strategy}"
            );
        }
    }
}

#[test]
fn bad_llm_stages_and_oversized_prompts_are_handled_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cands = candidates(dir.path());
    let rerank = |model: &str| {
        ferret_err(&[
            "rerank",
            "--model",
            model,
            "--query",
            QUERY,
            "--candidates",
            s(&cands),
        ])
    };
    assert!(rerank("listwise()").contains("listwise needs llm="));
    assert!(rerank("prp(llm=smollm2, method=quick)")
        .contains("must be one of heapsort, allpairs, sliding"));
    assert!(rerank("listwise(llm=smollm2, window=5, step=9)")
        .contains("step (9) must not exceed window (5)"));
    assert!(rerank("pointwise(llm=m, api=\"ftp://x\")").contains("must start with http"));
    assert!(rerank("bm25 % 20 >> listwise(llm=smollm2)").contains("a reranker is a single stage"));
    assert!(rerank("bm25").contains("unknown model 'bm25'"));
    // A sentence encoder is not a sequence classifier.
    let err = rerank("all-minilm-l6-v2");
    assert!(
        err.contains("not a sequence-classification checkpoint"),
        "{err}"
    );
    let empty = dir.path().join("empty.tsv");
    std::fs::write(&empty, "").unwrap();
    let err = ferret_err(&[
        "rerank",
        "--model",
        "pointwise(llm=smollm2)",
        "--query",
        QUERY,
        "--candidates",
        s(&empty),
    ]);
    assert!(err.contains("no candidates"), "{err}");

    // Twenty whole SciFact abstracts do not fit SmolLM2's 4,096-token context in one window:
    // the passages are cut until they do, and the run says so.
    let corpus = dataset("beir-scifact").join("corpus.jsonl.gz");
    let text = {
        let mut out = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(corpus).unwrap())
            .read_to_string(&mut out)
            .unwrap();
        out
    };
    let long = dir.path().join("long.jsonl");
    std::fs::write(&long, text.lines().take(20).collect::<Vec<_>>().join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args([
            "rerank",
            "--model",
            "listwise(llm=smollm2, window=0, passage_tokens=100000, cache=0)",
        ])
        .args(["--query", "stem cells", "--candidates", s(&long), "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("passages cut to 1920 tokens (not 100000)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("does not fit the context of 4096 tokens"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&v).len(), 20);
    assert_eq!(
        v["llm_usage"][0]["calls"].as_u64(),
        Some(1),
        "one call, no failure: {stderr}"
    );
    assert!(v["llm_usage"][0]["prompt_tokens"].as_u64().unwrap() <= 4096);
}
