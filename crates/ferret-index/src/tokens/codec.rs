//! ColBERTv2's residual compression: a token vector is stored as its nearest centroid and,
//! per dimension, `nbits` bits saying which bucket the residual (vector − centroid) falls in.
//! Bucket boundaries are quantiles of the residuals seen at training (cut-offs at i/2^b),
//! and a bucket decodes to the residual quantile at its middle ((i + ½)/2^b). Decoding adds
//! those to the centroid and normalises.

use serde::{Deserialize, Serialize};

/// What decoding needs besides the centroids (kept in the manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Buckets {
    pub nbits: u32,
    /// 2^nbits − 1 increasing boundaries.
    pub cutoffs: Vec<f32>,
    /// 2^nbits decoded residual values.
    pub weights: Vec<f32>,
}

/// Encodes and decodes token vectors against a set of centroids.
pub struct Codec {
    dim: usize,
    buckets: Buckets,
    /// For every byte value, the residuals of the dimensions it packs (8 / nbits of them).
    lut: Vec<f32>,
}

impl Buckets {
    /// Buckets for `nbits` from a sample of residuals (values of every dimension pooled).
    pub fn train(residuals: &[f32], nbits: u32) -> Buckets {
        let mut sorted: Vec<f32> = residuals.to_vec();
        sorted.sort_unstable_by(f32::total_cmp);
        let levels = 1usize << nbits;
        let quantile = |q: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            sorted[i]
        };
        Buckets {
            nbits,
            cutoffs: (1..levels)
                .map(|i| quantile(i as f64 / levels as f64))
                .collect(),
            weights: (0..levels)
                .map(|i| quantile((i as f64 + 0.5) / levels as f64))
                .collect(),
        }
    }

    /// Bytes one token's residual takes.
    pub fn bytes(&self, dim: usize) -> usize {
        (dim * self.nbits as usize).div_ceil(8)
    }
}

impl Codec {
    /// nbits must be 1, 2, 4 or 8 (a byte holds a whole number of dimensions).
    pub fn new(dim: usize, buckets: Buckets) -> Result<Codec, String> {
        let nbits = buckets.nbits as usize;
        if ![1, 2, 4, 8].contains(&nbits) {
            return Err(format!(
                "residuals of {nbits} bits are not supported (1, 2, 4 or 8)"
            ));
        }
        if buckets.weights.len() != 1 << nbits || buckets.cutoffs.len() + 1 != 1 << nbits {
            return Err(format!(
                "{} cut-offs and {} bucket weights do not make {nbits}-bit buckets",
                buckets.cutoffs.len(),
                buckets.weights.len()
            ));
        }
        if !(dim * nbits).is_multiple_of(8) {
            return Err(format!(
                "{dim} dimensions of {nbits} bits are not a whole number of bytes"
            ));
        }
        let per = 8 / nbits;
        let mask = (1usize << nbits) - 1;
        let lut = (0..256usize)
            .flat_map(|byte| {
                let w = &buckets.weights;
                (0..per).map(move |p| w[(byte >> (8 - nbits * (p + 1))) & mask])
            })
            .collect();
        Ok(Codec { dim, buckets, lut })
    }

    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    /// Bytes one token's residual takes.
    pub fn bytes(&self) -> usize {
        self.buckets.bytes(self.dim)
    }

    /// Appends the packed buckets of `vector − centroid` to `out` (dimension 0 in the high
    /// bits of the first byte).
    pub fn compress(&self, vector: &[f32], centroid: &[f32], out: &mut Vec<u8>) {
        let nbits = self.buckets.nbits as usize;
        let per = 8 / nbits;
        for (v, c) in vector.chunks(per).zip(centroid.chunks(per)) {
            let mut byte = 0u8;
            for (p, (x, y)) in v.iter().zip(c).enumerate() {
                let r = x - y;
                let bucket = self.buckets.cutoffs.partition_point(|&cut| cut < r);
                byte |= (bucket as u8) << (8 - nbits * (p + 1));
            }
            out.push(byte);
        }
    }

