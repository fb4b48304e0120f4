//! The `.log` file: concatenated v2 record batches, appended with positioned writes and
//! read with positioned reads, so readers need no lock shared with the writer.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mmap::{LogMap, OpenLog, View};
use crate::record::{Batch, BatchHeader, DecodeError, BATCH_HEADER_SIZE};

/// Bytes viewed at a time while walking batch headers when the file is not mapped.
const SCAN_CHUNK: u64 = 16 * 1024;

/// A `.log` file: appends past the published size, reads below it (see [`LogMap`]). Its
/// descriptor is opened on demand ([`LogFile::open_file`]) and may be closed by the store's
/// file cache; the segment does the bookkeeping (`Segment::log`).
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    data: LogMap,
    /// Reads go through a mapping (false: `pread`, for read-only tools).
    mappable: bool,
    /// Opened read-write.
    writable: bool,
}

/// A [`LogFile`] with its descriptor open, held for the duration of an operation.
pub(crate) struct OpenedLog<'a> {
    log: &'a LogFile,
    file: Arc<OpenLog>,
}

impl LogFile {
    /// A log of `size` bytes at `path`, open as `file` if given. With `Some(capacity)`,
    /// reads of `file` go through a mapping of `max(capacity, size)` bytes (room for the
    /// active segment to grow), and of a file opened later, of its size; with `None`,
    /// through `pread`.
    pub(crate) fn new(
        path: PathBuf,
        file: Option<File>,
        size: u64,
        map_capacity: Option<u64>,
        writable: bool,
    ) -> LogFile {
        let log = LogFile {
            data: LogMap::new(size),
            path,
            mappable: map_capacity.is_some(),
            writable,
        };
        if let Some(file) = file {
            let capacity = map_capacity.map_or(0, |c| c.max(size));
            log.data.install(OpenLog::new(file, capacity));
        }
        log
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open descriptor, if open.
    pub(crate) fn opened(&self) -> Option<OpenedLog<'_>> {
        self.data.handle().map(|file| OpenedLog { log: self, file })
    }

    /// Opens the descriptor (mapped at the published size) unless it is open; true when
    /// this call opened it. `None` when `refuse`, asked once the file is open and before
    /// anyone can use it, says the file must not be used (its segment was deleted).
    pub(crate) fn open_file(
        &self,
        refuse: impl FnOnce() -> bool,
    ) -> Result<Option<(OpenedLog<'_>, bool)>> {
        if let Some(h) = self.opened() {
            return Ok(Some((h, false)));
        }
        let file = crate::fs::open(&self.path, self.writable)?;
        if refuse() {
            return Ok(None);
        }
        let capacity = if self.mappable { self.size() } else { 0 };
        let (file, installed) = self.data.install(OpenLog::new(file, capacity));
        Ok(Some((OpenedLog { log: self, file }, installed)))
    }

    /// Drops the log's reference to its descriptor (holders of an [`OpenedLog`] or a view
    /// keep theirs); true when it was open.
    pub(crate) fn close(&self) -> bool {
        self.data.close()
    }

    /// Published size: every byte below it belongs to a batch written in full.
    pub(crate) fn size(&self) -> u64 {
        self.data.size()
    }

    /// Makes `size` visible to readers; the bytes below it must be written.
    pub(crate) fn publish(&self, size: u64) {
        self.data.publish(size)
    }

    /// Lowers the published size to `len` (readers stop seeing what follows), leaving the
    /// file as it is, so that bytes from `len` on can be rewritten.
    pub(crate) fn unpublish(&self, len: u64) {
        self.data.unpublish(len)
    }

    /// The file's modification time in milliseconds since the Unix epoch (from the open
    /// descriptor if any, else from the path).
    pub(crate) fn modified_ms(&self) -> Result<i64> {
        let meta = match self.data.handle() {
            Some(h) => h.metadata(),
            None => std::fs::metadata(&self.path),
        };
        let modified = meta
            .and_then(|m| m.modified())
            .map_err(|e| Error::io("stat", &self.path, e))?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }
}

