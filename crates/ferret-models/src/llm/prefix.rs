//! Recent prompts' KV caches, so that a prompt which begins like an earlier one (the same chat
//! template, instruction and query; in PRP also the same first passage) only runs its new
//! tokens. Pairwise reranking asks about each passage as "Passage A" many times: after the
//! first, about half of each prompt is found here. llama.cpp's server reuses a slot's cache the
//! same way (`cache_prompt`), for one earlier prompt per slot; this keeps many.
//!
//! The memory is bounded (least recently used prompts go first); `FERRET_LLM_PREFIX_CACHE_MB`
//! sets the bound (default 512, 0 turns reuse off).

use std::sync::{Arc, Mutex};

use super::llama::KvSnapshot;

const DEFAULT_MB: usize = 512;

struct Entry {
    tokens: Vec<u32>,
    kv: Arc<KvSnapshot>,
    used: u64,
}

#[derive(Default)]
struct Entries {
    list: Vec<Entry>,
    bytes: usize,
    clock: u64,
}

pub(crate) struct PrefixStore {
    budget: usize,
    entries: Mutex<Entries>,
}

/// Tokens two sequences begin with in common.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixStore {
    /// A store holding at most `budget` bytes of KV caches.
    pub(crate) fn new(budget: usize) -> Self {
        PrefixStore {
            budget,
            entries: Mutex::default(),
        }
    }

    /// A store with the budget from `FERRET_LLM_PREFIX_CACHE_MB`, or the default.
    pub(crate) fn from_env() -> Self {
        let mb = match std::env::var("FERRET_LLM_PREFIX_CACHE_MB") {
            Err(_) => DEFAULT_MB,
            Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(
                    "FERRET_LLM_PREFIX_CACHE_MB={v} is not a number of megabytes; using {DEFAULT_MB}"
                );
                DEFAULT_MB
            }),
        };
        Self::new(mb << 20)
    }

    /// The stored cache sharing the longest prefix with `prompt`, and how many of its
    /// positions to use: at most `prompt.len() - 1`, as the last token must run to give the
    /// next token's logits. `None` when nothing is shared.
    pub(crate) fn longest(&self, prompt: &[u32]) -> Option<(Arc<KvSnapshot>, usize)> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.clock += 1;
        let now = e.clock;
        let best = e
            .list
            .iter_mut()
            .map(|entry| (common_prefix(&entry.tokens, prompt), entry))
            .max_by_key(|(n, _)| *n)?;
        let n = best.0.min(prompt.len().saturating_sub(1));
        if n == 0 {
            return None;
        }
        best.1.used = now;
        Some((Arc::clone(&best.1.kv), n))
    }

    /// Keeps the cache after `tokens`. A stored prompt that `tokens` extends is dropped (the
    /// new one serves all it did); then the least recently used go until the store fits.
    pub(crate) fn insert(&self, tokens: &[u32], kv: KvSnapshot) {
        let size = kv.bytes();
        if size > self.budget {
            return;
        }
        debug_assert_eq!(kv.len(), tokens.len());
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let covered = |entry: &Entry| tokens.starts_with(&entry.tokens);
        let dropped: usize = e
            .list
            .iter()
            .filter(|x| covered(x))
            .map(|x| x.kv.bytes())
            .sum();
        e.list.retain(|x| !covered(x));
        e.bytes -= dropped;
        while e.bytes + size > self.budget {
            let oldest = (0..e.list.len())
                .min_by_key(|&i| e.list[i].used)
                .expect("entries exceed the budget, so there is one");
            let gone = e.list.swap_remove(oldest);
            e.bytes -= gone.kv.bytes();
        }
        e.clock += 1;
        let used = e.clock;
        e.bytes += size;
        e.list.push(Entry {
            tokens: tokens.to_vec(),
            kv: Arc::new(kv),
            used,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of `tokens` taking 4 bytes per position (one head of 1: f16 keys and values).
    fn kv(tokens: &[u32]) -> KvSnapshot {
        KvSnapshot::zeros(tokens.len(), 1)
    }

    fn found(store: &PrefixStore, prompt: &[u32]) -> Option<usize> {
        store.longest(prompt).map(|(_, n)| n)
    }

    #[test]
    fn the_longest_shared_prefix_is_found_and_the_last_token_left_to_run() {
        let store = PrefixStore::new(1 << 20);
        assert_eq!(found(&store, &[1, 2, 3]), None);
        store.insert(&[1, 2, 3, 4], kv(&[1, 2, 3, 4]));
        store.insert(&[1, 2, 9, 9, 9], kv(&[1, 2, 9, 9, 9]));
        assert_eq!(found(&store, &[1, 2, 3, 4, 5, 6]), Some(4));
        assert_eq!(found(&store, &[1, 2, 9, 9, 8]), Some(4));
        assert_eq!(found(&store, &[1, 7]), Some(1));
        // All of a stored prompt again: its last token runs once more, for the logits.
        assert_eq!(found(&store, &[1, 2, 3, 4]), Some(3));
        assert_eq!(found(&store, &[5, 1, 2]), None);
        assert_eq!(found(&store, &[1]), None);
    }

    #[test]
    fn a_prompt_replaces_the_stored_prompts_it_extends() {
        let store = PrefixStore::new(1 << 20);
        store.insert(&[1, 2], kv(&[1, 2]));
        store.insert(&[1, 2, 3], kv(&[1, 2, 3]));
        store.insert(&[1, 5], kv(&[1, 5]));
        let e = store.entries.lock().unwrap();
        let kept: Vec<&[u32]> = e.list.iter().map(|x| x.tokens.as_slice()).collect();
        assert_eq!(kept, [&[1, 2, 3][..], &[1, 5][..]]);
        assert_eq!(e.bytes, 5 * 4);
    }

    #[test]
    fn the_least_recently_used_prompts_go_when_the_budget_is_full() {
        // Room for 8 positions.
        let store = PrefixStore::new(32);
        store.insert(&[1, 1, 1], kv(&[1, 1, 1]));
        store.insert(&[2, 2, 2], kv(&[2, 2, 2]));
        assert_eq!(found(&store, &[1, 1, 1, 7]), Some(3));
        // [2, 2, 2] was used least recently.
        store.insert(&[3, 3, 3], kv(&[3, 3, 3]));
        assert_eq!(found(&store, &[2, 2, 2, 7]), None);
        assert_eq!(found(&store, &[1, 1, 1, 7]), Some(3));
        assert_eq!(found(&store, &[3, 3, 3, 7]), Some(3));
        assert!(store.entries.lock().unwrap().bytes <= 32);
        // A prompt larger than the whole budget is not kept, and evicts nothing.
        store.insert(&[4; 9], kv(&[4; 9]));
        assert_eq!(found(&store, &[4; 10]), None);
        assert_eq!(found(&store, &[1, 1, 1, 7]), Some(3));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let store = PrefixStore::new(0);
        store.insert(&[1, 2, 3], kv(&[1, 2, 3]));
        assert_eq!(found(&store, &[1, 2, 3, 4]), None);
    }
}
