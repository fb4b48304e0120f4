//! The crate's only `unsafe`: memory maps of index files and of `.log` files.
//!
//! [`LogMap`] is a `.log` file whose readers see only a *published prefix*: the writer
//! appends with positioned writes past the prefix, then publishes the new length; readers
//! view bytes below it through a read-only mapping, without system calls or copies.
//! The invariant that makes the mapping safe to read lives entirely here: a view is only
//! ever created below the published size, under a shared lock, and the file only ever
//! shrinks under the exclusive lock, after the published size has shrunk.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use memmap2::{MmapMut, MmapOptions, MmapRaw};
use parking_lot::{RwLock, RwLockReadGuard};

use crate::error::{Error, Result};

/// Maps the whole of `file` read-write.
///
/// The mapping is only ever accessed through `MmapMut`'s safe slice API, under the owning
/// index's lock.
pub(crate) fn map_mut(file: &File, path: &Path) -> Result<MmapMut> {
    // SAFETY: memmap2 requires that the file is not truncated or modified by anyone else
    // while mapped. The data directory is held under an exclusive lock (`DirLock`), so no
    // other seglog opens it; within the process, an index file is only resized after its
    // mapping is dropped (see `segment::index::IndexFile`), never while mapped.
    let map = unsafe { MmapMut::map_mut(file) }.map_err(|e| Error::io("mmap", path, e))?;
    // Lookups touch a few entries each: without this, the first touch of a sparse,
    // preallocated index reads ahead megabytes (stalls of ~10 ms were measured).
    let _ = map.advise(memmap2::Advice::Random);
    Ok(map)
}

/// A `.log` file read through a mapping of its published prefix. See the module docs.
#[derive(Debug)]
pub(crate) struct LogMap {
    file: File,
    /// Length of the mapping (0: never map, read with `pread`).
    capacity: u64,
    /// Created on the first read: opening a segment maps nothing.
    map: OnceLock<Option<MmapRaw>>,
    /// Published size: every byte below it is written and stays until `shrink`.
    size: AtomicU64,
    /// Shared by views, exclusive while the file shrinks.
    shrinking: RwLock<()>,
}

/// Bytes of a [`LogMap`], valid while the view lives.
pub(crate) struct View<'a> {
    bytes: Cow<'a, [u8]>,
    _shared: RwLockReadGuard<'a, ()>,
}

impl Deref for View<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl LogMap {
    /// Wraps `file`, whose first `size` bytes are valid. With `capacity > 0`, reads go
    /// through a read-only mapping of that length (reads past it fall back to `pread`).
    /// `capacity` may exceed the file: the mapping covers the file as it grows.
    pub(crate) fn new(file: File, size: u64, capacity: u64) -> LogMap {
        LogMap {
            file,
            capacity,
            map: OnceLock::new(),
            size: AtomicU64::new(size),
            shrinking: RwLock::new(()),
        }
    }

    /// Writes `bytes` at `pos`, which must not be below the published size (published
    /// bytes never change while published).
    pub(crate) fn write_at(&self, bytes: &[u8], pos: u64) -> io::Result<()> {
        if pos < self.size() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write at {pos} below the published size {}", self.size()),
            ));
        }
        crate::fs::inject(crate::fs::FaultOp::Write)?;
        self.file.write_all_at(bytes, pos)
    }

    /// The file's metadata.
    pub(crate) fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// fdatasync.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        crate::fs::inject(crate::fs::FaultOp::Fsync)?;
        self.file.sync_data()
    }

    /// The published size.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Publishes `size` after the bytes below it were written. Never shrinks.
    pub(crate) fn publish(&self, size: u64) {
        self.size.fetch_max(size, Ordering::AcqRel);
    }

    /// Lowers the published size to `len` without touching the file, excluding views
    /// meanwhile: bytes past it may then be rewritten (`write_at`).
    pub(crate) fn unpublish(&self, len: u64) {
        let _exclusive = self.shrinking.write();
        self.size.fetch_min(len, Ordering::AcqRel);
    }

    /// Shrinks the published size and then the file to `len`, excluding views meanwhile.
    pub(crate) fn shrink(&self, len: u64) -> io::Result<()> {
        let _exclusive = self.shrinking.write();
        self.size.fetch_min(len, Ordering::AcqRel);
        self.file.set_len(len)
    }

    /// True when reads go through a mapping.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapping().is_some()
    }

    fn mapping(&self) -> Option<&MmapRaw> {
        self.map
            .get_or_init(|| {
                let len = usize::try_from(self.capacity).ok().filter(|&l| l > 0)?;
                // A failed mapping (address space, limits) is not an error: reads fall back
                // to pread.
                MmapOptions::new()
                    .len(len)
                    .map_raw_read_only(&self.file)
                    .ok()
            })
            .as_ref()
    }

    /// The bytes `[from, min(to, published size))`: borrowed from the mapping when it covers
    /// them, else read with `pread`.
    pub(crate) fn view(&self, from: u64, to: u64) -> io::Result<View<'_>> {
        let shared = self.shrinking.read();
        // Loaded under the shared lock: the file cannot shrink below it while we hold it.
        let to = to.min(self.size());
        let from = from.min(to);
        if let Some(map) = self.mapping().filter(|_| to <= self.capacity) {
            // SAFETY: `[from, to)` lies below the published size, loaded while holding the
            // shared lock, so (1) every byte of it was written before being published and
            // lies inside the file, which cannot shrink while the lock is held (`shrink`
            // takes it exclusively), so touching it cannot fault; (2) nothing writes those
            // bytes while they are published: appends write past the published size, and
            // rewrites happen only after `shrink` or `unpublish` took them out; (3) it lies inside the
            // mapping (`to <= capacity`), which lives as long as `self`, and so does the
            // view. No other process writes the file: the data directory is locked
            // (`DirLock`), and the contract of `Store` is that nothing else modifies it.
            let bytes = unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(from as usize), (to - from) as usize)
            };
            return Ok(View {
                bytes: Cow::Borrowed(bytes),
                _shared: shared,
            });
        }
        let mut buf = vec![0; (to - from) as usize];
        self.file.read_exact_at(&mut buf, from)?;
        Ok(View {
            bytes: Cow::Owned(buf),
            _shared: shared,
        })
    }
}
