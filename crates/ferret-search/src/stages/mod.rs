//! One file per stage; each declares its [`crate::args::StageSpec`], listed in
//! [`crate::registry::STAGES`].

pub mod bm25;
pub mod clip;
pub mod colbert;
pub mod dense;
pub mod feedback;
pub mod fusion;
pub mod llm;
pub mod promptreps;
pub mod rerank;
pub mod rm3;
pub mod rocchio;
pub mod splade;
pub mod text_prf;
pub mod vprf;
