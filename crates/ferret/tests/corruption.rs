//! Corruption detection: every file of an index (docstore, each representation's files,
//! tantivy's) is in turn bit-flipped and truncated in a copy of the index. Each time
//! `ferret check` fails naming the file, and a search either fails naming it too or — never
//! silently different — answers exactly as the intact index does. (Two exceptions, asserted:
//! a flipped bit in tantivy's `.managed.json`, which only its garbage collection reads, and one
//! in the tantivy version written in a tantivy file's footer — major, minor, patch — which
//! tantivy's checksum does not cover and no reader uses; where the middle byte falls depends on
//! how indexing split the documents into segments.)

mod common;
use common::*;

use std::path::{Path, PathBuf};

const PIPELINE: &str =
    "rrf(bm25 % 20, dense(exact=1) % 20, dense % 20, splade % 20, colbert(method=exhaustive) % 20)";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// tantivy's files the commit uses: meta.json, .managed.json, and the files of its segments
/// (a segment's deletes file of the opstamp meta.json names).
fn lexical_files(idx: &Path) -> std::collections::BTreeSet<PathBuf> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(idx.join("lexical/meta.json")).unwrap())
            .unwrap();
    let mut live: std::collections::BTreeSet<PathBuf> = ["meta.json", ".managed.json"]
        .iter()
        .map(|f| Path::new("lexical").join(f))
        .collect();
    for file in files(&idx.join("lexical")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.split('.').collect();
        let used = meta["segments"].as_array().unwrap().iter().any(|seg| {
            let id = seg["segment_id"].as_str().unwrap().replace('-', "");
            match parts[..] {
                [s, opstamp, "del"] => {
                    s == id && seg["deletes"]["opstamp"].as_u64() == opstamp.parse().ok()
                }
                [s, _] => s == id,
                _ => false,
            }
        });
        if used {
            live.insert(Path::new("lexical").join(name));
        }
    }
    live
}

/// A tantivy file's footer: JSON (`{"version": {…}, "crc": …}`), its length (u32 LE) and a
/// magic number (u32) at the very end.
fn tantivy_footer(bytes: &[u8]) -> Option<serde_json::Value> {
    let n = bytes.len();
    let len = u32::from_le_bytes(bytes.get(n.checked_sub(8)?..n - 4)?.try_into().ok()?) as usize;
    serde_json::from_slice(bytes.get(n.checked_sub(8 + len)?..n - 8)?).ok()
}

/// Whether the damage changed only the informational tantivy version in the footer: both
/// footers parse, differ, and agree on the checksum and the index format.
fn only_footer_version_differs(intact: &[u8], damaged: &[u8]) -> bool {
    match (tantivy_footer(intact), tantivy_footer(damaged)) {
        (Some(a), Some(b)) => {
            a != b
                && a["crc"] == b["crc"]
                && a["version"]["index_format_version"] == b["version"]["index_format_version"]
        }
        _ => false,
    }
}

fn search(home: &Path, idx: &Path) -> std::process::Output {
    ferret_in(
        home,
        &[
            "search",
            "--index",
            s(idx),
            "iron deficiency in stem cells",
            "--pipeline",
            PIPELINE,
            "--json",
        ],
    )
}

