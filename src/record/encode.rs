//! Encoding records as one v2 batch: [`encode_batch`] over anything that is [`AsRecord`],
//! so that an append can borrow its records' bytes ([`RecordRef`]) instead of owning them.

use byteorder::{BigEndian, ByteOrder};

use super::batch::{
    write_header, BatchHeader, ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, COMPRESSION_MASK, CRC_OFFSET,
    LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE, TIMESTAMP_TYPE_BIT,
};
use super::compression::{self, Compression, MAX_DECOMPRESSED_BYTES};
use super::varint::{varint_len, varlong_len, zigzag};
use super::{crc32c, EncodeError, Header, Headers, Record, RecordView};

/// The header fields of a batch to encode that do not come from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Written as is; -1 when unknown.
    pub partition_leader_epoch: i32,
    /// Attributes; the codec bits (0..=2) are ignored, `compression` sets them.
    pub attributes: i16,
    /// The codec the records section is compressed with.
    pub compression: Compression,
    /// -1 when unused.
    pub producer_id: i64,
    /// -1 when unused.
    pub producer_epoch: i16,
    /// -1 when unused.
    pub base_sequence: i32,
    /// Timestamp given to records whose `timestamp` is `None`, and to every record when
    /// the timestamp-type bit of `attributes` says log-append time.
    pub default_timestamp: i64,
}

impl BatchSpec {
    /// A plain batch at `base_offset`: no producer id, unknown leader epoch, create time,
    /// uncompressed.
    pub fn new(base_offset: u64, default_timestamp: i64) -> BatchSpec {
        BatchSpec {
            base_offset,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: 0,
            compression: Compression::None,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            default_timestamp,
        }
    }
}

/// A record to append whose bytes are borrowed: what [`Partition::append`] encodes, from a
/// [`Record`] it owns, from bytes the caller keeps (no copy before the batch is encoded),
/// or from a [`RecordView`] read elsewhere (its headers are copied as they are encoded).
///
/// [`Partition::append`]: crate::Partition::append
///
/// ```
/// use seglog::RecordRef;
/// let payload = vec![7u8; 100];
/// let headers = [("trace", Some(&b"abc"[..]))];
/// let r = RecordRef::new(&payload).with_key(b"user-1").with_headers(&headers);
/// assert_eq!(r.value, Some(&payload[..]));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRef<'a> {
    /// The key; `None` is Kafka's null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the Unix epoch; `None` takes the time of the append.
    pub timestamp: Option<i64>,
    headers: HeaderSource<'a>,
}

/// Where a [`RecordRef`]'s headers come from.
#[derive(Debug, Clone, Copy)]
enum HeaderSource<'a> {
    Owned(&'a [Header]),
    Pairs(&'a [(&'a str, Option<&'a [u8]>)]),
    /// Already in the record format (a [`RecordView`]'s): copied as they are.
    Encoded(Headers<'a>),
}

impl Default for HeaderSource<'_> {
    fn default() -> Self {
        HeaderSource::Pairs(&[])
    }
}

impl<'a> RecordRef<'a> {
    /// A record with this value and no key, headers or timestamp.
    pub fn new(value: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            value: Some(value),
            ..RecordRef::default()
        }
    }

    /// A tombstone (null value) for `key`.
    pub fn tombstone(key: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            key: Some(key),
            ..RecordRef::default()
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn with_key(mut self, key: &'a [u8]) -> RecordRef<'a> {
        self.key = Some(key);
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: i64) -> RecordRef<'a> {
        self.timestamp = Some(timestamp);
        self
    }

    /// Sets the headers: `(name, value)` pairs in order, a `None` value being Kafka's null.
    #[must_use]
    pub fn with_headers(mut self, headers: &'a [(&'a str, Option<&'a [u8]>)]) -> RecordRef<'a> {
        self.headers = HeaderSource::Pairs(headers);
        self
    }

    /// The number of headers.
    pub fn header_count(&self) -> usize {
        match self.headers {
            HeaderSource::Owned(h) => h.len(),
            HeaderSource::Pairs(h) => h.len(),
            HeaderSource::Encoded(h) => h.len(),
        }
    }

    /// The headers as `(name, value)` pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let (owned, pairs, encoded) = match self.headers {
            HeaderSource::Owned(h) => (h, &[][..], None),
            HeaderSource::Pairs(h) => (&[][..], h, None),
            HeaderSource::Encoded(h) => (&[][..], &[][..], Some(h)),
        };
        owned
            .iter()
            .map(|h| (h.key.as_bytes(), h.value.as_deref()))
            .chain(pairs.iter().map(|&(k, v)| (k.as_bytes(), v)))
            .chain(encoded.into_iter().flat_map(|h| h.iter()))
    }

    /// Calls `f` with each header as a `(name, value)` pair, without the iterator
    /// adapters of [`RecordRef::headers`] (the encoder's loop).
    #[inline]
    fn for_each_header(&self, mut f: impl FnMut(&[u8], Option<&[u8]>)) {
        match self.headers {
            HeaderSource::Owned(h) => h
                .iter()
                .for_each(|h| f(h.key.as_bytes(), h.value.as_deref())),
            HeaderSource::Pairs(h) => h.iter().for_each(|&(k, v)| f(k.as_bytes(), v)),
            HeaderSource::Encoded(h) => h.iter().for_each(|(k, v)| f(k, v)),
        }
    }

    /// The headers' share of the record body (count excluded): their encoded bytes.
    #[inline]
    fn headers_len(&self) -> Result<usize, EncodeError> {
        match self.headers {
            HeaderSource::Encoded(h) => return Ok(h.raw.len()),
            HeaderSource::Owned([]) | HeaderSource::Pairs([]) => return Ok(0),
            _ => {}
        }
        let (mut len, mut too_long) = (0, None);
        self.for_each_header(|k, v| {
            let (kl, vl) = (k.len(), v.map_or(0, <[u8]>::len));
            if kl > i32::MAX as usize {
                too_long = Some(("header key length", kl));
            } else if vl > i32::MAX as usize {
                too_long = Some(("header value length", vl));
            }
            len += varint_len(kl as i32) + kl + v.map_or(1, |v| varint_len(v.len() as i32)) + vl;
        });
        match too_long {
            Some((what, n)) => Err(too_large(what, n, i32::MAX as usize)),
            None => Ok(len),
        }
    }
}

