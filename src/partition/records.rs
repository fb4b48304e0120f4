//! [`Partition::records_from`]: the read loop (read a chunk, hand out its records, read on
//! from where it ended) as an iterator of owned records.

use std::collections::VecDeque;

use crate::consumer::{ConsumerRecord, Isolation};
use crate::error::Result;
use crate::record::Batch;

use super::{Fetch, Partition};

/// How many bytes of batches [`Records`] reads at a time unless told otherwise
/// ([`Records::fetch_bytes`]).
const DEFAULT_FETCH_BYTES: usize = 1 << 20;

/// An iterator over a partition's records from an offset on, each an owned
/// [`ConsumerRecord`]: made by [`Partition::records_from`], which documents what it yields.
///
/// It owns a handle to the partition, so it is `'static` and `Send`: it can be moved to
/// another thread or kept between calls.
#[must_use = "an iterator does nothing unless it is iterated"]
pub struct Records {
    part: Partition,
    /// The next offset to read: one past the last record handed out, or past the batches
    /// (and gaps) already read through when none of theirs is left to hand out.
    next: u64,
    fetch_bytes: usize,
    durable: bool,
    isolation: Isolation,
    /// The fetch being handed out, if any.
    chunk: Option<Chunk>,
    /// The records of the current batch not yet handed out, in offset order.
    ready: VecDeque<ConsumerRecord>,
    /// One past the current batch's last offset (where `next` goes once `ready` is empty).
    batch_end: u64,
    /// The buffer of the last fetch, for the next read.
    spare: Vec<u8>,
    /// An error was handed out: the iterator has ended for good.
    failed: bool,
}

