//! The `.index` file: 8-byte entries `(relative offset: u32, position: u32)`, big-endian,
//! and the memory-mapped, preallocated file both index kinds are stored in.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{Error, Result};
use crate::record::{read_u32, write_u32};

/// Bytes per offset-index entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;

/// Bytes allocated at a time ahead of the entries of a mapped index (see `IndexFile::push`):
/// one `fallocate` per 8,192 offset entries, and at most this much pinned per index beyond
/// its entries.
const ALLOCATE_CHUNK: usize = 64 << 10;

/// The bytes behind an index: a writable mapping, or a private copy for read-only tools.
#[derive(Debug)]
enum Bytes {
    Mapped(MmapMut),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An index file of fixed-size entries. While a segment is active the file is
/// preallocated to its maximum size and mapped; `entries` counts the valid ones.
/// Sealing trims the file to exactly the valid entries.
///
/// The preallocated part is sparse. A store through the mapping into a page without blocks
/// needs a block at that moment, and on a full file system the kernel answers with SIGBUS;
/// so blocks are allocated (`fs::allocate`, which reports ENOSPC as an error) before any
/// entry is written past `allocated`.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    /// Open while the segment is active; a sealed segment's index is closed once mapped
    /// (the map stays valid) and reopened only to resize it.
    file: Option<File>,
    /// Mapped read-write (false: a read-only tool's copy).
    writable: bool,
    bytes: Bytes,
    entry_size: usize,
    entries: usize,
    /// Bytes from the start of the file with blocks allocated under them: stores through
    /// the mapping below it cannot fault. Invariant: `entries * entry_size <= allocated <=`
    /// the mapped length, and the bytes from the entries' end on are zeros.
    allocated: usize,
    /// Byte range written since the last flush.
    dirty: parking_lot::Mutex<Option<(usize, usize)>>,
}

impl IndexFile {
    /// Opens (creating if missing) the index at `path`, with `len / entry_size` entries,
    /// then strips trailing all-zero entries (left by preallocation).
    /// `writable` maps the file; otherwise it is copied into memory (read-only tools).
    pub(crate) fn open(path: &Path, entry_size: usize, writable: bool) -> Result<IndexFile> {
        IndexFile::open_as(path, entry_size, writable, false)
    }

    /// Opens (creating if missing) the index at `path` emptied, to be rebuilt: nothing of
    /// the old contents is read.
    pub(crate) fn open_empty(path: &Path, entry_size: usize) -> Result<IndexFile> {
        IndexFile::open_as(path, entry_size, true, true)
    }

