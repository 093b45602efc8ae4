//! Classifying image embeddings: zero-shot (cosine with class prompts), k-nearest neighbours,
//! and GDA — Gaussian discriminant analysis on few-shot features (class means, one shared
//! covariance with shrinkage, a linear classifier), ensembled with the zero-shot logits as in
//! Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation" (ICLR 2024).
//! Features are expected L2-normalised.

use super::linalg::{mean, Matrix};

/// A linear classifier: logits = W x + b.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
}

impl Linear {
    pub fn logits(&self, x: &[f32]) -> Vec<f64> {
        self.weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, &c)| a * c as f64).sum::<f64>() + b)
            .collect()
    }
}

/// GDA fitted on labelled features: μ_k per class, Σ the pooled within-class covariance, the
/// precision by the paper's empirical-Bayes ridge estimator P = D·((N−1)Σ + tr(Σ)·I)⁻¹, then
/// w_k = P μ_k and b_k = log(1/K) − ½ μ_kᵀ P μ_k (uniform class priors).
pub fn fit_gda(features: &[Vec<f32>], labels: &[usize], classes: usize) -> Result<Linear, String> {
    if features.is_empty() || features.len() != labels.len() {
        return Err("GDA needs labelled features".into());
    }
    let rows: Vec<Vec<f64>> = features
        .iter()
        .map(|f| f.iter().map(|&x| x as f64).collect())
        .collect();
    let d = rows[0].len();
    let mut means = Vec::with_capacity(classes);
    for k in 0..classes {
        let members: Vec<Vec<f64>> = rows
            .iter()
            .zip(labels)
            .filter(|(_, &l)| l == k)
            .map(|(r, _)| r.clone())
            .collect();
        if members.is_empty() {
            return Err(format!("class {k} has no examples"));
        }
        means.push(mean(&members));
    }
    let centred: Vec<Vec<f64>> = rows
        .iter()
        .zip(labels)
        .map(|(r, &l)| r.iter().zip(&means[l]).map(|(a, b)| a - b).collect())
        .collect();
    // Pooled within-class covariance (the centred rows have mean zero).
    let mut sigma = Matrix::covariance(&centred, &centred);
    let n = rows.len() as f64;
    let tr = sigma.trace();
    if tr <= 0.0 {
        return Err("GDA needs at least 2 training images in some class: with one per class the within-class covariance is zero".into());
    }
    for i in 0..d {
        for j in 0..d {
            sigma.a[i * d + j] *= n - 1.0;
        }
        sigma.a[i * d + i] += tr;
    }
    let mut precision = sigma.inverse_spd()?;
    precision.a.iter_mut().for_each(|v| *v *= d as f64);
    let prior = (1.0 / classes as f64).ln();
    let weights: Vec<Vec<f64>> = means.iter().map(|m| precision.mul_vec(m)).collect();
    let bias = means
        .iter()
        .zip(&weights)
        .map(|(m, w)| prior - 0.5 * m.iter().zip(w).map(|(a, b)| a * b).sum::<f64>())
        .collect();
    Ok(Linear { weights, bias })
}

/// Zero-shot logits: CLIP's logit scale (100) times the cosine with each class's text embedding.
pub fn zero_shot_logits(image: &[f32], class_texts: &[Vec<f32>]) -> Vec<f64> {
    class_texts
        .iter()
        .map(|t| {
            100.0
                * t.iter()
                    .zip(image)
                    .map(|(a, b)| (a * b) as f64)
                    .sum::<f64>()
        })
        .collect()
}

/// The class of the largest logit (ties to the lower class).
pub fn argmax(logits: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// Majority class of the `k` most similar (cosine) training features; ties to the class of
/// the nearest among the tied.
pub fn knn(query: &[f32], train: &[Vec<f32>], labels: &[usize], classes: usize, k: usize) -> usize {
    let mut sims: Vec<(f32, usize)> = train
        .iter()
        .zip(labels)
        .map(|(t, &l)| (t.iter().zip(query).map(|(a, b)| a * b).sum(), l))
        .collect();
    sims.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut votes = vec![0usize; classes];
    for &(_, l) in sims.iter().take(k) {
        votes[l] += 1;
    }
    let top = *votes.iter().max().unwrap_or(&0);
    sims.iter()
        .take(k)
        .find(|(_, l)| votes[*l] == top)
        .map_or(0, |(_, l)| *l)
}

#[cfg(test)]
mod tests {
    use super::super::linalg::normals;
    use super::*;

    /// Two Gaussian classes with a shared covariance: the Bayes classifier is linear with
    /// direction Σ⁻¹(μ₁ − μ₀) and accuracy Φ(Δ/2), Δ the Mahalanobis distance of the means.
    /// GDA's boundary must point the same way and reach that accuracy on fresh samples.
    #[test]
    fn gda_recovers_the_bayes_classifier_of_two_gaussians() {
        let mut z = normals(7);
        // Σ = L Lᵀ with L = [[1, 0], [0.8, 0.6]] (unit variances, correlation 0.8).
        let sample = |z: &mut dyn FnMut() -> f64, mu: [f64; 2]| {
            let (a, b) = (z(), z());
            vec![(mu[0] + a) as f32, (mu[1] + 0.8 * a + 0.6 * b) as f32]
        };
        let (mu0, mu1) = ([0.0, 0.0], [1.0, 0.0]);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..20_000 {
            let k = i % 2;
            x.push(sample(&mut z, if k == 0 { mu0 } else { mu1 }));
            y.push(k);
        }
        let gda = fit_gda(&x, &y, 2).unwrap();
        // Σ⁻¹(μ₁ − μ₀) = [1/0.36, −0.8/0.36]: direction (1, −0.8).
        let w: Vec<f64> = (0..2)
            .map(|i| gda.weights[1][i] - gda.weights[0][i])
            .collect();
        let cos = (w[0] * 1.0 - w[1] * 0.8)
            / ((w[0] * w[0] + w[1] * w[1]).sqrt() * (1.0f64 + 0.64).sqrt());
        assert!(cos > 0.999, "direction off: cos {cos}");
        // Δ² = (μ₁−μ₀)ᵀ Σ⁻¹ (μ₁−μ₀) = 1/0.36; Bayes accuracy Φ(Δ/2) = Φ(0.8333) ≈ 0.7977.
        let mut correct = 0;
        let trials = 20_000;
        for i in 0..trials {
            let k = i % 2;
            let p = sample(&mut z, if k == 0 { mu0 } else { mu1 });
            correct += (argmax(&gda.logits(&p)) == k) as usize;
        }
        let acc = correct as f64 / trials as f64;
        assert!((acc - 0.7977).abs() < 0.012, "accuracy {acc}, Bayes 0.7977");
    }

    #[test]
    fn knn_votes_and_zero_shot_scales_cosines() {
        let train = vec![vec![1.0, 0.0], vec![0.9, 0.1], vec![0.0, 1.0]];
        assert_eq!(knn(&[0.95, 0.05], &train, &[0, 0, 1], 2, 3), 0);
        assert_eq!(knn(&[0.1, 0.9], &train, &[0, 0, 1], 2, 1), 1);
        let logits = zero_shot_logits(&[1.0, 0.0], &[vec![0.0, 1.0], vec![0.6, 0.8]]);
        assert_eq!(argmax(&logits), 1);
        assert!((logits[1] - 60.0).abs() < 1e-4);
    }
}
