//! closeout: closes Microsoft 365 business tenants (Microsoft Entra ID) unattended,
//! each closure an event-sourced saga recorded durably in sled.
//!
//! See `ARCHITECTURE.md` for the map of this crate.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cert;
pub mod cli;
pub mod cloud;
pub mod codec;
pub mod config;
pub mod escape;
pub mod graph;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod ports;
pub mod retry;
pub mod runtime;
pub mod saga;
pub mod sim;
pub mod store;

/// mimalloc for every binary linking the crate (the daemon, the CLI, tests and
/// benches): sled 0.34 copies a leaf node on every insert and frees the old
/// one on its I/O threads, and glibc's per-thread arenas kept that churn both
/// slow and resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
