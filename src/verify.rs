//! Offline verification of segment files, like Kafka's `kafka-dump-log` tool.
//!
//! The functions here read a segment's `.log`, `.index` and `.timeindex` with plain
//! [`std::fs::read`] (no memory maps, nothing written), so they are safe to run on a
//! partition directory that a live process — a seglog [`Store`](crate::Store) or a Kafka
//! broker — is writing: a file that shrinks under a mapping would fault, a copy cannot.
//! They return reports: every batch of the log, every index entry, and a list of
//! [`Problem`]s, each naming the file, the byte position and what is wrong. Corrupt files
//! are input, not errors: the only errors are a path that cannot be read at all
//! (and a `.log` name that is not a segment name).
//!
//! What is checked (FORMAT.md is the reference):
//!
//! - **`.log`** (§3): every batch from byte 0 — header, length, magic, CRC-32C and, for
//!   uncompressed batches, every record. The walk stops at the first bad batch and reports
//!   its position and [`DecodeError`]. Batches must lie in the segment (base offset at
//!   least the file name's, last offset at most 2³¹−1 past it) and their offsets must
//!   increase.
//! - **`.index`** (§4): the size is a multiple of 8; entries increase strictly; each
//!   position is inside the log and is the start of a batch whose last offset is the
//!   entry's offset.
//! - **`.timeindex`** (§5): the size is a multiple of 12; timestamps increase strictly and
//!   offsets do not decrease; each offset lies in the segment's batches, and each
//!   timestamp is the largest batch `maxTimestamp` of all batches up to and including the
//!   batch holding its offset.
//! - **Partition directory**: every `NNNNNNNNNNNNNNNNNNNN.log` in base-offset order, each
//!   verified as above, and no segment holds an offset at or past the next segment's base
//!   offset.
//!
//! Index files of a segment that is still active are preallocated and zero-filled; as when
//! seglog opens them, trailing all-zero entries are unused slots, not entries (except in a
//! file of exactly one entry). A missing index file is not a problem: seglog rebuilds it
//! from the log at open.
//!
//! Reading a live directory: the index files are read before the log, so every index
//! entry a writer had added is matched against a log at least as long as when the entry
//! was written. The last batch of the active segment may still be being written, in which
//! case it is reported as truncated; run again to tell a torn tail from an append in
//! progress. A concurrent truncation or segment deletion can likewise cause spurious
//! reports.
//!
//! ```
//! use seglog::{Record, Store, TopicConfig};
//! use seglog::verify::{verify_partition, Options};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let topic = store.create_topic("t", TopicConfig::default())?;
//! topic.partition(0)?.append(&[Record::new("v").with_key("k")])?;
//! store.close()?;
//!
//! let report = verify_partition(&dir.path().join("t-0"), &Options::default())?;
//! assert!(report.is_ok(), "{:?}", report.problems().collect::<Vec<_>>());
//! assert_eq!(report.segments[0].log.batches[0].last_offset, 0);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::{crc32c, BatchHeader, BatchIter, DecodeError, ATTRIBUTES_OFFSET};
use crate::segment::index::OFFSET_ENTRY_SIZE;
use crate::segment::timeindex::TIME_ENTRY_SIZE;
use crate::segment::{
    decode_index_entry, decode_timeindex_entry, file_name, parse_log_name, MAX_RELATIVE_OFFSET,
};
use crate::TimestampType;

/// What a verification collects besides the checks themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Keep a [`BatchInfo`] for every batch in [`LogReport::batches`]. Off, only the
    /// checks run (and the first bad batch is still listed); this saves memory on large
    /// logs of small batches. Default: on.
    pub batches: bool,
    /// Keep every record (keys, values and headers, copied) in [`BatchInfo::records`].
    /// Needs [`Options::batches`]. This copies the whole log into memory once more.
    /// Default: off.
    pub records: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batches: true,
            records: false,
        }
    }
}

impl Options {
    /// Sets [`Options::batches`].
    pub fn with_batches(mut self, on: bool) -> Options {
        self.batches = on;
        self
    }

    /// Sets [`Options::records`] (and [`Options::batches`] when `on`).
    pub fn with_records(mut self, on: bool) -> Options {
        self.records = on;
        if on {
            self.batches = true;
        }
        self
    }
}

