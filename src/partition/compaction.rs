//! Compaction (Kafka's log cleaner): keep the latest record per key in the sealed segments
//! of topics whose cleanup policy compacts.
//!
//! One pass: build a map of each key's latest offset over the dirty part of the log (from
//! the first dirty offset up to the first uncleanable one), as far as the map's memory
//! allows; then rewrite every segment from the start of the log up to where the map ends,
//! keeping a record when it has a key, no later record of its key is in the map, and it
//! is not a tombstone whose delete horizon has passed. Small cleaned segments are merged.
//! Each rewritten group of segments is swapped in through `.cleaned` and `.swap` files
//! (FORMAT.md §10), so a crash at any step leaves the old or the new contents.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::txn_state::collect_aborted;
use super::Partition;
use crate::error::{Error, Result};
use crate::record::{Batch, ControlType};
use crate::segment::txnindex::AbortedTxn;
use crate::segment::{file_name, Recovered, Segment, SegmentOptions, MAX_RELATIVE_OFFSET};

/// Bytes the key map is charged per key on top of the key itself (hash table slot,
/// allocation and offset), so that its memory stays within the configured buffer.
pub(crate) const KEY_OVERHEAD: usize = 64;

/// What one compaction pass did to one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// False when the partition needed no cleaning (not compacted, nothing dirty, or the
    /// dirty ratio below `min_cleanable_dirty_ratio` and no segment past
    /// `max_compaction_lag_ms`); the other fields are then zero.
    pub cleaned: bool,
    /// Dirty bytes read into the key map.
    pub dirty_bytes: u64,
    /// Distinct keys in the key map.
    pub keys: u64,
    /// Segments rewritten, and how many they became (small ones are merged).
    pub segments_before: usize,
    /// See `segments_before`.
    pub segments_after: usize,
    /// `.log` bytes of the rewritten segments before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Records dropped (superseded, unkeyed, or tombstones past their delete horizon).
    pub records_removed: u64,
    /// The first offset not cleaned yet, after the pass.
    pub first_dirty_offset: u64,
}

/// A fast hash for the key map (FxHash's multiply-rotate over 8-byte words), seeded per
/// map from the standard library's random state. SipHash took a sixth of compaction's
/// time; keys here come from the application's own log.
#[derive(Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
}

/// Builds [`KeyHasher`]s with one random seed per map.
#[derive(Clone, Copy)]
struct SeededKeyHasher(u64);

impl std::hash::BuildHasher for SeededKeyHasher {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

/// The latest offset of each key in the dirty range, within a memory budget.
struct KeyMap {
    latest: HashMap<Vec<u8>, u64, SeededKeyHasher>,
    used: usize,
    budget: usize,
}

impl KeyMap {
    /// Records `offset` for `key`; false when a new key does not fit (the map then ends
    /// before this record). The first key always fits, so every pass makes progress.
    fn put(&mut self, key: &[u8], offset: u64) -> bool {
        if let Some(o) = self.latest.get_mut(key) {
            *o = offset;
            return true;
        }
        let cost = key.len() + KEY_OVERHEAD;
        if self.used + cost > self.budget && !self.latest.is_empty() {
            return false;
        }
        self.used += cost;
        self.latest.insert(key.to_vec(), offset);
        true
    }
}

impl Partition {
    /// Runs one compaction pass if the partition needs one: its cleanup policy compacts,
    /// and its dirty part is at least `min_cleanable_dirty_ratio` of the cleanable log, or
    /// holds data older than `max_compaction_lag_ms`. See [`Partition::compact_now`].
    ///
    /// # Errors
    /// As [`Partition::compact_now`].
    pub fn compact(&self) -> Result<CompactionReport> {
        self.compact_pass(false)
    }

