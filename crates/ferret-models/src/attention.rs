//! Scaled dot-product attention of one head over a whole sequence, shared by the encoder
//! runtimes (BERT/MPNet in `bert.rs`, CLIP's towers in `clip.rs`).

/// One head's view of the projected queries, keys and values: `len` rows of `width` floats,
/// the head's `dim` columns starting at `offset`.
pub(crate) struct Head<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub len: usize,
    pub width: usize,
    pub offset: usize,
    pub dim: usize,
    pub scale: f32,
}

/// ctx[:, head columns] = softmax(scale · q kᵀ, adjusted) v. `adjust` sees the [len, len]
/// scores before the softmax (a relative-position bias, a causal mask of −∞).
pub(crate) fn attend_head(
    head: Head<'_>,
    scores: &mut Vec<f32>,
    ctx: &mut [f32],
    adjust: impl FnOnce(&mut [f32]),
) {
    let Head {
        q,
        k,
        v,
        len,
        width,
        offset,
        dim,
        scale,
    } = head;
    assert!(q.len() >= len * width && k.len() >= len * width && v.len() >= len * width);
    assert!(ctx.len() >= len * width && offset + dim <= width);
    scores.resize(len * len, 0.0);
    // SAFETY: q, k, v and ctx hold len×width floats (asserted) and scores len×len; the head
    // reads/writes the `dim` columns from `offset`, with row stride `width`.
    unsafe {
        gemm::gemm(
            len,
            len,
            dim,
            scores.as_mut_ptr(),
            1,
            len as isize,
            false,
            q.as_ptr().add(offset),
            1,
            width as isize,
            k.as_ptr().add(offset),
            width as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    adjust(scores);
    for row in scores.chunks_exact_mut(len) {
        crate::fastmath::softmax(row);
    }
    // SAFETY: as above.
    unsafe {
        gemm::gemm(
            len,
            dim,
            len,
            ctx.as_mut_ptr().add(offset),
            1,
            width as isize,
            false,
            scores.as_ptr(),
            1,
            len as isize,
            v.as_ptr().add(offset),
            1,
            width as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