/// One thing wrong with a file: which file, where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned (a `.log`, `.index` or `.timeindex`, or the partition directory).
    pub path: PathBuf,
    /// Byte position in that file: the start of the batch or index entry concerned, or
    /// where a partial entry starts; 0 for a file or directory as a whole.
    pub position: u64,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.path.display(),
            self.position,
            self.kind
        )
    }
}

/// What is wrong, for a [`Problem`]. Offsets are absolute (partition) offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A file could not be read (other than an index file that does not exist).
    #[error("cannot read: {error}")]
    Unreadable {
        /// The operating system's message.
        error: String,
    },
    /// The `.log` holds a bad batch here (truncated, bad field, bad magic, CRC mismatch,
    /// malformed records). Nothing after it is checked. The error's own position is
    /// relative to the start of the file.
    #[error("bad batch: {0}")]
    BadBatch(DecodeError),
    /// A batch holds offsets the segment cannot hold: below the base offset in the file
    /// name, or more than 2³¹−1 past it.
    #[error(
        "batch offsets {base_offset}..={last_offset} do not fit a segment with base offset \
         {segment_base}"
    )]
    BatchOutsideSegment {
        /// The batch's base offset.
        base_offset: u64,
        /// The batch's last offset.
        last_offset: u64,
        /// The segment's base offset (from the file name).
        segment_base: u64,
    },
    /// A batch starts at or below the last offset of an earlier batch in the same file.
    #[error("batch base offset {base_offset} is not past the previous batch's last offset {previous_last_offset}")]
    OffsetsNotIncreasing {
        /// The batch's base offset.
        base_offset: u64,
        /// The largest last offset of the batches before it.
        previous_last_offset: u64,
    },
    /// An index file's size is not a whole number of entries; the position is where the
    /// partial entry starts.
    #[error("file size {size} is not a multiple of the {entry_size}-byte entry size")]
    SizeNotMultiple {
        /// The file size.
        size: u64,
        /// 8 for `.index`, 12 for `.timeindex`.
        entry_size: usize,
    },
    /// An offset-index entry does not increase strictly (in offset and in position) over
    /// the entry before it.
    #[error(
        "entry (offset {offset}, position {log_position}) does not increase over the previous \
         entry (offset {previous_offset}, position {previous_log_position})"
    )]
    IndexNotIncreasing {
        /// This entry's offset.
        offset: u64,
        /// This entry's `.log` position.
        log_position: u32,
        /// The previous entry's offset.
        previous_offset: u64,
        /// The previous entry's `.log` position.
        previous_log_position: u32,
    },
    /// An offset-index entry points at or past the end of the `.log`.
    #[error("entry for offset {offset} points at log position {log_position}, past the log's end ({log_size} bytes)")]
    IndexPastLogEnd {
        /// The entry's offset.
        offset: u64,
        /// The entry's `.log` position.
        log_position: u32,
        /// The `.log` size.
        log_size: u64,
    },
    /// An offset-index entry points inside the `.log` but not at the start of a batch.
    #[error("entry for offset {offset} points at log position {log_position}, which is not the start of a batch")]
    IndexNotAtBatchStart {
        /// The entry's offset.
        offset: u64,
        /// The entry's `.log` position.
        log_position: u32,
    },
    /// An offset-index entry points at a batch whose last offset is not the entry's offset.
    #[error(
        "entry for offset {offset} points at log position {log_position}, whose batch holds \
         offsets {batch_base_offset}..={batch_last_offset}"
    )]
    IndexOffsetMismatch {
        /// The entry's offset.
        offset: u64,
        /// The entry's `.log` position.
        log_position: u32,
        /// Base offset of the batch there.
        batch_base_offset: u64,
        /// Last offset of the batch there (what the entry's offset should be).
        batch_last_offset: u64,
    },
    /// A time-index timestamp is not greater than the one before it.
    #[error("timestamp {timestamp} is not greater than the previous entry's {previous_timestamp}")]
    TimeIndexNotIncreasing {
        /// This entry's timestamp.
        timestamp: i64,
        /// The previous entry's timestamp.
        previous_timestamp: i64,
    },
    /// A time-index offset is smaller than the one before it.
    #[error("offset {offset} is smaller than the previous entry's {previous_offset}")]
    TimeIndexOffsetDecreasing {
        /// This entry's offset.
        offset: u64,
        /// The previous entry's offset.
        previous_offset: u64,
    },
    /// A time-index offset is not held by the segment's batches.
    #[error("offset {offset} (timestamp {timestamp}) is outside the segment's batches ({})", range(*.first_offset, *.last_offset))]
    TimeIndexOffsetOutsideSegment {
        /// The entry's offset.
        offset: u64,
        /// The entry's timestamp.
        timestamp: i64,
        /// The first batch's base offset, `None` for a log without batches.
        first_offset: Option<u64>,
        /// The largest last offset of any batch, `None` for a log without batches.
        last_offset: Option<u64>,
    },
    /// A time-index timestamp is not the largest batch max timestamp up to and including
    /// the batch holding the entry's offset.
    #[error("entry (timestamp {timestamp}, offset {offset}): the largest batch timestamp up to that offset is {expected}")]
    TimeIndexWrongTimestamp {
        /// The entry's timestamp.
        timestamp: i64,
        /// The entry's offset.
        offset: u64,
        /// The largest `maxTimestamp` of the batches up to the one holding `offset`.
        expected: i64,
    },
    /// This segment holds offsets at or past the next segment's base offset, so the two
    /// overlap. The position is the first batch of this segment that reaches the next one.
    #[error("holds offsets up to {last_offset}, but the next segment {next_file} starts at offset {next_base_offset}")]
    OverlapsNextSegment {
        /// The largest last offset of this segment's batches.
        last_offset: u64,
        /// The next segment's base offset.
        next_base_offset: u64,
        /// The next segment's `.log` file name.
        next_file: String,
    },
    /// A partition directory without any segment (`NNNNNNNNNNNNNNNNNNNN.log`) file.
    #[error("no segment files (20-digit base offset + .log)")]
    NoSegments,
}

