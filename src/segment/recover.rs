//! How a segment is opened: created, trusted after a clean shutdown, recovered after a crash,
//! or opened read-only by a tool. "What happens to one segment at open" is answered here;
//! which segments get which treatment is the partition's choice (`partition/open.rs`).
//!
//! The open sequence of one segment (each step names its FORMAT.md paragraph):
//!
//! 1. **Trusted** (`open_trusted`, §9 "after a clean shutdown", and segments below the
//!    recovery point): the `.log` is not opened (its size comes from `stat`); its next
//!    offset is the next segment's base offset; nothing is read. Its files are opened on
//!    first use, through the store's file cache (`files.rs`).
//! 2. **Lazy index load** (`ensure_indexes`, §6): on first use the index files are opened,
//!    mapped and sanity-checked; if one is missing or fails, both are rebuilt from the log
//!    (a bad batch met while rebuilding a sealed segment is `Error::Corrupt`). A segment
//!    that must be dense (no compaction) must end at its successor's base offset, else
//!    `Error::MissingOffsets`. A sealed segment's index descriptors are closed once mapped;
//!    when the cache has closed the maps too, the next use maps the files again without
//!    checking them twice.
//! 3. **Clean active** (`open_clean_active`, §9): the active segment's indexes are loaded and
//!    checked against the recovery point, which gives its next offset, and the batch headers
//!    after the last index entry must end exactly there; any disagreement sends it to step 4.
//! 4. **Recovered** (`recover`, §9 "after an unclean shutdown"): both indexes are emptied and
//!    rebuilt while every batch is checked (length, magic, CRC, records, offsets increasing
//!    and below the next segment's base). At the first bad batch the log is cut when
//!    everything before it lies at or past the recovery point (a torn tail), else the open
//!    fails with `Error::Corrupt` and nothing is changed.
//! 5. **Read-only** (`open_read_only`, tools): nothing is written; the whole log is walked.
//!
//! Every decision that changes or distrusts a file (tail cut, index rebuilt) is reported as a
//! `tracing` event with the file and the byte position.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::*;

/// How [`Segment::assemble`] treats the index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexes {
    /// Open and map them (trusting their entries until checked).
    Load,
    /// Open them emptied, to be rebuilt from the log.
    Reset,
    /// Leave them closed until first used.
    Lazy,
}

/// What [`Segment::recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// Every batch was whole and valid.
    Intact,
    /// The log was cut at this position, at the first bad batch (a torn tail).
    CutAt(u64),
}

