//! Verification of the log and of exports (being built).
