//! What a read returns: whole batches in one buffer, viewed as records without copying.

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::record::{Batch, RecordIter, RecordView};

/// The result of [`Partition::read`](crate::Partition::read): whole, checked batches (CRC
/// and records, the first time the process read them) in one buffer, exactly as stored.
/// Records are borrowed views: into that buffer for uncompressed batches, and into the
/// decompressed records the fetch owns for compressed ones (each compressed batch is
/// decompressed once, when read).
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    pub(crate) buf: Vec<u8>,
    pub(crate) offset: u64,
    pub(crate) next_offset: u64,
    /// The decompressed records sections of the compressed batches, back to back.
    pub(crate) plain: Vec<u8>,
    /// Per compressed batch, in order: its start in `buf` and its section in `plain`.
    pub(crate) sections: Vec<(usize, Range<usize>)>,
    /// A read-committed fetch: the aborted transactions overlapping it, whose batches
    /// [`Fetch::records`] leaves out.
    pub(crate) aborted: Option<Vec<crate::segment::txnindex::AbortedTxn>>,
}

impl Fetch {
    /// A fetch of the batches in `buf` (none yet decompressed).
    pub(crate) fn new(buf: Vec<u8>, offset: u64, next_offset: u64) -> Fetch {
        Fetch {
            buf,
            offset,
            next_offset,
            plain: Vec::new(),
            sections: Vec::new(),
            aborted: None,
        }
    }

    /// Decompresses every compressed batch's records once, for [`Fetch::records`].
    /// `dir` names the partition in errors.
    ///
    /// # Errors
    /// [`Error::CodecDisabled`] when a codec's feature is off, [`Error::Corrupt`] when a
    /// batch does not decompress to its records.
    pub(crate) fn decompress(&mut self, dir: &Path) -> Result<()> {
        decompress_into(
            &self.buf,
            self.offset,
            dir,
            &mut self.plain,
            &mut self.sections,
        )
    }

    /// This fetch, borrowed: what every reading method goes through.
    pub fn as_borrowed(&self) -> FetchRef<'_> {
        FetchRef {
            buf: &self.buf,
            offset: self.offset,
            next_offset: self.next_offset,
            plain: &self.plain,
            sections: &self.sections,
            aborted: self.aborted.as_deref(),
        }
    }

    /// The buffer (as it is: the next read clears it), for reuse by the next read
    /// ([`Partition::read_into`](crate::Partition::read_into)).
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The offset that was asked for.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the next read should start: one past the last batch returned (or
    /// [`Fetch::offset`] when nothing was returned).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The raw batches, exactly as stored: a valid Kafka `.log` byte range.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The batches. The first may start before [`Fetch::offset`] (reads are batch-aligned).
    pub fn batches(&self) -> impl Iterator<Item = Batch<'_>> + '_ {
        self.as_borrowed().batches()
    }

    /// The records at or past [`Fetch::offset`], in offset order (compressed batches'
    /// records included, decompressed). Control batches (transaction markers) hold no
    /// user records and are left out, as Kafka's consumer leaves them out; they are still
    /// in [`Fetch::batches`] and [`Fetch::as_bytes`].
    ///
    /// A read-committed fetch ([`Partition::read_committed`](crate::Partition::read_committed))
    /// also leaves out the batches of aborted transactions, as Kafka's consumer does.
    pub fn records(&self) -> impl Iterator<Item = RecordView<'_>> + '_ {
        self.as_borrowed().records()
    }
}

/// Decompresses the records of every compressed batch in `buf` into `plain` (cleared
/// first), noting per batch its start in `buf` and its section in `plain`. `offset` (the
/// fetch's) and `dir` name the read in errors.
pub(crate) fn decompress_into(
    buf: &[u8],
    offset: u64,
    dir: &Path,
    plain: &mut Vec<u8>,
    sections: &mut Vec<(usize, Range<usize>)>,
) -> Result<()> {
    plain.clear();
    sections.clear();
    let mut rest = buf;
    let mut at = 0;
    while let Ok(b) = Batch::parse_unchecked(rest) {
        let len = b.as_bytes().len();
        if b.header().compression() != 0 {
            let range = b.decompress_append(plain).map_err(|e| {
                let reason = format!(
                    "a batch of the fetch from offset {offset} (base offset {}): {e}",
                    b.base_offset()
                );
                match Error::corrupt(dir, 0, e) {
                    Error::Corrupt { path, .. } => Error::Corrupt {
                        path,
                        position: 0,
                        reason,
                    },
                    other => other,
                }
            })?;
            sections.push((at, range));
        }
        at += len;
        rest = &rest[len..];
    }
    Ok(())
}

