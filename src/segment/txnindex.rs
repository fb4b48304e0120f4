//! Kafka's transaction index, `<base>.txnindex`: the aborted transactions whose ABORT
//! marker lies in the segment, in marker order, so that a read-committed fetch can learn
//! which producers' data to skip without scanning the log.
//!
//! The file is a plain sequence of 34-byte entries (Kafka's `AbortedTxn`), big-endian, with
//! no header and no preallocation:
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 2 | `version` (int16, 0) |
//! | 2 | 8 | `producerId` (int64) |
//! | 10 | 8 | `firstOffset` (int64): the transaction's first offset |
//! | 18 | 8 | `lastOffset` (int64): the ABORT marker's offset |
//! | 26 | 8 | `lastStableOffset` (int64): the partition's LSO once the abort completed |
//!
//! Kafka appends entries with strictly increasing `lastOffset` and cuts the file at the first
//! entry whose `lastOffset` is at or past a truncation offset. This module is the codec and
//! an in-memory list; it does no I/O.

/// Size of one entry.
pub const ABORTED_TXN_SIZE: usize = 34;
/// Offset of `version` (int16).
pub const VERSION_OFFSET: usize = 0;
/// Offset of `producerId` (int64).
pub const PRODUCER_ID_OFFSET: usize = VERSION_OFFSET + 2;
/// Offset of `firstOffset` (int64).
pub const FIRST_OFFSET_OFFSET: usize = PRODUCER_ID_OFFSET + 8;
/// Offset of `lastOffset` (int64).
pub const LAST_OFFSET_OFFSET: usize = FIRST_OFFSET_OFFSET + 8;
/// Offset of `lastStableOffset` (int64).
pub const LAST_STABLE_OFFSET_OFFSET: usize = LAST_OFFSET_OFFSET + 8;
/// The only entry version Kafka writes.
pub const ABORTED_TXN_VERSION: i16 = 0;
/// File name suffix.
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The transactional producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: u64,
    /// Offset of the ABORT marker.
    pub last_offset: u64,
    /// The partition's last stable offset right after the abort: the first offset of the
    /// earliest transaction of another producer still open then, or `last_offset + 1`.
    pub last_stable_offset: u64,
}

/// Why bytes are not a valid `.txnindex`. Positions are byte offsets into the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnIndexError {
    /// The size is not a whole number of 34-byte entries.
    #[error(
        "partial aborted-transaction entry at byte {position}: {len} bytes is not a multiple of 34"
    )]
    PartialEntry {
        /// Where the partial entry starts (the valid prefix ends here).
        position: usize,
        /// The size of the input.
        len: usize,
    },
    /// An entry version other than 0.
    #[error(
        "unsupported aborted-transaction version {version} at byte {position} (only 0 is known)"
    )]
    BadVersion {
        /// Where the entry starts.
        position: usize,
        /// The version found.
        version: i16,
    },
    /// An offset that is negative, or a first offset past the last.
    #[error("bad {field} {value} in aborted-transaction entry at byte {position}")]
    BadField {
        /// The field, as Kafka spells it.
        field: &'static str,
        /// Where the entry starts.
        position: usize,
        /// The value found.
        value: i64,
    },
    /// An entry whose `lastOffset` does not exceed the previous entry's (Kafka appends them
    /// in strictly increasing order).
    #[error("aborted-transaction entry at byte {position}: last offset {last_offset} does not follow {previous}")]
    OutOfOrder {
        /// Where the entry starts.
        position: usize,
        /// Its last offset.
        last_offset: u64,
        /// The previous entry's last offset.
        previous: u64,
    },
    /// An entry whose `lastOffset` lies before the segment's base offset (Kafka's
    /// `TransactionIndex.sanityCheck`).
    #[error("aborted-transaction entry at byte {position}: last offset {last_offset} is below the segment base offset {base_offset}")]
    BeforeBase {
        /// Where the entry starts.
        position: usize,
        /// Its last offset.
        last_offset: u64,
        /// The segment's base offset.
        base_offset: u64,
    },
}

