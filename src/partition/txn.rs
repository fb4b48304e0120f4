//! Transactions over a partition's batches, as pure state machines (no I/O):
//!
//! - [`TxnTracker`]: fed every batch in offset order, it knows each producer's ongoing
//!   transaction, the last stable offset, and emits the [`AbortedTxn`] entry of each ABORT
//!   marker, as Kafka's `ProducerStateManager` and `LogSegment.updateProducerState` do.
//! - [`ReadCommitted`]: given the aborted transactions overlapping a fetch, says which
//!   batches a read-committed consumer returns, as Kafka's consumer (`CompletedFetch`) does.
//!
//! A transaction starts at its producer's first transactional data batch and ends at the
//! producer's COMMIT or ABORT control batch. A marker for a producer with no ongoing
//! transaction (an empty transaction) completes nothing.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

pub use crate::record::ControlType;
use crate::record::{Batch, BatchHeader, ControlError, ControlRecord};
pub use crate::segment::txnindex::AbortedTxn;

/// The control type a tracker or filter needs for `batch`: the type of a control batch's
/// first record, `None` for data batches and for control batches emptied by compaction.
///
/// # Errors
/// [`ControlError`] when the control record cannot be read.
pub fn batch_control_type(batch: &Batch<'_>) -> Result<Option<ControlType>, ControlError> {
    Ok(ControlRecord::of_batch(batch)?.map(|r| r.control_type))
}

/// A transaction ended by a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: u64,
    /// Offset of the marker.
    pub last_offset: u64,
    /// True for ABORT, false for COMMIT.
    pub aborted: bool,
    /// The last stable offset right after the marker (Kafka's
    /// `ProducerStateManager.lastStableOffset(completedTxn)`): the first offset of the
    /// earliest transaction of another producer still ongoing, or `last_offset + 1`.
    pub last_stable_offset: u64,
}

impl CompletedTxn {
    /// The `.txnindex` entry of an aborted transaction; `None` for a commit.
    pub fn aborted_txn(&self) -> Option<AbortedTxn> {
        self.aborted.then_some(AbortedTxn {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            last_stable_offset: self.last_stable_offset,
        })
    }
}

/// Why a batch breaks the transaction rules a broker enforces on a producer's appends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnStateError {
    /// Kafka's `InvalidTxnStateException`: a non-transactional data batch from a producer
    /// whose transaction is ongoing.
    #[error("non-transactional batch at offset {offset} from producer {producer_id}, whose transaction starting at offset {txn_first_offset} is ongoing")]
    NonTransactionalInTxn {
        /// The batch's base offset.
        offset: u64,
        /// The producer.
        producer_id: i64,
        /// Where its ongoing transaction starts.
        txn_first_offset: u64,
    },
}

/// Each producer's ongoing transaction, fed batches in offset order.
///
/// Rules (Kafka's `ProducerAppendInfo`): only batches with a producer id (`>= 0`) count; a
/// transactional data batch starts its producer's transaction unless one is ongoing; a
/// control batch whose first record is COMMIT or ABORT completes the producer's ongoing
/// transaction; other control batches (unknown types, empty ones) and non-transactional
/// data change nothing.
#[derive(Debug, Clone, Default)]
pub struct TxnTracker {
    /// producer id -> first offset of its ongoing transaction.
    by_producer: HashMap<i64, u64>,
    /// first offset -> producer id; the same transactions, in offset order.
    by_offset: BTreeMap<u64, i64>,
}

impl TxnTracker {
    /// A tracker with no ongoing transaction (the state before a partition's first batch).
    pub fn new() -> TxnTracker {
        TxnTracker::default()
    }

    /// Checks `header` against the rules a broker enforces on producer appends, without
    /// changing state.
    ///
    /// # Errors
    /// [`TxnStateError::NonTransactionalInTxn`].
    pub fn check(&self, header: &BatchHeader) -> Result<(), TxnStateError> {
        if header.producer_id < 0 || header.is_control() || header.is_transactional() {
            return Ok(());
        }
        match self.by_producer.get(&header.producer_id) {
            Some(&first) => Err(TxnStateError::NonTransactionalInTxn {
                offset: header.base_offset as u64,
                producer_id: header.producer_id,
                txn_first_offset: first,
            }),
            None => Ok(()),
        }
    }

    /// Feeds the next batch: its header and, for a control batch, its control type
    /// ([`batch_control_type`]). Returns the transaction a COMMIT or ABORT marker completed.
    pub fn observe(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlType>,
    ) -> Option<CompletedTxn> {
        let pid = header.producer_id;
        if pid < 0 {
            return None;
        }
        let base = header.base_offset as u64;
        if !header.is_control() {
            if header.is_transactional() && !self.by_producer.contains_key(&pid) {
                self.by_producer.insert(pid, base);
                self.by_offset.insert(base, pid);
            }
            return None;
        }
        let aborted = match control? {
            ControlType::Abort => true,
            ControlType::Commit => false,
            ControlType::Unknown(_) => return None,
        };
        let first_offset = self.by_producer.remove(&pid)?;
        self.by_offset.remove(&first_offset);
        // The earliest ongoing transaction, now that this producer's is no longer ongoing.
        let last_stable_offset = self.first_unstable_offset().unwrap_or(base + 1);
        Some(CompletedTxn {
            producer_id: pid,
            first_offset,
            last_offset: base,
            aborted,
            last_stable_offset,
        })
    }

