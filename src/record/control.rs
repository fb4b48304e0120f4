//! Kafka control records: the single record of a control batch (attribute bit 5), such as
//! the COMMIT and ABORT markers that end a transaction (KIP-98).
//!
//! Key (4 bytes, big-endian): `version: int16` (0), `type: int16` (0 = ABORT, 1 = COMMIT;
//! newer Kafka also writes KRaft types 2..=6, read here as [`ControlType::Unknown`]).
//! Value of a COMMIT or ABORT marker (Kafka's `EndTxnMarker`, 6 bytes): `version: int16`
//! (0), `coordinatorEpoch: int32`. As in Kafka, a key or value with a version above 0 is read
//! as version 0 (its leading fields keep their meaning; extra bytes are ignored), and a
//! negative version is an error.

use byteorder::{BigEndian, ByteOrder};

use super::{
    encode_batch, Batch, BatchHeader, BatchSpec, DecodeError, EncodeError, Record, RecordView,
    CONTROL_BIT, NO_SEQUENCE, TRANSACTIONAL_BIT,
};

/// Size of a control record key (version 0).
pub const CONTROL_KEY_SIZE: usize = 4;
/// Size of an end-transaction-marker value (version 0).
pub const END_TXN_MARKER_VALUE_SIZE: usize = 6;
/// The key and marker-value version this crate writes.
pub const CONTROL_RECORD_VERSION: i16 = 0;

/// The type of a control record, from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// Type 0: the producer's ongoing transaction is aborted.
    Abort,
    /// Type 1: the producer's ongoing transaction is committed.
    Commit,
    /// Any other type id (newer Kafka writes KRaft control records, types 2..=6); readers
    /// skip these, as Kafka's consumer does.
    Unknown(i16),
}

impl ControlType {
    /// The type id stored in the key.
    pub fn id(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Unknown(id) => id,
        }
    }

    /// The type for a key's type id.
    pub fn from_id(id: i16) -> ControlType {
        match id {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Unknown(other),
        }
    }

    /// True for COMMIT and ABORT, the two end-transaction markers.
    pub fn is_txn_marker(self) -> bool {
        matches!(self, ControlType::Abort | ControlType::Commit)
    }

    /// Reads the type from a control record's key, as Kafka's `ControlRecordType.parse`.
    ///
    /// # Errors
    /// [`ControlError`] for a null key, a key shorter than 4 bytes, or a negative version.
    pub fn parse_key(key: Option<&[u8]>) -> Result<ControlType, ControlError> {
        let key = key.ok_or(ControlError::NullKey)?;
        if key.len() < CONTROL_KEY_SIZE {
            return Err(ControlError::ShortKey { len: key.len() });
        }
        let version = BigEndian::read_i16(&key[0..]);
        if version < 0 {
            return Err(ControlError::BadKeyVersion { version });
        }
        Ok(ControlType::from_id(BigEndian::read_i16(&key[2..])))
    }
}

