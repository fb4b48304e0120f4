//! Kafka v2 record batches (KIP-98). Field offsets follow FORMAT.md.

use byteorder::{BigEndian, ByteOrder};

use super::compression::{self, codec_name, CodecError, Compression, MAX_DECOMPRESSED_BYTES};
use super::encode::{checked_len, too_large};
use super::varint::{
    read_varint, read_varlong, varlong_len, write_varint, write_varlong, MAX_VARINT_LEN,
    MAX_VARLONG_LEN,
};
#[cfg(test)]
use super::{encode_batch, BatchSpec, Record};
use super::{DecodeError, EncodeError, Headers, RecordView};

/// Offset of `baseOffset` (int64).
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Offset of `batchLength` (int32): the bytes after this field.
pub const LENGTH_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// Bytes before the part counted by `batchLength`: baseOffset and batchLength.
pub const LOG_OVERHEAD: usize = LENGTH_OFFSET + 4;
/// Offset of `partitionLeaderEpoch` (int32).
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = LOG_OVERHEAD;
/// Offset of `magic` (int8, always 2).
pub const MAGIC_OFFSET: usize = PARTITION_LEADER_EPOCH_OFFSET + 4;
/// Offset of `crc` (uint32, CRC-32C of attributes..end).
pub const CRC_OFFSET: usize = MAGIC_OFFSET + 1;
/// Offset of `attributes` (int16); the CRC covers from here to the end of the batch.
pub const ATTRIBUTES_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of `lastOffsetDelta` (int32).
pub const LAST_OFFSET_DELTA_OFFSET: usize = ATTRIBUTES_OFFSET + 2;
/// Offset of `baseTimestamp` (int64).
pub const BASE_TIMESTAMP_OFFSET: usize = LAST_OFFSET_DELTA_OFFSET + 4;
/// Offset of `maxTimestamp` (int64).
pub const MAX_TIMESTAMP_OFFSET: usize = BASE_TIMESTAMP_OFFSET + 8;
/// Offset of `producerId` (int64).
pub const PRODUCER_ID_OFFSET: usize = MAX_TIMESTAMP_OFFSET + 8;
/// Offset of `producerEpoch` (int16).
pub const PRODUCER_EPOCH_OFFSET: usize = PRODUCER_ID_OFFSET + 8;
/// Offset of `baseSequence` (int32).
pub const BASE_SEQUENCE_OFFSET: usize = PRODUCER_EPOCH_OFFSET + 2;
/// Offset of `recordsCount` (int32).
pub const RECORDS_COUNT_OFFSET: usize = BASE_SEQUENCE_OFFSET + 4;
/// Size of the batch header; records start here.
pub const BATCH_HEADER_SIZE: usize = RECORDS_COUNT_OFFSET + 4;
/// Smallest valid `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: usize = BATCH_HEADER_SIZE - LOG_OVERHEAD;
/// The only supported magic value.
pub const MAGIC_V2: i8 = 2;