    fn open_as(path: &Path, entry_size: usize, writable: bool, empty: bool) -> Result<IndexFile> {
        let (file, bytes) = if writable {
            let file = crate::fs::open_or_create(path, empty)?;
            let bytes = map_or_empty(&file, path)?;
            (Some(file), bytes)
        } else {
            let read = |path| {
                let mut v = Vec::new();
                std::io::Read::read_to_end(
                    &mut crate::fs::nofollow().read(true).open(path)?,
                    &mut v,
                )
                .map(|_| v)
            };
            let v = match read(path) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(crate::fs::nofollow_error("read", path, e)),
            };
            (None, Bytes::Owned(v))
        };
        let mut idx = IndexFile {
            path: path.to_path_buf(),
            file,
            writable,
            bytes,
            entry_size,
            entries: 0,
            allocated: 0,
            dirty: parking_lot::Mutex::new(None),
        };
        let slots = idx.bytes.as_slice().len() / entry_size;
        // The scan for trailing zeros starts where the file's data ends: the hole after it
        // (most of a preallocated file) reads as zeros, and touching it through the mapping
        // would allocate it on tmpfs.
        let mut n = match (&idx.file, &idx.bytes) {
            (Some(f), Bytes::Mapped(m)) => {
                let end = crate::fs::data_end(f, m.len() as u64) as usize;
                let whole = (end / entry_size).min(slots);
                // An entry straddling the data's end: only its part below the end is read.
                let straddling = (whole < slots && end > whole * entry_size)
                    .then(|| &m[whole * entry_size..end]);
                whole + usize::from(straddling.is_some_and(|b| b.iter().any(|&b| b != 0)))
            }
            _ => slots,
        };
        while n > 0 && idx.entry(n - 1).iter().all(|&b| b == 0) {
            n -= 1;
        }
        // A trimmed file of one zero entry holds a real one (timestamp 0 at the base offset);
        // in a preallocated file (left by a process that did not close) zeros are unused.
        idx.entries = if slots == 1 { 1 } else { n };
        // Written entries have blocks; what lies past them may be a hole.
        idx.allocated = idx.entries * entry_size;
        Ok(idx)
    }

    /// An index not opened yet (a segment opened lazily): no entries until a load
    /// replaces it.
    pub(crate) fn unloaded(path: &Path, entry_size: usize) -> IndexFile {
        IndexFile {
            path: path.to_path_buf(),
            file: None,
            writable: false,
            bytes: Bytes::Owned(Vec::new()),
            entry_size,
            entries: 0,
            allocated: 0,
            dirty: parking_lot::Mutex::new(None),
        }
    }

    /// Drops every entry and empties the file (to be rebuilt). Unlike zeroing entries, this
    /// also clears stale bytes past the valid ones, without reading them.
    pub(crate) fn reset(&mut self) -> Result<()> {
        self.entries = 0;
        *self.dirty.lock() = None;
        self.resize(0)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Number of valid entries.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Entries the current file size can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.as_slice().len() / self.entry_size
    }

    /// True when no further entry fits: the offset index's rule (Kafka's
    /// `AbstractIndex.isFull`). The time index keeps one slot back (`timeindex::is_full`).
    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    /// The bytes of entry `i` (`i < capacity()`).
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        &self.bytes.as_slice()[i * self.entry_size..(i + 1) * self.entry_size]
    }

    /// The last valid entry.
    pub(crate) fn last(&self) -> Option<&[u8]> {
        self.entries.checked_sub(1).map(|i| self.entry(i))
    }

    /// Appends one entry; the caller checked `!is_full()`. Blocks under it are allocated
    /// first (see [`IndexFile::reserve`]).
    ///
    /// # Errors
    /// [`Error::Io`] when they cannot be (ENOSPC); nothing was written then.
    pub(crate) fn push(&mut self, write: impl FnOnce(&mut [u8])) -> Result<()> {
        self.reserve()?;
        let at = self.entries * self.entry_size;
        if let Bytes::Mapped(m) = &mut self.bytes {
            if at + self.entry_size <= m.len() {
                write(&mut m[at..at + self.entry_size]);
                self.entries += 1;
                self.mark_dirty(at, at + self.entry_size);
            }
        }
        Ok(())
    }

    /// Makes sure the next entry's bytes have blocks allocated, allocating up to
    /// `ALLOCATE_CHUNK` ahead (or to the end of the file) when they do not. A no-op for an
    /// index that is not mapped.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when the blocks cannot be allocated (ENOSPC).
    pub(crate) fn reserve(&mut self) -> Result<()> {
        let (Some(file), Bytes::Mapped(m)) = (&self.file, &self.bytes) else {
            return Ok(());
        };
        let to = ((self.entries + 1) * self.entry_size).min(m.len());
        if to <= self.allocated {
            return Ok(());
        }
        let end = to
            .next_multiple_of(ALLOCATE_CHUNK)
            .min(m.len() / self.entry_size * self.entry_size)
            .max(to);
        crate::fs::allocate(file, &self.path, self.allocated as u64, end as u64)?;
        self.allocated = end;
        Ok(())
    }

    /// Keeps only the first `n` entries (zeroing the rest, so a crash cannot revive them).
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let (from, to) = (n * self.entry_size, self.entries * self.entry_size);
        if let Bytes::Mapped(m) = &mut self.bytes {
            m[from..to].fill(0);
            self.mark_dirty(from, to);
        }
        self.entries = n;
    }

    fn mark_dirty(&self, from: usize, to: usize) {
        let mut d = self.dirty.lock();
        *d = Some(d.map_or((from, to), |(a, b)| (a.min(from), b.max(to))));
    }

    /// Resizes the file to `max_bytes` rounded down to whole entries (at least the valid
    /// entries) and remaps it. Used to preallocate (active) and to trim (sealed).
    pub(crate) fn resize(&mut self, max_bytes: usize) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(crate::fs::open(&self.path, true)?);
        }
        let Some(file) = &self.file else {
            return Ok(());
        };
        let len = (max_bytes / self.entry_size).max(self.entries) * self.entry_size;
        if len == self.bytes.as_slice().len() {
            return Ok(());
        }
        // The mapping must go before the file shrinks (see `mmap::map_mut`).
        self.bytes = Bytes::Owned(Vec::new());
        file.set_len(len as u64)
            .map_err(|e| Error::io("resize", &self.path, e))?;
        // Growing adds a hole; shrinking drops blocks past `len`.
        self.allocated = self.allocated.min(len);
        self.bytes = map_or_empty(file, &self.path)?;
        Ok(())
    }

    /// Closes the descriptor, keeping the map (a sealed segment's index: see `files.rs`).
    pub(crate) fn close_file(&mut self) {
        self.file = None;
    }

    /// True when entries were written since the last flush.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.lock().is_some()
    }

    /// Trims the file to the valid entries.
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.resize(self.entries * self.entry_size)
    }

    /// Writes the entries changed since the last flush to disk (msync of that range only:
    /// a blocking msync costs a device cache flush even when nothing is dirty).
    pub(crate) fn flush(&self) -> Result<()> {
        let mut dirty = self.dirty.lock();
        let Some((from, to)) = *dirty else {
            return Ok(());
        };
        if let Bytes::Mapped(m) = &self.bytes {
            // Entries past a trim are gone from the file; the rest is still in the mapping.
            let to = to.min(m.len());
            if from < to {
                crate::fs::inject(crate::fs::FaultOp::Fsync)
                    .and_then(|()| m.flush_range(from, to - from))
                    .map_err(|e| Error::io("msync", &self.path, e))?;
                crate::fs::record(|| crate::fs::FsEvent::SyncFile(self.path.clone()));
            }
        }
        *dirty = None;
        Ok(())
    }

    /// The valid entries' bytes.
    pub(crate) fn valid_bytes(&self) -> &[u8] {
        &self.bytes.as_slice()[..self.entries * self.entry_size]
    }
}