fn range(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(a), Some(b)) => format!("offsets {a}..={b}"),
        _ => "none".to_string(),
    }
}

/// One record of a batch, copied out of the log (see [`Options::records`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp (the batch's max timestamp for log-append time).
    pub timestamp: i64,
    /// The producer sequence number (Kafka's `baseSequence + offsetDelta`, wrapping past
    /// `i32::MAX`), or -1 when the batch has none.
    pub sequence: i32,
    /// The key; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The headers in order, as `(name, value)`.
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// One batch of a `.log` file, as found at [`BatchInfo::position`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Byte position of the batch in the `.log`.
    pub position: u64,
    /// Offset of the first record slot.
    pub base_offset: u64,
    /// Offset of the last record slot.
    pub last_offset: u64,
    /// `recordsCount`.
    pub records_count: i32,
    /// `baseTimestamp`.
    pub base_timestamp: i64,
    /// `maxTimestamp`.
    pub max_timestamp: i64,
    /// The timestamp type (attribute bit 3).
    pub timestamp_type: TimestampType,
    /// Total size of the batch in bytes (`batchLength + 12`).
    pub size: u64,
    /// The raw attributes.
    pub attributes: i16,
    /// Kafka's compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub compression: u8,
    /// `partitionLeaderEpoch`.
    pub partition_leader_epoch: i32,
    /// `producerId` (-1 when unused).
    pub producer_id: i64,
    /// `producerEpoch` (-1 when unused).
    pub producer_epoch: i16,
    /// `baseSequence` (-1 when unused).
    pub base_sequence: i32,
    /// The CRC-32C stored in the header.
    pub crc: u32,
    /// True when the stored CRC matches the bytes (false also when the file ends before
    /// the batch does).
    pub crc_ok: bool,
    /// Why the batch is bad; `None` for a good batch. Only the last batch of a
    /// [`LogReport`] can be bad.
    pub error: Option<DecodeError>,
    /// The records, when [`Options::records`] is set and the batch is good (compressed
    /// ones decompressed, when their codec is built in); otherwise empty.
    pub records: Vec<RecordInfo>,
}

impl BatchInfo {
    fn new(position: u64, h: &BatchHeader, crc_ok: bool, error: Option<DecodeError>) -> Self {
        BatchInfo {
            position,
            base_offset: h.base_offset as u64,
            last_offset: h.last_offset(),
            records_count: h.records_count,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            timestamp_type: if h.is_log_append_time() {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            size: h.size() as u64,
            attributes: h.attributes,
            compression: h.compression(),
            partition_leader_epoch: h.partition_leader_epoch,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            crc: h.crc,
            crc_ok,
            error,
            records: Vec::new(),
        }
    }

    /// True when the batch passed every check.
    pub fn is_valid(&self) -> bool {
        self.error.is_none()
    }

    /// True for a transactional batch (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & crate::record::TRANSACTIONAL_BIT != 0
    }