/// Attribute bits 0..=2: compression codec.
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are log-append time.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: transactional batch.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: control batch.
pub const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6: the base timestamp is the delete horizon (KIP-534).
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// Value of producer id, epoch and base sequence when no idempotent producer is used.
pub const NO_PRODUCER_ID: i64 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch written when unknown.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// The fixed 61-byte header of a v2 record batch, field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field (total size minus 12).
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch (-1 here).
    pub partition_leader_epoch: i32,
    /// Always 2.
    pub magic: i8,
    /// CRC-32C of attributes..end, as stored.
    pub crc: u32,
    /// Compression, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset (kept when compaction removes records).
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when that bit is set).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when unused.
    pub producer_id: i64,
    /// Idempotent producer epoch, -1 when unused.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when unused.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses and sanity-checks the header at the start of `buf` (length and magic only;
    /// the CRC needs the whole batch, see [`Batch::parse`]).
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when `buf` is shorter than 61 bytes, [`DecodeError::BadMagic`]
    /// and [`DecodeError::BadField`] for impossible values.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, DecodeError> {
        let Some(a) = buf.first_chunk::<BATCH_HEADER_SIZE>() else {
            return Err(Self::short(buf));
        };
        let h = BatchHeader {
            base_offset: i64::from_be_bytes(field(a, BASE_OFFSET_OFFSET)),
            batch_length: i32::from_be_bytes(field(a, LENGTH_OFFSET)),
            partition_leader_epoch: i32::from_be_bytes(field(a, PARTITION_LEADER_EPOCH_OFFSET)),
            magic: a[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(field(a, CRC_OFFSET)),
            attributes: i16::from_be_bytes(field(a, ATTRIBUTES_OFFSET)),
            last_offset_delta: i32::from_be_bytes(field(a, LAST_OFFSET_DELTA_OFFSET)),
            base_timestamp: i64::from_be_bytes(field(a, BASE_TIMESTAMP_OFFSET)),
            max_timestamp: i64::from_be_bytes(field(a, MAX_TIMESTAMP_OFFSET)),
            producer_id: i64::from_be_bytes(field(a, PRODUCER_ID_OFFSET)),
            producer_epoch: i16::from_be_bytes(field(a, PRODUCER_EPOCH_OFFSET)),
            base_sequence: i32::from_be_bytes(field(a, BASE_SEQUENCE_OFFSET)),
            records_count: i32::from_be_bytes(field(a, RECORDS_COUNT_OFFSET)),
        };
        // Length and magic are checked before the rest, as for a short buffer (`short`),
        // so that a garbage tail reports the most useful error.
        check_prefix(h.base_offset, h.batch_length, Some(h.magic))?;
        if h.last_offset_delta < 0 {
            return Err(DecodeError::BadField {
                field: "lastOffsetDelta",
                position: LAST_OFFSET_DELTA_OFFSET,
                value: h.last_offset_delta as i64,
            });
        }
        if h.base_offset
            .checked_add(h.last_offset_delta as i64)
            .is_none()
        {
            return Err(DecodeError::BadField {
                field: "lastOffsetDelta",
                position: LAST_OFFSET_DELTA_OFFSET,
                value: h.last_offset_delta as i64,
            });
        }
        // Each record takes at least 7 bytes (checked after decompression for compressed
        // batches, whose records may take less), and records_count cannot exceed offsets.
        if h.records_count < 0
            || h.records_count as i64 > h.last_offset_delta as i64 + 1
            || (h.attributes & COMPRESSION_MASK == 0
                && (h.records_count as usize) * 7 > h.batch_length as usize - MIN_BATCH_LENGTH)
        {
            return Err(DecodeError::BadField {
                field: "recordsCount",
                position: RECORDS_COUNT_OFFSET,
                value: h.records_count as i64,
            });
        }
        Ok(h)
    }

    /// The error for a buffer shorter than a header: the length and magic checks that its
    /// bytes allow, else truncation.
    #[cold]
    fn short(buf: &[u8]) -> DecodeError {
        let truncated = DecodeError::Truncated {
            position: buf.len(),
        };
        if buf.len() < LOG_OVERHEAD {
            return truncated;
        }
        check_prefix(
            BigEndian::read_i64(&buf[BASE_OFFSET_OFFSET..]),
            BigEndian::read_i32(&buf[LENGTH_OFFSET..]),
            buf.get(MAGIC_OFFSET).map(|&m| m as i8),
        )
        .err()
        .unwrap_or(truncated)
    }

    /// Total size of the batch in bytes, header included.
    pub fn size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record (base offset plus last offset delta).
    pub fn last_offset(&self) -> u64 {
        (self.base_offset + self.last_offset_delta as i64) as u64
    }

    /// Offset one past the last record.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Kafka's compression codec id (0 = none).
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// The batch's codec (at its default level); `None` for codec ids Kafka does not
    /// define (5..=7).
    pub fn codec(&self) -> Option<Compression> {
        Compression::from_id(self.compression())
    }

    /// True when record timestamps are log-append time (the batch's max timestamp).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// True when the batch holds one record per offset (nothing compacted away): record
    /// `i` then has offset delta `i`.
    pub(crate) fn is_dense(&self) -> bool {
        self.records_count as i64 == self.last_offset_delta as i64 + 1
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// True for transactional batches.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// The delete horizon a compaction set (KIP-534): with the delete-horizon attribute
    /// bit, the base timestamp is the time after which the batch's tombstones may go.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }
}

/// The checks of a header's first fields, in the order their errors are reported: the
/// length, the base offset, then the magic (`None` when the bytes end before it).
#[inline]
fn check_prefix(base_offset: i64, batch_length: i32, magic: Option<i8>) -> Result<(), DecodeError> {
    if batch_length < MIN_BATCH_LENGTH as i32 {
        return Err(DecodeError::BadField {
            field: "batchLength",
            position: LENGTH_OFFSET,
            value: batch_length as i64,
        });
    }
    if base_offset < 0 {
        return Err(DecodeError::BadField {
            field: "baseOffset",
            position: BASE_OFFSET_OFFSET,
            value: base_offset,
        });
    }
    match magic {
        Some(magic) if magic != MAGIC_V2 => Err(DecodeError::BadMagic { position: 0, magic }),
        _ => Ok(()),
    }
}

/// The `N` bytes at `at` of a header (constant positions: no bounds checks remain).
#[inline(always)]
pub(crate) fn field<const N: usize>(a: &[u8; BATCH_HEADER_SIZE], at: usize) -> [u8; N] {
    let mut f = [0; N];
    f.copy_from_slice(&a[at..at + N]);
    f
}

/// One whole, CRC-checked record batch borrowed from a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
}

/// CRC-32C (Castagnoli) over `bytes`, as Kafka computes it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

impl<'a> Batch<'a> {
    /// Parses the batch at the start of `buf`: header checks, then the CRC over the whole
    /// batch. Records are decoded lazily by [`Batch::records`]; [`Batch::validate`] checks
    /// them all at once.
    ///
    /// # Errors
    /// As [`BatchHeader::parse`], plus [`DecodeError::Truncated`] when `buf` holds less
    /// than the whole batch and [`DecodeError::CrcMismatch`].
    pub fn parse(buf: &'a [u8]) -> Result<Batch<'a>, DecodeError> {
        let batch = Batch::parse_unchecked(buf)?;
        let (header, bytes) = (batch.header, batch.bytes);
        let computed = crc32c(&bytes[ATTRIBUTES_OFFSET..]);
        if computed != header.crc {
            return Err(DecodeError::CrcMismatch {
                position: 0,
                stored: header.crc,
                computed,
            });
        }
        Ok(Batch { header, bytes })
    }

    /// As [`Batch::parse`] without the CRC check, for bytes whose CRC was checked already.
    #[inline]
    pub(crate) fn parse_unchecked(buf: &'a [u8]) -> Result<Batch<'a>, DecodeError> {
        let header = BatchHeader::parse(buf)?;
        let size = header.size();
        if buf.len() < size {
            return Err(DecodeError::Truncated {
                position: buf.len(),
            });
        }
        Ok(Batch {
            header,
            bytes: &buf[..size],
        })
    }

    /// The batch whose header, parsed before, is `header` and whose bytes start `buf`
    /// (no checks: for a reader that parsed and checked it already). `None` when `buf` is
    /// shorter than the header says.
    #[inline]
    pub(crate) fn from_parts(header: BatchHeader, buf: &'a [u8]) -> Option<Batch<'a>> {
        Some(Batch {
            header,
            bytes: buf.get(..header.size())?,
        })
    }

    /// The header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, exactly as stored (ready to forward to Kafka byte for byte).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset of the first record slot.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset as u64
    }

    /// Offset of the last record slot.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// Decodes the records of an uncompressed batch one by one, borrowing the batch. For a
    /// compressed batch the first item is [`DecodeError::UnsupportedCompression`] naming
    /// the codec (use [`Batch::records_with`]).
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            header: self.header,
            buf: self.bytes,
            pos: BATCH_HEADER_SIZE,
            left: self.header.records_count as usize,
            last_delta: -1,
            failed: false,
            decompressed: false,
        }
    }

