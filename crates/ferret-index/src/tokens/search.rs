//! Searching token vectors by late interaction: MaxSim(q, d) = Σᵢ maxⱼ qᵢ·dⱼ.
//!
//! * [`TokenReader::maxsim`]: exact MaxSim of given documents over their stored vectors.
//! * [`TokenReader::exhaustive`]: exact MaxSim of every live document.
//! * [`TokenReader::plaid`]: PLAID's candidate generation (Santhanam et al., 2022): each query
//!   token probes its `ncells` nearest centroids and the documents in those lists become
//!   candidates; candidates are ranked by centroid interaction (each document token replaced
//!   by its centroid's score), first with centroids scoring below `threshold` for every query
//!   token pruned, keeping `ndocs`, then unpruned, keeping `ndocs / 4`; those get exact MaxSim.
//! * [`TokenReader::xtr`]: XTR's token retrieval (Lee et al., 2023): each query token
//!   retrieves its `k′` best document tokens (scored exactly, from the tokens of its `ncells`
//!   nearest centroids); a document's score sums, per query token, its best retrieved token
//!   or — when none was retrieved — the k′-th score (the imputed missing similarity), divided
//!   by the number of query tokens. Optionally followed by exact MaxSim of the best `ndocs`.

use super::kmeans::inner_products;
use super::TokenReader;
use crate::DocNo;

/// PLAID's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plaid {
    pub ncells: usize,
    pub threshold: f32,
    pub ndocs: usize,
}

impl Plaid {
    /// ferret's defaults for a search of depth `k`: colbert-ai's thresholds and `ndocs`, with
    /// twice its `ncells` (colbert-ai's 1/2/4 cells per query token lost 2–5 % of exhaustive
    /// MaxSim's top 100 on SciFact with MiniLM token vectors; see docs/LATE_INTERACTION.md).
    pub fn for_k(k: usize) -> Plaid {
        if k <= 10 {
            Plaid {
                ncells: 2,
                threshold: 0.5,
                ndocs: 256,
            }
        } else if k <= 100 {
            Plaid {
                ncells: 4,
                threshold: 0.45,
                ndocs: 1024,
            }
        } else {
            Plaid {
                ncells: 8,
                threshold: 0.4,
                ndocs: (4 * k).max(4096),
            }
        }
    }
}

/// XTR's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Xtr {
    /// Document tokens retrieved per query token.
    pub kprime: usize,
    /// Centroid lists whose tokens are scored per query token.
    pub ncells: usize,
    /// Re-score the best `ndocs` by exact MaxSim (`None`: XTR's scores are the result).
    pub maxsim: Option<usize>,
}

impl Xtr {
    /// ferret's defaults for a search of depth `k`: 1000 tokens per query token from 16
    /// centroid lists, then exact MaxSim of the best max(5k, 100) documents.
    pub fn for_k(k: usize) -> Xtr {
        Xtr {
            kprime: 1000,
            ncells: 16,
            maxsim: Some((5 * k).max(100)),
        }
    }
}

type Hits = Vec<(DocNo, f32)>;

/// Best `k` by score (ties to the lower number), sorted.
fn top(mut hits: Hits, k: usize) -> Hits {
    let order = |a: &(DocNo, f32), b: &(DocNo, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, order);
    }
    hits.truncate(k);
    hits.sort_unstable_by(order);
    hits
}

impl TokenReader {
    /// Exact MaxSim of `query` [tokens, dim] with each of `docs`.
    pub fn maxsim(&self, query: &[f32], docs: &[DocNo]) -> Hits {
        let dim = self.dim();
        let qn = query.len() / dim;
        let mut vectors = Vec::new();
        let mut scores = Vec::new();
        let mut best = vec![0f32; qn];
        docs.iter()
            .map(|&d| {
                self.document_vectors(d, &mut vectors);
                if vectors.is_empty() {
                    return (d, 0.0);
                }
                // [document tokens, query tokens]: the long side first suits the GEMM, and
                // each query token's maximum is then a running max over rows.
                inner_products(&vectors, query, dim, &mut scores);
                best.fill(f32::NEG_INFINITY);
                for row in scores.chunks_exact(qn) {
                    for (b, s) in best.iter_mut().zip(row) {
                        *b = b.max(*s);
                    }
                }
                (d, best.iter().sum())
            })
            .collect()
    }

    /// Exact MaxSim of every live document; the best `k`.
    pub fn exhaustive(&self, query: &[f32], k: usize, is_deleted: impl Fn(DocNo) -> bool) -> Hits {
        let live: Vec<DocNo> = (0..self.doc_start.len() as DocNo - 1)
            .filter(|&d| !is_deleted(d))
            .collect();
        top(self.maxsim(query, &live), k)
    }

    /// Query tokens × centroids scores [tokens, centroids].
    fn centroid_scores(&self, query: &[f32]) -> Vec<f32> {
        let mut s = Vec::new();
        inner_products(query, &self.centroids, self.dim(), &mut s);
        s
    }

