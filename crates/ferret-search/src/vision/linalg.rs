//! The little dense linear algebra the CLIP analyses need — a symmetric positive-definite solve
//! and symmetric eigenvalues for matrices of embedding size (≤ ~1k) — in f64. Written here
//! rather than pulling a linear-algebra crate into the search layer for two routines.

/// A square matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub n: usize,
    pub a: Vec<f64>,
}

impl Matrix {
    pub fn zeros(n: usize) -> Self {
        Matrix {
            n,
            a: vec![0.0; n * n],
        }
    }

    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    /// (1/rows) Σ (x − mean)(y − mean)ᵀ over paired rows: the (cross-)covariance.
    pub fn covariance(x: &[Vec<f64>], y: &[Vec<f64>]) -> Matrix {
        let n = x[0].len();
        assert_eq!(n, y[0].len());
        let (mx, my) = (mean(x), mean(y));
        let mut c = Matrix::zeros(n);
        for (xr, yr) in x.iter().zip(y) {
            for i in 0..n {
                let xi = xr[i] - mx[i];
                for j in 0..n {
                    c.a[i * n + j] += xi * (yr[j] - my[j]);
                }
            }
        }
        c.a.iter_mut().for_each(|v| *v /= x.len() as f64);
        c
    }

    pub fn trace(&self) -> f64 {
        (0..self.n).map(|i| self.at(i, i)).sum()
    }

    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.n)
            .map(|i| {
                self.a[i * self.n..(i + 1) * self.n]
                    .iter()
                    .zip(v)
                    .map(|(x, y)| x * y)
                    .sum()
            })
            .collect()
    }

    pub fn mul(&self, b: &Matrix) -> Matrix {
        let n = self.n;
        let mut c = Matrix::zeros(n);
        for i in 0..n {
            for k in 0..n {
                let x = self.at(i, k);
                for j in 0..n {
                    c.a[i * n + j] += x * b.at(k, j);
                }
            }
        }
        c
    }

    pub fn transpose(&self) -> Matrix {
        let n = self.n;
        let mut t = Matrix::zeros(n);
        for i in 0..n {
            for j in 0..n {
                t.a[j * n + i] = self.at(i, j);
            }
        }
        t
    }

    /// The inverse of a symmetric positive-definite matrix (Cholesky).
    pub fn inverse_spd(&self) -> Result<Matrix, String> {
        let n = self.n;
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
                if i == j {
                    let d = self.at(i, i) - s;
                    if d <= 0.0 {
                        return Err("the matrix is not positive definite".into());
                    }
                    l[i * n + i] = d.sqrt();
                } else {
                    l[i * n + j] = (self.at(i, j) - s) / l[j * n + j];
                }
            }
        }
        let mut inv = Matrix::zeros(n);
        for col in 0..n {
            // L y = e_col, then Lᵀ x = y.
            let mut y = vec![0.0; n];
            for i in 0..n {
                let e = if i == col { 1.0 } else { 0.0 };
                y[i] = (e - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
            }
            for i in (0..n).rev() {
                let s: f64 = (i + 1..n).map(|k| l[k * n + i] * inv.a[k * n + col]).sum();
                inv.a[i * n + col] = (y[i] - s) / l[i * n + i];
            }
        }
        Ok(inv)
    }

    /// Eigenvalues of a symmetric matrix (cyclic Jacobi), ascending.
    pub fn symmetric_eigenvalues(&self) -> Vec<f64> {
        let n = self.n;
        let mut a = self.a.clone();
        for _sweep in 0..100 {
            let off: f64 = (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| a[i * n + j] * a[i * n + j])
                .sum();
            let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
            if off <= 1e-22 * scale {
                break;
            }
            for p in 0..n {
                for q in p + 1..n {
                    let apq = a[p * n + q];
                    if apq.abs() < 1e-300 {
                        continue;
                    }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let t = if theta == 0.0 { 1.0 } else { t };
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let (akp, akq) = (a[k * n + p], a[k * n + q]);
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for k in 0..n {
                        let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                }
            }
        }
        let mut e: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
        e.sort_by(f64::total_cmp);
        e
    }
}

/// The column means of rows.
pub fn mean(rows: &[Vec<f64>]) -> Vec<f64> {
    let mut m = vec![0.0; rows[0].len()];
    for r in rows {
        for (a, b) in m.iter_mut().zip(r) {
            *a += b;
        }
    }
    m.iter_mut().for_each(|v| *v /= rows.len() as f64);
    m
}

/// Deterministic standard normals (Box–Muller over a small LCG), for the analyses' tests.
#[cfg(test)]
pub(crate) fn normals(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    move || (-2.0 * next().ln()).sqrt() * (2.0 * std::f64::consts::PI * next()).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_eigenvalues_of_a_known_matrix() {
        // [[4, 1], [1, 3]]: eigenvalues (7 ± √5)/2, inverse [[3, −1], [−1, 4]]/11.
        let m = Matrix {
            n: 2,
            a: vec![4.0, 1.0, 1.0, 3.0],
        };
        let inv = m.inverse_spd().unwrap();
        for (x, y) in inv
            .a
            .iter()
            .zip([3.0 / 11.0, -1.0 / 11.0, -1.0 / 11.0, 4.0 / 11.0])
        {
            assert!((x - y).abs() < 1e-12);
        }
        let e = m.symmetric_eigenvalues();
        assert!(
            (e[0] - (7.0 - 5f64.sqrt()) / 2.0).abs() < 1e-10
                && (e[1] - (7.0 + 5f64.sqrt()) / 2.0).abs() < 1e-10
        );
        assert!(Matrix {
            n: 2,
            a: vec![1.0, 2.0, 2.0, 1.0]
        }
        .inverse_spd()
        .is_err());
    }
}
