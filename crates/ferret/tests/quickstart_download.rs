//! `ferret quickstart` with no local data: it downloads the official BEIR SciFact zip over real
//! HTTP (served here on loopback from the shared data, laid out as in the BEIR release),
//! verifies every file's published sha256, and never leaves a half-written dataset behind.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

/// scifact.zip as BEIR publishes it, built from the shared data; `corrupt` drops the corpus's
/// last line.
fn beir_zip(corrupt: bool) -> Vec<u8> {
    let d = dataset("beir-scifact");
    let mut corpus = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(d.join("corpus.jsonl.gz")).unwrap())
        .read_to_string(&mut corpus)
        .unwrap();
    if corrupt {
        let cut = corpus.trim_end().rfind('\n').unwrap() + 1;
        corpus.truncate(cut);
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default();
    let mut add = |name: &str, bytes: &[u8]| {
        zip.start_file(name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    };
    add("scifact/corpus.jsonl", corpus.as_bytes());
    add(
        "scifact/queries.jsonl",
        &std::fs::read(d.join("queries.jsonl")).unwrap(),
    );
    add(
        "scifact/qrels/test.tsv",
        &std::fs::read(d.join("qrels/test.tsv")).unwrap(),
    );
    add(
        "scifact/qrels/train.tsv",
        &std::fs::read(d.join("qrels/train.tsv")).unwrap(),
    );
    zip.finish().unwrap();
    buf.into_inner()
}

/// Serves `body` for every request, on a loopback port, until the test ends.
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    url
}

fn quickstart(home: &Path, url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferret"))
        // The neural recipes are covered by tests/dense.rs; this test is about the download.
        .args(["quickstart", "--lexical-only"])
        .current_dir(home) // no ../shared/data from here
        .env_remove("FERRET_DATA")
        .env("FERRET_HOME", home)
        .env("FERRET_BEIR_URL", url)
        .output()
        .unwrap()
}

#[test]
fn downloads_verifies_and_reproduces() {
    let tmp = tempfile::tempdir().unwrap();
    let out = quickstart(tmp.path(), &serve(beir_zip(false)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("scifact bm25 flat"))
        .expect(&stdout);
    assert!(row.contains("0.6789") && row.contains("0.9253"), "{row}");
    // Beside the measured numbers, the published ones and the difference.
    assert!(
        row.contains("(Pyserini 2CR, BEIR flat: nDCG@10 0.6789 Δ +0.0000, R@100 0.9253 Δ +0.0000)"),
        "{row}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("scifact bm25 multifield"))
        .expect(&stdout);
    assert!(row.contains("R@100 0.9076 Δ +0.0000)"), "{row}");
    assert!(!stdout.contains("-0.0000"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("scifact bm25 >> rm3"))
        .expect(&stdout);
    assert!(row.contains("0.6457") && row.contains("0.9147"), "{row}");
    assert!(tmp.path().join("data/beir-scifact/corpus.jsonl").exists());
}

#[test]
fn corrupt_or_failed_downloads_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let out = quickstart(tmp.path(), &serve(beir_zip(true)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("scifact/corpus.jsonl: sha256") && stderr.contains("does not match"),
        "{stderr}"
    );
    let data = tmp.path().join("data");
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Nothing listens on this port once the listener is dropped: a network failure.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = quickstart(tmp.path(), &format!("http://127.0.0.1:{port}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("downloading http://127.0.0.1") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!data.join("beir-scifact").exists());
}
