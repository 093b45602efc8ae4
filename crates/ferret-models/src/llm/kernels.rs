//! The kernels of a generated token's step: matrix–vector products on GGML-quantised weights
//! and one query's attention over the KV cache.
//!
//! A decode step reads every weight once for a handful of multiply–adds, so its speed is the
//! speed of reading the weights: they stay in the file's 4- or 8-bit blocks, and the activation
//! vector is quantised to 8 bits per block of 32 (llama.cpp's Q8_1: values, scale, scaled sum)
//! so that each block's dot product is integer arithmetic. candle has these kernels too, but
//! only as scalar code for Q4_1 and behind a tensor allocation per operation, which made its
//! decoding several times slower than llama.cpp's (docs/RERANKING.md); no maintained crate
//! offers them on their own, so they are written here: an AVX2 path (`maddubs` on the unpacked
//! nibbles) chosen at run time, and a scalar path for other CPUs. Tests check both against
//! float64 arithmetic on the dequantised weights.
//!
//! Attention of one query reads the cached keys and values of its head (position × head_dim,
//! contiguous): dot products, softmax, weighted sum. At a 600-token context it costs as much
//! as the weights do, so it has an AVX2/FMA path too.

use half::f16;
use rayon::prelude::*;

/// Weights per block, in every format here and in the quantised activations.
pub(crate) const BLOCK: usize = 32;

/// How a matrix's rows are stored: GGML's block layouts, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Per block: f16 scale d, f16 minimum m, 16 bytes of nibbles; weight = d·q + m, with
    /// byte j holding weight j (low nibble) and weight j + 16 (high nibble).
    Q4_1,
    /// Per block: f16 scale d, 32 signed bytes; weight = d·q.
    Q8_0,
}

impl Format {
    const fn block_bytes(self) -> usize {
        match self {
            Format::Q4_1 => 20,
            Format::Q8_0 => 34,
        }
    }
}

/// Which code computes the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernels {
    /// The fastest this CPU runs, within `FERRET_SIMD` ([`crate::fastmath::cap`]).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if crate::fastmath::cap() >= crate::fastmath::Cap::Avx2
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            return Kernels::Avx2;
        }
        Kernels::Scalar
    }
}

/// A `rows × cols` matrix in one [`Format`], rows stored one after the other.
pub(crate) struct QMatrix {
    format: Format,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
}

impl QMatrix {
    /// A matrix from GGML block bytes (`cols` a multiple of [`BLOCK`]).
    pub(crate) fn from_blocks(
        format: Format,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, String> {
        if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * cols / BLOCK * format.block_bytes()
        {
            return Err(format!(
                "{format:?} matrix of {rows}×{cols} cannot be {} bytes",
                bytes.len()
            ));
        }
        Ok(QMatrix {
            format,
            rows,
            cols,
            bytes,
        })
    }

    /// Quantises f32 rows to Q8_0 as GGML does (scale = largest magnitude / 127, round to
    /// nearest): for weight formats without a kernel here.
    pub(crate) fn quantize_q8_0(rows: usize, cols: usize, w: &[f32]) -> Result<Self, String> {
        if !cols.is_multiple_of(BLOCK) || w.len() != rows * cols {
            return Err(format!(
                "cannot quantise {} floats as {rows}×{cols}",
                w.len()
            ));
        }
        let mut bytes = Vec::with_capacity(rows * cols / BLOCK * Format::Q8_0.block_bytes());
        for block in w.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            bytes.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            bytes.extend(block.iter().map(|x| (x * inv).round() as i8 as u8));
        }
        Self::from_blocks(Format::Q8_0, rows, cols, bytes)
    }

    /// The matrices' rows one after the other (same format and width).
    pub(crate) fn stack(parts: Vec<QMatrix>) -> Result<Self, String> {
        let first = parts.first().ok_or("nothing to stack")?;
        let (format, cols) = (first.format, first.cols);
        if parts.iter().any(|p| p.format != format || p.cols != cols) {
            return Err("stacked matrices differ in format or width".into());
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        let bytes = parts.into_iter().flat_map(|p| p.bytes).collect();
        Self::from_blocks(format, rows, cols, bytes)
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.bytes[r * n..(r + 1) * n]
    }

    /// Row `r` as f32 (exactly the file's weights).
    #[cfg(test)]
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let bb = self.format.block_bytes();
        for (block, y) in self
            .row(r)
            .chunks_exact(bb)
            .zip(out.chunks_exact_mut(BLOCK))
        {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            match self.format {
                Format::Q4_1 => {
                    let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
                    for (j, &q) in block[4..].iter().enumerate() {
                        y[j] = (q & 15) as f32 * d + m;
                        y[j + 16] = (q >> 4) as f32 * d + m;
                    }
                }
                Format::Q8_0 => {
                    for (y, &q) in y.iter_mut().zip(&block[2..]) {
                        *y = q as i8 as f32 * d;
                    }
                }
            }
        }
    }

