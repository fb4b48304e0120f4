//! The crate's only `unsafe`: memory maps of index files and of `.log` files.
//!
//! [`LogMap`] is a `.log` file whose readers see only a *published prefix*: the writer
//! appends with positioned writes past the prefix, then publishes the new length; readers
//! view bytes below it through a read-only mapping, without system calls or copies.
//! The invariant that makes the mapping safe to read lives entirely here: a view is only
//! ever created below the published size, under a shared lock, and the file only ever
//! shrinks under the exclusive lock, after the published size has shrunk. The descriptor
//! and its mapping ([`OpenLog`]) are reference-counted: the file cache (`files.rs`) may
//! close its reference while a view still holds one, which keeps the mapping valid.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

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

/// An open `.log` descriptor with its read mapping: what [`LogMap`] reads and writes
/// through. Shared (`Arc`) by the segment's file cache and by each view, so that closing
/// the file in the cache leaves it valid for readers that still hold it.
#[derive(Debug)]
pub(crate) struct OpenLog {
    file: File,
    /// Length of the mapping (0: never map, read with `pread`).
    capacity: u64,
    /// Created on the first read: opening a segment maps nothing.
    map: OnceLock<Option<MmapRaw>>,
}

impl OpenLog {
    /// Wraps `file`. With `capacity > 0`, reads go through a read-only mapping of that
    /// length (reads past it fall back to `pread`). `capacity` may exceed the file: the
    /// mapping covers the file as it grows.
    pub(crate) fn new(file: File, capacity: u64) -> OpenLog {
        OpenLog {
            file,
            capacity,
            map: OnceLock::new(),
        }
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
}

/// A `.log` file read through a mapping of its published prefix. See the module docs.
/// The descriptor itself ([`OpenLog`]) may be closed and reopened by the segment's file
/// cache; the published size and the shrink lock belong to the file and stay here.
#[derive(Debug)]
pub(crate) struct LogMap {
    /// The open descriptor, when open.
    open: parking_lot::Mutex<Option<Arc<OpenLog>>>,
    /// Published size: every byte below it is written and stays until `shrink`.
    size: AtomicU64,
    /// Shared by views, exclusive while the file shrinks.
    shrinking: RwLock<()>,
}

/// Bytes of a [`LogMap`], valid while the view lives.
pub(crate) struct View<'a> {
    bytes: Cow<'a, [u8]>,
    _shared: RwLockReadGuard<'a, ()>,
    /// Keeps the mapping that `bytes` may borrow alive.
    _file: Arc<OpenLog>,
}

impl Deref for View<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl LogMap {
    /// A `.log` file whose first `size` bytes are valid, not open yet.
    pub(crate) fn new(size: u64) -> LogMap {
        LogMap {
            open: parking_lot::Mutex::new(None),
            size: AtomicU64::new(size),
            shrinking: RwLock::new(()),
        }
    }

    /// The open descriptor, if open.
    pub(crate) fn handle(&self) -> Option<Arc<OpenLog>> {
        self.open.lock().clone()
    }

    /// Makes `file` the open descriptor unless one is already open; returns the one in
    /// use and whether it is `file`.
    pub(crate) fn install(&self, file: OpenLog) -> (Arc<OpenLog>, bool) {
        let mut open = self.open.lock();
        if let Some(h) = &*open {
            return (Arc::clone(h), false);
        }
        let h = Arc::new(file);
        *open = Some(Arc::clone(&h));
        (h, true)
    }

    /// Drops this map's reference to the open descriptor (views keep theirs); true when
    /// one was open.
    pub(crate) fn close(&self) -> bool {
        self.open.lock().take().is_some()
    }

    /// Writes `bytes` at `pos` through `file`; `pos` must not be below the published size
    /// (published bytes never change while published).
    pub(crate) fn write_at(&self, file: &OpenLog, bytes: &[u8], pos: u64) -> io::Result<()> {
        if pos < self.size() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write at {pos} below the published size {}", self.size()),
            ));
        }
        crate::fs::inject(crate::fs::FaultOp::Write)?;
        // `pwrite` straight to the kernel (std's `write_all_at` goes through libc's
        // cancellation-point wrapper): one call per append is the common case.
        let mut done = 0;
        while done < bytes.len() {
            match rustix::io::pwrite(&file.file, &bytes[done..], pos + done as u64) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
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

    /// Shrinks the published size and then the file (through `file`) to `len`, excluding
    /// views meanwhile. Every descriptor of the file sees the new length, so views of any
    /// of them are excluded by the same lock.
    pub(crate) fn shrink(&self, file: &OpenLog, len: u64) -> io::Result<()> {
        let _exclusive = self.shrinking.write();
        self.size.fetch_min(len, Ordering::AcqRel);
        file.file.set_len(len)
    }

    /// The bytes `[from, min(to, published size))` of `file`: borrowed from its mapping
    /// when that covers them, else read with `pread`.
    pub(crate) fn view(&self, file: &Arc<OpenLog>, from: u64, to: u64) -> io::Result<View<'_>> {
        self.view_of(Arc::clone(file), from, to)
    }

    /// [`LogMap::view`], keeping `file` (no reference count taken).
    pub(crate) fn view_of(&self, file: Arc<OpenLog>, from: u64, to: u64) -> io::Result<View<'_>> {
        let shared = self.shrinking.read();
        // Loaded under the shared lock: the file cannot shrink below it while we hold it.
        let to = to.min(self.size());
        let from = from.min(to);
        if let Some(map) = file.mapping().filter(|_| to <= file.capacity) {
            // SAFETY: `[from, to)` lies below the published size, loaded while holding the
            // shared lock, so (1) every byte of it was written before being published and
            // lies inside the file, which cannot shrink while the lock is held (`shrink`
            // takes it exclusively, whichever descriptor it shrinks through), so touching
            // it cannot fault; (2) nothing writes those bytes while they are published:
            // appends write past the published size, and rewrites happen only after
            // `shrink` or `unpublish` took them out; (3) it lies inside the mapping
            // (`to <= capacity`), which lives as long as the `OpenLog`, and the view holds
            // a reference to it (`_file`), so the mapping outlives the slice even when the
            // cache closes the file meanwhile. No other process writes the file: the data
            // directory is locked (`DirLock`), and the contract of `Store` is that nothing
            // else modifies it.
            let bytes = unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(from as usize), (to - from) as usize)
            };
            return Ok(View {
                bytes: Cow::Borrowed(bytes),
                _shared: shared,
                _file: file,
            });
        }
        let mut buf = vec![0; (to - from) as usize];
        file.file.read_exact_at(&mut buf, from)?;
        Ok(View {
            bytes: Cow::Owned(buf),
            _shared: shared,
            _file: file,
        })
    }
}
