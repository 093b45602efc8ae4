//! External document ids, kept compactly.
//!
//! Every writer and reader holds the id of every document: a `String` per document plus a
//! `HashMap<String, DocNo>` entry costs about 115 bytes a document (1.1 GB at 10M documents,
//! most of what indexing used). Here the ids lie end to end in one buffer with an end offset
//! each, and the look-up table holds only internal numbers (the id is read back from the
//! buffer to compare): about 8 + the id's length + 5 bytes a document.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::DocNo;

/// Ids by internal number (every slot ever assigned), and live id → internal number.
#[derive(Default)]
pub struct IdTable {
    text: String,
    /// `ends[d]`: where id `d` ends in `text` (it starts where `d − 1` ends).
    ends: Vec<u64>,
    /// Internal numbers of live documents, hashed by their id; built on first use for ids read
    /// from disk (see [`IdTable::read`]).
    live: OnceLock<HashTable<DocNo>>,
    /// Until `live` is built: which internal numbers are deleted.
    deleted: Vec<bool>,
    live_count: usize,
    hasher: FxBuildHasher,
}

impl IdTable {
    pub fn new() -> Self {
        IdTable::default()
    }

    /// The ids of a committed index, in internal-number order (`deleted[d]` for the deleted
    /// ones), `text_bytes` long in all. The look-up table is built when an id is first looked up,
    /// added or removed: a search never does, and inserting 10M ids took 2 of the 3 seconds of
    /// opening a 10M-document index.
    pub fn read<'a>(
        ids: impl Iterator<Item = &'a str>,
        deleted: Vec<bool>,
        text_bytes: usize,
    ) -> Self {
        let mut text = String::with_capacity(text_bytes);
        let mut ends = Vec::with_capacity(deleted.len());
        for id in ids {
            text.push_str(id);
            ends.push(text.len() as u64);
        }
        let live_count = deleted.iter().filter(|d| !**d).count();
        IdTable {
            text,
            ends,
            live: OnceLock::new(),
            deleted,
            live_count,
            hasher: FxBuildHasher,
        }
    }

    /// The look-up table, built from `deleted` the first time (sized at once: growing it
    /// rehashes, reading every id back from the buffer at random).
    fn table(&self) -> &HashTable<DocNo> {
        self.live.get_or_init(|| {
            let mut table = HashTable::with_capacity(self.live_count);
            for d in 0..self.ends.len() {
                if !self.deleted.get(d).copied().unwrap_or(false) {
                    let id = id_of(&self.text, &self.ends, d as DocNo);
                    // Sized for every live id: the rehash below never runs.
                    table.insert_unique(self.hasher.hash_one(id), d as DocNo, |&e| {
                        self.hasher.hash_one(id_of(&self.text, &self.ends, e))
                    });
                }
            }
            table
        })
    }

    /// The look-up table, built if need be, for a change.
    fn table_mut(&mut self) -> &mut HashTable<DocNo> {
        self.table();
        self.deleted = Vec::new();
        self.live.get_mut().expect("built just above")
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
        self.live_count
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
        self.table_mut();
        self.text.push_str(id);
        self.ends.push(self.text.len() as u64);
        if live {
            self.live_count += 1;
            let IdTable {
                text,
                ends,
                live,
                hasher,
                ..
            } = self;
            let table = live.get_mut().expect("built above");
            table.insert_unique(hasher.hash_one(id), d, |&e| {
                hasher.hash_one(id_of(text, ends, e))
            });
        }
        d
    }

    /// The internal number of a live id.
    pub fn find(&self, id: &str) -> Option<DocNo> {
        self.table()
            .find(self.hasher.hash_one(id), |&d| self.get(d) == id)
            .copied()
    }

    /// Marks a live id deleted (its slot keeps the id); returns its internal number.
    pub fn remove(&mut self, id: &str) -> Option<DocNo> {
        let hash = self.hasher.hash_one(id);
        self.table_mut();
        let IdTable {
            text, ends, live, ..
        } = self;
        let entry = live
            .get_mut()
            .expect("built above")
            .find_entry(hash, |&d| id_of(text, ends, d) == id)
            .ok()?;
        self.live_count -= 1;
        Some(entry.remove().0)
    }

    /// Bytes held on the heap (for the indexing memory budget).
    /// The look-up table counts as built: a writer builds it as soon as it adds a document.
    pub fn heap_bytes(&self) -> usize {
        let slots = self
            .live
            .get()
            .map_or(self.live_count * 8 / 7, |t| t.capacity());
        self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<u64>()
            + slots * (std::mem::size_of::<DocNo>() + 1)
            + self.deleted.capacity()
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
    fn ids_read_from_disk_are_indexed_on_first_use() {
        let deleted = vec![false, true, false];
        let t = IdTable::read(["a", "b", "c"].into_iter(), deleted.clone(), 3);
        assert_eq!((t.len(), t.live_count()), (3, 2));
        assert_eq!(t.get(1), "b");
        assert!(t.live.get().is_none(), "not built by reading or get");
        assert_eq!(t.find("c"), Some(2));
        assert_eq!(t.find("b"), None);
        let mut t = IdTable::read(["a", "b", "c"].into_iter(), deleted, 3);
        assert_eq!(t.remove("a"), Some(0));
        assert_eq!(t.live_count(), 1);
        assert_eq!(t.push("b", true), 3);
        assert_eq!(
            (t.find("b"), t.find("a"), t.live_count()),
            (Some(3), None, 2)
        );
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
