//! The Kafka v2 record batch codec: pure functions over byte slices, no I/O.
//!
//! [`encode_batch`] writes records as one batch, from owned [`Record`]s or borrowed
//! [`RecordRef`]s (anything [`AsRecord`]); [`Batch::parse`] checks a batch (length,
//! magic, CRC-32C) and [`Batch::records`] decodes its records as borrowed [`RecordView`]s.
//! [`BatchIter`] walks a buffer of concatenated batches, as found in a `.log` file.
//! Compressed batches ([`Compression`]) are decoded by [`Batch::records_with`], which
//! decompresses into a caller's buffer.
//! FORMAT.md is the byte-level spec this module follows.

mod batch;
mod compression;
mod control;
pub(crate) mod encode;
pub(crate) mod varint;

pub use batch::*;
pub use compression::{Compression, MAX_DECOMPRESSED_BYTES};
pub use control::{
    ControlError, ControlRecord, ControlType, EndTxnMarker, MarkerType, CONTROL_KEY_SIZE,
    CONTROL_RECORD_VERSION, END_TXN_MARKER_VALUE_SIZE,
};
pub use encode::{encode_batch, AsRecord, BatchSpec, RecordRef};

/// Why bytes are not a valid Kafka v2 record batch. Positions are byte offsets into the
/// slice that was decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the structure at `position` does.
    #[error("truncated at byte {position}")]
    Truncated {
        /// Where the missing bytes would start.
        position: usize,
    },
    /// A batch header field holds an impossible value.
    #[error("bad {field} at byte {position}: {value}")]
    BadField {
        /// The header or record field name as FORMAT.md spells it.
        field: &'static str,
        /// Where the field starts.
        position: usize,
        /// The value found.
        value: i64,
    },
    /// The magic byte is not 2 (only v2 batches are supported).
    #[error("unsupported magic {magic} at byte {position} (only v2 record batches are supported)")]
    BadMagic {
        /// Where the batch starts.
        position: usize,
        /// The magic found.
        magic: i8,
    },
    /// The stored CRC-32C does not match the bytes.
    #[error("crc mismatch at byte {position}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// Where the batch starts.
        position: usize,
        /// The CRC in the header.
        stored: u32,
        /// The CRC of attributes..end.
        computed: u32,
    },
    /// A varint is longer than its type allows or does not fit.
    #[error("malformed varint at byte {position}")]
    BadVarint {
        /// Where the varint starts.
        position: usize,
    },
    /// The batch is compressed and was read without decompressing
    /// ([`Batch::records`]; [`Batch::records_with`] decompresses), or its codec id is
    /// not one Kafka defines (5..=7).
    #[error("batch at byte {position} is compressed with codec {codec} ({name}); its records need decompressing", name = compression::codec_name(*codec))]
    UnsupportedCompression {
        /// Where the batch starts.
        position: usize,
        /// Kafka's codec id (1 gzip, 2 snappy, 3 lz4, 4 zstd).
        codec: u8,
    },
    /// The batch's codec is one Kafka defines but this build leaves out (its cargo
    /// feature is off).
    #[error("batch at byte {position} is compressed with {codec}, but seglog was built without the `{feature}` cargo feature")]
    CodecDisabled {
        /// Where the batch starts.
        position: usize,
        /// Kafka's codec name (`gzip`, `snappy`, `lz4`, `zstd`).
        codec: &'static str,
        /// The cargo feature that builds the codec in.
        feature: &'static str,
    },
    /// The compressed records section does not decompress: corrupt, cut short, or larger
    /// than [`MAX_DECOMPRESSED_BYTES`].
    #[error("{codec} records section at byte {position} does not decompress: {reason}")]
    Decompress {
        /// Where the compressed section starts (just after the batch header).
        position: usize,
        /// Kafka's codec name.
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
    /// A record inside a compressed batch is malformed. `position` is where the compressed
    /// section starts; `source`'s own position counts bytes of the decompressed records
    /// section (its first record is at 0).
    #[error("{codec}-compressed records section at byte {position}: {source} (position within the decompressed records)")]
    CompressedRecord {
        /// Where the compressed section starts (just after the batch header).
        position: usize,
        /// Kafka's codec name.
        codec: &'static str,
        /// The error, positioned in the decompressed records section.
        source: Box<DecodeError>,
    },
    /// Rewriting a compressed batch (truncation, compaction) could not compress the kept
    /// records: the target codec's feature is off, or its level is out of range.
    #[error("cannot rewrite the batch's records section at byte {position}: {source}")]
    Recompress {
        /// Where the records section starts (just after the batch header).
        position: usize,
        /// Why compressing failed.
        source: EncodeError,
    },
}

