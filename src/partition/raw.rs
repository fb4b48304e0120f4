//! Raw batches in and out: [`Partition::append_raw`] appends v2 batches as given (a broker
//! receiving a Produce request, or a follower copying a leader), and [`Batch`]'s forwarding
//! helpers say whether a Kafka broker would take a stored batch from a producer as is, and
//! re-encode it densely when not.
//!
//! The checks follow Kafka's `UnifiedLog.analyzeAndValidateRecords` and
//! `LogValidator.validateBatch` (v2 only). Compressed batches are opaque here: they are
//! appended as they are (the CRC covers their payload) and only their headers are read or
//! changed.

use std::borrow::Cow;

use byteorder::{BigEndian, ByteOrder};

use super::{AppendAt, Partition};
use crate::config::{TimestampType, TopicCompression};
use crate::error::{Error, Result};
use crate::record::{
    encode_batch, Batch, BatchHeader, BatchSpec, DecodeError, EncodeError, Record,
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, LENGTH_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET,
    MAGIC_V2, MAX_TIMESTAMP_OFFSET, MIN_BATCH_LENGTH, TIMESTAMP_TYPE_BIT,
};
use crate::segment::MAX_RELATIVE_OFFSET;
use crate::AppendInfo;

/// How [`Partition::append_raw`] places batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetMode {
    /// As a Kafka broker does for a producer: each batch gets the next offsets (its base
    /// offset is rewritten; the CRC does not cover it), and on a log-append-time topic its
    /// max timestamp becomes the store clock's time. Refuses what a broker refuses from a
    /// producer (see [`ForwardError`]).
    Assign,
    /// As a Kafka follower does: offsets are kept. A batch must start at or past the log
    /// end offset (and past the previous batch of the same call); gaps are allowed.
    Keep,
}

/// Why [`Partition::append_raw`] refused a batch (in [`Error::InvalidBatch`], which names
/// the batch's index and byte position in the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchProblem {
    /// The input ends inside the batch (a cut batch, or bytes after the last whole batch).
    #[error("the input ends inside this batch: {available} bytes left{}", .needed.map_or_else(String::new, |n| format!(", the batch's length field says {n}")))]
    Incomplete {
        /// Bytes from the batch's start to the end of the input.
        available: usize,
        /// The batch's size by its length field, when that much could be read.
        needed: Option<usize>,
    },
    /// The bytes are not a valid v2 batch: magic other than 2, CRC mismatch, an impossible
    /// header field (such as `lastOffsetDelta` or `recordsCount`), or records that do not
    /// decode. Positions are relative to the batch's start.
    #[error("{0}")]
    Decode(DecodeError),
    /// Larger than the topic allows.
    #[error("batch of {size} bytes exceeds {limit_name} of {limit} bytes")]
    TooLarge {
        /// The batch's size.
        size: usize,
        /// `max_batch_bytes` or `segment_bytes`.
        limit_name: &'static str,
        /// Its value.
        limit: u64,
    },
    /// [`OffsetMode::Keep`]: the batch starts below the log end offset or the previous
    /// batch's end.
    #[error("base offset {base_offset} is below {expected}: kept offsets must not go backwards")]
    Backwards {
        /// The batch's base offset.
        base_offset: u64,
        /// The lowest base offset allowed.
        expected: u64,
    },
    /// [`OffsetMode::Keep`]: the batch's last offset lies more than 2^31 - 1 past the end
    /// of the log, so no segment can hold both (index entries store 32-bit offsets).
    #[error("offset gap too large: last offset {last_offset} is more than 2^31 - 1 past the log's data end {data_end}")]
    GapTooLarge {
        /// The batch's last offset.
        last_offset: u64,
        /// Where the segment that would hold it would start.
        data_end: u64,
    },
    /// [`OffsetMode::Assign`]: the offsets the batch would get pass `i64::MAX`.
    #[error("offsets {base_offset} + {last_offset_delta} pass the largest offset")]
    OffsetOverflow {
        /// The base offset it would get.
        base_offset: u64,
        /// Its `lastOffsetDelta`.
        last_offset_delta: i32,
    },
    /// A create-time topic's `max_timestamp_skew_ms` refuses a timestamp this far ahead.
    #[error("timestamp {timestamp} is more than {max_skew_ms} ms ahead of the clock ({now}); see TopicConfig::max_timestamp_skew_ms")]
    TimestampSkew {
        /// The batch's largest timestamp (header or record).
        timestamp: i64,
        /// The store clock.
        now: i64,
        /// The topic's limit.
        max_skew_ms: u64,
    },
    /// [`OffsetMode::Assign`]: a Kafka broker refuses this batch from a producer.
    #[error("refused as a producer's batch: {0}")]
    Refused(ForwardError),
}

