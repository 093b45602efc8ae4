//! External document ids, kept compactly.
//!
//! Every writer and reader holds the id of every document: a `String` per document plus a
//! `HashMap<String, DocNo>` entry costs about 115 bytes a document (1.1 GB at 10M documents,
//! most of what indexing used). Here the ids lie end to end in one buffer with an end offset
//! each, and the look-up table holds only internal numbers (the id is read back from the
//! buffer to compare): about 8 + the id's length + 5 bytes a document.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::DocNo;

/// Ids by internal number (every slot ever assigned), and live id → internal number.
#[derive(Default)]
pub struct IdTable {
    text: String,
    /// `ends[d]`: where id `d` ends in `text` (it starts where `d − 1` ends).
    ends: Vec<u64>,
    /// Internal numbers of live documents, hashed by their id.
    live: HashTable<DocNo>,
    hasher: FxBuildHasher,
}

impl IdTable {
    pub fn new() -> Self {
        IdTable::default()
    }

    /// A table with room for `ids` ids (`live` of them live) of `text_bytes` bytes in all: no
    /// rehashing as it fills. Rehashing reads every id back from the buffer, at random: growing
    /// to 10M ids that way was 4 of the 5 seconds of opening a 10M-document index.
    pub fn with_capacity(ids: usize, live: usize, text_bytes: usize) -> Self {
        IdTable {
            text: String::with_capacity(text_bytes),
            ends: Vec::with_capacity(ids),
            live: HashTable::with_capacity(live),
            hasher: FxBuildHasher,
        }
    }

    /// Number of internal numbers assigned (live and deleted).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Number of live ids.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The id of internal number `d` (live or deleted).
    pub fn get(&self, d: DocNo) -> &str {
        id_of(&self.text, &self.ends, d)
    }

    /// Assigns the next internal number to `id`; with `live`, the id can be found by [`find`].
    /// The caller checks that a live id is not live already.
    ///
    /// [`find`]: IdTable::find
    pub fn push(&mut self, id: &str, live: bool) -> DocNo {
        let d = self.ends.len() as DocNo;
        self.text.push_str(id);
        self.ends.push(self.text.len() as u64);
        if live {
            let IdTable {
                text,
                ends,
                live,
                hasher,
            } = self;
            live.insert_unique(hasher.hash_one(id), d, |&e| {
                hasher.hash_one(id_of(text, ends, e))
            });
        }
        d
    }

    /// The internal number of a live id.
    pub fn find(&self, id: &str) -> Option<DocNo> {
        self.live
            .find(self.hasher.hash_one(id), |&d| self.get(d) == id)
            .copied()
    }

    /// Marks a live id deleted (its slot keeps the id); returns its internal number.
    pub fn remove(&mut self, id: &str) -> Option<DocNo> {
        let IdTable {
            text, ends, live, ..
        } = self;
        let entry = live
            .find_entry(self.hasher.hash_one(id), |&d| id_of(text, ends, d) == id)
            .ok()?;
        Some(entry.remove().0)
    }

    /// Bytes held on the heap (for the indexing memory budget).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<u64>()
            + self.live.capacity() * (std::mem::size_of::<DocNo>() + 1)
    }
}

fn id_of<'a>(text: &'a str, ends: &[u64], d: DocNo) -> &'a str {
    let d = d as usize;
    let start = if d == 0 { 0 } else { ends[d - 1] as usize };
    &text[start..ends[d] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_by_text_and_number_and_deleted_ones_only_by_number() {
        let mut t = IdTable::new();
        assert_eq!(t.push("doc-a", true), 0);
        assert_eq!(t.push("", true), 1);
        assert_eq!(t.push("gone", false), 2);
        assert_eq!(t.push("é✓", true), 3);
        assert_eq!((t.len(), t.live_count()), (4, 3));
        assert_eq!(t.find("doc-a"), Some(0));
        assert_eq!(t.find(""), Some(1));
        assert_eq!(t.find("é✓"), Some(3));
        assert_eq!(t.find("gone"), None);
        assert_eq!(t.get(2), "gone");
        assert_eq!(t.remove("doc-a"), Some(0));
        assert_eq!(t.remove("doc-a"), None);
        assert_eq!(t.find("doc-a"), None);
        assert_eq!(t.get(0), "doc-a");
        // A deleted id can come back under a new number.
        assert_eq!(t.push("doc-a", true), 4);
        assert_eq!(t.find("doc-a"), Some(4));
    }

    #[test]
    fn a_million_ids_take_a_fraction_of_a_string_map() {
        let mut t = IdTable::new();
        for i in 0..1_000_000u32 {
            t.push(&format!("d{i}"), true);
        }
        for i in (0..1_000_000u32).step_by(9973) {
            assert_eq!(t.find(&format!("d{i}")), Some(i));
        }
        assert_eq!(t.find("d1000000"), None);
        // 7 bytes of text, 8 of offset and ≤ 2 × 5 of table per id (+ growth slack).
        assert!(t.heap_bytes() < 48_000_000, "{} bytes", t.heap_bytes());
    }
}