    /// True for a control batch (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & crate::record::CONTROL_BIT != 0
    }

    /// True when `baseTimestamp` is a delete horizon (attribute bit 6, KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & crate::record::DELETE_HORIZON_BIT != 0
    }

    /// The sequence number of the last record slot (Kafka's `lastSequence`), or -1 when
    /// the batch has no producer sequence.
    pub fn last_sequence(&self) -> i32 {
        let delta = self.last_offset.saturating_sub(self.base_offset);
        sequence_at(self.base_sequence, delta)
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
fn sequence_at(base: i32, delta: u64) -> i32 {
    if base < 0 {
        return -1;
    }
    let m = i32::MAX as u64 + 1;
    ((base as u64 + delta % m) % m) as i32
}

/// A good batch, for the index checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    position: u64,
    base: u64,
    last: u64,
    /// Largest `maxTimestamp` of this batch and every batch before it in the file.
    max_ts_so_far: i64,
}

/// The result of checking a `.log` file ([`check_log`]).
#[derive(Debug, Clone)]
pub struct LogReport {
    /// The `.log` file.
    pub path: PathBuf,
    /// The segment's base offset (from the file name).
    pub base_offset: u64,
    /// The file size in bytes.
    pub size: u64,
    /// Bytes from the start of the file up to the first bad batch (the file size when every
    /// batch is good).
    pub valid_bytes: u64,
    /// Number of good batches.
    pub batch_count: usize,
    /// Number of records in the good batches.
    pub record_count: u64,
    /// Base offset of the first good batch.
    pub first_offset: Option<u64>,
    /// Largest last offset of the good batches.
    pub last_offset: Option<u64>,
    /// Largest `maxTimestamp` of the good batches.
    pub max_timestamp: Option<i64>,
    /// Every good batch in file order (with [`Options::batches`]), then the bad batch that
    /// stopped the walk if its header could be read.
    pub batches: Vec<BatchInfo>,
    /// Where the first bad batch starts, and why it is bad.
    pub error: Option<(u64, DecodeError)>,
    /// Everything wrong with the file.
    pub problems: Vec<Problem>,
    spans: Vec<Span>,
}

impl LogReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One `.index` entry, made absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The segment's base offset plus the entry's relative offset.
    pub offset: u64,
    /// The `.log` position.
    pub position: u32,
}

/// One `.timeindex` entry, made absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// The timestamp.
    pub timestamp: i64,
    /// The segment's base offset plus the entry's relative offset.
    pub offset: u64,
}

/// The result of checking an index file ([`check_index`], [`check_time_index`]); `E` is
/// [`IndexEntry`] or [`TimeIndexEntry`].
#[derive(Debug, Clone)]
pub struct IndexReport<E> {
    /// The index file.
    pub path: PathBuf,
    /// False when the file does not exist (seglog rebuilds it at open: not a problem).
    pub present: bool,
    /// The file size in bytes.
    pub size: u64,
    /// The entries in file order (trailing unused slots left out).
    pub entries: Vec<E>,
    /// Trailing all-zero slots of a preallocated (active or not cleanly closed) file.
    pub unused_slots: usize,
    /// Entries that could not be checked because they refer to the part of the `.log`
    /// after its first bad batch (which is reported in the [`LogReport`]).
    pub unchecked: usize,
    /// Everything wrong with the file.
    pub problems: Vec<Problem>,
}

impl<E> IndexReport<E> {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn new(path: &Path, present: bool, size: u64) -> Self {
        IndexReport {
            path: path.to_path_buf(),
            present,
            size,
            entries: Vec::new(),
            unused_slots: 0,
            unchecked: 0,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, position: usize, kind: ProblemKind) {
        self.problems.push(Problem {
            path: self.path.clone(),
            position: position as u64,
            kind,
        });
    }
}

/// The result of verifying one segment ([`verify_segment`]).
#[derive(Debug, Clone)]
pub struct SegmentReport {
    /// The `.log` file.
    pub log: LogReport,
    /// The `.index` file.
    pub index: IndexReport<IndexEntry>,
    /// The `.timeindex` file.
    pub time_index: IndexReport<TimeIndexEntry>,
}

impl SegmentReport {
    /// True when none of the three files has a problem.
    pub fn is_ok(&self) -> bool {
        self.log.is_ok() && self.index.is_ok() && self.time_index.is_ok()
    }

