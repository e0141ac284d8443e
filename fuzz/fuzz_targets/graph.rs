//! The Graph, `$batch` and token answer parsers and the error/header
//! parsers on arbitrary bytes (as sent by a faulty service or proxy).
#![no_main]

use closeout::graph::{error, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = serde_json::from_slice::<wire::Page<wire::User>>(bytes);
    let _ = serde_json::from_slice::<wire::Page<wire::Subscription>>(bytes);
    let _ = serde_json::from_slice::<wire::Page<wire::CaPolicy>>(bytes);
    let _ = serde_json::from_slice::<wire::Page<wire::DeletedUser>>(bytes);
    let _ = serde_json::from_slice::<wire::Page<wire::Application>>(bytes);
    let _ = serde_json::from_slice::<wire::SecurityDefaults>(bytes);
    let _ = serde_json::from_slice::<wire::MfaRequirements>(bytes);
    let _ = serde_json::from_slice::<wire::TokenResponse>(bytes);
    if let Ok(b) = serde_json::from_slice::<wire::BatchResponse>(bytes) {
        for item in &b.responses {
            let _ = item.header("Retry-After");
            let _ = error::error_code_json(&item.body);
        }
    }
    let _ = error::error_code(bytes);
    let _ = error::body_hint("application/json", bytes);
    let text = String::from_utf8_lossy(bytes);
    let _ = error::parse_retry_after(&text, std::time::SystemTime::now());
    let _ = error::parse_limit_hint(&text);
});
