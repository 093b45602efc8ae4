//! The kernels of a generated token's step: matrix–vector products on GGML-quantised weights
//! and one query's attention over the KV cache.
//!
//! A decode step reads every weight once for a handful of multiply–adds, so its speed is the
//! speed of reading the weights: they stay in the file's 4-, 6- or 8-bit blocks, and the
//! activation vector is quantised to 8 bits per block of 32 (llama.cpp's Q8_1: values, scale,
//! scaled sum) for the 32-weight formats, and per block of 256 with sums of each 16 (its Q8_K)
//! for the K-quants, so that each block's dot product is integer arithmetic. The same kernels,
//! over a chunk of tokens at a time, process the prompts of models too large to hold in f32
//! ([`QMatrix::matmul`]). candle has these kernels too, but
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

/// Weights per block of the 32-weight formats and of the quantised activations.
pub(crate) const BLOCK: usize = 32;
/// Tokens per pass over a row in [`QMatrix::matmul`] (Qwen2.5-1.5B's prompts on 2 cores: 4
/// tokens 54–57 tokens/s, 8 tokens 58–65, 16 tokens 41–47).
const TILE: usize = 8;
/// Weights per super-block of the K-quants.
pub(crate) const SUPER: usize = 256;
/// Super-blocks per pass of a tile over a range of rows in [`QMatrix::matmul`] with the AVX2
/// kernels: the tile's activations for the pass (8 tokens × 2,048 bytes) stay in a 32 KB L1
/// cache, which a whole row of Qwen2.5-1.5B's feed-forward output (8,960 inputs, 70 KB for 8
/// tokens) did not. Its prompts held to AVX2 on an AMD EPYC Zen 4: 59–60 → 68–70 tokens/s.
/// The VNNI kernels, with fewer instructions per product, gained nothing from passes (8 or 16
/// blocks) and keep whole rows.
const PASS_BLOCKS: usize = 8;

/// A K-quant kernel: a row's super-blocks (a range of them) · one activation vector, added to
/// its running sums.
#[cfg(target_arch = "x86_64")]
type RowKernel = unsafe fn(*const u8, std::ops::Range<usize>, &Q8Vector, &mut avx2::KSums);

/// A K-quant kernel: a row's super-blocks · a tile of activations, added to its running sums.
#[cfg(target_arch = "x86_64")]
type TileKernel = unsafe fn(*const u8, std::ops::Range<usize>, &Q8Tile, &mut avx2::KTileSums);

/// How a matrix's rows are stored: GGML's block layouts, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Per block: f16 scale d, f16 minimum m, 16 bytes of nibbles; weight = d·q + m, with
    /// byte j holding weight j (low nibble) and weight j + 16 (high nibble).
    Q4_1,
    /// Per block: f16 scale d, 32 signed bytes; weight = d·q.
    Q8_0,
    /// Per 256 weights: f16 d, f16 dmin, 12 bytes packing a 6-bit scale and minimum for each
    /// of 8 sub-blocks of 32, then 128 bytes of nibbles; weight = d·scale·q − dmin·min. Bytes
    /// 32c … 32c + 31 hold sub-block 2c in their low nibbles and 2c + 1 in their high ones.
    Q4K,
    /// Per 256 weights: 128 bytes of low nibbles, 64 of 2-bit high parts, 16 signed scales (one
    /// per 16 weights), f16 d; weight = d·scale·(q − 32).
    Q6K,
}

impl Format {
    const fn block_bytes(self) -> usize {
        match self {
            Format::Q4_1 => 20,
            Format::Q8_0 => 34,
            Format::Q4K => 144,
            Format::Q6K => 210,
        }
    }

    /// Weights per block.
    const fn block_len(self) -> usize {
        match self {
            Format::Q4_1 | Format::Q8_0 => BLOCK,
            Format::Q4K | Format::Q6K => SUPER,
        }
    }
}