    /// Every problem: the log's, then the offset index's, then the time index's.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.log
            .problems
            .iter()
            .chain(&self.index.problems)
            .chain(&self.time_index.problems)
    }
}

/// The result of verifying a partition directory ([`verify_partition`]).
#[derive(Debug, Clone)]
pub struct PartitionReport {
    /// The partition directory.
    pub dir: PathBuf,
    /// Every segment that could be read, in base-offset order.
    pub segments: Vec<SegmentReport>,
    /// Problems across segments (overlaps, unreadable segment files, no segments).
    pub problems: Vec<Problem>,
}

impl PartitionReport {
    /// True when no problem was found in any segment or across them.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.segments.iter().all(SegmentReport::is_ok)
    }

    /// Every problem: each segment's in order, then those across segments.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.segments
            .iter()
            .flat_map(SegmentReport::problems)
            .chain(&self.problems)
    }
}

/// Checks the bytes of a `.log` file whose segment has base offset `base_offset`. `path`
/// only labels the report. Pure: no I/O, never panics.
///
/// Batches are walked from byte 0 to the first bad one (header, CRC and, for uncompressed
/// batches, records). Good batches are also checked to lie in the segment and to have
/// increasing offsets.
pub fn check_log(path: &Path, base_offset: u64, bytes: &[u8], opts: &Options) -> LogReport {
    let mut r = LogReport {
        path: path.to_path_buf(),
        base_offset,
        size: bytes.len() as u64,
        valid_bytes: 0,
        batch_count: 0,
        record_count: 0,
        first_offset: None,
        last_offset: None,
        max_timestamp: None,
        batches: Vec::new(),
        error: None,
        problems: Vec::new(),
        spans: Vec::new(),
    };
    let mut it = BatchIter::new(bytes);
    let mut max_ts = i64::MIN;
    while let Some(item) = it.next() {
        let (pos, batch) = match item {
            Ok(b) => b,
            Err(e) => {
                bad_batch(&mut r, bytes, it.position(), None, e);
                break;
            }
        };
        let h = *batch.header();
        // Compressed batches are decompressed to check their records; one whose codec is
        // not built in is checked by its CRC only.
        match batch.validate_all() {
            Ok(()) | Err(DecodeError::CodecDisabled { .. }) => {}
            Err(e) => {
                let e = crate::record::shift(e, pos);
                bad_batch(&mut r, bytes, pos, Some(&h), e);
                break;
            }
        }
        let (base, last) = (h.base_offset as u64, h.last_offset());
        let at = pos as u64;
        if base < base_offset || last - base_offset > MAX_RELATIVE_OFFSET {
            r.problems.push(Problem {
                path: r.path.clone(),
                position: at,
                kind: ProblemKind::BatchOutsideSegment {
                    base_offset: base,
                    last_offset: last,
                    segment_base: base_offset,
                },
            });
        }
        if let Some(prev) = r.last_offset.filter(|&prev| base <= prev) {
            r.problems.push(Problem {
                path: r.path.clone(),
                position: at,
                kind: ProblemKind::OffsetsNotIncreasing {
                    base_offset: base,
                    previous_last_offset: prev,
                },
            });
        }
        max_ts = max_ts.max(h.max_timestamp);
        r.spans.push(Span {
            position: at,
            base,
            last,
            max_ts_so_far: max_ts,
        });
        r.batch_count += 1;
        r.record_count += h.records_count.max(0) as u64;
        r.first_offset.get_or_insert(base);
        r.last_offset = Some(r.last_offset.map_or(last, |l| l.max(last)));
        r.max_timestamp = Some(max_ts);
        r.valid_bytes = at + h.size() as u64;
        if opts.batches {
            let mut info = BatchInfo::new(at, &h, true, None);
            let mut scratch = Vec::new();
            if let Some(records) = opts
                .records
                .then(|| batch.records_with(&mut scratch).ok())
                .flatten()
            {
                info.records = records
                    .filter_map(|rec| rec.ok())
                    .map(|rec| RecordInfo {
                        offset: rec.offset(),
                        timestamp: rec.timestamp(),
                        sequence: sequence_at(h.base_sequence, rec.offset().saturating_sub(base)),
                        key: rec.key().map(<[u8]>::to_vec),
                        value: rec.value().map(<[u8]>::to_vec),
                        headers: rec
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                            .collect(),
                    })
                    .collect();
            }
            r.batches.push(info);
        }
    }
    r
}

