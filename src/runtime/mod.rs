//! (being built)
pub mod perform;