impl<'a> OpenedLog<'a> {
    fn path(&self) -> &'a Path {
        &self.log.path
    }

    /// Writes `bytes` at `position` (at or past the published size).
    pub(crate) fn write_at(&self, bytes: &[u8], position: u64) -> Result<()> {
        self.log
            .data
            .write_at(&self.file, bytes, position)
            .map_err(|e| Error::io("write", self.path(), e))
    }

    /// The bytes `[from, to)`, clamped to the published size. The view keeps the file
    /// open.
    pub(crate) fn view(&self, from: u64, to: u64) -> Result<View<'a>> {
        self.log
            .data
            .view(&self.file, from, to)
            .map_err(|e| Error::io("read", self.path(), e))
    }

    /// [`OpenedLog::view`], handing the open descriptor to the view.
    pub(crate) fn into_view(self, from: u64, to: u64) -> Result<View<'a>> {
        let OpenedLog { log, file } = self;
        log.data
            .view_of(file, from, to)
            .map_err(|e| Error::io("read", log.path(), e))
    }

    /// How many bytes a walk should view at once.
    fn window(&self, default: u64) -> u64 {
        if self.file.is_mapped() {
            u64::MAX
        } else {
            default
        }
    }

    /// Truncates the file (and the published size) to `len` bytes.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.log
            .data
            .shrink(&self.file, len)
            .map_err(|e| Error::io("truncate", self.path(), e))
    }

    /// fdatasync.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", self.path(), e))?;
        crate::fs::record(|| crate::fs::FsEvent::SyncFile(self.path().to_path_buf()));
        Ok(())
    }

    /// Walks batch headers from `from` up to `end`, calling `f(position, header)` for each
    /// until it returns `false`. Only headers are read and checked (length, magic), not CRCs.
    ///
    /// Returns `Ok(Err((position, error)))` when the bytes at `position` are not a batch
    /// header whose batch ends by `end` (a torn or corrupt tail), `Ok(Ok(pos))` with the
    /// position where the walk stopped otherwise.
    pub(crate) fn scan_headers(
        &self,
        from: u64,
        end: u64,
        mut f: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<std::result::Result<u64, (u64, DecodeError)>> {
        self.scan_with(
            from,
            end,
            BatchHeader::parse,
            BatchHeader::size,
            |pos, h, _| f(pos, h),
        )
    }

    /// [`OpenedLog::scan_headers`] reading only each batch's offsets and length
    /// ([`BatchSpan`]), for walks that pass over many batches to find one; `f` also gets
    /// the bytes from the batch on (its header at least), to parse the one it stops at.
    pub(crate) fn scan_spans(
        &self,
        from: u64,
        end: u64,
        f: impl FnMut(u64, &BatchSpan, &[u8]) -> bool,
    ) -> Result<std::result::Result<u64, (u64, DecodeError)>> {
        self.scan_with(from, end, BatchSpan::parse, |s| s.size, f)
    }

    /// The walk of `scan_headers` and `scan_spans`, with `parse` reading each header.
    fn scan_with<H>(
        &self,
        from: u64,
        end: u64,
        parse: impl Fn(&[u8]) -> std::result::Result<H, DecodeError>,
        size: impl Fn(&H) -> usize,
        mut f: impl FnMut(u64, &H, &[u8]) -> bool,
    ) -> Result<std::result::Result<u64, (u64, DecodeError)>> {
        let window = self.window(SCAN_CHUNK);
        let mut chunk = self.view(from, from)?;
        let mut chunk_start = from;
        let mut pos = from;
        while pos < end {
            let in_chunk = (pos - chunk_start) as usize;
            if chunk.is_empty() || in_chunk + BATCH_HEADER_SIZE > chunk.len() {
                chunk_start = pos;
                chunk = self.view(pos, end.min(pos.saturating_add(window)))?;
                if chunk.is_empty() {
                    break; // shrunk under us (not possible while the writer lock is held)
                }
            }
            let at = (pos - chunk_start) as usize;
            let header = match parse(&chunk[at..]) {
                Ok(h) => h,
                Err(e) => return Ok(Err((pos, e))),
            };
            let next = pos + size(&header) as u64;
            if next > end {
                return Ok(Err((
                    pos,
                    DecodeError::Truncated {
                        position: (end - pos) as usize,
                    },
                )));
            }
            if !f(pos, &header, &chunk[at..]) {
                return Ok(Ok(pos));
            }
            pos = next;
        }
        Ok(Ok(pos))
    }
}