/// Why a batch cannot be sent to a Kafka broker by a producer as it is
/// ([`Batch::producer_refusal`]), or cannot be re-encoded ([`Batch::to_dense`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// `recordsCount` is 0 (Kafka: "Invalid reported count for record batch").
    #[error("the batch holds no records")]
    Empty,
    /// `recordsCount` differs from the number of offsets the batch spans (Kafka:
    /// "Inconsistent batch offset range"): compaction removed records from it.
    #[error("{records} records in a range of {offsets} offsets (thinned by compaction)")]
    Thinned {
        /// `recordsCount`.
        records: i32,
        /// `lastOffsetDelta + 1`.
        offsets: u64,
    },
    /// A control batch (a transaction marker): only a transaction coordinator writes them.
    #[error("a control batch (transaction marker): clients may not write control records")]
    Control,
    /// A producer id with a negative base sequence (Kafka: "Invalid sequence number").
    #[error("producer id {producer_id} with base sequence {base_sequence}")]
    NoSequence {
        /// The producer id.
        producer_id: i64,
        /// The base sequence.
        base_sequence: i32,
    },
    /// [`Batch::to_dense`]: the records do not decode or re-encode.
    #[error("records cannot be re-encoded: {0}")]
    Records(String),
}

impl Partition {
    /// Appends one or more Kafka v2 record batches, back to back in `batches` (as in a
    /// Produce request, a Fetch response or a `.log` file), without re-encoding them:
    /// their bytes are written as given except for the header fields `mode` says.
    ///
    /// Every batch is checked before anything is written, and nothing is written when one
    /// fails: whole batches only (no trailing bytes), magic 2, CRC-32C, header fields
    /// (`lastOffsetDelta`, `recordsCount`), the records (decompressed), size
    /// against `max_batch_bytes` and `segment_bytes`, and on create-time topics the
    /// largest timestamp against `max_timestamp_skew_ms`.
    ///
    /// - [`OffsetMode::Assign`] (a broker taking a producer's batch): batch `i` gets base
    ///   offset log end + the offsets of the batches before it. Refused, as by Kafka's
    ///   `LogValidator`: control batches, batches with no records or whose `recordsCount`
    ///   is not `lastOffsetDelta + 1`, and a producer id with a negative base sequence.
    ///   Unlike Kafka's Produce handling, any incoming base offset is accepted (it is
    ///   replaced) and several batches may come in one call. On a log-append-time topic
    ///   the max timestamp becomes the store clock's time and the timestamp-type bit is
    ///   set; on a create-time topic an uncompressed batch's max timestamp is set to its
    ///   records' largest and the bit cleared (Kafka's `setMaxTimestamp`); the CRC is
    ///   recomputed only when these changed.
    /// - [`OffsetMode::Keep`] (a follower): offsets, timestamps and everything else are
    ///   kept. Each batch must start at or past the log end offset and the previous
    ///   batch's end; offsets in between become a gap, which reads skip (a read inside it
    ///   returns the next batch).
    ///
    /// Either way the partition leader epoch, producer id and epoch, base sequence and
    /// attributes (transactional, control) stay as they are, and compressed batches stay
    /// compressed — except that with `Assign` on a topic whose
    /// [`compression`](crate::TopicConfig::compression) names a codec, a batch in another
    /// codec (or none) is re-encoded in the topic's, as Kafka's broker does (`producer`,
    /// the default, keeps every batch's own). Segments roll as for [`Partition::append`], always at the
    /// end of the data, so that an offset gap lies inside a segment. Durability, flush
    /// policy and wake-ups are those of `append`. The returned [`AppendInfo`] spans all
    /// the batches.
    ///
    /// # Errors
    /// [`Error::EmptyAppend`] for empty input; [`Error::InvalidBatch`] naming the first
    /// bad batch's index and byte position and the [`BatchProblem`]; [`Error::Closed`];
    /// [`Error::Poisoned`]; I/O errors (which poison the partition, as for `append`).
    pub fn append_raw(&self, batches: &[u8], mode: OffsetMode) -> Result<AppendInfo> {
        if batches.is_empty() {
            return Err(Error::EmptyAppend);
        }
        let (batches, starts) = self.recompressed(batches, mode);
        // Errors name the position in the caller's input, not in a recompressed copy.
        let input_position = |pos: usize| match starts.partition_point(|&(new, _)| new <= pos) {
            0 => pos,
            i => starts[i - 1].1 + (pos - starts[i - 1].0),
        };
        self.append_batches(|at, buf, headers| {
            buf.clear();
            buf.extend_from_slice(&batches);
            let (mut pos, mut next, mut data_end) = (0, at.log_end, at.roll_base);
            while pos < buf.len() {
                let h = self
                    .check_raw(&mut buf[pos..], mode, next, data_end, at)
                    .map_err(|problem| Error::InvalidBatch {
                        partition: self.inner.name.clone(),
                        index: headers.len(),
                        position: input_position(pos),
                        problem,
                    })?;
                pos += h.size();
                next = h.next_offset();
                data_end = next;
                headers.push(h);
            }
            Ok(())
        })
    }