    /// Runs one compaction pass whatever the dirty ratio (for a compacted topic; others
    /// are left alone). The cleanable log is every sealed segment before the first one
    /// holding a record younger than `min_compaction_lag_ms`; the active segment is never
    /// touched. Keys beyond the key map's memory ([`StoreConfig::cleaner_buffer_bytes`])
    /// are left for the next pass, which starts where this one ended.
    ///
    /// Readers go on meanwhile and see either the old or the cleaned segments. Appends go
    /// on too, and so does retention: the pass holds the partition's maintenance lock only
    /// while it swaps a cleaned segment in, and a group of segments that retention deleted
    /// meanwhile is not swapped in (its cleaned copy is discarded). Truncation and close
    /// wait for the pass (close makes it stop early, leaving the log as it was).
    ///
    /// [`StoreConfig::cleaner_buffer_bytes`]: crate::StoreConfig::cleaner_buffer_bytes
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Poisoned`], [`Error::Corrupt`] when a batch to clean is
    /// bad, I/O errors. A failure before a swap commits leaves the log unchanged; after
    /// it, the partition is poisoned and the next open completes the swap.
    pub fn compact_now(&self) -> Result<CompactionReport> {
        self.compact_pass(true)
    }

    fn compact_pass(&self, force: bool) -> Result<CompactionReport> {
        let inner = &*self.inner;
        // One pass at a time; truncation and close wait for it. Retention does not: the
        // segment list below is a snapshot whose oldest entries retention may delete while
        // the pass runs, and each swap checks that its inputs are still in the log.
        let _cleaner = inner.cleaner.lock();
        self.check_open()?;
        let cfg = &inner.config;
        let mut report = CompactionReport {
            first_dirty_offset: inner.first_dirty.load(Ordering::Acquire),
            ..CompactionReport::default()
        };
        if !cfg.cleanup_policy.compacts() {
            return Ok(report);
        }
        let now = inner.clock.now_ms();
        let segs = inner.segments.read().clone();
        // Cleanable: sealed segments up to the first one with a record younger than the
        // minimum compaction lag.
        let mut end = segs.len() - 1;
        if cfg.min_compaction_lag_ms > 0 {
            let lag = cfg.min_compaction_lag_ms.min(i64::MAX as u64) as i64;
            for (i, seg) in segs[..end].iter().enumerate() {
                if seg.largest_timestamp()? > now.saturating_sub(lag) {
                    end = i;
                    break;
                }
            }
        }
        // Nor past the last stable offset (Kafka's cleaner): an open transaction's data
        // may yet be aborted, and must neither replace a committed value nor be judged.
        self.ensure_txn_state()?;
        end = end.min(Self::segment_index(&segs, self.published_lso()));
        if end == 0 {
            return Ok(report);
        }
        let uncleanable = segs[end].base_offset();
        let first_dirty = report
            .first_dirty_offset
            .max(self.log_start_offset())
            .max(segs[0].base_offset())
            .min(uncleanable);
        // Tombstones whose delete horizon passed are removed by a pass even when nothing
        // is dirty (Kafka's cleaner does the same for logs with expired tombstones).
        let tombstones_expired = inner.tombstone_expiry.load(Ordering::Acquire) <= now;
        let has_dirty = first_dirty < uncleanable;
        let dirty_idx = if has_dirty {
            Self::segment_index(&segs[..end], first_dirty)
        } else {
            end
        };
        let total: u64 = segs[..end].iter().map(|s| s.size()).sum();
        let dirty: u64 = segs[dirty_idx..end].iter().map(|s| s.size()).sum();
        let ratio = if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        };
        let overdue = match (has_dirty, cfg.max_compaction_lag_ms) {
            (true, Some(lag)) => segs[dirty_idx]
                .first_batch_timestamp()?
                .is_some_and(|ts| now.saturating_sub(ts) > lag.min(i64::MAX as u64) as i64),
            _ => false,
        };
        let wanted = has_dirty && (force || ratio >= cfg.min_cleanable_dirty_ratio || overdue);
        if !(wanted || tombstones_expired) {
            return Ok(report);
        }
        // Only flushed data is rewritten (the cleaned segments are synced before they
        // replace anything, and recovery never re-checks data below the recovery point).
        self.flush()?;
        // From here the pass holds only the cleanable segments it has yet to read or
        // rewrite: those retention deletes meanwhile and those swapped out are dropped as
        // it goes, so that their files close then, not at the end of the pass.
        let bases: Vec<u64> = segs.iter().map(|s| s.base_offset()).collect();
        let sizes: Vec<u64> = segs.iter().map(|s| s.size()).collect();
        // The uncleanable segments, for the `.txnindex` entries of aborted transactions
        // whose data is cleanable but whose ABORT marker lies past it.
        let later: Vec<Arc<Segment>> = segs[end..].to_vec();
        let mut held: Vec<Option<Arc<Segment>>> = segs.into_iter().take(end).map(Some).collect();

        use std::hash::BuildHasher as _;
        let seed = std::collections::hash_map::RandomState::new().hash_one(inner.key.1);
        let mut map = KeyMap {
            latest: HashMap::with_hasher(SeededKeyHasher(seed)),
            used: 0,
            budget: inner.cleaner_buffer_bytes,
        };
        let mut map_end = first_dirty;
        let mut full = false;
        // Control batches and aborted transactions' data give no key its latest value
        // (Kafka's `buildOffsetMap` skips them): an aborted write must not remove the
        // committed record it would have replaced. Transactions that ended before the
        // dirty range cannot reach into it.
        let mut visible = {
            let mut aborted = Vec::new();
            for seg in held.iter().flatten() {
                aborted.extend(seg.aborted_txns()?);
            }
            aborted.retain(|t| t.last_offset >= map_end);
            collect_aborted(&later, map_end, uncleanable, &mut aborted)?;
            crate::txn::ReadCommitted::new(aborted)
        };
        for i in dirty_idx..end {
            self.check_not_closing()?;
            let upper = bases[i + 1];
            self.release_deleted(&mut held);
            let Some(seg) = held[i].clone() else {
                // Deleted by retention, with every older segment: no record left there
                // can need a key from it.
                map_end = upper;
                continue;
            };
            let mut result = Ok(());
            let mut scratch = Vec::new();
            seg.for_each_batch(map_end, |b| {
                report.dirty_bytes += b.as_bytes().len() as u64;
                // `None` for data batches (their records are not read).
                let control = crate::txn::batch_control_type(b).ok().flatten();
                if !visible.accept(b.header(), control) {
                    return true;
                }
                let records = match b.records_with(&mut scratch) {
                    Ok(records) => records,
                    Err(e) => {
                        result = Err(e);
                        return false;
                    }
                };
                for r in records {
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => {
                            result = Err(e);
                            return false;
                        }
                    };
                    if r.offset() < map_end {
                        continue;
                    }
                    if let Some(key) = r.key() {
                        if !map.put(key, r.offset()) {
                            full = true;
                            map_end = r.offset();
                            return false;
                        }
                    }
                }
                map_end = b.last_offset() + 1;
                true
            })?;
            result.map_err(|e| Error::corrupt(seg.log_path(), 0, e))?;
            if full {
                break;
            }
            map_end = upper;
        }
        report.keys = map.latest.len() as u64;

        // Rewrite every segment that starts below the map's end, merging small neighbours.
        let count = bases[..end].partition_point(|&b| b < map_end);
        // Kafka's cleaner for transactions, fed every batch of the pass in order, knows the
        // aborted transactions with data in the rewritten segments wherever they end.
        let mut txn = TxnCleaner::default();
        for seg in held[..count].iter().flatten() {
            txn.pending.extend(seg.aborted_txns()?);
        }
        let beyond: Vec<Arc<Segment>> = held[count..]
            .iter()
            .flatten()
            .chain(&later)
            .cloned()
            .collect();
        collect_aborted(&beyond, 0, bases[count], &mut txn.pending)?;
        drop(beyond);
        held.truncate(count);
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        let mut start = 0;
        while start < count {
            let mut stop = start + 1;
            let mut size = sizes[start];
            while stop < count {
                let next_size = size + sizes[stop];
                let span = bases[stop + 1] - bases[start];
                if next_size > cfg.segment_bytes || span > MAX_RELATIVE_OFFSET + 1 {
                    break;
                }
                size = next_size;
                stop += 1;
            }
            groups.push(start..stop);
            start = stop;
        }
        let rules = Rules {
            map: &map,
            map_end,
            now,
            delete_retention: cfg.delete_retention_ms.min(i64::MAX as u64) as i64,
            compression: cfg.compression,
        };
        txn.pending
            .sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        let mut expiry = i64::MAX;
        // The largest timestamp in the log below the group being cleaned (groups start at
        // the first segment), for the empty batch a group may keep (`clean_group`).
        let mut before = -1;
        for group in groups {
            self.check_not_closing()?;
            self.release_deleted(&mut held);
            let old: Vec<Arc<Segment>> = held[group.clone()]
                .iter_mut()
                .filter_map(Option::take)
                .collect();
            if old.len() < group.len() || self.listed_at(&old).is_none() {
                continue; // retention deleted (some of) them meanwhile
            }
            let next_base = bases[group.end];
            let mut cleaned_report = CompactionReport::default();
            let mut group_expiry = expiry;
            let (cleaned, max_ts) = self.clean_group(
                &old,
                &rules,
                &mut txn,
                before,
                &mut group_expiry,
                &mut cleaned_report,
            )?;
            before = before.max(max_ts);
            let aborted = std::mem::take(&mut txn.index);
            if self.swap_in(&old, next_base, &cleaned, &aborted)? {
                expiry = group_expiry;
                report.segments_before += cleaned_report.segments_before;
                report.segments_after += 1;
                report.bytes_before += cleaned_report.bytes_before;
                report.bytes_after += cleaned_report.bytes_after;
                report.records_removed += cleaned_report.records_removed;
            }
        }
        // A pass that reached the uncleanable section rewrote every tombstone there is:
        // `expiry` is exact. A partial one keeps the earlier expiry too.
        if map_end < uncleanable {
            expiry = expiry.min(inner.tombstone_expiry.load(Ordering::Acquire));
        }
        inner.tombstone_expiry.store(expiry, Ordering::Release);
        report.cleaned = true;
        report.first_dirty_offset = map_end;
        inner
            .checkpoints
            .lock()
            .set_first_dirty(&inner.key, map_end)?;
        inner.first_dirty.store(map_end, Ordering::Release);
        Ok(report)
    }

    fn check_not_closing(&self) -> Result<()> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(Error::Closed(self.inner.name.clone()));
        }
        Ok(())
    }

    /// Writes the cleaned contents of the segments `old` to `<base>.log.cleaned` (synced)
    /// and returns its path and the largest timestamp of the records kept.
    /// `expiry` is lowered to the delete horizon of every written batch that keeps a
    /// tombstone. `before` is the largest timestamp in the log below `old`.
    fn clean_group(
        &self,
        old: &[Arc<Segment>],
        rules: &Rules<'_>,
        txn: &mut TxnCleaner,
        before: i64,
        expiry: &mut i64,
        report: &mut CompactionReport,
    ) -> Result<(std::path::PathBuf, i64)> {
        let dir = &self.inner.dir;
        let base = old[0].base_offset();
        let path = dir.join(format!("{}.cleaned", file_name(base, ".log")));
        let file = crate::fs::create_new(&path).or_else(|_| {
            // A leftover of an interrupted pass (open removes them; a failed pass too).
            let _ = std::fs::remove_file(&path);
            crate::fs::create_new(&path)
        })?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let write = |out: &mut std::io::BufWriter<std::fs::File>, bytes: &[u8]| {
            crate::fs::inject(crate::fs::FaultOp::Write)
                .and_then(|()| out.write_all(bytes))
                .map_err(|e| Error::io("write", &path, e))
        };
        // Largest timestamp of the records written so far.
        let mut kept_max = -1i64;
        let result = (|| {
            for (i, seg) in old.iter().enumerate() {
                report.segments_before += 1;
                report.bytes_before += seg.size();
                let last_segment = i + 1 == old.len();
                // Batches are written one behind, so that the last one is known.
                let mut pending: Option<(Vec<u8>, usize)> = None;
                let mut failed = Ok(());
                let mut decisions = Vec::new();
                seg.for_each_batch(seg.base_offset(), |b| {
                    match filter_batch(b, rules, txn, &mut decisions) {
                        Ok(Filtered {
                            bytes,
                            kept,
                            removed,
                            tombstone_horizon,
                        }) => {
                            report.records_removed += removed as u64;
                            if let Some(h) = tombstone_horizon {
                                *expiry = (*expiry).min(h);
                            }
                            if let Some((prev, n)) = pending.replace((bytes, kept)) {
                                if n > 0 {
                                    kept_max = kept_max.max(header_max_timestamp(&prev));
                                    if let Err(e) = write(&mut out, &prev) {
                                        failed = Err(e);
                                        return false;
                                    }
                                    report.bytes_after += prev.len() as u64;
                                }
                            }
                            true
                        }
                        Err(e) => {
                            failed = Err(Error::corrupt(seg.log_path(), 0, e));
                            false
                        }
                    }
                })?;
                failed?;
                // The last batch of the group stays even when empty: it keeps the segment's
                // offset range, so the log end offset and the next base offset still match.
                if let Some((mut bytes, n)) = pending {
                    if n == 0 && last_segment {
                        // The empty batch's old max timestamp belonged to records now gone.
                        // Kafka looks a timestamp up in the first segment whose largest
                        // timestamp reaches it, and only there: the empty batch must not
                        // make this segment look like it holds records that late. It gets
                        // the largest timestamp of what precedes it (records kept in this
                        // segment, else the log below), which some earlier record has; 0
                        // when nothing has one (-1 would make Kafka use the file's mtime).
                        let ts = if kept_max >= 0 {
                            kept_max
                        } else {
                            before.max(0)
                        };
                        crate::record::set_max_timestamp(&mut bytes, ts);
                    } else if n > 0 {
                        kept_max = kept_max.max(header_max_timestamp(&bytes));
                    }
                    if n > 0 || last_segment {
                        write(&mut out, &bytes)?;
                        report.bytes_after += bytes.len() as u64;
                    }
                }
            }
            let file = out
                .into_inner()
                .map_err(|e| Error::io("write", &path, e.into_error()))?;
            crate::fs::sync_file(&file, &path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok((path, kept_max))
    }

    /// Drops the segments of `held` that retention deleted since the pass took its
    /// snapshot: retention deletes the oldest, so those below the log's first base offset.
    fn release_deleted(&self, held: &mut [Option<Arc<Segment>>]) {
        let first = self.inner.segments.read()[0].base_offset();
        for slot in held.iter_mut() {
            match slot {
                Some(s) if s.base_offset() >= first => break,
                Some(_) => *slot = None,
                None => {}
            }
        }
    }

    /// Where the segments `old` are in the log, if they all still are (retention deletes
    /// the oldest segments while a pass runs).
    fn listed_at(&self, old: &[Arc<Segment>]) -> Option<usize> {
        let segs = self.inner.segments.read();
        let at = segs.iter().position(|s| Arc::ptr_eq(s, &old[0]))?;
        let listed = segs.get(at..at + old.len())?;
        listed
            .iter()
            .zip(old)
            .all(|(s, o)| Arc::ptr_eq(s, o))
            .then_some(at)
    }

    /// Replaces the segments `old` with the cleaned segment at `cleaned`: rename to
    /// `.swap` (the commit point), delete the old files, rename into place, reopen. Runs
    /// under the maintenance lock, so retention cannot delete `old` during the swap; when
    /// it deleted any of them before, the cleaned file is discarded (swapping it in would
    /// bring deleted records back) and this returns false.
    fn swap_in(
        &self,
        old: &[Arc<Segment>],
        next_base: u64,
        cleaned: &Path,
        aborted: &[AbortedTxn],
    ) -> Result<bool> {
        let inner = &*self.inner;
        let dir = &inner.dir;
        let now = inner.clock.now_ms();
        let _maintenance = inner.maintenance.lock();
        let listed = self.check_open().map(|()| self.listed_at(old));
        let Ok(Some(_)) = listed else {
            let _ = std::fs::remove_file(cleaned);
            if matches!(listed, Ok(None)) {
                tracing::info!(
                    file = %cleaned.display(),
                    "compaction: retention deleted the segments being cleaned; cleaned copy discarded"
                );
            }
            return listed.map(|_| false);
        };
        let base = old[0].base_offset();
        let final_path = dir.join(file_name(base, ".log"));
        let swap = crate::fs::with_suffix(&final_path, crate::segment::SWAP_SUFFIX);
        if let Err(e) = crate::fs::rename(cleaned, &swap).and_then(|()| crate::fs::sync_dir(dir)) {
            let _ = std::fs::remove_file(cleaned);
            let _ = std::fs::remove_file(&swap);
            return Err(e);
        }
        // Committed: from here a failure leaves the swap for the next open to complete.
        let done = (|| {
            for seg in old {
                seg.delete_files()?;
            }
            crate::fs::rename(&swap, &final_path)?;
            let opts = SegmentOptions::from_config(&inner.config, &inner.files);
            let (seg, recovered) =
                Segment::recover(dir, base, opts, false, 0, Some(next_base), now)?;
            if let Recovered::CutAt(pos) = recovered {
                return Err(Error::Corrupt {
                    path: final_path.clone(),
                    position: pos,
                    reason: "a cleaned segment failed its check".into(),
                });
            }
            // The aborted transactions whose markers the cleaned segment keeps (a crash
            // before this is written leaves it to the transaction state's rebuild).
            seg.replace_txn_index(aborted)?;
            seg.flush()?;
            // One fsync for the deletions, the rename and the rebuilt index files (until
            // it, a crash leaves the `.swap` for the next open to finish).
            crate::fs::sync_dir(dir)?;
            Ok(seg)
        })();
        // Any failure after the commit leaves memory and disk apart: poisoned, so that only
        // a reopen (which completes the swap) writes again.
        let seg = match done {
            Ok(seg) => seg,
            Err(e) => {
                self.poison(&e);
                return Err(e);
            }
        };
        {
            let mut segs = inner.segments.write();
            let at = segs
                .iter()
                .position(|s| Arc::ptr_eq(s, &old[0]))
                .expect("segments being swapped stay in the list: the maintenance lock is held");
            segs.splice(at..at + old.len(), [seg]);
        }
        // The pass flushed its inputs before cleaning them, so none should be waiting for a
        // flush; one that were would keep its deleted files open until the next flush.
        inner
            .writer
            .lock()
            .unflushed
            .retain(|s| !old.iter().any(|o| Arc::ptr_eq(o, s)));
        Ok(true)
    }
}

/// What decides which records a pass keeps.
struct Rules<'a> {
    /// Each key's latest offset in `[first dirty offset, map_end)`.
    map: &'a KeyMap,
    /// Where the map ends: records at or past it were not looked at for this pass.
    map_end: u64,
    now: i64,
    delete_retention: i64,
    /// The topic's `compression.type`: rewritten batches are recompressed with it.
    compression: crate::config::TopicCompression,
}

/// A batch as compaction rewrites it.
struct Filtered {
    bytes: Vec<u8>,
    kept: usize,
    removed: usize,
    /// The batch's delete horizon when it keeps a tombstone.
    tombstone_horizon: Option<i64>,
}

/// A batch with the records compaction keeps. A record goes when it has no key, when the
/// map holds a later offset for its key, or when it is a tombstone whose batch's delete
/// horizon has passed and that lies below the map's end (past it, an older value of its
/// key may still be in the log, which only a pass whose map covers the tombstone removes).
/// A batch whose kept records include a tombstone and that has no delete horizon yet gets
/// one (`now + delete_retention`). A batch that keeps everything and needs no horizon is
/// copied unchanged. `decisions` is scratch space reused across batches.
fn filter_batch(
    b: &Batch<'_>,
    rules: &Rules<'_>,
    txn: &mut TxnCleaner,
    decisions: &mut Vec<bool>,
) -> std::result::Result<Filtered, crate::record::DecodeError> {
    let horizon = b.header().delete_horizon();
    let horizon_passed = horizon.is_some_and(|h| rules.now >= h);
    decisions.clear();
    let fate = txn.on_batch(b);
    let mut tombstones_kept = false;
    let mut scratch = Vec::new();
    for r in b.records_with(&mut scratch)? {
        let r = r?;
        let keep = match fate {
            // A transaction marker is not a keyed record: it stays until its transaction
            // has no data left in the log, then until its delete horizon (Kafka's
            // `CleanedTransactionMetadata`).
            TxnFate::Marker { discardable } => {
                let keep = !(discardable && horizon_passed);
                // A marker waiting for its horizon counts as a tombstone does.
                tombstones_kept |= discardable && keep;
                keep
            }
            // The data of an aborted transaction goes whole.
            TxnFate::Aborted => false,
            TxnFate::Data => match r.key() {
                None => false,
                Some(key) => {
                    rules.map.latest.get(key).is_none_or(|&o| o <= r.offset())
                        && !(r.is_tombstone() && horizon_passed && r.offset() < rules.map_end)
                }
            },
        };
        tombstones_kept |= keep && r.is_tombstone();
        decisions.push(keep);
    }
    let total = decisions.len();
    let new_horizon = (tombstones_kept && horizon.is_none())
        .then(|| rules.now.saturating_add(rules.delete_retention));
    let tombstone_horizon = tombstones_kept.then(|| new_horizon.or(horizon)).flatten();
    if new_horizon.is_none() && decisions.iter().all(|&k| k) {
        return Ok(Filtered {
            bytes: b.as_bytes().to_vec(),
            kept: total,
            removed: 0,
            tombstone_horizon,
        });
    }
    let mut i = 0;
    // A rewritten batch takes the topic's codec (`producer`: its own), as
    // `compression.type` asks of every batch the log stores.
    let codec = rules.compression.for_batch(
        b.header()
            .codec()
            .unwrap_or(crate::record::Compression::None),
    );
    let (bytes, kept) = b.filtered_as(
        |_| {
            i += 1;
            decisions[i - 1]
        },
        new_horizon,
        codec,
    )?;
    Ok(Filtered {
        bytes,
        kept,
        removed: total - kept,
        tombstone_horizon,
    })
}

/// The `maxTimestamp` of an encoded batch written by `filter_batch`.
fn header_max_timestamp(bytes: &[u8]) -> i64 {
    crate::record::BatchHeader::parse(bytes).map_or(-1, |h| h.max_timestamp)
}

/// What the cleaner does with a batch because of transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnFate {
    /// Data of no aborted transaction: its records are judged by key.
    Data,
    /// Data of an aborted transaction: removed whole.
    Aborted,
    /// A control batch; `discardable` once no data of its transaction is left.
    Marker { discardable: bool },
}

/// Kafka's `CleanedTransactionMetadata`, fed the batches of a pass in offset order: which
/// batches belong to aborted transactions (from the cleaned segments' `.txnindex`), and
/// which markers no longer have data in the log.
#[derive(Debug, Default)]
struct TxnCleaner {
    /// Aborted transactions not reached yet, the earliest last.
    pending: Vec<AbortedTxn>,
    /// Producers inside an aborted transaction: its entry, and whether any of its data
    /// batches was seen in this pass.
    ongoing_aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers inside a transaction that is not aborted, with data seen in this pass.
    ongoing_committed: HashSet<i64>,
    /// The `.txnindex` entries of the group being cleaned: aborted transactions whose
    /// marker it keeps because their data was there.
    index: Vec<AbortedTxn>,
}

impl TxnCleaner {
    fn on_batch(&mut self, b: &Batch<'_>) -> TxnFate {
        let h = b.header();
        while self
            .pending
            .last()
            .is_some_and(|a| a.first_offset <= h.last_offset())
        {
            let a = self.pending.pop().expect("checked");
            self.ongoing_aborted.insert(a.producer_id, (a, false));
        }
        let pid = h.producer_id;
        if h.is_control() {
            let discardable = match crate::txn::batch_control_type(b).ok().flatten() {
                Some(ControlType::Abort) => match self.ongoing_aborted.remove(&pid) {
                    // Data of it was seen (and removed): the marker stays, with its entry,
                    // until a pass finds no data of it.
                    Some((entry, true)) => {
                        self.index.push(entry);
                        false
                    }
                    _ => true,
                },
                Some(ControlType::Commit) => !self.ongoing_committed.remove(&pid),
                _ => false,
            };
            return TxnFate::Marker { discardable };
        }
        if h.is_transactional() && pid >= 0 {
            if let Some((_, seen)) = self.ongoing_aborted.get_mut(&pid) {
                *seen = true;
                return TxnFate::Aborted;
            }
            self.ongoing_committed.insert(pid);
        }
        TxnFate::Data
    }
}