    /// Decodes the records of any batch: an uncompressed one is borrowed as by
    /// [`Batch::records`] (`scratch` is untouched); a compressed one is decompressed into
    /// `scratch` (cleared first) and its records borrow from there. Errors of records
    /// inside a compressed batch come as [`DecodeError::CompressedRecord`].
    ///
    /// # Errors
    /// [`DecodeError::CodecDisabled`] when the codec's cargo feature is off,
    /// [`DecodeError::UnsupportedCompression`] for codec ids 5..=7,
    /// [`DecodeError::Decompress`] for a corrupt or truncated stream or one that inflates
    /// past [`MAX_DECOMPRESSED_BYTES`], `BadField("recordsCount")` when the decompressed
    /// section is too short for the record count.
    pub fn records_with<'b>(&self, scratch: &'b mut Vec<u8>) -> Result<RecordIter<'b>, DecodeError>
    where
        'a: 'b,
    {
        let codec = self.header.compression();
        if codec == 0 {
            return Ok(self.records());
        }
        scratch.clear();
        compression::decompress(
            codec,
            &self.bytes[BATCH_HEADER_SIZE..],
            scratch,
            MAX_DECOMPRESSED_BYTES,
        )
        .map_err(decode_codec_error)?;
        if (self.header.records_count as usize) * 7 > scratch.len() {
            return Err(DecodeError::BadField {
                field: "recordsCount",
                position: RECORDS_COUNT_OFFSET,
                value: self.header.records_count as i64,
            });
        }
        Ok(RecordIter {
            header: self.header,
            buf: scratch,
            pos: 0,
            left: self.header.records_count as usize,
            last_delta: -1,
            failed: false,
            decompressed: true,
        })
    }

    /// Appends this batch's decompressed records section to `out` (a compressed batch) and
    /// returns where it lies there; `out` is left as it was on an error. For readers that
    /// keep many batches' records in one buffer ([`Batch::records_in`]).
    pub(crate) fn decompress_append(
        &self,
        out: &mut Vec<u8>,
    ) -> Result<std::ops::Range<usize>, DecodeError> {
        let start = out.len();
        let result = compression::decompress(
            self.header.compression(),
            &self.bytes[BATCH_HEADER_SIZE..],
            out,
            start + MAX_DECOMPRESSED_BYTES,
        )
        .map_err(decode_codec_error)
        .and_then(|()| {
            if (self.header.records_count as usize) * 7 > out.len() - start {
                return Err(DecodeError::BadField {
                    field: "recordsCount",
                    position: RECORDS_COUNT_OFFSET,
                    value: self.header.records_count as i64,
                });
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(start..out.len()),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// For an uncompressed, dense batch (one record per offset), the positions in the
    /// batch of records `stride`, `2 * stride`, ...: where a lookup may start stepping
    /// (see [`RecordIter::seek`]). `None` for other batches or malformed lengths.
    pub(crate) fn record_starts(&self, stride: usize) -> Option<Vec<u32>> {
        let h = &self.header;
        if h.compression() != 0 || !h.is_dense() {
            return None;
        }
        let buf = self.bytes;
        let mut starts = Vec::with_capacity(h.records_count as usize / stride.max(1));
        let mut pos = BATCH_HEADER_SIZE;
        for i in 0..h.records_count as usize {
            if i > 0 && i % stride == 0 {
                starts.push(u32::try_from(pos).ok()?);
            }
            let len = usize::try_from(fast_varint(buf, &mut pos, MAX_VARINT_LEN)?).ok()?;
            pos = pos.checked_add(len).filter(|&p| p <= buf.len())?;
        }
        Some(starts)
    }

    /// The records of this compressed batch from its decompressed records `section` (as
    /// [`Batch::decompress_append`] made it).
    pub(crate) fn records_in<'b>(&self, section: &'b [u8]) -> RecordIter<'b> {
        RecordIter {
            header: self.header,
            buf: section,
            pos: 0,
            left: self.header.records_count as usize,
            last_delta: -1,
            failed: false,
            decompressed: true,
        }
    }

    /// Decodes every record of an uncompressed batch, checking that exactly
    /// `recordsCount` records fill it. A compressed batch fails with
    /// [`DecodeError::UnsupportedCompression`] as [`Batch::records`] does: callers that
    /// read records with [`Batch::records`] must not take it as checked.
    /// [`Batch::validate_all`] decompresses.
    ///
    /// # Errors
    /// The first record-level [`DecodeError`].
    pub fn validate(&self) -> Result<(), DecodeError> {
        self.records().check_rest()
    }

    /// Decodes every record, decompressing a compressed batch, checking that exactly
    /// `recordsCount` records fill the batch.
    ///
    /// # Errors
    /// As [`Batch::records_with`], then the first record-level [`DecodeError`].
    pub fn validate_all(&self) -> Result<(), DecodeError> {
        let mut scratch = Vec::new();
        self.records_with(&mut scratch)?.check_rest()
    }

    /// This batch cut to its records below `offset`, byte for byte: the header is kept
    /// (base offset and timestamp, producer fields, attributes), the kept records' bytes
    /// are copied unchanged, and `lastOffsetDelta`, `recordsCount`, `maxTimestamp`,
    /// `batchLength` and the CRC are recomputed. `lastOffsetDelta` becomes
    /// `offset - 1 - baseOffset`, so the batch still ends just before `offset`.
    /// A compressed batch is decompressed, cut, and recompressed with its own codec (at
    /// Kafka's default level); the kept records' decompressed bytes are unchanged.
    /// `None` when no record lies below `offset`.
    ///
    /// # Errors
    /// As [`Batch::records_with`], a record-level [`DecodeError`], and
    /// [`DecodeError::Recompress`].
    pub fn truncated_before(&self, offset: u64) -> Result<Option<Vec<u8>>, DecodeError> {
        let mut scratch = Vec::new();
        let mut it = self.records_with(&mut scratch)?;
        let start = it.pos;
        let (mut kept, mut end, mut max_ts) = (0i32, start, i64::MIN);
        while let Some(r) = it.next() {
            let r = r?;
            if r.offset() >= offset {
                break;
            }
            kept += 1;
            end = it.pos;
            max_ts = max_ts.max(r.timestamp());
        }
        if kept == 0 {
            return Ok(None);
        }
        let mut h = self.header;
        h.last_offset_delta = (offset - 1 - self.base_offset()) as i32;
        h.records_count = kept;
        if !h.is_log_append_time() {
            h.max_timestamp = max_ts;
        }
        let codec = self.header.codec().unwrap_or_default();
        build_batch(h, &it.buf[start..end], codec).map(Some)
    }
}

/// A batch from header `h` (attributes' codec bits, `batchLength` and the CRC are set
/// here) and an uncompressed records section `records`, compressed with `codec`.
fn build_batch(
    mut h: BatchHeader,
    records: &[u8],
    codec: Compression,
) -> Result<Vec<u8>, DecodeError> {
    let recompress = |e: EncodeError| DecodeError::Recompress {
        position: BATCH_HEADER_SIZE,
        source: e,
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_SIZE + records.len());
    out.resize(BATCH_HEADER_SIZE, 0);
    compression::compress(codec, records, &mut out)
        .map_err(|e| recompress(encode_codec_error(e)))?;
    h.attributes = (h.attributes & !COMPRESSION_MASK) | codec.id() as i16;
    h.batch_length = checked_len("batch length", out.len() - LOG_OVERHEAD).map_err(recompress)?;
    write_header(&mut out, &h);
    let crc = crc32c(&out[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut out[CRC_OFFSET..], crc);
    Ok(out)
}

/// The batch-level error for a codec failure while decoding.
fn decode_codec_error(e: CodecError) -> DecodeError {
    match e {
        CodecError::Unknown(codec) => DecodeError::UnsupportedCompression { position: 0, codec },
        CodecError::Disabled { codec, feature } => DecodeError::CodecDisabled {
            position: 0,
            codec,
            feature,
        },
        CodecError::TooLarge { codec, limit } => DecodeError::Decompress {
            position: BATCH_HEADER_SIZE,
            codec,
            reason: format!("inflates past the {limit}-byte limit (MAX_DECOMPRESSED_BYTES)"),
        },
        CodecError::Failed { codec, reason } => DecodeError::Decompress {
            position: BATCH_HEADER_SIZE,
            codec,
            reason,
        },
    }
}

/// The batch-level error for a codec failure while encoding.
pub(super) fn encode_codec_error(e: CodecError) -> EncodeError {
    match e {
        CodecError::Unknown(codec) => EncodeError::Compress {
            codec: codec_name(codec),
            reason: format!("unknown codec id {codec}"),
        },
        CodecError::Disabled { codec, feature } => EncodeError::CodecDisabled { codec, feature },
        CodecError::TooLarge { limit, .. } => {
            too_large("uncompressed records section", limit + 1, limit)
        }
        CodecError::Failed { codec, reason } => EncodeError::Compress { codec, reason },
    }
}

impl Batch<'_> {
    /// This batch with only the records `keep` accepts (compaction). The header keeps its
    /// base offset, `lastOffsetDelta`, producer fields, leader epoch and attributes, so the
    /// batch still spans the same offsets (the removed ones become gaps); `recordsCount`,
    /// `maxTimestamp` (the kept records' largest, or unchanged when none is kept),
    /// `batchLength` and the CRC are recomputed. Kept records are copied byte for byte —
    /// unless `delete_horizon` is given: then the delete-horizon bit is set, the base
    /// timestamp becomes the horizon and each record's `timestampDelta` is re-encoded
    /// against it (Kafka's layout, KIP-534), so record timestamps do not change.
    /// Returns the new batch and the number of records kept.
    ///
    /// A compressed batch is decompressed, filtered, and recompressed with its own codec
    /// (at Kafka's default level); [`Batch::filtered_as`] picks the codec.
    ///
    /// # Errors
    /// As [`Batch::records_with`], a record-level [`DecodeError`],
    /// `BadField("timestampDelta")` when a record's timestamp is too far from the horizon
    /// for a 64-bit delta, and [`DecodeError::Recompress`].
    pub fn filtered(
        &self,
        keep: impl FnMut(&RecordView<'_>) -> bool,
        delete_horizon: Option<i64>,
    ) -> Result<(Vec<u8>, usize), DecodeError> {
        let codec = self.header.codec().unwrap_or_default();
        self.filtered_as(keep, delete_horizon, codec)
    }

    /// As [`Batch::filtered`], with the kept records compressed with `codec` whatever the
    /// batch's own codec is (Kafka's cleaner recompresses with the topic's
    /// `compression.type`; pass the batch's [`BatchHeader::codec`] for `producer`). A batch
    /// that keeps no record is written as a header alone, uncompressed, as Kafka writes an
    /// empty batch.
    ///
    /// # Errors
    /// As [`Batch::filtered`]; [`DecodeError::Recompress`] when `codec`'s feature is off
    /// or its level is out of range.
    pub fn filtered_as(
        &self,
        mut keep: impl FnMut(&RecordView<'_>) -> bool,
        delete_horizon: Option<i64>,
        codec: Compression,
    ) -> Result<(Vec<u8>, usize), DecodeError> {
        let mut h = self.header;
        let mut scratch = Vec::new();
        let mut it = self.records_with(&mut scratch)?;
        let buf = it.buf;
        let mut body = Vec::with_capacity(buf.len());
        let (mut kept, mut max_ts) = (0usize, None::<i64>);
        let mut start = it.pos;
        while let Some(r) = it.next() {
            let r = r?;
            let end = it.pos;
            if keep(&r) {
                kept += 1;
                max_ts = Some(max_ts.map_or(r.timestamp(), |m| m.max(r.timestamp())));
                let raw = &buf[start..end];
                match delete_horizon {
                    None => body.extend_from_slice(raw),
                    Some(horizon) => {
                        let delta = r.timestamp().checked_sub(horizon).ok_or_else(|| {
                            it.wrap(DecodeError::BadField {
                                field: "timestampDelta",
                                position: start,
                                value: r.timestamp(),
                            })
                        })?;
                        rebase_record(&mut body, raw, delta)
                            .map_err(|e| it.wrap(shift(e, start)))?
                    }
                }
            }
            start = end;
        }
        if let Some(horizon) = delete_horizon {
            h.attributes |= DELETE_HORIZON_BIT;
            h.base_timestamp = horizon;
        }
        h.records_count = kept as i32;
        if let (Some(ts), false) = (max_ts, h.is_log_append_time()) {
            h.max_timestamp = ts;
        }
        let codec = if kept == 0 { Compression::None } else { codec };
        Ok((build_batch(h, &body, codec)?, kept))
    }
}

/// Appends the record `raw` (length-framed) to `out` with its `timestampDelta` replaced.
fn rebase_record(out: &mut Vec<u8>, raw: &[u8], ts_delta: i64) -> Result<(), DecodeError> {
    let mut pos = 0;
    read_varint(raw, &mut pos)?; // length
    let attributes_at = pos;
    pos += 1;
    read_varlong(raw, &mut pos)?; // the old timestampDelta
    let rest = &raw[pos..];
    let body = 1 + varlong_len(ts_delta) + rest.len();
    write_varint(out, body as i32);
    out.push(raw[attributes_at]);
    write_varlong(out, ts_delta);
    out.extend_from_slice(rest);
    Ok(())
}

/// Iterator over the records of a [`Batch`].
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    header: BatchHeader,
    buf: &'a [u8],
    pos: usize,
    left: usize,
    last_delta: i64,
    failed: bool,
    /// `buf` is the decompressed records section of a compressed batch (positions count
    /// from its start), not the batch itself.
    decompressed: bool,
}

impl<'a> RecordIter<'a> {
    /// For records decoded from a decompressed section, `e` wrapped to say so (its own
    /// position counts in the decompressed bytes); otherwise `e`.
    fn wrap(&self, e: DecodeError) -> DecodeError {
        if !self.decompressed {
            return e;
        }
        DecodeError::CompressedRecord {
            position: BATCH_HEADER_SIZE,
            codec: codec_name(self.header.compression()),
            source: Box::new(e),
        }
    }

    /// After the iterator is exhausted: checks that no bytes are left over.
    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(DecodeError::BadField {
                field: "recordsCount",
                position: RECORDS_COUNT_OFFSET,
                value: self.header.records_count as i64,
            });
        }
        Ok(())
    }

    fn decode_one(&mut self) -> Result<RecordView<'a>, DecodeError> {
        let buf = self.buf;
        let start = self.pos;
        let mut pos = start;
        let len = read_varint(buf, &mut pos)?;
        if len < 0 || pos + len as usize > buf.len() {
            return Err(DecodeError::BadField {
                field: "length",
                position: start,
                value: len as i64,
            });
        }
        let end = pos + len as usize;
        let body = &buf[..end];
        // attributes: unused in v2, one byte
        if pos >= end {
            return Err(DecodeError::Truncated { position: pos });
        }
        pos += 1;
        let ts_pos = pos;
        let ts_delta = read_varlong(body, &mut pos)?;
        let delta_pos = pos;
        let offset_delta = read_varint(body, &mut pos)? as i64;
        if offset_delta <= self.last_delta || offset_delta > self.header.last_offset_delta as i64 {
            return Err(DecodeError::BadField {
                field: "offsetDelta",
                position: delta_pos,
                value: offset_delta,
            });
        }
        self.last_delta = offset_delta;
        let key = read_bytes(body, &mut pos, "keyLength")?;
        let value = read_bytes(body, &mut pos, "valueLength")?;
        let count_pos = pos;
        let count = read_varint(body, &mut pos)?;
        if count < 0 || count as usize > (end - pos) / 2 {
            return Err(DecodeError::BadField {
                field: "headersCount",
                position: count_pos,
                value: count as i64,
            });
        }
        let headers_start = pos;
        for _ in 0..count {
            let at = pos;
            if read_bytes(body, &mut pos, "headerKeyLength")?.is_none() {
                return Err(DecodeError::BadField {
                    field: "headerKeyLength",
                    position: at,
                    value: -1,
                });
            }
            read_bytes(body, &mut pos, "headerValueLength")?;
        }
        if pos != end {
            return Err(DecodeError::BadField {
                field: "length",
                position: start,
                value: len as i64,
            });
        }
        let timestamp = if self.header.is_log_append_time() {
            self.header.max_timestamp
        } else {
            self.header
                .base_timestamp
                .checked_add(ts_delta)
                .ok_or(DecodeError::BadField {
                    field: "timestampDelta",
                    position: ts_pos,
                    value: ts_delta,
                })?
        };
        self.pos = end;
        Ok(RecordView {
            offset: (self.header.base_offset + offset_delta) as u64,
            timestamp,
            key,
            value,
            headers: Headers {
                raw: &buf[headers_start..end],
                count: count as usize,
            },
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.advance_fast() {
            return Some(Ok(r));
        }
        if self.failed {
            return None;
        }
        if self.left == 0 {
            // Leftover bytes after the last record are reported once.
            if let Err(e) = self.finish() {
                self.failed = true;
                return Some(Err(self.wrap(e)));
            }
            return None;
        }
        if self.header.compression() != 0 && !self.decompressed {
            self.failed = true;
            return Some(Err(DecodeError::UnsupportedCompression {
                position: 0,
                codec: self.header.compression(),
            }));
        }
        // The fast path refused the record: the checked decoder says exactly why.
        self.left -= 1;
        let r = self.decode_one();
        self.failed = r.is_err();
        Some(r.map_err(|e| self.wrap(e)))
    }
}

/// A zig-zag varint of at most `max_len` bytes, `None` when malformed or cut short.
#[inline(always)]
fn fast_varint(buf: &[u8], pos: &mut usize, max_len: usize) -> Option<i64> {
    // One byte: deltas, null or short lengths, header counts.
    let b0 = *buf.get(*pos)?;
    if b0 < 0x80 {
        *pos += 1;
        return Some(((b0 >> 1) as i64) ^ -((b0 & 1) as i64));
    }
    let mut z: u64 = 0;
    for i in 0..max_len {
        let b = *buf.get(*pos + i)?;
        z |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            *pos += i + 1;
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

/// A varint length followed by that many bytes; `Some(None)` for length -1 (null).
#[inline(always)]
fn fast_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = fast_varint(buf, pos, MAX_VARINT_LEN)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let bytes = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(Some(bytes))
}

impl<'a> RecordIter<'a> {
    /// The next record by the fast decoder, with the iterator moved past it; `None` (and
    /// nothing moved) at the end, after a failure, for a compressed batch read without
    /// decompressing, or when the fast decoder refuses the record.
    #[inline]
    fn advance_fast(&mut self) -> Option<RecordView<'a>> {
        if self.left == 0 || self.failed || (self.header.compression() != 0 && !self.decompressed) {
            return None;
        }
        let (r, end, delta) = self.decode_fast()?;
        self.pos = end;
        self.last_delta = delta;
        self.left -= 1;
        Some(r)
    }

    /// The next record, `None` at the end or at the first malformed record (for readers of
    /// checked batches, which hold none): [`Iterator::next`] without the `Result`.
    #[inline]
    pub(crate) fn next_valid(&mut self) -> Option<RecordView<'a>> {
        self.advance_fast().or_else(|| self.next()?.ok())
    }

    /// Checks the records not yet decoded, as iterating them would, without handing any
    /// out, then that no bytes are left over: the first error, as `next` would give it.
    fn check_rest(mut self) -> Result<(), DecodeError> {
        while self.advance_fast().is_some() {}
        match self.next() {
            Some(Err(e)) => Err(e),
            // Only possible if the checked decoder accepts what the fast one refused.
            Some(Ok(_)) => self.check_rest(),
            None => Ok(()),
        }
    }

    /// Moves to record number `index` of a dense batch, found at `pos` by
    /// [`Batch::record_starts`] (the records before it are skipped unread).
    pub(crate) fn seek(&mut self, pos: usize, index: usize) {
        if index <= self.left && pos <= self.buf.len() && self.last_delta == -1 {
            self.pos = pos;
            self.left -= index;
            self.last_delta = index as i64 - 1;
        }
    }

    /// Steps over the records below `offset` by their length prefixes, without decoding
    /// them (a lookup in a large batch). For batches already checked: it stops early,
    /// leaving the rest to the checked decoder, on anything unexpected. In a dense batch
    /// (one record per offset) record `i` has offset delta `i`, so only lengths are read.
    pub(crate) fn skip_below(&mut self, offset: u64) {
        let Some(target) = offset
            .checked_sub(self.header.base_offset as u64)
            .and_then(|t| i64::try_from(t).ok())
            .filter(|&t| t > self.last_delta + 1)
        else {
            return; // nothing below `offset` is left to step over
        };
        let buf = self.buf;
        let dense = self.header.is_dense();
        if dense {
            // Record `i` has offset delta `i`: step over `skip` records by length alone.
            let skip = ((target - (self.last_delta + 1)).max(0) as usize).min(self.left);
            let (mut pos, mut n) = (self.pos, 0);
            // Two bytes are read at a time, so the walk stops one byte short of the end
            // (the last record, if reached, is left to the decoder).
            let limit = buf.len().saturating_sub(1);
            while n < skip && pos < limit {
                let w = u16::from_le_bytes([buf[pos], buf[pos + 1]]) as usize;
                // The zig-zag length from one byte, or from two.
                let (z, next) = if w & 0x80 == 0 {
                    (w & 0x7f, pos + 1)
                } else if w & 0x8000 == 0 {
                    ((w & 0x7f) | (w >> 8) << 7, pos + 2)
                } else {
                    break; // a length of 8 KiB or more: the general walk below
                };
                let next = next + (z >> 1);
                if z & 1 != 0 || next > buf.len() {
                    break;
                }
                pos = next;
                n += 1;
            }
            self.pos = pos;
            self.left -= n;
            self.last_delta += n as i64;
        }
        while self.left > 0 && self.last_delta + 1 < target {
            let mut pos = self.pos;
            let Some(len) =
                fast_varint(buf, &mut pos, MAX_VARINT_LEN).and_then(|l| usize::try_from(l).ok())
            else {
                return;
            };
            let Some(end) = pos.checked_add(len).filter(|&e| e <= buf.len()) else {
                return;
            };
            let delta = if dense {
                self.last_delta + 1
            } else {
                pos += 1; // record attributes
                match fast_varint(buf, &mut pos, MAX_VARLONG_LEN)
                    .and_then(|_| fast_varint(buf, &mut pos, MAX_VARINT_LEN))
                {
                    Some(d) if d > self.last_delta && pos <= end => d,
                    _ => return,
                }
            };
            if delta >= target {
                return;
            }
            self.pos = end;
            self.left -= 1;
            self.last_delta = delta;
        }
    }
}

