//! Retention: deleting whole segments from the oldest end of a partition, by time, by size
//! and by log start offset (Kafka's `UnifiedLog.deleteOldSegments`), and raising the log
//! start offset (Kafka's DeleteRecords).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Partition, Writer};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::segment::Segment;

/// What a retention pass did to one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of `.log` deleted.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: u64,
}

/// Why the oldest segment goes.
fn deletable(
    seg: &Segment,
    upper_bound: u64,
    log_start: u64,
    remaining_bytes: u64,
    config: &crate::config::TopicConfig,
    now_ms: i64,
) -> Result<bool> {
    // Every offset it could hold lies below the log start offset.
    if upper_bound <= log_start {
        return Ok(true);
    }
    if !config.cleanup_policy.deletes() {
        return Ok(false);
    }
    if let Some(limit) = config.retention_bytes {
        if remaining_bytes.saturating_sub(seg.size()) >= limit {
            return Ok(true);
        }
    }
    if let Some(retention) = config.retention_ms {
        let newest = seg.largest_timestamp()?;
        if now_ms.saturating_sub(newest) > retention.min(i64::MAX as u64) as i64 {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Partition {
    /// Deletes the oldest segments that retention no longer keeps, oldest first, stopping at
    /// the first one it keeps (Kafka's rules):
    ///
    /// - every segment whose offsets all lie below the log start offset;
    /// - for topics whose cleanup policy deletes: segments whose largest record timestamp
    ///   is more than `retention_ms` before the store clock (a segment without timestamps
    ///   uses its file's modification time), and segments the log can do without while
    ///   keeping at least `retention_bytes`.
    ///
    /// The active segment's data goes too when retention covers it: a new, empty active
    /// segment is rolled first, so a partition always has one (after the older segments
    /// were deleted, so that on a full disk the roll has their space). The log start offset
    /// becomes the first remaining segment's base offset (or stays higher). The deletions
    /// are durable when this returns; appends wait only while the segments are taken out
    /// of the partition, not while their files are deleted. A compaction pass on the
    /// partition delays this only while it swaps a cleaned segment in, not for the whole
    /// pass; segments the pass is cleaning may go, and the pass then discards their
    /// cleaned copy.
    ///
    /// Readers that hold data of a deleted segment keep reading it safely: reads copy
    /// batches out, and a segment's open file lives until its last reader drops it. A read
    /// that reaches a deleted offset afterwards gets [`Error::OffsetOutOfRange`].
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::Poisoned`], I/O errors (which poison the partition).
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        let inner = &*self.inner;
        let now = inner.clock.now_ms();
        let _maintenance = inner.maintenance.lock();
        let mut report = RetentionReport::default();
        loop {
            let mut w = inner.writer.lock();
            self.check_open()?;
            let segs = inner.segments.read().clone();
            let log_start = self.log_start_offset();
            let log_end = self.log_end_offset();
            let mut remaining: u64 = segs.iter().map(|s| s.size()).sum();
            let mut n = 0;
            for (i, seg) in segs.iter().enumerate() {
                let upper = segs.get(i + 1).map_or(log_end, |s| s.base_offset());
                if i + 1 == segs.len() && seg.size() == 0 {
                    break; // an empty active segment holds nothing to delete
                }
                if !deletable(seg, upper, log_start, remaining, &inner.config, now)? {
                    break;
                }
                remaining -= seg.size();
                n += 1;
            }
            // Deleting the active segment needs a roll, which needs space (sealing writes a
            // time-index entry): the older segments go first, so that on a full disk their
            // space is free for it; the active segment is judged again in the next round.
            let older_first = n == segs.len() && n > 1;
            let n = if older_first { n - 1 } else { n };
            let removed = self.poison_on_io(self.detach_oldest(&mut w, n, now))?;
            drop(w);
            let round = self.poison_on_io(self.delete_detached(removed))?;
            report.segments_deleted += round.segments_deleted;
            report.bytes_deleted += round.bytes_deleted;
            report.log_start_offset = round.log_start_offset;
            if !older_first {
                return Ok(report);
            }
        }
    }

    /// Raises the log start offset to `offset` (Kafka's DeleteRecords): records below it
    /// can no longer be read ([`Error::OffsetOutOfRange`]) and the segments wholly below it
    /// are deleted. The new log start offset is durable (in `log-start-offset-checkpoint`)
    /// when this returns, whatever checkpoint writes ([`Store::flush`](crate::Store::flush),
    /// the periodic one) run meanwhile. An offset at or below the current log start changes
    /// nothing. Returns the log start offset afterwards.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] past the log end offset; [`Error::Closed`],
    /// [`Error::Poisoned`], I/O errors (which poison the partition).
    ///
    /// When writing the checkpoint file fails, the log start offset is not raised: every
    /// record stays readable, and should the failed write have replaced the file anyway
    /// (a failed directory fsync), the next checkpoint write puts the old value back. When
    /// deleting the segments below it fails afterwards, the log start offset *was* raised
    /// durably (so [`Partition::log_start_offset`] is at least `offset`); the segments
    /// left below it are deleted by retention after the reopen the poisoning requires.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let _maintenance = inner.maintenance.lock();
        self.check_open()?;
        if offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        // The log start offset never passes the durable offset: after a crash the log
        // could otherwise end below a log start offset the checkpoint already holds.
        self.poison_on_io(self.sync_to(offset, false))?;
        let mut w = inner.writer.lock();
        self.check_open()?;
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        self.poison_on_io((|| {
            {
                // Raised in memory under the checkpoint lock, once the file says so:
                // checkpoint writers read the log start offsets under this lock, so none
                // can write the old value back after the file is written. On a failure
                // the value stays as it was (see the error section).
                let mut checkpoints = inner.checkpoints.lock();
                checkpoints.raise_log_start(&inner.key, offset)?;
                inner.log_start_offset.fetch_max(offset, Ordering::AcqRel);
            }
            let segs = inner.segments.read().clone();
            let log_end = self.log_end_offset();
            let below = (0..segs.len())
                .take_while(|&i| {
                    let upper = segs.get(i + 1).map_or(log_end, |s| s.base_offset());
                    upper <= offset && !(i + 1 == segs.len() && segs[i].size() == 0)
                })
                .count();
            let removed = self.detach_oldest(&mut w, below, inner.clock.now_ms())?;
            drop(w);
            self.delete_detached(removed)
        })())?;
        Ok(self.log_start_offset())
    }

    /// Takes the `n` oldest segments out of the partition (rolling an empty active segment
    /// first when that is all of them) and raises the log start offset to the first
    /// remaining base offset. Runs under the writer lock; the files are deleted after it
    /// (`delete_detached`), so that appends do not wait for the file system.
    fn detach_oldest(&self, w: &mut Writer, n: usize, now: i64) -> Result<Vec<Arc<Segment>>> {
        let inner = &*self.inner;
        if n == 0 {
            return Ok(Vec::new());
        }
        if n >= inner.segments.read().len() {
            let base = self.log_end_offset();
            self.roll(w, base, now)?;
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segs = inner.segments.write();
            let removed: Vec<_> = segs.drain(..n).collect();
            inner
                .log_start_offset
                .fetch_max(segs[0].base_offset(), Ordering::AcqRel);
            removed
        };
        w.unflushed
            .retain(|s| !removed.iter().any(|r| Arc::ptr_eq(r, s)));
        Ok(removed)
    }

    /// Deletes the files of segments `detach_oldest` took out, then fsyncs the directory
    /// (with a rolled segment's creation), so the deletions are durable on return.
    fn delete_detached(&self, removed: Vec<Arc<Segment>>) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        if !removed.is_empty() {
            // Each segment is dropped as soon as its files are deleted: unless a reader
            // still holds it, its descriptors and maps go with it, not at the end of the
            // pass (a pass may delete thousands).
            for seg in removed {
                tracing::info!(
                    file = %seg.log_path().display(),
                    base_offset = seg.base_offset(),
                    bytes = seg.size(),
                    "retention: deleting a segment"
                );
                seg.delete_files()?;
                report.segments_deleted += 1;
                report.bytes_deleted += seg.size();
            }
            crate::fs::sync_dir(&self.inner.dir)?;
        }
        report.log_start_offset = self.log_start_offset();
        Ok(report)
    }
}

impl crate::checkpoint::CheckpointGuard<'_> {
    /// Raises the log start offset of `key` to `offset` in the checkpoint file, durably.
    pub(crate) fn raise_log_start(&mut self, key: &(String, u32), offset: u64) -> Result<()> {
        let (points, mut starts) = self.current();
        starts.insert(key.clone(), offset);
        self.write(points, starts)
    }
}