    /// The whole matrix as f32, row-major.
    #[cfg(test)]
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(r, row);
        }
        out
    }

    /// y = W x, rows spread over the rayon pool.
    pub(crate) fn matvec(&self, x: &Q8Vector, y: &mut [f32], kernels: Kernels) {
        assert_eq!(x.q.len(), self.cols, "matrix–vector product: widths differ");
        assert_eq!(y.len(), self.rows, "matrix–vector product: heights differ");
        // Enough pieces to balance the threads, each large enough to outweigh handing it out.
        let rows_per_task = (self.rows / (8 * rayon::current_num_threads())).max(16);
        y.par_chunks_mut(rows_per_task)
            .enumerate()
            .for_each(|(c, out)| {
                let first = c * rows_per_task;
                let done = first + out.len() / 4 * 4;
                let mut quads = out.chunks_exact_mut(4);
                for (i, y) in (&mut quads).enumerate() {
                    y.copy_from_slice(&self.dot4(first + 4 * i, x, kernels));
                }
                for (i, y) in quads.into_remainder().iter_mut().enumerate() {
                    *y = self.dot(done + i, x, kernels);
                }
            });
    }

    /// Rows `r` … `r + 3` · x. Four rows at a time share each block of activations and give
    /// the CPU four independent streams of weights and sums to overlap.
    fn dot4(&self, r: usize, x: &Q8Vector, kernels: Kernels) -> [f32; 4] {
        match kernels {
            // SAFETY: as in `dot`; rows r..r+4 exist (the caller takes whole quads).
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe {
                let rows = &self.bytes[r * self.row_bytes()..(r + 4) * self.row_bytes()];
                match self.format {
                    Format::Q4_1 => avx2::dot4_q4_1(rows, x),
                    Format::Q8_0 => avx2::dot4_q8_0(rows, x),
                }
            },
            _ => std::array::from_fn(|i| self.dot(r + i, x, kernels)),
        }
    }

    fn row_bytes(&self) -> usize {
        self.cols / BLOCK * self.format.block_bytes()
    }

    /// Row `r` · x.
    pub(crate) fn dot(&self, r: usize, x: &Q8Vector, kernels: Kernels) -> f32 {
        let row = self.row(r);
        match kernels {
            Kernels::Scalar => match self.format {
                Format::Q4_1 => dot_q4_1_scalar(row, x),
                Format::Q8_0 => dot_q8_0_scalar(row, x),
            },
            // SAFETY: `Kernels::Avx2` is only chosen where the CPU has AVX2, FMA and F16C; the
            // row holds cols / 32 blocks and x as many blocks of activations (asserted by
            // the caller's widths).
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe {
                match self.format {
                    Format::Q4_1 => avx2::dot_q4_1(row, x),
                    Format::Q8_0 => avx2::dot_q8_0(row, x),
                }
            },
        }
    }
}

/// out = softmax(scale · keys q) · values for one query `q` over cached f16 rows of its
/// length. `scores` is scratch space.
pub(crate) fn attend(
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
    kernels: Kernels,
) {
    let hd = q.len();
    assert!(keys.len() == values.len() && keys.len().is_multiple_of(hd) && out.len() == hd);
    match kernels {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX2 and FMA; rows are whole multiples of 8
        // floats (checked here) and the lengths asserted above.
        Kernels::Avx2 if hd.is_multiple_of(8) => unsafe {
            avx2::attend(q, keys, values, scale, scores, out)
        },
        _ => {
            scores.clear();
            scores.extend(
                keys.chunks_exact(hd)
                    .map(|k| q.iter().zip(k).map(|(a, b)| a * b.to_f32()).sum::<f32>() * scale),
            );
            crate::fastmath::softmax(scores);
            out.fill(0.0);
            for (p, v) in scores.iter().zip(values.chunks_exact(hd)) {
                for (o, v) in out.iter_mut().zip(v) {
                    *o += p * v.to_f32();
                }
            }
        }
    }
}