    /// Feeds the next batch, reading the control type of a control batch itself.
    ///
    /// # Errors
    /// [`ControlError`] when a control batch's record cannot be read; the state is unchanged.
    pub fn observe_batch(
        &mut self,
        batch: &Batch<'_>,
    ) -> Result<Option<CompletedTxn>, ControlError> {
        let control = batch_control_type(batch)?;
        Ok(self.observe(batch.header(), control))
    }

    /// The first offset of the earliest ongoing transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.by_offset.keys().next().copied()
    }

    /// The last stable offset: the first offset of the earliest ongoing transaction, or
    /// `log_end` when none is ongoing. A read-committed reader reads below it only. (Kafka
    /// also caps it at the high watermark; without replication that is the log end.)
    pub fn last_stable_offset(&self, log_end: u64) -> u64 {
        self.first_unstable_offset()
            .map_or(log_end, |f| f.min(log_end))
    }

    /// The first offset of `producer_id`'s ongoing transaction.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<u64> {
        self.by_producer.get(&producer_id).copied()
    }

    /// Every ongoing transaction as `(first_offset, producer_id)`, in offset order.
    pub fn ongoing(&self) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.by_offset.iter().map(|(&o, &p)| (o, p))
    }
}

/// Runs a [`TxnTracker`] over `batches` (in offset order) and returns the `.txnindex`
/// entries their ABORT markers produce, in marker order.
pub fn aborted_txns<I>(batches: I) -> Vec<AbortedTxn>
where
    I: IntoIterator<Item = (BatchHeader, Option<ControlType>)>,
{
    let mut tracker = TxnTracker::new();
    batches
        .into_iter()
        .filter_map(|(h, c)| tracker.observe(&h, c)?.aborted_txn())
        .collect()
}

/// The entries of `aborted` that overlap the fetch range `[fetch_offset, upper_bound)`:
/// what a broker sends with a read-committed fetch.
pub fn aborted_in_range(
    aborted: &[AbortedTxn],
    fetch_offset: u64,
    upper_bound: u64,
) -> Vec<AbortedTxn> {
    aborted
        .iter()
        .filter(|a| a.overlaps(fetch_offset, upper_bound))
        .copied()
        .collect()
}

/// Kafka's read-committed consumer filter, fed the batches of a fetch in offset order.
///
/// Built from the aborted transactions overlapping the fetch. Before each batch with a
/// producer id, every aborted transaction starting at or before the batch's last offset
/// marks its producer aborted; an ABORT marker clears its producer; a transactional batch
/// of an aborted producer is skipped. Control batches are never returned. Batches at or
/// past the last stable offset must not be fed (a read-committed fetch stops there).
#[derive(Debug, Clone)]
pub struct ReadCommitted {
    /// Aborted transactions not yet reached, earliest first offset on top.
    pending: BinaryHeap<std::cmp::Reverse<(u64, i64)>>,
    /// Producers inside an aborted transaction.
    aborted_producers: HashSet<i64>,
}

impl ReadCommitted {
    /// A filter for a fetch whose overlapping aborted transactions are `aborted` (any
    /// order; see [`aborted_in_range`] and
    /// [`TxnIndex::collect_aborted`](crate::segment::txnindex::TxnIndex::collect_aborted)).
    pub fn new(aborted: impl IntoIterator<Item = AbortedTxn>) -> ReadCommitted {
        ReadCommitted {
            pending: aborted
                .into_iter()
                .map(|a| std::cmp::Reverse((a.first_offset, a.producer_id)))
                .collect(),
            aborted_producers: HashSet::new(),
        }
    }

    /// Whether a read-committed reader returns this batch's records. `control` is the
    /// batch's control type ([`batch_control_type`]), `None` for data batches.
    pub fn accept(&mut self, header: &BatchHeader, control: Option<ControlType>) -> bool {
        let pid = header.producer_id;
        if pid >= 0 {
            let last = header.last_offset();
            while let Some(&std::cmp::Reverse((first, p))) = self.pending.peek() {
                if first > last {
                    break;
                }
                self.pending.pop();
                self.aborted_producers.insert(p);
            }
            if header.is_control() && control == Some(ControlType::Abort) {
                self.aborted_producers.remove(&pid);
            } else if header.is_transactional() && self.aborted_producers.contains(&pid) {
                return false;
            }
        }
        !header.is_control()
    }
}

/// For each of `batches` (a fetch, in offset order, below the last stable offset), whether
/// a read-committed reader returns it, given the aborted transactions overlapping the fetch.
pub fn read_committed<I>(batches: I, aborted: &[AbortedTxn]) -> Vec<bool>
where
    I: IntoIterator<Item = (BatchHeader, Option<ControlType>)>,
{
    let mut filter = ReadCommitted::new(aborted.iter().copied());
    batches
        .into_iter()
        .map(|(h, c)| filter.accept(&h, c))
        .collect()
}
