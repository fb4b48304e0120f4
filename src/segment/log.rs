//! The `.log` file: concatenated v2 record batches, appended with positioned writes and
//! read with positioned reads, so readers need no lock shared with the writer.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::{Batch, BatchHeader, DecodeError, BATCH_HEADER_SIZE};

/// Bytes read at a time while walking batch headers.
const SCAN_CHUNK: usize = 16 * 1024;

/// An open `.log` file.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
}

impl LogFile {
    pub(crate) fn new(path: PathBuf, file: File) -> LogFile {
        LogFile { path, file }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Current file length.
    pub(crate) fn file_len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    /// Writes `bytes` at `position`.
    pub(crate) fn write_at(&self, bytes: &[u8], position: u64) -> Result<()> {
        self.file
            .write_all_at(bytes, position)
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// Reads `[from, to)` into `buf` (replacing its contents). A file shorter than `to`
    /// (a concurrent truncation) gives a shorter buffer, never an error.
    pub(crate) fn read_into(&self, buf: &mut Vec<u8>, from: u64, to: u64) -> Result<()> {
        buf.clear();
        self.append_from(buf, from, to)
    }

    /// As [`LogFile::read_into`], appending to `buf`.
    pub(crate) fn append_from(&self, buf: &mut Vec<u8>, from: u64, to: u64) -> Result<()> {
        let start = buf.len();
        let len = to.saturating_sub(from) as usize;
        buf.resize(start + len, 0);
        let mut done = 0;
        while done < len {
            match self
                .file
                .read_at(&mut buf[start + done..], from + done as u64)
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(start);
                    return Err(Error::io("read", &self.path, e));
                }
            }
        }
        buf.truncate(start + done);
        Ok(())
    }

    /// Truncates the file to `len` bytes.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate", &self.path, e))
    }

    /// fdatasync.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))
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
        let mut chunk = Vec::new();
        let mut chunk_start = from;
        let mut pos = from;
        while pos < end {
            let in_chunk = (pos - chunk_start) as usize;
            if chunk.is_empty() || in_chunk + BATCH_HEADER_SIZE > chunk.len() {
                chunk_start = pos;
                self.read_into(&mut chunk, pos, end.min(pos + SCAN_CHUNK as u64))?;
            }
            let at = (pos - chunk_start) as usize;
            let header = match BatchHeader::parse(&chunk[at..]) {
                Ok(h) => h,
                Err(e) => return Ok(Err((pos, e))),
            };
            let next = pos + header.size() as u64;
            if next > end {
                return Ok(Err((
                    pos,
                    DecodeError::Truncated {
                        position: (end - pos) as usize,
                    },
                )));
            }
            if !f(pos, &header) {
                return Ok(Ok(pos));
            }
            pos = next;
        }
        Ok(Ok(pos))
    }
}

/// Checks a CRC-valid batch's records. A compressed batch is whole and valid as far as
/// this build can tell (its CRC matched); its records cannot be checked without the codec,
/// and it must not be mistaken for a torn tail and cut off.
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

impl LogFile {
    /// Walks whole batches from `from` up to `end`, checking each (header, CRC, records)
    /// and calling `f(position, batch)` until it returns `false` or a batch is bad.
    /// Reads a window at a time, so memory is bounded by the window and the largest batch
    /// (whose length is checked against `end` before anything is allocated for it).
    pub(crate) fn walk_batches(
        &self,
        from: u64,
        end: u64,
        mut f: impl FnMut(u64, &Batch<'_>) -> bool,
    ) -> Result<WalkEnd> {
        let mut buf = Vec::new();
        let mut pos = from;
        'windows: while pos < end {
            let want = end.min(pos + WALK_WINDOW);
            self.read_into(&mut buf, pos, want)?;
            if buf.len() as u64 != want - pos {
                break; // the file shrank under us (concurrent truncation): stop quietly
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
                        // One batch larger than the window: read exactly it.
                        self.read_into(&mut buf, pos, pos + size as u64)?;
                        if buf.len() != size {
                            break 'windows;
                        }
                    } else {
                        break; // re-read from this batch
                    }
                }
                let batch = match Batch::parse(&buf[at..]).and_then(check_records) {
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
