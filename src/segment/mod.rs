//! A segment: one `.log` file with its `.index` and `.timeindex`, named by the 20-digit
//! base offset. The module tree mirrors the files: `log.rs`, `index.rs`, `timeindex.rs`.
//!
//! One writer appends (the owning partition serializes appends); any number of readers
//! read concurrently. The writer publishes the log size with release ordering only after a
//! whole batch and its index entries are written, and readers read below the published
//! size, so a reader never sees part of a batch.
//!
//! Open files: a segment's `.log` and its index files are opened on demand and closed by
//! the store's file cache (`files.rs`, which explains the counting) when it needs room. The
//! active segment, and any segment while an operation runs on it, is pinned and stays open.

mod checked;
pub(crate) mod index;
pub(crate) mod log;
mod recover;
pub(crate) mod timeindex;
mod txnfile;
pub mod txnindex;

pub(crate) use recover::Recovered;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::files::{Evict, OpenFiles, Part};
use crate::record::{shift, Batch, BatchHeader, DecodeError, BASE_OFFSET_OFFSET};
use index::{
    decode_offset_entry, encode_offset_entry, lookup_offset_and_next, IndexFile, OFFSET_ENTRY_SIZE,
};
use log::{BatchSpan, LogFile, OpenedLog};
use timeindex::{decode_time_entry, encode_time_entry, lookup_before, TIME_ENTRY_SIZE};

pub use index::{decode_offset_entry as decode_index_entry, lookup_offset as lookup_index};
pub use timeindex::{
    decode_time_entry as decode_timeindex_entry, lookup_before as lookup_timeindex,
};

/// Largest offset distance from the base offset that fits an index entry (Kafka uses
/// `Int.MaxValue` so that Java readers see a non-negative int).
pub const MAX_RELATIVE_OFFSET: u64 = i32::MAX as u64;

/// The file name of a segment file: 20-digit zero-padded base offset plus `suffix`.
pub fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Parses `00000000000000000042.log` into 42; `None` for any other name, and for base
/// offsets past `i64::MAX` (Kafka's offsets are signed 64-bit).
pub fn parse_log_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&b| b <= i64::MAX as u64)
}

/// How a segment maintains its indexes, and where it counts its open files.
#[derive(Debug, Clone)]
pub(crate) struct SegmentOptions {
    /// Bytes between index entries.
    pub(crate) index_interval_bytes: u32,
    /// Preallocated size of each index file (Kafka's `segment.index.bytes`).
    pub(crate) max_index_bytes: u32,
    /// Bytes of the `.log` to map for reads (the segment size limit; 0: no mapping).
    pub(crate) map_bytes: u64,
    /// The store's open-file cache (`None`: files stay open, for read-only tools).
    pub(crate) files: Option<Arc<OpenFiles>>,
}

impl SegmentOptions {
    /// The options a topic's configuration implies.
    pub(crate) fn from_config(
        config: &crate::config::TopicConfig,
        files: &Arc<OpenFiles>,
    ) -> SegmentOptions {
        SegmentOptions {
            index_interval_bytes: config.index_interval_bytes,
            max_index_bytes: config.segment_index_bytes,
            map_bytes: config.segment_bytes,
            files: Some(Arc::clone(files)),
        }
    }
}

/// What a scan for an offset found.
enum Scan {
    /// The first batch ending at or past the offset, if any.
    Found(Option<(u64, BatchSpan)>),
    /// The index entry the scan started from does not describe the log.
    WrongIndexEntry,
}

/// How a segment is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The last segment: appended to, its `.log` mapped with room to grow.
    Active,
    /// Older segments of an open partition: `.log` mapped at its length.
    Sealed,
    /// A tool's view (`open_read_only`): nothing written, `.log` read with `pread`, since a
    /// live process (seglog or a Kafka broker) may truncate it and a mapping would fault.
    ReadOnly,
}

/// Writer-only state.
#[derive(Debug)]
struct WriterState {
    bytes_since_index: u64,
    offset_of_max_timestamp: u64,
    /// Max timestamp of the first batch: the reference for time-based rolling.
    rolling_timestamp: Option<i64>,
    /// `rolling_timestamp` is not known yet (read from the first batch when first needed,
    /// so that a clean open reads no log data).
    rolling_unknown: bool,
    created_ms: i64,
    /// An index is full (kept here so that `should_roll` takes no index lock).
    indexes_full: bool,
}

/// One segment of a partition's log. See the module docs for the concurrency contract.
#[derive(Debug)]
pub struct Segment {
    base_offset: u64,
    log: LogFile,
    index: RwLock<IndexFile>,
    time_index: RwLock<IndexFile>,
    /// Offset after the last batch (valid for the active segment and after a full walk).
    next_offset: AtomicU64,
    /// Largest timestamp of any batch, -1 when none.
    max_timestamp: AtomicI64,
    /// The batches checked in this process (CRC and records): written by `append` (our
    /// encoder makes well-formed batches) or validated by a read or a walk. A read checks
    /// each batch once (as Kafka's broker, it does not checksum a batch again on every
    /// fetch; the file is under the directory lock, so the bytes cannot change).
    checked: checked::Checked,
    /// Per large batch (by file position), where every `SKIP_STRIDE`-th record starts:
    /// point lookups start stepping there, not at the batch's first record.
    skips: RwLock<PositionCache<u32>>,
    /// Batch positions of closed index intervals, for lookups (`locate_in_interval`), by
    /// the interval's start.
    spans: RwLock<PositionCache<IntervalSpan>>,
    writer: Mutex<WriterState>,
    opts: SegmentOptions,
    /// The index files are open. A segment below the recovery point is opened without
    /// them; the first use loads and sanity-checks them (`ensure_indexes`). The file cache
    /// may close them again (`Evict`).
    indexes_loaded: AtomicBool,
    /// The indexes were loaded and checked once (and `max_timestamp` is known): a reload
    /// after the cache closed them only maps them.
    verified: AtomicBool,
    /// Serializes lazy index loads (and the cache's closing of the indexes).
    load_lock: Mutex<()>,
    /// The files are deleted (retention, truncation, compaction): readers holding the
    /// open `.log` go on reading it; nothing reopens the files, and a lazy index load
    /// creates nothing.
    deleted: AtomicBool,
    /// A sealed segment opened without reading (`open_trusted`) that no compaction can have
    /// rewritten: its batches must reach `next_offset` (its successor's base). Checked when
    /// its indexes are first loaded, so that a missing segment file after it is an error.
    dense: AtomicBool,
    /// This segment's id in the file cache.
    id: u64,
    /// This segment, for the file cache (set once it is shared).
    me: OnceLock<Weak<Segment>>,
    /// Per [`Part`], the cache tick of its last use.
    last_use: [AtomicU64; 2],
    /// Operations running, plus one while the segment is active: while pinned, the cache
    /// closes none of its files.
    pins: AtomicUsize,
    /// The segment is the active one (holds one of `pins`).
    active: AtomicBool,
    /// The cache closed index files with entries not yet flushed: the next flush syncs
    /// the files.
    index_sync_pending: AtomicBool,
    /// The `.txnindex` entries, read into memory on first use (`None`: not read yet). No
    /// descriptor stays open for it (`txnfile.rs`).
    txn_index: Mutex<Option<txnindex::TxnIndex>>,
    /// The `.txnindex` was written since the last flush.
    txn_sync_pending: AtomicBool,
}

