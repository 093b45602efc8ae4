//! Dynamic int8 linear layers for the encoders (`--int8`): weights quantised once per output
//! channel (symmetric, −127…127, or −2047…2047 where a layer needs finer weights:
//! [`WeightBits`]), activations per token (row) at every call, products summed exactly in
//! 32-bit integers and scaled back to f32.
//!
//! Activations are asymmetric 8-bit (0…255 with a zero point per row; PyTorch's x86 dynamic
//! quantisation has them per tensor, in 7 bits). Inputs with outlier values ([`OUTLIER`]) are
//! multiplied in f32 instead. Mean cosine to f32 on SciFact documents, MPNet: 7 asymmetric bits
//! 0.9953, with the outliers apart 0.9972, 8 bits with them apart 0.9987 (7-bit weights: 0.9970).
//! Every kernel computes the same integer sums, so queries are embedded as the index's
//! documents were whichever kernel a machine runs:
//! - AVX-512 VNNI and AVX-VNNI: `dpbusd` (unsigned × signed bytes into 32 bits) on 8-bit
//!   weights, `dpwssd` (16-bit pairs) on 12-bit ones;
//! - AVX2: weights stored as 16 bits, activations widened to 16 bits once per call, `madd`
//!   summing pairs into 32 bits. The byte instruction `maddubs` saturates its pair sums at
//!   2¹⁵ (255 · 127 · 2 overflows), so it needs 7-bit activations (the precision cost above)
//!   or llama.cpp's sign trick on x − 128, which takes 7 instructions on the multiply ports per
//!   64 products where this takes 4, and nothing else: no widening in the inner loop. 12-bit
//!   weights cost AVX2 no more than 8-bit ones;
//! - scalar loops for other CPUs.
//!
//! No maintained crate offers an int8 GEMM with per-row and per-column scales that runs on
//! stable Rust without a C++ toolchain (fbgemm and oneDNN are C++), hence this module.
//!
//! Weights are packed in groups of [`GROUP`] outputs, in one of two layouts ([`Packed`]): bytes
//! in quads of inputs (`dpbusd`) or 16-bit values in pairs of inputs (`madd`, `dpwssd`),
//! starting on a cache line so that no vector load of them straddles two ([`LineAligned`]). A
//! tile is [`ROWS`] tokens × one group; the group (at most a few hundred KB) stays in the L2
//! cache while every tile of rows runs over it.

use std::ops::Range;

use crate::aligned::LineAligned;
use crate::fastmath::{self, wide};

/// Outputs per packed group (the widest tile).
const GROUP: usize = 64;
/// Tokens per tile: 4, or 6 in the AVX2 pair kernel, which has the registers for it and runs
/// 6–8 % faster so (MiniLM on AMD Zen 4 held to AVX2; the VNNI kernels ran 8–10 % slower with 6).
const ROWS: usize = 4;
const AVX2_ROWS: usize = 6;
/// The tile buffer's rows, and what activations are padded to a multiple of (serves 4 and 6).
const MAX_ROWS: usize = 6;
const PAD_ROWS: usize = 12;
const _: () = assert!(
    ROWS <= MAX_ROWS
        && AVX2_ROWS <= MAX_ROWS
        && PAD_ROWS.is_multiple_of(ROWS)
        && PAD_ROWS.is_multiple_of(AVX2_ROWS)
);

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

    /// Tokens per tile in these kernels.
    fn tile_rows(self) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self == Int8Kernels::Avx2 {
            return AVX2_ROWS;
        }
        ROWS
    }

    /// Whether 8-bit weights are packed as 16-bit pairs for these kernels (AVX2 has no byte
    /// product that is exact on 8-bit activations).
    fn reads_pairs(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Int8Kernels::Avx2 {
            return true;
        }
        false
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

/// What a range of outputs needs to turn integer sums into floats: Σ q, the weight scale and
/// the bias of each.
#[derive(Clone, Copy)]
struct OutputTerms<'a> {
    sums: &'a [i32],
    scales: &'a [f32],
    bias: &'a [f32],
}