/// Which code computes the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2, with AVX-VNNI's `dpwssd` in the K-quant kernels.
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// AVX2, with AVX-512 VNNI's `dpwssd` (on 256-bit vectors) in the K-quant kernels.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Kernels {
    /// The fastest this CPU runs, within `FERRET_SIMD` ([`crate::fastmath::cap`]).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::fastmath::{cap, Cap};
            let all = Self::available();
            let best = |k: Kernels, needs: Cap| all.contains(&k) && cap() >= needs;
            if best(Kernels::Avx512Vnni, Cap::Avx512) {
                return Kernels::Avx512Vnni;
            }
            if best(Kernels::AvxVnni, Cap::AvxVnni) {
                return Kernels::AvxVnni;
            }
            if best(Kernels::Avx2, Cap::Avx2) {
                return Kernels::Avx2;
            }
        }
        Kernels::Scalar
    }

    /// Every kernel set this CPU can run, whatever `FERRET_SIMD` says (for tests).
    pub(crate) fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut all = vec![Kernels::Scalar];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            all.push(Kernels::Avx2);
            if is_x86_feature_detected!("avxvnni") {
                all.push(Kernels::AvxVnni);
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
            {
                all.push(Kernels::Avx512Vnni);
            }
        }
        all
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
    /// A matrix from GGML block bytes (`cols` a multiple of the format's block).
    pub(crate) fn from_blocks(
        format: Format,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, String> {
        let n = format.block_len();
        if !cols.is_multiple_of(n) || bytes.len() != rows * cols / n * format.block_bytes() {
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

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.bytes[r * n..(r + 1) * n]
    }

    /// Row `r` as f32 (exactly the file's weights).
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let bb = self.format.block_bytes();
        for (block, y) in self
            .row(r)
            .chunks_exact(bb)
            .zip(out.chunks_exact_mut(self.format.block_len()))
        {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            match self.format {
                Format::Q4K => {
                    let dmin = f16::from_le_bytes([block[2], block[3]]).to_f32();
                    let (sc, m) = q4k_scales(&block[4..16]);
                    for (c, qs) in block[16..].chunks_exact(32).enumerate() {
                        for (l, &q) in qs.iter().enumerate() {
                            y[64 * c + l] =
                                d * sc[2 * c] as f32 * (q & 15) as f32 - dmin * m[2 * c] as f32;
                            y[64 * c + 32 + l] = d * sc[2 * c + 1] as f32 * (q >> 4) as f32
                                - dmin * m[2 * c + 1] as f32;
                        }
                    }
                }
                Format::Q6K => {
                    let d = f16::from_le_bytes([block[208], block[209]]).to_f32();
                    for (i, y) in y.iter_mut().enumerate() {
                        let (q, scale) = q6k_weight(block, i);
                        *y = d * scale as f32 * q as f32;
                    }
                }
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
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(r, row);
        }
        out
    }

    /// Y = X Wᵀ for a chunk of tokens (`xs`, one quantised vector each): row t of Y is
    /// `y[t * width + offset ..][..rows]`, added to when `accumulate`. Each thread takes a range
    /// of rows small enough to stay in its L2 cache and runs every token through it, [`TILE`]
    /// tokens at a time, so the weights are read from memory once per chunk and each row's blocks
    /// are unpacked once per tile.
    pub(crate) fn matmul(
        &self,
        xs: &[Q8Vector],
        y: &mut [f32],
        width: usize,
        offset: usize,
        accumulate: bool,
        kernels: Kernels,
    ) {
        let t = xs.len();
        assert!(offset + self.rows <= width && y.len() >= t * width);
        for x in xs {
            self.check_width(x);
        }
        let cached = (256 << 10) / self.row_bytes();
        let rows_per_task = (self.rows / (4 * rayon::current_num_threads()))
            .min(cached)
            .max(1);
        // Each range's results, token-major (tokens × its rows), then copied into Y's rows.
        let tasks = self.rows.div_ceil(rows_per_task);
        #[cfg(target_arch = "x86_64")]
        let tile_kernel = self.k_quant_kernels(kernels).map(|(_, tile)| tile);
        #[cfg(target_arch = "x86_64")]
        let interleaved: Vec<Q8Tile> = match tile_kernel {
            Some(_) => (xs.par_chunks_exact(TILE))
                .map(|x| Q8Tile::new(x, self.format))
                .collect(),
            None => Vec::new(),
        };
        let parts: Vec<(usize, Vec<f32>)> = (0..tasks)
            .into_par_iter()
            .map(|c| {
                let first = c * rows_per_task;
                let n = rows_per_task.min(self.rows - first);
                let mut out = vec![0f32; n * t];
                // A tile's activations (12 KB for 1,536 inputs) stay in L1 while the range's
                // rows stream past from L2: far less traffic than the other way round.
                let mut tiles = xs.chunks_exact(TILE);
                for (i, x) in (&mut tiles).enumerate() {
                    let mut put = |r: usize, v: [f32; TILE]| {
                        for (j, v) in v.into_iter().enumerate() {
                            out[(TILE * i + j) * n + r - first] = v;
                        }
                    };
                    #[cfg(target_arch = "x86_64")]
                    if let Some(kernel) = tile_kernel {
                        self.k_quant_tile(kernel, kernels, first..first + n, &interleaved[i], put);
                        continue;
                    }
                    for r in first..first + n {
                        put(r, std::array::from_fn(|j| self.dot(r, &x[j], kernels)));
                    }
                }
                let done = t / TILE * TILE;
                for (i, x) in tiles.remainder().iter().enumerate() {
                    for r in 0..n {
                        out[(done + i) * n + r] = self.dot(first + r, x, kernels);
                    }
                }
                (first, out)
            })
            .collect();
        for (first, out) in parts {
            let n = out.len() / t;
            for (row, got) in y.chunks_exact_mut(width).zip(out.chunks_exact(n)) {
                let row = &mut row[offset + first..offset + first + n];
                if accumulate {
                    row.iter_mut().zip(got).for_each(|(v, g)| *v += g);
                } else {
                    row.copy_from_slice(got);
                }
            }
        }
    }

    fn check_width(&self, x: &Q8Vector) {
        assert_eq!(x.q.len(), self.cols, "matrix–vector product: widths differ");
        if self.format.block_len() == SUPER {
            assert_eq!(x.kq.len(), self.cols, "activations not quantised per 256");
        }
    }

    /// y = W x, rows spread over the rayon pool. One row after the other, so that each thread
    /// reads its weights as one sequential stream: taking four rows at a time (interleaved
    /// streams) made Qwen2.5-1.5B's steps three times slower on an AMD EPYC (Zen 4) and
    /// SmolLM2's 1.5–2× slower, the loads waiting on memory.
    pub(crate) fn matvec(&self, x: &Q8Vector, y: &mut [f32], kernels: Kernels) {
        self.check_width(x);
        assert_eq!(y.len(), self.rows, "matrix–vector product: heights differ");
        // Enough pieces to balance the threads, each large enough to outweigh handing it out.
        let rows_per_task = (self.rows / (8 * rayon::current_num_threads())).max(16);
        y.par_chunks_mut(rows_per_task)
            .enumerate()
            .for_each(|(c, out)| {
                let first = c * rows_per_task;
                for (i, y) in out.iter_mut().enumerate() {
                    *y = self.dot(first + i, x, kernels);
                }
            });
    }

    /// Each row of `rows` · an interleaved tile of tokens' activations, handed to `put`: the
    /// K-quant tile kernels of [`QMatrix::k_quant_kernels`], which unpack each block once for
    /// the tile. The AVX2 kernels walk wide rows in passes of [`PASS_BLOCKS`] super-blocks,
    /// each row's sums carried from pass to pass (the same operations in the same order as one
    /// pass: the same bits); the others take whole rows.
    #[cfg(target_arch = "x86_64")]
    fn k_quant_tile(
        &self,
        kernel: TileKernel,
        kernels: Kernels,
        rows: std::ops::Range<usize>,
        tile: &Q8Tile,
        mut put: impl FnMut(usize, [f32; TILE]),
    ) {
        assert_eq!(
            tile.kq.len(),
            TILE * self.cols,
            "tile and matrix widths differ"
        );
        let blocks = self.cols / SUPER;
        let pass = if kernels == Kernels::Avx2 {
            PASS_BLOCKS
        } else {
            blocks.max(1)
        };
        let mut sums = vec![avx2::KTileSums::ZERO; rows.len()];
        for first in (0..blocks).step_by(pass) {
            let pass = first..(first + pass).min(blocks);
            for (r, sums) in rows.clone().zip(&mut sums) {
                // SAFETY: k_quant_kernels hands out a kernel only for a set the CPU has; the
                // row holds cols / 256 super-blocks (`pass` lies inside them) and the tile as
                // many (asserted above).
                unsafe { kernel(self.row(r).as_ptr(), pass.clone(), tile, sums) }
            }
        }
        for (r, sums) in rows.zip(&sums) {
            // SAFETY: the CPU has AVX2 (a K-quant SIMD kernel ran).
            put(r, unsafe { sums.finish() });
        }
    }

    /// The SIMD K-quant kernels for `kernels` and this matrix's format, one vector and a
    /// [`Q8Tile`]; `None` for other formats and for the scalar kernels.
    #[cfg(target_arch = "x86_64")]
    fn k_quant_kernels(&self, kernels: Kernels) -> Option<(RowKernel, TileKernel)> {
        Some(match (kernels, self.format) {
            (Kernels::Avx2, Format::Q4K) => (k_avx2::dot_q4k, k_avx2::dot_q4k_tile),
            (Kernels::Avx2, Format::Q6K) => (k_avx2::dot_q6k, k_avx2::dot_q6k_tile),
            (Kernels::AvxVnni, Format::Q4K) => (k_avx_vnni::dot_q4k, k_avx_vnni::dot_q4k_tile),
            (Kernels::AvxVnni, Format::Q6K) => (k_avx_vnni::dot_q6k, k_avx_vnni::dot_q6k_tile),
            (Kernels::Avx512Vnni, Format::Q4K) => {
                (k_avx512_vnni::dot_q4k, k_avx512_vnni::dot_q4k_tile)
            }
            (Kernels::Avx512Vnni, Format::Q6K) => {
                (k_avx512_vnni::dot_q6k, k_avx512_vnni::dot_q6k_tile)
            }
            _ => return None,
        })
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.format.block_len() * self.format.block_bytes()
    }

    /// Row `r` · x.
    pub(crate) fn dot(&self, r: usize, x: &Q8Vector, kernels: Kernels) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if let Some((kernel, _)) = self.k_quant_kernels(kernels) {
            let mut sums = avx2::KSums::default();
            // SAFETY: k_quant_kernels hands out a kernel only for a set the CPU has; the row holds
            // cols / 256 super-blocks and x as many blocks quantised per 256 (checked by the
            // callers' widths).
            unsafe { kernel(self.row(r).as_ptr(), 0..self.cols / SUPER, x, &mut sums) };
            return sums.finish();
        }
        let row = self.row(r);
        match kernels {
            Kernels::Scalar => match self.format {
                Format::Q4_1 => dot_q4_1_scalar(row, x),
                Format::Q8_0 => dot_q8_0_scalar(row, x),
                Format::Q4K => dot_q4k_scalar(row, x),
                Format::Q6K => dot_q6k_scalar(row, x),
            },
            // SAFETY: these kernels are only chosen where the CPU has AVX2, FMA and F16C; the
            // row holds cols / 32 blocks and x as many blocks of activations (asserted by
            // the caller's widths).
            #[cfg(target_arch = "x86_64")]
            _ => unsafe {
                match self.format {
                    Format::Q4_1 => avx2::dot_q4_1(row, x),
                    Format::Q8_0 => avx2::dot_q8_0(row, x),
                    Format::Q4K | Format::Q6K => unreachable!("taken by k_quant_kernels"),
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
        Kernels::Avx2 | Kernels::AvxVnni | Kernels::Avx512Vnni if hd.is_multiple_of(8) => unsafe {
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
/// (largest magnitude / 127) and `s` = d · Σq (what Q4_1's minimum multiplies); and, when its
/// length is a multiple of 256, quantised again per 256 for the K-quants: `kq`, `kd`, and the
/// sums of each 16 and each 32 values `ksums16`, `ksums32` (what the rows' offsets and
/// minimums multiply; at most 32 · 127 in magnitude).
#[derive(Default)]
pub(crate) struct Q8Vector {
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    kq: Vec<i8>,
    kd: Vec<f32>,
    ksums16: Vec<i16>,
    ksums32: Vec<i16>,
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
                let q = nearest(v * inv);
                sum += q as i32;
                self.q.push(q);
            }
            self.d.push(d);
            self.s.push(d * sum as f32);
        }
        self.kq.clear();
        self.kd.clear();
        self.ksums16.clear();
        self.ksums32.clear();
        if !x.len().is_multiple_of(SUPER) {
            return;
        }
        for block in x.chunks_exact(SUPER) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            for sixteen in block.chunks_exact(16) {
                let mut sum = 0i16;
                for v in sixteen {
                    let q = nearest(v * inv);
                    sum += q as i16;
                    self.kq.push(q);
                }
                self.ksums16.push(sum);
            }
            let n = self.ksums16.len();
            for pair in self.ksums16[n - 16..].chunks_exact(2) {
                self.ksums32.push(pair[0] + pair[1]);
            }
            self.kd.push(d);
        }
    }

    /// Quantises each `cols`-wide row of `x` into `out` (grown as needed; buffers reused).
    pub(crate) fn quantize_rows(x: &[f32], cols: usize, out: &mut Vec<Q8Vector>) {
        let rows = x.len() / cols;
        if out.len() < rows {
            out.resize_with(rows, Q8Vector::default);
        }
        out[..rows]
            .par_iter_mut()
            .zip(x.par_chunks_exact(cols))
            .for_each(|(q, x)| q.quantize(x));
    }
}

/// [`TILE`] tokens' activations quantised per 256 (from their [`Q8Vector`]s), laid out for the
/// K-quant tile kernels: each 8 consecutive levels of the tokens side by side (`kq`:
/// cols / 8 × tokens × 8), so that a 32-byte load holds the same 8 levels of 4 tokens. Per
/// super-block, the tokens' scales and, for each pair of sub-blocks (of 32 levels for Q4_K's
/// minimums, of 16 for Q6_K's offsets), the tokens' sums of both as pairs of 16-bit lanes, in
/// the order the kernels' sums come out: [`Self::ORDER`].
#[cfg(target_arch = "x86_64")]
pub(crate) struct Q8Tile {
    kq: Vec<i8>,
    kd: Vec<f32>,
    sums: Vec<i16>,
}

#[cfg(target_arch = "x86_64")]
impl Q8Tile {
    /// The token in each lane of the kernels' per-token sums (`hadd` of tokens 0 … 3 with
    /// tokens 4 … 7 interleaves them by 128-bit halves).
    const ORDER: [usize; TILE] = [0, 1, 4, 5, 2, 3, 6, 7];

    fn new(xs: &[Q8Vector], format: Format) -> Self {
        assert_eq!(xs.len(), TILE);
        let cols = xs[0].kq.len();
        assert!(xs.iter().all(|x| x.kq.len() == cols), "tile widths differ");
        let mut kq = Vec::with_capacity(TILE * cols);
        for k in (0..cols).step_by(8) {
            for x in xs {
                kq.extend_from_slice(&x.kq[k..k + 8]);
            }
        }
        let blocks = cols / SUPER;
        let mut kd = Vec::with_capacity(TILE * blocks);
        let per_block = if format == Format::Q6K { 16 } else { 8 };
        let of: Vec<&[i16]> = (xs.iter())
            .map(|x| match format {
                Format::Q6K => &x.ksums16[..],
                _ => &x.ksums32[..],
            })
            .collect();
        let mut sums = Vec::with_capacity(TILE * per_block * blocks);
        for b in 0..blocks {
            kd.extend(Self::ORDER.map(|t| xs[t].kd[b]));
            for pair in 0..per_block / 2 {
                for t in Self::ORDER {
                    let s = &of[t][per_block * b + 2 * pair..];
                    sums.extend_from_slice(&s[..2]);
                }
            }
        }
        Q8Tile { kq, kd, sums }
    }
}

/// `x` (within ±127.5) rounded to the nearest integer, ties to even, by the float adder (as
/// llama.cpp does): `round` is a library call on baseline x86-64 and took a third of the time of
/// quantising a prompt's activations.
fn nearest(x: f32) -> i8 {
    ((x + 12_582_912.0).to_bits() as i32 - 0x4B40_0000) as i8
}

/// The 6-bit scales and minimums of a Q4_K super-block's 8 sub-blocks, from their 12 bytes.
fn q4k_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        (sc[j], m[j]) = if j < 4 {
            (s[j] & 63, s[j + 4] & 63)
        } else {
            (
                (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4),
                (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
            )
        };
    }
    (sc, m)
}

/// Weight `i` of a Q6_K super-block as (q − 32, its sub-block's scale). Weight 128h + 32k + l
/// takes its low four bits from byte 64h + 32(k mod 2) + l of the nibbles (low half for k < 2)
/// and its high two from bits 2k … 2k + 1 of byte 32h + l of the high parts.
fn q6k_weight(block: &[u8], i: usize) -> (i32, i8) {
    let (h, k, l) = (i / 128, i % 128 / 32, i % 32);
    let low = block[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2)) & 15;
    let high = (block[128 + 32 * h + l] >> (2 * k)) & 3;
    ((low | high << 4) as i32 - 32, block[192 + i / 16] as i8)
}

