//! Dynamic int8 linear layers for the encoders (`--int8`): weights quantised once per output
//! channel (symmetric, −127…127; optionally a second plane for the first's rounding error,
//! [`Int8Matrix`]), activations per token (row) at every call, products summed exactly in
//! 32-bit integers and scaled back to f32.
//!
//! Activations are asymmetric 8-bit (0…255 with a zero point per row; PyTorch's x86 dynamic
//! quantisation has them per tensor, in 7 bits). Inputs with outlier values ([`OUTLIER`]) are
//! multiplied in f32 instead. Mean cosine to f32 on SciFact documents, MPNet: 7 asymmetric bits
//! 0.9953, with the outliers apart 0.9972, 8 bits with them apart 0.9987 (7-bit weights: 0.9970).
//! Every kernel computes the same integer sums, so queries are embedded as the index's
//! documents were whichever kernel a machine runs:
//! - AVX-512 VNNI and AVX-VNNI: `dpbusd` (unsigned × signed bytes into 32 bits);
//! - AVX2: both widened to 16 bits and `madd` (pairs of 16-bit products into 32 bits). The
//!   byte instruction `maddubs` saturates its pair sums at 2¹⁵ (255 · 127 · 2 overflows), so
//!   it needs 7-bit activations (the precision cost above) or llama.cpp's sign trick on
//!   x − 128, which takes 7 instructions on the multiply ports per 64 products where this
//!   takes 4. One core of a Sapphire Rapids Xeon held to AVX2: 106–119 GOP/s with the sign
//!   trick, 125–147 with this, where the gemm crate's AVX2 f32 kernels give 90–97 GFLOP/s;
//! - scalar loops for other CPUs.
//!
//! No maintained crate offers an int8 GEMM with per-row and per-column scales that runs on
//! stable Rust without a C++ toolchain (fbgemm and oneDNN are C++), hence this module.
//!
//! Weights are packed in groups of [`GROUP`] outputs: for each 4 inputs, 64 outputs × 4 bytes
//! (one 512-bit register, or two 256-bit ones per 16 outputs). A tile is [`ROWS`] tokens ×
//! one group; the group (at most a few hundred KB) stays in the L2 cache while every tile of
//! rows runs over it.

use std::ops::Range;

use crate::fastmath::{self, wide};

/// Outputs per packed group (the widest tile).
const GROUP: usize = 64;
/// Tokens per tile.
const ROWS: usize = 4;

/// Which code computes the integer products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Int8Kernels {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Int8Kernels {
    /// The fastest this CPU runs, within `FERRET_SIMD` ([`fastmath::cap`]).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use fastmath::Cap;
            let cap = fastmath::cap();
            if cap >= Cap::Avx512
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                return Int8Kernels::Avx512Vnni;
            }
            if cap >= Cap::AvxVnni
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("avxvnni")
            {
                return Int8Kernels::AvxVnni;
            }
            if cap >= Cap::Avx2 && is_x86_feature_detected!("avx2") {
                return Int8Kernels::Avx2;
            }
        }
        Int8Kernels::Scalar
    }

    /// Every kernel this CPU can run (for tests).
    #[cfg(test)]
    fn available() -> Vec<Self> {
        let mut all = vec![Int8Kernels::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                all.push(Int8Kernels::Avx2);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni") {
                all.push(Int8Kernels::AvxVnni);
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                all.push(Int8Kernels::Avx512Vnni);
            }
        }
        all
    }
}

/// Rounds x · inv + zero to the nearest of `lo`…`hi` (ties to even): adding 1.5 · 2²³ puts
/// the integer in the low mantissa bits, which vectorises where a float-to-int cast does not.
#[inline(always)]
fn quantize_value(x: f32, inv: f32, zero: f32, lo: f32, hi: f32) -> i32 {
    const ROUND: f32 = 12_582_912.0;
    let t = (x * inv + zero).clamp(lo, hi) + ROUND;
    t.to_bits() as i32 - 0x4B40_0000
}

