//! Codec round trips (property tests) and refusal of unknown versions.

use closeout::codec;
use closeout::model::{SagaId, Timestamp};
use closeout::store::{record, Snapshot};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// A value shaped like a saga event: strings, numbers, options, a nested enum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    name: String,
    seq: u64,
    delta: i64,
    ratio: f64,
    tags: Vec<String>,
    blob: Vec<u8>,
    maybe: Option<u32>,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Started,
    Called { path: String, status: u16 },
    Failed(String),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Started),
        (".*", any::<u16>()).prop_map(|(path, status)| Kind::Called { path, status }),
        ".*".prop_map(Kind::Failed),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        ".*",
        any::<u64>(),
        any::<i64>(),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()),
        proptest::collection::vec(".{0,8}", 0..5),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<Option<u32>>(),
        kind(),
    )
        .prop_map(|(name, seq, delta, ratio, tags, blob, maybe, kind)| Event {
            name,
            seq,
            delta,
            ratio,
            tags,
            blob,
            maybe,
            kind,
        })
}

proptest! {
    #[test]
    fn values_round_trip(e in event()) {
        let bytes = codec::encode(&e).unwrap();
        prop_assert_eq!(codec::decode::<Event>(&bytes).unwrap(), e);
    }

    #[test]
    fn versioned_values_round_trip_and_other_versions_are_refused(e in event(), v in any::<u16>()) {
        let bytes = codec::encode_versioned(v, &e).unwrap();
        prop_assert_eq!(codec::decode_versioned::<Event>(v, &bytes).unwrap(), e);
        let other = v.wrapping_add(1);
        let refused = matches!(
            codec::decode_versioned::<Event>(other, &bytes),
            Err(codec::Error::UnknownVersion { found, known }) if found == v && known == other
        );
        prop_assert!(refused);
    }

    #[test]
    fn truncated_values_are_refused_not_panicking(e in event(), cut in any::<prop::sample::Index>()) {
        let bytes = codec::encode(&e).unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(codec::decode::<Event>(&bytes[..n]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = codec::decode::<Event>(&bytes);
        let _ = record::decode(&bytes);
    }

    #[test]
    fn snapshots_round_trip(state in proptest::collection::vec(any::<u8>(), 0..500), terminal: bool, label in ".*", seq: u64) {
        let s = Snapshot { state, terminal, label };
        let bytes = codec::encode_versioned(1, &(seq, &s)).unwrap();
        prop_assert_eq!(codec::decode_versioned::<(u64, Snapshot)>(1, &bytes).unwrap(), (seq, s));
    }

    #[test]
    fn records_round_trip(id in "[a-z0-9-]{1,64}", saga_seq: u64, global_seq: u64, at: u64,
                          payload in proptest::collection::vec(any::<u8>(), 0..500), prev: [u8; 32]) {
        let saga = SagaId(id);
        let (bytes, hash) = record::encode(&saga, saga_seq, global_seq, Timestamp(at), &payload, &prev);
        let r = record::decode(&bytes).unwrap();
        prop_assert_eq!(r.version, record::RECORD_VERSION);
        prop_assert_eq!(r.saga_id, saga);
        prop_assert_eq!((r.saga_seq, r.global_seq, r.at), (saga_seq, global_seq, Timestamp(at)));
        prop_assert_eq!(r.payload, payload);
        prop_assert_eq!((r.prev_hash, r.hash), (prev, hash));
    }
}

#[test]
fn a_record_of_an_unknown_version_is_refused() {
    let (mut bytes, _) = record::encode(&SagaId("s".into()), 1, 1, Timestamp(0), b"x", &[0; 32]);
    bytes[0] = 9;
    let err = record::decode(&bytes).unwrap_err();
    assert!(err.contains("unknown record version 9"), "{err}");
}

#[test]
fn values_over_the_limit_are_refused() {
    let big = vec![0u8; codec::MAX_ENCODED as usize + 1];
    assert!(codec::encode(&big).is_err());
}
