//! The Schur-complement decomposition of CLIP's joint image–text covariance ("Dissecting
//! CLIP"): with C_II, C_IT, C_TT the (linear-kernel) covariances of paired image and prompt
//! embeddings, Λ = C_II − C_IT C_TT⁻¹ C_TI is the part of the images' variation that their
//! prompts do not explain.
//!
//! * **SCE** (Schur complement entropy): the von Neumann entropy −Σ λ̂ log λ̂ of Λ's eigenvalues
//!   normalised to sum 1 — the diversity of an image set beyond what its prompts asked for
//!   (reported with exp(SCE), the effective number of directions).
//! * **Prompt nullification**: an image embedding minus its regression on the prompt
//!   embedding, x − C_IT C_TT⁻¹ (t − t̄) (and the mean), which keeps only what the prompt does
//!   not explain.

use super::linalg::{mean, Matrix};

/// Paired image and text embeddings as f64 rows.
fn rows(v: &[Vec<f32>]) -> Vec<Vec<f64>> {
    v.iter()
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}

/// C_TT with a small ridge (ε·tr/D) so that prompt sets spanning fewer directions than the
/// dimension still invert.
fn text_precision(t: &[Vec<f64>]) -> Result<Matrix, String> {
    let mut ctt = Matrix::covariance(t, t);
    let d = ctt.n;
    let ridge = 1e-6 * ctt.trace().max(f64::MIN_POSITIVE) / d as f64;
    for i in 0..d {
        ctt.a[i * d + i] += ridge;
    }
    ctt.inverse_spd()
}

/// Λ = C_II − C_IT C_TT⁻¹ C_TI.
pub fn schur_complement(images: &[Vec<f32>], texts: &[Vec<f32>]) -> Result<Matrix, String> {
    if images.len() != texts.len() || images.len() < 2 {
        return Err(
            "the Schur complement needs at least 2 paired image and text embeddings".into(),
        );
    }
    let (x, t) = (rows(images), rows(texts));
    let cii = Matrix::covariance(&x, &x);
    let cit = Matrix::covariance(&x, &t);
    let explained = cit.mul(&text_precision(&t)?).mul(&cit.transpose());
    let mut s = cii;
    for (a, b) in s.a.iter_mut().zip(&explained.a) {
        *a -= b;
    }
    Ok(s)
}

/// SCE: the entropy (nats) of Λ's normalised eigenvalues (negative rounding noise clipped).
pub fn sce(images: &[Vec<f32>], texts: &[Vec<f32>]) -> Result<f64, String> {
    let eig = schur_complement(images, texts)?.symmetric_eigenvalues();
    let total: f64 = eig.iter().map(|&e| e.max(0.0)).sum();
    if total <= 0.0 {
        return Ok(0.0);
    }
    Ok(-eig
        .iter()
        .map(|&e| e.max(0.0) / total)
        .filter(|&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>())
}

/// Image embeddings with what their prompts explain removed: x − C_IT C_TT⁻¹ (t − t̄).
pub fn nullify(images: &[Vec<f32>], texts: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, String> {
    let (x, t) = (rows(images), rows(texts));
    let cit = Matrix::covariance(&x, &t);
    let map = cit.mul(&text_precision(&t)?);
    let tm = mean(&t);
    Ok(x.iter()
        .zip(&t)
        .map(|(xi, ti)| {
            let centred: Vec<f64> = ti.iter().zip(&tm).map(|(a, b)| a - b).collect();
            let explained = map.mul_vec(&centred);
            xi.iter()
                .zip(&explained)
                .map(|(a, b)| (a - b) as f32)
                .collect()
        })
        .collect())
}

/// `v` without its component along `direction` (the rank-one nullification of one prompt).
pub fn remove_direction(v: &[f32], direction: &[f32]) -> Vec<f32> {
    let norm2: f32 = direction.iter().map(|x| x * x).sum();
    if norm2 == 0.0 {
        return v.to_vec();
    }
    let c = v.iter().zip(direction).map(|(a, b)| a * b).sum::<f32>() / norm2;
    v.iter().zip(direction).map(|(a, b)| a - c * b).collect()
}

#[cfg(test)]
mod tests {
    use super::super::linalg::normals;
    use super::*;

    /// Images x = A t + σ ε with t, ε independent standard normals: the prompts explain A t,
    /// so Λ → σ² I (all eigenvalues equal: SCE → log D) and the nullified embeddings are σ ε.
    #[test]
    fn schur_complement_of_a_known_linear_gaussian_model() {
        let d = 4;
        let mut z = normals(11);
        let a = [
            [2.0, 0.5, 0.0, 0.0],
            [0.0, 1.0, -1.0, 0.0],
            [0.3, 0.0, 0.0, 1.5],
            [0.0, 0.0, 0.7, 0.2],
        ];
        let sigma = 0.3;
        let n = 40_000;
        let (mut images, mut texts, mut noise) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let t: Vec<f64> = (0..d).map(|_| z()).collect();
            let e: Vec<f64> = (0..d).map(|_| sigma * z()).collect();
            let x: Vec<f32> = (0..d)
                .map(|i| ((0..d).map(|j| a[i][j] * t[j]).sum::<f64>() + e[i]) as f32)
                .collect();
            images.push(x);
            texts.push(t.iter().map(|&v| v as f32).collect::<Vec<f32>>());
            noise.push(e);
        }
        let lambda = schur_complement(&images, &texts).unwrap();
        for i in 0..d {
            for j in 0..d {
                let want = if i == j { sigma * sigma } else { 0.0 };
                assert!(
                    (lambda.at(i, j) - want).abs() < 0.004,
                    "Λ[{i}][{j}] = {}",
                    lambda.at(i, j)
                );
            }
        }
        let h = sce(&images, &texts).unwrap();
        assert!(
            (h - (d as f64).ln()).abs() < 0.01,
            "SCE {h}, log D {}",
            (d as f64).ln()
        );
        // Without prompts explaining anything (texts independent of images) SCE is the
        // entropy of C_II's spectrum, lower here since A stretches some directions.
        let unrelated: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..d).map(|_| z() as f32).collect())
            .collect();
        assert!(sce(&images, &unrelated).unwrap() < h - 0.1);
        let nulled = nullify(&images, &texts).unwrap();
        let worst = nulled
            .iter()
            .zip(&noise)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()))
            .fold(0.0, f64::max);
        assert!(
            worst < 0.05,
            "nullified embeddings differ from the noise by {worst}"
        );
        let v = remove_direction(&[3.0, 4.0], &[0.0, 2.0]);
        assert_eq!(v, vec![3.0, 0.0]);
    }
}
