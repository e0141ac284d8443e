//! Signing in: certificate credentials (the signed client assertion, and
//! its verification, which the simulator uses) and the national clouds'
//! hosts and token scopes.
#![forbid(unsafe_code)]

pub mod cert;
pub mod cloud;