impl Segment {
    /// Creates a new, empty active segment at `base_offset` in `dir`.
    pub(crate) fn create(
        dir: &Path,
        base_offset: u64,
        opts: SegmentOptions,
        now_ms: i64,
    ) -> Result<Arc<Segment>> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        let file = crate::fs::create_new(&log_path)?;
        // Stale index files of a deleted segment at this offset must not be reused.
        remove_if_exists(&index_path)?;
        remove_if_exists(&time_path)?;
        let seg = Segment::assemble(
            log_path,
            Some(file),
            base_offset,
            opts,
            Mode::Active,
            Indexes::Load,
            now_ms,
        )?;
        seg.writer.lock().rolling_unknown = false;
        seg.preallocate_indexes()?;
        Ok(seg.shared())
    }

    /// Opens a sealed segment below the recovery point without reading anything or
    /// opening a file: the `.log`'s size comes from `stat`; the `.log` is opened and the
    /// indexes are loaded, checked and if need be rebuilt on first use. `next_offset` is
    /// the next segment's base offset.
    pub(crate) fn open_trusted(
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        opts: SegmentOptions,
    ) -> Result<Arc<Segment>> {
        let log_path = paths(dir, base_offset).0;
        let seg = Segment::assemble(
            log_path,
            None,
            base_offset,
            opts,
            Mode::Sealed,
            Indexes::Lazy,
            0,
        )?;
        seg.next_offset.store(next_offset, Ordering::Release);
        Ok(seg.shared())
    }

    /// Opens the active segment after a clean shutdown, whose next offset the recovery-point
    /// checkpoint gives: no log data is read. `None` when its indexes fail their sanity
    /// check or disagree with `next_offset`: the segment must then be recovered.
    pub(crate) fn open_clean_active(
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        opts: SegmentOptions,
        now_ms: i64,
    ) -> Result<Option<Arc<Segment>>> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        if !index_path.exists() || !time_path.exists() {
            return Ok(None);
        }
        let file = crate::fs::open(&log_path, true)?;
        let seg = Segment::assemble(
            log_path,
            Some(file),
            base_offset,
            opts,
            Mode::Active,
            Indexes::Load,
            now_ms,
        )?;
        let size = seg.size();
        if !seg.indexes_sane(size, Some(next_offset)) {
            return Ok(None);
        }
        let (from, _) = seg.restore_from_indexes();
        let plausible = next_offset >= seg.next_offset()
            && next_offset - base_offset <= MAX_RELATIVE_OFFSET + 1
            && (size == 0) == (next_offset == base_offset);
        // The batch headers after the last index entry (at most about index.interval.bytes)
        // must end exactly at the recovery point: a log that ends short of it (a later
        // segment file lost) must not take its end from the checkpoint.
        if !plausible || seg.tail_end() != Some(next_offset) {
            return Ok(None);
        }
        seg.next_offset.store(next_offset, Ordering::Release);
        seg.writer.lock().bytes_since_index = size - from;
        seg.preallocate_indexes()?;
        Ok(Some(seg.shared()))
    }

    /// Opens a segment at or past the recovery point after an unclean shutdown: every
    /// batch is checked (length, magic, CRC, records, offsets increasing and below
    /// `limit`, the next segment's base offset) and both indexes are rebuilt from the log.
    /// The log is cut at the first bad batch if everything before it lies at or past
    /// `recovery_point` (a torn, zero-filled or garbage tail of unflushed writes); a bad
    /// batch below the recovery point is corruption of flushed data and an error. A
    /// segment that is not `active` and stays intact is sealed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the position of a bad batch below the recovery point;
    /// I/O errors.
    pub(crate) fn recover(
        dir: &Path,
        base_offset: u64,
        opts: SegmentOptions,
        active: bool,
        recovery_point: u64,
        limit: Option<u64>,
        now_ms: i64,
    ) -> Result<(Arc<Segment>, Recovered)> {
        let log_path = paths(dir, base_offset).0;
        let file = crate::fs::open(&log_path, true)?;
        // Active (pinned, index files open) while it is rebuilt; sealed at the end if intact.
        let seg = Segment::assemble(
            log_path,
            Some(file),
            base_offset,
            opts,
            Mode::Active,
            Indexes::Reset,
            now_ms,
        )?;
        seg.preallocate_indexes()?;
        let mut result = Ok(());
        let walk = seg.walk_below(0, seg.size(), limit, |pos, b| {
            result = seg.index_batch(pos, b.header());
            result.is_ok()
        })?;
        result?;
        let bad = walk.error.map(|(pos, e)| (pos, e.to_string()));
        let recovered = match bad {
            None => Recovered::Intact,
            Some((pos, reason)) if seg.next_offset() < recovery_point => {
                return Err(Error::Corrupt {
                    path: seg.log.path().to_path_buf(),
                    position: pos,
                    reason: format!(
                        "{reason}; the offsets below the recovery point {recovery_point} \
                         were flushed, so this is corruption, not a torn write"
                    ),
                })
            }
            Some((pos, reason)) => {
                tracing::warn!(
                    file = %seg.log.path().display(),
                    position = pos,
                    size = seg.size(),
                    %reason,
                    "cutting a torn tail past the recovery point"
                );
                seg.cut_log(pos)?;
                Recovered::CutAt(pos)
            }
        };
        {
            let mut w = seg.writer.lock();
            w.rolling_unknown = false;
            w.bytes_since_index = w.bytes_since_index.min(seg.size());
        }
        if !active && recovered == Recovered::Intact {
            seg.seal()?;
        }
        Ok((seg.shared(), recovered))
    }

    /// Opens the segment whose `.log` file is at `log_path` read-only (for tools such as
    /// a dump or a verifier). Nothing is written; the whole log is walked and checked.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the position of the first bad batch, and I/O errors.
    pub fn open_read_only(log_path: &Path) -> Result<Segment> {
        let name = log_path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let base_offset = parse_log_name(name).ok_or_else(|| Error::Corrupt {
            path: log_path.to_path_buf(),
            position: 0,
            reason: "not a segment file name (20 digits + .log)".into(),
        })?;
        Segment::open_read_only_at(log_path, base_offset)
    }

    /// [`Segment::open_read_only`] for a log file whose name does not give its base offset
    /// (a `.log.swap` file); its index files are those of a segment at `base_offset`.
    pub(crate) fn open_read_only_at(log_path: &Path, base_offset: u64) -> Result<Segment> {
        let file = crate::fs::open(log_path, false)?;
        let opts = SegmentOptions {
            index_interval_bytes: 4096,
            max_index_bytes: 0,
            map_bytes: 0,
            files: None,
        };
        let seg = Segment::assemble(
            log_path.to_path_buf(),
            Some(file),
            base_offset,
            opts,
            Mode::ReadOnly,
            Indexes::Load,
            0,
        )?;
        let end = seg.size();
        let walk = seg.walk(0, end, |_, _| true)?;
        if let Some((pos, e)) = walk.error {
            return Err(Error::corrupt(seg.log.path(), pos, e));
        }
        Ok(seg)
    }

    /// After recovery found this segment whole but ending before `next_base` (the next
    /// segment's base offset): fine when that end lies at or past the recovery point (an
    /// unflushed tail was lost), corruption of flushed data otherwise.
    ///
    /// # Errors
    /// [`Error::Corrupt`] at the end of the log when it lies below `recovery_point`.
    pub(crate) fn check_end_after_recovery_point(
        &self,
        recovery_point: u64,
        next_base: u64,
    ) -> Result<()> {
        if self.next_offset() >= recovery_point {
            return Ok(());
        }
        Err(Error::Corrupt {
            path: self.log.path().to_path_buf(),
            position: self.size(),
            reason: format!(
                "the log ends at offset {} but the next segment starts at {next_base}; the \
                 offsets below the recovery point {recovery_point} were flushed, so this is \
                 corruption, not a torn write",
                self.next_offset()
            ),
        })
    }

    /// Wraps the `.log` file (open as `file`, or only `stat`ed) and opens its index files.
    fn assemble(
        log_path: PathBuf,
        file: Option<std::fs::File>,
        base_offset: u64,
        opts: SegmentOptions,
        mode: Mode,
        indexes: Indexes,
        now_ms: i64,
    ) -> Result<Segment> {
        // Only the active segment grows: a sealed one is mapped at its length (a sealed
        // segment made active again by a truncation reads its growth with pread).
        let map = match mode {
            Mode::Active => Some(opts.map_bytes),
            Mode::Sealed => Some(0),
            Mode::ReadOnly => None,
        };
        let writable = mode != Mode::ReadOnly;
        let size = match &file {
            Some(f) => f.metadata().map(|m| m.len()),
            None => std::fs::metadata(&log_path).map(|m| m.len()),
        }
        .map_err(|e| Error::io("stat", &log_path, e))?;
        let log = LogFile::new(log_path, file, size, map, writable);
        let dir = log.path().parent().unwrap_or(Path::new("."));
        let (_, index_path, time_path) = paths(dir, base_offset);
        let open = |path: &Path, entry_size| match indexes {
            Indexes::Load => IndexFile::open(path, entry_size, writable),
            Indexes::Reset => IndexFile::open_empty(path, entry_size),
            Indexes::Lazy => Ok(IndexFile::unloaded(path, entry_size)),
        };
        let index = open(&index_path, OFFSET_ENTRY_SIZE)?;
        let time_index = open(&time_path, TIME_ENTRY_SIZE)?;
        let id = opts.files.as_ref().map_or(0, |f| f.id());
        let seg = Segment {
            base_offset,
            log,
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(-1),
            checked: Default::default(),
            skips: Default::default(),
            spans: Default::default(),
            writer: Mutex::new(WriterState {
                bytes_since_index: 0,
                offset_of_max_timestamp: base_offset,
                rolling_timestamp: None,
                rolling_unknown: true,
                created_ms: now_ms,
                indexes_full: false,
            }),
            opts,
            indexes_loaded: AtomicBool::new(indexes != Indexes::Lazy),
            verified: AtomicBool::new(indexes != Indexes::Lazy),
            load_lock: Mutex::new(()),
            deleted: AtomicBool::new(false),
            dense: AtomicBool::new(false),
            id,
            me: OnceLock::new(),
            last_use: [AtomicU64::new(0), AtomicU64::new(0)],
            pins: AtomicUsize::new(0),
            active: AtomicBool::new(false),
            index_sync_pending: AtomicBool::new(false),
            txn_index: Mutex::new(None),
            txn_sync_pending: AtomicBool::new(false),
        };
        if mode == Mode::Active {
            seg.set_active(true);
        }
        Ok(seg)
    }

    /// Loads the index files of a segment opened lazily (`open_trusted`), on first use:
    /// indexes that are missing or fail the sanity check are rebuilt from the log.
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`] when a rebuild finds a bad batch (the segment lies
    /// below the recovery point, so that is corruption).
    pub(super) fn ensure_indexes(&self) -> Result<()> {
        if self.indexes_loaded.load(Ordering::SeqCst) {
            self.touch(Part::Indexes);
            return Ok(());
        }
        let _one_loader = self.load_lock.lock();
        if self.indexes_loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.deleted.load(Ordering::Acquire) {
            // Gone from the directory: lookups scan the still-open log without an index.
            self.indexes_loaded.store(true, Ordering::Release);
            return Ok(());
        }
        let index_path = self.index.read().path().to_path_buf();
        let time_path = self.time_index.read().path().to_path_buf();
        let active = self.active.load(Ordering::Acquire);
        if self.verified.load(Ordering::Acquire) {
            // Closed by the file cache after they were checked: mapped again as they are.
            for (idx, path, size) in [
                (&self.index, &index_path, OFFSET_ENTRY_SIZE),
                (&self.time_index, &time_path, TIME_ENTRY_SIZE),
            ] {
                let mut file = IndexFile::open(path, size, true)?;
                if !active {
                    file.close_file();
                }
                *idx.write() = file;
            }
            self.indexes_loaded.store(true, Ordering::SeqCst);
            self.register(Part::Indexes);
            return Ok(());
        }
        let missing = !index_path.exists() || !time_path.exists();
        *self.index.write() = IndexFile::open(&index_path, OFFSET_ENTRY_SIZE, true)?;
        *self.time_index.write() = IndexFile::open(&time_path, TIME_ENTRY_SIZE, true)?;
        let next = self.next_offset();
        let end = if missing || !self.indexes_sane(self.size(), Some(next)) {
            tracing::warn!(
                file = %index_path.display(),
                missing,
                "index files missing or failing their sanity check: rebuilding from the log"
            );
            self.rebuild_indexes(false)?;
            let end = Some(self.next_offset());
            // Offsets between the last batch and the next segment are a gap, not an end.
            self.set_next_offset(next);
            end
        } else {
            self.restore_max_timestamp();
            if self.dense.load(Ordering::Acquire) {
                self.tail_end()
            } else {
                None
            }
        };
        if let Some(end) = end.filter(|&e| e < next && self.dense.load(Ordering::Acquire)) {
            return Err(self.missing_after(end, next));
        }
        if !active {
            self.index.write().close_file();
            self.time_index.write().close_file();
        }
        self.verified.store(true, Ordering::Release);
        self.indexes_loaded.store(true, Ordering::SeqCst);
        self.register(Part::Indexes);
        Ok(())
    }

    /// The offset after the last batch, from the batch headers after the last `.index`
    /// entry (at most about `index.interval.bytes` of the log); `None` when a header there
    /// does not decode (reads report that batch).
    fn tail_end(&self) -> Option<u64> {
        let (from, mut end) = self.index.read().last().map_or((0, self.base_offset), |e| {
            let (rel, pos) = decode_offset_entry(e);
            (pos as u64, self.base_offset + rel as u64 + 1)
        });
        let log = self.log().ok()?;
        let scan = log.scan_headers(from, self.size(), |_, h| {
            end = end.max(h.next_offset());
            true
        });
        matches!(scan, Ok(Ok(_))).then_some(end)
    }

    /// The error for a segment of a topic without compaction whose batches end at `end`,
    /// before its successor's base offset `next`: a segment file between them is missing.
    fn missing_after(&self, end: u64, next: u64) -> Error {
        let path = self.log.path();
        let dir = path.parent().unwrap_or(Path::new("."));
        Error::MissingOffsets {
            partition: dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            from: end,
            to: next,
            detail: format!(
                "{} ends at offset {end} (byte {}) but the next segment, {}, starts at {next}; \
                 the topic does not compact, so a segment file between them (such as {}) is \
                 missing",
                path.display(),
                self.size(),
                file_name(next, ".log"),
                file_name(end, ".log"),
            ),
        }
    }

    /// Takes the max timestamp and its offset from the last `.timeindex` entry.
    fn restore_max_timestamp(&self) {
        let (ts, ts_offset) = self
            .time_index
            .read()
            .last()
            .map(decode_time_entry)
            .map_or((-1, self.base_offset), |(ts, rel)| {
                (ts, self.base_offset + rel as u64)
            });
        self.writer.lock().offset_of_max_timestamp = ts_offset;
        self.max_timestamp.store(ts, Ordering::Release);
    }

    /// Takes what the indexes record: the next offset after the last `.index` entry, and the
    /// max timestamp and its offset from the last `.timeindex` entry. Returns the position
    /// of the last `.index` entry's batch and the offset the entry names (`(0, None)`
    /// without entries), where a walk of the unindexed tail starts.
    pub(super) fn restore_from_indexes(&self) -> (u64, Option<u64>) {
        let (from, last_indexed) = self.index.read().last().map_or((0, None), |e| {
            let (rel, pos) = decode_offset_entry(e);
            (pos as u64, Some(self.base_offset + rel as u64))
        });
        self.restore_max_timestamp();
        self.next_offset.store(
            last_indexed.map_or(self.base_offset, |o| o + 1),
            Ordering::Release,
        );
        (from, last_indexed)
    }

    /// Walks the batches in `[from, end)` after `restore_from_indexes`, which completes the
    /// next offset and max timestamp. Also says whether the indexes agree with the log: the
    /// walk's first batch is the one the last `.index` entry names, and no `.timeindex`
    /// entry names an offset past the walked end (the index reached the disk, the log's end
    /// did not).
    pub(super) fn walk_tail(
        &self,
        from: u64,
        last_indexed: Option<u64>,
        end: u64,
    ) -> Result<(log::WalkEnd, bool)> {
        let mut first_last_offset = None;
        let walk = self.walk(from, end, |_, b| {
            first_last_offset.get_or_insert(b.last_offset());
            true
        })?;
        let entry_names_batch = last_indexed.is_none_or(|o| first_last_offset == Some(o));
        let time_entry_in_log = self
            .time_index
            .read()
            .last()
            .map(decode_time_entry)
            .is_none_or(|(_, rel)| self.base_offset + (rel as u64) < self.next_offset());
        Ok((walk, entry_names_batch && time_entry_in_log))
    }

    /// Cheap checks that the index files can describe this log: entries increasing and
    /// inside the log (and below `next_offset` when it is known), a final time-index entry
    /// when the log is not empty.
    fn indexes_sane(&self, size: u64, next_offset: Option<u64>) -> bool {
        let idx = self.index.read();
        let tidx = self.time_index.read();
        let below_next = |rel: u32| next_offset.is_none_or(|n| self.base_offset + (rel as u64) < n);
        let ok_offsets = (0..idx.len()).all(|i| {
            let (rel, pos) = decode_offset_entry(idx.entry(i));
            (pos as u64) < size
                && below_next(rel)
                && (i == 0 || {
                    let (prel, ppos) = decode_offset_entry(idx.entry(i - 1));
                    rel > prel && pos > ppos
                })
        });
        // Entries are only written for timestamps >= 0 (`maybe_append_time_entry`).
        let ok_times = (0..tidx.len()).all(|i| {
            let (ts, rel) = decode_time_entry(tidx.entry(i));
            ts >= 0
                && below_next(rel)
                && (i == 0 || {
                    let (pts, prel) = decode_time_entry(tidx.entry(i - 1));
                    ts > pts && rel >= prel
                })
        });
        let ok_empty = size > 0 || (idx.len() == 0 && tidx.len() == 0);
        // Sealing and closing leave a final time-index entry (the segment's max timestamp,
        // which reads by time rely on): a non-empty log without one has lost it.
        let ok_time_entry = size == 0 || tidx.len() > 0;
        ok_offsets && ok_times && ok_empty && ok_time_entry
    }

    /// Rebuilds both indexes by walking the whole log. A bad batch in the active segment
    /// is a torn tail and is cut off; in a sealed segment it is reported as corruption.
    pub(super) fn rebuild_indexes(&self, active: bool) -> Result<()> {
        {
            self.index.write().reset()?;
            self.time_index.write().reset()?;
            self.preallocate_indexes()?;
            let mut w = self.writer.lock();
            w.bytes_since_index = 0;
            w.offset_of_max_timestamp = self.base_offset;
        }
        self.next_offset.store(self.base_offset, Ordering::Relaxed);
        self.max_timestamp.store(-1, Ordering::Relaxed);
        let size = self.size();
        let mut result = Ok(());
        let walk = self.walk(0, size, |pos, b| {
            result = self.index_batch(pos, b.header());
            result.is_ok()
        })?;
        result?;
        if let Some((pos, e)) = walk.error {
            if !active {
                return Err(Error::corrupt(self.log.path(), pos, e));
            }
            tracing::warn!(
                file = %self.log.path().display(),
                position = pos,
                reason = %e,
                "cutting a bad tail of the active segment while rebuilding its indexes"
            );
            self.cut_log(pos)?;
        }
        if !active {
            self.seal()?;
        }
        Ok(())
    }
}