impl TxnIndexError {
    /// The byte position in the file the error refers to.
    pub fn position(&self) -> usize {
        match *self {
            TxnIndexError::PartialEntry { position, .. }
            | TxnIndexError::BadVersion { position, .. }
            | TxnIndexError::BadField { position, .. }
            | TxnIndexError::OutOfOrder { position, .. }
            | TxnIndexError::BeforeBase { position, .. } => position,
        }
    }
}

fn be_i64(entry: &[u8; ABORTED_TXN_SIZE], at: usize) -> i64 {
    let mut b = [0; 8];
    b.copy_from_slice(&entry[at..at + 8]);
    i64::from_be_bytes(b)
}

impl AbortedTxn {
    /// The 34-byte entry, version 0.
    pub fn encode(&self) -> [u8; ABORTED_TXN_SIZE] {
        let mut e = [0; ABORTED_TXN_SIZE];
        e[VERSION_OFFSET..VERSION_OFFSET + 2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        e[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8]
            .copy_from_slice(&self.producer_id.to_be_bytes());
        for (at, v) in [
            (FIRST_OFFSET_OFFSET, self.first_offset),
            (LAST_OFFSET_OFFSET, self.last_offset),
            (LAST_STABLE_OFFSET_OFFSET, self.last_stable_offset),
        ] {
            e[at..at + 8].copy_from_slice(&v.to_be_bytes());
        }
        e
    }

    /// Decodes one entry; `position` (where it starts in the file) goes into errors.
    ///
    /// # Errors
    /// [`TxnIndexError::BadVersion`] for a version other than 0, and
    /// [`TxnIndexError::BadField`] for negative offsets or `firstOffset > lastOffset`.
    pub fn decode(
        entry: &[u8; ABORTED_TXN_SIZE],
        position: usize,
    ) -> Result<AbortedTxn, TxnIndexError> {
        let version = i16::from_be_bytes([entry[VERSION_OFFSET], entry[VERSION_OFFSET + 1]]);
        if version != ABORTED_TXN_VERSION {
            return Err(TxnIndexError::BadVersion { position, version });
        }
        let offset = |field, at| {
            let value = be_i64(entry, at);
            u64::try_from(value).map_err(|_| TxnIndexError::BadField {
                field,
                position,
                value,
            })
        };
        let txn = AbortedTxn {
            producer_id: be_i64(entry, PRODUCER_ID_OFFSET),
            first_offset: offset("firstOffset", FIRST_OFFSET_OFFSET)?,
            last_offset: offset("lastOffset", LAST_OFFSET_OFFSET)?,
            last_stable_offset: offset("lastStableOffset", LAST_STABLE_OFFSET_OFFSET)?,
        };
        if txn.first_offset > txn.last_offset {
            return Err(TxnIndexError::BadField {
                field: "firstOffset",
                position,
                value: txn.first_offset as i64,
            });
        }
        Ok(txn)
    }

    /// True when this transaction has records in `[fetch_offset, upper_bound)` (Kafka's
    /// `collectAbortedTxns` test: `lastOffset >= fetchOffset && firstOffset < upperBound`).
    pub fn overlaps(&self, fetch_offset: u64, upper_bound: u64) -> bool {
        self.last_offset >= fetch_offset && self.first_offset < upper_bound
    }
}

/// Decodes a whole `.txnindex` file.
///
/// # Errors
/// [`TxnIndexError::PartialEntry`] when the size is not a multiple of 34 (Kafka's reader
/// ignores such a tail; here the caller decides, e.g. rebuild the index), and the errors of
/// [`AbortedTxn::decode`] and [`TxnIndexError::OutOfOrder`], each naming the entry's byte
/// position.
pub fn parse_txn_index(bytes: &[u8]) -> Result<Vec<AbortedTxn>, TxnIndexError> {
    let whole = bytes.len() - bytes.len() % ABORTED_TXN_SIZE;
    let mut out = Vec::with_capacity(whole / ABORTED_TXN_SIZE);
    let mut previous: Option<u64> = None;
    for (i, chunk) in bytes[..whole].chunks_exact(ABORTED_TXN_SIZE).enumerate() {
        let position = i * ABORTED_TXN_SIZE;
        let entry: &[u8; ABORTED_TXN_SIZE] = chunk.try_into().expect("chunks_exact");
        let txn = AbortedTxn::decode(entry, position)?;
        if let Some(previous) = previous.filter(|&p| p >= txn.last_offset) {
            return Err(TxnIndexError::OutOfOrder {
                position,
                last_offset: txn.last_offset,
                previous,
            });
        }
        previous = Some(txn.last_offset);
        out.push(txn);
    }
    if whole != bytes.len() {
        return Err(TxnIndexError::PartialEntry {
            position: whole,
            len: bytes.len(),
        });
    }
    Ok(out)
}

/// Encodes entries back to back, as the file holds them.
pub fn encode_txn_index(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ABORTED_TXN_SIZE);
    for e in entries {
        out.extend_from_slice(&e.encode());
    }
    out
}