/// Why records cannot be encoded as a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Kafka's format stores this quantity in a signed 32-bit field.
    #[error("{what} of {value} does not fit the batch format (limit {limit})")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// The value.
        value: u64,
        /// The format's limit.
        limit: u64,
    },
    /// A record timestamp is too far from the batch's base timestamp to encode as a delta.
    #[error("timestamp {timestamp} cannot be stored relative to base timestamp {base}")]
    TimestampDelta {
        /// The record's timestamp.
        timestamp: i64,
        /// The batch's base timestamp.
        base: i64,
    },
    /// A batch with dense offsets needs at least one record (its last offset delta would
    /// be -1).
    #[error("a batch needs at least one record")]
    Empty,
    /// The codec is one Kafka defines but this build leaves out (its cargo feature is off).
    #[error(
        "cannot compress with {codec}: seglog was built without the `{feature}` cargo feature"
    )]
    CodecDisabled {
        /// Kafka's codec name (`gzip`, `snappy`, `lz4`, `zstd`).
        codec: &'static str,
        /// The cargo feature that builds the codec in.
        feature: &'static str,
    },
    /// The codec refused: a level outside its range, or an internal codec failure.
    #[error("cannot compress with {codec}: {reason}")]
    Compress {
        /// Kafka's codec name.
        codec: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// A record header: a UTF-8 name and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// The header value; `None` is Kafka's null header value.
    pub value: Option<Vec<u8>>,
}

/// A record to append: key, value, headers and an optional timestamp.
///
/// A `None` value is a tombstone (for compacted topics); a `None` timestamp means "now"
/// (Kafka's create time, taken from the store's clock at append).
///
/// ```
/// use seglog::Record;
/// let r = Record::new(b"hello".to_vec())
///     .with_key(b"user-1".to_vec())
///     .with_header("trace", Some(b"abc".to_vec()))
///     .with_timestamp(1_700_000_000_000);
/// assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key; `None` is Kafka's null key (distinct from an empty key).
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in order; names may repeat.
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` takes the time of the append.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with this value and no key, headers or timestamp.
    pub fn new(value: impl Into<Vec<u8>>) -> Record {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A tombstone (null value) for `key`.
    pub fn tombstone(key: impl Into<Vec<u8>>) -> Record {
        Record {
            key: Some(key.into()),
            ..Record::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Record {
        self.key = Some(key.into());
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Record {
        self.timestamp = Some(timestamp);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> Record {
        self.headers.push(Header {
            key: key.into(),
            value,
        });
        self
    }
}

/// A record read from a batch, borrowing its bytes: nothing is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Headers<'a>,
}

impl<'a> RecordView<'a> {
    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// The record's timestamp in milliseconds (the batch's max timestamp for log-append time).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key, `None` for a null key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The value, `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// True when the value is null.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
    /// The headers, in order.
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }
    /// Copies this view into an owned [`Record`] (header names decoded lossily as UTF-8).
    pub fn to_record(&self) -> Record {
        Record {
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| Header {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: v.map(<[u8]>::to_vec),
                })
                .collect(),
            timestamp: Some(self.timestamp),
        }
    }
}

/// The headers of a [`RecordView`], decoded lazily from already validated bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) count: usize,
}

impl<'a> Headers<'a> {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The headers as `(name, value)` pairs; a `None` value is Kafka's null.
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter {
            raw: self.raw,
            pos: 0,
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    raw: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The bytes were validated when the record was decoded; on the impossible error,
        // stop rather than panic.
        let key = batch::read_bytes(self.raw, &mut self.pos, "headerKey").ok()??;
        let value = batch::read_bytes(self.raw, &mut self.pos, "headerValue").ok()?;
        Some((key, value))
    }
}