wide! {
    /// Quantises one row to 0…255 over [min(x, 0), max(x, 0)]: returns (scale, zero point).
    fn quantize_row(row: &[f32], q: &mut [u8]) -> (f32, i32) {
        let (lo, hi) = (fastmath::min(row).min(0.0), fastmath::max(row).max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let inv = 1.0 / scale;
        let zero = quantize_value(-lo, inv, 0.0, 0.0, 255.0);
        let z = zero as f32;
        for (q, &v) in q.iter_mut().zip(row) {
            *q = quantize_value(v, inv, z, 0.0, 255.0) as u8;
        }
        (scale, zero)
    }
}

wide! {
    /// y += (acc − zero · Σw) · (sx · scale), per output.
    fn dequantize_add(acc: &[i32], zero: i32, sums: &[i32], sx: f32, scales: &[f32], y: &mut [f32]) {
        for (((y, &a), &w), &s) in y.iter_mut().zip(acc).zip(sums).zip(scales) {
            *y += (a - zero * w) as f32 * (sx * s);
        }
    }
}

/// One 8-bit plane of a weight matrix: symmetric per output channel, packed for the kernels.
struct Plane {
    /// groups × (inputs / 4) × GROUP × 4 bytes; padding outputs and inputs are zero.
    packed: Vec<i8>,
    /// Per output: the weight scale (max |w| / 127).
    scales: Vec<f32>,
    /// Per output: Σ q, what each row's zero point adds to the integer sums.
    sums: Vec<i32>,
}

impl Plane {
    /// Quantises the row-major [out, inp] `w` and subtracts what the plane holds from it, which
    /// leaves the rounding error for a next plane.
    fn quantize(w: &mut [f32], out: usize, inp: usize, kpad: usize) -> Self {
        let groups = out.div_ceil(GROUP);
        let mut packed = vec![0i8; groups * kpad * GROUP];
        let mut scales = Vec::with_capacity(out);
        let mut sums = Vec::with_capacity(out);
        for (o, row) in w.chunks_exact_mut(inp).enumerate() {
            let max = fastmath::max_abs(row);
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales.push(scale);
            let (g, lane) = (o / GROUP, o % GROUP);
            let base = g * kpad * GROUP;
            let mut sum = 0i32;
            for (k, v) in row.iter_mut().enumerate() {
                let q = quantize_value(*v, 1.0 / scale, 0.0, -127.0, 127.0);
                sum += q;
                packed[base + (k / 4) * GROUP * 4 + lane * 4 + k % 4] = q as i8;
                *v -= q as f32 * scale;
            }
            sums.push(sum);
        }
        Plane {
            packed,
            scales,
            sums,
        }
    }
}

/// A weight matrix [out, inp] quantised per output channel into one or two 8-bit planes.
///
/// A second plane quantises the first's rounding error, so the weights carry about 15 bits for
/// twice the integer work. MPNet needs it in the feed-forward output layers: their 8-bit
/// weights alone are off by 1.1–1.5 % per output (the row maximum is ~5× the row's RMS), which
/// is most of its int8 error (docs/ENCODER.md).
pub(crate) struct Int8Matrix {
    planes: Vec<Plane>,
    /// The f32 weights transposed (inputs × outputs), for outlier inputs.
    columns: Vec<f32>,
    /// Inputs rounded up to a multiple of 4.
    kpad: usize,
    out: usize,
}

impl Int8Matrix {
    /// From a row-major f32 weight [out, inp] (PyTorch's `Linear` layout), in `planes` (1 or 2)
    /// 8-bit planes.
    pub(crate) fn quantize(w: &[f32], out: usize, inp: usize, planes: usize) -> Self {
        assert_eq!(w.len(), out * inp, "weight shape");
        assert!((1..=2).contains(&planes), "one or two weight planes");
        let kpad = inp.div_ceil(4) * 4;
        let mut rest = w.to_vec();
        let planes = (0..planes)
            .map(|_| Plane::quantize(&mut rest, out, inp, kpad))
            .collect();
        let mut columns = vec![0f32; out * inp];
        for (o, row) in w.chunks_exact(inp).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                columns[k * out + o] = v;
            }
        }
        Int8Matrix {
            planes,
            columns,
            kpad,
            out,
        }
    }

    /// y [rows, outputs.len()] = dequantised (x Wᵀ) for the outputs asked for, plus `bias`
    /// (indexed by output).
    pub(crate) fn matmul(
        &self,
        x: &Int8Rows,
        outputs: Range<usize>,
        bias: &[f32],
        y: &mut Vec<f32>,
        kernels: Int8Kernels,
    ) {
        assert_eq!(x.kpad, self.kpad, "activations quantised for another width");
        assert!(outputs.end <= self.out && bias.len() >= outputs.end);
        let n = outputs.len();
        // Every element is written below: no need to zero what is already there.
        y.resize(x.rows * n, 0.0);
        if n == 0 {
            return;
        }
        let kq = self.kpad / 4;
        let mut tile = [0i32; ROWS * GROUP];
        let mut wide = Vec::new();
        for g in outputs.start / GROUP..outputs.end.div_ceil(GROUP) {
            let first = (g * GROUP).max(outputs.start);
            let last = ((g + 1) * GROUP).min(outputs.end);
            for r0 in (0..x.rows).step_by(ROWS) {
                let xs = &x.q[r0 * self.kpad..][..ROWS * self.kpad];
                for (p, plane) in self.planes.iter().enumerate() {
                    let w = &plane.packed[g * self.kpad * GROUP..][..self.kpad * GROUP];
                    tile_products(kernels, xs, self.kpad, w, kq, &mut wide, &mut tile);
                    for r in r0..(r0 + ROWS).min(x.rows) {
                        let y = &mut y[r * n + first - outputs.start..][..last - first];
                        let acc = &tile[(r - r0) * GROUP + first - g * GROUP..][..last - first];
                        let (sums, scales) = (&plane.sums[first..last], &plane.scales[first..last]);
                        if p == 0 {
                            y.copy_from_slice(&bias[first..last]);
                        }
                        dequantize_add(acc, x.zeros[r], sums, x.scales[r], scales, y);
                    }
                }
            }
        }
        // The outlier inputs, in f32.
        let o = x.outliers.len();
        for r in 0..x.rows {
            for (j, &k) in x.outliers.iter().enumerate() {
                axpy(
                    x.values[r * o + j],
                    &self.columns[k * self.out + outputs.start..][..n],
                    &mut y[r * n..][..n],
                );
            }
        }
    }
}