/// Most bytes a record body takes besides its key, value and headers: attributes (1),
/// timestamp delta (varlong, 10), offset delta, key length, value length and header count
/// (varints, 5 each).
const MAX_RECORD_FRAMING: usize = 1 + 10 + 5 + 5 + 5 + 5;

/// At least the bytes `record` takes in an uncompressed batch: its length prefix, body
/// framing, key, value and headers (each with two length varints). A producer sizes its
/// batches with it.
pub(crate) fn size_bound(record: &crate::Record) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| 10 + h.key.len() + h.value.as_ref().map_or(0, Vec::len))
        .sum();
    5 + MAX_RECORD_FRAMING
        + record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + headers
}

/// What can be appended as a record without giving up its bytes: [`Record`] (owned),
/// [`RecordRef`] (borrowed) and [`RecordView`] (a record read from a log, re-appended).
pub trait AsRecord {
    /// This record's fields, borrowed.
    fn as_record(&self) -> RecordRef<'_>;
}

impl AsRecord for Record {
    fn as_record(&self) -> RecordRef<'_> {
        RecordRef {
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            timestamp: self.timestamp,
            headers: HeaderSource::Owned(&self.headers),
        }
    }
}

impl AsRecord for RecordRef<'_> {
    fn as_record(&self) -> RecordRef<'_> {
        *self
    }
}

impl AsRecord for RecordView<'_> {
    fn as_record(&self) -> RecordRef<'_> {
        RecordRef {
            key: self.key,
            value: self.value,
            timestamp: Some(self.timestamp),
            headers: HeaderSource::Encoded(self.headers),
        }
    }
}

impl<'a> From<&'a Record> for RecordRef<'a> {
    fn from(r: &'a Record) -> RecordRef<'a> {
        r.as_record()
    }
}