#[test]
fn every_damaged_file_is_named_and_never_changes_results_silently() {
    let home = ferret_home();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let corpus = t.join("docs.jsonl");
    let docs: Vec<String> = scifact_lines()
        .iter()
        .take(80)
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text: String = v["text"].as_str().unwrap().chars().take(300).collect();
            v["text"] = text.into();
            v.to_string()
        })
        .collect();
    std::fs::write(&corpus, docs.join("\n") + "\n").unwrap();
    let idx = t.join("idx");
    ok_in(
        &home,
        &[
            "index",
            "--corpus",
            s(&corpus),
            "--index",
            s(&idx),
            "--dense",
            "all-minilm-l6-v2",
            "--hnsw",
            "--sparse",
            "splade-tiny",
            "--tokens",
            "all-minilm-l6-v2",
        ],
    );
    // A deletion gives the index a deleted list and tantivy a deletes file.
    let first_id = serde_json::from_str::<serde_json::Value>(&docs[0]).unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_string();
    ok_in(&home, &["index", "--index", s(&idx), "--delete", &first_id]);
    assert!(ok_in(&home, &["check", "--index", s(&idx)]).contains("ok"));
    let intact = search(&home, &idx);
    assert!(intact.status.success());
    let live = lexical_files(&idx);
    let (mut detected, mut harmless, mut footer_versions) = (0, Vec::new(), Vec::new());
    for file in files(&idx) {
        let name = file.strip_prefix(&idx).unwrap().to_path_buf();
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        if len == 0 {
            continue; // tantivy's lock files: nothing to damage
        }
        if name.starts_with("lexical") && !live.contains(&name) {
            continue; // left over by a merge, for tantivy's garbage collection: never read
        }
        for how in ["flip", "truncate"] {
            let copy = t.join("copy");
            let _ = std::fs::remove_dir_all(&copy);
            copy_dir(&idx, &copy);
            let target = copy.join(&name);
            let intact_bytes = std::fs::read(&target).unwrap();
            let mut bytes = intact_bytes.clone();
            match how {
                "flip" => bytes[len / 2] ^= 0x04,
                _ => bytes.truncate(len / 2),
            }
            std::fs::write(&target, &bytes).unwrap();
            let what = format!("{how} {}", name.display());
            let check = ferret_in(&home, &["check", "--index", s(&copy)]);
            let report = String::from_utf8_lossy(&check.stdout).into_owned()
                + &String::from_utf8_lossy(&check.stderr);
            assert!(!report.contains("panicked"), "{what}: {report}");
            let searched = search(&home, &copy);
            let stderr = String::from_utf8_lossy(&searched.stderr);
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            if searched.status.success() {
                assert_eq!(
                    searched.stdout, intact.stdout,
                    "{what}: the search answered differently without an error"
                );
            } else {
                assert_eq!(searched.status.code(), Some(2), "{what}: {stderr}");
            }
            if check.status.success() {
                // Undetected: only acceptable when the damage changes nothing a reader uses.
                assert!(
                    searched.status.success(),
                    "{what}: check passed, search failed: {stderr}"
                );
                if name.starts_with("lexical") && only_footer_version_differs(&intact_bytes, &bytes)
                {
                    footer_versions.push(what);
                } else {
                    harmless.push(what);
                }
                continue;
            }
            detected += 1;
            let file_name = name.file_name().unwrap().to_string_lossy();
            assert!(
                report.contains(&*file_name),
                "{what}: the report does not name the file:\n{report}"
            );
            if !searched.status.success() {
                assert!(
                    stderr.contains(&*file_name),
                    "{what}: the search error does not name the file: {stderr}"
                );
            }
        }
    }
    eprintln!(
        "{detected} damaged copies detected; undetected and harmless: {harmless:?}, \
         tantivy footer versions: {footer_versions:?}"
    );
    // tantivy's list of the files it manages serves its garbage collection only (searches
    // answered the same above); everything else must be detected.
    assert!(
        harmless
            .iter()
            .all(|h| h.ends_with("lexical/.managed.json")),
        "undetected damage: {harmless:?}"
    );
    assert!(detected >= 30, "only {detected} damaged copies detected");
}

/// Past `FERRET_VERIFY_BYTES` (default 1 GiB; here 0) opening checks sizes only, as Lucene and
/// tantivy do, and `ferret check` still reads every byte: a flipped bit is found by the check,
/// a cut file at open. Under the limit the same flip stops the open.
#[test]
fn large_indexes_check_sizes_at_open_and_checksums_in_ferret_check() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("docs.jsonl");
    std::fs::write(&corpus, scifact_lines()[..40].join("\n") + "\n").unwrap();
    let idx = tmp.path().join("idx");
    common::ferret_ok(&["index", "--corpus", s(&corpus), "--index", s(&idx)]);
    let run = |limit: Option<&str>, args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ferret"));
        c.args(args).env_remove("FERRET_VERIFY_BYTES");
        if let Some(l) = limit {
            c.env("FERRET_VERIFY_BYTES", l);
        }
        c.output().unwrap()
    };
    let search = ["search", "--index", s(&idx), "iron deficiency"];
    let chunk = idx.join("docs/chunk-000001.jsonl");
    let intact = std::fs::read(&chunk).expect("the first docstore chunk");
    let mut flipped = intact.clone();
    flipped[intact.len() / 2] ^= 0x01;
    std::fs::write(&chunk, &flipped).unwrap();

    let err = String::from_utf8_lossy(&run(None, &search).stderr).into_owned();
    assert!(
        err.contains("chunk-000001.jsonl") && err.contains("checksum mismatch"),
        "{err}"
    );
    let opened = run(Some("0"), &search);
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let check = run(Some("0"), &["check", "--index", s(&idx)]);
    let report = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success() && report.contains("chunk-000001.jsonl"),
        "{report}"
    );

    std::fs::write(&chunk, &intact[..intact.len() - 10]).unwrap();
    let err = String::from_utf8_lossy(&run(Some("0"), &search).stderr).into_owned();
    assert!(
        err.contains("chunk-000001.jsonl") && err.contains("truncated"),
        "{err}"
    );
}
