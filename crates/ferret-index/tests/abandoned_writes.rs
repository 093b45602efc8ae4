//! Writers given up midway leave the index usable. A writer given up without a commit (e.g.
//! after an unknown id) releases the index at once:
//! the next writer opens without finding tantivy's directory lock still held by the abandoned
//! one's worker thread. (Found by schemathesis against `ferret serve`: DELETE of an unknown id
//! followed at once by another write answered 500 LockBusy.)

use std::path::PathBuf;

use ferret_index::{IndexError, IndexOptions, IndexWriter};

fn scifact_corpus() -> PathBuf {
    let data = std::env::var_os("FERRET_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let corpus = data.join("beir-scifact/corpus.jsonl.gz");
    assert!(
        corpus.exists(),
        "{} not found — set FERRET_DATA",
        corpus.display()
    );
    corpus
}

#[test]
fn an_abandoned_writer_releases_the_index_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut w = IndexWriter::create(&dir, IndexOptions::default(), false).unwrap();
    w.add_corpus(&scifact_corpus(), &mut |_, _, _| {}).unwrap();
    w.commit().unwrap();
    for round in 0..20 {
        let mut w = IndexWriter::open(&dir, IndexOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let err = w.delete(&[format!("no-such-id-{round}")]).unwrap_err();
        assert!(matches!(err, IndexError::UnknownDocument(_)), "{err}");
        drop(w);
    }
    let mut w = IndexWriter::open(&dir, IndexOptions::default()).unwrap();
    w.delete(&["4983".to_string()]).unwrap();
    assert_eq!(w.commit().unwrap().deleted, 1);
}

#[test]
fn ids_with_whitespace_or_control_characters_are_refused_and_the_index_stays_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut w = IndexWriter::create(&dir, IndexOptions::default(), false).unwrap();
    w.add_corpus(&scifact_corpus(), &mut |_, _, _| {}).unwrap();
    w.commit().unwrap();
    for bad in ["a\nb", "a b", "tab\there", "bell\u{7}"] {
        let mut w = IndexWriter::open(&dir, IndexOptions::default()).unwrap();
        let doc = ferret_index::Document {
            id: bad.to_string(),
            title: String::new(),
            text: "some text".into(),
            ..Default::default()
        };
        let err = w.add(doc).unwrap_err().to_string();
        assert!(err.contains("may not contain whitespace"), "{bad:?}: {err}");
    }
    let mut w = IndexWriter::open(&dir, IndexOptions::default()).unwrap();
    let doc = ferret_index::Document {
        id: "fine-id".into(),
        title: String::new(),
        text: "some text".into(),
        ..Default::default()
    };
    w.add(doc).unwrap();
    w.commit().unwrap();
    let index = ferret_index::Index::open(&dir).unwrap();
    assert_eq!(index.manifest().doc_count, 5184);
}

/// The state a crash leaves between the commit's switch (tantivy's commit) and the rename of
/// `manifest.next.json`: the next writer completes that switch before starting its own
/// generation, whose step 2 would otherwise overwrite the only manifest of the committed one.
/// (Found by killing appends: the index could no longer be opened by any command.)
#[test]
fn a_writer_completes_an_interrupted_switch_before_its_own_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let add = |w: &mut IndexWriter, id: &str| {
        w.add(ferret_index::Document {
            id: id.into(),
            title: String::new(),
            text: format!("text of {id}"),
            ..Default::default()
        })
        .unwrap()
    };
    let mut w = IndexWriter::create(&dir, IndexOptions::default(), false).unwrap();
    add(&mut w, "a");
    w.commit().unwrap();
    let generation_1 = std::fs::read(dir.join("manifest.json")).unwrap();
    let mut w = IndexWriter::open(&dir, IndexOptions::default()).unwrap();
    add(&mut w, "b");
    w.commit().unwrap();
    // Generation 2 committed in tantivy, its manifest not yet renamed into place.
    std::fs::rename(dir.join("manifest.json"), dir.join("manifest.next.json")).unwrap();
    std::fs::write(dir.join("manifest.json"), &generation_1).unwrap();
    assert_eq!(
        ferret_index::Index::open(&dir)
            .unwrap()
            .manifest()
            .doc_count,
        2
    );

    // A writer that opens and is given up (as a killed one would be, once it has written
    // its own manifest.next.json) leaves generation 2 in manifest.json.
    let w = IndexWriter::open(&dir, IndexOptions::default()).unwrap();
    assert!(!dir.join("manifest.next.json").exists());
    std::fs::write(dir.join("manifest.next.json"), b"{\"garbage\": true}").unwrap();
    drop(w);
    let index = ferret_index::Index::open(&dir).unwrap();
    assert_eq!(index.manifest().generation, 2);
    assert_eq!(index.manifest().doc_count, 2);
}
