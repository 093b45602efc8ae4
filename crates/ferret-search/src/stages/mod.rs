//! One file per stage; each exposes `build`, registered in [`crate::registry::STAGES`].

pub mod bm25;
pub mod dense;
pub mod feedback;
pub mod fusion;
pub mod llm;
pub mod rerank;
pub mod rm3;
pub mod rocchio;
pub mod text_prf;
pub mod vprf;