wide! {
    /// y += a · x.
    fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    }
}

wide! {
    /// flags[k] = 1 where |x[k]| > limit (left as they are elsewhere).
    fn mark_outliers(x: &[f32], limit: f32, flags: &mut [u8]) {
        for (f, &v) in flags.iter_mut().zip(x) {
            *f |= (v.abs() > limit) as u8;
        }
    }
}

/// Inputs whose magnitude passes this in any row of a call are left out of the 8-bit part and
/// multiplied in f32 (LLM.int8()'s decomposition, with its threshold): transformer activations
/// have a few such feature dimensions, and one of them would otherwise stretch the row's scale
/// over everything else. MPNet on SciFact documents with 7-bit activations: mean cosine to f32
/// 0.9953 without, 0.9972 with, at ~5 columns of 3072 per call (docs/ENCODER.md).
const OUTLIER: f32 = 6.0;

/// Activations quantised per row (0…127, a scale and a zero point each), rows padded to a
/// multiple of [`ROWS`] and columns to a multiple of 4 with zeros; outlier columns
/// ([`OUTLIER`]) kept in f32 and at the zero point in the 8-bit part.
#[derive(Default)]
pub(crate) struct Int8Rows {
    q: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<i32>,
    rows: usize,
    kpad: usize,
    /// Outlier columns, ascending, and their values (rows × outliers, row-major).
    outliers: Vec<usize>,
    values: Vec<f32>,
    /// Scratch: outlier flags per column, a row with its outliers zeroed.
    flags: Vec<u8>,
    row: Vec<f32>,
}

impl Int8Rows {
    /// Quantises `x` [rows, cols] (row-major).
    pub(crate) fn quantize(&mut self, x: &[f32], rows: usize, cols: usize) {
        assert!(
            x.len() >= rows * cols,
            "activations shorter than rows × cols"
        );
        self.kpad = cols.div_ceil(4) * 4;
        self.rows = rows;
        // The buffer is reused as it is: each row and the padding are written below.
        self.q.resize(rows.div_ceil(ROWS) * ROWS * self.kpad, 0);
        self.scales.clear();
        self.zeros.clear();
        let x = &x[..rows * cols];
        self.flags.clear();
        self.flags.resize(cols, 0);
        for row in x.chunks_exact(cols) {
            mark_outliers(row, OUTLIER, &mut self.flags);
        }
        self.outliers.clear();
        self.outliers
            .extend((0..cols).filter(|&k| self.flags[k] != 0));
        self.values.clear();
        for (row, q) in x.chunks_exact(cols).zip(self.q.chunks_exact_mut(self.kpad)) {
            let (scale, zero) = if self.outliers.is_empty() {
                quantize_row(row, &mut q[..cols])
            } else {
                // Zero maps to the zero point, which adds nothing to the integer sums.
                self.row.clear();
                self.row.extend_from_slice(row);
                for &k in &self.outliers {
                    self.values.push(row[k]);
                    self.row[k] = 0.0;
                }
                quantize_row(&self.row, &mut q[..cols])
            };
            self.scales.push(scale);
            self.zeros.push(zero);
            q[cols..].fill(0);
        }
        self.q[rows * self.kpad..].fill(0);
    }
}