impl<'a> RecordIter<'a> {
    /// Decodes the record at `self.pos` with the same checks as [`RecordIter::decode_one`]
    /// but no error detail: `None` for anything that decoder would refuse (and then it
    /// runs to name the problem). Returns the record, its end and its offset delta.
    #[inline]
    fn decode_fast(&self) -> Option<(RecordView<'a>, usize, i64)> {
        let buf = self.buf;
        let mut pos = self.pos;
        let len = usize::try_from(fast_varint(buf, &mut pos, MAX_VARINT_LEN)?).ok()?;
        if len > i32::MAX as usize {
            return None;
        }
        let end = pos.checked_add(len)?;
        let body = buf.get(..end)?;
        pos += 1; // record attributes (unused)
        let ts_delta = fast_varint(body, &mut pos, MAX_VARLONG_LEN)?;
        let offset_delta = fast_varint(body, &mut pos, MAX_VARINT_LEN)?;
        if pos > end
            || offset_delta <= self.last_delta
            || offset_delta > self.header.last_offset_delta as i64
        {
            return None;
        }
        let key = fast_bytes(body, &mut pos)?;
        let value = fast_bytes(body, &mut pos)?;
        let count = usize::try_from(fast_varint(body, &mut pos, MAX_VARINT_LEN)?).ok()?;
        if count > (end - pos) / 2 {
            return None;
        }
        let headers_start = pos;
        for _ in 0..count {
            fast_bytes(body, &mut pos)??; // a header name must not be null
            fast_bytes(body, &mut pos)?;
        }
        if pos != end {
            return None;
        }
        let timestamp = if self.header.is_log_append_time() {
            self.header.max_timestamp
        } else {
            self.header.base_timestamp.checked_add(ts_delta)?
        };
        let view = RecordView {
            offset: (self.header.base_offset + offset_delta) as u64,
            timestamp,
            key,
            value,
            headers: Headers {
                raw: &buf[headers_start..end],
                count,
            },
        };
        Some((view, end, offset_delta))
    }
}

