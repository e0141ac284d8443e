//! Arbitrary-input property tests over the parsers that read external or
//! persisted bytes — the same entry points as the cargo-fuzz targets in
//! `fuzz/` (which run longer, coverage-guided): the store's record decoder,
//! the event and versioned codecs, the config and batch parsers, and the
//! Graph/Partner Center response parsers. Each must answer (an error is
//! fine) and never panic, for random bytes and for valid inputs with bytes
//! flipped, cut or inserted. Seeded by proptest (`PROPTEST_CASES` scales the
//! run; failures persist under `tests/fuzz_props.proptest-regressions`).

use closeout::config::{BatchFile, Config};
use closeout::graph::{error, wire};
use closeout::model::{SagaId, Timestamp};
use closeout::store::record;
use proptest::prelude::*;
use std::path::Path;

/// A valid record to mutate.
fn valid_record() -> Vec<u8> {
    let event = closeout::saga::Event::StepStarted { step: 2 };
    let payload = event.encode().expect("encode an event");
    record::encode(
        &SagaId("3f2a9c1e-0000-4000-8000-000000000001".into()),
        7,
        42,
        Timestamp(1_800_000_000_000),
        &payload,
        &[9u8; 32],
    )
    .0
}

/// What the fuzz targets do with the bytes of a record.
fn record_entry(bytes: &[u8]) {
    if let Ok(r) = record::decode(bytes) {
        let _ = closeout::saga::Event::decode(&r.payload);
    }
    let _ = closeout::saga::Event::decode(bytes);
    if let Ok((v, rest)) = closeout::codec::split_version(bytes) {
        let _ = closeout::codec::decode_versioned::<Vec<String>>(v, rest);
    }
}

const CONFIG: &str = "data_dir = \"data\"\ncontrol_socket = \"c.sock\"\n[endpoints]\n\
graph = \"http://127.0.0.1:1\"\n[retry]\ninitial_interval = \"50ms\"\nmultiplier = 2.0\n\
max_interval = \"5s\"\njitter = \"full\"\ngive_up_after = \"5m\"\n[saga]\non_failure = \"pause\"\n\
[partner_center]\ntenant_id = \"p\"\nclient_id = \"c\"\nclient_secret_file = \"s\"\n";

const BATCH: &str = "[[tenant]]\ntenant_id = \"a.onmicrosoft.com\"\nclient_id = \"c\"\n\
client_secret_file = \"s\"\nkeep = [\"admin@a.onmicrosoft.com\", \"11111111-1111-4111-8111-111111111111\"]\n\
subscriptions = \"partner-center\"\n";

fn text_entry(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = Config::parse(&text, Path::new("fuzz.toml"));
    let _ = BatchFile::parse(&text, Path::new("fuzz-batch.toml"));
}

fn graph_entry(bytes: &[u8]) {
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
    let _ = error::body_hint("text/html", bytes);
    let text = String::from_utf8_lossy(bytes);
    let _ = error::parse_retry_after(&text, std::time::SystemTime::now());
    let _ = error::parse_limit_hint(&text);
}

