//! The ordering logic of the LLM rerankers, apart from any model: pairwise aggregation (all
//! pairs), sorting-based top-k (heapsort) and bubble passes over a preference function, the
//! listwise sliding window over a window-ranking function, and the repair of the permutations
//! models write. Tested here with oracle preferences (`tests` below, and on SciFact qrels in
//! `tests/llm_rerank.rs`).

/// The outcome of comparing `a` with `b`: 1 when `a` is preferred, 0 when `b` is, 0.5 for a tie
/// (PRP's "both orders disagree").
pub type Preference = f32;

/// PRP all pairs: each item's score is the sum of its preferences against every other item
/// (the caller asks both orders inside `prefer`). Returns the scores, in item order.
pub fn all_pairs(n: usize, mut prefer: impl FnMut(usize, usize) -> Preference) -> Vec<f32> {
    let mut score = vec![0.0; n];
    for a in 0..n {
        for b in a + 1..n {
            let p = prefer(a, b);
            score[a] += p;
            score[b] += 1.0 - p;
        }
    }
    score
}

/// Sorting-based top-k (PRP-Sorting with heapsort): builds a max-heap under `prefer` and pops
/// the best `k`; the rest follow in their incoming order. About n + k·log n comparisons.
pub fn heap_top_k(
    items: &[usize],
    k: usize,
    mut prefer: impl FnMut(usize, usize) -> Preference,
) -> Vec<usize> {
    let mut heap = items.to_vec();
    let n = heap.len();
    // `better(x, y)`: x should sit above y. Ties keep the item ranked higher coming in.
    let rank_in: std::collections::HashMap<usize, usize> =
        items.iter().enumerate().map(|(i, &x)| (x, i)).collect();
    let mut better = |x: usize, y: usize| {
        let p = prefer(x, y);
        p > 0.5 || (p == 0.5 && rank_in[&x] < rank_in[&y])
    };
    let mut sift_down = |heap: &mut Vec<usize>, mut i: usize, len: usize| loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut top = i;
        if l < len && better(heap[l], heap[top]) {
            top = l;
        }
        if r < len && better(heap[r], heap[top]) {
            top = r;
        }
        if top == i {
            break;
        }
        heap.swap(i, top);
        i = top;
    };
    for i in (0..n / 2).rev() {
        sift_down(&mut heap, i, n);
    }
    let mut out = Vec::with_capacity(n);
    let mut len = n;
    while out.len() < k.min(n) {
        out.push(heap[0]);
        len -= 1;
        heap.swap(0, len);
        sift_down(&mut heap, 0, len);
    }
    let chosen: std::collections::HashSet<usize> = out.iter().copied().collect();
    out.extend(items.iter().filter(|x| !chosen.contains(x)));
    out
}

/// PRP sliding: `passes` bubble passes from the bottom of the list to the top; pass j carries
/// the best remaining item up to position j, so `passes` = k fixes the top k.
pub fn bubble_passes(
    items: &[usize],
    passes: usize,
    mut prefer: impl FnMut(usize, usize) -> Preference,
) -> Vec<usize> {
    let mut order = items.to_vec();
    for pass in 0..passes.min(order.len().saturating_sub(1)) {
        for i in (pass..order.len() - 1).rev() {
            if prefer(order[i + 1], order[i]) > 0.5 {
                order.swap(i, i + 1);
            }
        }
    }
    order
}

/// RankGPT's sliding window: windows of `window` items from the bottom of the list to the top,
/// moving up by `step`; each window is reordered by `rank` (which returns a permutation of the
/// window's positions, best first). With `window` >= the list, one pass over the full list.
pub fn sliding_windows<E>(
    items: &[usize],
    window: usize,
    step: usize,
    mut rank: impl FnMut(&[usize]) -> Result<Vec<usize>, E>,
) -> Result<Vec<usize>, E> {
    let mut order = items.to_vec();
    let n = order.len();
    if n == 0 {
        return Ok(order);
    }
    let window = window.clamp(1, n);
    let mut end = n;
    loop {
        let start = end.saturating_sub(window);
        let slice = order[start..end].to_vec();
        let perm = rank(&slice)?;
        for (j, &p) in perm.iter().enumerate() {
            order[start + j] = slice[p];
        }
        if start == 0 {
            break;
        }
        end = end.saturating_sub(step.max(1));
    }
    Ok(order)
}