/// Reads a varint length and that many bytes; length -1 is null.
#[inline]
pub(crate) fn read_bytes<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    field: &'static str,
) -> Result<Option<&'a [u8]>, DecodeError> {
    let at = *pos;
    let len = read_varint(buf, pos)?;
    if len == -1 {
        return Ok(None);
    }
    if len < 0 || (len as usize) > buf.len() - *pos {
        return Err(DecodeError::BadField {
            field,
            position: at,
            value: len as i64,
        });
    }
    let s = &buf[*pos..*pos + len as usize];
    *pos += len as usize;
    Ok(Some(s))
}

/// Walks a buffer of concatenated batches (a `.log` file's bytes), checking each one.
///
/// Yields each batch with its byte position in the buffer. After an error it yields
/// nothing more; [`BatchIter::position`] tells where the valid prefix ends.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates the batches in `buf`.
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Byte position just past the last batch yielded.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, Batch<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        match Batch::parse(&self.buf[at..]) {
            Ok(b) => {
                self.pos += b.as_bytes().len();
                Some(Ok((at, b)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(shift(e, at)))
            }
        }
    }
}

/// Moves the position in a decode error by `by` bytes (from batch-relative to buffer-relative).
pub fn shift(e: DecodeError, by: usize) -> DecodeError {
    match e {
        DecodeError::Truncated { position } => DecodeError::Truncated {
            position: position + by,
        },
        DecodeError::BadField {
            field,
            position,
            value,
        } => DecodeError::BadField {
            field,
            position: position + by,
            value,
        },
        DecodeError::BadMagic { position, magic } => DecodeError::BadMagic {
            position: position + by,
            magic,
        },
        DecodeError::CrcMismatch {
            position,
            stored,
            computed,
        } => DecodeError::CrcMismatch {
            position: position + by,
            stored,
            computed,
        },
        DecodeError::BadVarint { position } => DecodeError::BadVarint {
            position: position + by,
        },
        DecodeError::UnsupportedCompression { position, codec } => {
            DecodeError::UnsupportedCompression {
                position: position + by,
                codec,
            }
        }
        DecodeError::CodecDisabled {
            position,
            codec,
            feature,
        } => DecodeError::CodecDisabled {
            position: position + by,
            codec,
            feature,
        },
        DecodeError::Decompress {
            position,
            codec,
            reason,
        } => DecodeError::Decompress {
            position: position + by,
            codec,
            reason,
        },
        // The inner error counts in the decompressed section and stays as it is.
        DecodeError::CompressedRecord {
            position,
            codec,
            source,
        } => DecodeError::CompressedRecord {
            position: position + by,
            codec,
            source,
        },
        DecodeError::Recompress { position, source } => DecodeError::Recompress {
            position: position + by,
            source,
        },
    }
}

