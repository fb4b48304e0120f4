//! A partition's transaction state: the ongoing transactions (for the last stable offset)
//! and the `.txnindex` entries of aborted ones (for read-committed reads).
//!
//! The state is built lazily, by replaying every batch header of the log (data batches are
//! never decoded; control batches' first record is), the first time something needs it: an
//! append of a batch with a producer id, [`Partition::last_stable_offset`], or a
//! read-committed read. A partition that never sees a producer id never pays for it. The
//! replay also reconciles each segment's `.txnindex` with what the log says (rewriting a
//! file only when its bytes differ): after a crash, a compaction or a truncation the index
//! files are therefore rebuilt from the log, as Kafka rebuilds them at recovery. The state
//! lives under the writer lock; its first unstable offset is published in an atomic before
//! each new log end offset, so that readers never see a transaction's data as stable.

use std::sync::atomic::Ordering;

use super::{Fetch, Partition, Writer};
use crate::error::Result;
use crate::record::{Batch, BatchHeader, ControlRecord, ControlType};
use crate::segment::txnindex::AbortedTxn;
use crate::txn::TxnTracker;

/// `Inner::first_unstable` when the state is not built.
pub(super) const NOT_BUILT: u64 = u64::MAX;
/// `Inner::first_unstable` when no transaction is ongoing.
pub(super) const NONE_ONGOING: u64 = u64::MAX - 1;

impl Partition {
    /// The last stable offset (Kafka's LSO): the first offset of the earliest transaction
    /// still open (neither committed nor aborted), or the log end offset when none is. A
    /// read-committed reader ([`Partition::read_committed`], consumers with
    /// [`Isolation::ReadCommitted`](crate::Isolation::ReadCommitted)) reads only below it.
    /// Kafka also caps it at the high watermark; with one replica that is the log end.
    ///
    /// The first call after an open (unless appends with a producer id came first) reads
    /// every batch header of the partition to find open transactions.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed); I/O errors and
    /// [`Error::Corrupt`](crate::Error::Corrupt) from reading the log.
    pub fn last_stable_offset(&self) -> Result<u64> {
        self.ensure_txn_state()?;
        Ok(self.published_lso())
    }

    /// The last stable offset as published (the state must be built).
    pub(super) fn published_lso(&self) -> u64 {
        // An append publishes a transaction that starts before the log end offset moves
        // past its data, and one that ends after the log end offset moves past its marker
        // (`observe_appended`). So the first unstable offset is read on both sides of the
        // log end offset and must not change in between: then the end read is at or past
        // every marker of a transaction the first unstable offset says ended.
        let (first, end) = loop {
            let first = self.inner.first_unstable.load(Ordering::Acquire);
            let end = self.log_end_offset();
            if self.inner.first_unstable.load(Ordering::Acquire) == first {
                break (first, end);
            }
        };
        match first {
            NONE_ONGOING => end,
            // Only after a failed rebuild: nothing is known to be stable.
            NOT_BUILT => self.log_start_offset().min(end),
            first => first.clamp(self.log_start_offset(), end),
        }
    }

    /// Builds the transaction state if it is not built yet.
    pub(super) fn ensure_txn_state(&self) -> Result<()> {
        if self.inner.first_unstable.load(Ordering::Acquire) != NOT_BUILT {
            return Ok(());
        }
        let mut w = self.inner.writer.lock();
        self.check_open()?;
        self.txn_tracker(&mut w).map(|_| ())
    }

