//! The crate's only `unsafe`: memory-mapping index files.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

use memmap2::MmapMut;

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
    unsafe { MmapMut::map_mut(file) }.map_err(|e| Error::io("mmap", path, e))
}
