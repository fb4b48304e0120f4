//! File-system helpers: directory fsync, atomic writes and the lock file. Every durable
//! file operation of the crate goes through here (the seam for fault injection, and for
//! the event log a test reads to check that each creation, rename and removal is followed
//! by an fsync of its directory).

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
    /// Removing a file or directory.
    Remove,
    /// Allocating blocks under a file range (`fallocate`, or writing zeros).
    Allocate,
}

/// A file-system operation, as the fault-injection seam records it (see
/// `faults::record_events`; built with the `fault-injection` feature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsEvent {
    /// A file was created.
    Create(PathBuf),
    /// A directory was created.
    CreateDir(PathBuf),
    /// A file or directory was renamed: `(from, to)`.
    Rename(PathBuf, PathBuf),
    /// A file was removed.
    Remove(PathBuf),
    /// A directory and everything in it was removed.
    RemoveDir(PathBuf),
    /// A directory was fsynced.
    SyncDir(PathBuf),
    /// A file's data was synced (fsync, fdatasync or msync).
    SyncFile(PathBuf),
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
    pub use super::{FaultOp, FsEvent};
    use std::collections::HashMap;
    use std::path::Path;
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

    pub(super) static RECORDING: AtomicBool = AtomicBool::new(false);
    /// Events recorded while `RECORDING` is set, in the order they happened.
    static EVENTS: Mutex<Vec<FsEvent>> = Mutex::new(Vec::new());

    /// Starts (or stops) recording every creation, rename, removal and sync of a file or
    /// directory, process-wide. Each is recorded once it succeeded, before the call that
    /// made it returns.
    pub fn record_events(on: bool) {
        RECORDING.store(on, Ordering::Release);
    }

    /// Takes the recorded events that concern `dir` or anything below it, in order,
    /// leaving the others (tests running beside each other each take their own).
    pub fn take_events_under(dir: &Path) -> Vec<FsEvent> {
        let mut events = EVENTS.lock().unwrap_or_else(|e| e.into_inner());
        let (mine, others) = std::mem::take(&mut *events)
            .into_iter()
            .partition(|e| e.paths().iter().any(|p| p.starts_with(dir)));
        *events = others;
        mine
    }

    pub(crate) fn record(event: impl FnOnce() -> FsEvent) {
        if RECORDING.load(Ordering::Acquire) {
            let event = event();
            EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        }
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

#[cfg(feature = "fault-injection")]
impl FsEvent {
    /// The paths the event concerns.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            FsEvent::Rename(from, to) => vec![from, to],
            FsEvent::Create(p)
            | FsEvent::CreateDir(p)
            | FsEvent::Remove(p)
            | FsEvent::RemoveDir(p)
            | FsEvent::SyncDir(p)
            | FsEvent::SyncFile(p) => vec![p],
        }
    }
}

/// Records `event` when a test asked for it (a no-op without the `fault-injection`
/// feature; the event is built only when recorded).
#[inline]
pub(crate) fn record(event: impl FnOnce() -> FsEvent) {
    #[cfg(feature = "fault-injection")]
    faults::record(event);
    #[cfg(not(feature = "fault-injection"))]
    let _ = event;
}

/// True while a test records events (never without the `fault-injection` feature).
#[inline]
fn recording() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        faults::RECORDING.load(std::sync::atomic::Ordering::Acquire)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
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
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    record(|| FsEvent::SyncDir(dir.to_path_buf()));
    Ok(())
}

/// fsyncs the file `f` at `path` (data and metadata).
pub(crate) fn sync_file(f: &File, path: &Path) -> Result<()> {
    inject(FaultOp::Fsync)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("fsync", path, e))?;
    record(|| FsEvent::SyncFile(path.to_path_buf()));
    Ok(())
}

/// fdatasyncs the file at `path` through a descriptor opened for it (the file's pages,
/// written through any descriptor or map, are synced).
pub(crate) fn sync_path(path: &Path) -> Result<()> {
    inject(FaultOp::Fsync)
        .and_then(|()| nofollow().read(true).open(path))
        .and_then(|f| f.sync_data())
        .map_err(|e| Error::io("fsync", path, e))?;
    record(|| FsEvent::SyncFile(path.to_path_buf()));
    Ok(())
}

/// Replaces `path` with `contents` atomically: write `path.tmp`, fsync it, rename over
/// `path`, fsync the directory. A crash leaves either the old or the new file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = inject(FaultOp::Create)
        .and_then(|()| {
            nofollow()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
        })
        .map_err(|e| nofollow_error("create", &tmp, e))?;
    record(|| FsEvent::Create(tmp.clone()));
    let written = inject(FaultOp::Write)
        .and_then(|()| f.write_all(contents))
        .map_err(|e| Error::io("write", &tmp, e))
        .and_then(|()| sync_file(&f, &tmp));
    drop(f);
    if let Err(e) = written {
        // A full disk must not stay fuller by a half-written temporary file.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
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
        .map_err(|e| Error::io("rename", from, e))?;
    record(|| FsEvent::Rename(from.to_path_buf(), to.to_path_buf()));
    Ok(())
}