/// Keeps a segment's files open while it lives (see [`Segment::pin`]).
pub(crate) struct Pin<'a>(&'a Segment);

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.0.pins.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(files) = &self.opts.files {
            files.closed(self.id, Part::Log);
            files.closed(self.id, Part::Indexes);
        }
    }
}

impl Evict for Segment {
    fn last_use(&self, part: Part) -> u64 {
        self.last_use[part as usize].load(Ordering::Relaxed)
    }

    fn evict(&self, part: Part) -> bool {
        match part {
            Part::Log => {
                if self.pins.load(Ordering::SeqCst) > 0 || self.is_deleted() {
                    return false;
                }
                // Readers holding the file keep it: only the cache's reference goes.
                self.log.close();
                true
            }
            Part::Indexes => self.unload_indexes(),
        }
    }
}

/// The `.txnindex` of the segment with base offset `base_offset` in `dir`.
pub(crate) fn txn_index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(file_name(base_offset, txnindex::TXN_INDEX_SUFFIX))
}

pub(crate) fn paths(dir: &Path, base_offset: u64) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(file_name(base_offset, ".log")),
        dir.join(file_name(base_offset, ".index")),
        dir.join(file_name(base_offset, ".timeindex")),
    )
}

impl Segment {
    /// Shares the segment, counting the files it has open in the store's cache.
    pub(crate) fn shared(self) -> Arc<Segment> {
        let seg = Arc::new(self);
        let _ = seg.me.set(Arc::downgrade(&seg));
        if seg.log.opened().is_some() {
            seg.register(Part::Log);
        }
        if seg.indexes_loaded() {
            seg.register(Part::Indexes);
        }
        seg
    }

