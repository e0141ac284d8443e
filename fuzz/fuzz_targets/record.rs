//! The store's record decoder and the event and versioned codecs on
//! arbitrary bytes (as read from a damaged log).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(r) = closeout::store::record::decode(bytes) {
        let _ = closeout::saga::Event::decode(&r.payload);
    }
    let _ = closeout::saga::Event::decode(bytes);
    if let Ok((v, rest)) = closeout::codec::split_version(bytes) {
        let _ = closeout::codec::decode_versioned::<Vec<String>>(v, rest);
    }
});