/// Removes the file `path`; one already gone is fine. Durable once the directory is
/// fsynced.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match inject(FaultOp::Remove).and_then(|()| fs::remove_file(path)) {
        Ok(()) => {
            record(|| FsEvent::Remove(path.to_path_buf()));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Removes the directory `path` and everything in it. Durable once its parent directory
/// is fsynced.
pub(crate) fn remove_dir_all(path: &Path) -> Result<()> {
    inject(FaultOp::Remove)
        .and_then(|()| fs::remove_dir_all(path))
        .map_err(|e| Error::io("remove directory", path, e))?;
    record(|| FsEvent::RemoveDir(path.to_path_buf()));
    Ok(())
}

/// Creates the directory `path` (and missing parents). Durable once its parent directory
/// is fsynced.
pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    inject(FaultOp::Create)
        .and_then(|()| fs::create_dir_all(path))
        .map_err(|e| Error::io("create directory", path, e))?;
    record(|| FsEvent::CreateDir(path.to_path_buf()));
    Ok(())
}

/// `OpenOptions` that never follow a symbolic link at the path (`O_NOFOLLOW`): every file
/// inside a partition directory is opened through this, so that a link planted there
/// cannot make seglog write (or truncate) a file elsewhere. Opening a link fails with
/// `ELOOP`, reported by [`nofollow_error`].
pub(crate) fn nofollow() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    o
}

/// The error of a [`nofollow`] open: `ELOOP` says the path is a symbolic link.
pub(crate) fn nofollow_error(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        let e = std::io::Error::new(e.kind(), "is a symbolic link; refusing to follow it");
        return Error::io(op, path, e);
    }
    Error::io(op, path, e)
}

/// Makes sure blocks are allocated under `[from, to)` of `file`, which must lie within the
/// file and read as zeros (a range past the written data of a preallocated file): a store
/// through a memory map into an unallocated page of a full file system kills the process
/// with SIGBUS, where allocating first gets ENOSPC as an error.
///
/// `fallocate` (mode 0, so the size is unchanged); where the file system does not support
/// it, writing zeros over the range, which allocates as well.
pub(crate) fn allocate(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    if from >= to {
        return Ok(());
    }
    inject(FaultOp::Allocate)
        .and_then(|()| fallocate_or_zeros(file, from, to))
        .map_err(|e| Error::io("allocate", path, e))
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
))]
fn fallocate_or_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use rustix::io::Errno;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), from, to - from) {
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => write_zeros(file, from, to),
        r => r.map_err(Into::into),
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
fn fallocate_or_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    write_zeros(file, from, to)
}

fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = [0u8; 8192];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The end of the last data region of `file` (of length `len`): bytes past it are a hole
/// and read as zeros. `len` where the file system cannot tell.
///
/// Lets a scan for trailing zeros skip the hole without touching it: on tmpfs even a read
/// through a shared mapping allocates the page (and on a full one, faults with SIGBUS).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
))]
pub(crate) fn data_end(file: &File, len: u64) -> u64 {
    use rustix::fs::SeekFrom;
    let mut end = 0;
    let mut pos = 0;
    while pos < len {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(e) if e == rustix::io::Errno::NXIO => break,
            Err(_) => return len,
        };
        match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(hole) if hole > data => {
                end = hole.min(len);
                pos = hole;
            }
            _ => return len,
        }
    }
    end
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
pub(crate) fn data_end(_file: &File, len: u64) -> u64 {
    len
}

/// Creates a file that must not exist yet, readable and writable.
pub(crate) fn create_new(path: &Path) -> Result<File> {
    inject(FaultOp::Create)
        .and_then(|()| {
            nofollow()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
        })
        .map_err(|e| nofollow_error("create", path, e))
        .inspect(|_| record(|| FsEvent::Create(path.to_path_buf())))
}

/// Opens the file `path` read-write, creating it when missing (`truncate`: emptied).
/// Recorded as a creation when it did not exist.
pub(crate) fn open_or_create(path: &Path, truncate: bool) -> Result<File> {
    let is_new = recording() && !path.exists();
    // Never through a symbolic link: it would map (and truncate) a file elsewhere.
    let f = nofollow()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(|e| nofollow_error("open", path, e))?;
    if is_new {
        record(|| FsEvent::Create(path.to_path_buf()));
    }
    Ok(f)
}

/// Opens an existing file read-write (or read-only), never through a symbolic link.
pub(crate) fn open(path: &Path, writable: bool) -> Result<File> {
    nofollow()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| nofollow_error("open", path, e))
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
