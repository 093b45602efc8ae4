//! Paired significance tests between runs over the same queries, and Holm–Bonferroni correction.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided paired t-test p-value for `a` vs `b` (same queries, same order).
/// Returns 1.0 when the differences have no variance and mean zero, 0.0 when they have no
/// variance and a non-zero mean.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    let n = a.len();
    if n < 2 {
        return 1.0;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    if var == 0.0 {
        return if mean == 0.0 { 1.0 } else { 0.0 };
    }
    let t = mean / (var / n as f64).sqrt();
    let dist =
        StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n >= 2 gives a valid t distribution");
    2.0 * (1.0 - dist.cdf(t.abs()))
}

/// Two-sided paired randomisation (permutation) test: the share of `trials` random sign flips
/// of the per-query differences whose mean is at least as extreme as the observed one.
/// Seeded, so the same inputs give the same p-value.
pub fn paired_randomization_test(a: &[f64], b: &[f64], trials: usize, seed: u64) -> f64 {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    if d.is_empty() {
        return 1.0;
    }
    let observed = d.iter().sum::<f64>().abs();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut extreme = 0usize;
    for _ in 0..trials {
        let s: f64 = d
            .iter()
            .map(|x| if rng.random::<bool>() { *x } else { -*x })
            .sum();
        // A small tolerance so that floating-point noise does not decide ties.
        if s.abs() >= observed - 1e-12 {
            extreme += 1;
        }
    }
    (extreme + 1) as f64 / (trials + 1) as f64
}

/// Holm–Bonferroni step-down adjusted p-values, in the input order.
pub fn holm_bonferroni(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let value = ((m - rank) as f64 * p[i]).min(1.0);
        running_max = running_max.max(value);
        adjusted[i] = running_max;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_test_matches_scipy() {
        // scipy.stats.ttest_rel([0.1,0.4,0.5,0.9,0.3],[0.2,0.2,0.1,0.5,0.1]).pvalue = 0.074324334826368 (scipy 1.17)
        let a = [0.1, 0.4, 0.5, 0.9, 0.3];
        let b = [0.2, 0.2, 0.1, 0.5, 0.1];
        let p = paired_t_test(&a, &b);
        assert!((p - 0.074_324_334_826_368).abs() < 1e-9, "{p}");
        assert_eq!(paired_t_test(&a, &a), 1.0);
    }

    #[test]
    fn randomization_is_seeded_and_sensible() {
        let a: Vec<f64> = (0..50).map(|i| (i % 7) as f64 / 7.0 + 0.2).collect();
        let b: Vec<f64> = (0..50).map(|i| (i % 7) as f64 / 7.0).collect();
        let p1 = paired_randomization_test(&a, &b, 2000, 7);
        assert_eq!(p1, paired_randomization_test(&a, &b, 2000, 7));
        assert!(p1 < 0.01, "{p1}");
        assert_eq!(paired_randomization_test(&a, &a, 2000, 7), 1.0);
    }

    #[test]
    fn holm_adjusts_step_down() {
        let adj = holm_bonferroni(&[0.01, 0.04, 0.03]);
        assert!((adj[0] - 0.03).abs() < 1e-12);
        assert!((adj[2] - 0.06).abs() < 1e-12);
        assert!((adj[1] - 0.06).abs() < 1e-12);
    }
}