/// A batch's offsets and size, read from its header without the rest of its fields: what a
/// walk to an offset needs from the batches it passes over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSpan {
    pub(crate) base_offset: u64,
    pub(crate) last_offset: u64,
    pub(crate) size: usize,
}

impl BatchSpan {
    /// The span of the batch at the start of `buf`, with the checks of
    /// [`BatchHeader::parse`] on those fields (and its error, should one fail).
    #[inline]
    fn parse(buf: &[u8]) -> std::result::Result<BatchSpan, DecodeError> {
        use crate::record::{field, BASE_OFFSET_OFFSET, LAST_OFFSET_DELTA_OFFSET, LENGTH_OFFSET};
        if let Some(a) = buf.first_chunk::<BATCH_HEADER_SIZE>() {
            let base = i64::from_be_bytes(field(a, BASE_OFFSET_OFFSET));
            let len = i32::from_be_bytes(field(a, LENGTH_OFFSET));
            let delta = i32::from_be_bytes(field(a, LAST_OFFSET_DELTA_OFFSET));
            let magic = a[crate::record::MAGIC_OFFSET] as i8;
            if base >= 0
                && len >= crate::record::MIN_BATCH_LENGTH as i32
                && magic == crate::record::MAGIC_V2
                && delta >= 0
            {
                if let Some(last) = base.checked_add(delta as i64) {
                    return Ok(BatchSpan {
                        base_offset: base as u64,
                        last_offset: last as u64,
                        size: len as usize + crate::record::LOG_OVERHEAD,
                    });
                }
            }
        }
        // Something is off: the full parse names it (or accepts what this one would not).
        BatchHeader::parse(buf).map(|h| BatchSpan {
            base_offset: h.base_offset as u64,
            last_offset: h.last_offset(),
            size: h.size(),
        })
    }
}

