//! A partition: the log itself, an ordered list of segments of which the last is active.
//!
//! Concurrency: one writer at a time (appends, rolls, truncation and flushes are serialized
//! by the writer lock); readers take no lock the writer holds while appending. The log end
//! offset is published with release ordering after the segment has published the batch.
//! Truncation takes an exclusive lock that readers share, so a read sees the log either
//! before or after a truncation, never during.
//!
//! Lock order — a thread holding one of these takes only those below it:
//!
//! 0. `cleaner` (a whole compaction pass; truncation and close take it so that no pass
//!    runs across them);
//! 1. `maintenance` (retention, truncation, close, and a compaction pass's swaps — not
//!    the pass's reading, writing and fsyncs, so retention never waits for a whole pass);
//! 2. `sync` (the flush state; briefly, never across an fsync);
//! 3. `writer` (appends, rolls);
//! 4. the store's checkpoint lock ([`Checkpoints`](crate::checkpoint::Checkpoints));
//! 5. `truncation` (readers share it; truncation takes it exclusively);
//! 6. `segments` (the segment list; held briefly);
//! 7. a segment's own locks (index files, writer state, lazy load);
//! 8. the store's open-file cache (`files.rs`), which closing another segment's files only
//!    *tries* that segment's locks, so holding it waits for no segment.
//!
//! Above the partition: the consumer coordinator's lock, then the store's topics lock, then
//! the checkpoint lock.

mod compaction;
mod fetch;
mod open;
mod raw;
mod records;
mod retention;
pub mod txn;
mod txn_state;
#[cfg(feature = "async")]
mod wait;

pub(crate) use open::OpenContext;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

pub use compaction::CompactionReport;
pub use fetch::{Fetch, FetchRef};
pub use raw::{BatchProblem, ForwardError, OffsetMode};
pub use records::Records;
pub use retention::RetentionReport;

use crate::checkpoint::Checkpoints;
use crate::config::{Clock, FlushPolicy, TimestampType, TopicConfig};
use crate::error::{Error, Result};
use crate::notify::Notify;
use crate::record::{
    encode::{encode_batch_reusing, BatchBuilder},
    AsRecord, BatchHeader, BatchIter, BatchSpec, EncodeError, RecordView, TIMESTAMP_TYPE_BIT,
};
use crate::segment::{Segment, SegmentOptions, SegmentRead};

/// What an append wrote (for [`Partition::append_raw`], all its batches together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record (the first batch's base offset).
    pub base_offset: u64,
    /// Offset of the last record (the last batch's last offset).
    pub last_offset: u64,
    /// The batch's max timestamp (the append time for log-append-time topics); the
    /// largest of all batches for `append_raw`.
    pub max_timestamp: i64,
    /// Encoded size of the batch (all batches) in bytes.
    pub batch_bytes: usize,
}

/// The first record at or after a timestamp (see [`Partition::offset_for_timestamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp.
    pub timestamp: i64,
}

/// Counters describing a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    /// First offset held.
    pub log_start_offset: u64,
    /// Next offset to be written.
    pub log_end_offset: u64,
    /// Number of segments (including the active one).
    pub segments: usize,
    /// Sum of the `.log` file sizes.
    pub size_bytes: u64,
    /// Every offset below this one is durable (flushed).
    pub durable_offset: u64,
    /// Flushes performed since open (fsync rounds; with group commit, fewer than the
    /// durable appends they covered).
    pub flushes: u64,
}

/// What an append's batches are placed after (see `Partition::append_batches`).
#[derive(Debug, Clone, Copy)]
struct AppendAt {
    /// The log end offset: the next offset to assign.
    log_end: u64,
    /// Where a roll would start the next segment (at most `log_end`).
    roll_base: u64,
    /// The store clock.
    now: i64,
}

#[derive(Debug)]
struct Writer {
    /// The last segment, the one appends go to (also last in `Inner::segments`).
    active: Arc<Segment>,
    /// Reused encode buffer.
    buf: Vec<u8>,
    /// Reused list of the encoded batches' headers.
    headers: Vec<BatchHeader>,
    /// Sealed segments written since the last flush.
    unflushed: Vec<Arc<Segment>>,
    /// A file was created or deleted in the directory since the last flush.
    dir_dirty: bool,
    /// Records appended since the last flush was decided (for `FlushPolicy::EveryRecords`).
    records_since_flush: u64,
    /// Ongoing transactions (`txn_state.rs`); `None` until first needed.
    txn: Option<crate::txn::TxnTracker>,
}

/// Ends a running flush if it unwinds (see `Partition::sync_to`).
struct RunningFlush<'a>(&'a Inner);

impl Drop for RunningFlush<'_> {
    fn drop(&mut self) {
        self.0.sync.lock().running = false;
        self.0.flushed.notify_all();
    }
}