    /// With [`OffsetMode::Assign`] on a topic whose `compression.type` names a codec, the
    /// input with every batch in another codec re-encoded in the topic's (as Kafka's
    /// broker recompresses a producer's batch); otherwise the input as it is. A batch that
    /// fails to parse or re-encode is left as it is, for the checks to report. With a
    /// copy, also where each batch (and the unparsed rest) starts in it and in the input.
    fn recompressed<'a>(
        &self,
        batches: &'a [u8],
        mode: OffsetMode,
    ) -> (Cow<'a, [u8]>, Vec<(usize, usize)>) {
        let TopicCompression::Codec(codec) = self.inner.config.compression else {
            return (Cow::Borrowed(batches), Vec::new());
        };
        if mode != OffsetMode::Assign {
            return (Cow::Borrowed(batches), Vec::new());
        }
        let mut starts = Vec::new();
        let mut out: Option<Vec<u8>> = None;
        let mut rest = batches;
        while !rest.is_empty() {
            let Ok(b) = Batch::parse(rest) else { break };
            let len = b.as_bytes().len();
            let done = batches.len() - rest.len();
            starts.push((out.as_ref().map_or(done, Vec::len), done));
            let rewritten = (b.header().compression() != codec.id() && !b.header().is_control())
                .then(|| b.filtered_as(|_| true, None, codec).ok())
                .flatten();
            match (rewritten, &mut out) {
                (Some((bytes, _)), out) => {
                    out.get_or_insert_with(|| batches[..done].to_vec())
                        .extend_from_slice(&bytes);
                }
                (None, Some(out)) => out.extend_from_slice(b.as_bytes()),
                (None, None) => {}
            }
            rest = &rest[len..];
        }
        match out {
            Some(mut out) => {
                starts.push((out.len(), batches.len() - rest.len()));
                out.extend_from_slice(rest);
                (Cow::Owned(out), starts)
            }
            None => (Cow::Borrowed(batches), Vec::new()),
        }
    }

    /// Checks the batch at the start of `rest` (the input from it on) and applies `mode`
    /// to its header. `next`: the lowest base offset allowed (and the one `Assign` gives);
    /// `data_end`: where a roll before it would start the next segment.
    fn check_raw(
        &self,
        rest: &mut [u8],
        mode: OffsetMode,
        next: u64,
        data_end: u64,
        at: &AppendAt,
    ) -> Result<BatchHeader, BatchProblem> {
        let available = rest.len();
        if available < LOG_OVERHEAD {
            return Err(BatchProblem::Incomplete {
                available,
                needed: None,
            });
        }
        // Magic first: a v0/v1 message set has its magic at the same position, and its
        // length field would otherwise be reported as the problem.
        if let Some(&magic) = rest.get(MAGIC_OFFSET) {
            if magic as i8 != MAGIC_V2 {
                return Err(BatchProblem::Decode(DecodeError::BadMagic {
                    position: 0,
                    magic: magic as i8,
                }));
            }
        }
        let length = BigEndian::read_i32(&rest[LENGTH_OFFSET..]);
        if length >= MIN_BATCH_LENGTH as i32 && length as usize + LOG_OVERHEAD > available {
            return Err(BatchProblem::Incomplete {
                available,
                needed: Some(length as usize + LOG_OVERHEAD),
            });
        }
        let batch = Batch::parse(rest).map_err(|e| match e {
            DecodeError::Truncated { .. } => BatchProblem::Incomplete {
                available,
                needed: None,
            },
            e => BatchProblem::Decode(e),
        })?;
        let h = *batch.header();
        // Records are checked here (compressed ones decompressed): the segment marks what
        // it appends as checked, so reads would not look at them again. A batch whose
        // codec is not built in is taken on its CRC, as recovery does.
        let mut records_max = None::<i64>;
        match batch.validate_all() {
            Ok(()) | Err(DecodeError::CodecDisabled { .. }) => {}
            Err(e) => return Err(BatchProblem::Decode(e)),
        }
        let mut scratch = Vec::new();
        if let Ok(records) = batch.records_with(&mut scratch) {
            for r in records {
                let ts = r.map_err(BatchProblem::Decode)?.timestamp();
                records_max = Some(records_max.map_or(ts, |m| m.max(ts)));
            }
        }
        if let Some((limit_name, limit)) = self.size_limit_exceeded(h.size()) {
            return Err(BatchProblem::TooLarge {
                size: h.size(),
                limit_name,
                limit,
            });
        }
        let config = &self.inner.config;
        if let (TimestampType::CreateTime, Some(skew)) =
            (config.timestamp_type, config.max_timestamp_skew_ms)
        {
            let timestamp = h.max_timestamp.max(records_max.unwrap_or(i64::MIN));
            if timestamp > at.now.saturating_add(skew.min(i64::MAX as u64) as i64) {
                return Err(BatchProblem::TimestampSkew {
                    timestamp,
                    now: at.now,
                    max_skew_ms: skew,
                });
            }
        }
        match mode {
            OffsetMode::Keep => {
                if (h.base_offset as u64) < next {
                    return Err(BatchProblem::Backwards {
                        base_offset: h.base_offset as u64,
                        expected: next,
                    });
                }
                if h.last_offset() - data_end > MAX_RELATIVE_OFFSET {
                    return Err(BatchProblem::GapTooLarge {
                        last_offset: h.last_offset(),
                        data_end,
                    });
                }
                Ok(h)
            }
            OffsetMode::Assign => {
                if let Some(refusal) = batch.producer_refusal() {
                    return Err(BatchProblem::Refused(refusal));
                }
                if next.saturating_add(h.last_offset_delta as u64) > i64::MAX as u64 {
                    return Err(BatchProblem::OffsetOverflow {
                        base_offset: next,
                        last_offset_delta: h.last_offset_delta,
                    });
                }
                // Outside the CRC.
                BigEndian::write_i64(&mut rest[BASE_OFFSET_OFFSET..], next as i64);
                let (attributes, max_timestamp) = match (config.timestamp_type, records_max) {
                    (TimestampType::LogAppendTime, _) => {
                        (h.attributes | TIMESTAMP_TYPE_BIT, at.now)
                    }
                    (TimestampType::CreateTime, Some(max)) => {
                        (h.attributes & !TIMESTAMP_TYPE_BIT, max)
                    }
                    // No records to read (a codec not built in): its header stays.
                    (TimestampType::CreateTime, None) => (h.attributes, h.max_timestamp),
                };
                if (attributes, max_timestamp) != (h.attributes, h.max_timestamp) {
                    BigEndian::write_i16(&mut rest[ATTRIBUTES_OFFSET..], attributes);
                    BigEndian::write_i64(&mut rest[MAX_TIMESTAMP_OFFSET..], max_timestamp);
                    let end = h.size();
                    let crc = crate::record::crc32c(&rest[ATTRIBUTES_OFFSET..end]);
                    BigEndian::write_u32(&mut rest[CRC_OFFSET..], crc);
                }
                BatchHeader::parse(rest).map_err(BatchProblem::Decode)
            }
        }
    }
}

