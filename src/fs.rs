//! File-system helpers: directory fsync, atomic writes and the lock file. Every durable
//! file operation of the crate goes through here (the seam for fault injection).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The kinds of file operation a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// Writing file data (`.log` appends, metadata files).
    Write,
    /// fsync/fdatasync/msync of a file or directory.
    Fsync,
    /// Renaming a file into place.
    Rename,
    /// Creating a file or directory.
    Create,
}

/// Fault injection for tests, built with the `fault-injection` cargo feature: make the
/// n-th next file operation of a kind fail with an OS error, process-wide.
///
/// ```
/// # #[cfg(feature = "fault-injection")] {
/// use seglog::faults::{self, FaultOp};
/// faults::fail_nth(FaultOp::Fsync, 1, 5); // the next fsync fails with EIO
/// faults::clear();
/// # }
/// ```
#[cfg(feature = "fault-injection")]
pub mod faults {
    pub use super::FaultOp;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    static ARMED: AtomicBool = AtomicBool::new(false);
    /// Per kind: operations to let through before failing, and the errno to fail with.
    static PLAN: Mutex<Option<HashMap<FaultOp, (u64, i32)>>> = Mutex::new(None);

    /// Makes the `nth` (1-based) next operation of kind `op` fail with OS error `errno`
    /// (for example 28, ENOSPC, or 5, EIO). Once only; other kinds keep their plans.
    pub fn fail_nth(op: FaultOp, nth: u64, errno: i32) {
        let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
        plan.get_or_insert_with(HashMap::new)
            .insert(op, (nth.saturating_sub(1), errno));
        ARMED.store(true, Ordering::Release);
    }

    /// Removes every planned fault.
    pub fn clear() {
        let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
        *plan = None;
        ARMED.store(false, Ordering::Release);
    }

    pub(crate) fn check(op: FaultOp) -> std::io::Result<()> {
        if !ARMED.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut plan = PLAN.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = plan.as_mut().and_then(|p| p.get_mut(&op)) else {
            return Ok(());
        };
        if entry.0 > 0 {
            entry.0 -= 1;
            return Ok(());
        }
        let errno = entry.1;
        if let Some(p) = plan.as_mut() {
            p.remove(&op);
        }
        Err(std::io::Error::from_raw_os_error(errno))
    }
}

/// Fails when a test planned a fault for this kind of operation (a no-op without the
/// `fault-injection` feature).
#[inline]
pub(crate) fn inject(op: FaultOp) -> std::io::Result<()> {
    #[cfg(feature = "fault-injection")]
    {
        faults::check(op)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = op;
        Ok(())
    }
}

/// fsyncs a directory, making creations, renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    inject(FaultOp::Fsync)
        .and_then(|()| File::open(dir))
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// fdatasyncs the file at `path` through a descriptor opened for it (the file's pages,
/// written through any descriptor or map, are synced).
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    inject(FaultOp::Fsync)
        .and_then(|()| File::open(path))
        .and_then(|f| f.sync_data())
        .map_err(|e| Error::io("fsync", path, e))
}

/// Replaces `path` with `contents` atomically: write `path.tmp`, fsync it, rename over
/// `path`, fsync the directory. A crash leaves either the old or the new file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = inject(FaultOp::Create)
        .and_then(|()| File::create(&tmp))
        .map_err(|e| Error::io("create", &tmp, e))?;
    inject(FaultOp::Write)
        .and_then(|()| f.write_all(contents))
        .map_err(|e| Error::io("write", &tmp, e))?;
    inject(FaultOp::Fsync)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(f);
    rename(&tmp, path)?;
    // IMPORTANT: without the directory fsync the rename can vanish after a crash.
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `path` with `.tmp` appended.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames `from` to `to` (replacing it). Durable once the directory is fsynced.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    inject(FaultOp::Rename)
        .and_then(|()| fs::rename(from, to))
        .map_err(|e| Error::io("rename", from, e))
}

/// Creates a file that must not exist yet, readable and writable.
pub(crate) fn create_new(path: &Path) -> Result<File> {
    inject(FaultOp::Create)
        .and_then(|()| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
        })
        .map_err(|e| Error::io("create", path, e))
}

/// Opens an existing file read-write (or read-only).
pub(crate) fn open(path: &Path, writable: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

/// The data directory's exclusive lock, released on drop.
///
/// Two mechanisms, because neither alone is right:
/// - a POSIX record lock (`fcntl(F_SETLK)`) on the lock file keeps other processes out. It
///   is the lock Java's `FileChannel.tryLock` takes, so a Kafka broker and a `Store` exclude
///   each other too. Unlike `flock`, it is owned by the process and not inherited by
///   children, so a process spawned while a store closes cannot keep the directory locked;
/// - POSIX locks do not exclude the owning process itself (and closing any descriptor of
///   the file drops them), so a process-wide registry of locked files keeps a second
///   `Store` of this process out, and the lock file is never opened twice.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Always `Some` until dropped.
    file: Option<File>,
    id: (u64, u64),
}

/// Name of the lock file at the data-dir root (Kafka's name).
pub(crate) const LOCK_FILE: &str = ".lock";

/// `(device, inode)` of the lock files this process holds.
static HELD: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

impl DirLock {
    /// Takes the lock on `dir` without waiting.
    ///
    /// # Errors
    /// [`Error::Locked`] when another `Store` of this or another process (or a Kafka
    /// broker) holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let locked = || Error::Locked {
            path: dir.to_path_buf(),
        };
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        // Check before opening: closing a second descriptor of a file we hold would release
        // the process's POSIX lock on it.
        if let Ok(m) = std::fs::metadata(&path) {
            if held.contains(&file_id(&m)) {
                return Err(locked());
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let id = file_id(&file.metadata().map_err(|e| Error::io("stat", &path, e))?);
        if held.contains(&id) {
            // Another path to the same file (a symlinked data dir) already locked by us.
            return Err(locked());
        }
        match rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                return Err(locked())
            }
            Err(e) => return Err(Error::io("lock", &path, e.into())),
        }
        held.push(id);
        Ok(DirLock {
            file: Some(file),
            id,
        })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        // Close the descriptor (releasing the POSIX lock) before the registry forgets the
        // file: a new lock taken in between would be released by this close.
        drop(self.file.take());
        held.retain(|&id| id != self.id);
    }
}