/// A vector quantised for [`QMatrix::matvec`]: per block of 32, signed bytes `q`, scale `d`
/// (largest magnitude / 127) and `s` = d · Σq (what Q4_1's minimum multiplies).
#[derive(Default)]
pub(crate) struct Q8Vector {
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl Q8Vector {
    /// Requantises in place (buffers reused) from `x` (length a multiple of 32).
    pub(crate) fn quantize(&mut self, x: &[f32]) {
        assert!(
            x.len().is_multiple_of(BLOCK),
            "vector length not a multiple of 32"
        );
        self.q.clear();
        self.d.clear();
        self.s.clear();
        for block in x.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for v in block {
                let q = (v * inv).round() as i8;
                sum += q as i32;
                self.q.push(q);
            }
            self.d.push(d);
            self.s.push(d * sum as f32);
        }
    }
}

fn dot_q4_1_scalar(row: &[u8], x: &Q8Vector) -> f32 {
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(Format::Q4_1.block_bytes()).enumerate() {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
        let xq = &x.q[b * BLOCK..(b + 1) * BLOCK];
        let mut acc = 0i32;
        for (j, &q) in block[4..].iter().enumerate() {
            acc += (q & 15) as i32 * xq[j] as i32 + (q >> 4) as i32 * xq[j + 16] as i32;
        }
        sum += d * x.d[b] * acc as f32 + m * x.s[b];
    }
    sum
}