impl DecodeError {
    /// The byte position the error refers to.
    pub fn position(&self) -> usize {
        match *self {
            DecodeError::Truncated { position }
            | DecodeError::BadField { position, .. }
            | DecodeError::BadMagic { position, .. }
            | DecodeError::CrcMismatch { position, .. }
            | DecodeError::BadVarint { position }
            | DecodeError::UnsupportedCompression { position, .. }
            | DecodeError::CodecDisabled { position, .. }
            | DecodeError::Decompress { position, .. }
            | DecodeError::CompressedRecord { position, .. }
            | DecodeError::Recompress { position, .. } => position,
        }
    }
}

/// Sets the `maxTimestamp` of the whole encoded batch `bytes` and recomputes its CRC.
pub(crate) fn set_max_timestamp(bytes: &mut [u8], max_timestamp: i64) {
    BigEndian::write_i64(&mut bytes[MAX_TIMESTAMP_OFFSET..], max_timestamp);
    let crc = crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut bytes[CRC_OFFSET..], crc);
}

/// Writes every header field except the CRC into `buf[..61]`.
pub(super) fn write_header(buf: &mut [u8], h: &BatchHeader) {
    BigEndian::write_i64(&mut buf[BASE_OFFSET_OFFSET..], h.base_offset);
    BigEndian::write_i32(&mut buf[LENGTH_OFFSET..], h.batch_length);
    BigEndian::write_i32(
        &mut buf[PARTITION_LEADER_EPOCH_OFFSET..],
        h.partition_leader_epoch,
    );
    buf[MAGIC_OFFSET] = h.magic as u8;
    BigEndian::write_i16(&mut buf[ATTRIBUTES_OFFSET..], h.attributes);
    BigEndian::write_i32(&mut buf[LAST_OFFSET_DELTA_OFFSET..], h.last_offset_delta);
    BigEndian::write_i64(&mut buf[BASE_TIMESTAMP_OFFSET..], h.base_timestamp);
    BigEndian::write_i64(&mut buf[MAX_TIMESTAMP_OFFSET..], h.max_timestamp);
    BigEndian::write_i64(&mut buf[PRODUCER_ID_OFFSET..], h.producer_id);
    BigEndian::write_i16(&mut buf[PRODUCER_EPOCH_OFFSET..], h.producer_epoch);
    BigEndian::write_i32(&mut buf[BASE_SEQUENCE_OFFSET..], h.base_sequence);
    BigEndian::write_i32(&mut buf[RECORDS_COUNT_OFFSET..], h.records_count);
}