/// What the tenant's side controls in signing in and in the usage reports:
/// a CSV of any shape, a PEM of any content, a client assertion of any
/// content. None of them may panic.
fn tenant_controlled_entry(bytes: &[u8]) {
    use closeout::graph::reports::{parse_report, Kind};
    for kind in [Kind::Mailbox, Kind::OneDrive, Kind::SharePoint] {
        for concealed in [None, Some(true), Some(false)] {
            let _ = parse_report(kind, bytes, concealed);
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let _ = closeout::cert::Certificate::from_pem(&text);
    let _ = closeout::cert::Registered::from_pem(&text);
    let _ = closeout::cert::Assertion::parse(&text);
}

const REPORT: &str = "\u{feff}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Item Count,Storage Used (Byte),Report Period\n2026-12-06,a@x.com,A,False,12,3400,7\n2026-12-06,B1C2,,True,,,7\n";

const GRAPH: &str = r#"{"value":[{"id":"u1","userPrincipalName":"a@b","accountEnabled":true,"onPremisesSyncEnabled":null,"userType":"Member"}],"@odata.nextLink":"http://x/v1.0/users?$skiptoken=1","responses":[{"id":"1","status":429,"headers":{"Retry-After":"2"},"body":{"error":{"code":"TooManyRequests","message":"slow"}}}],"isEnabled":true,"token_type":"Bearer","expires_in":3599,"access_token":"t"}"#;

/// Bytes flipped, cut and inserted in `base`.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    (
        proptest::collection::vec((0..len, any::<u8>()), 0..6),
        0..=len,
        proptest::collection::vec(any::<u8>(), 0..8),
        0..len,
    )
        .prop_map(move |(flips, cut, insert, at)| {
            let mut b = base.clone();
            for (i, x) in flips {
                if let Some(byte) = b.get_mut(i) {
                    *byte ^= x;
                }
            }
            let at = at.min(b.len());
            b.splice(at..at, insert);
            b.truncate(cut.max(1));
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn record_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        record_entry(&bytes);
    }

    #[test]
    fn damaged_records_are_refused_not_misread(bytes in mutated(valid_record())) {
        let good = valid_record();
        record_entry(&bytes);
        // A record that decodes after damage must be the original (the hash
        // covers every byte).
        if bytes != good {
            prop_assert!(record::decode(&bytes).is_err(), "a damaged record decoded");
        }
    }

    #[test]
    fn config_and_batch_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        text_entry(&bytes);
    }

    #[test]
    fn mutated_config_and_batch_never_panic(
        c in mutated(CONFIG.as_bytes().to_vec()),
        b in mutated(BATCH.as_bytes().to_vec()),
    ) {
        text_entry(&c);
        text_entry(&b);
    }

    #[test]
    fn graph_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        graph_entry(&bytes);
    }

    #[test]
    fn mutated_graph_answers_never_panic(bytes in mutated(GRAPH.as_bytes().to_vec())) {
        graph_entry(&bytes);
    }

    #[test]
    fn tenant_controlled_reports_and_credentials_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        tenant_controlled_entry(&bytes);
    }

    #[test]
    fn mutated_usage_reports_never_panic(bytes in mutated(REPORT.as_bytes().to_vec())) {
        tenant_controlled_entry(&bytes);
    }

    #[test]
    fn retry_after_values_never_panic(s in "[0-9a-zA-Z ,.:+-]{0,40}") {
        if let Some(d) = error::parse_retry_after(&s, std::time::SystemTime::now()) {
            // Any length parses (a saga pauses on one beyond `[retry]
            // max_retry_after`); what is added to it never overflows.
            let now = closeout::model::Timestamp::from_system(std::time::SystemTime::now());
            prop_assert!(now.plus(d) >= now, "{d:?} from {s:?}");
        }
        let _ = error::parse_limit_hint(&s);
    }
}

#[test]
fn the_seeds_are_valid() {
    assert!(record::decode(&valid_record()).is_ok());
    assert!(Config::parse(CONFIG, Path::new("c.toml")).is_ok());
    assert!(BatchFile::parse(BATCH, Path::new("b.toml")).is_ok());
    assert!(serde_json::from_slice::<wire::Page<wire::User>>(GRAPH.as_bytes()).is_ok());
}

/// Edge inputs, and any crash a fuzz run finds (`fuzz/artifacts/`) goes
/// here: each must be answered without a panic.
#[test]
fn kept_fuzz_regressions() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x01\x00",
        b"[[tenant]]\nkeep = [",
        b"retry-after: 99999999999999999999",
        b"{\"value\":[{\"id\":",
        b"99999999999999999999999999",
        b"-1",
        b"1e308",
        b"NaN",
    ];
    for c in cases {
        record_entry(c);
        text_entry(c);
        graph_entry(c);
    }
}
