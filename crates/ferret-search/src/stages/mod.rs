//! One file per stage; each exposes `build`, registered in [`crate::registry::STAGES`].

pub mod bm25;
pub mod dense;
pub mod vprf;
