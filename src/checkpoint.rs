//! Kafka's text checkpoint files at the data-dir root, and the clean-shutdown marker.
//!
//! A checkpoint file is a version line (`0`), a count line, then one `topic partition
//! offset` line per partition, exactly as Kafka's `OffsetCheckpointFile` writes them:
//!
//! ```text
//! 0
//! 2
//! events 0 1200
//! events 1 1175
//! ```
//!
//! - `recovery-point-offset-checkpoint`: every offset below a partition's recovery point
//!   was flushed. After an unclean shutdown only what lies at or after it is checked.
//! - `log-start-offset-checkpoint`: each partition's log start offset.
//!
//! Both are replaced atomically (tmp file, fsync, rename, fsync of the directory).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Recovery points, at the data-dir root (Kafka's file name and format).
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Log start offsets, at the data-dir root (Kafka's file name and format).
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// Compaction progress (the first offset not yet cleaned), at the data-dir root (Kafka's
/// file name and format).
pub const CLEANER_FILE: &str = "cleaner-offset-checkpoint";
/// Present at the data-dir root only while the store is closed after a clean shutdown
/// (Kafka's file name). Removed first thing at open, so a crash while open is unclean.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// Offsets by `(topic, partition)`.
pub(crate) type Offsets = BTreeMap<(String, u32), u64>;

/// Formats `offsets` as a checkpoint file.
pub(crate) fn format(offsets: &Offsets) -> String {
    let mut s = format!("0\n{}\n", offsets.len());
    for ((topic, partition), offset) in offsets {
        let _ = writeln!(s, "{topic} {partition} {offset}");
    }
    s
}

/// Parses a checkpoint file; `path` names it in errors.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Offsets> {
    let mut position = 0u64;
    let corrupt = |position: u64, reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    };
    let mut lines = text.split_inclusive('\n').map(|l| {
        let at = position;
        position += l.len() as u64;
        (at, l.trim_end_matches('\n'))
    });
    let mut next_line = |what: &str| {
        lines
            .next()
            .ok_or_else(|| corrupt(text.len() as u64, format!("missing {what} line")))
    };
    let (at, version) = next_line("version")?;
    if version != "0" {
        return Err(corrupt(at, format!("unsupported version {version:?}")));
    }
    let (at, count) = next_line("count")?;
    let count: usize = count
        .parse()
        .map_err(|_| corrupt(at, format!("bad count {count:?}")))?;
    let mut offsets = Offsets::new();
    for _ in 0..count {
        let (at, line) = next_line("entry")?;
        let mut fields = line.split(' ');
        let entry = (|| {
            let topic = fields.next().filter(|t| !t.is_empty())?;
            let partition = fields.next()?.parse::<u32>().ok()?;
            let offset = fields.next()?.parse::<i64>().ok()?;
            let offset = u64::try_from(offset).ok()?;
            fields
                .next()
                .is_none()
                .then(|| ((topic.to_string(), partition), offset))
        })();
        let (key, offset) = entry.ok_or_else(|| {
            corrupt(
                at,
                format!("bad entry {line:?} (want: topic partition offset)"),
            )
        })?;
        offsets.insert(key, offset);
    }
    if let Some((at, extra)) = lines.find(|(_, l)| !l.is_empty()) {
        return Err(corrupt(
            at,
            format!("{count} entries announced, found more: {extra:?}"),
        ));
    }
    Ok(offsets)
}

/// Reads the checkpoint file `name` in `dir`: `None` when it does not exist.
pub(crate) fn read(dir: &Path, name: &str) -> Result<Option<Offsets>> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = std::str::from_utf8(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                position: e.valid_up_to() as u64,
                reason: "not UTF-8".into(),
            })?;
            parse(text, &path).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Replaces the checkpoint file `name` in `dir` with `offsets` unless it says so already
/// (`written`, and not in `unsure`). A failure puts it in `unsure`.
fn replace(
    dir: &Path,
    name: &'static str,
    offsets: Offsets,
    written: &mut Offsets,
    unsure: &mut BTreeSet<&'static str>,
) -> Result<()> {
    if offsets == *written && !unsure.contains(name) {
        return Ok(());
    }
    if let Err(e) = crate::fs::write_atomic(&dir.join(name), format(&offsets).as_bytes()) {
        unsure.insert(name);
        return Err(e);
    }
    unsure.remove(name);
    *written = offsets;
    Ok(())
}

/// The store's checkpoint files as last written. Writers serialize on it, so that a
/// truncation lowering a recovery point and the periodic writer cannot interleave.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    dir: PathBuf,
    written: Mutex<Written>,
}

/// What the files say.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) recovery_points: Offsets,
    pub(crate) log_starts: Offsets,
    pub(crate) cleaner: Offsets,
    /// Files whose last replacement failed: they may say the old or the new contents (a
    /// failed directory fsync comes after the rename), so the next write replaces them
    /// even when the offsets to write equal the ones remembered above.
    pub(crate) unsure: BTreeSet<&'static str>,
}

