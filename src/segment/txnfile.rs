//! A segment's `.txnindex` file (FORMAT.md §13): the aborted transactions whose ABORT
//! marker lies in the segment. As Kafka's `TransactionIndex`, the file is created by its
//! first entry (a segment without aborted transactions has none), appended to, cut by a
//! truncation, deleted with the segment and rebuilt when the segment is recovered.
//!
//! The entries are read into memory on first use (34 bytes per aborted transaction) and no
//! descriptor stays open: an append opens, writes and closes the file, so `.txnindex`
//! files never count against the store's open-file cap. A flush after an append syncs it.

use std::io::Write;
use std::sync::atomic::Ordering;

use super::txnindex::{AbortedTxn, TxnIndex};
use super::{txn_index_path, Segment};
use crate::error::{Error, Result};
use crate::record::{BatchHeader, ControlRecord, ControlType};

impl Segment {
    /// The `.txnindex` path.
    pub fn txn_index_path(&self) -> std::path::PathBuf {
        txn_index_path(self.dir(), self.base_offset)
    }

    /// Calls `f` with the in-memory index, reading the file first if needed (a missing
    /// file is an empty index).
    fn with_txn_index<R>(&self, f: impl FnOnce(&mut TxnIndex) -> R) -> Result<R> {
        let mut slot = self.txn_index.lock();
        if slot.is_none() {
            let path = self.txn_index_path();
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            let index = TxnIndex::parse(self.base_offset, &bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                position: e.position() as u64,
                reason: e.to_string(),
            })?;
            *slot = Some(index);
        }
        // Set just above.
        Ok(f(slot.as_mut().expect("loaded")))
    }

    /// The aborted transactions of this segment's `.txnindex`, in file order.
    ///
    /// # Errors
    /// I/O errors reading the file; [`Error::Corrupt`] when it is not a valid `.txnindex`
    /// for this segment (a partial entry, a bad version, entries out of order).
    pub fn aborted_txns(&self) -> Result<Vec<AbortedTxn>> {
        self.with_txn_index(|i| i.entries().to_vec())
    }

    /// Kafka's `LogSegment.collectAbortedTxns`: see
    /// [`TxnIndex::collect_aborted`]. Returns true when later segments need not be searched.
    pub(crate) fn collect_aborted(
        &self,
        fetch_offset: u64,
        upper_bound: u64,
        out: &mut Vec<AbortedTxn>,
    ) -> Result<bool> {
        self.with_txn_index(|i| i.collect_aborted(fetch_offset, upper_bound, out))
    }

    /// Appends an entry (Kafka's `LogSegment.updateTxnIndex`), creating the file with its
    /// first entry. Returns true when the file was created (its directory then needs an
    /// fsync for the file to be durable).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the entry does not follow the last one; I/O errors.
    pub(crate) fn append_aborted(&self, txn: AbortedTxn) -> Result<bool> {
        let path = self.txn_index_path();
        let bytes = self
            .with_txn_index(|i| i.push(txn))?
            .map_err(|e| Error::Corrupt {
                path: path.clone(),
                position: e.position() as u64,
                reason: e.to_string(),
            })?;
        let created = !path.exists();
        let written = crate::fs::nofollow()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| crate::fs::nofollow_error("open", &path, e))
            .and_then(|mut f| {
                crate::fs::inject(crate::fs::FaultOp::Write)
                    .and_then(|()| f.write_all(&bytes))
                    .map_err(|e| Error::io("write", &path, e))
            });
        if let Err(e) = written {
            // The file's content is unknown now: read it again next time.
            *self.txn_index.lock() = None;
            return Err(e);
        }
        if created {
            crate::fs::record(|| crate::fs::FsEvent::Create(path.clone()));
        }
        self.txn_sync_pending.store(true, Ordering::Release);
        Ok(created)
    }

    /// Drops the entries whose ABORT marker is at or past `offset` (Kafka's
    /// `TransactionIndex.truncateTo`), cutting the file.
    pub(crate) fn truncate_txn_index(&self, offset: u64) -> Result<()> {
        let path = self.txn_index_path();
        let (before, after) = self.with_txn_index(|i| {
            let before = i.entries().len() * super::txnindex::ABORTED_TXN_SIZE;
            (before, i.truncate_to(offset))
        })?;
        if after < before {
            let f = crate::fs::open(&path, true)?;
            f.set_len(after as u64)
                .map_err(|e| Error::io("truncate", &path, e))?;
            crate::fs::sync_file(&f, &path)?;
        }
        Ok(())
    }

    /// Makes the `.txnindex` file match `entries` (a recovery's rebuild): rewritten
    /// atomically when its bytes differ; no file is created for an empty index (an existing
    /// one is emptied, as Kafka's `reset` does). Returns true when the file changed.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn replace_txn_index(&self, entries: &[AbortedTxn]) -> Result<bool> {
        let path = self.txn_index_path();
        let mut index = TxnIndex::new(self.base_offset);
        for e in entries {
            index.push(*e).map_err(|e| Error::Corrupt {
                path: path.clone(),
                position: e.position() as u64,
                reason: format!("rebuilt entries: {e}"),
            })?;
        }
        let wanted = index.to_bytes();
        let found = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let changed = match &found {
            None => !wanted.is_empty(),
            Some(b) => *b != wanted,
        };
        if changed {
            tracing::info!(
                file = %path.display(),
                entries = entries.len(),
                "rebuilding the transaction index from the log"
            );
            crate::fs::write_atomic(&path, &wanted)?;
        }
        *self.txn_index.lock() = Some(index);
        Ok(changed)
    }

    /// Syncs the `.txnindex` when an append wrote it since the last sync.
    pub(super) fn sync_txn_index(&self) -> Result<()> {
        if self.txn_sync_pending.swap(false, Ordering::AcqRel) {
            let synced = crate::fs::sync_path(&self.txn_index_path());
            if synced.is_err() {
                self.txn_sync_pending.store(true, Ordering::Release);
            }
            synced?;
        }
        Ok(())
    }

    /// Calls `f` with the header of every batch below `end` (an offset) in file order, and
    /// for control batches their control type (read from the batch's first record; `None`
    /// for an empty control batch). Reads headers, plus the records of control batches
    /// only: data batches are never decoded (they may be compressed). A compressed control
    /// batch (Kafka never writes one) is an error.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a bad header or control batch; I/O errors.
    pub(crate) fn txn_headers(
        &self,
        end: u64,
        mut f: impl FnMut(&BatchHeader, Option<ControlType>),
    ) -> Result<()> {
        let _pin = self.pin();
        let log = self.log()?;
        let size = self.size();
        let path = self.log.path();
        let mut failed = None;
        let control_type = |pos: u64, h: &BatchHeader| -> Result<Option<ControlType>> {
            if h.compression() != 0 {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    position: pos,
                    reason: "control batch is compressed (Kafka never compresses them)".into(),
                });
            }
            let raw = log.view(pos, pos + h.size() as u64)?;
            let batch =
                crate::record::Batch::parse(&raw).map_err(|e| Error::corrupt(path, pos, e))?;
            Ok(ControlRecord::of_batch(&batch)
                .map_err(|e| Error::Corrupt {
                    path: path.to_path_buf(),
                    position: pos,
                    reason: e.to_string(),
                })?
                .map(|r| r.control_type))
        };
        let scan = log.scan_headers(0, size, |pos, h| {
            if h.base_offset as u64 >= end {
                return false;
            }
            let control = if h.is_control() {
                match control_type(pos, h) {
                    Ok(c) => c,
                    Err(e) => {
                        failed = Some(e);
                        return false;
                    }
                }
            } else {
                None
            };
            f(h, control);
            true
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if let Err((pos, e)) = scan {
            return Err(Error::corrupt(path, pos, e));
        }
        Ok(())
    }
}