/// Why a control record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Control records always have a key.
    #[error("control record has a null key")]
    NullKey,
    /// The key is shorter than its `version` and `type` fields.
    #[error("control record key of {len} bytes is shorter than 4")]
    ShortKey {
        /// Key length found.
        len: usize,
    },
    /// A negative key version (Kafka: "may indicate data corruption").
    #[error("control record key has invalid version {version}")]
    BadKeyVersion {
        /// The version found.
        version: i16,
    },
    /// A COMMIT or ABORT marker without a value.
    #[error("end transaction marker has a null value")]
    NullValue,
    /// A marker value shorter than its `version` and `coordinatorEpoch` fields.
    #[error("end transaction marker value of {len} bytes is shorter than 6")]
    ShortValue {
        /// Value length found.
        len: usize,
    },
    /// A negative marker value version.
    #[error("end transaction marker value has invalid version {version}")]
    BadValueVersion {
        /// The version found.
        version: i16,
    },
    /// A control batch whose records cannot be decoded.
    #[error("control batch: {0}")]
    Decode(#[from] DecodeError),
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// The key's version (0 in every Kafka release so far).
    pub version: i16,
    /// The key's type.
    pub control_type: ControlType,
    /// For COMMIT and ABORT: the transaction coordinator's epoch from the value. `None` for
    /// other types, whose values this crate does not interpret.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// Decodes a control record from its key and value, as Kafka's `ControlRecordType.parse`
    /// and `EndTransactionMarker.deserialize` do.
    ///
    /// # Errors
    /// [`ControlError`] for a missing, short or negative-version key, and for a COMMIT or
    /// ABORT whose value is missing, shorter than 6 bytes or has a negative version.
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<ControlRecord, ControlError> {
        let control_type = ControlType::parse_key(key)?;
        // parse_key checked the length.
        let version = key.map_or(0, BigEndian::read_i16);
        let coordinator_epoch = if control_type.is_txn_marker() {
            let value = value.ok_or(ControlError::NullValue)?;
            if value.len() < END_TXN_MARKER_VALUE_SIZE {
                return Err(ControlError::ShortValue { len: value.len() });
            }
            let value_version = BigEndian::read_i16(&value[0..]);
            if value_version < 0 {
                return Err(ControlError::BadValueVersion {
                    version: value_version,
                });
            }
            Some(BigEndian::read_i32(&value[2..]))
        } else {
            None
        };
        Ok(ControlRecord {
            version,
            control_type,
            coordinator_epoch,
        })
    }

    /// Decodes the control record `record` (a record of a control batch).
    ///
    /// # Errors
    /// As [`ControlRecord::parse`].
    pub fn from_view(record: &RecordView<'_>) -> Result<ControlRecord, ControlError> {
        ControlRecord::parse(record.key(), record.value())
    }

    /// The control record of a control batch: its first record, as Kafka reads it.
    /// `Ok(None)` for a batch that is not a control batch, and for a control batch left
    /// empty by compaction (Kafka's cleaner keeps such batches; they mark nothing).
    ///
    /// # Errors
    /// [`ControlError::Decode`] when the first record cannot be decoded, and the errors of
    /// [`ControlRecord::parse`].
    pub fn of_batch(batch: &Batch<'_>) -> Result<Option<ControlRecord>, ControlError> {
        if !batch.header().is_control() {
            return Ok(None);
        }
        match batch.records().next() {
            None => Ok(None),
            Some(r) => ControlRecord::from_view(&r?).map(Some),
        }
    }
}

/// The outcome an end-transaction marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerType {
    /// ABORT (control type 0).
    Abort,
    /// COMMIT (control type 1).
    Commit,
}

impl From<MarkerType> for ControlType {
    fn from(m: MarkerType) -> ControlType {
        match m {
            MarkerType::Abort => ControlType::Abort,
            MarkerType::Commit => ControlType::Commit,
        }
    }
}

/// Everything an end-transaction-marker batch holds, as Kafka's
/// `MemoryRecords.withEndTransactionMarker` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    /// Offset of the marker (the batch's only offset).
    pub offset: u64,
    /// The transactional producer's id.
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// The transaction coordinator's epoch.
    pub coordinator_epoch: i32,
    /// COMMIT or ABORT.
    pub marker: MarkerType,
    /// The record's (and the batch's) timestamp, create time.
    pub timestamp: i64,
    /// Written as is; -1 when unknown.
    pub partition_leader_epoch: i32,
}

impl EndTxnMarker {
    /// The control record key: version 0 and the marker's type.
    pub fn key(&self) -> [u8; CONTROL_KEY_SIZE] {
        let mut key = [0; CONTROL_KEY_SIZE];
        BigEndian::write_i16(&mut key[0..], CONTROL_RECORD_VERSION);
        BigEndian::write_i16(&mut key[2..], ControlType::from(self.marker).id());
        key
    }

    /// The marker value: version 0 and the coordinator epoch.
    pub fn value(&self) -> [u8; END_TXN_MARKER_VALUE_SIZE] {
        let mut value = [0; END_TXN_MARKER_VALUE_SIZE];
        BigEndian::write_i16(&mut value[0..], CONTROL_RECORD_VERSION);
        BigEndian::write_i32(&mut value[2..], self.coordinator_epoch);
        value
    }