/// Not derived: the buffers would print every byte.
impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("partition", &self.part.name())
            .field("position", &self.next)
            .field("fetch_bytes", &self.fetch_bytes)
            .field("durable", &self.durable)
            .field("isolation", &self.isolation)
            .field("ready", &self.ready.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// A fetch and how far its batches have been handed out.
struct Chunk {
    fetch: Fetch,
    /// Per batch, whether a reader gets its records (no control batch; for a
    /// read-committed fetch, no aborted batch): worked out once per fetch, since the
    /// read-committed rule depends on the batches before.
    visible: Vec<bool>,
    /// The number of batches done, and the byte position of the next in the fetch.
    done: usize,
    pos: usize,
}

impl Partition {
    /// The records from `offset` on, read in chunks of [`Records::fetch_bytes`] (1 MiB by
    /// default) into one reused buffer; each record is an owned [`ConsumerRecord`]. The
    /// iterator owns a clone of this handle: it is `'static` and `Send`.
    ///
    /// It yields:
    /// - the records from the first at or after `offset` (records below `offset` in the
    ///   batch that holds it are skipped), in offset order, stepping over the gaps
    ///   compaction leaves and over transaction markers (control batches), as
    ///   [`Fetch::records`] does;
    /// - up to the log end offset *as it is when it gets there*: records appended while
    ///   iterating are yielded too. It never blocks: at the log end, `next()` returns
    ///   `None`. The iterator is **not fused**: a later `next()` yields the records
    ///   appended since (so it can be polled), and [`Records::position`] says where it is.
    ///
    /// Errors are yielded by `next()`, never at this call:
    /// - `offset` below the log start offset or past the log end offset: the first
    ///   `next()` gives [`Error::OffsetOutOfRange`] (Kafka's answer; nothing is skipped
    ///   silently). `offset` equal to the log end offset yields nothing (yet).
    /// - Retention deleting (or truncation cutting off) the records not read yet: the
    ///   next read gives [`Error::OffsetOutOfRange`]. Records already read into the
    ///   iterator's buffer are still yielded first.
    /// - Any error ([`Error::OffsetOutOfRange`], [`Error::Corrupt`], I/O) ends the
    ///   iterator: it is yielded once, and every later `next()` returns `None` (so
    ///   `filter_map(Result::ok)` cannot spin on it). [`Records::position`] still tells
    ///   where it stopped: `records_from(position)` retries from there.
    ///
    /// [`Records::read_committed`] and [`Records::durable_only`] narrow what it yields.
    ///
    /// [`Error::OffsetOutOfRange`]: crate::Error::OffsetOutOfRange
    /// [`Error::Corrupt`]: crate::Error::Corrupt
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = seglog::Store::open(dir.path())?;
    /// # let topic = store.create_topic("t", seglog::TopicConfig::default())?;
    /// use seglog::RecordRef;
    ///
    /// let p = topic.partition(0).unwrap();
    /// p.append(&[RecordRef::new(b"a"), RecordRef::new(b"b")])?;
    /// p.append(&[RecordRef::new(b"c")])?;
    ///
    /// let mut records = p.records_from(1);
    /// let values: Vec<Vec<u8>> = records
    ///     .by_ref()
    ///     .map(|r| r.map(|r| r.value.unwrap()))
    ///     .collect::<seglog::Result<_>>()?;
    /// assert_eq!(values, [b"b".to_vec(), b"c".to_vec()]);
    /// assert_eq!(records.position(), 3);
    ///
    /// // Not fused: records appended since are yielded by the same iterator.
    /// p.append(&[RecordRef::new(b"d")])?;
    /// assert_eq!(records.next().transpose()?.map(|r| r.offset), Some(3));
    /// assert!(records.next().is_none());
    ///
    /// // Outside the log: an error, from the first `next()`.
    /// assert!(matches!(
    ///     p.records_from(5).next(),
    ///     Some(Err(seglog::Error::OffsetOutOfRange { .. }))
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn records_from(&self, offset: u64) -> Records {
        Records {
            part: self.clone(),
            next: offset,
            fetch_bytes: DEFAULT_FETCH_BYTES,
            durable: false,
            isolation: Isolation::ReadUncommitted,
            chunk: None,
            ready: VecDeque::new(),
            batch_end: offset,
            spare: Vec::new(),
            failed: false,
        }
    }
}

impl Records {
    /// Reads up to `n` bytes of batches at a time (default 1 MiB), but always at least one
    /// batch, however large: a larger `n` means fewer reads, a smaller one less memory.
    pub fn fetch_bytes(mut self, n: usize) -> Self {
        self.fetch_bytes = n;
        self
    }

    /// Yields only committed records, as [`Partition::read_committed`] reads them (Kafka's
    /// `read_committed`): it stops at the last stable offset (the first offset of the
    /// first transaction still open) instead of the log end offset, and leaves out the
    /// records of aborted transactions.
    pub fn read_committed(mut self) -> Self {
        self.isolation = Isolation::ReadCommitted;
        self
    }

    /// Yields only durable records, as [`Partition::read_durable`] reads them: it stops at
    /// the [`Partition::durable_offset`] (as it is when it gets there) instead of the log
    /// end offset.
    pub fn durable_only(mut self) -> Self {
        self.durable = true;
        self
    }

    /// The next offset it will read: one past the last record yielded, or past the gaps,
    /// markers and aborted records stepped over since (the offset it was made with, before
    /// anything was read). `records_from(position())` resumes where this one is.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Hands out the next ready record, moving `next` past it (and past the rest of its
    /// batch once it is the last).
    fn pop_ready(&mut self) -> Option<ConsumerRecord> {
        let r = self.ready.pop_front()?;
        self.next = r.offset + 1;
        if self.ready.is_empty() {
            self.next = self.next.max(self.batch_end);
        }
        Some(r)
    }

    /// Moves the current fetch's next batch into `ready` (its visible records at or past
    /// `next`); false when the fetch has no batch left.
    fn take_batch(&mut self) -> bool {
        let Some(chunk) = &mut self.chunk else {
            return false;
        };
        let fetch = chunk.fetch.as_borrowed();
        // Every batch was checked when read.
        let Ok(b) = Batch::parse_unchecked(&fetch.as_bytes()[chunk.pos..]) else {
            return false;
        };
        chunk.pos += b.as_bytes().len();
        let visible = chunk.visible.get(chunk.done).copied().unwrap_or(false);
        chunk.done += 1;
        let end = b.last_offset() + 1;
        if visible && end > self.next {
            let mut it = fetch.records_of(&b);
            it.skip_below(self.next);
            let (topic, number) = (self.part.topic_shared(), self.part.number());
            while let Some(r) = it.next_valid() {
                if r.offset() >= self.next {
                    self.ready
                        .push_back(ConsumerRecord::from_view(topic, number, &r));
                }
            }
        }
        if self.ready.is_empty() {
            self.next = self.next.max(end);
        } else {
            self.batch_end = end;
        }
        true
    }

    /// Reads the next chunk from `next`: false at the end of what is visible.
    fn read_chunk(&mut self) -> Result<bool> {
        let fetch = self.part.read_reusing(
            self.next,
            self.fetch_bytes,
            self.durable,
            self.isolation,
            std::mem::take(&mut self.spare),
        )?;
        if fetch.is_empty() {
            // A fetch of a gap up to the end moves past it; otherwise this is the end.
            let moved = fetch.next_offset() > self.next;
            self.next = self.next.max(fetch.next_offset());
            self.spare = fetch.into_buffer();
            return Ok(moved);
        }
        let visible = fetch
            .as_borrowed()
            .batches_with_visibility()
            .map(|(_, v)| v)
            .collect();
        self.chunk = Some(Chunk {
            fetch,
            visible,
            done: 0,
            pos: 0,
        });
        Ok(true)
    }
}

impl Iterator for Records {
    type Item = Result<ConsumerRecord>;

    fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(r) = self.pop_ready() {
                return Some(Ok(r));
            }
            if self.take_batch() {
                continue;
            }
            // The fetch is done: on past it (the batches and gaps it covered).
            if let Some(chunk) = self.chunk.take() {
                self.next = self.next.max(chunk.fetch.next_offset());
                self.spare = chunk.fetch.into_buffer();
            }
            match self.read_chunk() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
