//! `exp` that the compiler can vectorise. libm's `expf` is a call per element, so loops over
//! softmax scores and activations (GELU's erf, SiLU) stay scalar around it: 12 % of the
//! encoder's time on SciFact. This is Cephes' `expf` (range reduction by ln 2, a degree-6
//! polynomial, 2ⁿ put into the exponent bits) without branches, inlined into those loops, and
//! a softmax built on it.
//!
//! [`wide!`] compiles such loops once per instruction set and picks one at run time: the binary
//! targets baseline x86-64 (SSE2, 4 lanes), and AVX2 / AVX-512 double and quadruple that. The
//! code is the same in every copy and the compiler does not reorder float operations. Where a
//! body multiplies and adds through [`MulAdd`], the AVX2 and AVX-512 copies fuse the two (FMA,
//! one rounding) and the baseline copy, which has no FMA, rounds twice: the AVX2 and AVX-512
//! copies give the same bits, the baseline ones may differ from them in the last bit or two
//! (as the `gemm` crate's kernels for the attention products do between CPUs anyway). Fusing
//! made MiniLM int8 encoding held to AVX2 2–8 % faster (about 5 % over three alternating runs,
//! AMD Zen 4), its softmax and GELU being a seventh of the time there.

/// Defines a function whose body is compiled three times on x86-64 — for AVX-512, for AVX2 +
/// FMA, and for the baseline — and dispatched by the CPU's features at each call (a cached
/// check). Helpers the body calls must be `#[inline(always)]` to be compiled wide with it. The
/// body sees a type `M`: [`MulAdd`], fused in the wide copies; it hands it to helpers that
/// multiply and add (`exp::<M>`).
macro_rules! wide {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<M: $crate::fastmath::MulAdd>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body::<$crate::fastmath::Fused>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body::<$crate::fastmath::Fused>($($arg),*)
                }
                match $crate::fastmath::level() {
                    // SAFETY: level() found these features on this CPU.
                    $crate::fastmath::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::fastmath::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::fastmath::Level::Base => {}
                }
            }
            body::<$crate::fastmath::Unfused>($($arg),*)
        }
    };
}
pub(crate) use wide;

/// a · b + c, as a copy of a [`wide!`] function computes it.
pub(crate) trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding (`vfmadd`), in copies compiled with FMA; elsewhere `f32::mul_add` is a call
/// into libm's exact software fma.
pub(crate) enum Fused {}

/// A product rounded, then a sum rounded.
pub(crate) enum Unfused {}

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The widest instruction set [`wide!`] functions use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Base,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The widest instruction set [`wide!`] functions use: the CPU's, or less under [`cap`].
#[inline]
pub(crate) fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let cap = cap();
        if cap >= Cap::Avx512
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if cap >= Cap::Avx2 && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Base
}

/// The most the runtimes may use, from `FERRET_SIMD` (`base`, `avx2`, `avx-vnni`, `avx512`;
/// unset: whatever the CPU has). It lets tests and benchmarks run the paths a machine would
/// not take by default, e.g. AVX2 on an AVX-512 machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cap {
    Base,
    Avx2,
    AvxVnni,
    Avx512,
}

pub(crate) fn cap() -> Cap {
    static CAP: std::sync::OnceLock<Cap> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("FERRET_SIMD").as_deref() {
        Err(_) | Ok("") => Cap::Avx512,
        Ok("base") => Cap::Base,
        Ok("avx2") => Cap::Avx2,
        Ok("avx-vnni") => Cap::AvxVnni,
        Ok("avx512") => Cap::Avx512,
        Ok(other) => {
            tracing::warn!(
                "FERRET_SIMD={other} is not one of base, avx2, avx-vnni, avx512; ignored"
            );
            Cap::Avx512
        }
    })
}

/// The lowest argument [`exp`] and [`exp_nonpositive`] take: below, eˣ is the smallest normal
/// float.
const EXP_LOW: f32 = -87.336_55;

/// x = n·ln 2 + r, |r| ≤ ln 2 / 2, for x in [`EXP_LOW`, 88.8]: (eʳ, n).
#[inline(always)]
fn exp_reduced<M: MulAdd>(x: f32) -> (f32, i32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2²³ rounds to the nearest integer (SSE2 has no round).
    const ROUND: f32 = 12_582_912.0;
    let t = M::mul_add(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = M::mul_add(n, -LN2_LO, M::mul_add(n, -LN2_HI, x));
    let p = 1.987_569_1e-4;
    let p = M::mul_add(p, r, 1.398_199_9e-3);
    let p = M::mul_add(p, r, 8.333_452e-3);
    let p = M::mul_add(p, r, 4.166_579_6e-2);
    let p = M::mul_add(p, r, 0.166_666_65);
    let p = M::mul_add(p, r, 0.5);
    // n as an integer from t's low mantissa bits: `as i32` would saturate element by element.
    (
        M::mul_add(p, r * r, r) + 1.0,
        t.to_bits() as i32 - 0x4B40_0000,
    )
}

/// 2ᵏ for k in −126..=127.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) << 23) as u32)
}

/// eˣ to about 2 ulp for x in [-87.3, 88.7]; below, the smallest normal float (≈ 1.2e-38, where
/// softmax needs 0 it weighs nothing), above, 2¹²⁸ overflows to +∞ as eˣ does. NaN stays NaN.
#[inline(always)]
pub(crate) fn exp<M: MulAdd>(x: f32) -> f32 {
    let (e, n) = exp_reduced::<M>(x.clamp(EXP_LOW, 88.8));
    // n is in -126..=128 after the clamp, where 2ⁿ is not always a normal float: scale by two
    // halves of it.
    let (a, b) = (n >> 1, n - (n >> 1));
    e * pow2(a) * pow2(b)
}

