//! Buffers that start on a 64-byte cache line, for packed weights the SIMD kernels load 32 or
//! 64 bytes at a time. `Vec` of a small integer type starts wherever the allocator puts it
//! (16 bytes into a line, typically), and then half or all of those loads straddle two lines.
//! A C probe of the AVX2 int8 kernel's loop ran 12–17 % slower so (AMD Zen 4); `ferret encode`
//! with MiniLM int8 held to AVX2 gained 3 % from aligning.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Element types for which every bit pattern, zero included, is a value.
pub(crate) trait Plain: Copy {}
impl Plain for i8 {}
impl Plain for i16 {}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A zero-initialised `[T]` whose first element starts a cache line.
pub(crate) struct LineAligned<T: Plain> {
    lines: Vec<Line>,
    len: usize,
    _element: PhantomData<T>,
}

impl<T: Plain> LineAligned<T> {
    pub(crate) fn zeroed(len: usize) -> Self {
        const { assert!(std::mem::align_of::<T>() <= 64) };
        let bytes = len * std::mem::size_of::<T>();
        LineAligned {
            lines: vec![Line([0; 64]); bytes.div_ceil(64)],
            len,
            _element: PhantomData,
        }
    }
}

impl<T: Plain> Deref for LineAligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lines hold at least len · size_of::<T>() initialised bytes, aligned for T
        // (align ≤ 64, asserted), and any bytes are a T (Plain).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl<T: Plain> DerefMut for LineAligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, borrowed mutably through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::LineAligned;

    #[test]
    fn starts_on_a_line_and_holds_what_is_written() {
        for len in [0, 1, 31, 32, 33, 1000] {
            let mut v = LineAligned::<i16>::zeroed(len);
            assert_eq!(v.len(), len);
            assert_eq!(v.as_ptr() as usize % 64, 0);
            assert!(v.iter().all(|&x| x == 0));
            for (i, x) in v.iter_mut().enumerate() {
                *x = i as i16 - 500;
            }
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as i16 - 500));
        }
    }
}