/// A fetch borrowed: from a [`Fetch`] ([`Fetch::as_borrowed`]), or straight from the mapped
/// log file by [`Partition::read_in_place`](crate::Partition::read_in_place), without
/// copying the batches. The same methods as [`Fetch`].
#[derive(Debug, Clone, Copy)]
pub struct FetchRef<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) plain: &'a [u8],
    pub(crate) sections: &'a [(usize, Range<usize>)],
    pub(crate) aborted: Option<&'a [crate::segment::txnindex::AbortedTxn]>,
}

impl<'a> FetchRef<'a> {
    /// The offset that was asked for.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the next read should start: one past the last batch returned (or
    /// [`FetchRef::offset`] when nothing was returned).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The raw batches, exactly as stored: a valid Kafka `.log` byte range.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The batches. The first may start before [`FetchRef::offset`] (reads are
    /// batch-aligned).
    pub fn batches(&self) -> impl Iterator<Item = Batch<'a>> + 'a {
        // Every batch was checked (CRC and records) when read: no need to checksum again.
        let mut rest = self.buf;
        std::iter::from_fn(move || {
            let b = Batch::parse_unchecked(rest).ok()?;
            rest = &rest[b.as_bytes().len()..];
            Some(b)
        })
    }

    /// Every batch, each with whether a reader gets its records: no control batch, and
    /// for a read-committed fetch no batch of an aborted transaction (Kafka's consumer
    /// rules: a transactional batch of a producer with an aborted transaction that
    /// started at or before it, until that producer's ABORT marker).
    pub(crate) fn batches_with_visibility(&self) -> impl Iterator<Item = (Batch<'a>, bool)> + 'a {
        let mut filter = self
            .aborted
            .map(|a| crate::txn::ReadCommitted::new(a.iter().copied()));
        self.batches().map(move |b| {
            let visible = match &mut filter {
                None => !b.header().is_control(),
                Some(f) => {
                    // `None` for data batches (their records are not read).
                    let control = crate::txn::batch_control_type(&b).ok().flatten();
                    f.accept(b.header(), control)
                }
            };
            (b, visible)
        })
    }

    /// The records of `b`, a batch of this fetch: from the buffer, or from the
    /// decompressed section when it is compressed.
    pub(crate) fn records_of(&self, b: &Batch<'a>) -> RecordIter<'a> {
        if b.header().compression() == 0 {
            return b.records();
        }
        let start = b.as_bytes().as_ptr() as usize - self.buf.as_ptr() as usize;
        match self.sections.binary_search_by_key(&start, |(s, _)| *s) {
            Ok(i) => b.records_in(&self.plain[self.sections[i].1.clone()]),
            // Not decompressed (cannot happen for a fetch a read made): its records
            // cannot be viewed, and the iterator says so.
            Err(_) => b.records(),
        }
    }

    /// The record at `offset` among the visible ones, if any (a point lookup: the records
    /// before it in its batch are stepped over by their lengths).
    pub(crate) fn record_at(&self, offset: u64) -> Option<RecordView<'a>> {
        for (b, visible) in self.batches_with_visibility() {
            if b.last_offset() < offset || !visible {
                continue;
            }
            if b.base_offset() > offset {
                return None;
            }
            return self.record_in(&b, offset, None);
        }
        None
    }

    /// The record at `offset` in `b`, a visible batch of this fetch holding it, starting
    /// the walk at `hint` (a record's position and index, [`RecordIter::seek`]) if given.
    pub(crate) fn record_in(
        &self,
        b: &Batch<'a>,
        offset: u64,
        hint: Option<(usize, usize)>,
    ) -> Option<RecordView<'a>> {
        let mut it = self.records_of(b);
        if let Some((pos, index)) = hint {
            it.seek(pos, index);
        }
        it.skip_below(offset);
        for r in it {
            match r {
                Ok(r) if r.offset() < offset => continue,
                Ok(r) => return (r.offset() == offset).then_some(r),
                Err(_) => return None,
            }
        }
        None
    }

    /// The records at or past [`FetchRef::offset`], in offset order, as
    /// [`Fetch::records`] gives them. The records of the first batch below the offset are
    /// stepped over by their lengths, not decoded.
    pub fn records(&self) -> impl Iterator<Item = RecordView<'a>> + 'a {
        let this = *self;
        let mut batches = self
            .batches_with_visibility()
            .filter_map(|(b, visible)| visible.then_some(b));
        let mut current: Option<RecordIter<'a>> = None;
        // One loop rather than a chain of adapters: a record is handed over once.
        std::iter::from_fn(move || loop {
            if let Some(r) = current.as_mut().and_then(RecordIter::next_valid) {
                if r.offset() >= this.offset {
                    return Some(r);
                }
                continue;
            }
            let b = batches.next()?;
            let mut it = this.records_of(&b);
            if b.base_offset() < this.offset {
                it.skip_below(this.offset);
            }
            current = Some(it);
        })
    }
}