/// Reads the big-endian `u32` at `buf[at..]` (for index entries).
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    BigEndian::read_u32(&buf[at..])
}

/// Reads the big-endian `i64` at `buf[at..]` (for index entries).
pub(crate) fn read_i64(buf: &[u8], at: usize) -> i64 {
    BigEndian::read_i64(&buf[at..])
}

/// Writes `v` big-endian at `buf[at..]` (for index entries).
pub(crate) fn write_u32(buf: &mut [u8], at: usize, v: u32) {
    BigEndian::write_u32(&mut buf[at..], v)
}

/// Writes `v` big-endian at `buf[at..]` (for index entries).
pub(crate) fn write_i64(buf: &mut [u8], at: usize, v: i64) {
    BigEndian::write_i64(&mut buf[at..], v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_batch(values: &[Vec<u8>]) -> Vec<u8> {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut r = Record::new(v.clone()).with_timestamp(1000 - i as i64 * 7);
                if i % 2 == 0 {
                    r = r
                        .with_key(vec![i as u8; i % 5])
                        .with_header("h", Some(v.clone()));
                }
                r
            })
            .collect();
        let mut out = Vec::new();
        encode_batch(&mut out, &BatchSpec::new(10, 0), &records).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The fast record decoder accepts only what the checked one accepts, with the same
        /// result, on valid and on damaged record bytes (the CRC is not involved here).
        #[test]
        fn fast_decoder_agrees_with_checked_decoder(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = sample_batch(&values);
            for (at, x) in flips {
                let i = BATCH_HEADER_SIZE + at % (bytes.len() - BATCH_HEADER_SIZE);
                bytes[i] ^= x;
            }
            let batch = Batch::parse_unchecked(&bytes).unwrap();
            let mut it = batch.records();
            while it.left > 0 {
                it.left -= 1;
                let fast = it.decode_fast();
                let slow = it.clone().decode_one();
                match (fast, slow) {
                    (Some((f, end, _)), Ok(s)) => {
                        prop_assert_eq!(f, s);
                        let mut check = it.clone();
                        check.decode_one().unwrap();
                        prop_assert_eq!(end, check.pos);
                    }
                    (None, Err(_)) => break,
                    (None, Ok(s)) => prop_assert!(false, "fast refused what checked accepted: {:?}", s),
                    (Some((f, _, _)), Err(e)) => prop_assert!(false, "fast accepted {:?}, checked refused: {}", f, e),
                }
                let _ = it.decode_one();
            }
        }
    }
}
