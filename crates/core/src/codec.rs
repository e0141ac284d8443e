//! The one place bincode is used: compact, deterministic binary encoding of
//! any serde type, with a size limit, for the store's own metadata and for the
//! saga module's events and snapshots.
//!
//! # Format
//!
//! bincode 1.3.3 with fixed options: little-endian, variable-length integers,
//! a [`MAX_ENCODED`] byte limit (checked when encoding and when decoding, so a
//! damaged length prefix cannot make the decoder allocate gigabytes), and
//! trailing bytes rejected. These options are part of the on-disk format:
//! changing them is a format change.
//!
//! # Format versions
//!
//! bincode is not self-describing: a field added, removed or reordered makes
//! old bytes decode wrongly or not at all. So every persisted value carries a
//! version next to it, and a reader refuses (never guesses) what it does not
//! know:
//! - [`encode_versioned`] writes a `u16` version (little-endian) before the
//!   bincode bytes; [`split_version`] reads it back so the caller can pick the
//!   type that version was written with (upcasting old versions to the current
//!   one), and [`decode_versioned`] does both for the common case of one known
//!   version, answering [`Error::UnknownVersion`] otherwise.
//! - The store's records carry their own `version` in their header
//!   (`store::Record::version`), and the data dir as a whole has a layout
//!   version checked at open (`store::FORMAT_VERSION`).
//!
//! Whoever changes a persisted type bumps its version and keeps decoding the
//! old one.

use serde::de::DeserializeOwned;
use serde::Serialize;

use bincode::Options;

/// The largest encoded value accepted, in bytes (64 MiB).
pub const MAX_ENCODED: u64 = 64 * 1024 * 1024;

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// bincode refused the value or the bytes (too large, truncated, invalid).
    #[error("bincode: {0}")]
    Bincode(#[from] bincode::Error),
    /// The bytes are shorter than the version prefix.
    #[error("value too short for its version prefix ({0} bytes)")]
    MissingVersion(usize),
    /// The value was written in a version this build does not know.
    #[error("unknown format version {found} (this build reads version {known})")]
    UnknownVersion {
        /// The version found in the bytes.
        found: u16,
        /// The version this build reads.
        known: u16,
    },
}

fn base_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_ENCODED)
        .with_little_endian()
        .with_varint_encoding()
}

fn options() -> impl Options {
    base_options().reject_trailing_bytes()
}

/// Encodes `value` (at most [`MAX_ENCODED`] bytes).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    Ok(options().serialize(value)?)
}

/// Decodes a value written by [`encode`]; the whole of `bytes` must be used.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    Ok(options().deserialize(bytes)?)
}

/// Encodes `value` after a `u16` version prefix.
pub fn encode_versioned<T: Serialize + ?Sized>(version: u16, value: &T) -> Result<Vec<u8>, Error> {
    let body = encode(value)?;
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Splits bytes written by [`encode_versioned`] into their version and body,
/// so the caller can decode the body with the type of that version.
pub fn split_version(bytes: &[u8]) -> Result<(u16, &[u8]), Error> {
    match bytes {
        [a, b, body @ ..] => Ok((u16::from_le_bytes([*a, *b]), body)),
        _ => Err(Error::MissingVersion(bytes.len())),
    }
}

/// Decodes bytes written by [`encode_versioned`] when only `version` is known.
pub fn decode_versioned<T: DeserializeOwned>(version: u16, bytes: &[u8]) -> Result<T, Error> {
    decode(body_of(version, bytes)?)
}

/// The body of bytes written by [`encode_versioned`] in `version`.
fn body_of(version: u16, bytes: &[u8]) -> Result<&[u8], Error> {
    let (found, body) = split_version(bytes)?;
    if found != version {
        return Err(Error::UnknownVersion {
            found,
            known: version,
        });
    }
    Ok(body)
}

/// Decodes the first field of a value written by [`encode_versioned`] in
/// `version` (a prefix of its body), leaving the rest unread: a tuple's
/// first element without decoding what follows it.
pub fn decode_versioned_prefix<T: DeserializeOwned>(
    version: u16,
    bytes: &[u8],
) -> Result<T, Error> {
    let body = body_of(version, bytes)?;
    Ok(base_options().allow_trailing_bytes().deserialize(body)?)
}

/// `#[serde(with = "crate::codec::bytes")]` on a `Vec<u8>`: the same bincode
/// bytes as a plain `Vec<u8>` (its length, then the bytes), read in one copy
/// instead of one visit per byte (a saga's snapshot holds its encoded state).
pub mod bytes {
    use serde::{de, Deserializer, Serializer};

    /// Serializes as bytes (in bincode: the length, then the bytes).
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes bytes, or a sequence of bytes (what self-describing
    /// formats make of them).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&(1u32, "a")).unwrap();
        bytes.push(0);
        assert!(decode::<(u32, String)>(&bytes).is_err());
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // varint marker 0xfd = u64 follows: a Vec<u8> claiming u64::MAX bytes.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }

    #[test]
    fn versions_are_checked() {
        let bytes = encode_versioned(3, &"x").unwrap();
        assert_eq!(decode_versioned::<String>(3, &bytes).unwrap(), "x");
        match decode_versioned::<String>(2, &bytes) {
            Err(Error::UnknownVersion { found: 3, known: 2 }) => {}
            other => panic!("expected an unknown version, got {other:?}"),
        }
        assert!(matches!(split_version(&[1]), Err(Error::MissingVersion(1))));
    }

    #[test]
    fn bytes_encode_as_a_vec_of_u8_does() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Plain(Vec<u8>, String);
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Fast(#[serde(with = "bytes")] Vec<u8>, String);
        for len in [0usize, 1, 250, 251, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let plain = encode(&Plain(v.clone(), "x".into())).unwrap();
            let fast = encode(&Fast(v.clone(), "x".into())).unwrap();
            assert_eq!(plain, fast, "length {len}");
            assert_eq!(decode::<Fast>(&plain).unwrap(), Fast(v, "x".into()));
        }
        assert!(decode::<Fast>(&[5, 1, 2]).is_err(), "truncated");
    }

    #[test]
    fn a_versioned_prefix_reads_the_first_field_only() {
        let bytes = encode_versioned(3, &(300u64, vec![7u8; 40], "x")).unwrap();
        assert_eq!(decode_versioned_prefix::<u64>(3, &bytes).unwrap(), 300);
        assert!(matches!(
            decode_versioned_prefix::<u64>(4, &bytes),
            Err(Error::UnknownVersion { found: 3, .. })
        ));
        assert!(decode_versioned_prefix::<u64>(3, &bytes[..2]).is_err());
    }
}