fn dot_q4k_scalar(row: &[u8], x: &Q8Vector) -> f32 {
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(Format::Q4K.block_bytes()).enumerate() {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        let dmin = f16::from_le_bytes([block[2], block[3]]).to_f32();
        let (sc, m) = q4k_scales(&block[4..16]);
        let a = &x.kq[b * SUPER..(b + 1) * SUPER];
        let sums = &x.ksums32[b * 8..(b + 1) * 8];
        let mut products = 0i32;
        for (c, qs) in block[16..].chunks_exact(32).enumerate() {
            let (mut lo, mut hi) = (0i32, 0i32);
            for (l, &q) in qs.iter().enumerate() {
                lo += (q & 15) as i32 * a[64 * c + l] as i32;
                hi += (q >> 4) as i32 * a[64 * c + 32 + l] as i32;
            }
            products += sc[2 * c] as i32 * lo + sc[2 * c + 1] as i32 * hi;
        }
        let mins: i32 = m.iter().zip(sums).map(|(&m, &s)| m as i32 * s as i32).sum();
        let xd = x.kd[b];
        sum += d * xd * products as f32 - dmin * xd * mins as f32;
    }
    sum
}

fn dot_q6k_scalar(row: &[u8], x: &Q8Vector) -> f32 {
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(Format::Q6K.block_bytes()).enumerate() {
        let d = f16::from_le_bytes([block[208], block[209]]).to_f32();
        let a = &x.kq[b * SUPER..(b + 1) * SUPER];
        let products: i32 = (0..SUPER)
            .map(|i| {
                let (q, scale) = q6k_weight(block, i);
                scale as i32 * q * a[i] as i32
            })
            .sum();
        sum += d * x.kd[b] * products as f32;
    }
    sum
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

/// The K-quant kernels, compiled once per way of adding 16-bit pair products, scaled, into
/// 32-bit sums: `madd` then `add` on AVX2, one `dpwssd` where the CPU has VNNI.
#[cfg(target_arch = "x86_64")]
macro_rules! k_quant_kernels {
    (
        $(#[$doc:meta])*
        $module:ident,
        $features:literal,
        |$acc:ident, $pairs:ident, $scale:ident| $add:expr
    ) => {
        $(#[$doc])*
        mod $module {
        use super::avx2::{halves, hsum4, hsum8, lane, q4k_scales_mins, KSums, KTileSums};
        use super::{Format, Q8Tile, Q8Vector, SUPER};
        use half::f16;
        use std::arch::x86_64::*;

        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn scaled_add($acc: __m256i, $pairs: __m256i, $scale: __m256i) -> __m256i {
            $add
        }

        /// The integer parts of a Q4_K super-block at `p`: its two f16 scales, the sub-block
        /// scales copied to both 128-bit halves (16-bit lanes 0 … 7) and the minimums
        /// (16-bit lanes 8 … 15 of the other vector).
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q4k_header(p: *const u8) -> (f32, f32, __m256i, __m256i) {
            let (d, dmin) = halves(p);
            let sm = _mm256_cvtepu8_epi16(q4k_scales_mins(p.add(4)));
            (d, dmin, _mm256_permute2x128_si256(sm, sm, 0x00), sm)
        }

        /// A row's Q4_K super-blocks `blocks` · one activation vector, added to `sums`. Per
        /// super-block the products are summed in integers with each sub-block's scale applied
        /// by `madd`, and so are the minimums times the activations' sums per 32; each total is
        /// then converted once and scaled ([`KSums`]), as [`dot_q4k_tile`] does for 8 tokens.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q4k(
            row: *const u8,
            blocks: std::ops::Range<usize>,
            x: &Q8Vector,
            sums: &mut KSums,
        ) {
            let bb = Format::Q4K.block_bytes();
            let nibble = _mm256_set1_epi8(0x0F);
            let (mut acc, mut mins_acc) = (_mm_set_ss(sums.acc), _mm_set_ss(sums.mins));
            for b in blocks {
                let p = row.add(b * bb);
                let (d, dmin, scales, sm) = q4k_header(p);
                let m = _mm256_extracti128_si256(sm, 1);
                let xsums = _mm_loadu_si128(x.ksums32.as_ptr().add(b * 8) as *const __m128i);
                let mins = _mm_cvtepi32_ps(hsum4(_mm_madd_epi16(m, xsums)));
                // Two chains of sums, so that VNNI's `dpwssd` (4 cycles each) does not wait on
                // the one before.
                let mut products = [_mm256_setzero_si256(); 2];
                for c in 0..4 {
                    let q = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
                    let lo = _mm256_and_si256(q, nibble);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
                    let s0 = _mm256_shuffle_epi8(scales, lane(2 * c as i32));
                    let s1 = _mm256_shuffle_epi8(scales, lane(2 * c as i32 + 1));
                    let a = x.kq.as_ptr().add(b * SUPER + 64 * c);
                    let a0 = _mm256_loadu_si256(a as *const __m256i);
                    let a1 = _mm256_loadu_si256(a.add(32) as *const __m256i);
                    let lo = _mm256_maddubs_epi16(lo, a0);
                    let hi = _mm256_maddubs_epi16(hi, a1);
                    products[0] = scaled_add(products[0], lo, s0);
                    products[1] = scaled_add(products[1], hi, s1);
                }
                let total = _mm_cvtepi32_ps(hsum8(_mm256_add_epi32(products[0], products[1])));
                let xd = *x.kd.get_unchecked(b);
                acc = _mm_fmadd_ss(total, _mm_set_ss(d * xd), acc);
                mins_acc = _mm_fmadd_ss(mins, _mm_set_ss(dmin * xd), mins_acc);
            }
            (sums.acc, sums.mins) = (_mm_cvtss_f32(acc), _mm_cvtss_f32(mins_acc));
        }

        /// A row's Q4_K super-blocks `blocks` · the 8 tokens of `tile`, added to `sums`, with
        /// the same integer totals and float operations per token as [`dot_q4k`] (so the same
        /// bits). The tile holds each 8 levels of its tokens side by side, so one 32-byte load
        /// is 8 levels of 4 tokens and the row's 8 weights for them are one broadcast: four
        /// `maddubs` results add up in 16 bits (at most 4 · 2 · 15 · 127) before one `madd`
        /// applies the sub-block's scale, where the one-vector layout needs a `madd` for each.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q4k_tile(
            row: *const u8,
            blocks: std::ops::Range<usize>,
            tile: &Q8Tile,
            sums: &mut KTileSums,
        ) {
            let bb = Format::Q4K.block_bytes();
            let nibble = _mm256_set1_epi8(0x0F);
            let (mut acc, mut mins) = (sums.acc, sums.mins);
            for b in blocks {
                let p = row.add(b * bb);
                let (d, dmin, scales, sm) = q4k_header(p);
                let mut msum = _mm256_setzero_si256();
                for pair in 0..4 {
                    let m = _mm256_permutevar8x32_epi32(sm, _mm256_set1_epi32(4 + pair as i32));
                    let s = _mm256_loadu_si256(tile.sums.as_ptr().add((4 * b + pair) * 16) as *const __m256i);
                    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(m, s));
                }
                let mut products = [_mm256_setzero_si256(); 2];
                for c in 0..4 {
                    let s0 = _mm256_shuffle_epi8(scales, lane(2 * c as i32));
                    let s1 = _mm256_shuffle_epi8(scales, lane(2 * c as i32 + 1));
                    let mut lo_sum = [_mm256_setzero_si256(); 2];
                    let mut hi_sum = [_mm256_setzero_si256(); 2];
                    for j in 0..4 {
                        let w = (p.add(16 + 32 * c + 8 * j) as *const i64).read_unaligned();
                        let w = _mm256_set1_epi64x(w);
                        let lo = _mm256_and_si256(w, nibble);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), nibble);
                        let a_lo = tile.kq.as_ptr().add((32 * b + 8 * c + j) * 64);
                        let a_hi = a_lo.add(4 * 64);
                        for g in 0..2 {
                            let a = _mm256_loadu_si256(a_lo.add(32 * g) as *const __m256i);
                            lo_sum[g] = _mm256_add_epi16(lo_sum[g], _mm256_maddubs_epi16(lo, a));
                            let a = _mm256_loadu_si256(a_hi.add(32 * g) as *const __m256i);
                            hi_sum[g] = _mm256_add_epi16(hi_sum[g], _mm256_maddubs_epi16(hi, a));
                        }
                    }
                    for g in 0..2 {
                        products[g] = scaled_add(scaled_add(products[g], lo_sum[g], s0), hi_sum[g], s1);
                    }
                }
                // Lanes in Q8Tile::ORDER, as the tile's scales and sums.
                let total = _mm256_hadd_epi32(products[0], products[1]);
                let xd = _mm256_loadu_ps(tile.kd.as_ptr().add(8 * b));
                let scale = _mm256_mul_ps(_mm256_set1_ps(d), xd);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), scale, acc);
                let scale = _mm256_mul_ps(_mm256_set1_ps(dmin), xd);
                mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), scale, mins);
            }
            (sums.acc, sums.mins) = (acc, mins);
        }

        /// A Q6_K super-block at `p`: its f16 scale and its 16 sub-block scales (one per 16
        /// weights) as 16-bit lanes.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q6k_header(p: *const u8) -> (f32, __m256i) {
            let d = f16::from_le_bytes([*p.add(208), *p.add(209)]).to_f32();
            (d, _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i)))
        }

        /// Weights 128h + 32k … + 31 of the Q6_K super-block at `p` as levels 0 … 63: the low
        /// four bits from byte 64h + 32(k mod 2) + l (high nibbles for k ≥ 2), the high two from
        /// bits 2k … 2k + 1 of byte 128 + 32h + l.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn q6k_levels(p: *const u8, h: usize, k: usize) -> __m256i {
            let (nibble, two) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3));
            let low = _mm256_loadu_si256(p.add(64 * h + 32 * (k % 2)) as *const __m256i);
            let low = if k < 2 { low } else { _mm256_srli_epi16(low, 4) };
            let high = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
            let high = match k {
                0 => high,
                1 => _mm256_srli_epi16(high, 2),
                2 => _mm256_srli_epi16(high, 4),
                _ => _mm256_srli_epi16(high, 6),
            };
            _mm256_or_si256(
                _mm256_and_si256(low, nibble),
                _mm256_slli_epi16(_mm256_and_si256(high, two), 4),
            )
        }

        /// A row's Q6_K super-blocks `blocks` · one activation vector, added to `sums`, as
        /// [`dot_q4k`]: levels 0 … 63 times activations by `maddubs`, each 16's scale by `madd`,
        /// and the offset of 32 taken off the integer total through the activations' sums per
        /// 16; one conversion and scaling per super-block.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q6k(
            row: *const u8,
            blocks: std::ops::Range<usize>,
            x: &Q8Vector,
            sums: &mut KSums,
        ) {
            let bb = Format::Q6K.block_bytes();
            // 16-bit lane 2k of the low half and 2k + 1 of the high half, for k = 0 … 3.
            let pick: [__m256i; 4] = std::array::from_fn(|k| {
                let (lo, hi) = (2 * k as i16, 2 * k as i16 + 1);
                let (lo, hi) = (
                    (2 * lo) | ((2 * lo + 1) << 8),
                    (2 * hi) | ((2 * hi + 1) << 8),
                );
                _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
            });
            let mut acc = _mm_set_ss(sums.acc);
            for b in blocks {
                let p = row.add(b * bb);
                let (d, scales) = q6k_header(p);
                let xsums = _mm256_loadu_si256(x.ksums16.as_ptr().add(b * 16) as *const __m256i);
                let offset = _mm256_madd_epi16(scales, xsums);
                // Two chains of sums, as in dot_q4k.
                let mut products = [
                    _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5)),
                    _mm256_setzero_si256(),
                ];
                for h in 0..2 {
                    let half = if h == 0 {
                        _mm256_permute2x128_si256(scales, scales, 0x00)
                    } else {
                        _mm256_permute2x128_si256(scales, scales, 0x11)
                    };
                    for (k, &pick) in pick.iter().enumerate() {
                        let q = q6k_levels(p, h, k);
                        let a = x.kq.as_ptr().add(b * SUPER + 128 * h + 32 * k);
                        let pairs = _mm256_maddubs_epi16(q, _mm256_loadu_si256(a as *const __m256i));
                        let scale = _mm256_shuffle_epi8(half, pick);
                        products[k % 2] = scaled_add(products[k % 2], pairs, scale);
                    }
                }
                let total = _mm_cvtepi32_ps(hsum8(_mm256_add_epi32(products[0], products[1])));
                acc = _mm_fmadd_ss(total, _mm_set_ss(d * *x.kd.get_unchecked(b)), acc);
            }
            sums.acc = _mm_cvtss_f32(acc);
        }

        /// A row's Q6_K super-blocks `blocks` · the 8 tokens of `tile`, added to `sums`, with
        /// the same integer totals and float operations per token as [`dot_q6k`], laid out as
        /// in [`dot_q4k_tile`]: each 8 levels broadcast to meet 8 levels of 4 tokens, and two
        /// `maddubs` results (at most 2 · 2 · 63 · 127) added in 16 bits before the 16's scale.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q6k_tile(
            row: *const u8,
            blocks: std::ops::Range<usize>,
            tile: &Q8Tile,
            sums: &mut KTileSums,
        ) {
            let bb = Format::Q6K.block_bytes();
            let mut acc = sums.acc;
            for b in blocks {
                let p = row.add(b * bb);
                let (d, scales) = q6k_header(p);
                let mut offset = _mm256_setzero_si256();
                for pair in 0..8 {
                    let s = _mm256_permutevar8x32_epi32(scales, _mm256_set1_epi32(pair as i32));
                    let x = tile.sums.as_ptr().add((8 * b + pair) * 16);
                    let x = _mm256_loadu_si256(x as *const __m256i);
                    offset = _mm256_add_epi32(offset, _mm256_madd_epi16(s, x));
                }
                let mut products = [_mm256_setzero_si256(); 2];
                for h in 0..2 {
                    let half = if h == 0 {
                        _mm256_permute2x128_si256(scales, scales, 0x00)
                    } else {
                        _mm256_permute2x128_si256(scales, scales, 0x11)
                    };
                    for k in 0..4 {
                        let q = q6k_levels(p, h, k);
                        let w = [
                            _mm256_permute4x64_epi64(q, 0x00),
                            _mm256_permute4x64_epi64(q, 0x55),
                            _mm256_permute4x64_epi64(q, 0xAA),
                            _mm256_permute4x64_epi64(q, 0xFF),
                        ];
                        let a = tile.kq.as_ptr().add((32 * b + 16 * h + 4 * k) * 64);
                        for g in 0..2 {
                            let load = |j: usize| {
                                _mm256_loadu_si256(a.add(64 * j + 32 * g) as *const __m256i)
                            };
                            let first = _mm256_add_epi16(
                                _mm256_maddubs_epi16(w[0], load(0)),
                                _mm256_maddubs_epi16(w[1], load(1)),
                            );
                            let second = _mm256_add_epi16(
                                _mm256_maddubs_epi16(w[2], load(2)),
                                _mm256_maddubs_epi16(w[3], load(3)),
                            );
                            let s0 = _mm256_shuffle_epi8(half, lane(2 * k as i32));
                            let s1 = _mm256_shuffle_epi8(half, lane(2 * k as i32 + 1));
                            products[g] = scaled_add(scaled_add(products[g], first, s0), second, s1);
                        }
                    }
                }
                // Lanes in Q8Tile::ORDER, as the tile's scales and sums.
                let total = _mm256_sub_epi32(
                    _mm256_hadd_epi32(products[0], products[1]),
                    _mm256_slli_epi32(offset, 5),
                );
                let xd = _mm256_loadu_ps(tile.kd.as_ptr().add(8 * b));
                let scale = _mm256_mul_ps(_mm256_set1_ps(d), xd);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), scale, acc);
            }
            sums.acc = acc;
        }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Format, Q8Tile, Q8Vector, BLOCK, TILE};
    use half::f16;
    use std::arch::x86_64::*;

    /// A K-quant kernel's running sums for one row and one vector: scaled products and (Q4_K)
    /// scaled minimums, each accumulated one super-block at a time.
    #[derive(Clone, Copy, Default)]
    pub(crate) struct KSums {
        pub(super) acc: f32,
        pub(super) mins: f32,
    }

    impl KSums {
        pub(crate) fn finish(self) -> f32 {
            self.acc - self.mins
        }
    }

    /// [`KSums`] for the 8 tokens of a [`Q8Tile`], lanes in [`Q8Tile::ORDER`].
    #[derive(Clone, Copy)]
    pub(crate) struct KTileSums {
        pub(super) acc: __m256,
        pub(super) mins: __m256,
    }

    impl KTileSums {
        // SAFETY: all-zero bits are 0.0 in every lane.
        pub(crate) const ZERO: KTileSums = unsafe { std::mem::zeroed() };

        /// Σ products − Σ minimums, per token in order.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn finish(&self) -> [f32; TILE] {
            let mut lanes = [0f32; TILE];
            _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_sub_ps(self.acc, self.mins));
            let mut out = [0f32; TILE];
            for (&t, v) in Q8Tile::ORDER.iter().zip(lanes) {
                out[t] = v;
            }
            out
        }
    }

    /// The sum of eight 32-bit lanes, in lane 0 (converted and scaled there, in a vector
    /// register, like the tile kernels' lanes).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn hsum8(v: __m256i) -> __m128i {
        hsum4(_mm_add_epi32(
            _mm256_castsi256_si128(v),
            _mm256_extracti128_si256(v, 1),
        ))
    }

    /// The sum of four 32-bit lanes, in lane 0.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn hsum4(v: __m128i) -> __m128i {
        let v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        _mm_add_epi32(v, _mm_shuffle_epi32(v, 0b01))
    }

    /// The two f16 values at `p` (scale, minimum) as f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn halves(p: *const u8) -> (f32, f32) {
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
    pub(super) unsafe fn sum(v: __m256) -> f32 {
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

    /// A Q4_K super-block's 12 bytes of scales and minimums (at `p`) unpacked to 8 scales then
    /// 8 minimums, one byte each (GGML's own bit shuffle, on 32-bit words).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q4k_scales_mins(p: *const u8) -> __m128i {
        const LOW6: u32 = 0x3f3f_3f3f;
        const LOW4: u32 = 0x0f0f_0f0f;
        const LOW2: u32 = 0x0303_0303;
        let w = p as *const u32;
        let (u0, u1, u2) = (
            w.read_unaligned(),
            w.add(1).read_unaligned(),
            w.add(2).read_unaligned(),
        );
        let scales_lo = u0 & LOW6;
        let scales_hi = (u2 & LOW4) | (((u0 >> 6) & LOW2) << 4);
        let mins_lo = u1 & LOW6;
        let mins_hi = ((u2 >> 4) & LOW4) | (((u1 >> 6) & LOW2) << 4);
        _mm_set_epi32(
            mins_hi as i32,
            mins_lo as i32,
            scales_hi as i32,
            scales_lo as i32,
        )
    }

    /// Shuffles that copy 16-bit lane `j` (0 … 7) of each 128-bit half to the whole half.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn lane(j: i32) -> __m256i {
        _mm256_set1_epi16(((2 * j) | ((2 * j + 1) << 8)) as i16)
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

