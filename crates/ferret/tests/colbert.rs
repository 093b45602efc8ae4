//! Late interaction end to end: ColBERT checkpoints (the tiny-colbert fixture) and zero-shot
//! token vectors (all-MiniLM-L6-v2; nomic-embed-text-v1.5 from GGUF against llama.cpp) on SciFact — stored vectors against the encoder's own
//! MaxSim, PLAID and XTR against exhaustive MaxSim, ColBERT-PRF, appends and deletes, and bad
//! input.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{dataset, err_in, ferret_home, ok_in, s, scifact_lines, search_hits};
use ferret_models::colbert::{maxsim, ColbertEncoder};

fn fixture() -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join("tiny-colbert");
    assert!(
        dir.join("artifact.metadata").exists(),
        "fixture not found at {} — set FERRET_FIXTURES",
        dir.display()
    );
    dir
}

/// The first `n` SciFact documents as a corpus file in `dir`.
fn corpus(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, scifact_lines()[..n].join("\n") + "\n").unwrap();
    path
}

/// (id, "title text") of a corpus file's documents.
fn documents(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["_id"].as_str().unwrap().to_string();
            let title = v["title"].as_str().unwrap_or("");
            let text = v["text"].as_str().unwrap_or("");
            (id, format!("{title} {text}").trim().to_string())
        })
        .collect()
}

fn scifact_queries(n: usize) -> Vec<String> {
    std::fs::read_to_string(dataset("beir-scifact").join("queries.jsonl"))
        .unwrap()
        .lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

fn search(home: &Path, index: &Path, pipeline: &str, query: &str, k: usize) -> Vec<(String, f64)> {
    let k = k.to_string();
    search_hits(&ok_in(
        home,
        &[
            "search",
            "--index",
            s(index),
            "--json",
            "-k",
            &k,
            "--pipeline",
            pipeline,
            query,
        ],
    ))
}

/// Stored f16 token vectors give the encoder's own MaxSim: `maxsim` after BM25, and exhaustive
/// `colbert`, against MaxSim computed here from the checkpoint (colbert-ai's numbers, see the
/// fixture test in ferret-models) over every document.
#[test]
fn colbert_checkpoint_scores_are_the_encoders_maxsim() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path(), 400);
    let index = tmp.path().join("idx");
    let fixture = fixture();
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&index),
            "--colbert",
            s(&fixture),
            "--tokens-nbits",
            "0",
        ],
    );
    let model = ColbertEncoder::load(&fixture).unwrap();
    let docs = documents(&corpus);
    let texts: Vec<&str> = docs.iter().map(|(_, t)| t.as_str()).collect();
    let doc_vectors = model.encode_documents(&texts).unwrap();
    for query in scifact_queries(5) {
        let q = model.encode_queries(&[&query]).unwrap().remove(0);
        let truth: HashMap<&str, f64> = docs
            .iter()
            .zip(&doc_vectors)
            .map(|((id, _), d)| (id.as_str(), maxsim(&q.vectors, &d.vectors, 16) as f64))
            .collect();
        let mut worst = 0f64;
        let reranked = search(&home, &index, "bm25 % 50 >> maxsim", &query, 50);
        assert!(!reranked.is_empty());
        for (id, score) in &reranked {
            worst = worst.max((score - truth[id.as_str()]).abs());
        }
        // The best 10 of all documents by MaxSim, as exhaustive search must find them.
        let mut ranked: Vec<(&str, f64)> = truth.iter().map(|(d, s)| (*d, *s)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let found = search(&home, &index, "colbert(method=exhaustive)", &query, 10);
        for ((id, score), (want_id, want)) in found.iter().zip(&ranked) {
            worst = worst.max((score - truth[id.as_str()]).abs());
            // Equal up to f16 storage: a different document only where scores tie that closely.
            assert!(
                id == want_id || (score - want).abs() < 5e-3,
                "{id} {score} vs {want_id} {want}"
            );
        }
        assert!(worst < 5e-3, "stored vectors' MaxSim differs by {worst}");
    }
}

