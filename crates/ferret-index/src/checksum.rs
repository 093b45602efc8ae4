//! Corruption detection. Every file a commit writes — docstore chunks, the deleted list, each
//! representation's files — is recorded in the manifest with its size and CRC-32; tantivy's
//! segment files carry their own checksums (footers). Opening an index of up to
//! [`full_verify_limit`] bytes compares every size and checksum, so a truncated or bit-flipped
//! file is an error naming it, never different search results; a larger index gets the cheap
//! checks at open (every recorded file's size, tantivy's files as tantivy opens them) and its
//! checksums from `ferret check`, as Lucene and tantivy leave whole-file verification to
//! CheckIndex and `validate_checksum`: reading all 7 GB of a 10M-document index made every open
//! take 6 s with the files in the page cache and 67 s without. Files are immutable once
//! committed (their names carry a generation), so a process verifies each file once: a server
//! reopening its index after a write reads only new files.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;
use crate::IndexError;

/// A committed file's size and CRC-32, as the manifest records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub crc32: u32,
}

/// The files of a generation other than tantivy's, relative to the index directory.
pub fn committed_files(m: &Manifest) -> Vec<String> {
    let mut files: Vec<String> = m
        .chunks
        .iter()
        .flat_map(|c| {
            ["jsonl", "ids", "idx"].map(|ext| format!("docs/chunk-{:06}.{ext}", c.generation))
        })
        .chain(
            m.deleted_generation
                .map(|g| format!("docs/deleted-{g:06}.bin")),
        )
        .collect();
    files.extend(
        m.representations
            .iter()
            .flat_map(|e| e.files.iter().cloned()),
    );
    files
}

fn sum(path: &Path) -> Result<FileSum, IndexError> {
    let mut file = std::fs::File::open(path).map_err(IndexError::io(path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(IndexError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        crc32: hasher.finalize(),
    })
}

/// The sums of every file of `m`, for its manifest: files an earlier generation recorded keep
/// their sums, new ones are read (on `pool`).
pub fn record(
    dir: &Path,
    m: &Manifest,
    previous: Option<&Manifest>,
    pool: &rayon::ThreadPool,
) -> Result<BTreeMap<String, FileSum>, IndexError> {
    let files = committed_files(m);
    pool.install(|| {
        files
            .par_iter()
            .map(|f| {
                let known = previous.and_then(|p| p.files.get(f).copied());
                Ok((f.clone(), known.map_or_else(|| sum(&dir.join(f)), Ok)?))
            })
            .collect()
    })
}

/// Files this process has verified: path, size, modification time.
static VERIFIED: Mutex<Option<HashSet<(PathBuf, u64, SystemTime)>>> = Mutex::new(None);

fn stamp(path: &Path) -> Option<(PathBuf, u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((path.to_path_buf(), meta.len(), meta.modified().ok()?))
}

fn corrupt(path: PathBuf, message: String) -> IndexError {
    IndexError::Invalid {
        path,
        message: format!("{message}; the index is damaged (`ferret check` lists every damaged file; rebuild it or restore a copy)"),
    }
}

/// Checks one recorded file's size.
fn check_size(dir: &Path, name: &str, want: &FileSum) -> Result<(), IndexError> {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).map_err(IndexError::io(&path))?;
    if meta.len() != want.bytes {
        return Err(corrupt(
            path,
            format!(
                "{} bytes, the manifest records {}: the file was truncated or replaced",
                meta.len(),
                want.bytes
            ),
        ));
    }
    Ok(())
}

/// Checks one recorded file, size and checksum: the problem, if any.
fn check_file(dir: &Path, name: &str, want: &FileSum) -> Result<(), IndexError> {
    check_size(dir, name, want)?;
    let path = dir.join(name);
    let got = sum(&path)?;
    if got != *want {
        return Err(corrupt(
            path,
            "checksum mismatch: the file changed after its commit".into(),
        ));
    }
    Ok(())
}

/// The damaged files among tantivy's (its own per-file checksums).
fn check_lexical(dir: &Path) -> Vec<IndexError> {
    let lexical = dir.join("lexical");
    let damaged = tantivy::Index::open_in_dir(&lexical).and_then(|i| i.validate_checksum());
    match damaged {
        Ok(files) => files
            .into_iter()
            .map(|f| {
                corrupt(
                    lexical.join(f),
                    "checksum mismatch in a lexical index file".into(),
                )
            })
            .collect(),
        Err(e) => vec![corrupt(lexical, format!("lexical index: {e}"))],
    }
}

