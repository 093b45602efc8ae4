//! Forward files: each document's sparse vector as its encoder gave it (terms and f32
//! weights), one file per docstore chunk, rows in internal-number order. Encoding is the
//! expensive part of a sparse representation, so it happens once per chunk; the inverted
//! index is rebuilt from these files.
//!
//! ```text
//! b"FSPFWD01"  u32 documents  u64 vocabulary bytes  vocabulary (JSON array of the chunk's terms)
//! u32 offsets[documents + 1]  (index of each document's first entry)
//! entries: (u32 term index in the vocabulary, f32 weight) × offsets[documents]
//! ```

use std::collections::HashMap;
use std::path::Path;

use crate::IndexError;

const MAGIC: &[u8; 8] = b"FSPFWD01";

/// Serialises a chunk's vectors (one per document, in order).
pub(crate) fn encode(vectors: &[Vec<(String, f32)>]) -> Vec<u8> {
    let mut vocabulary: Vec<&str> = Vec::new();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut offsets = vec![0u32];
    let mut entries: Vec<(u32, f32)> = Vec::new();
    for v in vectors {
        for (term, w) in v {
            let id = *ids.entry(term).or_insert_with(|| {
                vocabulary.push(term);
                vocabulary.len() as u32 - 1
            });
            entries.push((id, *w));
        }
        offsets.push(entries.len() as u32);
    }
    let vocab = serde_json::to_vec(&vocabulary).expect("strings serialise");
    let mut out = Vec::with_capacity(24 + vocab.len() + offsets.len() * 4 + entries.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend((vectors.len() as u32).to_le_bytes());
    out.extend((vocab.len() as u64).to_le_bytes());
    out.extend(vocab);
    out.extend(offsets.iter().flat_map(|o| o.to_le_bytes()));
    for (t, w) in entries {
        out.extend(t.to_le_bytes());
        out.extend(w.to_le_bytes());
    }
    out
}

/// A chunk's forward file, read whole (it is read at commit and for explain only).
pub(crate) struct Forward {
    vocabulary: Vec<String>,
    offsets: Vec<u32>,
    entries: Vec<(u32, f32)>,
}

impl Forward {
    pub(crate) fn read(path: &Path, documents: u32) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(IndexError::io(path))?;
        let corrupt = |what: &str| IndexError::Invalid {
            path: path.to_path_buf(),
            message: format!("truncated or corrupt sparse forward file: {what}"),
        };
        let mut r = crate::sparse::impact::ByteReader::new(&bytes);
        if r.take(8).ok_or_else(|| corrupt("no header"))? != MAGIC {
            return Err(corrupt("not a forward file"));
        }
        let n = r.u32().ok_or_else(|| corrupt("no document count"))?;
        if n != documents {
            return Err(corrupt(&format!(
                "{n} documents, the docstore chunk has {documents}"
            )));
        }
        let vocab_len = r.u64().ok_or_else(|| corrupt("no vocabulary size"))? as usize;
        let vocabulary: Vec<String> =
            serde_json::from_slice(r.take(vocab_len).ok_or_else(|| corrupt("vocabulary"))?)
                .map_err(|_| corrupt("vocabulary"))?;
        let offsets: Vec<u32> = (0..=n)
            .map(|_| r.u32())
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("offsets"))?;
        let total = *offsets.last().expect("n + 1 offsets") as usize;
        if offsets.windows(2).any(|w| w[0] > w[1]) || r.remaining() != total * 8 {
            return Err(corrupt("entries"));
        }
        let mut entries = Vec::with_capacity(total);
        for _ in 0..total {
            let t = r.u32().expect("length checked");
            let w = f32::from_bits(r.u32().expect("length checked"));
            if t as usize >= vocabulary.len() || !(w.is_finite() && w > 0.0) {
                return Err(corrupt("entry"));
            }
            entries.push((t, w));
        }
        Ok(Forward {
            vocabulary,
            offsets,
            entries,
        })
    }

    /// The `i`-th document's (term, weight) pairs.
    pub(crate) fn document(&self, i: usize) -> impl Iterator<Item = (&str, f32)> + '_ {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        self.entries[a..b]
            .iter()
            .map(|&(t, w)| (self.vocabulary[t as usize].as_str(), w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_truncation() {
        let vectors = vec![
            vec![("iron".to_string(), 1.5), ("yeast".to_string(), 0.25)],
            vec![],
            vec![("yeast".to_string(), 2.0)],
        ];
        let bytes = encode(&vectors);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.bin");
        std::fs::write(&path, &bytes).unwrap();
        let f = Forward::read(&path, 3).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            let got: Vec<(String, f32)> = f.document(i).map(|(t, w)| (t.to_string(), w)).collect();
            assert_eq!(&got, v);
        }
        assert!(Forward::read(&path, 4).is_err());
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = Forward::read(&path, 3).err().unwrap().to_string();
        assert!(err.contains("truncated or corrupt"), "{err}");
    }
}