impl Checkpoints {
    /// Checkpoints of `dir` whose files say `written`.
    pub(crate) fn new(dir: PathBuf, written: Written) -> Checkpoints {
        Checkpoints {
            dir,
            written: Mutex::new(written),
        }
    }

    /// Holds off other checkpoint writers while the caller reads the state to write.
    pub(crate) fn lock(&self) -> CheckpointGuard<'_> {
        CheckpointGuard {
            dir: &self.dir,
            written: self.written.lock(),
        }
    }
}

/// Exclusive access to the checkpoint files (see [`Checkpoints::lock`]).
pub(crate) struct CheckpointGuard<'a> {
    dir: &'a Path,
    written: MutexGuard<'a, Written>,
}

impl CheckpointGuard<'_> {
    /// Replaces both files with `recovery_points` and `log_starts`, skipping a file whose
    /// contents would not change.
    pub(crate) fn write(&mut self, recovery_points: Offsets, log_starts: Offsets) -> Result<()> {
        let w = &mut *self.written;
        replace(
            self.dir,
            RECOVERY_POINT_FILE,
            recovery_points,
            &mut w.recovery_points,
            &mut w.unsure,
        )?;
        replace(
            self.dir,
            LOG_START_FILE,
            log_starts,
            &mut w.log_starts,
            &mut w.unsure,
        )
    }

    /// Sets the first dirty offset of `key` in `cleaner-offset-checkpoint`, durably.
    pub(crate) fn set_first_dirty(&mut self, key: &(String, u32), offset: u64) -> Result<()> {
        let mut cleaner = self.written.cleaner.clone();
        cleaner.insert(key.clone(), offset);
        self.write_cleaner(cleaner)
    }

    /// Replaces `cleaner-offset-checkpoint` with `cleaner` (unless it says that already).
    fn write_cleaner(&mut self, cleaner: Offsets) -> Result<()> {
        let w = &mut *self.written;
        replace(
            self.dir,
            CLEANER_FILE,
            cleaner,
            &mut w.cleaner,
            &mut w.unsure,
        )
    }

    /// True when the files may hold entries of `topic` (or may say anything, after a
    /// failed replacement).
    pub(crate) fn may_mention(&self, topic: &str) -> bool {
        let w = &*self.written;
        !w.unsure.is_empty()
            || [&w.recovery_points, &w.log_starts, &w.cleaner]
                .iter()
                .any(|o| o.keys().any(|(t, _)| t == topic))
    }

    /// Drops the entries of partitions that are not in `live` from the cleaner file.
    pub(crate) fn retain_cleaner(&mut self, live: &Offsets) -> Result<()> {
        let cleaner: Offsets = self
            .written
            .cleaner
            .iter()
            .filter(|(k, _)| live.contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.write_cleaner(cleaner)
    }

    /// What the files say now: `(recovery points, log start offsets)`.
    pub(crate) fn current(&self) -> (Offsets, Offsets) {
        (
            self.written.recovery_points.clone(),
            self.written.log_starts.clone(),
        )
    }

    /// Lowers the recovery point of `key` to at most `offset`, durably, before a change
    /// of the log at `offset` (a truncation): data written there later is not yet flushed
    /// and must be checked by the next recovery.
    pub(crate) fn lower_recovery_point(&mut self, key: &(String, u32), offset: u64) -> Result<()> {
        match self.written.recovery_points.get(key) {
            Some(&rp) if rp > offset => {
                let (mut points, starts) = self.current();
                points.insert(key.clone(), offset);
                self.write(points, starts)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;
    use crate::fs::faults::{self, FaultOp};

    fn offsets(offset: u64) -> Offsets {
        [(("t".to_string(), 0), offset)].into()
    }

    fn on_disk(dir: &Path) -> Option<u64> {
        read(dir, LOG_START_FILE).unwrap()?.values().next().copied()
    }

    /// A replacement that failed after its rename (at the directory fsync) may have left
    /// the new contents: the next write of the old contents is not skipped. (The only
    /// lib test planning faults, so no other test's fsync takes the planned one.)
    #[test]
    fn a_file_whose_replacement_failed_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path().to_path_buf(), Written::default());
        let mut guard = checkpoints.lock();
        guard.write(offsets(0), offsets(0)).unwrap();
        // Fsync 1: the tmp file; 2: the directory, after the rename.
        faults::fail_nth(FaultOp::Fsync, 2, 5);
        let failed = guard.write(offsets(0), offsets(5));
        faults::clear();
        assert!(failed.is_err());
        assert_eq!(on_disk(dir.path()), Some(5), "the rename went through");
        guard.write(offsets(0), offsets(0)).unwrap();
        assert_eq!(on_disk(dir.path()), Some(0));
    }
}
