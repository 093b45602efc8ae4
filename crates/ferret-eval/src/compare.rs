//! Comparing runs with the first one, query by query: the paired tests (Holm-corrected over
//! the runs compared for each measure) and the wins, ties and losses that IR papers chart.

use serde::Serialize;

use crate::significance::{holm_bonferroni, paired_randomization_test, paired_t_test};
use crate::Evaluation;

/// Two per-query values closer than this are a tie.
pub const TIE: f64 = 1e-9;

/// One run against the first, per measure (in the evaluations' measure order).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub t_test_p: Vec<f64>,
    pub t_test_p_holm: Vec<f64>,
    pub randomization_p: Vec<f64>,
    pub randomization_p_holm: Vec<f64>,
    /// Queries where this run scores higher / the same / lower than the first.
    pub wins: Vec<usize>,
    pub ties: Vec<usize>,
    pub losses: Vec<usize>,
}

/// The queries compared: every query either evaluation has, sorted (a query missing from one
/// side scores 0 there, as trec_eval -c would).
pub fn union_of_queries(evals: &[Evaluation]) -> Vec<&str> {
    let mut queries: Vec<&str> = evals
        .iter()
        .flat_map(|e| e.per_query.keys().map(String::as_str))
        .collect();
    queries.sort_unstable();
    queries.dedup();
    queries
}

/// Compares every run after the first with the first, over [`union_of_queries`]; the
/// randomisation test draws `trials` sign flips (seeded: the same inputs give the same p).
pub fn compare_with_first(evals: &[Evaluation], trials: usize) -> Vec<Comparison> {
    let Some(first) = evals.first() else {
        return Vec::new();
    };
    let queries = union_of_queries(evals);
    let mut out: Vec<Comparison> = (1..evals.len())
        .map(|_| Comparison {
            t_test_p: vec![],
            t_test_p_holm: vec![],
            randomization_p: vec![],
            randomization_p_holm: vec![],
            wins: vec![],
            ties: vec![],
            losses: vec![],
        })
        .collect();
    for m in 0..first.measures.len() {
        let base = first.column(m, queries.iter().copied());
        let mut t = Vec::new();
        let mut r = Vec::new();
        for (e, c) in evals[1..].iter().zip(out.iter_mut()) {
            let other = e.column(m, queries.iter().copied());
            t.push(paired_t_test(&other, &base));
            r.push(paired_randomization_test(&other, &base, trials, 42));
            let (w, ti, l) = wins_ties_losses(&other, &base);
            c.wins.push(w);
            c.ties.push(ti);
            c.losses.push(l);
        }
        let (t_adj, r_adj) = (holm_bonferroni(&t), holm_bonferroni(&r));
        for (i, c) in out.iter_mut().enumerate() {
            c.t_test_p.push(t[i]);
            c.t_test_p_holm.push(t_adj[i]);
            c.randomization_p.push(r[i]);
            c.randomization_p_holm.push(r_adj[i]);
        }
    }
    out
}

/// Counts of `a[i]` above, equal to (within [`TIE`]) and below `b[i]`.
pub fn wins_ties_losses(a: &[f64], b: &[f64]) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for (x, y) in a.iter().zip(b) {
        if (x - y).abs() < TIE {
            counts.1 += 1;
        } else if x > y {
            counts.0 += 1;
        } else {
            counts.2 += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{evaluate, EvalOptions, Measure, Qrels, Run};

    fn eval(run: &[(&str, &str)], qrels: &Qrels) -> Evaluation {
        let mut r = Run::new("t");
        for (i, (q, d)) in run.iter().enumerate() {
            r.push(q, d, 10.0 - i as f64);
        }
        evaluate(
            qrels,
            &r,
            &Measure::parse_all(&["P.1"]).unwrap(),
            EvalOptions::default(),
        )
    }

    #[test]
    fn wins_ties_and_losses_count_queries_over_the_union() {
        let mut qrels = Qrels::default();
        for (q, d) in [("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")] {
            qrels.insert(q, d, 1);
        }
        // First run: right on 1 and 2; second: right on 1 and 3, wrong on 2, lacks 4 (0 = tie
        // with the first's wrong answer there).
        let first = eval(&[("1", "a"), ("2", "b"), ("3", "x"), ("4", "x")], &qrels);
        let second = eval(&[("1", "a"), ("2", "x"), ("3", "c")], &qrels);
        let c = compare_with_first(&[first, second], 100);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].wins[0], c[0].ties[0], c[0].losses[0]), (1, 2, 1));
        assert_eq!(c[0].t_test_p.len(), 1);
        assert!((0.0..=1.0).contains(&c[0].randomization_p[0]));
        assert_eq!(
            wins_ties_losses(&[0.5, 0.5], &[0.5 + 1e-12, 0.4]),
            (1, 1, 0)
        );
    }
}