#[cfg(target_arch = "x86_64")]
k_quant_kernels!(
    /// The K-quant kernels on AVX2 alone.
    k_avx2,
    "avx2,fma,f16c",
    |acc, pairs, scale| _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scale))
);

#[cfg(target_arch = "x86_64")]
k_quant_kernels!(
    /// The K-quant kernels with AVX-VNNI's `dpwssd` (Intel since Alder Lake).
    k_avx_vnni,
    "avx2,fma,f16c,avxvnni",
    |acc, pairs, scale| _mm256_dpwssd_avx_epi32(acc, pairs, scale)
);

#[cfg(target_arch = "x86_64")]
k_quant_kernels!(
    /// The K-quant kernels with AVX-512 VNNI's `dpwssd` on 256-bit vectors (Intel since Ice
    /// Lake, AMD since Zen 4).
    k_avx512_vnni,
    "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
    |acc, pairs, scale| _mm256_dpwssd_epi32(acc, pairs, scale)
);

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
        Kernels::available()
    }

    /// A K-quant matrix of random bytes (every scale, minimum and level a file may hold).
    fn random_k(format: Format, rows: usize, cols: usize, seed: u64) -> QMatrix {
        let bb = format.block_bytes();
        let r = noise(rows * cols / SUPER * bb, seed);
        let mut bytes: Vec<u8> = r.iter().map(|v| ((v + 1.0) * 127.99) as u8).collect();
        for (block, r) in bytes.chunks_exact_mut(bb).zip(r.chunks_exact(bb)) {
            let d = f16::from_f32(r[0].abs() * 0.01 + 1e-4).to_le_bytes();
            match format {
                Format::Q4K => {
                    block[..2].copy_from_slice(&d);
                    block[2..4].copy_from_slice(&f16::from_f32(r[1].abs() * 0.01).to_le_bytes());
                }
                _ => block[208..].copy_from_slice(&d),
            }
        }
        QMatrix::from_blocks(format, rows, cols, bytes).unwrap()
    }

    /// The activations as the kernels for `format` see them, in float64.
    fn dequantized_activations(xq: &Q8Vector, format: Format) -> Vec<f64> {
        if format.block_len() == SUPER {
            let d = |i: usize| xq.kd[i / SUPER] as f64;
            xq.kq
                .iter()
                .enumerate()
                .map(|(i, &q)| q as f64 * d(i))
                .collect()
        } else {
            let d = |i: usize| xq.d[i / BLOCK] as f64;
            xq.q.iter()
                .enumerate()
                .map(|(i, &q)| q as f64 * d(i))
                .collect()
        }
    }

    /// Every kernel this CPU runs (the scalar one always) against float64 arithmetic on the
    /// dequantised weights and quantised activations: they must agree to f32 rounding.
    fn check_exact(m: &QMatrix, x: &[f32]) {
        let mut xq = Q8Vector::default();
        xq.quantize(x);
        let xd = dequantized_activations(&xq, m.format);
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
    fn k_quant_kernels_equal_float64_on_the_dequantised_weights() {
        // Large activations of both signs: the integer sums at their widest.
        let x: Vec<f32> = noise(1536, 5).iter().map(|v| v * 40.0).collect();
        for format in [Format::Q4K, Format::Q6K] {
            check_exact(&random_k(format, 23, 1536, 3), &x);
        }
    }

    /// The K-quant layouts read as GGML writes them: candle's quantiser and dequantiser (a port
    /// of GGML's) against ferret's reading of the same bytes.
    #[test]
    fn k_quant_layouts_are_ggmls() {
        use candle_core::quantized::{GgmlDType, QTensor};
        let (rows, cols) = (5, 512);
        let w = candle_core::Tensor::from_vec(
            noise(rows * cols, 13),
            (rows, cols),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        for (dtype, format) in [(GgmlDType::Q4K, Format::Q4K), (GgmlDType::Q6K, Format::Q6K)] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let theirs: Vec<f32> = q
                .dequantize(&candle_core::Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let bytes = q.data().unwrap().into_owned();
            let m = QMatrix::from_blocks(format, rows, cols, bytes).unwrap();
            assert_eq!(m.dequantize(), theirs, "{format:?}");
            check_exact(&m, &noise(cols, 17));
        }
    }

    /// A chunk of tokens through [`QMatrix::matmul`] gives each token's [`QMatrix::matvec`],
    /// bit for bit, written into (or added to) its columns of the output: two whole tiles and a
    /// remainder, rows in two passes of super-blocks.
    #[test]
    fn matmul_over_tokens_equals_matvec_per_token() {
        let (rows, cols, t) = (22, SUPER * (PASS_BLOCKS + 2), 2 * TILE + 3);
        let x = noise(t * cols, 19);
        let mut xs = Vec::new();
        Q8Vector::quantize_rows(&x, cols, &mut xs);
        for m in [
            random_k(Format::Q4K, rows, cols, 1),
            random_k(Format::Q6K, rows, cols, 2),
            random_q4_1(rows, cols),
        ] {
            for k in kernels() {
                let width = rows + 3;
                let mut y = vec![1f32; t * width];
                m.matmul(&xs[..t], &mut y, width, 2, true, k);
                for (i, x) in xs[..t].iter().enumerate() {
                    let mut want = vec![0f32; rows];
                    m.matvec(x, &mut want, k);
                    let row = &y[i * width..(i + 1) * width];
                    assert_eq!(&row[..2], &[1.0, 1.0]);
                    assert_eq!(row[width - 1], 1.0);
                    for (got, want) in row[2..2 + rows].iter().zip(&want) {
                        assert_eq!(*got, want + 1.0, "{k:?} {:?}", m.format);
                    }
                }
            }
        }
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
        // Per 256, with the sum of each 16 levels.
        let x = noise(512, 21);
        q.quantize(&x);
        for (i, v) in x.iter().enumerate() {
            let d = q.kd[i / SUPER];
            assert!((q.kq[i] as f32 * d - v).abs() <= d * 0.5 + 1e-7);
        }
        let sums = |n: usize| -> Vec<i16> {
            q.kq.chunks(n)
                .map(|b| b.iter().map(|&v| v as i16).sum())
                .collect()
        };
        assert_eq!((sums(16), sums(32)), (q.ksums16.clone(), q.ksums32.clone()));
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
