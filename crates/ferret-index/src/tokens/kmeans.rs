//! Spherical k-means over unit vectors (ColBERTv2 normalises its k-means centroids and
//! assigns by inner product, and so does this): Lloyd's iterations with the assignment step
//! as blocked GEMMs, seeded for reproducible indexes.

use rayon::prelude::*;

/// `out[i * b_rows + j] = a_i · b_j` for row-major `a` [a_rows, dim] and `b` [b_rows, dim].
pub fn inner_products(a: &[f32], b: &[f32], dim: usize, out: &mut Vec<f32>) {
    let (m, n) = (a.len() / dim, b.len() / dim);
    out.clear();
    out.resize(m * n, 0.0);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: a holds m×dim floats, b n×dim and out m×n (resized above); the strides read
    // a row-major, b as its transpose and write out row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            dim,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The centroid with the largest inner product for every row of `points` (ties to the lower
/// index), spread over the current rayon pool.
pub fn nearest(points: &[f32], dim: usize, centroids: &[f32]) -> Vec<u32> {
    const BLOCK: usize = 128;
    points
        .par_chunks(BLOCK * dim)
        .flat_map_iter(|block| {
            let mut scores = Vec::new();
            inner_products(block, centroids, dim, &mut scores);
            let k = centroids.len() / dim;
            scores
                .chunks_exact(k)
                .map(|row| {
                    let mut best = 0;
                    for (c, s) in row.iter().enumerate() {
                        if *s > row[best] {
                            best = c;
                        }
                    }
                    best as u32
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// splitmix64: a small seeded generator, so that the same corpus gives the same index.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `k` unit-length centroids [k, dim] of the rows of `points` after `iterations` rounds of
/// Lloyd's algorithm by inner product, started from `k` distinct rows. An emptied cluster is
/// restarted at a random row. Fails when there are fewer rows than centroids.
pub fn kmeans(
    points: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<Vec<f32>, String> {
    let n = points.len() / dim;
    if k == 0 {
        return Err("k-means needs at least one centroid".into());
    }
    if n < k {
        return Err(format!(
            "k-means needs at least as many vectors as centroids: {n} vectors for {k} centroids"
        ));
    }
    let mut rng = Rng::new(seed);
    // k distinct rows: a partial Fisher–Yates shuffle of the row numbers.
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        order.swap(i, j);
    }
    let mut centroids: Vec<f32> = order[..k]
        .iter()
        .flat_map(|&r| points[r * dim..(r + 1) * dim].iter().copied())
        .collect();
    for _ in 0..iterations {
        let assigned = nearest(points, dim, &centroids);
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (row, &c) in points.chunks_exact(dim).zip(&assigned) {
            counts[c as usize] += 1;
            for (s, x) in sums[c as usize * dim..][..dim].iter_mut().zip(row) {
                *s += *x as f64;
            }
        }
        for c in 0..k {
            let target = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                let r = rng.below(n);
                target.copy_from_slice(&points[r * dim..(r + 1) * dim]);
            } else {
                for (t, s) in target.iter_mut().zip(&sums[c * dim..]) {
                    *t = *s as f32;
                }
            }
            normalize(target);
        }
    }
    Ok(centroids)
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors near `m` well-separated directions.
    fn clusters(m: usize, per: usize, dim: usize) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(7);
        let mut points = Vec::new();
        let mut truth = Vec::new();
        for i in 0..m * per {
            let c = i % m;
            let mut v: Vec<f32> = (0..dim)
                .map(|j| {
                    let noise = (rng.next() % 1000) as f32 / 1000.0 - 0.5;
                    (if j == c { 5.0 } else { 0.0 }) + 0.3 * noise
                })
                .collect();
            normalize(&mut v);
            points.extend(v);
            truth.push(c);
        }
        (points, truth)
    }

    #[test]
    fn finds_separated_clusters() {
        let (points, truth) = clusters(4, 50, 8);
        let centroids = kmeans(&points, 8, 4, 10, 1).unwrap();
        let assigned = nearest(&points, 8, &centroids);
        // Same partition as the truth, whatever the centroids' order.
        for (i, a) in assigned.iter().enumerate() {
            for (j, b) in assigned.iter().enumerate() {
                assert_eq!(a == b, truth[i] == truth[j]);
            }
        }
        for c in centroids.chunks_exact(8) {
            let norm: f32 = c.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn fewer_vectors_than_centroids_is_an_error() {
        let (points, _) = clusters(2, 3, 8);
        let e = kmeans(&points, 8, 10, 4, 1).unwrap_err();
        assert!(e.contains("6 vectors for 10 centroids"), "{e}");
    }

    #[test]
    fn inner_products_match_a_loop() {
        let a: Vec<f32> = (0..15).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..10).map(|i| 1.0 - i as f32 * 0.2).collect();
        let mut out = Vec::new();
        inner_products(&a, &b, 5, &mut out);
        for i in 0..3 {
            for j in 0..2 {
                let want: f32 = (0..5).map(|t| a[i * 5 + t] * b[j * 5 + t]).sum();
                assert!((out[i * 2 + j] - want).abs() < 1e-5);
            }
        }
    }
}
