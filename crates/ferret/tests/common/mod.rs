//! Shared helpers for the integration tests: the real datasets, the built binary, and the
//! Python reference evaluator. Missing data or tools fail loudly: these tests never skip.
#![allow(dead_code)] // each test binary uses a different subset

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `$FERRET_DATA`, else `../shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("FERRET_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        dir.join("beir-scifact").is_dir(),
        "test data not found at {} — set FERRET_DATA to the shared data folder",
        dir.display()
    );
    dir
}

pub fn dataset(name: &str) -> PathBuf {
    data_dir().join(name)
}

/// A model fixture folder from `$FERRET_FIXTURES`, else `../shared/fixtures` beside the
/// repository (it must hold a `model.safetensors`).
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join(name);
    assert!(
        dir.join("model.safetensors").exists(),
        "fixture not found at {}",
        dir.display()
    );
    dir
}

pub fn ferret(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args(args)
        .output()
        .expect("running the ferret binary")
}

/// Runs ferret and asserts success, returning stdout.
pub fn ferret_ok(args: &[&str]) -> String {
    let out = ferret(args);
    assert!(
        out.status.success(),
        "ferret {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs ferret expecting a clean failure (exit code 2, no panic); returns stderr.
pub fn ferret_err(args: &[&str]) -> String {
    let out = ferret(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "ferret {args:?} should fail cleanly; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "ferret {args:?} panicked:\n{stderr}"
    );
    stderr
}

/// Every line of SciFact's corpus.jsonl.gz (one document each).
pub fn scifact_lines() -> Vec<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(dataset("beir-scifact").join("corpus.jsonl.gz")).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Builds an index of a dataset's corpus in `dir`.
pub fn index(dir: &Path, dataset_name: &str, extra: &[&str]) {
    let corpus = dataset(dataset_name).join("corpus.jsonl.gz");
    let mut args = vec!["index", "--corpus", s(&corpus), "--index", s(dir)];
    args.extend_from_slice(extra);
    ferret_ok(&args);
}

/// The Python interpreter with pytrec_eval and ir_measures: `$FERRET_PYTHON`, else `python3`.
pub fn python() -> String {
    let py = std::env::var("FERRET_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let ok = Command::new(&py)
        .args(["-c", "import pytrec_eval, ir_measures"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py} cannot import pytrec_eval and ir_measures; run the tests through scripts/test.sh \
         (it installs them) or set FERRET_PYTHON"
    );
    py
}

/// One model cache for the whole test run (the model is fetched once), unless FERRET_HOME says
/// otherwise.
pub fn ferret_home() -> PathBuf {
    std::env::var_os("FERRET_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferret-home"))
}

pub fn ferret_in(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferret"))
        .args(args)
        .env("FERRET_HOME", home)
        .output()
        .unwrap()
}

pub fn ok_in(home: &Path, args: &[&str]) -> String {
    let out = ferret_in(home, args);
    assert!(
        out.status.success(),
        "ferret {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn err_in(home: &Path, args: &[&str]) -> String {
    let out = ferret_in(home, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "ferret {args:?} should fail cleanly:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The (id, score) pairs of a `ferret search --json` answer.
pub fn search_hits(json: &str) -> Vec<(String, f64)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect()
}
