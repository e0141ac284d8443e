//! closeout: closes Microsoft 365 business tenants (Microsoft Entra ID) unattended,
//! each closure an event-sourced saga recorded durably in sled.
//!
//! See `ARCHITECTURE.md` for the map of the workspace.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod escape;
pub mod notify;
pub mod runtime;

// The workspace's crates, under the names the binary's modules, the tests
// and the benches use (`closeout::saga`, `crate::store`, ...).
pub use closeout_auth::{cert, cloud};
pub use closeout_core::{codec, model, retry, saga};
pub use closeout_graph as graph;
pub use closeout_graph::ports;
pub use closeout_metrics as metrics;
pub use closeout_sim as sim;
pub use closeout_store as store;

/// mimalloc for every binary linking the crate (the daemon, the CLI, tests and
/// benches): sled 0.34 copies a leaf node on every insert and frees the old
/// one on its I/O threads, and glibc's per-thread arenas kept that churn both
/// slow and resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
