//! The memory budget of a writer: how it is shared, and the check that indexing stays in it.
//!
//! What a writer holds grows with the collection in two places, both measured: the ids of
//! every document ([`crate::ids::IdTable`], ~25 bytes a document) and, at commit, an HNSW graph
//! (its vectors and links). The lexical indexer gets a fixed share; the rest of the budget is
//! what the growing parts may take. Work that would not fit stops with [`IndexError::OverBudget`]
//! before it allocates, rather than taking more memory than the user allowed.

use crate::IndexError;

/// tantivy refuses less than this per indexing thread.
pub(crate) const LEXICAL_PER_THREAD: usize = 15_000_000;

/// Memory not tracked piece by piece: the program, the batches of documents in flight between
/// reading, analysis and tantivy's indexing threads, tantivy's merges, allocator slack
/// (measured: 115–140 MB above the tracked parts while indexing 1M synthetic documents).
pub(crate) const BASE: usize = 128_000_000;

/// The smallest budget a writer accepts: the base and one lexical thread's share.
pub const MIN_BUDGET: usize = BASE + 4 * LEXICAL_PER_THREAD;

/// The default budget: enough for ~10M documents' lexical index on a laptop.
pub const DEFAULT_BUDGET: usize = 1_000_000_000;

/// The lexical indexer's share (tantivy's in-memory segments): a quarter of the budget, at most
/// 1 GB (more buys little speed: segments are merged anyway).
pub(crate) fn lexical_share(budget: usize) -> usize {
    (budget / 4).min(1_000_000_000)
}

/// Checks that `parts` (name, bytes) and the fixed shares fit in `budget`.
pub(crate) fn check(budget: usize, parts: &[(&str, usize)]) -> Result<(), IndexError> {
    let fixed = BASE + lexical_share(budget);
    let needed = fixed + parts.iter().map(|(_, b)| b).sum::<usize>();
    if needed <= budget {
        return Ok(());
    }
    let detail = parts
        .iter()
        .map(|(what, b)| format!("{what} {} MB", mb(*b)))
        .chain([format!("lexical indexer and base {} MB", mb(fixed))])
        .collect::<Vec<_>>()
        .join(", ");
    Err(IndexError::OverBudget {
        needed_mb: mb(needed),
        budget_mb: mb(budget),
        detail,
    })
}

/// Refuses a budget below [`MIN_BUDGET`] (for the index in `dir`).
pub(crate) fn check_minimum(budget: usize, dir: &std::path::Path) -> Result<(), IndexError> {
    if budget >= MIN_BUDGET {
        return Ok(());
    }
    Err(IndexError::Invalid {
        path: dir.to_path_buf(),
        message: format!(
            "a memory budget of {} MB is too small: indexing needs at least {} MB",
            budget / 1_000_000,
            mb(MIN_BUDGET)
        ),
    })
}

fn mb(bytes: usize) -> usize {
    bytes.div_ceil(1_000_000)
}

/// Parses a size: a number with an optional unit — K, M, G, T (powers of 1000, optionally
/// followed by B) or KiB, MiB, GiB, TiB (powers of 1024); a bare number is bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512M, 2G, 1.5GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use K, M, G, T or KiB, MiB, GiB, TiB)"
            ))
        }
    };
    Ok((value * scale).round() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("512M"), Ok(512_000_000));
        assert_eq!(parse_size("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("100kb"), Ok(100_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("3 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn the_check_names_what_does_not_fit() {
        let budget = 600_000_000;
        assert!(check(budget, &[("document ids", 300_000_000)]).is_ok());
        let e = check(budget, &[("document ids", 350_000_000)]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("needs about 628 MB"), "{text}");
        assert!(text.contains("memory budget of 600 MB"), "{text}");
        assert!(text.contains("document ids 350 MB"), "{text}");
        assert!(text.contains("--memory-budget"), "{text}");
    }
}
