//! closeout's core: the saga (pure `decide` and `apply` over recorded
//! events), the shared model of tenants, users and subscriptions, the
//! versioned codec of what is recorded, and the retry policy. No I/O, no
//! clock, no async runtime: the compiler keeps it so (this crate depends on
//! no tokio, reqwest or sled).
#![forbid(unsafe_code)]

pub mod codec;
pub mod model;
pub mod retry;
pub mod saga;