fn dot_q8_0_scalar(row: &[u8], x: &Q8Vector) -> f32 {
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(Format::Q8_0.block_bytes()).enumerate() {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let xq = &x.q[b * BLOCK..(b + 1) * BLOCK];
        let acc: i32 = block[2..]
            .iter()
            .zip(xq)
            .map(|(&w, &a)| w as i8 as i32 * a as i32)
            .sum();
        sum += d * x.d[b] * acc as f32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Format, Q8Vector, BLOCK};
    use half::f16;
    use std::arch::x86_64::*;

    /// The two f16 values at `p` (scale, minimum) as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn halves(p: *const u8) -> (f32, f32) {
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)))
    }

    /// Eight f16 at `p` as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn halves8(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn sum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Unsigned weights `w` times signed activations `a`, 32 of each: 8 sums of 4 as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn products(w: __m256i, a: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(w, a);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_1(row: &[u8], x: &Q8Vector) -> f32 {
        let bb = Format::Q4_1.block_bytes();
        let blocks = row.len() / bb;
        let nibble = _mm_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for b in 0..blocks {
            let p = row.as_ptr().add(b * bb);
            let (d, m) = halves(p);
            let packed = _mm_loadu_si128(p.add(4) as *const __m128i);
            let lo = _mm_and_si128(packed, nibble);
            let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
            let w = _mm256_set_m128i(hi, lo);
            let a = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            let scale = _mm256_set1_ps(d * *x.d.get_unchecked(b));
            acc = _mm256_fmadd_ps(products(w, a), scale, acc);
            mins += m * *x.s.get_unchecked(b);
        }
        sum(acc) + mins
    }

    /// Four consecutive rows (`rows` holds exactly them) · x.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot4_q4_1(rows: &[u8], x: &Q8Vector) -> [f32; 4] {
        let bb = Format::Q4_1.block_bytes();
        let stride = rows.len() / 4;
        let nibble = _mm_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut mins = [0f32; 4];
        for b in 0..stride / bb {
            let a = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            let (xd, xs) = (*x.d.get_unchecked(b), *x.s.get_unchecked(b));
            for (r, (acc, min)) in acc.iter_mut().zip(&mut mins).enumerate() {
                let p = rows.as_ptr().add(r * stride + b * bb);
                let (d, m) = halves(p);
                let packed = _mm_loadu_si128(p.add(4) as *const __m128i);
                let lo = _mm_and_si128(packed, nibble);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
                let w = _mm256_set_m128i(hi, lo);
                *acc = _mm256_fmadd_ps(products(w, a), _mm256_set1_ps(d * xd), *acc);
                *min += m * xs;
            }
        }
        std::array::from_fn(|r| sum(acc[r]) + mins[r])
    }

    /// Four consecutive rows (`rows` holds exactly them) · x.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot4_q8_0(rows: &[u8], x: &Q8Vector) -> [f32; 4] {
        let bb = Format::Q8_0.block_bytes();
        let stride = rows.len() / 4;
        let mut acc = [_mm256_setzero_ps(); 4];
        for b in 0..stride / bb {
            let a = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            let xd = *x.d.get_unchecked(b);
            for (r, acc) in acc.iter_mut().enumerate() {
                let p = rows.as_ptr().add(r * stride + b * bb);
                let (d, _) = halves(p);
                let w = _mm256_loadu_si256(p.add(2) as *const __m256i);
                let prod = products(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
                *acc = _mm256_fmadd_ps(prod, _mm256_set1_ps(d * xd), *acc);
            }
        }
        std::array::from_fn(|r| sum(acc[r]))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn attend(
        q: &[f32],
        keys: &[f16],
        values: &[f16],
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let hd = q.len();
        scores.clear();
        for k in keys.chunks_exact(hd) {
            let mut acc = _mm256_setzero_ps();
            for i in (0..hd).step_by(8) {
                let a = _mm256_loadu_ps(q.as_ptr().add(i));
                acc = _mm256_fmadd_ps(a, halves8(k.as_ptr().add(i)), acc);
            }
            scores.push(sum(acc) * scale);
        }
        crate::fastmath::softmax(scores);
        out.fill(0.0);
        for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
            let p = _mm256_set1_ps(p);
            for i in (0..hd).step_by(8) {
                let o = out.as_mut_ptr().add(i);
                _mm256_storeu_ps(
                    o,
                    _mm256_fmadd_ps(p, halves8(v.as_ptr().add(i)), _mm256_loadu_ps(o)),
                );
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q8_0(row: &[u8], x: &Q8Vector) -> f32 {
        let bb = Format::Q8_0.block_bytes();
        let blocks = row.len() / bb;
        let mut acc = _mm256_setzero_ps();
        for b in 0..blocks {
            let p = row.as_ptr().add(b * bb);
            let (d, _) = halves(p);
            let w = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let a = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            // maddubs multiplies unsigned by signed: move w's signs onto a.
            let prod = products(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
            let scale = _mm256_set1_ps(d * *x.d.get_unchecked(b));
            acc = _mm256_fmadd_ps(prod, scale, acc);
        }
        sum(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    /// A Q4_1 matrix of random blocks (the bytes a GGUF file would hold).
    fn random_q4_1(rows: usize, cols: usize) -> QMatrix {
        let mut bytes = Vec::new();
        let r = noise(rows * cols / BLOCK * 18, 7);
        for block in r.chunks_exact(18) {
            bytes.extend_from_slice(&f16::from_f32(block[0].abs() * 0.1).to_le_bytes());
            bytes.extend_from_slice(&f16::from_f32(block[1] * 0.5).to_le_bytes());
            bytes.extend(block[2..].iter().map(|v| ((v + 1.0) * 127.9) as u8));
        }
        QMatrix::from_blocks(Format::Q4_1, rows, cols, bytes).unwrap()
    }

    fn kernels() -> Vec<Kernels> {
        let mut k = vec![Kernels::Scalar];
        if Kernels::detect() != Kernels::Scalar {
            k.push(Kernels::detect());
        }
        k
    }

    /// Every kernel this CPU runs (the scalar one always) against float64 arithmetic on the
    /// dequantised weights and quantised activations: they must agree to f32 rounding.
    fn check_exact(m: &QMatrix, x: &[f32]) {
        let mut xq = Q8Vector::default();
        xq.quantize(x);
        let xd: Vec<f64> =
            xq.q.iter()
                .enumerate()
                .map(|(i, &q)| q as f64 * xq.d[i / BLOCK] as f64)
                .collect();
        let w = m.dequantize();
        for k in kernels() {
            let mut y = vec![0f32; m.rows];
            m.matvec(&xq, &mut y, k);
            for (r, &got) in y.iter().enumerate() {
                let row = &w[r * m.cols..(r + 1) * m.cols];
                let want: f64 = row.iter().zip(&xd).map(|(&a, &b)| a as f64 * b).sum();
                let mag: f64 = row
                    .iter()
                    .zip(&xd)
                    .map(|(&a, &b)| (a as f64 * b).abs())
                    .sum();
                assert!(
                    (got as f64 - want).abs() <= 1e-5 * mag + 1e-6,
                    "{k:?} {:?} row {r}: {got} vs {want}",
                    m.format
                );
            }
        }
    }

    #[test]
    fn q4_1_kernels_equal_float64_on_the_dequantised_weights() {
        let m = random_q4_1(37, 576);
        check_exact(&m, &noise(576, 3));
    }

    #[test]
    fn q8_0_kernels_equal_float64_on_the_dequantised_weights() {
        let w = noise(41 * 1536, 11);
        let m = QMatrix::quantize_q8_0(41, 1536, &w).unwrap();
        // Quantisation keeps each weight within half a step of its block's scale, plus what
        // rounding the scale to f16 moves the largest level (127 · 2⁻¹¹ of a step).
        let back = m.dequantize();
        for (b, (orig, q)) in w.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
            let step = orig.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
            for (o, q) in orig.iter().zip(q) {
                assert!((o - q).abs() <= step * 0.57, "block {b}");
            }
        }
        // Large activations of both signs exercise the sign trick at ±127.
        let x: Vec<f32> = noise(1536, 5).iter().map(|v| v * 40.0).collect();
        check_exact(&m, &x);
    }

    #[test]
    fn attention_kernels_equal_float64() {
        let (hd, len) = (64, 37);
        let q = noise(hd, 1);
        let keys: Vec<f16> = noise(hd * len, 2)
            .iter()
            .map(|v| f16::from_f32(v * 3.0))
            .collect();
        let values: Vec<f16> = noise(hd * len, 4).into_iter().map(f16::from_f32).collect();
        let scale = 0.125;
        let s: Vec<f64> = keys
            .chunks(hd)
            .map(|k| {
                q.iter()
                    .zip(k)
                    .map(|(&a, b)| a as f64 * b.to_f64())
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
        let want: Vec<f64> = (0..hd)
            .map(|i| {
                s.iter()
                    .zip(values.chunks(hd))
                    .map(|(v, row)| (v - max).exp() / z * row[i].to_f64())
                    .sum()
            })
            .collect();
        for k in kernels() {
            let (mut scores, mut out) = (Vec::new(), vec![1f32; hd]);
            attend(&q, &keys, &values, scale as f32, &mut scores, &mut out, k);
            for (got, want) in out.iter().zip(&want) {
                assert!((*got as f64 - want).abs() < 1e-6, "{k:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn activations_quantise_to_the_nearest_of_255_levels() {
        let x = noise(64, 9);
        let mut q = Q8Vector::default();
        q.quantize(&x);
        for (i, v) in x.iter().enumerate() {
            let d = q.d[i / BLOCK];
            assert!((q.q[i] as f32 * d - v).abs() <= d * 0.5 + 1e-7);
        }
        let sums: Vec<f32> =
            q.q.chunks(BLOCK)
                .zip(&q.d)
                .map(|(b, d)| d * b.iter().map(|&v| v as i32).sum::<i32>() as f32)
                .collect();
        assert_eq!(sums, q.s);
        // All zeros: scale 0, no division by zero.
        q.quantize(&[0.0; 32]);
        assert_eq!((q.d[0], q.s[0]), (0.0, 0.0));
        assert!(q.q.iter().all(|&v| v == 0));
    }

    #[test]
    fn stacking_keeps_rows_and_refuses_mixed_formats() {
        let a = random_q4_1(3, 64);
        let b = random_q4_1(2, 64);
        let (ra, rb) = (a.dequantize(), b.dequantize());
        let s = QMatrix::stack(vec![a, b]).unwrap();
        assert_eq!(s.rows(), 5);
        assert_eq!(s.dequantize(), [ra, rb].concat());
        let q8 = QMatrix::quantize_q8_0(1, 64, &[0.5; 64]).unwrap();
        let err = QMatrix::stack(vec![random_q4_1(1, 64), q8]).err().unwrap();
        assert!(err.contains("differ"), "{err}");
        assert!(QMatrix::from_blocks(Format::Q4_1, 2, 64, vec![0; 79]).is_err());
    }
}