wide! {
    /// y[r] = bias + (acc[r] − zero[r] · Σw) · (sx[r] · scale) per output, for a tile's rows r:
    /// `acc` rows GROUP apart, `y` rows `n` apart. The difference is Σ (x − zero) · w, which
    /// fits 32 bits where its two terms alone may not: wrapping arithmetic gets it exactly.
    fn dequantize_rows(
        acc: &[i32],
        zeros: &[i32],
        sx: &[f32],
        out: OutputTerms<'_>,
        y: &mut [f32],
        n: usize,
    ) {
        let width = out.sums.len();
        for (r, (&zero, &sx)) in zeros.iter().zip(sx).enumerate() {
            let acc = &acc[r * GROUP..][..width];
            let y = &mut y[r * n..][..width];
            let terms = out.sums.iter().zip(out.scales).zip(out.bias);
            for ((y, &a), ((&w, &s), &b)) in y.iter_mut().zip(acc).zip(terms) {
                *y = b + a.wrapping_sub(zero.wrapping_mul(w)) as f32 * (sx * s);
            }
        }
    }
}

/// How finely a layer's weights are quantised, per output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightBits {
    /// −127…127.
    Eight,
    /// −2047…2047: 1/16 of the 8-bit rounding error. With 8-bit activations the 32-bit sums
    /// stay exact up to [`MAX_INPUTS_12`] inputs.
    Twelve,
}

impl WeightBits {
    fn max(self) -> f32 {
        match self {
            WeightBits::Eight => 127.0,
            WeightBits::Twelve => 2047.0,
        }
    }
}

/// 255 · 2047 · 4096 < 2³¹: the most inputs a 12-bit layer sums exactly in 32 bits.
const MAX_INPUTS_12: usize = 4096;

/// Quantised weights in the layout the kernels read, per group of [`GROUP`] outputs.
enum Packed {
    /// Bytes, for `dpbusd`: per 4 inputs, GROUP outputs × 4 (groups × kpad/4 × GROUP × 4).
    Quads(LineAligned<i8>),
    /// 16-bit values, for `madd` and `dpwssd`: per 2 inputs, GROUP outputs × 2 (groups ×
    /// kpad/2 × GROUP × 2). Each 32-bit lane is one output's pair.
    Pairs(LineAligned<i16>),
}

/// A weight matrix [out, inp] quantised per output channel, packed for one kind of kernel.
pub(crate) struct Int8Matrix {
    packed: Packed,
    /// Per output: the weight scale (max |w| / the grid's largest value).
    scales: Vec<f32>,
    /// Per output: Σ q, what each row's zero point adds to the integer sums.
    sums: Vec<i32>,
    /// The f32 weights transposed (inputs × outputs), for outlier inputs.
    columns: Vec<f32>,
    /// Inputs rounded up to a multiple of 4.
    kpad: usize,
    out: usize,
}

impl Int8Matrix {
    /// From a row-major f32 weight [out, inp] (PyTorch's `Linear` layout), on the `bits` grid,
    /// packed for `kernels`: 16-bit pairs for 12-bit weights and for AVX2, byte quads
    /// otherwise.
    pub(crate) fn quantize(
        w: &[f32],
        out: usize,
        inp: usize,
        bits: WeightBits,
        kernels: Int8Kernels,
    ) -> Self {
        assert_eq!(w.len(), out * inp, "weight shape");
        let kpad = inp.div_ceil(4) * 4;
        assert!(
            bits == WeightBits::Eight || kpad <= MAX_INPUTS_12,
            "12-bit weights sum exactly over at most {MAX_INPUTS_12} inputs, not {inp}"
        );
        let pairs = bits == WeightBits::Twelve || kernels.reads_pairs();
        let size = out.div_ceil(GROUP) * kpad * GROUP;
        let mut packed = if pairs {
            Packed::Pairs(LineAligned::zeroed(size))
        } else {
            Packed::Quads(LineAligned::zeroed(size))
        };
        let mut scales = Vec::with_capacity(out);
        let mut sums = Vec::with_capacity(out);
        let mut columns = vec![0f32; out * inp];
        for (o, row) in w.chunks_exact(inp).enumerate() {
            let max = fastmath::max_abs(row);
            let scale = if max > 0.0 { max / bits.max() } else { 1.0 };
            scales.push(scale);
            let (g, lane) = (o / GROUP, o % GROUP);
            let base = g * kpad * GROUP;
            let mut sum = 0i32;
            for (k, &v) in row.iter().enumerate() {
                let q = quantize_value(v, 1.0 / scale, 0.0, -bits.max(), bits.max());
                sum += q;
                columns[k * out + o] = v;
                match &mut packed {
                    Packed::Quads(p) => p[base + (k / 4) * GROUP * 4 + lane * 4 + k % 4] = q as i8,
                    Packed::Pairs(p) => p[base + (k / 2) * GROUP * 2 + lane * 2 + k % 2] = q as i16,
                }
            }
            sums.push(sum);
        }
        Int8Matrix {
            packed,
            scales,
            sums,
            columns,
            kpad,
            out,
        }
    }