/// Last index `i < n` with `key(i) <= target`, for keys increasing with `i`.
pub(crate) fn floor_search<K: Ord>(n: usize, target: K, key: impl Fn(usize) -> K) -> Option<usize> {
    // Invariant: key(i) <= target for i < lo; key(i) > target for i >= hi.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid) <= target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

fn map_or_empty(file: &File, path: &Path) -> Result<Bytes> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    if len == 0 {
        // Mapping a zero-length file fails; there is nothing to map.
        return Ok(Bytes::Owned(Vec::new()));
    }
    Ok(Bytes::Mapped(crate::mmap::map_mut(file, path)?))
}

/// Decodes an offset-index entry into `(relative offset, position)`.
pub fn decode_offset_entry(e: &[u8]) -> (u32, u32) {
    (read_u32(e, 0), read_u32(e, 4))
}

/// Encodes an offset-index entry.
pub fn encode_offset_entry(e: &mut [u8], relative_offset: u32, position: u32) {
    write_u32(e, 0, relative_offset);
    write_u32(e, 4, position);
}

/// [`lookup_offset`], plus the position named by the entry after the one found (the first
/// entry when none is found): where the scan from the found entry may stop.
pub(crate) fn lookup_offset_and_next(
    bytes: &[u8],
    relative_target: u32,
) -> (Option<(u32, u32)>, Option<u32>) {
    let (entries, _) = bytes.as_chunks::<OFFSET_ENTRY_SIZE>();
    let n = entries.len();
    let entry = |i: usize| decode_offset_entry(&entries[i]);
    // The search reads only each probed entry's offset.
    let below = entries
        .partition_point(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]]) <= relative_target);
    let slot = below.checked_sub(1);
    let next = below;
    (slot.map(entry), (next < n).then(|| entry(next).1))
}

/// Position of the entry with the largest offset `<= target` in an offset index held in
/// `bytes` (whole entries, offsets increasing), or `None` when all are larger.
///
/// A pure function over bytes, so tests and the fuzzer can check it against a linear scan.
pub fn lookup_offset(bytes: &[u8], relative_target: u32) -> Option<(u32, u32)> {
    lookup_offset_and_next(bytes, relative_target).0
}