/// Appends encode new documents against the first commit's centroids; deleted documents are
/// never returned; the inverted lists follow.
#[test]
fn appends_and_deletes() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let lines = scifact_lines();
    let first = tmp.path().join("first.jsonl");
    let second = tmp.path().join("second.jsonl");
    std::fs::write(&first, lines[..300].join("\n") + "\n").unwrap();
    std::fs::write(&second, lines[300..360].join("\n") + "\n").unwrap();
    let index = tmp.path().join("idx");
    let fixture = fixture();
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&first),
            "--index",
            s(&index),
            "--colbert",
            s(&fixture),
        ],
    );
    let manifest = |i: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(i.join("manifest.json")).unwrap()).unwrap()
    };
    let tokens = |m: &serde_json::Value| {
        m["representations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "tokens")
            .unwrap()["params"]
            .clone()
    };
    let before = tokens(&manifest(&index));
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&second),
            "--index",
            s(&index),
            "--append",
        ],
    );
    let after = tokens(&manifest(&index));
    assert_eq!(before["centroid_file"], after["centroid_file"]);
    assert_eq!(after["chunks"].as_array().unwrap().len(), 2);
    assert_ne!(before["ivf"], after["ivf"]);
    // A new document's own text finds it first.
    let docs = documents(&second);
    let (new_id, new_text) = &docs[5];
    let hits = search(&home, &index, "colbert(method=exhaustive)", new_text, 5);
    assert_eq!(&hits[0].0, new_id);
    for method in ["plaid", "xtr"] {
        let hits = search(
            &home,
            &index,
            &format!("colbert(method={method})"),
            new_text,
            5,
        );
        assert_eq!(&hits[0].0, new_id, "{method}");
    }
    ok_in(&home, &["index", "--index", s(&index), "--delete", new_id]);
    for method in ["exhaustive", "plaid", "xtr"] {
        let hits = search(
            &home,
            &index,
            &format!("colbert(method={method})"),
            new_text,
            50,
        );
        assert!(
            hits.iter().all(|(id, _)| id != new_id),
            "{method} returned a deleted document"
        );
    }
}

/// Clear errors: no token representation, too many centroids, a corrupted token file, a
/// feedback stage without a ranking, an empty query.
#[test]
fn bad_input() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path(), 30);
    let plain = tmp.path().join("plain");
    ok_in(
        &home,
        &["index", "--corpus", s(&corpus), "--index", s(&plain)],
    );
    let e = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&plain),
            "--pipeline",
            "colbert",
            "cells",
        ],
    );
    assert!(
        e.contains("no tokens representation") && e.contains("--colbert MODEL"),
        "{e}"
    );
    let e = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&plain),
            "--pipeline",
            "bm25 >> maxsim",
            "cells",
        ],
    );
    assert!(e.contains("--colbert MODEL"), "{e}");

    let fixture = fixture();
    let index = tmp.path().join("idx");
    let e = err_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&index),
            "--colbert",
            s(&fixture),
            "--tokens-centroids",
            "1000000",
        ],
    );
    assert!(
        e.contains("k-means needs at least as many token vectors as centroids")
            && e.contains("for 1000000 centroids"),
        "{e}"
    );
    let e = err_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&index),
            "--colbert",
            s(&fixture),
            "--tokens-nbits",
            "3",
        ],
    );
    assert!(e.contains("token residuals of 3 bits"), "{e}");

    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&index),
            "--overwrite",
            "--colbert",
            s(&fixture),
        ],
    );
    let e = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&index),
            "--pipeline",
            "colbert_prf",
            "cells",
        ],
    );
    assert!(e.contains("colbert_prf"), "{e}");
    let e = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&index),
            "--pipeline",
            "colbert(method=plaid, ndocs=2)",
            "cells",
        ],
    );
    assert!(e.contains("'ndocs' must be a whole number >= 4"), "{e}");

    // Truncate the token file: opening the index names it.
    let chunk = std::fs::read_dir(index.join("tokens"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("chunk-")
        })
        .unwrap();
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() - 7]).unwrap();
    let e = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&index),
            "--pipeline",
            "colbert",
            "cells",
        ],
    );
    assert!(
        e.contains("truncated") && e.contains(chunk.file_name().unwrap().to_str().unwrap()),
        "{e}"
    );
}

