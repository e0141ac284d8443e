//! The daemon config and batch file parsers on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let _ = closeout::config::Config::parse(&text, Path::new("fuzz.toml"));
    let _ = closeout::config::BatchFile::parse(&text, Path::new("fuzz-batch.toml"));
});
