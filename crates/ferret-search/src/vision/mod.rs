//! What ferret computes on CLIP embeddings besides search: classification (zero-shot, k-NN,
//! GDA) and the Schur-complement analyses of "Dissecting CLIP" (SCE, prompt nullification).

pub mod classify;
mod linalg;
pub mod schur;