#[derive(Debug)]
struct Inner {
    /// `(topic, partition)`, the checkpoint files' key.
    key: (String, u32),
    /// The topic's name, shared with the records consumers return.
    topic: Arc<str>,
    name: String,
    dir: PathBuf,
    config: TopicConfig,
    clock: Arc<dyn Clock>,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    truncation: RwLock<()>,
    log_start_offset: AtomicU64,
    log_end_offset: AtomicU64,
    /// The first offset of the earliest ongoing transaction (`txn_state.rs`), or
    /// `txn_state::NONE_ONGOING`, or `txn_state::NOT_BUILT`. Written before the log end
    /// offset moves.
    first_unstable: AtomicU64,
    /// Every offset below it is durable.
    durable_offset: AtomicU64,
    /// Serializes flushes (`SyncState::running`); appends do not take it, so they go on
    /// while one runs. Held only briefly, never across an fsync.
    sync: Mutex<SyncState>,
    /// Notified (with `sync`) when a flush ends: its waiters look again whether it covered
    /// their target, and one of those it did not becomes the next flush.
    flushed: Condvar,
    /// Set by the first failed write or fsync: from then on writes are refused (what is
    /// durable is no longer known), reads go on. Reopening recovers.
    poisoned: std::sync::OnceLock<String>,
    closed: AtomicBool,
    /// Set first thing by `close`, so that a long compaction gives up.
    closing: AtomicBool,
    checkpoints: Arc<Checkpoints>,
    /// Serializes compaction passes, and keeps truncation and close out of a running one.
    /// Held across a pass's reads, writes and fsyncs; retention does not take it.
    cleaner: Mutex<()>,
    /// Serializes the operations that change sealed segments (retention, truncation,
    /// close, a compaction swap). Held only briefly by compaction, so retention runs while
    /// a pass cleans. Taken before every other lock of the partition but `cleaner`.
    maintenance: Mutex<()>,
    /// Compaction: the first offset not yet cleaned.
    first_dirty: AtomicU64,
    /// Memory for compaction's key map.
    cleaner_buffer_bytes: usize,
    /// The store's open segment files (new segments count there).
    files: Arc<crate::files::OpenFiles>,
    /// Compaction: the earliest delete horizon of a tombstone it kept (`i64::MAX`: none
    /// known). Once passed, a pass runs even with nothing dirty. Not persisted: after a
    /// reopen, such tombstones go with the next pass that new data triggers.
    tombstone_expiry: std::sync::atomic::AtomicI64,
    /// The topic's wake-up for waiting readers: appends and flushes notify it.
    notify: Arc<Notify>,
}

#[derive(Debug)]
struct SyncState {
    /// A flush is running (its fsyncs take place without the lock).
    running: bool,
    /// Threads waiting for the running flush to end.
    waiting: usize,
    flushes: u64,
    last: std::time::Instant,
}

/// One partition's log. Cheap to clone (a handle); `Send + Sync`: one writer at a time,
/// any number of concurrent readers that never block the writer.
#[derive(Debug, Clone)]
pub struct Partition {
    inner: Arc<Inner>,
}

impl Partition {
    /// `<topic>-<partition>`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's name, shared (what each [`ConsumerRecord`](crate::ConsumerRecord) holds).
    pub(crate) fn topic_shared(&self) -> &Arc<str> {
        &self.inner.topic
    }