/// Every damaged file of the committed generation `m` (all of them, none skipped).
pub fn check_all(dir: &Path, m: &Manifest) -> Vec<IndexError> {
    let mut problems: Vec<IndexError> = m
        .files
        .par_iter()
        .filter_map(|(name, want)| check_file(dir, name, want).err())
        .collect();
    if m.lexical().is_some() {
        problems.extend(check_lexical(dir));
    }
    problems
}

/// Indexes up to this many bytes are checksummed whole at open: `FERRET_VERIFY_BYTES`, default
/// 1 GiB (about a second of reading; 0 = sizes only, a large value = always whole).
pub fn full_verify_limit() -> u64 {
    std::env::var("FERRET_VERIFY_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1 << 30)
}

/// The bytes opening `m` in full would read: its recorded files and tantivy's.
fn index_bytes(dir: &Path, m: &Manifest) -> u64 {
    let lexical: u64 = std::fs::read_dir(dir.join("lexical"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0);
    m.files.values().map(|f| f.bytes).sum::<u64>() + lexical
}

/// At open: every recorded file and tantivy's segment files, each once per process — or, for
/// an index larger than [`full_verify_limit`], every recorded file's size.
pub fn verify(dir: &Path, m: &Manifest) -> Result<(), IndexError> {
    let bytes = index_bytes(dir, m);
    if bytes > full_verify_limit() {
        tracing::debug!(
            "{}: {bytes} bytes, more than FERRET_VERIFY_BYTES: sizes checked at open, checksums by `ferret check`",
            dir.display()
        );
        return m
            .files
            .par_iter()
            .try_for_each(|(name, want)| check_size(dir, name, want));
    }
    let done = |path: &Path| {
        let seen = VERIFIED.lock().expect("checksum cache");
        stamp(path).is_some_and(|s| seen.as_ref().is_some_and(|set| set.contains(&s)))
    };
    let remember = |path: &Path| {
        if let Some(s) = stamp(path) {
            VERIFIED
                .lock()
                .expect("checksum cache")
                .get_or_insert_with(HashSet::new)
                .insert(s);
        }
    };
    let missing: Vec<(&String, &FileSum)> = m
        .files
        .iter()
        .filter(|(name, _)| !done(&dir.join(name)))
        .collect();
    missing
        .par_iter()
        .try_for_each(|(name, want)| check_file(dir, name, want))?;
    for (name, _) in missing {
        remember(&dir.join(name));
    }
    // tantivy's files change only through meta.json: one stamp stands for them all.
    let meta = dir.join("lexical/meta.json");
    if m.lexical().is_some() && !done(&meta) {
        if let Some(e) = check_lexical(dir).into_iter().next() {
            return Err(e);
        }
        remember(&meta);
    }
    Ok(())
}

/// What `ferret check` found in an index.
#[derive(Debug, Serialize)]
pub struct Report {
    pub generation: u64,
    /// Files with a recorded checksum, and their bytes (0 for an index written before
    /// checksums were recorded: then only tantivy's files and the structure are checked).
    pub files: usize,
    pub bytes: u64,
    /// Every problem found, each naming its file.
    pub problems: Vec<String>,
}

/// Verifies a whole index: every recorded file, tantivy's checksums, then (when those hold)
/// the structure as opening checks it and every live document's record.
pub fn check_index(dir: &Path) -> Result<Report, IndexError> {
    let m = crate::reader::committed_manifest(dir)?;
    let mut problems: Vec<String> = check_all(dir, &m).iter().map(|e| e.to_string()).collect();
    if problems.is_empty() {
        match crate::Index::open(dir) {
            Err(e) => problems.push(e.to_string()),
            Ok(index) => {
                let store = index.docstore();
                let bad = (0..store.num_slots() as crate::DocNo)
                    .filter(|d| !store.is_deleted(*d))
                    .find_map(|d| index.document(d).err());
                problems.extend(bad.map(|e| e.to_string()));
            }
        }
    }
    Ok(Report {
        generation: m.generation,
        files: m.files.len(),
        bytes: m.files.values().map(|f| f.bytes).sum(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_or_a_cut_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 3000]).unwrap();
        let want = sum(&path).unwrap();
        assert_eq!(want.bytes, 3000);
        check_file(dir.path(), "f.bin", &want).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1234] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let e = check_file(dir.path(), "f.bin", &want)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.bin") && e.contains("checksum mismatch"),
            "{e}"
        );
        std::fs::write(&path, &bytes[..100]).unwrap();
        let e = check_file(dir.path(), "f.bin", &want)
            .unwrap_err()
            .to_string();
        assert!(e.contains("100 bytes, the manifest records 3000"), "{e}");
    }
}