    /// Appends the marker to `out` as one uncompressed control batch, byte for byte what
    /// Kafka's `MemoryRecords.withEndTransactionMarker` builds: attributes transactional +
    /// control (create time), base sequence -1, one record with no headers at offset and
    /// timestamp delta 0. Returns the batch header.
    ///
    /// # Errors
    /// [`EncodeError::TooLarge`] when `offset` is past `i64::MAX`. `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<BatchHeader, EncodeError> {
        let mut spec = BatchSpec::new(self.offset, self.timestamp);
        spec.partition_leader_epoch = self.partition_leader_epoch;
        spec.attributes = TRANSACTIONAL_BIT | CONTROL_BIT;
        spec.producer_id = self.producer_id;
        spec.producer_epoch = self.producer_epoch;
        spec.base_sequence = NO_SEQUENCE;
        let record = Record {
            key: Some(self.key().to_vec()),
            value: Some(self.value().to_vec()),
            headers: Vec::new(),
            timestamp: Some(self.timestamp),
        };
        encode_batch(out, &spec, &[record])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_follow_kafkas_rules() {
        let commit = [0, 0, 0, 1];
        let value = [0, 0, 0, 0, 0, 11];
        let r = ControlRecord::parse(Some(&commit), Some(&value)).unwrap();
        assert_eq!(r.control_type, ControlType::Commit);
        assert_eq!(r.coordinator_epoch, Some(11));
        // Newer versions are read as version 0; trailing bytes are ignored.
        let r = ControlRecord::parse(Some(&[0, 3, 0, 0, 9, 9]), Some(&[0, 1, 0, 0, 0, 5, 7, 7]))
            .unwrap();
        assert_eq!((r.version, r.control_type), (3, ControlType::Abort));
        assert_eq!(r.coordinator_epoch, Some(5));
        // KRaft types are kept as unknown; their values are not interpreted.
        let r = ControlRecord::parse(Some(&[0, 0, 0, 2]), None).unwrap();
        assert_eq!(r.control_type, ControlType::Unknown(2));
        assert_eq!(r.coordinator_epoch, None);
        let r = ControlRecord::parse(Some(&[0, 0, 0xff, 0xff]), Some(&[])).unwrap();
        assert_eq!(r.control_type, ControlType::Unknown(-1));

        assert_eq!(
            ControlRecord::parse(None, Some(&value)),
            Err(ControlError::NullKey)
        );
        assert_eq!(
            ControlRecord::parse(Some(&[0, 0, 0]), Some(&value)),
            Err(ControlError::ShortKey { len: 3 })
        );
        assert_eq!(
            ControlRecord::parse(Some(&[0xff, 0xfe, 0, 1]), Some(&value)),
            Err(ControlError::BadKeyVersion { version: -2 })
        );
        assert_eq!(
            ControlRecord::parse(Some(&commit), None),
            Err(ControlError::NullValue)
        );
        assert_eq!(
            ControlRecord::parse(Some(&commit), Some(&[0, 0, 0, 0, 11])),
            Err(ControlError::ShortValue { len: 5 })
        );
        assert_eq!(
            ControlRecord::parse(Some(&commit), Some(&[0x80, 0, 0, 0, 0, 11])),
            Err(ControlError::BadValueVersion { version: i16::MIN })
        );
    }

    #[test]
    fn encoded_marker_reads_back() {
        let m = EndTxnMarker {
            offset: 42,
            producer_id: 9,
            producer_epoch: 2,
            coordinator_epoch: -3,
            marker: MarkerType::Abort,
            timestamp: 1_700_000_000_000,
            partition_leader_epoch: -1,
        };
        let mut out = vec![0xAA];
        let h = m.encode(&mut out).unwrap();
        let batch = Batch::parse(&out[1..]).unwrap();
        assert_eq!(*batch.header(), h);
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.records_count),
            (42, 0, 1)
        );
        let r = ControlRecord::of_batch(&batch).unwrap().unwrap();
        assert_eq!(r.control_type, ControlType::Abort);
        assert_eq!(r.coordinator_epoch, Some(-3));

        let mut out = Vec::new();
        let too_far = EndTxnMarker {
            offset: u64::MAX,
            ..m
        };
        assert!(too_far.encode(&mut out).is_err());
        assert!(out.is_empty());
    }
}