/// A real-weights test bed: all-MiniLM-L6-v2's token vectors on SciFact documents (every
/// document judged for a test query, then others up to 600), 2-bit residuals. PLAID and XTR
/// at their defaults find what exhaustive MaxSim finds; ColBERT-PRF and a BM25 fusion run.
#[test]
fn minilm_token_vectors_on_scifact() {
    let home = ferret_home();
    ok_in(&home, &["models", "pull", "all-minilm-l6-v2"]);
    let tmp = tempfile::tempdir().unwrap();
    let scifact = dataset("beir-scifact");
    let qrels = scifact.join("qrels/test.tsv");
    let judged: std::collections::HashSet<String> = std::fs::read_to_string(&qrels)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect();
    let lines = scifact_lines();
    let id_of = |l: &str| -> String {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut picked: Vec<&String> = lines
        .iter()
        .filter(|l| judged.contains(&id_of(l)))
        .collect();
    picked.extend(
        lines
            .iter()
            .filter(|l| !judged.contains(&id_of(l)))
            .take(600 - picked.len()),
    );
    let corpus = tmp.path().join("corpus.jsonl");
    std::fs::write(
        &corpus,
        picked
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .unwrap();
    let index = tmp.path().join("idx");
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&index),
            "--tokens",
            "all-minilm-l6-v2",
        ],
    );
    let queries = scifact.join("queries.jsonl");
    let run = |name: &str, pipeline: &str| -> (PathBuf, String) {
        let out = tmp.path().join(format!("{name}.run"));
        let text = ok_in(
            &home,
            &[
                "run",
                "--index",
                s(&index),
                "--queries",
                s(&queries),
                "--qrels",
                s(&qrels),
                "--pipeline",
                pipeline,
                "-k",
                "100",
                "-o",
                s(&out),
            ],
        );
        (out, text)
    };
    let ranking = |path: &Path| -> HashMap<String, Vec<String>> {
        let mut r: HashMap<String, Vec<String>> = HashMap::new();
        for l in std::fs::read_to_string(path).unwrap().lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            r.entry(f[0].to_string())
                .or_default()
                .push(f[2].to_string());
        }
        r
    };
    let ndcg = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("nDCG@10"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (exhaustive, text) = run("exhaustive", "colbert(method=exhaustive)");
    let exact = ndcg(&text);
    let reference = ranking(&exhaustive);
    for method in ["plaid", "xtr"] {
        let (path, text) = run(method, &format!("colbert(method={method})"));
        let got = ranking(&path);
        let recall = |k: usize| {
            reference
                .iter()
                .map(|(q, r)| {
                    let top: std::collections::HashSet<&String> = got[q].iter().take(k).collect();
                    r.iter().take(k).filter(|d| top.contains(d)).count() as f64
                        / r.len().min(k) as f64
                })
                .sum::<f64>()
                / reference.len() as f64
        };
        let (r10, r100) = (recall(10), recall(100));
        println!(
            "{method}: top-10 {r10:.4}, top-100 {r100:.4}, nDCG@10 {:.4} (exhaustive {exact:.4})",
            ndcg(&text)
        );
        assert!(r10 >= 0.98 && r100 >= 0.93, "{method}: {r10} / {r100}");
    }
    // Zero-shot MiniLM token vectors rank SciFact well above chance.
    assert!(exact > 0.6, "exhaustive MaxSim nDCG@10 {exact}");
    let (_, text) = run("prf", "colbert % 3 >> colbert_prf");
    println!("colbert_prf nDCG@10 {:.4}", ndcg(&text));
    assert!(ndcg(&text) > 0.6);
    let (_, text) = run(
        "fused",
        "rrf(bm25 % 1000, colbert % 1000 >> colbert_prf % 1000)",
    );
    println!("rrf(bm25, colbert_prf) nDCG@10 {:.4}", ndcg(&text));
    assert!(ndcg(&text) > 0.6);
    // The expansion is visible in explain.
    let explain = ok_in(
        &home,
        &[
            "search",
            "--index",
            s(&index),
            "--explain",
            "--pipeline",
            "colbert % 3 >> colbert_prf",
            "0-dimensional biomaterials lack inductive properties",
        ],
    );
    assert!(
        explain.contains("expansion (vocabulary id:weight)"),
        "{explain}"
    );
}

/// A GGUF encoder as a zero-shot token model: nomic-embed-text-v1.5's token states (its task
/// prefixes run but not kept, punctuation dropped from documents) against llama.cpp's on the
/// same file, unpooled (`tests/reference/make_nomic_tokens_reference.py`): the same kept token
/// ids, the first dimensions of every vector within 5e-4 (llama.cpp measured 1.5e-4 away), whole
/// vectors to cosine 0.99999.
#[test]
fn nomic_gguf_token_states_match_llama_cpp() {
    let home = ferret_home();
    ok_in(&home, &["models", "pull", "nomic-embed-text-v1.5"]);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference/nomic-tokens-scifact.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dims = reference["dims"].as_u64().unwrap() as usize;
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = dataset("beir-scifact");
    for (kind, flag, file) in [
        ("documents", "--corpus", "corpus.jsonl.gz"),
        ("queries", "--queries", "queries.jsonl"),
    ] {
        let theirs = reference[kind].as_array().unwrap();
        let out = tmp.path().join(format!("{kind}.jsonl"));
        let limit = theirs.len().to_string();
        ok_in(
            &home,
            &[
                "encode",
                "--tokens",
                "--model",
                "nomic-embed-text-v1.5",
                flag,
                s(&d.join(file)),
                "--limit",
                &limit,
                "-o",
                s(&out),
            ],
        );
        let ours: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ours.len(), theirs.len());
        for (o, r) in ours.iter().zip(theirs) {
            let id = r["id"].as_str().unwrap();
            assert_eq!(o["id"].as_str(), Some(id));
            assert_eq!(o["ids"], r["ids"], "{kind} {id}: kept token ids");
            let rows: Vec<Vec<f64>> = o["vectors"]
                .as_array()
                .unwrap()
                .iter()
                .map(floats)
                .collect();
            for (p, (row, head)) in rows.iter().zip(r["head"].as_array().unwrap()).enumerate() {
                for (j, (a, b)) in row.iter().zip(floats(head)).take(dims).enumerate() {
                    assert!(
                        (a - b).abs() <= 5e-4,
                        "{kind} {id}: token {p}, dimension {j}: {a} against llama.cpp's {b}"
                    );
                }
            }
            for (p, whole) in r["whole"].as_object().unwrap() {
                let (a, b) = (&rows[p.parse::<usize>().unwrap()], floats(whole));
                let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
                let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
                let c = dot / norm(a) / norm(&b);
                assert!(c >= 0.99999, "{kind} {id}: token {p}: cosine {c}");
            }
        }
    }
}