    /// Pins the segment while the guard lives: the cache closes none of its files.
    pub(crate) fn pin(&self) -> Pin<'_> {
        self.pins.fetch_add(1, Ordering::SeqCst);
        Pin(self)
    }

    /// Marks the segment active (pinned for as long) or sealed.
    fn set_active(&self, active: bool) {
        if self.active.swap(active, Ordering::AcqRel) != active {
            if active {
                self.pins.fetch_add(1, Ordering::SeqCst);
            } else {
                self.pins.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Notes a use of `part` (for the cache's least-recently-used order).
    fn touch(&self, part: Part) {
        if let Some(files) = &self.opts.files {
            self.last_use[part as usize].store(files.tick(), Ordering::Relaxed);
        }
    }

    /// Counts `part`, just opened, in the cache (which may close other segments' files).
    fn register(&self, part: Part) {
        if let (Some(files), Some(me)) = (&self.opts.files, self.me.get()) {
            self.touch(part);
            files.opened(self.id, part, me.clone() as Weak<dyn Evict>);
        }
    }

    /// The `.log` with its descriptor open, reopened if the cache closed it. The caller
    /// should hold a [`Pin`] for as long as it uses the segment's indexes too.
    ///
    /// # Errors
    /// I/O errors opening the file; a deleted segment is not reopened (`NotFound`).
    fn log(&self) -> Result<OpenedLog<'_>> {
        self.touch(Part::Log);
        if let Some(open) = self.log.opened() {
            return Ok(open);
        }
        let gone = || {
            Error::io(
                "reopen",
                self.log.path(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "the segment was deleted"),
            )
        };
        if self.is_deleted() {
            return Err(gone());
        }
        // Checked again once open: `deleted` is set before the files are removed, so a file
        // opened while it is still false is this segment's, never a successor at the same
        // path (compaction renames one there).
        let (open, opened) = self.log.open_file(|| self.is_deleted())?.ok_or_else(gone)?;
        if opened {
            self.register(Part::Log);
        }
        Ok(open)
    }

    /// Closes the files the cache holds open for this segment (unless pinned: files in use
    /// close when the cache next needs room). For a partition that closes.
    pub(crate) fn close_files(&self) {
        for part in [Part::Log, Part::Indexes] {
            if self.evict(part) {
                if let Some(files) = &self.opts.files {
                    files.closed(self.id, part);
                }
            }
        }
    }

    /// True once the segment's files are deleted.
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// The cache's closing of the indexes: refused while pinned or in use.
    fn unload_indexes(&self) -> bool {
        let Some(_no_loader) = self.load_lock.try_lock() else {
            return false;
        };
        let (Some(mut idx), Some(mut tidx)) = (self.index.try_write(), self.time_index.try_write())
        else {
            return false;
        };
        // Cleared before the pins are read: an operation that pins after this sees the
        // indexes unloaded and reloads them (after this, under the load lock).
        self.indexes_loaded.store(false, Ordering::SeqCst);
        if self.pins.load(Ordering::SeqCst) > 0 || self.is_deleted() {
            self.indexes_loaded.store(true, Ordering::SeqCst);
            return false;
        }
        if idx.is_dirty() || tidx.is_dirty() {
            self.index_sync_pending.store(true, Ordering::Release);
        }
        let (ip, tp) = (idx.path().to_path_buf(), tidx.path().to_path_buf());
        *idx = IndexFile::unloaded(&ip, OFFSET_ENTRY_SIZE);
        *tidx = IndexFile::unloaded(&tp, TIME_ENTRY_SIZE);
        true
    }

    /// Walks batches in `[from, end)` (see `walk_below`, with no limit).
    fn walk(
        &self,
        from: u64,
        end: u64,
        f: impl FnMut(u64, &Batch<'_>) -> bool,
    ) -> Result<log::WalkEnd> {
        self.walk_below(from, end, None, f)
    }

    /// Walks batches in `[from, end)`, keeping `next_offset` and `max_timestamp` current.
    /// A batch whose offsets do not increase, do not fit the segment, or reach `limit` (the
    /// next segment's base offset) is bad, like one with a wrong CRC, and counts for
    /// nothing.
    fn walk_below(
        &self,
        from: u64,
        end: u64,
        limit: Option<u64>,
        mut f: impl FnMut(u64, &Batch<'_>) -> bool,
    ) -> Result<log::WalkEnd> {
        let mut expected = self.base_offset;
        let mut out_of_order = None;
        let mut walk = self.log()?.walk_batches(from, end, |pos, b| {
            let h = b.header();
            let bad = if (h.base_offset as u64) < expected || !self.fits(h) {
                Some(DecodeError::BadField {
                    field: "baseOffset",
                    position: BASE_OFFSET_OFFSET,
                    value: h.base_offset,
                })
            } else if limit.is_some_and(|l| h.last_offset() >= l) {
                Some(DecodeError::BadField {
                    field: "lastOffsetDelta",
                    position: crate::record::LAST_OFFSET_DELTA_OFFSET,
                    value: h.last_offset_delta as i64,
                })
            } else {
                None
            };
            if let Some(e) = bad {
                out_of_order = Some((pos, e));
                return false;
            }
            expected = h.next_offset();
            self.next_offset
                .fetch_max(h.next_offset(), Ordering::Release);
            if h.max_timestamp > self.max_ts() {
                self.max_timestamp.store(h.max_timestamp, Ordering::Release);
                // The final time-index entry (at seal or close) names this batch.
                self.writer.lock().offset_of_max_timestamp = h.last_offset();
            }
            self.walked(pos, b);
            f(pos, b)
        })?;
        if walk.error.is_none() {
            walk.error = out_of_order;
        }
        Ok(walk)
    }

    fn preallocate_indexes(&self) -> Result<()> {
        let max = self.opts.max_index_bytes as usize;
        self.index.write().resize(max)?;
        self.time_index.write().resize(max)?;
        self.refresh_indexes_full(&mut self.writer.lock());
        Ok(())
    }

    /// Recomputes `indexes_full` after the indexes changed size or entries.
    fn refresh_indexes_full(&self, w: &mut WriterState) {
        w.indexes_full = self.index.read().is_full() || timeindex::is_full(&self.time_index.read());
    }

    fn load_rolling_timestamp(&self) -> Result<()> {
        let mut first = None;
        if self.size() > 0 {
            // A bad first header leaves no reference: the segment then ages by wall clock.
            let _ = self.log()?.scan_headers(0, self.size(), |_, h| {
                first = Some(h.max_timestamp);
                false
            })?;
        }
        let mut w = self.writer.lock();
        w.rolling_timestamp = first;
        w.rolling_unknown = false;
        Ok(())
    }

    /// Truncates the log file to `len` (a batch boundary) and drops index entries at or
    /// past it.
    fn cut_log(&self, len: u64) -> Result<()> {
        self.log()?.set_len(len)?;
        self.drop_from(len);
        Ok(())
    }

    /// Forgets what lies at or past `len` in the log: index entries and checked bytes.
    fn drop_from(&self, len: u64) {
        self.checked.truncate(len);
        self.skips.write().retain_below(len);
        // An interval's batches may run past `len` from a start below it: all go.
        *self.spans.write() = PositionCache::default();
        let mut idx = self.index.write();
        let keep = (0..idx.len())
            .take_while(|&i| (decode_offset_entry(idx.entry(i)).1 as u64) < len)
            .count();
        let last_kept = keep
            .checked_sub(1)
            .map(|i| decode_offset_entry(idx.entry(i)).0);
        idx.truncate_entries(keep);
        drop(idx);
        let mut tidx = self.time_index.write();
        let keep_t = (0..tidx.len())
            .take_while(|&i| Some(decode_time_entry(tidx.entry(i)).1) <= last_kept)
            .count();
        tidx.truncate_entries(keep_t);
        drop(tidx);
        self.refresh_indexes_full(&mut self.writer.lock());
    }

    /// The base offset (the first offset this segment can hold).
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Published size of the `.log` file in bytes.
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The offset after the last batch.
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Largest timestamp of any batch, -1 when there is none. Loads the indexes of a
    /// segment opened lazily.
    ///
    /// # Errors
    /// As loading the indexes: I/O errors, or [`Error::Corrupt`] when they had to be
    /// rebuilt and the log is corrupt.
    pub fn max_timestamp(&self) -> Result<i64> {
        if !self.verified.load(Ordering::Acquire) {
            self.ensure_indexes()?;
        }
        Ok(self.max_ts())
    }

    /// The largest timestamp for time retention: the largest record timestamp, or when
    /// no record has one (all negative), the `.log` file's modification time (Kafka's
    /// `LogSegment.largestTimestamp`).
    ///
    /// # Errors
    /// As [`Segment::max_timestamp`]; I/O errors reading the file's metadata.
    pub fn largest_timestamp(&self) -> Result<i64> {
        let ts = self.max_timestamp()?;
        if ts >= 0 {
            return Ok(ts);
        }
        self.log.modified_ms()
    }

    fn max_ts(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Number of entries in the offset index and in the time index (loading them first).
    ///
    /// # Errors
    /// As [`Segment::max_timestamp`].
    pub fn index_entries(&self) -> Result<(usize, usize)> {
        let _pin = self.pin();
        self.ensure_indexes()?;
        Ok((self.index.read().len(), self.time_index.read().len()))
    }

    /// A copy of the offset index entries as `(absolute offset, position)`.
    ///
    /// # Errors
    /// As [`Segment::max_timestamp`].
    pub fn offset_index(&self) -> Result<Vec<(u64, u32)>> {
        let _pin = self.pin();
        self.ensure_indexes()?;
        let idx = self.index.read();
        Ok((0..idx.len())
            .map(|i| {
                let (rel, pos) = decode_offset_entry(idx.entry(i));
                (self.base_offset + rel as u64, pos)
            })
            .collect())
    }

    /// A copy of the time index entries as `(timestamp, absolute offset)`.
    ///
    /// # Errors
    /// As [`Segment::max_timestamp`].
    pub fn time_index(&self) -> Result<Vec<(i64, u64)>> {
        let _pin = self.pin();
        self.ensure_indexes()?;
        let idx = self.time_index.read();
        Ok((0..idx.len())
            .map(|i| {
                let (ts, rel) = decode_time_entry(idx.entry(i));
                (ts, self.base_offset + rel as u64)
            })
            .collect())
    }

    /// True when the index files are loaded (a segment below the recovery point is opened
    /// without them and loads them on first use; the store's file cache closes them again
    /// when it needs room).
    pub fn indexes_loaded(&self) -> bool {
        self.indexes_loaded.load(Ordering::Acquire)
    }

    /// Requires this trusted segment's batches to reach its successor's base offset (see
    /// the `dense` field): a topic that never compacted has no offset gaps.
    pub(crate) fn require_dense(&self) {
        self.dense.store(true, Ordering::Release);
    }

    /// Sets `next_offset` of a sealed segment from its successor's base offset, so that it
    /// need not be walked at open.
    pub(crate) fn set_next_offset(&self, next: u64) {
        self.next_offset.fetch_max(next, Ordering::Release);
    }

    /// True when appending `header` (of `batch_size` bytes) needs a new segment first:
    /// size, age, a full index or a relative offset that would overflow (Kafka's rules).
    pub(crate) fn should_roll(
        &self,
        batch_size: u64,
        header: &BatchHeader,
        segment_bytes: u64,
        segment_ms: u64,
        now_ms: i64,
    ) -> Result<bool> {
        let mut w = self.writer.lock();
        if w.rolling_unknown {
            drop(w);
            self.load_rolling_timestamp()?;
            w = self.writer.lock();
        }
        let size = self.size();
        let waited = match w.rolling_timestamp {
            Some(t) if t >= 0 => header.max_timestamp.saturating_sub(t),
            _ => now_ms.saturating_sub(w.created_ms),
        };
        Ok((size > 0 && size + batch_size > segment_bytes)
            || (size > 0 && waited > 0 && waited as u64 > segment_ms)
            || w.indexes_full
            || header.last_offset() - self.base_offset > MAX_RELATIVE_OFFSET)
    }

    /// Notes a batch at `pos` that a walk checked: walks decode the records of uncompressed
    /// batches (`log::check_records`); compressed ones stay unchecked, so that reading them
    /// reports the codec.
    fn walked(&self, pos: u64, b: &Batch<'_>) {
        if b.header().compression() == 0 {
            self.mark_checked(pos, pos + b.as_bytes().len() as u64);
        }
    }

    /// Records that the batches at `[start, end)` have a good CRC and well-formed records.
    fn mark_checked(&self, start: u64, end: u64) {
        self.checked.insert(start, end);
    }

    /// Appends one encoded batch (whose header is `header`) at the end of the log, adds
    /// index entries when due, then publishes the new size.
    pub(crate) fn append(&self, batch: &[u8], header: &BatchHeader) -> Result<()> {
        let pos = self.size();
        // On a full file system the append fails here, before the log is written.
        self.reserve_index_entries(&self.writer.lock())?;
        self.log()?.write_at(batch, pos)?;
        // A compressed batch's records were not decoded (`append_raw` keeps it opaque):
        // reads check them, as for a walked one.
        if header.compression() == 0 {
            self.mark_checked(pos, pos + batch.len() as u64);
        }
        self.index_batch(pos, header)?;
        self.next_offset
            .store(header.next_offset(), Ordering::Release);
        // Publish last: readers read only below `size`.
        self.log.publish(pos + batch.len() as u64);
        Ok(())
    }

    /// True when the batch's offsets lie in this segment's range: at or past its base
    /// offset, and at most `MAX_RELATIVE_OFFSET` past it (index entries are 32-bit).
    fn fits(&self, h: &BatchHeader) -> bool {
        (h.base_offset as u64) >= self.base_offset
            && h.last_offset() - self.base_offset <= MAX_RELATIVE_OFFSET
    }

    /// Index bookkeeping for a batch written at `pos` (Kafka's `LogSegment.append`).
    fn index_batch(&self, pos: u64, h: &BatchHeader) -> Result<()> {
        if !self.fits(h) {
            return Err(Error::Corrupt {
                path: self.log.path().to_path_buf(),
                position: pos,
                reason: format!(
                    "batch offsets {}..={} do not fit a segment with base offset {}",
                    h.base_offset,
                    h.last_offset(),
                    self.base_offset
                ),
            });
        }
        let mut w = self.writer.lock();
        // Before anything changes: a failed allocation leaves the segment as it was.
        self.reserve_index_entries(&w)?;
        if w.rolling_timestamp.is_none() {
            w.rolling_timestamp = Some(h.max_timestamp);
        }
        if h.max_timestamp > self.max_ts() {
            self.max_timestamp.store(h.max_timestamp, Ordering::Release);
            w.offset_of_max_timestamp = h.last_offset();
        }
        self.next_offset
            .fetch_max(h.next_offset(), Ordering::Release);
        if w.bytes_since_index > self.opts.index_interval_bytes as u64 {
            let rel = (h.last_offset() - self.base_offset) as u32;
            let position = u32::try_from(pos).map_err(|_| Error::Corrupt {
                path: self.log.path().to_path_buf(),
                position: pos,
                reason: "batch position past 2 GiB cannot be indexed".into(),
            })?;
            self.index
                .write()
                .push(|e| encode_offset_entry(e, rel, position))?;
            self.maybe_append_time_entry(&w, false)?;
            w.bytes_since_index = 0;
            self.refresh_indexes_full(&mut w);
        }
        w.bytes_since_index += h.size() as u64;
        Ok(())
    }

    /// Allocates the blocks under the next entry of both indexes when the next indexed
    /// batch will add entries (`index_batch`), so that a full file system is an error
    /// before the batch is written, not a SIGBUS while it is indexed.
    fn reserve_index_entries(&self, w: &WriterState) -> Result<()> {
        if w.bytes_since_index > self.opts.index_interval_bytes as u64 {
            self.index.write().reserve()?;
            self.time_index.write().reserve()?;
        }
        Ok(())
    }

    /// Adds `(max timestamp so far, its offset)` to the time index if it is newer than the
    /// last entry (timestamps in the time index increase strictly). Entries from appends
    /// stop at Kafka's capacity rule (`timeindex::is_full`); the `last` one (seal or close)
    /// takes the slot kept for it, and the file grows by one entry should it have none (an
    /// index written under another rule or a smaller `segment_index_bytes`).
    ///
    /// # Errors
    /// [`Error::Io`] when the entry's blocks cannot be allocated (a full file system).
    fn maybe_append_time_entry(&self, w: &WriterState, last: bool) -> Result<()> {
        let ts = self.max_ts();
        let mut tidx = self.time_index.write();
        if !last && timeindex::is_full(&tidx) {
            return Ok(());
        }
        let newer = tidx.last().is_none_or(|e| ts > decode_time_entry(e).0);
        // A relative offset that does not fit (a batch below the segment's base offset in a
        // corrupt file) gets no entry rather than a wrong one.
        let rel = w
            .offset_of_max_timestamp
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok());
        if let (true, Some(rel)) = (newer && ts >= 0, rel) {
            if tidx.is_full() {
                let grown = (tidx.len() + 1) * TIME_ENTRY_SIZE;
                tidx.resize(grown)?;
            }
            tidx.push(|e| encode_time_entry(e, ts, rel))?;
        }
        Ok(())
    }

    /// Seals the segment (it stops being active): a final time-index entry, then both index
    /// files trimmed to their entries.
    /// A sealed segment's index files are closed once trimmed (their maps stay), and the
    /// segment is no longer pinned.
    pub(crate) fn seal(&self) -> Result<()> {
        let w = self.writer.lock();
        self.maybe_append_time_entry(&w, true)?;
        for idx in [&self.index, &self.time_index] {
            let mut idx = idx.write();
            idx.trim()?;
            idx.close_file();
        }
        drop(w);
        self.set_active(false);
        Ok(())
    }

    /// Makes the segment's data durable: fdatasync of the log, msync of the indexes (or
    /// fdatasync of their files, when the cache closed them with unflushed entries). A
    /// deleted segment has nothing to make durable.
    pub(crate) fn flush(&self) -> Result<()> {
        let _pin = self.pin();
        if self.is_deleted() {
            return Ok(());
        }
        self.log()?.sync()?;
        self.index.read().flush()?;
        self.time_index.read().flush()?;
        if self.index_sync_pending.swap(false, Ordering::AcqRel) {
            let (_, index, time) = paths(self.dir(), self.base_offset);
            let synced = crate::fs::sync_path(&index).and_then(|()| crate::fs::sync_path(&time));
            if synced.is_err() {
                self.index_sync_pending.store(true, Ordering::Release);
            }
            synced?;
        }
        self.sync_txn_index()
    }

    /// The partition directory.
    fn dir(&self) -> &Path {
        self.log.path().parent().unwrap_or(Path::new("."))
    }

    /// Position of the first batch with last offset `>= offset`, with its header, or
    /// `None` when every batch below `end` ends before `offset`.
    fn locate(
        &self,
        log: &OpenedLog<'_>,
        offset: u64,
        end: u64,
    ) -> Result<Option<(u64, BatchSpan)>> {
        self.ensure_indexes()?;
        let rel = offset.saturating_sub(self.base_offset).min(u32::MAX as u64) as u32;
        let (entry, next) = lookup_offset_and_next(self.index.read().valid_bytes(), rel);
        let entry = entry.map(|(rel, pos)| (self.base_offset + rel as u64, pos as u64));
        if let Some(stop) = next.map(u64::from).filter(|&stop| stop <= end) {
            if let Some(found) = self.locate_in_interval(log, offset, entry, stop)? {
                return Ok(Some(found));
            }
        }
        match self.scan_to(log, offset, end, entry)? {
            Scan::Found(found) => Ok(found),
            // The index is derived data and the log is the truth: an entry that does not
            // name the batch at its position (a damaged index) is ignored.
            Scan::WrongIndexEntry => match self.scan_to(log, offset, end, None)? {
                Scan::Found(found) => Ok(found),
                Scan::WrongIndexEntry => Ok(None),
            },
        }
    }

    /// [`Segment::locate`] within the closed index interval from `entry` (or the file's
    /// start) to `stop`, the next entry's position, through the interval's batch positions
    /// (found by one scan, then kept). `None` when the answer is not in the
    /// interval or the interval does not scan cleanly: the caller's scan decides (and
    /// reports any damage).
    fn locate_in_interval(
        &self,
        log: &OpenedLog<'_>,
        offset: u64,
        entry: Option<(u64, u64)>,
        stop: u64,
    ) -> Result<Option<(u64, BatchSpan)>> {
        let start = entry.map_or(0, |(_, pos)| pos);
        let rel = |o: u64| o.saturating_sub(self.base_offset).min(u32::MAX as u64) as u32;
        let target = rel(offset);
        let pick = |spans: &[IntervalSpan]| {
            let i = spans.partition_point(|s| s.last_rel < target);
            let s = spans.get(i)?;
            let end = spans.get(i + 1).map_or(stop, |n| n.pos as u64);
            Some((
                s.pos as u64,
                BatchSpan {
                    base_offset: self.base_offset + s.base_rel as u64,
                    last_offset: self.base_offset + s.last_rel as u64,
                    size: (end - s.pos as u64) as usize,
                },
            ))
        };
        let cached = self.spans.read().get(start).map(pick);
        let pos = match cached {
            Some(pos) => pos,
            None => {
                let mut spans = Vec::with_capacity(32);
                let mut expected = self.base_offset;
                let mut clean = true;
                let scan = log.scan_spans(start, stop, |pos, h, _| {
                    let entry_ok = pos != start || entry.is_none_or(|(o, _)| h.last_offset == o);
                    if !entry_ok
                        || h.base_offset < expected
                        || h.last_offset - self.base_offset > u32::MAX as u64
                    {
                        clean = false;
                        return false;
                    }
                    expected = h.last_offset + 1;
                    spans.push(IntervalSpan {
                        base_rel: rel(h.base_offset),
                        last_rel: rel(h.last_offset),
                        pos: pos as u32,
                    });
                    true
                })?;
                if !clean || scan != Ok(stop) || spans.is_empty() {
                    return Ok(None);
                }
                let pos = pick(&spans);
                self.spans.write().insert(start, spans, MAX_INTERVAL_SPANS);
                pos
            }
        };
        Ok(pos)
    }

    /// Walks batch headers from the index entry's position (or the start) to the first
    /// batch whose last offset is `>= offset`. Offsets must increase from batch to batch
    /// (the base offset is not covered by the CRC, so a damaged one is caught here).
    fn scan_to(
        &self,
        log: &OpenedLog<'_>,
        offset: u64,
        end: u64,
        entry: Option<(u64, u64)>,
    ) -> Result<Scan> {
        let start = entry.map_or(0, |(_, pos)| pos);
        let mut found = None;
        let mut wrong_entry = false;
        let mut expected = self.base_offset;
        let mut out_of_order = None;
        let mut bad_header = None;
        let scan = log.scan_spans(start.min(end), end, |pos, h, raw| {
            if pos == start {
                if let Some((entry_offset, _)) = entry {
                    // The entry must name this batch's last offset (FORMAT.md, `.index`).
                    if h.last_offset != entry_offset {
                        wrong_entry = true;
                        return false;
                    }
                }
            }
            if h.base_offset < expected {
                out_of_order = Some(pos);
                return false;
            }
            expected = h.last_offset + 1;
            if h.last_offset < offset {
                return true;
            }
            // The batch found is read next: its header must be whole and sound.
            match BatchHeader::parse(raw) {
                Ok(_) => found = Some((pos, *h)),
                Err(e) => bad_header = Some((pos, e)),
            }
            false
        })?;
        let scan = match (scan, bad_header) {
            (Ok(_), Some(bad)) => Err(bad),
            (scan, _) => scan,
        };
        if let Err((pos, e)) = scan {
            if entry.is_some() && pos == start {
                // No batch starts where the index entry says: the entry is wrong.
                return Ok(Scan::WrongIndexEntry);
            }
            return Err(Error::corrupt(self.log.path(), pos, e));
        }
        if let Some(pos) = out_of_order {
            return Err(Error::Corrupt {
                path: self.log.path().to_path_buf(),
                position: pos,
                reason: format!("batch offsets go backwards (expected at least {expected})"),
            });
        }
        Ok(if wrong_entry {
            Scan::WrongIndexEntry
        } else {
            Scan::Found(found)
        })
    }

    /// Appends to `buf` whole batches starting with the one that holds `offset` (or the
    /// first after it), up to `max_bytes` in all; with `min_one`, at least one batch even if
    /// it is larger. Every batch is checked (CRC, records) the first time this process
    /// reads it. Returns the offset after the last batch
    /// appended (`offset` itself when the first batch does not fit `max_bytes`), or `None`
    /// when the segment holds nothing at or past `offset`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] with the file position of a bad batch; I/O errors.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        min_one: bool,
        buf: &mut Vec<u8>,
    ) -> Result<Option<u64>> {
        Ok(self
            .read_below(offset, max_bytes, min_one, None, buf)?
            .map(|(next, _)| next))
    }

    /// [`Segment::read`], where every batch must end below `limit` (the next segment's
    /// base offset): one that does not has a damaged base offset (which the CRC does not
    /// cover) and is [`Error::Corrupt`], never returned. Also returns the file position of
    /// the first batch appended to `buf`.
    pub(crate) fn read_below(
        &self,
        offset: u64,
        max_bytes: usize,
        min_one: bool,
        limit: Option<u64>,
        buf: &mut Vec<u8>,
    ) -> Result<Option<(u64, u64)>> {
        self.read_view(offset, max_bytes, min_one, limit, |read| {
            buf.extend_from_slice(read.batches());
            (read.next, read.pos)
        })
    }

    /// [`Segment::read_below`] without the copy: `f` gets the checked batches borrowed from
    /// the file's mapping ([`SegmentRead`], which keeps the file from shrinking and the
    /// mapping alive while `f` runs). Each batch is checked (CRC, records) the first time
    /// this process reads it, not on every read.
    pub(crate) fn read_view<R>(
        &self,
        offset: u64,
        max_bytes: usize,
        min_one: bool,
        limit: Option<u64>,
        f: impl FnOnce(&SegmentRead<'_>) -> R,
    ) -> Result<Option<R>> {
        let pin = self.pin();
        let log = self.log()?;
        let end = self.size();
        let Some((pos, first)) = self.locate(&log, offset, end)? else {
            return Ok(None);
        };
        let mut want = max_bytes as u64;
        if min_one {
            want = want.max(first.size as u64);
        }
        let to = end.min(pos.saturating_add(want));
        let view = log.into_view(pos, to)?;
        let mut at = 0;
        let mut next = offset;
        let mut compressed = false;
        let mut first = None;
        let bytes = &view[..];
        while at < bytes.len() {
            let batch = match Batch::parse_unchecked(&bytes[at..]) {
                Ok(b) => b,
                // The byte budget cut this batch: it is left for the next read.
                Err(DecodeError::Truncated { .. }) if to < end => break,
                Err(e) => return Err(Error::corrupt(self.log.path(), pos, shift(e, at))),
            };
            let size = batch.as_bytes().len();
            let (start, stop) = (pos + at as u64, pos + (at + size) as u64);
            if !self.checked.contains(start, stop) {
                // The CRC first (a torn or damaged batch), then the records
                // (compressed ones decompressed).
                Batch::parse(batch.as_bytes())
                    .and_then(|b| b.validate_all())
                    .map_err(|e| Error::corrupt(self.log.path(), pos, shift(e, at)))?;
                self.mark_checked(start, stop);
            }
            // The base offset is outside the CRC: check the order it implies.
            if at > 0 && batch.base_offset() < next {
                return Err(Error::Corrupt {
                    path: self.log.path().to_path_buf(),
                    position: start,
                    reason: format!("batch offsets go backwards (expected at least {next})"),
                });
            }
            if let Some(limit) = limit.filter(|&l| batch.last_offset() >= l) {
                return Err(Error::Corrupt {
                    path: self.log.path().to_path_buf(),
                    position: start,
                    reason: format!(
                        "batch offsets {}..={} reach the next segment's base offset \
                         {limit} (a damaged base offset)",
                        batch.base_offset(),
                        batch.last_offset()
                    ),
                });
            }
            at += size;
            next = batch.last_offset() + 1;
            compressed |= batch.header().compression() != 0;
            first.get_or_insert(*batch.header());
        }
        let read = SegmentRead {
            view,
            len: at,
            compressed,
            first,
            next,
            pos,
            _pin: pin,
        };
        Ok(Some(f(&read)))
    }

    /// Where a lookup of `offset` in `batch` (a checked batch at file position `pos`) may
    /// start stepping: a record position in the batch and that record's index, for large
    /// dense batches; `None` to start at the first record. The positions are found once
    /// per batch and kept (up to `MAX_SKIPS` per segment).
    #[inline]
    pub(crate) fn seek_hint(
        &self,
        pos: u64,
        batch: &Batch<'_>,
        offset: u64,
    ) -> Option<(usize, usize)> {
        let k = usize::try_from(offset.checked_sub(batch.base_offset())?).ok()?;
        if k < SKIP_STRIDE {
            return None; // the first records: stepping from the start is as quick
        }
        self.seek_hint_far(pos, batch, k)
    }

    /// [`Segment::seek_hint`] for the `k`-th record of the batch, `k >= SKIP_STRIDE`.
    fn seek_hint_far(&self, pos: u64, batch: &Batch<'_>, k: usize) -> Option<(usize, usize)> {
        let pick = |starts: &[u32]| {
            let i = (k / SKIP_STRIDE).min(starts.len());
            (i > 0).then(|| (starts[i - 1] as usize, i * SKIP_STRIDE))
        };
        if let Some(starts) = self.skips.read().get(pos) {
            return pick(starts);
        }
        let starts = batch.record_starts(SKIP_STRIDE)?;
        let hint = pick(&starts);
        self.skips.write().insert(pos, starts, MAX_SKIPS);
        hint
    }

    /// The base offset of the batch holding `offset` when that batch also holds lower
    /// offsets (a truncation at `offset` rewrites it); `None` when `offset` starts a batch
    /// or lies past every batch.
    ///
    /// # Errors
    /// [`Error::Corrupt`] and I/O errors from the lookup.
    pub(crate) fn batch_base_containing(&self, offset: u64) -> Result<Option<u64>> {
        let _pin = self.pin();
        let log = self.log()?;
        let Some((_, h)) = self.locate(&log, offset, self.size())? else {
            return Ok(None);
        };
        let base = h.base_offset;
        Ok((base < offset).then_some(base))
    }

    /// Calls `f` with every batch from the one holding `from_offset` (or the first after
    /// it) to the end, each CRC-checked, until `f` returns false. The records are not
    /// checked: the caller decodes them.
    ///
    /// # Errors
    /// [`Error::Corrupt`] at a bad batch; I/O errors.
    pub(crate) fn for_each_batch(
        &self,
        from_offset: u64,
        mut f: impl FnMut(&Batch<'_>) -> bool,
    ) -> Result<()> {
        let _pin = self.pin();
        let log = self.log()?;
        let end = self.size();
        let Some((pos, _)) = self.locate(&log, from_offset, end)? else {
            return Ok(());
        };
        let walk = log.walk_batches_checking(pos, end, false, |_, b| f(b))?;
        match walk.error {
            Some((p, e)) => Err(Error::corrupt(self.log.path(), p, e)),
            None => Ok(()),
        }
    }

    /// The max timestamp of the first batch (the oldest data, for the compaction lag),
    /// `None` for an empty segment.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn first_batch_timestamp(&self) -> Result<Option<i64>> {
        let _pin = self.pin();
        let mut first = None;
        let _ = self.log()?.scan_headers(0, self.size(), |_, h| {
            first = Some(h.max_timestamp);
            false
        })?;
        Ok(first)
    }

    /// The first record with timestamp `>= target` at or after `from_offset`:
    /// `(offset, timestamp)`, or `None` when this segment holds none.
    pub fn find_offset_by_timestamp(
        &self,
        target: i64,
        from_offset: u64,
    ) -> Result<Option<(u64, i64)>> {
        let _pin = self.pin();
        self.ensure_indexes()?;
        if self.max_ts() < target {
            return Ok(None);
        }
        let log = self.log()?;
        let after = lookup_before(self.time_index.read().valid_bytes(), target)
            .map(|(_, rel)| self.base_offset + rel as u64 + 1)
            .unwrap_or(self.base_offset);
        let start_offset = after.max(from_offset);
        let end = self.size();
        let Some((pos, _)) = self.locate(&log, start_offset, end)? else {
            return Ok(None);
        };
        let mut found = None;
        // A batch whose records cannot be decoded (a compressed one) is never skipped: the
        // answer may lie inside it, and a later offset would be wrong.
        let mut bad = None;
        let mut scratch = Vec::new();
        let walk = log.walk_batches(pos, end, |p, b| {
            if b.header().max_timestamp < target {
                return true;
            }
            let records = match b.records_with(&mut scratch) {
                Ok(records) => records,
                Err(e) => {
                    bad = Some((p, e));
                    return false;
                }
            };
            for r in records {
                match r {
                    Ok(r) if r.offset() >= start_offset && r.timestamp() >= target => {
                        found = Some((r.offset(), r.timestamp()));
                        return false;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        bad = Some((p, e));
                        return false;
                    }
                }
            }
            true
        })?;
        if let Some((p, e)) = bad.or(if found.is_none() { walk.error } else { None }) {
            return Err(Error::corrupt(self.log.path(), p, e));
        }
        Ok(found)
    }

    /// Removes every record at or past `offset`. A batch that straddles `offset` is
    /// rewritten in place with only its records below `offset` (same base offset and
    /// producer fields). Returns true when anything was removed.
    pub(crate) fn truncate_to(&self, offset: u64) -> Result<bool> {
        let _pin = self.pin();
        let log = self.log()?;
        let end = self.size();
        // Entries of ABORT markers at or past `offset` go, whatever the log holds there.
        self.truncate_txn_index(offset)?;
        let Some((pos, h)) = self.locate(&log, offset, end)? else {
            return Ok(false);
        };
        let mut rewritten = Vec::new();
        if h.base_offset < offset {
            // Keep the part of this batch below `offset`, its record bytes unchanged.
            let raw = log.view(pos, pos + h.size as u64)?;
            let kept = Batch::parse(&raw)
                .and_then(|b| b.truncated_before(offset))
                .map_err(|e| Error::corrupt(self.log.path(), pos, e))?;
            rewritten = kept.unwrap_or_default();
        }
        let new_end = pos + rewritten.len() as u64;
        if rewritten.is_empty() {
            self.cut_log(pos)?;
        } else {
            // The kept batch is the old one with a new header and fewer records, so it is
            // written over the old bytes before the file is cut: at no moment do the
            // records below `offset` (which may be durable) leave the file. A crash in
            // between leaves the new batch followed by the old batch's remains, which
            // recovery cuts (the recovery point was lowered to `offset` first).
            self.drop_from(pos);
            self.log.unpublish(pos);
            log.write_at(&rewritten, pos)?;
            log.set_len(new_end)?;
            self.log.publish(new_end);
        }
        // Recompute what the tail determined: next offset, max timestamp, index spacing.
        // `cut_log` kept only index entries below the cut, so the indexes must agree.
        let (from, last_indexed) = self.restore_from_indexes();
        let (walk, agree) = self.walk_tail(from, last_indexed, new_end)?;
        if let Some((p, e)) = walk.error {
            return Err(Error::corrupt(self.log.path(), p, e));
        }
        if agree {
            self.writer.lock().bytes_since_index = new_end - from;
        } else {
            self.rebuild_indexes(true)?;
        }
        let mut w = self.writer.lock();
        if new_end == 0 {
            w.rolling_timestamp = None;
        }
        drop(w);
        Ok(true)
    }

    /// Reopens a sealed segment as the active one (after a truncation into it).
    pub(crate) fn reactivate(&self) -> Result<()> {
        let _pin = self.pin();
        // Loaded first: a first load may rebuild and seal them.
        self.ensure_indexes()?;
        self.set_active(true);
        self.preallocate_indexes()?;
        self.load_rolling_timestamp()
    }

    /// Deletes the segment's three files, the `.log` first (once it is gone, the segment
    /// is; index files without a `.log` are removed at open). Readers holding the segment
    /// go on reading the files it has open, which the OS frees when the segment is dropped;
    /// they stop counting against the store's cap (they are released with the last reader),
    /// and nothing reopens them: a read that finds a deleted segment closed fails with
    /// `NotFound` (the partition then looks again where the offsets went).
    pub(crate) fn delete_files(&self) -> Result<()> {
        {
            let _no_loader = self.load_lock.lock();
            self.deleted.store(true, Ordering::Release);
        }
        if let Some(files) = &self.opts.files {
            files.closed(self.id, Part::Log);
            files.closed(self.id, Part::Indexes);
        }
        let (_, index, time) = paths(self.dir(), self.base_offset);
        remove_if_exists(self.log.path())?;
        remove_if_exists(&index)?;
        remove_if_exists(&time)?;
        remove_if_exists(&txn_index_path(self.dir(), self.base_offset))
    }
}

/// Most batch positions a segment keeps for its index intervals (12 bytes each: 1.5 MiB).
const MAX_INTERVAL_SPANS: usize = 1 << 17;

/// One batch of an index interval: its offsets (relative) and file position.
#[derive(Debug, Clone, Copy)]
struct IntervalSpan {
    base_rel: u32,
    last_rel: u32,
    pos: u32,
}

/// Slices kept per file position, up to a cap on their elements in all (past it, nothing
/// more is kept: the caller finds them again). A segment keeps two: the batches of closed
/// index intervals (from one index entry's position to the next, by the interval's start),
/// so that a lookup in a log of small batches binary-searches them instead of walking up
/// to `index_interval_bytes` of headers; and the record starts of large batches, by the
/// batch's position ([`Segment::seek_hint`]).
#[derive(Debug)]
pub(crate) struct PositionCache<T> {
    slices: std::collections::HashMap<u64, Box<[T]>, PositionHash>,
    /// Elements held, over all slices.
    held: usize,
}

impl<T> Default for PositionCache<T> {
    fn default() -> Self {
        PositionCache {
            slices: Default::default(),
            held: 0,
        }
    }
}

impl<T> PositionCache<T> {
    /// The slice kept for `pos`.
    fn get(&self, pos: u64) -> Option<&[T]> {
        self.slices.get(&pos).map(|s| &s[..])
    }

    /// Keeps `v` for `pos` unless one is kept already or it would pass `cap` elements.
    fn insert(&mut self, pos: u64, v: Vec<T>, cap: usize) {
        if self.held + v.len() <= cap && !self.slices.contains_key(&pos) {
            self.held += v.len();
            self.slices.insert(pos, v.into_boxed_slice());
        }
    }

    /// Forgets the slices of positions at or past `len`.
    fn retain_below(&mut self, len: u64) {
        self.slices.retain(|&pos, _| pos < len);
        self.held = self.slices.values().map(|s| s.len()).sum();
    }
}

/// Hashes file positions (distinct integers, no adversary: SipHash is not needed).
type PositionHash = std::hash::BuildHasherDefault<PositionHasher>;

/// See [`PositionHash`]: a Fibonacci multiply of the one `u64` written.
#[derive(Debug, Default)]
pub(crate) struct PositionHasher(u64);

impl std::hash::Hasher for PositionHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

/// Records between the starts kept for seek hints.
const SKIP_STRIDE: usize = 32;
/// Most record starts a segment keeps for seek hints (4 bytes each: 1 MiB).
const MAX_SKIPS: usize = 1 << 18;

/// Whole, checked batches of one segment, borrowed from its file ([`Segment::read_view`]).
pub(crate) struct SegmentRead<'a> {
    view: crate::mmap::View<'a>,
    /// Bytes of whole batches at the start of `view`.
    len: usize,
    /// Some batch is compressed.
    pub(crate) compressed: bool,
    /// The first batch's header (a point lookup need not parse it again).
    pub(crate) first: Option<BatchHeader>,
    /// The offset after the last batch (the offset asked for when there is none).
    pub(crate) next: u64,
    /// File position of the first batch.
    pub(crate) pos: u64,
    _pin: Pin<'a>,
}

impl SegmentRead<'_> {
    /// The batches.
    pub(crate) fn batches(&self) -> &[u8] {
        &self.view[..self.len]
    }
}

/// Removes `path`; a file that is already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    crate::fs::remove_file(path)
}

/// Deletes the files of the segment with base offset `base` in `dir` (`.txnindex` too).
pub(crate) fn delete_segment_files(dir: &Path, base: u64) -> Result<()> {
    let (log, index, time) = paths(dir, base);
    [log, index, time, txn_index_path(dir, base)]
        .iter()
        .try_for_each(|p| remove_if_exists(p))
}
/// Suffix of a segment file whose replacement by a cleaned segment has committed.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffixes of files that are removed at open (FORMAT.md §10).
pub const DISCARDED_SUFFIXES: [&str; 3] = [".tmp", ".cleaned", ".deleted"];
