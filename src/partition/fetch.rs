//! What a read returns: whole batches in one buffer, viewed as records without copying.

use crate::record::{Batch, RecordView};

/// The result of [`Partition::read`](crate::Partition::read): whole, CRC-checked batches
/// in one buffer. Records are borrowed views into it.
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    pub(crate) buf: Vec<u8>,
    pub(crate) offset: u64,
    pub(crate) next_offset: u64,
}

impl Fetch {
    /// The buffer, for reuse by the next read.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
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
        // Every batch was checked (CRC and records) when read: no need to checksum again.
        let mut rest = &self.buf[..];
        std::iter::from_fn(move || {
            let b = Batch::parse_unchecked(rest).ok()?;
            rest = &rest[b.as_bytes().len()..];
            Some(b)
        })
    }

    /// The records at or past [`Fetch::offset`], in offset order.
    pub fn records(&self) -> impl Iterator<Item = RecordView<'_>> + '_ {
        let from = self.offset;
        self.batches()
            .flat_map(|b| b.records().filter_map(Result::ok))
            .filter(move |r| r.offset() >= from)
    }
}