    /// The `n` best centroids of one query token's scores.
    fn best_cells(row: &[f32], n: usize) -> Vec<usize> {
        let mut cells: Vec<usize> = (0..row.len()).collect();
        let n = n.min(cells.len());
        if n == 0 {
            return Vec::new();
        }
        cells.select_nth_unstable_by(n - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        cells.truncate(n);
        cells
    }

    /// PLAID candidate generation and centroid interaction, then exact MaxSim; the best `k`.
    pub fn plaid(
        &self,
        query: &[f32],
        k: usize,
        p: &Plaid,
        is_deleted: impl Fn(DocNo) -> bool,
    ) -> Hits {
        let dim = self.dim();
        let qn = query.len() / dim;
        let nc = self.params.centroids;
        let scores = self.centroid_scores(query);
        // Transposed [centroids, tokens], so a document token's scores are contiguous.
        let mut by_centroid = vec![0f32; nc * qn];
        for i in 0..qn {
            for c in 0..nc {
                by_centroid[c * qn + i] = scores[i * nc + c];
            }
        }
        let slots = self.doc_start.len() - 1;
        let mut seen = vec![false; slots];
        let mut candidates = Vec::new();
        for i in 0..qn {
            for c in Self::best_cells(&scores[i * nc..(i + 1) * nc], p.ncells) {
                for &d in self.ivf.documents(c) {
                    if !seen[d as usize] && !is_deleted(d) {
                        seen[d as usize] = true;
                        candidates.push(d);
                    }
                }
            }
        }
        let keep: Vec<bool> = by_centroid
            .chunks_exact(qn.max(1))
            .map(|row| row.iter().any(|&s| s >= p.threshold))
            .collect();
        let interact = |d: DocNo, pruned: bool| -> f32 {
            let mut best = vec![f32::NEG_INFINITY; qn];
            for &c in self.document_codes(d) {
                if pruned && !keep[c as usize] {
                    continue;
                }
                for (b, s) in best.iter_mut().zip(&by_centroid[c as usize * qn..][..qn]) {
                    *b = b.max(*s);
                }
            }
            best.iter().filter(|b| b.is_finite()).sum()
        };
        let first = top(
            candidates.iter().map(|&d| (d, interact(d, true))).collect(),
            p.ndocs,
        );
        let second = top(
            first
                .iter()
                .map(|&(d, _)| (d, interact(d, false)))
                .collect(),
            (p.ndocs / 4).max(k),
        );
        let docs: Vec<DocNo> = second.iter().map(|h| h.0).collect();
        top(self.maxsim(query, &docs), k)
    }

    /// XTR token retrieval with imputed missing similarities (then, if asked, exact MaxSim);
    /// the best `k`.
    pub fn xtr(
        &self,
        query: &[f32],
        k: usize,
        x: &Xtr,
        is_deleted: impl Fn(DocNo) -> bool,
    ) -> Hits {
        let dim = self.dim();
        let qn = query.len() / dim;
        if qn == 0 {
            return Vec::new();
        }
        let nc = self.params.centroids;
        let scores = self.centroid_scores(query);
        // Which query tokens probe each centroid.
        let mut probes: Vec<Vec<usize>> = vec![Vec::new(); nc];
        for i in 0..qn {
            for c in Self::best_cells(&scores[i * nc..(i + 1) * nc], x.ncells) {
                probes[c].push(i);
            }
        }
        // Per query token: (score, token) of every scored token; each list decoded once.
        let mut retrieved: Vec<Vec<(f32, u32)>> = vec![Vec::new(); qn];
        let mut vectors = Vec::new();
        let mut block = Vec::new();
        let mut sims = Vec::new();
        for (c, who) in probes.iter().enumerate().filter(|(_, w)| !w.is_empty()) {
            let tokens = self.ivf.tokens(c);
            if tokens.is_empty() {
                continue;
            }
            block.clear();
            for &t in tokens {
                let t = t as usize;
                self.token_vectors(t..t + 1, &mut vectors);
                block.extend_from_slice(&vectors);
            }
            inner_products(query, &block, dim, &mut sims);
            for &i in who {
                let row = &sims[i * tokens.len()..(i + 1) * tokens.len()];
                retrieved[i].extend(row.iter().zip(tokens).map(|(&s, &t)| (s, t)));
            }
        }
        let mut best: std::collections::HashMap<DocNo, Vec<f32>> = std::collections::HashMap::new();
        let mut imputed = vec![0f32; qn];
        for (i, list) in retrieved.iter_mut().enumerate() {
            let n = x.kprime.min(list.len());
            if n == 0 {
                continue;
            }
            list.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            list.truncate(n);
            imputed[i] = list.iter().map(|s| s.0).fold(f32::INFINITY, f32::min);
            for &(s, t) in list.iter() {
                let d = self.token_document(t as usize);
                if is_deleted(d) {
                    continue;
                }
                let row = best.entry(d).or_insert_with(|| vec![f32::NEG_INFINITY; qn]);
                row[i] = row[i].max(s);
            }
        }
        let hits: Hits = best
            .into_iter()
            .map(|(d, row)| {
                let s: f32 = row
                    .iter()
                    .zip(&imputed)
                    .map(|(&s, &m)| if s.is_finite() { s } else { m })
                    .sum();
                (d, s / qn as f32)
            })
            .collect();
        match x.maxsim {
            None => top(hits, k),
            Some(ndocs) => {
                let docs: Vec<DocNo> = top(hits, ndocs.max(k)).iter().map(|h| h.0).collect();
                top(self.maxsim(query, &docs), k)
            }
        }
    }
}