/// Records the bad batch at `pos`: the problem, the error, and the batch's header when it
/// can be read (`header` when already parsed).
fn bad_batch(
    r: &mut LogReport,
    bytes: &[u8],
    pos: usize,
    header: Option<&BatchHeader>,
    e: DecodeError,
) {
    let rest = bytes.get(pos..).unwrap_or_default();
    let header = header.copied().or_else(|| BatchHeader::parse(rest).ok());
    if let Some(h) = header {
        let crc_ok = rest
            .get(ATTRIBUTES_OFFSET..h.size())
            .is_some_and(|covered| crc32c(covered) == h.crc);
        r.batches
            .push(BatchInfo::new(pos as u64, &h, crc_ok, Some(e.clone())));
    }
    r.valid_bytes = pos as u64;
    r.error = Some((pos as u64, e.clone()));
    r.problems.push(Problem {
        path: r.path.clone(),
        position: pos as u64,
        kind: ProblemKind::BadBatch(e),
    });
}

/// The number of entries in an index file of `bytes` with `entry_size`-byte entries:
/// trailing all-zero slots are preallocation, except in a file of exactly one slot (as
/// seglog reads them). Returns `(entries, unused slots)`.
fn count_entries(bytes: &[u8], entry_size: usize) -> (usize, usize) {
    let slots = bytes.chunks_exact(entry_size);
    let total = slots.len();
    if total == 1 {
        return (1, 0);
    }
    let unused = slots
        .rev()
        .take_while(|s| s.iter().all(|&b| b == 0))
        .count();
    (total - unused, unused)
}

/// Checks the bytes of a `.index` file against its segment's `.log` report. `path` only
/// labels the report. Pure: no I/O, never panics.
pub fn check_index(path: &Path, bytes: &[u8], log: &LogReport) -> IndexReport<IndexEntry> {
    let mut r = IndexReport::new(path, true, bytes.len() as u64);
    check_size(&mut r, bytes.len(), OFFSET_ENTRY_SIZE);
    let (n, unused) = count_entries(bytes, OFFSET_ENTRY_SIZE);
    r.unused_slots = unused;
    let damaged = log.valid_bytes < log.size;
    let mut prev: Option<(u32, u32)> = None;
    for (i, e) in bytes.chunks_exact(OFFSET_ENTRY_SIZE).take(n).enumerate() {
        let at = i * OFFSET_ENTRY_SIZE;
        let (rel, position) = decode_index_entry(e);
        let offset = log.base_offset.saturating_add(rel as u64);
        r.entries.push(IndexEntry { offset, position });
        if let Some((prel, ppos)) = prev {
            if rel <= prel || position <= ppos {
                r.problem(
                    at,
                    ProblemKind::IndexNotIncreasing {
                        offset,
                        log_position: position,
                        previous_offset: log.base_offset.saturating_add(prel as u64),
                        previous_log_position: ppos,
                    },
                );
            }
        }
        prev = Some((rel, position));
        let p = position as u64;
        if p >= log.size {
            r.problem(
                at,
                ProblemKind::IndexPastLogEnd {
                    offset,
                    log_position: position,
                    log_size: log.size,
                },
            );
        } else if damaged && p >= log.valid_bytes {
            r.unchecked += 1;
        } else {
            match log.spans.binary_search_by_key(&p, |s| s.position) {
                Err(_) => r.problem(
                    at,
                    ProblemKind::IndexNotAtBatchStart {
                        offset,
                        log_position: position,
                    },
                ),
                Ok(k) => {
                    let s = log.spans[k];
                    if s.last != offset {
                        r.problem(
                            at,
                            ProblemKind::IndexOffsetMismatch {
                                offset,
                                log_position: position,
                                batch_base_offset: s.base,
                                batch_last_offset: s.last,
                            },
                        );
                    }
                }
            }
        }
    }
    r
}