/// The aborted transactions of one segment, in memory, with Kafka's `TransactionIndex`
/// rules: entries in strictly increasing `lastOffset` order, none below the base offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnIndex {
    base_offset: u64,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// An empty index for the segment at `base_offset`.
    pub fn new(base_offset: u64) -> TxnIndex {
        TxnIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Decodes the `.txnindex` of the segment at `base_offset`.
    ///
    /// # Errors
    /// As [`parse_txn_index`], plus [`TxnIndexError::BeforeBase`] for an entry whose
    /// `lastOffset` is below `base_offset` (Kafka's `sanityCheck`).
    pub fn parse(base_offset: u64, bytes: &[u8]) -> Result<TxnIndex, TxnIndexError> {
        let entries = parse_txn_index(bytes)?;
        if let Some((i, e)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.last_offset < base_offset)
        {
            return Err(TxnIndexError::BeforeBase {
                position: i * ABORTED_TXN_SIZE,
                last_offset: e.last_offset,
                base_offset,
            });
        }
        Ok(TxnIndex {
            base_offset,
            entries,
        })
    }

    /// The segment's base offset.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// True when no transaction aborted in this segment.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_txn_index(&self.entries)
    }

    /// Appends an entry (Kafka's `TransactionIndex.append`); returns the bytes to append
    /// to the file.
    ///
    /// # Errors
    /// [`TxnIndexError::OutOfOrder`] when `txn.last_offset` does not exceed the last entry's,
    /// [`TxnIndexError::BeforeBase`] when it is below the base offset, and
    /// [`TxnIndexError::BadField`] when `first_offset > last_offset`; the index is unchanged.
    /// Positions name where the entry would go.
    pub fn push(&mut self, txn: AbortedTxn) -> Result<[u8; ABORTED_TXN_SIZE], TxnIndexError> {
        let position = self.entries.len() * ABORTED_TXN_SIZE;
        if let Some(last) = self.entries.last() {
            if last.last_offset >= txn.last_offset {
                return Err(TxnIndexError::OutOfOrder {
                    position,
                    last_offset: txn.last_offset,
                    previous: last.last_offset,
                });
            }
        }
        if txn.last_offset < self.base_offset {
            return Err(TxnIndexError::BeforeBase {
                position,
                last_offset: txn.last_offset,
                base_offset: self.base_offset,
            });
        }
        if txn.first_offset > txn.last_offset {
            return Err(TxnIndexError::BadField {
                field: "firstOffset",
                position,
                value: txn.first_offset as i64,
            });
        }
        self.entries.push(txn);
        Ok(txn.encode())
    }

    /// Drops the entries whose ABORT marker is at or past `offset` (Kafka's `truncateTo`);
    /// returns the new file size in bytes.
    pub fn truncate_to(&mut self, offset: u64) -> usize {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        self.entries.truncate(keep);
        keep * ABORTED_TXN_SIZE
    }

    /// Kafka's `collectAbortedTxns(fetchOffset, upperBoundOffset)`: appends to `out` the
    /// entries overlapping `[fetch_offset, upper_bound)`, and returns true when the search
    /// is complete (an entry's `lastStableOffset` reached `upper_bound`, so later segments
    /// cannot hold a transaction overlapping the range); false means the caller continues
    /// with the next segment's index.
    pub fn collect_aborted(
        &self,
        fetch_offset: u64,
        upper_bound: u64,
        out: &mut Vec<AbortedTxn>,
    ) -> bool {
        for e in &self.entries {
            if e.overlaps(fetch_offset, upper_bound) {
                out.push(*e);
            }
            if e.last_stable_offset >= upper_bound {
                return true;
            }
        }
        false
    }
}