/// Appends `records` to `out` as one v2 batch with dense offsets starting at
/// `spec.base_offset`, and returns the batch's header.
///
/// The base timestamp is the first record's timestamp (as Kafka's producer writes it) and
/// the max timestamp the largest one. With `spec.compression` the records section is
/// compressed as Kafka's Java producer does it, the attributes' codec bits name the codec,
/// and the CRC covers the compressed bytes.
///
/// # Errors
/// [`EncodeError::Empty`] for no records; [`EncodeError`] when a length, count or
/// timestamp delta does not fit the format, when the uncompressed records section of a
/// compressed batch exceeds [`MAX_DECOMPRESSED_BYTES`], [`EncodeError::CodecDisabled`]
/// when the codec's cargo feature is off, [`EncodeError::Compress`] for a level out of
/// range. `out` is left as it was.
pub fn encode_batch<R: AsRecord>(
    out: &mut Vec<u8>,
    spec: &BatchSpec,
    records: &[R],
) -> Result<BatchHeader, EncodeError> {
    let start = out.len();
    match encode_inner(out, start, spec, records) {
        Ok(header) => {
            out.truncate(start + header.size());
            Ok(header)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// As [`encode_batch`], writing the batch at `buf[0..]` and leaving `buf`'s length as it
/// is when that is long enough (the batch is `buf[..header.size()]`; the bytes after it
/// are garbage). A buffer reused from append to append is then zero-filled only when it
/// grows, not for every batch.
pub(crate) fn encode_batch_reusing<R: AsRecord>(
    buf: &mut Vec<u8>,
    spec: &BatchSpec,
    records: &[R],
) -> Result<BatchHeader, EncodeError> {
    encode_inner(buf, 0, spec, records)
}

#[cold]
pub(super) fn too_large(what: &'static str, value: usize, limit: usize) -> EncodeError {
    EncodeError::TooLarge {
        what,
        value: value as u64,
        limit: limit as u64,
    }
}

/// `len` as the format's signed 32-bit length, or [`EncodeError::TooLarge`] naming `what`.
#[inline(always)]
pub(super) fn checked_len(what: &'static str, len: usize) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| too_large(what, len, i32::MAX as usize))
}

#[inline(always)]
fn opt_len(what: &'static str, b: Option<&[u8]>) -> Result<i32, EncodeError> {
    b.map_or(Ok(-1), |b| checked_len(what, b.len()))
}

/// Writes the zig-zag varlong of `v` at `buf[pos..]`; returns the position after it.
#[inline(always)]
fn put_varlong(buf: &mut [u8], pos: usize, v: i64) -> usize {
    let mut z = zigzag(v);
    if z < 0x80 {
        buf[pos] = z as u8;
        return pos + 1;
    }
    if z < 0x4000 {
        buf[pos] = z as u8 | 0x80;
        buf[pos + 1] = (z >> 7) as u8;
        return pos + 2;
    }
    let mut pos = pos;
    while z >= 0x80 {
        buf[pos] = (z as u8) | 0x80;
        z >>= 7;
        pos += 1;
    }
    buf[pos] = z as u8;
    pos + 1
}

/// Writes a length (-1 for `None`) and the bytes at `buf[pos..]`.
#[inline(always)]
fn put_opt(buf: &mut [u8], pos: usize, len: i32, b: Option<&[u8]>) -> usize {
    let pos = put_varlong(buf, pos, len as i64);
    match b {
        Some(b) => {
            buf[pos..pos + b.len()].copy_from_slice(b);
            pos + b.len()
        }
        None => pos,
    }
}

/// Writes the batch at `out[start..]`, growing `out` (zero-filled) when it is shorter than
/// the batch's upper bound and never shrinking it (see [`encode_batch_reusing`]).
fn encode_inner<R: AsRecord>(
    out: &mut Vec<u8>,
    start: usize,
    spec: &BatchSpec,
    records: &[R],
) -> Result<BatchHeader, EncodeError> {
    let count = checked_len("record count", records.len())?;
    let Some(first) = records.first() else {
        return Err(EncodeError::Empty);
    };
    let log_append = spec.attributes & TIMESTAMP_TYPE_BIT != 0;
    let ts_of = |r: &RecordRef<'_>| match r.timestamp {
        Some(ts) if !log_append => ts,
        _ => spec.default_timestamp,
    };
    let base_timestamp = ts_of(&first.as_record());
    let mut max_timestamp = base_timestamp;

    // Records are written into `out` at positions: room is made per record (rarely: `out`
    // is reused and grows geometrically), not per byte.
    let records_start = start + BATCH_HEADER_SIZE;
    if out.len() < records_start {
        out.resize(records_start, 0);
    }
    let mut pos = records_start;
    for (i, r) in records.iter().enumerate() {
        let r = r.as_record();
        let ts = ts_of(&r);
        max_timestamp = max_timestamp.max(ts);
        pos = encode_record(out, pos, i as i32, ts, base_timestamp, &r)?;
    }
    let timestamps = (base_timestamp, max_timestamp);
    finish_batch(out, start, pos, spec, count, timestamps)
}

/// Writes record `r` (offset delta `offset_delta`, timestamp `ts` in a batch whose base
/// timestamp is `base_timestamp`) with its length prefix at `out[pos..]`, growing `out`
/// when it is too short; returns the position after it.
#[inline]
fn encode_record(
    out: &mut Vec<u8>,
    pos: usize,
    offset_delta: i32,
    ts: i64,
    base_timestamp: i64,
    r: &RecordRef<'_>,
) -> Result<usize, EncodeError> {
    let ts_delta = ts
        .checked_sub(base_timestamp)
        .ok_or(EncodeError::TimestampDelta {
            timestamp: ts,
            base: base_timestamp,
        })?;
    let key_len = opt_len("key length", r.key)?;
    let value_len = opt_len("value length", r.value)?;
    let header_count = r.header_count();
    let headers_len = match header_count {
        0 => 0,
        n => {
            checked_len("header count", n)?;
            r.headers_len()?
        }
    };
    // The body is written first, after room for its length prefix as wide as an upper
    // bound of the body needs; the prefix is written after it, and in the rare case that
    // the exact length takes fewer bytes, the body moves back.
    let bound = MAX_RECORD_FRAMING
        + r.key.map_or(0, <[u8]>::len)
        + r.value.map_or(0, <[u8]>::len)
        + headers_len;
    let bound_len = checked_len("record length", bound)?;
    let width = varint_len(bound_len);
    let need = pos + width + bound;
    if need > out.len() {
        out.resize(need.max(out.len().saturating_mul(2)), 0);
    }
    let buf = &mut out[..];
    let body_start = pos + width;
    buf[body_start] = 0; // record attributes: unused
    let mut at = put_varlong(buf, body_start + 1, ts_delta);
    at = put_varlong(buf, at, offset_delta as i64);
    at = put_opt(buf, at, key_len, r.key);
    at = put_opt(buf, at, value_len, r.value);
    at = put_varlong(buf, at, header_count as i64);
    match r.headers {
        _ if header_count == 0 => {}
        HeaderSource::Encoded(h) => {
            buf[at..at + h.raw.len()].copy_from_slice(h.raw);
            at += h.raw.len();
        }
        _ => r.for_each_header(|k, v| {
            at = put_opt(buf, at, k.len() as i32, Some(k));
            at = put_opt(buf, at, v.map_or(-1, |v| v.len() as i32), v);
        }),
    }
    let body = (at - body_start) as i64;
    let exact = varlong_len(body);
    if exact < width {
        buf.copy_within(body_start..at, pos + exact);
    }
    put_varlong(buf, pos, body);
    Ok(at - (width - exact))
}

/// Completes the batch at `out[start..]` whose `count` records are encoded at
/// `out[start + BATCH_HEADER_SIZE..records_end]`: compresses them per `spec`, writes the
/// header and its CRC. `timestamps` are the base and max timestamps.
fn finish_batch(
    out: &mut Vec<u8>,
    start: usize,
    records_end: usize,
    spec: &BatchSpec,
    count: i32,
    (base_timestamp, max_timestamp): (i64, i64),
) -> Result<BatchHeader, EncodeError> {
    let last_offset_delta = count - 1;
    if spec.base_offset > i64::MAX as u64 - last_offset_delta as u64 {
        return Err(too_large(
            "base offset",
            spec.base_offset as usize,
            i64::MAX as usize,
        ));
    }
    let records_start = start + BATCH_HEADER_SIZE;
    let codec = spec.compression;
    let mut end = records_end;
    if codec != Compression::None {
        let raw_len = records_end - records_start;
        if raw_len > MAX_DECOMPRESSED_BYTES {
            return Err(too_large(
                "uncompressed records section",
                raw_len,
                MAX_DECOMPRESSED_BYTES,
            ));
        }
        out.truncate(records_end);
        let raw = out.split_off(records_start);
        compression::compress(codec, &raw, out).map_err(super::batch::encode_codec_error)?;
        end = out.len();
    }
    let size = end - start;
    let batch_length = checked_len("batch length", size - LOG_OVERHEAD)?;
    let mut header = BatchHeader {
        base_offset: spec.base_offset as i64,
        batch_length,
        partition_leader_epoch: spec.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes: (spec.attributes & !COMPRESSION_MASK) | codec.id() as i16,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id: spec.producer_id,
        producer_epoch: spec.producer_epoch,
        base_sequence: spec.base_sequence,
        records_count: count,
    };
    let buf = &mut out[start..end];
    write_header(buf, &header);
    header.crc = crc32c(&buf[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut buf[CRC_OFFSET..], header.crc);
    Ok(header)
}

/// Records encoded one at a time as they come, for one batch whose offsets and header are
/// settled at append ([`BatchBuilder::finish`]): a producer encodes on the sending thread,
/// and its appending thread only completes the header (and compresses).
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    /// Room for the header, then the records encoded so far; what follows `end` is garbage.
    buf: Vec<u8>,
    end: usize,
    count: i32,
    /// Every record's timestamp is the append time: deltas are 0, the header says when.
    log_append: bool,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty batch, encoded into `buf` (a buffer reused from an earlier batch: its
    /// bytes are overwritten, so it is not zeroed again); with `log_append`, record
    /// timestamps are ignored (the append stamps the batch).
    pub(crate) fn new(log_append: bool, mut buf: Vec<u8>) -> BatchBuilder {
        if buf.len() < BATCH_HEADER_SIZE {
            buf.resize(BATCH_HEADER_SIZE, 0);
        }
        BatchBuilder {
            buf,
            end: BATCH_HEADER_SIZE,
            count: 0,
            log_append,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Records in the batch.
    pub(crate) fn count(&self) -> usize {
        self.count as usize
    }

    /// Encodes `r` as the next record; its timestamp must be set (unless log-append time).
    pub(crate) fn push(&mut self, r: &RecordRef<'_>) -> Result<(), EncodeError> {
        let ts = if self.log_append {
            0
        } else {
            r.timestamp.unwrap_or(0)
        };
        if self.count == 0 {
            self.base_timestamp = ts;
        }
        if self.count == i32::MAX {
            return Err(too_large(
                "record count",
                i32::MAX as usize,
                i32::MAX as usize - 1,
            ));
        }
        self.end = encode_record(
            &mut self.buf,
            self.end,
            self.count,
            ts,
            self.base_timestamp,
            r,
        )?;
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(ts);
        Ok(())
    }

    /// Completes the batch per `spec` (its base offset; with log-append time, its default
    /// timestamp stamps the batch) in place, and swaps it into `out`, whose old buffer goes
    /// to `spare` (for the next builder); returns its header. The batch is
    /// `out[..header.size()]`.
    pub(crate) fn finish(
        mut self,
        out: &mut Vec<u8>,
        spare: &mut Vec<u8>,
        spec: &BatchSpec,
    ) -> Result<BatchHeader, EncodeError> {
        if self.count == 0 {
            return Err(EncodeError::Empty);
        }
        let timestamps = if self.log_append {
            (spec.default_timestamp, spec.default_timestamp)
        } else {
            (self.base_timestamp, self.max_timestamp)
        };
        let mut spec = *spec;
        if self.log_append {
            spec.attributes |= TIMESTAMP_TYPE_BIT;
        }
        std::mem::swap(out, &mut self.buf);
        *spare = self.buf;
        finish_batch(out, 0, self.end, &spec, self.count, timestamps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(
                (
                    "[a-z]{0,5}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                ),
                0..3,
            ),
            -1000i64..1000,
        )
            .prop_map(|(key, value, headers, ts)| Record {
                key,
                value,
                headers: headers
                    .into_iter()
                    .map(|(key, value)| Header { key, value })
                    .collect(),
                timestamp: Some(1_700_000_000_000 + ts),
            })
    }

    proptest! {
        /// A batch built record by record is byte for byte the batch `encode_batch` makes of
        /// the same records, for every codec and both timestamp types.
        #[test]
        fn built_batches_equal_encoded_ones(
            records in proptest::collection::vec(record(), 1..40),
            base in 0u64..1 << 40,
            codec in prop_oneof![
                Just(Compression::None),
                Just(Compression::Gzip { level: None }),
                Just(Compression::Snappy),
                Just(Compression::Lz4 { level: None }),
                Just(Compression::Zstd { level: None }),
            ],
            log_append in any::<bool>(),
        ) {
            let mut spec = BatchSpec::new(base, 1_800_000_000_000);
            spec.compression = codec;
            if log_append {
                spec.attributes |= TIMESTAMP_TYPE_BIT;
            }
            let mut expected = Vec::new();
            let encoded = encode_batch(&mut expected, &spec, &records);
            let mut builder = BatchBuilder::new(log_append, vec![9u8; 5]);
            for r in &records {
                builder.push(&r.as_record()).unwrap();
            }
            let mut out = vec![7u8; 3];
            let built = builder.finish(&mut out, &mut Vec::new(), &spec);
            match (encoded, built) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(&out[..b.size()], &expected[..]);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "encode {:?} but build {:?}", a, b),
            }
        }
    }
}