/// Checks the bytes of a `.timeindex` file against its segment's `.log` report. `path`
/// only labels the report. Pure: no I/O, never panics.
pub fn check_time_index(path: &Path, bytes: &[u8], log: &LogReport) -> IndexReport<TimeIndexEntry> {
    let mut r = IndexReport::new(path, true, bytes.len() as u64);
    check_size(&mut r, bytes.len(), TIME_ENTRY_SIZE);
    let (n, unused) = count_entries(bytes, TIME_ENTRY_SIZE);
    r.unused_slots = unused;
    let damaged = log.valid_bytes < log.size;
    let mut prev: Option<(i64, u32)> = None;
    for (i, e) in bytes.chunks_exact(TIME_ENTRY_SIZE).take(n).enumerate() {
        let at = i * TIME_ENTRY_SIZE;
        let (timestamp, rel) = decode_timeindex_entry(e);
        let offset = log.base_offset.saturating_add(rel as u64);
        r.entries.push(TimeIndexEntry { timestamp, offset });
        if let Some((pts, prel)) = prev {
            if timestamp <= pts {
                r.problem(
                    at,
                    ProblemKind::TimeIndexNotIncreasing {
                        timestamp,
                        previous_timestamp: pts,
                    },
                );
            }
            if rel < prel {
                r.problem(
                    at,
                    ProblemKind::TimeIndexOffsetDecreasing {
                        offset,
                        previous_offset: log.base_offset.saturating_add(prel as u64),
                    },
                );
            }
        }
        prev = Some((timestamp, rel));
        let beyond = log.last_offset.is_none_or(|last| offset > last);
        if beyond && damaged {
            r.unchecked += 1;
            continue;
        }
        // Batches whose base offset is at most `offset` (a prefix when offsets increase;
        // when they do not, that is reported on the log and this is only a best effort).
        let k = log.spans.partition_point(|s| s.base <= offset);
        match k.checked_sub(1).map(|k| log.spans[k]) {
            Some(s) if !beyond => {
                if timestamp != s.max_ts_so_far {
                    r.problem(
                        at,
                        ProblemKind::TimeIndexWrongTimestamp {
                            timestamp,
                            offset,
                            expected: s.max_ts_so_far,
                        },
                    );
                }
            }
            _ => r.problem(
                at,
                ProblemKind::TimeIndexOffsetOutsideSegment {
                    offset,
                    timestamp,
                    first_offset: log.first_offset,
                    last_offset: log.last_offset,
                },
            ),
        }
    }
    r
}

fn check_size<E>(r: &mut IndexReport<E>, size: usize, entry_size: usize) {
    let partial = size % entry_size;
    if partial != 0 {
        r.problem(
            size - partial,
            ProblemKind::SizeNotMultiple {
                size: size as u64,
                entry_size,
            },
        );
    }
}

/// Reads an index file: `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks an index file read by `read`, as `check` does, turning a missing file into an
/// absent report and a read error into a problem.
fn check_file<E>(
    path: &Path,
    read: std::io::Result<Option<Vec<u8>>>,
    log: &LogReport,
    check: impl FnOnce(&Path, &[u8], &LogReport) -> IndexReport<E>,
) -> IndexReport<E> {
    match read {
        Ok(Some(bytes)) => check(path, &bytes, log),
        Ok(None) => IndexReport::new(path, false, 0),
        Err(e) => {
            let mut r = IndexReport::new(path, true, 0);
            r.problem(
                0,
                ProblemKind::Unreadable {
                    error: e.to_string(),
                },
            );
            r
        }
    }
}

/// Verifies the segment whose `.log` is at `log_path`, with the `.index` and `.timeindex`
/// beside it (named by the same base offset). The files are read with [`std::fs::read`]
/// (indexes first, see the [module docs](self)); nothing is written.
///
/// # Errors
/// [`Error::Corrupt`] when the file name is not a segment name (20 digits + `.log`), and
/// [`Error::Io`] when the `.log` cannot be read. Everything wrong inside the files is a
/// [`Problem`] in the report instead.
pub fn verify_segment(log_path: &Path, opts: &Options) -> Result<SegmentReport> {
    let base_offset = log_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_log_name)
        .ok_or_else(|| Error::Corrupt {
            path: log_path.to_path_buf(),
            position: 0,
            reason: "not a segment file name (20 digits + .log)".into(),
        })?;
    let dir = log_path.parent().unwrap_or(Path::new(""));
    let index_path = dir.join(file_name(base_offset, ".index"));
    let time_path = dir.join(file_name(base_offset, ".timeindex"));
    // Indexes before the log: a writer adds an entry only after the batch it names is in
    // the log, so the log read next holds every batch these entries refer to.
    let time_bytes = read_optional(&time_path);
    let index_bytes = read_optional(&index_path);
    let log_bytes = std::fs::read(log_path).map_err(|e| Error::Io {
        op: "read",
        path: log_path.to_path_buf(),
        source: e,
    })?;
    let log = check_log(log_path, base_offset, &log_bytes, opts);
    drop(log_bytes);
    let index = check_file(&index_path, index_bytes, &log, check_index);
    let time_index = check_file(&time_path, time_bytes, &log, check_time_index);
    Ok(SegmentReport {
        log,
        index,
        time_index,
    })
}