    /// y [rows, outputs.len()] = dequantised (x Wᵀ) for the outputs asked for, plus `bias`
    /// (indexed by output).
    pub(crate) fn matmul(
        &self,
        x: &mut Int8Rows,
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
        let kpad = self.kpad;
        if let Packed::Pairs(_) = self.packed {
            x.widen();
        }
        let x = &*x;
        let mut tile = [0i32; MAX_ROWS * GROUP];
        let tile_rows = kernels.tile_rows();
        for g in outputs.start / GROUP..outputs.end.div_ceil(GROUP) {
            let first = (g * GROUP).max(outputs.start);
            let last = ((g + 1) * GROUP).min(outputs.end);
            for r0 in (0..x.rows).step_by(tile_rows) {
                match &self.packed {
                    Packed::Quads(w) => tile_quads(
                        kernels,
                        &x.q[r0 * kpad..][..tile_rows * kpad],
                        kpad,
                        &w[g * kpad * GROUP..][..kpad * GROUP],
                        &mut tile,
                    ),
                    Packed::Pairs(w) => tile_pairs(
                        kernels,
                        &x.wide[r0 * kpad..][..tile_rows * kpad],
                        kpad,
                        &w[g * kpad * GROUP..][..kpad * GROUP],
                        &mut tile,
                    ),
                }
                let rows = r0..(r0 + tile_rows).min(x.rows);
                dequantize_rows(
                    &tile[first - g * GROUP..],
                    &x.zeros[rows.clone()],
                    &x.scales[rows],
                    OutputTerms {
                        sums: &self.sums[first..last],
                        scales: &self.scales[first..last],
                        bias: &bias[first..last],
                    },
                    &mut y[r0 * n + first - outputs.start..],
                    n,
                );
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
/// multiple of [`PAD_ROWS`] and columns to a multiple of 4 with zeros; outlier columns
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
    /// `q` widened to 16 bits for the pair kernels, once per call ([`Int8Rows::widen`]).
    wide: Vec<i16>,
    widened: bool,
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
        self.widened = false;
        // The buffer is reused as it is: each row and the padding are written below.
        self.q
            .resize(rows.div_ceil(PAD_ROWS) * PAD_ROWS * self.kpad, 0);
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

    /// Fills `wide` from `q`, once per quantisation.
    fn widen(&mut self) {
        if !self.widened {
            self.wide.clear();
            self.wide.extend(self.q.iter().map(|&v| v as i16));
            self.widened = true;
        }
    }
}

/// tile[r·GROUP + o] = Σ_k x[r][k] · w[o][k] for the `kernels.tile_rows()` rows at `x` (stride `kpad`) and one
/// group of weights packed as [`Packed::Quads`].
fn tile_quads(
    kernels: Int8Kernels,
    x: &[u8],
    kpad: usize,
    w: &[i8],
    tile: &mut [i32; MAX_ROWS * GROUP],
) {
    assert!(
        x.len() >= kernels.tile_rows() * kpad && w.len() >= kpad * GROUP && kpad.is_multiple_of(4)
    );
    match kernels {
        // AVX2 reads pairs (Int8Kernels::reads_pairs); the scalar loop serves any matrix packed
        // for another CPU.
        Int8Kernels::Scalar => tile_quads_scalar(x, kpad, w, tile),
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::Avx2 => tile_quads_scalar(x, kpad, w, tile),
        // SAFETY (each arm): detect()/available() chose the kernel from the CPU's features; the
        // slices hold the tile's rows of kpad bytes and kpad/4 quads of GROUP × 4 bytes (asserted).
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::AvxVnni => unsafe { x86::quads_avxvnni(x.as_ptr(), kpad, w.as_ptr(), tile) },
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::Avx512Vnni => unsafe {
            x86::quads_avx512vnni(x.as_ptr(), kpad, w.as_ptr(), tile)
        },
    }
}

fn tile_quads_scalar(x: &[u8], kpad: usize, w: &[i8], tile: &mut [i32; MAX_ROWS * GROUP]) {
    tile.fill(0);
    for q in 0..kpad / 4 {
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

/// As [`tile_quads`], for activations widened to 16 bits and weights packed as
/// [`Packed::Pairs`].
fn tile_pairs(
    kernels: Int8Kernels,
    x: &[i16],
    kpad: usize,
    w: &[i16],
    tile: &mut [i32; MAX_ROWS * GROUP],
) {
    assert!(
        x.len() >= kernels.tile_rows() * kpad && w.len() >= kpad * GROUP && kpad.is_multiple_of(2)
    );
    match kernels {
        Int8Kernels::Scalar => tile_pairs_scalar(x, kpad, w, tile),
        // SAFETY (each arm): as in tile_quads, with kpad/2 pairs of GROUP × 2 values.
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::Avx2 => unsafe {
            x86::pairs_avx2::<AVX2_ROWS>(x.as_ptr(), kpad, w.as_ptr(), tile)
        },
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::AvxVnni => unsafe {
            x86::pairs_avxvnni::<ROWS>(x.as_ptr(), kpad, w.as_ptr(), tile)
        },
        #[cfg(target_arch = "x86_64")]
        Int8Kernels::Avx512Vnni => unsafe {
            x86::pairs_avx512vnni(x.as_ptr(), kpad, w.as_ptr(), tile)
        },
    }
}

fn tile_pairs_scalar(x: &[i16], kpad: usize, w: &[i16], tile: &mut [i32; MAX_ROWS * GROUP]) {
    tile.fill(0);
    for p in 0..kpad / 2 {
        let wp = &w[p * GROUP * 2..][..GROUP * 2];
        for r in 0..ROWS {
            let xr = &x[r * kpad + p * 2..][..2];
            let tr = &mut tile[r * GROUP..][..GROUP];
            for (t, wo) in tr.iter_mut().zip(wp.chunks_exact(2)) {
                *t += xr[0] as i32 * wo[0] as i32 + xr[1] as i32 * wo[1] as i32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{GROUP, MAX_ROWS, ROWS};
    use std::arch::x86_64::*;

    /// The 4 input bytes of row `r` at input quad `q`, for every 32-bit lane.
    #[inline(always)]
    unsafe fn quad(x: *const u8, kpad: usize, r: usize, q: usize) -> i32 {
        std::ptr::read_unaligned(x.add(r * kpad + q * 4) as *const i32)
    }

    /// The 2 16-bit inputs of row `r` at input pair `p`, for every 32-bit lane.
    #[inline(always)]
    unsafe fn pair(x: *const i16, kpad: usize, r: usize, p: usize) -> i32 {
        std::ptr::read_unaligned(x.add(r * kpad + p * 2) as *const i32)
    }

    /// Inputs per pass of the 256-bit pair kernels.
    const KC: usize = 512;

    /// A pair kernel on 256-bit registers, 16 outputs (two registers) × R rows at a time,
    /// compiled once per way of adding 16-bit pair products into 32-bit sums.
    macro_rules! pairs_ymm {
        ($(#[$doc:meta])* $name:ident, $features:literal, |$acc:ident, $x:ident, $w:ident| $add:expr) => {
            $(#[$doc])*
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name<const R: usize>(
                x: *const i16,
                kpad: usize,
                w: *const i16,
                tile: &mut [i32; MAX_ROWS * GROUP],
            ) {
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn add($acc: __m256i, $x: __m256i, $w: __m256i) -> __m256i {
                    $add
                }
                // Inputs in passes of KC: the tile's activations for one pass (R × KC × 2
                // bytes) stay in L1 while each part of the group's weights streams past them.
                for k0 in (0..kpad).step_by(KC) {
                    for part in 0..GROUP / 16 {
                        let out = tile.as_mut_ptr().add(part * 16);
                        let mut acc = [[_mm256_setzero_si256(); 2]; R];
                        if k0 > 0 {
                            for (r, acc) in acc.iter_mut().enumerate() {
                                let o = out.add(r * GROUP);
                                acc[0] = _mm256_loadu_si256(o as *const __m256i);
                                acc[1] = _mm256_loadu_si256(o.add(8) as *const __m256i);
                            }
                        }
                        for p in k0 / 2..(k0 + KC).min(kpad) / 2 {
                            let wp = w.add(p * GROUP * 2 + part * 32);
                            let w0 = _mm256_loadu_si256(wp as *const __m256i);
                            let w1 = _mm256_loadu_si256(wp.add(16) as *const __m256i);
                            for (r, acc) in acc.iter_mut().enumerate() {
                                let xb = _mm256_set1_epi32(pair(x, kpad, r, p));
                                acc[0] = add(acc[0], xb, w0);
                                acc[1] = add(acc[1], xb, w1);
                            }
                        }
                        for (r, acc) in acc.iter().enumerate() {
                            let o = out.add(r * GROUP);
                            _mm256_storeu_si256(o as *mut __m256i, acc[0]);
                            _mm256_storeu_si256(o.add(8) as *mut __m256i, acc[1]);
                        }
                    }
                }
            }
        };
    }

    pairs_ymm!(
        /// `madd` then `add`: 2 multiply-port instructions per 32 products, nothing else in
        /// the inner loop but loads.
        pairs_avx2,
        "avx2",
        |acc, x, w| _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
    );

    pairs_ymm!(
        /// AVX-VNNI's `dpwssd`.
        pairs_avxvnni,
        "avx2,avxvnni",
        |acc, x, w| _mm256_dpwssd_avx_epi32(acc, x, w)
    );

    /// AVX-512 VNNI's `dpwssd` on 512-bit registers: the whole group per row at once.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn pairs_avx512vnni(
        x: *const i16,
        kpad: usize,
        w: *const i16,
        tile: &mut [i32; MAX_ROWS * GROUP],
    ) {
        let mut acc = [[_mm512_setzero_si512(); 4]; ROWS];
        for p in 0..kpad / 2 {
            let wp = w.add(p * GROUP * 2);
            let ws = [
                _mm512_loadu_si512(wp as *const __m512i),
                _mm512_loadu_si512(wp.add(32) as *const __m512i),
                _mm512_loadu_si512(wp.add(64) as *const __m512i),
                _mm512_loadu_si512(wp.add(96) as *const __m512i),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_epi32(pair(x, kpad, r, p));
                for (a, w) in acc.iter_mut().zip(ws) {
                    *a = _mm512_dpwssd_epi32(*a, xb, w);
                }
            }
        }
        store_512(&acc, tile);
    }

    #[target_feature(enable = "avx2,avxvnni")]
    pub(super) unsafe fn quads_avxvnni(
        x: *const u8,
        kpad: usize,
        w: *const i8,
        tile: &mut [i32; MAX_ROWS * GROUP],
    ) {
        for part in 0..GROUP / 16 {
            let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
            for q in 0..kpad / 4 {
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
    pub(super) unsafe fn quads_avx512vnni(
        x: *const u8,
        kpad: usize,
        w: *const i8,
        tile: &mut [i32; MAX_ROWS * GROUP],
    ) {
        let mut acc = [[_mm512_setzero_si512(); 4]; ROWS];
        for q in 0..kpad / 4 {
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
        store_512(&acc, tile);
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store_512(acc: &[[__m512i; 4]; ROWS], tile: &mut [i32; MAX_ROWS * GROUP]) {
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

    /// Shapes that leave partial tiles: rows not a multiple of 4 or 6, outputs not of 64, inputs
    /// not of 4 or of the AVX2 kernel's passes (512).
    const SHAPES: [(usize, usize, usize); 4] =
        [(7, 70, 38), (4, 64, 384), (13, 130, 101), (5, 70, 1100)];

    impl Int8Matrix {
        /// The quantised weight of output `o`, input `k`, from either layout.
        fn weight(&self, o: usize, k: usize) -> i64 {
            let base = (o / GROUP) * self.kpad * GROUP;
            match &self.packed {
                Packed::Quads(p) => p[base + (k / 4) * GROUP * 4 + (o % GROUP) * 4 + k % 4] as i64,
                Packed::Pairs(p) => p[base + (k / 2) * GROUP * 2 + (o % GROUP) * 2 + k % 2] as i64,
            }
        }
    }

    #[test]
    fn every_kernel_computes_the_exact_integer_products() {
        let bits = [
            WeightBits::Eight,
            WeightBits::Twelve,
            WeightBits::Twelve,
            WeightBits::Eight,
        ];
        for ((rows, out, inp), bits) in SHAPES.into_iter().zip(bits) {
            let w = noise(out * inp, 1);
            let mut x = noise(rows * inp, 2);
            // Two outlier inputs, each in one row only.
            x[5] = 9.0;
            x[(rows - 1) * inp + 17] = -7.5;
            let mut xq = Int8Rows::default();
            xq.quantize(&x, rows, inp);
            assert_eq!(xq.outliers, [5, 17]);
            let bias = noise(out, 3);
            let mut first: Option<Vec<f32>> = None;
            for kernels in Int8Kernels::available() {
                let m = Int8Matrix::quantize(&w, out, inp, bits, kernels);
                // The reference: integer sums of the quantised values, in i64, dequantised in
                // f64.
                let mut want = vec![0f64; rows * out];
                for r in 0..rows {
                    for o in 0..out {
                        let acc: i64 = (0..inp)
                            .map(|k| {
                                (xq.q[r * xq.kpad + k] as i64 - xq.zeros[r] as i64) * m.weight(o, k)
                            })
                            .sum();
                        // Outlier inputs sit at the zero point above and are added in f32.
                        let outliers: f64 = xq
                            .outliers
                            .iter()
                            .map(|&k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                            .sum();
                        want[r * out + o] = acc as f64 * xq.scales[r] as f64 * m.scales[o] as f64
                            + outliers
                            + bias[o] as f64;
                    }
                }
                let mut y = Vec::new();
                m.matmul(&mut xq, 0..out, &bias, &mut y, kernels);
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()),
                        "{kernels:?} {rows}x{out}x{inp}, {bits:?}, at {i}: {a} vs {b}"
                    );
                }
                // Every kernel, in either layout, gives the same bits.
                match &first {
                    None => first = Some(y.clone()),
                    Some(f) => {
                        assert_eq!(f, &y, "{kernels:?} {bits:?} differs from the scalar loop")
                    }
                }
                // A range of outputs that starts and ends inside groups.
                let range = 3..out - 5;
                let mut part = Vec::new();
                m.matmul(&mut xq, range.clone(), &bias, &mut part, kernels);
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
    fn twelve_bit_sums_stay_exact_at_the_widest_input() {
        // The extreme: every activation at 255 with zero point 0 (or 0 with zero point 255)
        // against weights at ±2047, over MAX_INPUTS_12 inputs.
        let (rows, out, inp) = (2, 64, MAX_INPUTS_12);
        let w: Vec<f32> = (0..out * inp)
            .map(|i| if (i / inp) % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let mut x = vec![1.0f32; inp];
        x.extend(vec![-1.0f32; inp]);
        let mut xq = Int8Rows::default();
        xq.quantize(&x, rows, inp);
        for kernels in Int8Kernels::available() {
            let m = Int8Matrix::quantize(&w, out, inp, WeightBits::Twelve, kernels);
            let mut y = Vec::new();
            m.matmul(&mut xq, 0..out, &vec![0.0; out], &mut y, kernels);
            for r in 0..rows {
                for o in 0..out {
                    let want = (inp as f32) * if (r + o) % 2 == 0 { 1.0 } else { -1.0 };
                    let got = y[r * out + o];
                    assert!(
                        (got - want).abs() < 1e-3 * want.abs(),
                        "{kernels:?} row {r} output {o}: {got}"
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
        let m = Int8Matrix::quantize(&w, out, inp, WeightBits::Eight, kernels);
        let mut xq = Int8Rows::default();
        xq.quantize(&x, rows, inp);
        let mut y = Vec::new();
        m.matmul(&mut xq, 0..out, &vec![0.0; out], &mut y, kernels);
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

    /// Relative RMS error of x Wᵀ with weights on the `bits` grid, against f64, with
    /// activations exactly on the 8-bit grid so that only the weights' rounding counts.
    fn weight_error(w: &[f32], out: usize, inp: usize, bits: WeightBits) -> f64 {
        let rows = 4;
        // 0…255 times 1/255: quantised without loss (scale 1/255, zero point 0).
        let x: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 37) % 256) as f32 / 255.0)
            .collect();
        let kernels = Int8Kernels::detect();
        let m = Int8Matrix::quantize(w, out, inp, bits, kernels);
        let mut xq = Int8Rows::default();
        xq.quantize(&x, rows, inp);
        let mut y = Vec::new();
        m.matmul(&mut xq, 0..out, &vec![0.0; out], &mut y, kernels);
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
    fn twelve_bit_weights_cut_the_rounding_error() {
        // Rows whose maximum is ~8× their RMS, as in MPNet's feed-forward output layers.
        let (out, inp) = (64, 512);
        let mut w = noise(out * inp, 6);
        for o in 0..out {
            w[o * inp + (o * 7) % inp] = 5.0;
        }
        let eight = weight_error(&w, out, inp, WeightBits::Eight);
        let twelve = weight_error(&w, out, inp, WeightBits::Twelve);
        assert!(eight > 1e-3, "8-bit weights: {eight}");
        // The 12-bit step is 127/2047 ≈ 1/16 of the 8-bit one.
        assert!(twelve < eight / 10.0, "8-bit {eight}, 12-bit {twelve}");
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
