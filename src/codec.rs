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

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_ENCODED)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
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
    let (found, body) = split_version(bytes)?;
    if found != version {
        return Err(Error::UnknownVersion {
            found,
            known: version,
        });
    }
    decode(body)
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
}