/// Verifies every segment in the partition directory `dir` (every
/// `NNNNNNNNNNNNNNNNNNNN.log`, in base-offset order; other files are ignored), then checks
/// that no segment holds an offset at or past the next segment's base offset.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed. A segment file that cannot be read
/// is a [`Problem`] in the report.
pub fn verify_partition(dir: &Path, opts: &Options) -> Result<PartitionReport> {
    let io = |e| Error::Io {
        op: "read directory",
        path: dir.to_path_buf(),
        source: e,
    };
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_log_name) {
            logs.push((base, entry.path()));
        }
    }
    logs.sort();
    let mut report = PartitionReport {
        dir: dir.to_path_buf(),
        segments: Vec::new(),
        problems: Vec::new(),
    };
    if logs.is_empty() {
        report.problems.push(Problem {
            path: dir.to_path_buf(),
            position: 0,
            kind: ProblemKind::NoSegments,
        });
    }
    for (_, path) in &logs {
        match verify_segment(path, opts) {
            Ok(s) => report.segments.push(s),
            Err(e) => report.problems.push(Problem {
                path: path.clone(),
                position: 0,
                kind: ProblemKind::Unreadable {
                    error: match e {
                        Error::Io { source, .. } => source.to_string(),
                        other => other.to_string(),
                    },
                },
            }),
        }
    }
    // The segment (index into `segments`) holding the largest offset so far.
    let mut holder: Option<(usize, u64)> = None;
    for (i, seg) in report.segments.iter().enumerate() {
        let base = seg.log.base_offset;
        if let Some((h, last)) = holder.filter(|&(_, last)| last >= base) {
            let prev = &report.segments[h].log;
            let position = prev
                .spans
                .iter()
                .find(|s| s.last >= base)
                .map_or(0, |s| s.position);
            report.problems.push(Problem {
                path: prev.path.clone(),
                position,
                kind: ProblemKind::OverlapsNextSegment {
                    last_offset: last,
                    next_base_offset: base,
                    next_file: file_name(base, ".log"),
                },
            });
        }
        if let Some(last) = seg.log.last_offset {
            if holder.is_none_or(|(_, l)| last > l) {
                holder = Some((i, last));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(sequence_at(-1, 5), -1);
        assert_eq!(sequence_at(10, 5), 15);
        assert_eq!(sequence_at(i32::MAX, 1), 0);
        assert_eq!(sequence_at(i32::MAX - 1, 3), 1);
        assert_eq!(
            sequence_at(i32::MAX, u64::MAX),
            sequence_at(i32::MAX, u64::MAX % (1 << 31))
        );
    }

    #[test]
    fn zero_padding_is_unused_slots() {
        assert_eq!(count_entries(&[], 8), (0, 0));
        assert_eq!(count_entries(&[0; 8], 8), (1, 0));
        assert_eq!(count_entries(&[0; 16], 8), (0, 2));
        let mut b = vec![0u8; 24];
        b[3] = 1;
        assert_eq!(count_entries(&b, 8), (1, 2));
        assert_eq!(count_entries(&b[..20], 8), (1, 1));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let p = Path::new("x");
            let log = check_log(p, 0, &bytes, &Options::default().with_records(true));
            let _ = check_index(p, &bytes, &log);
            let _ = check_time_index(p, &bytes, &log);
            let log = check_log(p, u64::MAX / 2, &[], &Options::default());
            let _ = check_index(p, &bytes, &log);
            let _ = check_time_index(p, &bytes, &log);
        }
    }
}