/// Checks a CRC-valid batch's records. A compressed batch is checked by its CRC only, as
/// Kafka's recovery does: its records are checked when a read decompresses them, and a
/// whole, CRC-valid batch must never be mistaken for a torn tail and cut off (its codec
/// may not even be built in).
fn check_records(b: Batch<'_>) -> std::result::Result<Batch<'_>, DecodeError> {
    if b.header().compression() == 0 {
        b.validate()?;
    }
    Ok(b)
}

/// Bytes read at a time while walking whole batches.
const WALK_WINDOW: u64 = 1 << 20;

/// Where a walk over batches stopped.
#[derive(Debug)]
pub(crate) struct WalkEnd {
    /// The first bad batch, when the walk stopped at one: its position and the problem.
    pub(crate) error: Option<(u64, DecodeError)>,
}

impl OpenedLog<'_> {
    /// Walks whole batches from `from` up to `end`, checking each (header, CRC, records)
    /// and calling `f(position, batch)` until it returns `false` or a batch is bad.
    /// Reads a window at a time, so memory is bounded by the window and the largest batch
    /// (whose length is checked against `end` before anything is allocated for it).
    pub(crate) fn walk_batches(
        &self,
        from: u64,
        end: u64,
        f: impl FnMut(u64, &Batch<'_>) -> bool,
    ) -> Result<WalkEnd> {
        self.walk_batches_checking(from, end, true, f)
    }

    /// [`LogFile::walk_batches`], checking each batch's records only with `records`
    /// (otherwise header and CRC only: for callers that decode every record anyway).
    pub(crate) fn walk_batches_checking(
        &self,
        from: u64,
        end: u64,
        records: bool,
        mut f: impl FnMut(u64, &Batch<'_>) -> bool,
    ) -> Result<WalkEnd> {
        let window = self.window(WALK_WINDOW);
        let mut pos = from;
        'windows: while pos < end {
            let want = end.min(pos.saturating_add(window));
            let mut buf = self.view(pos, want)?;
            if buf.len() as u64 != want - pos {
                break; // `end` is past the published size: nothing more to walk
            }
            let at_file_end = want == end;
            let mut at = 0usize;
            while at < buf.len() {
                let here = pos + at as u64;
                let bad = |e| {
                    Ok(WalkEnd {
                        error: Some((here, e)),
                    })
                };
                let header = match BatchHeader::parse(&buf[at..]) {
                    Ok(h) => h,
                    Err(DecodeError::Truncated { .. }) if !at_file_end => break,
                    Err(e) => return bad(e),
                };
                let size = header.size();
                if here + size as u64 > end {
                    return bad(DecodeError::Truncated {
                        position: (end - here) as usize,
                    });
                }
                if at + size > buf.len() {
                    if at == 0 {
                        // One batch larger than the window: view exactly it.
                        buf = self.view(pos, pos + size as u64)?;
                        if buf.len() != size {
                            break 'windows;
                        }
                    } else {
                        break; // re-read from this batch
                    }
                }
                let parsed = Batch::parse(&buf[at..]);
                let batch = match if records {
                    parsed.and_then(check_records)
                } else {
                    parsed
                } {
                    Ok(b) => b,
                    Err(e) => return bad(e),
                };
                at += size;
                if !f(here, &batch) {
                    return Ok(WalkEnd { error: None });
                }
            }
            pos += at as u64;
        }
        Ok(WalkEnd { error: None })
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;
    use crate::record::{encode_batch, BatchSpec, Compression, Record, RECORDS_COUNT_OFFSET};
    use proptest::prelude::*;

    /// `(position, width)` of each batch header field (FORMAT.md §3.2).
    const FIELDS: [(usize, usize); 12] = [
        (0, 8),
        (8, 4),
        (12, 4),
        (16, 1),
        (17, 4),
        (21, 2),
        (23, 4),
        (27, 8),
        (35, 8),
        (43, 8),
        (51, 2),
        (57, 4),
    ];

    /// `BatchSpan::parse` agrees with `BatchHeader::parse`: the same span when the header
    /// is good, the same error when a field the span reads is bad. It does not read
    /// `recordsCount`, so a bad count may pass it (the walk parses in full the batch it
    /// stops at).
    fn check(b: &[u8]) -> std::result::Result<(), TestCaseError> {
        let span = BatchSpan::parse(b);
        match (BatchHeader::parse(b), span) {
            (Ok(h), Ok(s)) => {
                prop_assert_eq!(s.base_offset, h.base_offset as u64);
                prop_assert_eq!(s.last_offset, h.last_offset());
                prop_assert_eq!(s.size, h.size());
            }
            (
                Err(DecodeError::BadField {
                    field: "recordsCount",
                    ..
                }),
                Ok(s),
            ) => {
                let h = |at: usize, n: usize| {
                    let mut v = [0u8; 8];
                    v[8 - n..].copy_from_slice(&b[at..at + n]);
                    i64::from_be_bytes(v)
                };
                prop_assert_eq!(s.base_offset as i64, h(0, 8));
                prop_assert_eq!(s.size as i64, h(8, 4) + 12);
                prop_assert!(b.len() >= RECORDS_COUNT_OFFSET + 4);
            }
            (Err(e), Err(f)) => prop_assert_eq!(e, f),
            (h, s) => prop_assert!(false, "header {:?}, span {:?}", h, s),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn span_agrees_with_header_on_random_bytes(
            mut b in proptest::collection::vec(any::<u8>(), 0..80),
            v2 in any::<bool>(),
        ) {
            if v2 && b.len() >= 17 {
                let (base, len) = (b[0] as i64, b[8] as i32);
                b[..8].copy_from_slice(&base.to_be_bytes());
                b[8..12].copy_from_slice(&len.to_be_bytes());
                b[16] = 2;
            }
            check(&b)?;
        }

        #[test]
        fn span_agrees_with_header_on_mutated_headers(
            n in 1usize..6,
            base in prop_oneof![0u64..1000, Just(i64::MAX as u64 - 10)],
            compressed in any::<bool>(),
            field in 0usize..12,
            value in prop_oneof![Just(0i64), Just(-1), Just(2), Just(48), Just(49), Just(i64::MAX), Just(i32::MAX as i64), any::<i64>()],
            cut in prop_oneof![3 => Just(usize::MAX), 1 => 0usize..80],
        ) {
            let records: Vec<Record> = (0..n).map(|i| Record::new(vec![i as u8; i])).collect();
            let mut spec = BatchSpec::new(base, 0);
            if compressed {
                spec.compression = Compression::Lz4 { level: None };
            }
            let mut b = Vec::new();
            encode_batch(&mut b, &spec, &records).unwrap();
            let (at, width) = FIELDS[field];
            b[at..at + width].copy_from_slice(&value.to_be_bytes()[8 - width..]);
            b.truncate(cut.min(b.len()));
            check(&b)?;
        }
    }
}