/// eˣ for x ≤ 0 (−∞ included), as [`exp`] gives it bit for bit, cheaper: 2ⁿ is then a normal
/// float (n ≥ −126 after the clamp), so it scales in one step, and there is no upper bound to
/// clamp to. Softmax (x − max) and erf (−x²) need no more.
#[inline(always)]
pub(crate) fn exp_nonpositive<M: MulAdd>(x: f32) -> f32 {
    // NaN passes (f32::max would drop it); `maxps` with the operands this way round.
    let (e, n) = exp_reduced::<M>(if EXP_LOW > x { EXP_LOW } else { x });
    e * pow2(n)
}

wide! {
    /// Exponentiates (less the row's maximum) and normalises in place.
    pub(crate) fn softmax(row: &mut [f32]) {
        let max = max(row);
        for x in row.iter_mut() {
            *x = exp_nonpositive::<M>(*x - max);
        }
        let inv = 1.0 / sum(row);
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
}

/// Lanes of the reductions below: enough independent chains to keep vector units busy (two
/// AVX-512 registers, four AVX2 ones). The count is fixed, so every instruction set adds in the
/// same order.
const LANES: usize = 32;

/// The larger of two floats as `maxps` computes it (one instruction; `f32::max` adds NaN
/// checks that keep the loop slow). NaN never occurs in these reductions.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The smaller of two floats, as `minps` computes it.
#[inline(always)]
fn smaller(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// The maximum (−∞ for an empty slice).
#[inline(always)]
pub(crate) fn max(v: &[f32]) -> f32 {
    reduce(v, f32::NEG_INFINITY, larger, larger)
}

/// The minimum (+∞ for an empty slice).
#[inline(always)]
pub(crate) fn min(v: &[f32]) -> f32 {
    reduce(v, f32::INFINITY, smaller, smaller)
}

/// max |x| (0 for an empty slice).
#[inline(always)]
pub(crate) fn max_abs(v: &[f32]) -> f32 {
    reduce(v, 0.0, |l, x| larger(l, x.abs()), larger)
}

/// Σ x².
#[inline(always)]
pub(crate) fn sum_squares(v: &[f32]) -> f32 {
    reduce(v, 0.0, |l, x| l + x * x, |a, b| a + b)
}

/// Σ x (a sum in order cannot vectorise).
#[inline(always)]
pub(crate) fn sum(v: &[f32]) -> f32 {
    reduce(v, 0.0, |l, x| l + x, |a, b| a + b)
}

/// Folds `v` into [`LANES`] lanes with `step`, then the lanes and the tail with `join`.
#[inline(always)]
fn reduce(
    v: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    join: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut lanes = [init; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(init, |a, &x| step(a, x));
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = step(*l, x);
        }
    }
    lanes.iter().copied().fold(tail, join)
}

#[cfg(test)]
mod tests {
    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        row[5] = f32::NEG_INFINITY;
        let orig = row.clone();
        super::softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[5] < 1e-30);
        let max = orig.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = orig.iter().map(|&x| ((x - max) as f64).exp()).sum();
        for (p, x) in row.iter().zip(&orig) {
            let want = ((x - max) as f64).exp() / z;
            assert!(
                (*p as f64 - want).abs() < 1e-7 + 1e-6 * want,
                "{p} vs {want}"
            );
        }
    }

    #[test]
    fn exp_agrees_with_libm_to_a_few_ulp() {
        use super::{Fused, MulAdd, Unfused};
        fn check<M: MulAdd>() {
            let exp = super::exp::<M>;
            let mut worst = 0f64;
            let mut x = -87.0f32;
            while x < 88.5 {
                let got = exp(x) as f64;
                let want = (x as f64).exp();
                worst = worst.max((got - want).abs() / want);
                x += 0.001_37;
            }
            assert!(worst < 3e-7, "largest relative error {worst}");
            assert_eq!(exp(0.0), 1.0);
            assert!(exp(f32::NEG_INFINITY) < 1.2e-38);
            assert_eq!(exp(f32::INFINITY), f32::INFINITY);
            assert!(exp(f32::NAN).is_nan());
        }
        check::<Fused>();
        check::<Unfused>();
    }

    #[test]
    fn exp_nonpositive_is_exp_bit_for_bit() {
        use super::{exp, exp_nonpositive, Fused, Unfused};
        let mut x = 0.0f32;
        while x > -100.0 {
            assert_eq!(
                exp::<Fused>(x).to_bits(),
                exp_nonpositive::<Fused>(x).to_bits(),
                "{x}"
            );
            assert_eq!(
                exp::<Unfused>(x).to_bits(),
                exp_nonpositive::<Unfused>(x).to_bits(),
                "{x}"
            );
            x -= 0.000_731;
        }
        for x in [-0.0, f32::NEG_INFINITY, -87.336_55, -87.4, f32::MIN] {
            assert_eq!(
                exp::<Fused>(x).to_bits(),
                exp_nonpositive::<Fused>(x).to_bits(),
                "{x}"
            );
        }
        assert!(exp_nonpositive::<Fused>(f32::NAN).is_nan());
    }
}
