//! The fuzz targets' bodies: each takes arbitrary bytes, hands them to one of ferret's readers
//! the way a user's file or a damaged index would reach it, and uses what comes back. A reader
//! may refuse the input with an error; it must not panic, hang or allocate what the input
//! merely claims. `fuzz/` (cargo-fuzz, nightly) runs them under libFuzzer; `tests/replay.rs`
//! runs the saved corpora through them in the default test suite.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferret_index::docstore::{chunk_path, deleted_path};
use ferret_index::{Document, Index, IndexOptions, IndexWriter};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder and fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("corpus", corpus),
    ("queries", queries),
    ("qrels", qrels),
    ("trec_run", trec_run),
    ("manifest", manifest),
    ("docstore", docstore),
    ("safetensors", safetensors),
    ("gguf", gguf),
    ("tokenizer", tokenizer),
    ("pipeline", pipeline),
];

/// A scratch folder for this process (readers take paths: the input is written to a file).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch folder"))
        .path()
}

fn file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, data).expect("writing the input");
    path
}

/// The first byte picks among `n` variants (file formats); the rest is the file.
fn split_choice(data: &[u8], n: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((c, rest)) => (c % n, rest),
        None => (0, data),
    }
}

/// A corpus file (JSONL, TSV, or either gzipped), read document by document.
pub fn corpus(data: &[u8]) {
    let (format, data) = split_choice(data, 4);
    let name = ["c.jsonl", "c.tsv", "c.jsonl.gz", "c.tsv.gz"][format as usize];
    let path = file(name, data);
    let Ok(mut reader) = ferret_index::corpus::CorpusReader::open(&path) else {
        return;
    };
    while let Some(doc) = reader.next_document() {
        if doc.is_err() {
            break;
        }
    }
}

/// A query file (JSONL or TSV).
pub fn queries(data: &[u8]) {
    let (format, data) = split_choice(data, 2);
    let path = file(["q.jsonl", "q.tsv"][format as usize], data);
    let _ = ferret_search::queries::read_queries(&path);
}

/// A qrels file (TREC or BEIR TSV).
pub fn qrels(data: &[u8]) {
    let (format, data) = split_choice(data, 2);
    let path = file(["qrels.txt", "qrels.tsv"][format as usize], data);
    let _ = ferret_eval::Qrels::read(&path);
}

/// A TREC run file.
pub fn trec_run(data: &[u8]) {
    let path = file("run.txt", data);
    let _ = ferret_eval::Run::read(&path);
}

/// A small real index (BM25 and three documents), built once per process: the manifest and
/// docstore targets damage copies of its files.
fn template() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a template folder");
        let mut w = IndexWriter::create(dir.path(), IndexOptions::default(), false)
            .expect("creating the template index");
        for (id, text) in [("a", "cats and dogs"), ("b", "dogs only"), ("c", "fish")] {
            w.add(Document {
                id: id.into(),
                title: String::new(),
                text: text.into(),
                metadata: serde_json::Value::Null,
                image: None,
            })
            .expect("adding a document");
        }
        w.commit().expect("committing the template index");
        dir
    })
    .path()
}

/// A fresh copy of the template index in the scratch folder.
fn index_copy() -> PathBuf {
    let dst = scratch().join("index");
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(template(), &dst);
    dst
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a folder");
    for entry in std::fs::read_dir(from).expect("listing a folder") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            // libFuzzer's timer signal can interrupt the copy's system call: try again.
            while let Err(e) = std::fs::copy(entry.path(), &target) {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted,
                    "copying a file: {e}"
                );
            }
        }
    }
}

/// Opens an index and reads every document, as a search would.
fn open_and_read(dir: &Path) {
    let Ok(index) = Index::open(dir) else { return };
    let store = index.docstore();
    for d in 0..store.num_slots() as u32 {
        if !store.is_deleted(d) {
            let _ = index.document(d);
        }
    }
}

/// The index's manifest replaced by the input (unsealed manifests are accepted, as older
/// ferrets wrote them, so the input reaches the structural checks), then opened.
pub fn manifest(data: &[u8]) {
    let dir = index_copy();
    std::fs::write(dir.join("manifest.json"), data).expect("writing the manifest");
    open_and_read(&dir);
}

/// The docstore's files replaced by the input (split at 0xFF bytes into the ids, offsets,
/// documents and deleted list), with the manifest's checksums of them dropped so the input
/// reaches the docstore's own checks, then opened and read.
pub fn docstore(data: &[u8]) {
    let dir = index_copy();
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("reading the manifest"))
            .expect("the template's manifest");
    let object = manifest.as_object_mut().expect("a manifest object");
    object.remove("files");
    object.remove("crc32");
    let docs = dir.join("docs");
    let generation = object["generation"]
        .as_u64()
        .expect("the template's generation");
    let mut parts = data.split(|&b| b == 0xFF);
    for ext in ["ids", "idx", "jsonl"] {
        let part = parts.next().unwrap_or_default();
        std::fs::write(chunk_path(&docs, generation, ext), part).expect("writing a chunk file");
    }
    if let Some(deleted) = parts.next() {
        std::fs::write(deleted_path(&docs, generation), deleted).expect("writing the deleted list");
        object.insert("deleted_generation".into(), generation.into());
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).expect("JSON"))
        .expect("writing the manifest");
    open_and_read(&dir);
}

/// A safetensors file: its header, then every tensor it lists read as f32.
pub fn safetensors(data: &[u8]) {
    let path = file("model.safetensors", data);
    let Ok(weights) = ferret_models::weights::Weights::open(&path) else {
        return;
    };
    for (name, shape) in weights.shapes() {
        let _ = weights.get(&name, &shape);
    }
}

/// A GGUF file opened as an LLM (header, metadata, tensor table, tokenizer, weights).
pub fn gguf(data: &[u8]) {
    let path = file("model.gguf", data);
    let _ = ferret_models::llm::gguf::GgufModel::open(&path.to_string_lossy());
}

/// A tokenizer.json, loaded and used on a sentence.
pub fn tokenizer(data: &[u8]) {
    let_tokenizers_panics_be_caught();
    file("tokenizer.json", data);
    if let Ok(t) = ferret_models::sentence::load_tokenizer(scratch()) {
        let _ = t.encode("Cats and dogs, 42 times: naïve café 北京.", true);
    }
}

/// Under libFuzzer every panic aborts (its panic hook runs before any `catch_unwind`). The
/// tokenizers library panics on some malformed files, which ferret catches and reports as the
/// file's error (`ferret_models::sentence::load_tokenizer`): those panics are let through to
/// that `catch_unwind` (silently); any other panic still aborts.
fn let_tokenizers_panics_be_caught() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info
                .location()
                .is_some_and(|l| l.file().contains("/tokenizers-"))
            {
                fuzzer_hook(info);
            }
        }));
    });
}

/// A pipeline in its text form, or (first byte odd) either form (JSON when it starts with `{`),
/// printed back and re-read.
pub fn pipeline(data: &[u8]) {
    let (form, data) = split_choice(data, 2);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = if form == 0 {
        ferret_search::pipeline::parse(text)
    } else {
        ferret_search::pipeline::parse_any(text)
    };
    if let Ok(expr) = parsed {
        let printed = expr.to_string();
        let again = ferret_search::pipeline::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again.to_string(), printed, "printing is not stable");
    }
}