/// tile[r·GROUP + o] = Σ_k x[r][k] · w[o][k] for the ROWS rows at `x` (stride `kpad`) and the
/// group of packed weights `w`; `wide` is the AVX2 kernel's scratch.
fn tile_products(
    kernels: Int8Kernels,
    x: &[u8],
    kpad: usize,
    w: &[i8],
    kq: usize,
    wide: &mut Vec<i16>,
    tile: &mut [i32; ROWS * GROUP],
) {
    assert!(x.len() >= ROWS * kpad && w.len() >= kq * GROUP * 4 && kpad >= kq * 4);
    match kernels {
        Int8Kernels::Scalar => tile_scalar(x, kpad, w, kq, tile),
        // SAFETY (each arm): detect()/available() chose the kernel from the CPU's features; the
        // slices hold ROWS rows of kpad bytes and kq groups of GROUP × 4 bytes (asserted).
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::Avx2 => unsafe {
            x86::tile_avx2(x.as_ptr(), kpad, w.as_ptr(), kq, wide, tile)
        },
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::AvxVnni => unsafe {
            x86::tile_avxvnni(x.as_ptr(), kpad, w.as_ptr(), kq, tile)
        },
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::Avx512Vnni => unsafe {
            x86::tile_avx512vnni(x.as_ptr(), kpad, w.as_ptr(), kq, tile)
        },
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
}

fn tile_scalar(x: &[u8], kpad: usize, w: &[i8], kq: usize, tile: &mut [i32; ROWS * GROUP]) {
    tile.fill(0);
    for q in 0..kq {
        let wq = &w[q * GROUP * 4..][..GROUP * 4];
        for r in 0..ROWS {
            let xr = &x[r * kpad + q * 4..][..4];
            let tr = &mut tile[r * GROUP..][..GROUP];
            for (t, wo) in tr.iter_mut().zip(wq.chunks_exact(4)) {
                *t += xr
                    .iter()
                    .zip(wo)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum::<i32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{GROUP, ROWS};
    use std::arch::x86_64::*;

    /// The 4 input bytes of row `r` at input quad `q`, for every 32-bit lane.
    #[inline(always)]
    unsafe fn quad(x: *const u8, kpad: usize, r: usize, q: usize) -> i32 {
        std::ptr::read_unaligned(x.add(r * kpad + q * 4) as *const i32)
    }

    /// 16-bit products: the tile's activations widened once (into `wide`), each group of 8
    /// outputs' weights widened as loaded, `madd` summing pairs into 32 bits. Exact, as
    /// `dpbusd` is: |x · w| ≤ 255 · 127, so a pair cannot overflow.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile_avx2(
        x: *const u8,
        kpad: usize,
        w: *const i8,
        kq: usize,
        wide: &mut Vec<i16>,
        tile: &mut [i32; ROWS * GROUP],
    ) {
        wide.clear();
        wide.extend(
            std::slice::from_raw_parts(x, ROWS * kpad)
                .iter()
                .map(|&v| v as i16),
        );
        let xw = wide.as_ptr();
        // 8 outputs at a time (two registers of 4 outputs × 2 pair sums), all ROWS rows.
        for part in 0..GROUP / 8 {
            let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
            for q in 0..kq {
                let wb = _mm256_loadu_si256(w.add(q * GROUP * 4 + part * 32) as *const __m256i);
                let w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wb));
                let w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(wb));
                for (r, acc) in acc.iter_mut().enumerate() {
                    // The row's 4 inputs of this quad, in every 64-bit lane.
                    let quad = std::ptr::read_unaligned(xw.add(r * kpad + q * 4) as *const i64);
                    let xb = _mm256_set1_epi64x(quad);
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(xb, w0));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(xb, w1));
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                // Pair sums → outputs 0 1 4 5 | 2 3 6 7 → 0…7.
                let s = _mm256_hadd_epi32(acc[0], acc[1]);
                let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(s);
                let out = tile.as_mut_ptr().add(r * GROUP + part * 8);
                _mm256_storeu_si256(out as *mut __m256i, s);
            }
        }
    }

    #[target_feature(enable = "avx2,avxvnni")]
    pub(super) unsafe fn tile_avxvnni(
        x: *const u8,
        kpad: usize,
        w: *const i8,
        kq: usize,
        tile: &mut [i32; ROWS * GROUP],
    ) {
        for part in 0..GROUP / 16 {
            let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
            for q in 0..kq {
                let wp = w.add(q * GROUP * 4 + part * 64);
                let w0 = _mm256_loadu_si256(wp as *const __m256i);
                let w1 = _mm256_loadu_si256(wp.add(32) as *const __m256i);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xb = _mm256_set1_epi32(quad(x, kpad, r, q));
                    acc[0] = _mm256_dpbusd_avx_epi32(acc[0], xb, w0);
                    acc[1] = _mm256_dpbusd_avx_epi32(acc[1], xb, w1);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let out = tile.as_mut_ptr().add(r * GROUP + part * 16);
                _mm256_storeu_si256(out as *mut __m256i, acc[0]);
                _mm256_storeu_si256(out.add(8) as *mut __m256i, acc[1]);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_avx512vnni(
        x: *const u8,
        kpad: usize,
        w: *const i8,
        kq: usize,
        tile: &mut [i32; ROWS * GROUP],
    ) {
        let mut acc = [[_mm512_setzero_si512(); 4]; ROWS];
        for q in 0..kq {
            let wp = w.add(q * GROUP * 4);
            let ws = [
                _mm512_loadu_si512(wp as *const __m512i),
                _mm512_loadu_si512(wp.add(64) as *const __m512i),
                _mm512_loadu_si512(wp.add(128) as *const __m512i),
                _mm512_loadu_si512(wp.add(192) as *const __m512i),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_epi32(quad(x, kpad, r, q));
                for (a, w) in acc.iter_mut().zip(ws) {
                    *a = _mm512_dpbusd_epi32(*a, xb, w);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, a) in acc.iter().enumerate() {
                let out = tile.as_mut_ptr().add(r * GROUP + j * 16);
                _mm512_storeu_si512(out as *mut __m512i, *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    /// Shapes that leave partial tiles: rows not a multiple of 4, outputs not of 64, inputs not
    /// of 4.
    const SHAPES: [(usize, usize, usize); 3] = [(7, 70, 38), (4, 64, 384), (13, 130, 101)];

    #[test]
    fn every_kernel_computes_the_exact_integer_products() {
        for ((rows, out, inp), planes) in SHAPES.into_iter().zip([1, 2, 2]) {
            let w = noise(out * inp, 1);
            let mut x = noise(rows * inp, 2);
            // Two outlier inputs, each in one row only.
            x[5] = 9.0;
            x[(rows - 1) * inp + 17] = -7.5;
            let m = Int8Matrix::quantize(&w, out, inp, planes);
            let mut xq = Int8Rows::default();
            xq.quantize(&x, rows, inp);
            assert_eq!(xq.outliers, [5, 17]);
            let bias = noise(out, 3);
            // The reference: integer sums of the quantised values, in i64, dequantised in f64.
            let mut want = vec![0f64; rows * out];
            for r in 0..rows {
                for o in 0..out {
                    let mut y = 0f64;
                    for plane in &m.planes {
                        let mut acc = 0i64;
                        for k in 0..inp {
                            let wq = plane.packed[(o / GROUP) * m.kpad * GROUP
                                + (k / 4) * GROUP * 4
                                + (o % GROUP) * 4
                                + k % 4];
                            acc += (xq.q[r * xq.kpad + k] as i64 - xq.zeros[r] as i64) * wq as i64;
                        }
                        y += acc as f64 * xq.scales[r] as f64 * plane.scales[o] as f64;
                    }
                    // Outlier inputs sit at the zero point above and are added in f32.
                    let outliers: f64 = xq
                        .outliers
                        .iter()
                        .map(|&k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                        .sum();
                    want[r * out + o] = y + outliers + bias[o] as f64;
                }
            }
            for kernels in Int8Kernels::available() {
                let mut y = Vec::new();
                m.matmul(&xq, 0..out, &bias, &mut y, kernels);
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()),
                        "{kernels:?} {rows}x{out}x{inp}, {planes} planes, at {i}: {a} vs {b}"
                    );
                }
                // A range of outputs that starts and ends inside groups.
                let range = 3..out - 5;
                let mut part = Vec::new();
                m.matmul(&xq, range.clone(), &bias, &mut part, kernels);
                for r in 0..rows {
                    assert_eq!(
                        &part[r * range.len()..][..range.len()],
                        &y[r * out + range.start..r * out + range.end],
                        "{kernels:?} output range"
                    );
                }
            }
        }
    }

    #[test]
    fn int8_products_are_close_to_float() {
        // The quantisation error itself: per-channel and per-token 8-bit scales keep a
        // 384-wide dot product within ~1 % of the output's scale.
        let (rows, out, inp) = (5, 96, 384);
        let w = noise(out * inp, 4);
        let mut x = noise(rows * inp, 5);
        // An outlier feature, as transformer activations have: without the f32 decomposition
        // it would stretch every row's scale twenty-fold.
        for r in 0..rows {
            x[r * inp + 100] = 20.0;
        }
        let kernels = Int8Kernels::detect();
        let m = Int8Matrix::quantize(&w, out, inp, 1);
        let mut xq = Int8Rows::default();
        xq.quantize(&x, rows, inp);
        let mut y = Vec::new();
        m.matmul(&xq, 0..out, &vec![0.0; out], &mut y, kernels);
        let mut worst = 0f64;
        let mut norm = 0f64;
        for r in 0..rows {
            for o in 0..out {
                let exact: f64 = (0..inp)
                    .map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                    .sum();
                worst = worst.max((y[r * out + o] as f64 - exact).abs());
                norm = norm.max(exact.abs());
            }
        }
        assert!(worst < 0.01 * norm, "worst {worst}, largest output {norm}");
    }

    /// Relative RMS error of x Wᵀ through `planes` weight planes, against f64, with
    /// activations exactly on the 8-bit grid so that only the weights' rounding counts.
    fn weight_error(w: &[f32], out: usize, inp: usize, planes: usize) -> f64 {
        let rows = 4;
        // 0…255 times 1/255: quantised without loss (scale 1/255, zero point 0).
        let x: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 37) % 256) as f32 / 255.0)
            .collect();
        let m = Int8Matrix::quantize(w, out, inp, planes);
        let mut xq = Int8Rows::default();
        xq.quantize(&x, rows, inp);
        let mut y = Vec::new();
        m.matmul(&xq, 0..out, &vec![0.0; out], &mut y, Int8Kernels::detect());
        let (mut err, mut norm) = (0f64, 0f64);
        for r in 0..rows {
            for o in 0..out {
                let exact: f64 = (0..inp)
                    .map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                    .sum();
                err += (y[r * out + o] as f64 - exact).powi(2);
                norm += exact.powi(2);
            }
        }
        (err / norm).sqrt()
    }

    #[test]
    fn a_second_plane_carries_the_first_planes_rounding_error() {
        // Rows whose maximum is ~8× their RMS, as in MPNet's feed-forward output layers.
        let (out, inp) = (64, 512);
        let mut w = noise(out * inp, 6);
        for o in 0..out {
            w[o * inp + (o * 7) % inp] = 5.0;
        }
        let one = weight_error(&w, out, inp, 1);
        let two = weight_error(&w, out, inp, 2);
        assert!(one > 1e-3, "8-bit weights alone: {one}");
        // The second plane's step is 1/254 of the first's.
        assert!(two < one / 50.0, "one plane {one}, two planes {two}");
    }

    #[test]
    fn quantisation_rounds_to_the_nearest_level_and_keeps_zero_rows() {
        let mut xq = Int8Rows::default();
        // Range [-0.55, 2.0] (0 included): scale 0.01, zero point 55.
        xq.quantize(&[2.0, -0.55, 0.004, 0.006, 0.0, 0.0, 0.0, 0.0], 2, 4);
        assert!((xq.scales[0] - 0.01).abs() < 1e-7);
        assert_eq!(xq.zeros[0], 55);
        assert_eq!(&xq.q[..4], &[255, 0, 55, 56]);
        // A row of zeros: scale 1, zero point 0.
        assert_eq!(&xq.q[4..8], &[0, 0, 0, 0]);
        assert_eq!((xq.scales[1], xq.zeros[1]), (1.0, 0));
        // A row of positive values keeps 0 in range: zero point 0.
        xq.quantize(&[0.5, 2.55, 0.0, 0.637], 1, 4);
        assert_eq!(xq.zeros[0], 0);
        assert_eq!(&xq.q[..4], &[50, 255, 0, 64]);
    }
}