    /// The unit vector a token decodes to: centroid + bucket residuals, normalised.
    pub fn decompress(&self, centroid: &[f32], packed: &[u8], out: &mut [f32]) {
        // One monomorphised loop per width, so that each byte's dimensions are a fixed-size
        // array the compiler turns into vector adds (this is the hot loop of MaxSim over
        // compressed vectors).
        match self.buckets.nbits {
            1 => add_residuals::<8>(&self.lut, centroid, packed, out),
            2 => add_residuals::<4>(&self.lut, centroid, packed, out),
            4 => add_residuals::<2>(&self.lut, centroid, packed, out),
            _ => add_residuals::<1>(&self.lut, centroid, packed, out),
        }
        let norm = sum_of_squares(out).sqrt();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            out.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// out = centroid + the residuals the bytes select, `PER` dimensions per byte.
fn add_residuals<const PER: usize>(lut: &[f32], centroid: &[f32], packed: &[u8], out: &mut [f32]) {
    let (out, _) = out.as_chunks_mut::<PER>();
    let (centroid, _) = centroid.as_chunks::<PER>();
    for ((o, c), &byte) in out.iter_mut().zip(centroid).zip(packed) {
        let r: &[f32; PER] = lut[byte as usize * PER..][..PER]
            .try_into()
            .expect("PER floats");
        for i in 0..PER {
            o[i] = c[i] + r[i];
        }
    }
}

/// Σ x², in eight lanes (a reduction the compiler vectorises, unlike a plain f32 sum).
pub(crate) fn sum_of_squares(x: &[f32]) -> f32 {
    let (chunks, rest) = x.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] * c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::kmeans::{normalize, Rng};

    #[test]
    fn more_bits_decode_closer() {
        let dim = 16;
        let mut rng = Rng::new(3);
        let mut rand = || (rng.next() % 10_000) as f32 / 10_000.0 - 0.5;
        let centroid: Vec<f32> = {
            let mut c: Vec<f32> = (0..dim).map(|_| rand()).collect();
            normalize(&mut c);
            c
        };
        let vectors: Vec<Vec<f32>> = (0..200)
            .map(|_| {
                let mut v: Vec<f32> = centroid.iter().map(|c| c + 0.2 * rand()).collect();
                normalize(&mut v);
                v
            })
            .collect();
        let residuals: Vec<f32> = vectors
            .iter()
            .flat_map(|v| {
                v.iter()
                    .zip(&centroid)
                    .map(|(a, b)| a - b)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut errors = Vec::new();
        for nbits in [1, 2, 4] {
            let codec = Codec::new(dim, Buckets::train(&residuals, nbits)).unwrap();
            let mut worst = 0f32;
            for v in &vectors {
                let mut packed = Vec::new();
                codec.compress(v, &centroid, &mut packed);
                assert_eq!(packed.len(), codec.bytes());
                let mut out = vec![0.0; dim];
                codec.decompress(&centroid, &packed, &mut out);
                let cos: f32 = out.iter().zip(v).map(|(a, b)| a * b).sum();
                worst = worst.max(1.0 - cos);
            }
            errors.push(worst);
        }
        assert!(errors[0] > errors[1] && errors[1] > errors[2], "{errors:?}");
        assert!(errors[2] < 1e-3, "{errors:?}");
    }

    #[test]
    fn buckets_are_quantiles() {
        let residuals: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let b = Buckets::train(&residuals, 2);
        assert_eq!(b.cutoffs, vec![250.0, 500.0, 749.0]);
        assert_eq!(b.weights, vec![125.0, 375.0, 624.0, 874.0]);
        assert!(Codec::new(8, b.clone()).is_ok());
        assert!(Codec::new(6, b.clone()).is_err());
        assert!(Codec::new(16, Buckets { nbits: 3, ..b }).is_err());
    }
}
