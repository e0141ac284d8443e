//! Reads the log from a stopped daemon's data directory (being merged).