impl Batch<'_> {
    /// Why a Kafka broker would refuse this batch from a producer, or `None` when it takes
    /// it as is (Kafka's `LogValidator.validateBatch` for v2, header fields only): no
    /// records; a `recordsCount` other than `lastOffsetDelta + 1` (compaction removed
    /// records, leaving offset gaps); a control batch; a producer id with a negative base
    /// sequence. The records of a batch read from a partition were checked at read, so a
    /// count that matches also means consecutive offset deltas.
    ///
    /// A broker also wants the base offset to be 0 in a Produce request, and one batch
    /// per partition per request: [`Batch::forward_bytes`] sets it. Beyond the batch
    /// itself, a broker checks the producer's state: an idempotent or transactional
    /// batch keeps its producer id, epoch and sequence, which the destination cluster must
    /// know (else [`Batch::to_dense`] gives a batch without them).
    pub fn producer_refusal(&self) -> Option<ForwardError> {
        let h = self.header();
        let offsets = h.last_offset_delta as u64 + 1;
        if h.records_count <= 0 {
            Some(ForwardError::Empty)
        } else if h.records_count as u64 != offsets {
            Some(ForwardError::Thinned {
                records: h.records_count,
                offsets,
            })
        } else if h.is_control() {
            Some(ForwardError::Control)
        } else if h.producer_id >= 0 && h.base_sequence < 0 {
            Some(ForwardError::NoSequence {
                producer_id: h.producer_id,
                base_sequence: h.base_sequence,
            })
        } else {
            None
        }
    }

    /// The batch's bytes as a producer sends them in a Produce request: unchanged except
    /// the base offset, which becomes 0 (it lies outside the CRC, which stays valid).
    /// Compressed batches stay compressed.
    ///
    /// # Errors
    /// [`Batch::producer_refusal`]'s reason, when there is one.
    pub fn forward_bytes(&self) -> Result<Vec<u8>, ForwardError> {
        if let Some(refusal) = self.producer_refusal() {
            return Err(refusal);
        }
        let mut out = self.as_bytes().to_vec();
        BigEndian::write_i64(&mut out[BASE_OFFSET_OFFSET..], 0);
        Ok(out)
    }

    /// The batch re-encoded densely, as a producer would send its records: base offset 0,
    /// records renumbered 0, 1, 2, ..., each keeping its key, value, headers and
    /// timestamp (as read: on a log-append-time batch, the append time), create-time
    /// timestamp type, compressed with the batch's own codec (at its default level).
    ///
    /// Producer fields are cleared (producer id, epoch and base sequence -1, not
    /// transactional, leader epoch -1): the original sequence numbers no longer match
    /// once records were removed (a broker would see a sequence gap before the
    /// producer's next batch, `OutOfOrderSequenceException`), and the producer id belongs
    /// to the source cluster. A forwarding producer that wants idempotence writes its own
    /// id, epoch and sequence: [`Batch::records`] and
    /// [`encode_batch`](crate::record::encode_batch) with a
    /// [`BatchSpec`](crate::record::BatchSpec) do that.
    ///
    /// # Errors
    /// [`ForwardError::Control`] (control records are never a producer's);
    /// [`ForwardError::Empty`]; [`ForwardError::Records`] when the records do not decode
    /// (a codec not built in included) or re-encode.
    pub fn to_dense(&self) -> Result<Vec<u8>, ForwardError> {
        let h = self.header();
        if h.is_control() {
            return Err(ForwardError::Control);
        }
        let mut scratch = Vec::new();
        let records = self
            .records_with(&mut scratch)
            .map_err(|e| ForwardError::Records(e.to_string()))?
            .map(|r| r.map(|r| r.to_record()))
            .collect::<Result<Vec<Record>, DecodeError>>()
            .map_err(|e| ForwardError::Records(e.to_string()))?;
        let mut out = Vec::new();
        let mut spec = BatchSpec::new(0, h.max_timestamp);
        spec.compression = h.codec().unwrap_or_default();
        match encode_batch(&mut out, &spec, &records) {
            Ok(_) => Ok(out),
            Err(EncodeError::Empty) => Err(ForwardError::Empty),
            Err(e) => Err(ForwardError::Records(e.to_string())),
        }
    }
}