    /// The partition's number in its topic.
    pub fn number(&self) -> u32 {
        self.inner.key.1
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The topic configuration this partition follows.
    pub fn config(&self) -> &TopicConfig {
        &self.inner.config
    }

    /// The first offset held.
    pub fn log_start_offset(&self) -> u64 {
        self.inner.log_start_offset.load(Ordering::Acquire)
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> u64 {
        self.inner.log_end_offset.load(Ordering::Acquire)
    }

    /// Refuses writes to a closed, deleted or poisoned partition.
    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(self.inner.name.clone()));
        }
        if let Some(cause) = self.inner.poisoned.get() {
            return Err(Error::Poisoned {
                partition: self.inner.name.clone(),
                cause: cause.clone(),
            });
        }
        Ok(())
    }

    /// Poisons the partition when `r` is an I/O error: after a failed write or fsync, what
    /// reached the disk is unknown (a failed fsync may even have dropped dirty pages), so
    /// no later write may build on it.
    fn poison_on_io<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e @ Error::Io { .. }) = &r {
            self.poison(e);
        }
        r
    }

    /// Poisons the partition with `cause` (the first cause stays).
    fn poison(&self, cause: &Error) {
        if self.inner.poisoned.set(cause.to_string()).is_ok() {
            tracing::error!(
                partition = %self.inner.name,
                error = %cause,
                "partition poisoned: writes are refused until the store is reopened"
            );
        }
    }

    /// The I/O error that poisoned this partition, if one did.
    pub fn poisoned(&self) -> Option<&str> {
        self.inner.poisoned.get().map(String::as_str)
    }

    /// Appends `records` as one batch with dense offsets from the log end offset, rolling a
    /// new segment first when the active one is full or old. Records without a timestamp
    /// get the store clock's time (all records do, for log-append-time topics).
    ///
    /// The records are anything [`AsRecord`]: owned [`Record`](crate::Record)s, or
    /// [`RecordRef`](crate::RecordRef)s borrowing bytes the caller keeps (encoding them
    /// into the batch is then their only copy), or [`RecordView`]s read from a log.
    ///
    /// The batch is in the page cache when this returns; it is durable after
    /// [`Partition::flush`], or before this returns when the topic's [`FlushPolicy`] says
    /// so (`EveryAppend`, or `EveryRecords(n)` on the append that reaches `n`).
    ///
    /// # Errors
    /// [`Error::EmptyAppend`]; [`Error::BatchTooLarge`] when the encoded batch exceeds
    /// `max_batch_bytes` or `segment_bytes`; [`Error::InvalidTimestamp`] when a record's
    /// timestamp is more than `max_timestamp_skew_ms` ahead of the clock; [`Error::Encode`]; [`Error::Closed`];
    /// [`Error::Poisoned`] after an earlier failed write or fsync; I/O errors (a failed
    /// write or fsync poisons the partition: reads go on, writes need a reopen).
    pub fn append<R: AsRecord>(&self, records: &[R]) -> Result<AppendInfo> {
        if records.is_empty() {
            return Err(Error::EmptyAppend);
        }
        self.append_encoded(|buf, spec| encode_batch_reusing(buf, spec, records))
    }

    /// Appends a batch a producer encoded record by record as they were sent: the header
    /// (offsets, timestamps, CRC) is completed here, under the writer lock, as `append`'s.
    /// The batch's buffer becomes the writer's, and the writer's old one goes to `spare`.
    pub(crate) fn append_built(
        &self,
        batch: BatchBuilder,
        spare: &mut Vec<u8>,
    ) -> Result<AppendInfo> {
        if batch.count() == 0 {
            return Err(Error::EmptyAppend);
        }
        self.append_encoded(move |buf, spec| batch.finish(buf, spare, spec))
    }

    /// `append`'s checks and write around `encode`, which writes one batch per `spec` at
    /// the start of the writer's reused buffer.
    fn append_encoded(
        &self,
        encode: impl FnOnce(&mut Vec<u8>, &BatchSpec) -> std::result::Result<BatchHeader, EncodeError>,
    ) -> Result<AppendInfo> {
        let inner = &*self.inner;
        self.append_batches(|at, buf, headers| {
            let mut spec = BatchSpec::new(at.log_end, at.now);
            spec.compression = inner.config.compression.for_records();
            if inner.config.timestamp_type == TimestampType::LogAppendTime {
                spec.attributes |= TIMESTAMP_TYPE_BIT;
            }
            let header = encode(buf, &spec)?;
            let size = header.size();
            if let (TimestampType::CreateTime, Some(skew)) = (
                inner.config.timestamp_type,
                inner.config.max_timestamp_skew_ms,
            ) {
                if header.max_timestamp > at.now.saturating_add(skew.min(i64::MAX as u64) as i64) {
                    return Err(Error::InvalidTimestamp {
                        partition: inner.name.clone(),
                        timestamp: header.max_timestamp,
                        now: at.now,
                        max_skew_ms: skew,
                    });
                }
            }
            if let Some((limit_name, limit)) = self.size_limit_exceeded(size) {
                return Err(Error::BatchTooLarge {
                    size,
                    limit_name,
                    limit,
                });
            }
            headers.push(header);
            Ok(())
        })
    }

    /// The topic limit (`max_batch_bytes`, then `segment_bytes`) a batch of `size` bytes
    /// exceeds, if any.
    fn size_limit_exceeded(&self, size: usize) -> Option<(&'static str, u64)> {
        let config = &self.inner.config;
        [
            ("max_batch_bytes", config.max_batch_bytes as u64),
            ("segment_bytes", config.segment_bytes),
        ]
        .into_iter()
        .find(|&(_, limit)| size as u64 > limit)
    }

    /// The tail every append shares: under the writer lock, `prepare` fills the reused
    /// buffer from its start (its length may exceed the batches: what follows them is
    /// garbage) with whole, checked batches back to back and pushes their headers (final
    /// offsets, in order, each at or past the previous one's end and the log end). Nothing
    /// is written when it fails. Then each batch is written (rolling first when due), the
    /// log end offset published, waiting readers woken and the flush policy applied.
    fn append_batches(
        &self,
        prepare: impl FnOnce(&AppendAt, &mut Vec<u8>, &mut Vec<BatchHeader>) -> Result<()>,
    ) -> Result<AppendInfo> {
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        self.check_open()?;
        let at = AppendAt {
            log_end: self.log_end_offset(),
            roll_base: self.roll_base(&w),
            now: inner.clock.now_ms(),
        };
        let mut buf = std::mem::take(&mut w.buf);
        let mut headers = std::mem::take(&mut w.headers);
        headers.clear();
        let result = prepare(&at, &mut buf, &mut headers).and_then(|()| {
            let (first, last) = match (headers.first(), headers.last()) {
                (Some(f), Some(l)) => (*f, *l),
                _ => return Err(Error::EmptyAppend),
            };
            let mut records = 0u64;
            let mut max_timestamp = i64::MIN;
            let mut pos = 0;
            for header in &headers {
                let size = header.size();
                let bytes = &buf[pos..pos + size];
                pos += size;
                if w.active.should_roll(
                    size as u64,
                    header,
                    inner.config.segment_bytes,
                    inner.config.segment_ms,
                    at.now,
                )? {
                    // At the end of the active segment's data, not at the batch: a gap
                    // before a batch kept at its offsets (`OffsetMode::Keep`) lies inside
                    // the new segment, so every sealed segment reaches its successor.
                    let base = self.roll_base(&w);
                    if w.active.size() > 0 || base > w.active.base_offset() {
                        self.roll(&mut w, base, at.now)?;
                    }
                }
                w.active.append(bytes, header)?;
                let ended = self.observe_appended(&mut w, bytes, header)?;
                inner
                    .log_end_offset
                    .store(header.next_offset(), Ordering::Release);
                self.publish_deferred_unstable(ended);
                records += header.records_count.max(0) as u64;
                max_timestamp = max_timestamp.max(header.max_timestamp);
            }
            Ok((
                AppendInfo {
                    base_offset: first.base_offset as u64,
                    last_offset: last.last_offset(),
                    max_timestamp,
                    batch_bytes: pos,
                },
                records,
            ))
        });
        w.buf = buf;
        w.headers = headers;
        let (info, records) = self.poison_on_io(result)?;
        w.records_since_flush += records;
        let flush_now = match inner.config.flush_policy {
            FlushPolicy::EveryAppend => true,
            FlushPolicy::EveryRecords(n) => w.records_since_flush >= n,
            FlushPolicy::Never | FlushPolicy::EveryMillis(_) => false,
        };
        if flush_now {
            w.records_since_flush = 0;
        }
        // The flush runs without the writer lock: other appends go on meanwhile, and one
        // fsync then covers all of them (group commit).
        drop(w);
        // Waiting consumers are woken outside the lock, so appenders do not wait for it.
        inner.notify.notify();
        if flush_now {
            self.poison_on_io(self.sync_to(info.last_offset + 1, false))?;
        }
        Ok(info)
    }

    /// Where a roll starts the next segment: the end of the active segment's data, which
    /// is the log end offset unless a truncation fell inside an offset gap.
    fn roll_base(&self, w: &Writer) -> u64 {
        self.log_end_offset().min(w.active.next_offset())
    }

    /// Seals the active segment and starts a new one at `base`.
    fn roll(&self, w: &mut Writer, base: u64, now: i64) -> Result<()> {
        let inner = &*self.inner;
        w.active.seal()?;
        let opts = SegmentOptions::from_config(&inner.config, &inner.files);
        let seg = Segment::create(&inner.dir, base, opts, now)?;
        inner.segments.write().push(Arc::clone(&seg));
        let old = std::mem::replace(&mut w.active, seg);
        w.unflushed.push(old);
        // IMPORTANT: the new file is durable only after its directory is fsynced (at flush).
        w.dir_dirty = true;
        Ok(())
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OffsetOutOfRange {
            partition: self.inner.name.clone(),
            offset,
            log_start: self.log_start_offset(),
            log_end: self.log_end_offset(),
        }
    }

    /// Index of the segment that would hold `offset` (the last with base `<= offset`).
    fn segment_index(segs: &[Arc<Segment>], offset: u64) -> usize {
        segs.partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// Reads whole batches starting with the one that holds `offset`, continuing across
    /// segments, up to `max_bytes` in all — but always at least one batch, however large.
    /// An `offset` equal to the log end offset gives an empty [`Fetch`].
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start or past the log end offset;
    /// [`Error::Corrupt`] when a batch fails its CRC; I/O errors.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Fetch> {
        self.read_below(offset, max_bytes, Partition::log_end_offset, Vec::new())
    }

    /// As [`Partition::read`], but returns only durable batches: those below
    /// [`Partition::durable_offset`] (flushed, so they survive a crash). `offset` may lie
    /// up to the log end offset; past the durable offset the fetch is empty.
    ///
    /// # Errors
    /// As [`Partition::read`].
    pub fn read_durable(&self, offset: u64, max_bytes: usize) -> Result<Fetch> {
        self.read_below(offset, max_bytes, Partition::durable_offset, Vec::new())
    }

    /// `read`, `read_durable` or (with [`Isolation::ReadCommitted`](crate::Isolation))
    /// `read_committed` into `buf`'s allocation (a consumer recycles its fetch buffers: a
    /// fresh megabyte per fetch costs page faults).
    pub(crate) fn read_reusing(
        &self,
        offset: u64,
        max_bytes: usize,
        durable: bool,
        isolation: crate::Isolation,
        buf: Vec<u8>,
    ) -> Result<Fetch> {
        if isolation == crate::Isolation::ReadCommitted {
            return self.read_isolated(offset, max_bytes, durable, buf);
        }
        let end = if durable {
            Partition::durable_offset
        } else {
            Partition::log_end_offset
        };
        self.read_below(offset, max_bytes, end, buf)
    }

    /// Reads like `read`, with the end of what is visible given by `end` (the log end
    /// offset, or the durable offset, loaded once), into `buf` (cleared).
    fn read_below(
        &self,
        offset: u64,
        max_bytes: usize,
        end: fn(&Partition) -> u64,
        mut buf: Vec<u8>,
    ) -> Result<Fetch> {
        buf.clear();
        let _no_truncation = self.inner.truncation.read();
        // The visible end before the log end offset: a read-committed end (the last
        // stable offset) is consistent with the log end offset it read itself, and an
        // older log end offset read before it would cut off an ended transaction's marker.
        let end = end(self);
        let log_end = self.log_end_offset();
        if offset > log_end {
            return Err(self.out_of_range(offset));
        }
        let end = end.min(log_end);
        if offset > end {
            return Ok(Fetch::new(buf, offset, offset));
        }
        if offset < self.log_start_offset() || offset > end {
            return Err(self.out_of_range(offset));
        }
        let mut fetch = Fetch::new(buf, offset, offset);
        let mut next = offset;
        // The segment the fetch's first batch came from, and that batch's file position.
        let mut first: Option<(Arc<Segment>, u64)> = None;
        while next < end {
            // Past this segment's data (a gap), continue at the next segment's base.
            let (seg, successor) = self.segment_at(next)?;
            let budget = max_bytes.saturating_sub(fetch.buf.len());
            let before = fetch.buf.len();
            let read = match seg.read_below(next, budget, before == 0, successor, &mut fetch.buf) {
                // Deleted under us (retention, compaction) and closed by the file cache: the
                // segment list tells where the offset went.
                Err(_) if self.replaced(&seg) => continue,
                read => read?,
            };
            match read {
                Some((n, pos)) if fetch.buf.len() > before => {
                    first.get_or_insert((Arc::clone(&seg), pos));
                    next = n;
                }
                Some(_) => break, // the next batch does not fit the budget
                None => match successor {
                    Some(b) => next = b.max(next),
                    None => return Err(self.missing_past_last(&seg, next, end)),
                },
            }
            fetch.next_offset = next;
            if fetch.buf.len() >= max_bytes {
                break;
            }
        }
        if fetch.next_offset > end {
            let first = first.as_ref().map(|(seg, pos)| (&**seg, *pos));
            let (keep, next) = self.cut_at_end(&fetch.buf, offset, end, log_end, first)?;
            fetch.buf.truncate(keep);
            fetch.next_offset = next;
        }
        fetch.decompress(&self.inner.dir)?;
        Ok(fetch)
    }

    /// For batches read from `offset` that run past `end` (the visible end, loaded before
    /// the read: the segment may already hold batches appended since), how many bytes to
    /// keep and the fetch's next offset, which never passes `end`. `first` is the segment
    /// and file position of the first batch, to name a damaged base offset.
    fn cut_at_end(
        &self,
        batches: &[u8],
        offset: u64,
        end: u64,
        log_end: u64,
        first: Option<(&Segment, u64)>,
    ) -> Result<(usize, u64)> {
        let mut keep = 0;
        let mut dropped = None;
        let mut next = offset;
        for (pos, b) in BatchIter::new(batches).filter_map(Result::ok) {
            if b.base_offset() >= end {
                dropped = Some(b.base_offset());
                break;
            }
            keep = pos + b.as_bytes().len();
            next = b.last_offset() + 1;
        }
        match (keep, dropped, first) {
            // Appends start at the log end offset: a first batch past the one loaded has a
            // damaged base offset (the CRC does not cover it).
            (0, Some(base), Some((seg, pos))) if base > log_end => {
                return Err(Error::Corrupt {
                    path: seg.log_path().to_path_buf(),
                    position: pos,
                    reason: format!(
                        "batch base offset {base} lies past the log end offset {log_end} \
                         (a damaged base offset)"
                    ),
                });
            }
            // Nothing below `end` from `offset` on (a gap up to a batch at or past it).
            (0, Some(_), _) => next = end,
            _ => {}
        }
        Ok((keep, next.min(end)))
    }

    /// As [`Partition::read`], into `buf`'s allocation: a reader that hands each fetch's
    /// buffer back ([`Fetch::into_buffer`]) allocates (and page-faults) no new memory per
    /// read.
    ///
    /// # Errors
    /// As [`Partition::read`].
    pub fn read_into(&self, offset: u64, max_bytes: usize, buf: Vec<u8>) -> Result<Fetch> {
        self.read_below(offset, max_bytes, Partition::log_end_offset, buf)
    }

    /// As [`Partition::read`], without copying: `f` gets the batches borrowed from the
    /// segment file's mapping ([`FetchRef`]), and its result is returned. The batches come
    /// from one segment (a read that reaches the end of one stops there; read on from
    /// [`FetchRef::next_offset`]). Compressed batches are decompressed for `f` as for
    /// [`Partition::read`].
    ///
    /// While `f` runs, the partition cannot be truncated: `f` must not call
    /// [`Partition::truncate_to`] (it would wait for `f` forever). Appends, other reads,
    /// retention and compaction go on (a deleted segment's mapping stays valid until `f`
    /// returns).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = seglog::Store::open(dir.path())?;
    /// # let topic = store.create_topic("t", seglog::TopicConfig::default())?;
    /// let partition = topic.partition(0).unwrap();
    /// partition.append(&[seglog::RecordRef::new(b"hello")])?;
    /// let total: usize = partition.read_in_place(0, 1 << 20, |fetch| {
    ///     fetch.records().map(|r| r.value().map_or(0, <[u8]>::len)).sum()
    /// })?;
    /// assert_eq!(total, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Partition::read`].
    pub fn read_in_place<T>(
        &self,
        offset: u64,
        max_bytes: usize,
        f: impl FnOnce(FetchRef<'_>) -> T,
    ) -> Result<T> {
        self.read_in_place_at(offset, max_bytes, |fetch, _| f(fetch))
    }

    /// [`Partition::read_in_place`], also giving `f` the segment the batches come from, the
    /// file position of the first and its header (none for an empty fetch).
    fn read_in_place_at<T>(
        &self,
        offset: u64,
        max_bytes: usize,
        f: impl FnOnce(FetchRef<'_>, Option<(&Segment, u64, &BatchHeader)>) -> T,
    ) -> Result<T> {
        let _no_truncation = self.inner.truncation.read();
        let end = self.log_end_offset();
        if offset > end || offset < self.log_start_offset() {
            return Err(self.out_of_range(offset));
        }
        let mut next = offset;
        let mut f = Some(f);
        while next < end {
            let (seg, successor) = self.segment_at(next)?;
            let lend = |read: &SegmentRead<'_>| -> Result<Option<T>> {
                let mut batches = read.batches();
                if batches.is_empty() {
                    return Ok(None);
                }
                let mut next_offset = read.next;
                if next_offset > end {
                    let (keep, n) =
                        self.cut_at_end(batches, offset, end, end, Some((&seg, read.pos)))?;
                    batches = &batches[..keep];
                    next_offset = n;
                }
                let (mut plain, mut sections) = (Vec::new(), Vec::new());
                if read.compressed {
                    fetch::decompress_into(
                        batches,
                        offset,
                        &self.inner.dir,
                        &mut plain,
                        &mut sections,
                    )?;
                }
                let fetch = FetchRef {
                    buf: batches,
                    offset,
                    next_offset,
                    plain: &plain,
                    sections: &sections,
                    aborted: None,
                };
                let first = read.first.as_ref().filter(|_| !batches.is_empty());
                // Taken once: a fetch with batches ends the loop.
                Ok(f.take()
                    .map(|f| f(fetch, first.map(|h| (&*seg, read.pos, h)))))
            };
            let lent = match seg.read_view(next, max_bytes, true, successor, lend) {
                Err(_) if self.replaced(&seg) => continue,
                lent => lent?,
            };
            match lent.transpose()?.flatten() {
                Some(result) => return Ok(result),
                None => match successor {
                    Some(b) => next = b.max(next),
                    None => return Err(self.missing_past_last(&seg, next, end)),
                },
            }
        }
        // Nothing from `offset` to the visible end: an empty fetch.
        let empty = FetchRef {
            buf: &[],
            offset,
            next_offset: next.min(end),
            plain: &[],
            sections: &[],
            aborted: None,
        };
        match f {
            Some(f) => Ok(f(empty, None)),
            // Cannot happen: `f` is taken only by a fetch that returns.
            None => Err(self.missing_past_last(&self.segment_at(next)?.0, next, end)),
        }
    }

    /// The record at `offset`, given to `f` borrowed from the mapped file (no copy of its
    /// batch); `None` when no record has that offset (the log end, a gap left by
    /// compaction, or a transaction marker). A point lookup: the batch holding `offset` is
    /// found through the offset index, checked the first time this process reads it, and
    /// the records before `offset` in it are stepped over by their lengths.
    /// The same rules as [`Partition::read_in_place`] hold while `f` runs.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = seglog::Store::open(dir.path())?;
    /// # let topic = store.create_topic("t", seglog::TopicConfig::default())?;
    /// let partition = topic.partition(0).unwrap();
    /// partition.append(&[seglog::RecordRef::new(b"a"), seglog::RecordRef::new(b"b")])?;
    /// let value = partition.read_record(1, |r| r.value().map(<[u8]>::to_vec))?;
    /// assert_eq!(value, Some(Some(b"b".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Partition::read`].
    pub fn read_record<T>(
        &self,
        offset: u64,
        f: impl FnOnce(RecordView<'_>) -> T,
    ) -> Result<Option<T>> {
        self.read_in_place_at(offset, 1, |fetch, at| match at {
            // The usual case: the first batch, parsed by the read, holds `offset`.
            Some((seg, pos, h))
                if (h.base_offset as u64) <= offset && offset <= h.last_offset() =>
            {
                if h.is_control() {
                    return None; // a transaction marker: no record at `offset`
                }
                let b = crate::record::Batch::from_parts(*h, fetch.as_bytes())?;
                fetch
                    .record_in(&b, offset, seg.seek_hint(pos, &b, offset))
                    .map(f)
            }
            // A gap before the first batch, or no batch.
            _ => fetch.record_at(offset).map(f),
        })
    }

    /// The segment that would hold `offset` and the next segment's base offset.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when retention deleted the segment holding `offset`.
    fn segment_at(&self, offset: u64) -> Result<(Arc<Segment>, Option<u64>)> {
        let segs = self.inner.segments.read();
        if segs[0].base_offset() > offset {
            return Err(self.out_of_range(offset));
        }
        let i = Self::segment_index(&segs, offset);
        Ok((
            Arc::clone(&segs[i]),
            segs.get(i + 1).map(|s| s.base_offset()),
        ))
    }

    /// The last segment, `seg`, holds nothing at or past `next`, below the visible `end`:
    /// the offsets in between are in no file (never an empty fetch, which would stall
    /// every consumer).
    fn missing_past_last(&self, seg: &Segment, next: u64, end: u64) -> Error {
        Error::MissingOffsets {
            partition: self.inner.name.clone(),
            from: next,
            to: end,
            detail: format!(
                "the last segment, {}, holds nothing at or past offset {next} (it ends at \
                 byte {})",
                seg.log_path().display(),
                seg.size()
            ),
        }
    }

    /// After a read of `seg` failed: true when the segment was deleted (retention or
    /// compaction, with its files closed by the cache) and has left the segment list, so
    /// that the read can look again where its offsets went. Waits (up to about two
    /// seconds) for a compaction that deleted it to put its replacement in the list.
    fn replaced(&self, seg: &Arc<Segment>) -> bool {
        let mut pause = std::time::Duration::from_micros(50);
        for _ in 0..20 {
            if !seg.is_deleted() {
                return false;
            }
            if !self
                .inner
                .segments
                .read()
                .iter()
                .any(|s| Arc::ptr_eq(s, seg))
            {
                return true;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
        false
    }

    /// The first record with a timestamp `>= timestamp` (Kafka's ListOffsets by time), or
    /// `None` when every record is older.
    ///
    /// # Errors
    /// [`Error::Corrupt`] and I/O errors.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let _no_truncation = self.inner.truncation.read();
        let end = self.log_end_offset();
        'search: loop {
            let segs: Vec<Arc<Segment>> = self.inner.segments.read().clone();
            let start = self.log_start_offset();
            for seg in segs {
                let found = seg.max_timestamp().and_then(|max| match max < timestamp {
                    true => Ok(None),
                    false => seg.find_offset_by_timestamp(timestamp, start),
                });
                let found = match found {
                    // Deleted under us: search the segments that replaced it.
                    Err(_) if self.replaced(&seg) => continue 'search,
                    found => found?,
                };
                if let Some((offset, timestamp)) = found {
                    // A record appended after `end` was loaded is not visible yet.
                    return Ok((offset < end).then_some(TimestampOffset { offset, timestamp }));
                }
            }
            return Ok(None);
        }
    }

    /// Removes every record at or past `offset`; the log end offset becomes `offset`.
    /// A batch holding both kept and removed records is rewritten with only the kept ones.
    /// Readers wait while the truncation runs. The truncation is durable when this returns
    /// (the segment cut is synced, and the directory when segments were deleted).
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] outside `[log_start_offset, log_end_offset]`;
    /// [`Error::Closed`]; [`Error::Poisoned`]; I/O errors (which poison the partition).
    pub fn truncate_to(&self, offset: u64) -> Result<()> {
        let inner = &*self.inner;
        // No compaction pass runs across a truncation: its segments and first dirty
        // offset would be stale.
        let _cleaner = inner.cleaner.lock();
        let _maintenance = inner.maintenance.lock();
        // No flush may run meanwhile: it would mark offsets durable that this removes.
        // Holding the lock keeps new ones from starting once the running one has ended.
        let mut sync = inner.sync.lock();
        while sync.running {
            inner.flushed.wait(&mut sync);
        }
        let mut w = inner.writer.lock();
        self.check_open()?;
        if offset < self.log_start_offset() || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset == self.log_end_offset() {
            return Ok(());
        }
        let durable_before;
        {
            // Offsets at or past `offset` stop counting as durable, in the checkpoint too,
            // before any file changes: what is appended there next is not flushed. When a
            // batch holds `offset`, its header is rewritten in place: a power cut during
            // that write may tear the batch, so the recovery point goes below it too, and
            // recovery then cuts such a torn batch instead of failing the open.
            let target = {
                let segs = inner.segments.read();
                Arc::clone(&segs[Self::segment_index(&segs, offset)])
            };
            let below = self
                .poison_on_io(target.batch_base_containing(offset))?
                .unwrap_or(offset);
            let mut checkpoints = inner.checkpoints.lock();
            durable_before = inner.durable_offset.fetch_min(below, Ordering::AcqRel);
            self.poison_on_io(checkpoints.lower_recovery_point(&inner.key, below))?;
            // What is appended at `offset` next is dirty: compaction must see it again
            // (Kafka lowers the cleaner checkpoint on truncation too).
            if inner.first_dirty.load(Ordering::Acquire) > offset {
                self.poison_on_io(checkpoints.set_first_dirty(&inner.key, offset))?;
                inner.first_dirty.store(offset, Ordering::Release);
            }
        }
        let _exclusive = inner.truncation.write();
        let mut segs = inner.segments.write();
        let keep = Self::segment_index(&segs, offset) + 1;
        let removed: Vec<Arc<Segment>> = segs.drain(keep..).collect();
        let was_sealed = !removed.is_empty();
        let target = Arc::clone(&segs[keep - 1]);
        drop(segs);
        w.unflushed
            .retain(|s| !removed.iter().any(|r| Arc::ptr_eq(r, s)));
        w.dir_dirty |= was_sealed;
        // A failure part-way leaves the files between the old and the new state: poisoned,
        // so only a reopen (which recovers from the files) writes again.
        self.poison_on_io((|| {
            for seg in &removed {
                seg.delete_files()?;
            }
            target.truncate_to(offset)?;
            if was_sealed {
                target.reactivate()?;
                w.unflushed.retain(|s| !Arc::ptr_eq(s, &target));
                w.active = Arc::clone(&target);
            }
            // Durable before returning: a later flush may find nothing to do (nothing
            // appended since), and a crash must not bring back what was removed.
            target.flush()?;
            if w.dir_dirty {
                crate::fs::sync_dir(&inner.dir)?;
                w.dir_dirty = false;
            }
            sync.flushes += 1;
            Ok(())
        })())?;
        // Synced: what was durable below `offset` is again.
        inner
            .durable_offset
            .fetch_max(durable_before.min(offset), Ordering::AcqRel);
        inner.log_end_offset.store(offset, Ordering::Release);
        // Transactions that started or ended past `offset` are gone. A built state is
        // rebuilt now, while reads are shut out: a reader that found it built before the
        // truncation reads the last stable offset without building it again.
        self.poison_on_io(self.rebuild_txn_state(&mut w))?;
        Ok(())
    }

    /// Makes every append so far durable: fdatasync of each segment written since the last
    /// flush (log and the index entries it added), then fsync of the directory if a segment
    /// file was created or deleted. Appends on other threads go on while it runs; a flush
    /// that finds its work done by one that ran meanwhile returns at once.
    ///
    /// # Errors
    /// [`Error::Closed`] once the partition is closed (closing flushed it) or deleted;
    /// [`Error::Poisoned`]; I/O errors from the syncs, which poison the partition (after a
    /// failed fsync the OS may have dropped the unwritten pages: retrying could report
    /// success for data that is gone).
    pub fn flush(&self) -> Result<()> {
        self.check_open()?;
        self.poison_on_io(self.sync_to(self.log_end_offset(), false))
    }

    /// The cleaner's first dirty offset: a compaction pass that changes any record moves
    /// it forward (the Kafka bridge's mirror tells by it whether records it sent may have
    /// changed since its last commit).
    #[cfg(feature = "kafka")]
    pub(crate) fn first_dirty_offset(&self) -> u64 {
        self.inner.first_dirty.load(Ordering::Acquire)
    }

    /// True when `other` is a handle to this very partition.
    #[cfg(feature = "async")]
    pub(crate) fn same(&self, other: &Partition) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The store clock's time, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Makes every offset below `target` durable, sharing fsyncs with concurrent flushes
    /// (a flush that finds its target covered returns at once).
    ///
    /// # Errors
    /// As [`Partition::flush`].
    pub(crate) fn flush_to(&self, target: u64) -> Result<()> {
        self.check_open()?;
        self.poison_on_io(self.sync_to(target, false))
    }

    /// Every offset below the returned one is durable.
    pub fn durable_offset(&self) -> u64 {
        self.inner.durable_offset.load(Ordering::Acquire)
    }

    /// Makes every offset below `target` durable (group commit). With `force`, syncs even
    /// when nothing is pending (close: the sealed index files' new sizes).
    fn sync_to(&self, target: u64, force: bool) -> Result<()> {
        let inner = &*self.inner;
        if !force && self.durable_offset() >= target {
            return Ok(());
        }
        // One flush runs at a time, and its fsyncs run without the lock: the others wait for
        // it to end, then look again, since it may have covered their target (group commit).
        // (Waiting on a lock held across the fsync instead made appends that the last fsync
        // had covered queue behind the next one: about two appends per fsync at any thread
        // count.)
        let mut sync = inner.sync.lock();
        loop {
            if !force && self.durable_offset() >= target {
                return Ok(());
            }
            if !sync.running {
                break;
            }
            sync.waiting += 1;
            inner.flushed.wait(&mut sync);
            sync.waiting -= 1;
        }
        if let Some(cause) = inner.poisoned.get() {
            // A flush failed while this one waited: syncing again could report success for
            // pages the failed fsync dropped.
            return Err(Error::Poisoned {
                partition: inner.name.clone(),
                cause: cause.clone(),
            });
        }
        sync.running = true;
        let others = sync.waiting > 0;
        drop(sync);
        if others {
            // The appenders the last flush covered were just woken: letting them run first
            // lets this flush cover their next appends too, rather than leaving them to the
            // one after (with no waiter, as with one appending thread, nothing waits here).
            std::thread::yield_now();
        }
        // Should `sync_pending` ever panic, the guard still ends this flush, so that later
        // ones do not wait for it forever.
        let running = RunningFlush(inner);
        let synced = self.poison_on_io(self.sync_pending());
        std::mem::forget(running);
        let mut sync = inner.sync.lock();
        sync.running = false;
        if let Ok(end) = synced {
            sync.flushes += 1;
            sync.last = std::time::Instant::now();
            inner.durable_offset.fetch_max(end, Ordering::AcqRel);
        }
        // Consumers in durable-read mode and durability waits wait for this (a failure
        // poisoned the partition: waits end with the error).
        inner.notify.notify();
        inner.flushed.notify_all();
        synced.map(|_| ())
    }

    /// The work of one flush (see `sync_to`, which runs one at a time): syncs what was
    /// written since the last one and returns the log end offset it covers.
    fn sync_pending(&self) -> Result<u64> {
        let inner = &*self.inner;
        // What to sync, taken under the writer lock briefly; the syncs run without it.
        let (end, segments, dir_dirty) = {
            let mut w = inner.writer.lock();
            let mut segments = std::mem::take(&mut w.unflushed);
            segments.push(Arc::clone(&w.active));
            (
                self.log_end_offset(),
                segments,
                std::mem::take(&mut w.dir_dirty),
            )
        };
        let synced = segments.iter().try_for_each(|s| s.flush()).and_then(|()| {
            if dir_dirty {
                // IMPORTANT: fsync the directory, or a new segment can vanish after a crash.
                crate::fs::sync_dir(&inner.dir)?;
            }
            Ok(())
        });
        if let Err(e) = synced {
            // Nothing is claimed durable: the next flush syncs all of it again — but not
            // segments retention or compaction removed meanwhile, which would otherwise
            // keep their deleted files open.
            let mut w = inner.writer.lock();
            let active = segments.len() - 1;
            let live = inner.segments.read();
            let still_listed = |s: &Arc<Segment>| live.iter().any(|l| Arc::ptr_eq(l, s));
            w.unflushed
                .extend(segments.into_iter().take(active).filter(still_listed));
            drop(live);
            w.dir_dirty |= dir_dirty;
            return Err(e);
        }
        Ok(end)
    }

    /// For the store's background flusher: flushes when appends are pending and the last
    /// flush is at least `interval` old.
    pub(crate) fn flush_if_older(&self, interval: std::time::Duration) -> Result<()> {
        if self.durable_offset() >= self.log_end_offset()
            || self.inner.sync.lock().last.elapsed() < interval
        {
            return Ok(());
        }
        self.flush()
    }

    /// Tells a running compaction pass to stop early: the partition is about to close.
    pub(crate) fn begin_close(&self) {
        self.inner.closing.store(true, Ordering::Release);
    }

    /// Flushes, trims the active segment's index files and refuses further writes.
    pub(crate) fn close(&self) -> Result<()> {
        self.begin_close();
        // A running compaction pass stops at its next step (`closing`).
        let _cleaner = self.inner.cleaner.lock();
        let _maintenance = self.inner.maintenance.lock();
        {
            let w = self.inner.writer.lock();
            if self.inner.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            if let Some(cause) = self.inner.poisoned.get() {
                // Nothing more is written; the next open recovers from the files.
                return Err(Error::Poisoned {
                    partition: self.inner.name.clone(),
                    cause: cause.clone(),
                });
            }
            w.active.seal()?;
        }
        self.sync_to(self.log_end_offset(), true)?;
        // Handles to a closed partition may live on: its files need not.
        for seg in self.inner.segments.read().iter() {
            seg.close_files();
        }
        Ok(())
    }

    /// Marks the partition closed without flushing (its files are being deleted).
    pub(crate) fn mark_closed(&self) {
        self.begin_close();
        // No compaction pass writes in the directory once this returns.
        let _cleaner = self.inner.cleaner.lock();
        let _maintenance = self.inner.maintenance.lock();
        let _w = self.inner.writer.lock();
        self.inner.closed.store(true, Ordering::Release);
        // Durability waits end with `Closed`.
        self.inner.notify.notify();
    }

    /// Undoes [`Partition::mark_closed`] (a topic deletion that did not commit: its files
    /// are back where they were).
    pub(crate) fn unmark_closed(&self) {
        let _maintenance = self.inner.maintenance.lock();
        let _w = self.inner.writer.lock();
        self.inner.closed.store(false, Ordering::Release);
        self.inner.closing.store(false, Ordering::Release);
    }

    /// A snapshot of the segments, oldest first.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.inner.segments.read().clone()
    }

    /// Offsets, segment count and size.
    pub fn stats(&self) -> PartitionStats {
        // Not under the segments lock: `truncate_to` takes the sync lock before it.
        let flushes = self.inner.sync.lock().flushes;
        let segs = self.inner.segments.read();
        PartitionStats {
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
            segments: segs.len(),
            size_bytes: segs.iter().map(|s| s.size()).sum(),
            durable_offset: self.durable_offset(),
            flushes,
        }
    }
}