    /// The tracker, built by replaying the log when it is not.
    fn txn_tracker<'w>(&self, w: &'w mut Writer) -> Result<&'w mut TxnTracker> {
        if w.txn.is_none() {
            let mut tracker = TxnTracker::new();
            let segs = self.inner.segments.read().clone();
            let end = self.log_end_offset();
            for seg in &segs {
                let mut aborted = Vec::new();
                seg.txn_headers(end, |h, control| {
                    if let Some(done) = tracker.observe(h, control) {
                        aborted.extend(done.aborted_txn());
                    }
                })?;
                if seg.replace_txn_index(&aborted)? {
                    w.dir_dirty = true;
                }
            }
            tracing::debug!(
                partition = %self.inner.name,
                ongoing = tracker.ongoing().count(),
                "transaction state rebuilt from the log"
            );
            self.publish_first_unstable(&tracker);
            w.txn = Some(tracker);
        }
        Ok(w.txn.as_mut().expect("built above"))
    }

    fn publish_first_unstable(&self, tracker: &TxnTracker) {
        let first = tracker.first_unstable_offset().unwrap_or(NONE_ONGOING);
        self.inner.first_unstable.store(first, Ordering::Release);
    }

    /// Rebuilds the transaction state from the log, and the `.txnindex` files with it,
    /// when it was built (after a truncation changed the log under it); otherwise leaves
    /// it to the next use.
    pub(super) fn rebuild_txn_state(&self, w: &mut Writer) -> Result<()> {
        if w.txn.take().is_some() {
            // Unknown until rebuilt (and left so when the rebuild fails).
            self.inner
                .first_unstable
                .store(NOT_BUILT, Ordering::Release);
            self.txn_tracker(w)?;
        }
        Ok(())
    }

    /// Takes note of a batch just written to the active segment (before the log end
    /// offset moves past it): an ongoing transaction starts or ends, and an ABORT marker
    /// that ends one with data adds its entry to the active segment's `.txnindex` (Kafka's
    /// `updateTxnIndex`). Batches without a producer id change nothing and, while no batch
    /// had one, cost nothing.
    pub(super) fn observe_appended(
        &self,
        w: &mut Writer,
        bytes: &[u8],
        header: &BatchHeader,
    ) -> Result<Option<u64>> {
        if header.producer_id < 0 && w.txn.is_none() {
            return Ok(None);
        }
        let control = if header.is_control() {
            control_type(bytes)
        } else {
            None
        };
        // The replay stops below this batch's offsets (the log end offset has not moved).
        let (done, first) = {
            let tracker = self.txn_tracker(w)?;
            let done = tracker.observe(header, control);
            (done, tracker.first_unstable_offset())
        };
        if let Some(txn) = done.and_then(|d| d.aborted_txn()) {
            if w.active.append_aborted(txn)? {
                w.dir_dirty = true;
            }
        }
        // A transaction that starts is published before the log end offset moves past its
        // data. One that ends is published after the log end offset moves past its marker
        // (the caller stores the returned value): a read-committed reader gets an ended
        // transaction's data and its marker in the same fetch, never the data alone.
        let first = first.unwrap_or(NONE_ONGOING);
        if first <= self.inner.first_unstable.load(Ordering::Acquire) {
            self.inner.first_unstable.store(first, Ordering::Release);
            return Ok(None);
        }
        Ok(Some(first))
    }

    /// Publishes a first unstable offset `observe_appended` deferred.
    pub(super) fn publish_deferred_unstable(&self, first: Option<u64>) {
        if let Some(first) = first {
            self.inner.first_unstable.store(first, Ordering::Release);
        }
    }

    /// Reads like [`Partition::read`], as a read-committed reader (Kafka's
    /// `isolation.level=read_committed`): only below the [last stable
    /// offset](Partition::last_stable_offset), and [`Fetch::records`] leaves out the
    /// records of aborted transactions (control batches are always left out). The fetch's
    /// [`next_offset`](Fetch::next_offset) moves past skipped batches, so a reader never
    /// stalls on them; at the last stable offset the fetch is empty until the transaction
    /// ends.
    ///
    /// # Errors
    /// As [`Partition::read`]; [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange)
    /// past the log end offset.
    pub fn read_committed(&self, offset: u64, max_bytes: usize) -> Result<Fetch> {
        self.read_isolated(offset, max_bytes, false, Vec::new())
    }

    /// A read-committed read (durable only with `durable`) into `buf`'s allocation.
    pub(super) fn read_isolated(
        &self,
        offset: u64,
        max_bytes: usize,
        durable: bool,
        buf: Vec<u8>,
    ) -> Result<Fetch> {
        self.ensure_txn_state()?;
        let end: fn(&Partition) -> u64 = if durable {
            |p| p.published_lso().min(p.durable_offset())
        } else {
            Partition::published_lso
        };
        let mut fetch = self.read_below(offset, max_bytes, end, buf)?;
        let upper = fetch.next_offset();
        fetch.aborted = Some(if fetch.is_empty() {
            Vec::new()
        } else {
            self.aborted_in(offset, upper)?
        });
        Ok(fetch)
    }

    /// The aborted transactions a read-committed fetch of `[from, upper)` must skip:
    /// Kafka's `collectAbortedTransactions`, from the segment holding `from` on, until a
    /// segment's index says no later one can matter.
    pub(super) fn aborted_in(&self, from: u64, upper: u64) -> Result<Vec<AbortedTxn>> {
        let segs = self.inner.segments.read().clone();
        let first = Self::segment_index(&segs, from);
        let mut out = Vec::new();
        collect_aborted(&segs[first..], from, upper, &mut out)?;
        Ok(out)
    }
}

/// Adds the entries of `segs`' `.txnindex` files that overlap `[from, upper)`, until one
/// says no later segment can matter (Kafka's `collectAbortedTransactions`).
pub(super) fn collect_aborted(
    segs: &[std::sync::Arc<crate::segment::Segment>],
    from: u64,
    upper: u64,
    out: &mut Vec<AbortedTxn>,
) -> Result<()> {
    for seg in segs {
        if seg.collect_aborted(from, upper, out)? {
            break;
        }
    }
    Ok(())
}

/// The control type of the control batch `bytes` (uncompressed: Kafka never compresses
/// them). `None` for an empty or unknown one, and for one whose record does not parse
/// (the batch is already checked and written: like Kafka's producer state, the tracker
/// then takes it for a control batch of another kind, which changes nothing).
fn control_type(bytes: &[u8]) -> Option<ControlType> {
    let batch = Batch::parse_unchecked(bytes).ok()?;
    match ControlRecord::of_batch(&batch) {
        Ok(c) => c.map(|c| c.control_type),
        Err(e) => {
            tracing::warn!(
                base_offset = batch.base_offset(),
                error = %e,
                "a control batch whose record does not parse: not a transaction marker"
            );
            None
        }
    }
}