/// Reads a ranking such as "[3] > [1] > [2]" written about `n` passages numbered from 1:
/// numbers out of range and repeats are dropped, and passages the answer left out follow in
/// their incoming order. Returns 0-based positions and whether anything had to be repaired.
pub fn parse_permutation(text: &str, n: usize) -> (Vec<usize>, bool) {
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut repaired = false;
    let mut digits = String::new();
    let mut take = |digits: &mut String, order: &mut Vec<usize>, seen: &mut Vec<bool>| {
        if digits.is_empty() {
            return;
        }
        match digits.parse::<usize>() {
            Ok(i) if (1..=n).contains(&i) && !seen[i - 1] => {
                seen[i - 1] = true;
                order.push(i - 1);
            }
            _ => repaired = true,
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            take(&mut digits, &mut order, &mut seen);
        }
    }
    take(&mut digits, &mut order, &mut seen);
    if order.len() < n {
        repaired = true;
        order.extend((0..n).filter(|&i| !seen[i]));
    }
    (order, repaired)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle preferences from relevance grades: the more relevant item wins, equal grades tie.
    fn oracle(grades: &[u32]) -> impl Fn(usize, usize) -> Preference + '_ {
        move |a, b| match grades[a].cmp(&grades[b]) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Less => 0.0,
            std::cmp::Ordering::Equal => 0.5,
        }
    }

    /// Pseudo-random grades 0..=3 (a fixed linear congruential sequence).
    fn grades(n: usize, seed: u64) -> Vec<u32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 4) as u32
            })
            .collect()
    }

    fn sorted_grades(order: &[usize], g: &[u32]) -> Vec<u32> {
        order.iter().map(|&i| g[i]).collect()
    }

    fn ideal(g: &[u32]) -> Vec<u32> {
        let mut s = g.to_vec();
        s.sort_by(|a, b| b.cmp(a));
        s
    }

    #[test]
    fn all_pairs_with_an_oracle_sorts_by_grade() {
        for seed in 0..20 {
            let g = grades(20, seed);
            let scores = all_pairs(g.len(), oracle(&g));
            let mut order: Vec<usize> = (0..g.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            assert_eq!(sorted_grades(&order, &g), ideal(&g));
        }
    }

    #[test]
    fn heapsort_top_k_finds_the_best_k_in_order() {
        for seed in 0..50 {
            let g = grades(20, seed);
            let items: Vec<usize> = (0..20).collect();
            let mut calls = 0;
            let order = heap_top_k(&items, 10, |a, b| {
                calls += 1;
                oracle(&g)(a, b)
            });
            assert_eq!(&sorted_grades(&order, &g)[..10], &ideal(&g)[..10]);
            assert_eq!(order.len(), 20);
            assert!(
                calls < 20 * 19 / 2,
                "fewer comparisons than all pairs: {calls}"
            );
        }
    }

    #[test]
    fn k_bubble_passes_fix_the_top_k() {
        for seed in 0..50 {
            let g = grades(20, seed);
            let items: Vec<usize> = (0..20).collect();
            let order = bubble_passes(&items, 10, oracle(&g));
            assert_eq!(&sorted_grades(&order, &g)[..10], &ideal(&g)[..10]);
            let mut rest = order.clone();
            rest.sort();
            assert_eq!(rest, items, "a permutation of the input");
        }
    }

    #[test]
    fn sliding_windows_bring_the_top_window_minus_step_to_the_top() {
        for seed in 0..50 {
            let g = grades(100, seed);
            let items: Vec<usize> = (0..100).collect();
            let mut windows = 0;
            let order = sliding_windows(&items, 20, 10, |w| {
                windows += 1;
                let mut perm: Vec<usize> = (0..w.len()).collect();
                perm.sort_by(|&a, &b| g[w[b]].cmp(&g[w[a]]));
                Ok::<_, ()>(perm)
            })
            .unwrap();
            assert_eq!(windows, 9, "windows 80..100, 70..90, …, 0..20");
            // One back-to-front pass carries the best (window - step) items to the top, sorted.
            assert_eq!(&sorted_grades(&order, &g)[..10], &ideal(&g)[..10]);
        }
        // A window as large as the list is a single full-list pass.
        let mut calls = 0;
        let order = sliding_windows(&[5, 6, 7], 20, 10, |w| {
            calls += 1;
            Ok::<_, ()>((0..w.len()).rev().collect())
        })
        .unwrap();
        assert_eq!((order, calls), (vec![7, 6, 5], 1));
    }

    #[test]
    fn permutations_are_repaired_never_rejected() {
        assert_eq!(
            parse_permutation("[2] > [3] > [1]", 3),
            (vec![1, 2, 0], false)
        );
        // Repeats, out-of-range ids and junk are dropped; missing ids follow in order.
        assert_eq!(
            parse_permutation("[2] > [2] > [9] > [0] banana", 4),
            (vec![1, 0, 2, 3], true)
        );
        assert_eq!(parse_permutation("", 3), (vec![0, 1, 2], true));
        assert_eq!(
            parse_permutation("I think 3 then 1", 3),
            (vec![2, 0, 1], true)
        );
    }
}
