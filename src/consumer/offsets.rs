//! Committed offsets as records of the internal topic `__consumer_offsets`, in Kafka's own
//! binary layout (`OffsetCommitKey` version 1, `OffsetCommitValue` version 3), so the
//! topic means the same to a Kafka broker's group coordinator.
//!
//! Key: `int16 version = 1`, `string group`, `string topic`, `int32 partition`.
//! Value: `int16 version = 3`, `int64 offset`, `int32 leader epoch = -1`,
//! `string metadata` (empty unless the committer gave some), `int64 commit timestamp`. A Kafka `string` is an `int16` byte
//! length and UTF-8 bytes; all integers are big-endian. The topic is compacted: the latest
//! record per key is the committed offset.

use byteorder::{BigEndian, ByteOrder};

/// Name of the internal topic holding committed offsets (Kafka's).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// `(group, topic, partition)`.
pub(crate) type OffsetKey = (String, String, u32);

fn put_string(out: &mut Vec<u8>, s: &str) {
    let mut len = [0; 2];
    BigEndian::write_i16(&mut len, s.len() as i16);
    out.extend_from_slice(&len);
    out.extend_from_slice(s.as_bytes());
}

/// The record key for a committed offset (`OffsetCommitKey` v1).
pub(crate) fn encode_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut out = vec![0, 1];
    put_string(&mut out, group);
    put_string(&mut out, topic);
    let mut p = [0; 4];
    BigEndian::write_i32(&mut p, partition as i32);
    out.extend_from_slice(&p);
    out
}

/// The record value for a committed offset (`OffsetCommitValue` v3) with its metadata
/// string (at most 32,767 bytes: the caller checks).
pub(crate) fn encode_value(offset: u64, metadata: &str, commit_ms: i64) -> Vec<u8> {
    let mut out = vec![0; 2 + 8 + 4];
    BigEndian::write_i16(&mut out[0..], 3);
    BigEndian::write_i64(&mut out[2..], offset as i64);
    BigEndian::write_i32(&mut out[10..], -1);
    put_string(&mut out, metadata);
    let mut ts = [0; 8];
    BigEndian::write_i64(&mut ts, commit_ms);
    out.extend_from_slice(&ts);
    out
}

/// A cursor over a record's bytes, failing with a description of what is missing.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated {what}"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self, what: &str) -> Result<i16, String> {
        self.take(2, what).map(BigEndian::read_i16)
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.take(4, what).map(BigEndian::read_i32)
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.take(8, what).map(BigEndian::read_i64)
    }

    fn compact_string(&mut self, what: &str) -> Result<String, String> {
        let mut len: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.take(1, what)?[0];
            len |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // 0 is a null string, n + 1 a string of n bytes.
                let len = usize::try_from(len.saturating_sub(1)).unwrap_or(usize::MAX);
                let bytes = self.take(len, what)?;
                return String::from_utf8(bytes.to_vec())
                    .map_err(|_| format!("{what} is not UTF-8"));
            }
        }
        Err(format!("{what}: length varint longer than 5 bytes"))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = self.i16(what)?;
        let len = usize::try_from(len).map_err(|_| format!("negative length of {what}"))?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// Decodes a key: `Ok(None)` for keys that are not offset commits (Kafka's group metadata
/// records, version 2, and later kinds).
pub(crate) fn decode_key(key: &[u8]) -> Result<Option<OffsetKey>, String> {
    let mut c = Cursor(key);
    match c.i16("key version")? {
        0 | 1 => {
            let group = c.string("group")?;
            let topic = c.string("topic")?;
            let partition = c.i32("partition")?;
            let partition =
                u32::try_from(partition).map_err(|_| format!("negative partition {partition}"))?;
            Ok(Some((group, topic, partition)))
        }
        _ => Ok(None),
    }
}

/// Decodes a value's offset and metadata string. Every `OffsetCommitValue` version starts
/// with the offset; versions 3 and 4 put the leader epoch before the metadata, the
/// others put the metadata right after the offset.
pub(crate) fn decode_value(value: &[u8]) -> Result<(u64, String), String> {
    let mut c = Cursor(value);
    let version = c.i16("value version")?;
    if !(0..=4).contains(&version) {
        return Err(format!("unknown offset commit value version {version}"));
    }
    let offset = c.i64("offset")?;
    let offset = u64::try_from(offset).map_err(|_| format!("negative offset {offset}"))?;
    if version >= 3 {
        c.i32("leader epoch")?;
    }
    // Version 4 is a flexible version: a compact string (unsigned varint length + 1).
    let metadata = if version == 4 {
        c.compact_string("metadata")?
    } else {
        c.string("metadata")?
    };
    Ok((offset, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip_in_kafkas_layout() {
        let key = encode_key("g", "orders", 7);
        assert_eq!(
            key,
            [0, 1, 0, 1, b'g', 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 7]
        );
        assert_eq!(
            decode_key(&key).unwrap(),
            Some(("g".into(), "orders".into(), 7))
        );
        let value = encode_value(42, "", 1_700_000_000_000);
        assert_eq!(value.len(), 2 + 8 + 4 + 2 + 8);
        assert_eq!(&value[..2], &[0, 3]);
        assert_eq!(decode_value(&value).unwrap(), (42, String::new()));
        let value = encode_value(7, "remote=9", 1_700_000_000_000);
        assert_eq!(&value[14..16], &[0, 8]);
        assert_eq!(decode_value(&value).unwrap(), (7, "remote=9".to_string()));
        // Group metadata (key version 2) is not an offset commit.
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']).unwrap(), None);
        assert!(decode_key(&[0, 1, 0, 9, b'g']).is_err());
        assert!(decode_value(&[0, 9]).is_err());
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::record::Batch;
    use std::collections::HashMap;

    /// Every key and value version Kafka writes, from Kafka's own generated classes: offset
    /// commits are read (latest per key, tombstones remove), group metadata is skipped.
    #[test]
    fn reads_every_version_kafka_writes() {
        let bytes = include_bytes!("../../tests/fixtures/kafka-java/consumer-offsets.bin");
        let batch = Batch::parse(bytes).unwrap();
        let mut committed = HashMap::new();
        let mut scratch = Vec::new();
        for r in batch.records_with(&mut scratch).unwrap() {
            let r = r.unwrap();
            let key = decode_key(r.key().unwrap())
                .unwrap_or_else(|e| panic!("key at offset {}: {e}", r.offset()));
            let Some(key) = key else { continue };
            match r.value() {
                None => {
                    committed.remove(&key);
                }
                Some(v) => {
                    let (offset, metadata) = decode_value(v)
                        .unwrap_or_else(|e| panic!("value at offset {}: {e}", r.offset()));
                    if key.0 == "g1" && key.2 == 0 {
                        assert_eq!(metadata, "meta", "v3 metadata");
                    }
                    committed.insert(key, offset);
                }
            }
        }
        let k = |g: &str, p| (g.to_string(), "orders".to_string(), p);
        let expected = HashMap::from([(k("g1", 0), 42), (k("g0", 0), 3), (k("g4", 2), 99)]);
        assert_eq!(committed, expected);
    }
}
