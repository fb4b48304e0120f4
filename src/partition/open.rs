//! How a partition is opened: its directory's leftovers finished, its segments chosen for
//! trust or recovery, recovered, and its offsets set. "What happens to one partition at
//! open, after a crash" is answered here; what happens to one segment is
//! `segment/recover.rs`, and the store's sequence is `store/open.rs`.
//!
//! The open sequence (each step names its FORMAT.md paragraph):
//!
//! 1. **Directory** (§1): created (and its parent fsynced) when missing — a new partition.
//! 2. **Leftovers** (§10, [`finish_interrupted`]): `*.tmp`, `*.cleaned`, `*.deleted` removed;
//!    a committed `<base>.log.swap` replaces the segments it covers; uncommitted index
//!    `.swap` files and index files without a `.log` removed; the directory fsynced.
//! 3. **Plan** (§9, [`plan`]): a pure choice from the segment base offsets, the shutdown
//!    state and the recovery point: which segments are trusted (nothing read), whether the
//!    active one may take its end from the checkpoint, and which are recovered.
//! 4. **Open / recover** (§9, `Segment::open_trusted`, `open_clean_active`, `recover`):
//!    segments in order. At the first recovered segment that was cut (a torn tail), or that
//!    ends short of its successor, the log ends: later segments are deleted, and the cut and
//!    the deletions are synced before the open goes on.
//!    Without compaction (no compacting policy, no cleaner checkpoint entry) trusted
//!    segments must reach their successor's base offset, which their first use checks
//!    (`Error::MissingOffsets` when a segment file between them is gone).
//! 5. **Coverage** (§9, [`check_coverage`]): the segments must hold what the checkpoints
//!    say was written — the log reaches the recovery point, and after a clean shutdown the
//!    first segment starts at or below the log start offset — else `Error::MissingOffsets`
//!    naming the range and the files, before anything is created in their place (also
//!    checked before step 1 creates a missing directory).
//! 6. **Fresh**: a partition without segments gets an empty first segment at offset 0,
//!    flushed with its directory.
//! 7. **Offsets** (§1.3, §9): log end = the active segment's next offset; log start = the
//!    checkpoint's, clamped to `[first base, log end]`; durable offset = the log end after a
//!    clean shutdown, else the recovery point (what lies past it is durable once flushed).
//!
//! Every decision that changes a file is a `tracing` event naming the file (and the byte
//! position where one applies).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::{Inner, Partition, SyncState, Writer};
use crate::checkpoint::{Checkpoints, Offsets};
use crate::config::{Clock, TopicConfig};
use crate::error::{Error, Result};
use crate::notify::Notify;
use crate::segment::{
    delete_segment_files, parse_log_name, paths, remove_if_exists, Recovered, Segment,
    SegmentOptions, DISCARDED_SUFFIXES, SWAP_SUFFIX,
};

/// What every partition of a store opens with: one per store, built by `store/open.rs`
/// from the clean-shutdown marker and the checkpoint files it read.
#[derive(Debug)]
pub(crate) struct OpenContext {
    /// The data directory.
    pub(crate) root: PathBuf,
    /// The store's clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// The store's checkpoint files, shared with every partition.
    pub(crate) checkpoints: Arc<Checkpoints>,
    /// The store's [`StoreConfig::cleaner_buffer_bytes`](crate::StoreConfig).
    pub(crate) cleaner_buffer_bytes: usize,
    /// The store's open segment files, capped at
    /// [`StoreConfig::max_open_files`](crate::StoreConfig).
    pub(crate) files: Arc<crate::files::OpenFiles>,
    /// The clean-shutdown marker was present at open.
    pub(crate) clean: bool,
    /// `recovery-point-offset-checkpoint` as read at open.
    pub(crate) recovery_points: Offsets,
    /// `log-start-offset-checkpoint` as read at open.
    pub(crate) log_starts: Offsets,
    /// `cleaner-offset-checkpoint` as read at open.
    pub(crate) cleaner: Offsets,
}

/// How the store was shut down, and what its checkpoints held at open for one partition.
#[derive(Debug, Clone, Copy)]
struct OpenState {
    clean: bool,
    recovery_point: Option<u64>,
    log_start: Option<u64>,
    first_dirty: Option<u64>,
}

impl OpenContext {
    /// What the context says of `key`. A partition created after the store opened (`fresh`)
    /// has nothing to recover and must not inherit what the files said of an earlier topic
    /// of the same name.
    fn state(&self, key: &(String, u32), fresh: bool) -> OpenState {
        if fresh {
            return OpenState {
                clean: true,
                recovery_point: None,
                log_start: None,
                first_dirty: None,
            };
        }
        OpenState {
            clean: self.clean,
            recovery_point: self.recovery_points.get(key).copied(),
            log_start: self.log_starts.get(key).copied(),
            first_dirty: self.cleaner.get(key).copied(),
        }
    }

    /// The directory of partition `partition` of `topic`.
    pub(crate) fn partition_dir(&self, topic: &str, partition: u32) -> PathBuf {
        self.root.join(format!("{topic}-{partition}"))
    }
}

/// How one segment is opened (see [`plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// Below the recovery point: opened for its size, nothing read (§9).
    Trust,
    /// The active segment after a clean shutdown: its end comes from the recovery point
    /// if its indexes agree, else it is recovered.
    CleanActive,
    /// Every batch checked, indexes rebuilt (§9).
    Recover,
}

/// The choice of which segments to trust (FORMAT.md §9), from what the directory holds and
/// what the store found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenPlan {
    /// The recovery point recovery works from (0 when unknown after a crash).
    pub(crate) recovery_point: u64,
    /// Per segment, in base-offset order.
    pub(crate) treatments: Vec<Treatment>,
}

/// Chooses how to open segments with the sorted base offsets `bases`:
///
/// - after a clean shutdown with a recovery point, every sealed segment is trusted and the
///   active one takes its end from the recovery point ([`Treatment::CleanActive`]);
/// - after a clean shutdown without one (the checkpoint lacks the partition), the active
///   segment is recovered;
/// - after a crash, a segment is trusted when its successor starts at or below the recovery
///   point (all its offsets were flushed); the one holding the recovery point and every
///   later one are recovered.
pub(crate) fn plan(bases: &[u64], clean: bool, recovery_point: Option<u64>) -> OpenPlan {
    let n = bases.len();
    let (rp, first_recovered) = match (clean, recovery_point) {
        (true, Some(rp)) => (rp, n),
        (true, None) => (0, n.saturating_sub(1)),
        (false, rp) => {
            let rp = rp.unwrap_or(0);
            let first = (0..n)
                .find(|&i| bases.get(i + 1).is_none_or(|&next| next > rp))
                .unwrap_or(n);
            (rp, first)
        }
    };
    let treatments = (0..n)
        .map(|i| match (i < first_recovered, i + 1 == n) {
            (true, false) => Treatment::Trust,
            (true, true) => Treatment::CleanActive,
            (false, _) => Treatment::Recover,
        })
        .collect();
    OpenPlan {
        recovery_point: rp,
        treatments,
    }
}

impl Partition {
    /// Opens partition `number` of `topic` (creating its directory and a first segment if
    /// missing), following the sequence in the module docs. `fresh`: the topic is being
    /// created, so nothing the store found at open applies to it.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when flushed data (below the recovery point) is damaged or a
    /// committed `.log.swap` is corrupt; I/O errors.
    pub(crate) fn open(
        ctx: &OpenContext,
        topic: &str,
        number: u32,
        config: TopicConfig,
        notify: Arc<Notify>,
        fresh: bool,
    ) -> Result<Partition> {
        let key = (topic.to_string(), number);
        let name = format!("{topic}-{number}");
        let dir = ctx.partition_dir(topic, number);
        let state = ctx.state(&key, fresh);
        let clock = Arc::clone(&ctx.clock);
        // 1. Directory.
        let created = !dir.exists();
        if created {
            // A lost directory of a partition the checkpoints say held records.
            check_coverage(&name, &dir, &[], &state)?;
            crate::fs::create_dir_all(&dir)?;
            crate::fs::sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        }
        let opts = SegmentOptions::from_config(&config, &ctx.files);
        // 2. Leftovers.
        let mut dir_dirty = finish_interrupted(&dir)?;
        let mut bases = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(base) = entry.file_name().to_str().and_then(parse_log_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let now = clock.now_ms();
        // 3. Plan.
        let OpenPlan {
            recovery_point,
            treatments,
        } = plan(&bases, state.clean, state.recovery_point);
        // 4. Open / recover. Offset gaps at the end of a sealed segment come only from
        // compaction: without it (no compacting policy, no cleaner checkpoint entry), a
        // trusted segment must reach its successor, which its first use checks.
        let dense = !config.cleanup_policy.compacts() && state.first_dirty.is_none();
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        let mut unflushed = Vec::new();
        for (i, (&base, &treatment)) in bases.iter().zip(&treatments).enumerate() {
            let next = bases.get(i + 1).copied();
            let last = next.is_none();
            if treatment == Treatment::Trust {
                tracing::trace!(
                    file = %paths(&dir, base).0.display(),
                    "segment below the recovery point: opened without reading it"
                );
                let seg = Segment::open_trusted(&dir, base, next.unwrap_or(base), opts.clone())?;
                if dense {
                    seg.require_dense();
                }
                segments.push(seg);
                continue;
            }
            if treatment == Treatment::CleanActive {
                if let Some(seg) =
                    Segment::open_clean_active(&dir, base, recovery_point, opts.clone(), now)?
                {
                    segments.push(seg);
                    break;
                }
                tracing::warn!(
                    file = %paths(&dir, base).0.display(),
                    recovery_point,
                    "active segment's indexes disagree with the recovery point: recovering it"
                );
            }
            let (seg, mut recovered) =
                Segment::recover(&dir, base, opts.clone(), last, recovery_point, next, now)?;
            if let (Recovered::Intact, Some(next)) = (recovered, next) {
                // Appends fill a segment up to the next one's base offset; one that ends
                // short lost its tail in the crash (a power cut can keep a later file
                // and not the earlier one's last pages): the log ends here.
                if seg.next_offset() < next {
                    seg.check_end_after_recovery_point(recovery_point, next)?;
                    tracing::warn!(
                        file = %seg.log_path().display(),
                        position = seg.size(),
                        log_end = seg.next_offset(),
                        next_base = next,
                        "segment ends short of its successor: the log ends here"
                    );
                    recovered = Recovered::CutAt(seg.size());
                }
            }
            segments.push(Arc::clone(&seg));
            if let Recovered::CutAt(_) = recovered {
                if !last {
                    // Nothing past a torn write was flushed: later segments go.
                    for &later in &bases[i + 1..] {
                        tracing::warn!(
                            file = %paths(&dir, later).0.display(),
                            "deleting a segment past a torn write (nothing in it was flushed)"
                        );
                        delete_segment_files(&dir, later)?;
                    }
                    seg.reactivate()?;
                }
                // The cut is made durable now: once appends roll past this segment it
                // lies below the next recovery point and is never checked again, so a
                // torn tail that a crash brought back would stay in it.
                seg.flush()?;
                crate::fs::sync_dir(&dir)?;
                break;
            }
            if !last {
                unflushed.push(seg);
            }
        }
        // 5. Coverage, before anything is created in place of what is missing.
        check_coverage(&name, &dir, &segments, &state)?;
        // 6. Fresh.
        let fresh_log = segments.is_empty();
        if fresh_log {
            segments.push(Segment::create(&dir, 0, opts, now)?);
            dir_dirty = true;
        }
        // 7. Offsets. Never empty: a segment was created above if there was none.
        let active = Arc::clone(&segments[segments.len() - 1]);
        unflushed.retain(|s| !Arc::ptr_eq(s, &active));
        let log_end = active.next_offset();
        let log_start = state
            .log_start
            .unwrap_or(0)
            .max(segments[0].base_offset())
            .min(log_end);
        // What was found at or past the recovery point may still be dirty in the page
        // cache (after a process crash) or only partly on disk: it counts as durable once
        // a flush has synced it.
        let durable = if state.clean {
            log_end
        } else {
            recovery_point.min(log_end).max(log_start)
        };
        let p = Partition {
            inner: Arc::new(Inner {
                topic: key.0.as_str().into(),
                key,
                name,
                dir,
                config,
                clock,
                segments: RwLock::new(segments),
                writer: Mutex::new(Writer {
                    active,
                    buf: Vec::new(),
                    headers: Vec::new(),
                    unflushed,
                    dir_dirty,
                    records_since_flush: 0,
                    txn: None,
                }),
                truncation: RwLock::new(()),
                log_start_offset: AtomicU64::new(log_start),
                first_unstable: AtomicU64::new(super::txn_state::NOT_BUILT),
                log_end_offset: AtomicU64::new(log_end),
                durable_offset: AtomicU64::new(durable),
                sync: Mutex::new(SyncState {
                    running: false,
                    waiting: 0,
                    flushes: 0,
                    last: std::time::Instant::now(),
                }),
                flushed: Condvar::new(),
                poisoned: std::sync::OnceLock::new(),
                closed: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                checkpoints: Arc::clone(&ctx.checkpoints),
                cleaner: Mutex::new(()),
                maintenance: Mutex::new(()),
                first_dirty: AtomicU64::new(state.first_dirty.unwrap_or(0).max(log_start)),
                cleaner_buffer_bytes: ctx.cleaner_buffer_bytes,
                files: Arc::clone(&ctx.files),
                tombstone_expiry: AtomicI64::new(i64::MAX),
                notify,
            }),
        };
        if fresh_log {
            // Forced: nothing is pending (the durable offset is 0), but the new segment's
            // files must be in the directory durably.
            p.sync_to(0, true)?;
        }
        Ok(p)
    }
}

/// Checks that the opened `segments` hold the offsets the checkpoints say were written
/// (FORMAT.md §9): the log reaches the recovery point (flushed data; after a clean shutdown,
/// the log end itself), and after a clean shutdown the first segment starts at or below the
/// log start offset (retention raises it before deleting; only after a crash may the
/// checkpoint lag behind a deletion).
///
/// # Errors
/// [`Error::MissingOffsets`] naming the range and the files.
fn check_coverage(
    name: &str,
    dir: &Path,
    segments: &[Arc<Segment>],
    state: &OpenState,
) -> Result<()> {
    let missing = |from: u64, to: u64, detail: String| {
        tracing::error!(partition = name, from, to, %detail, "offsets missing at open");
        Err(Error::MissingOffsets {
            partition: name.to_string(),
            from,
            to,
            detail,
        })
    };
    let rp = state.recovery_point.unwrap_or(0);
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        if rp > 0 {
            let from = state.log_start.unwrap_or(0).min(rp);
            return missing(
                from,
                rp,
                format!(
                    "{} holds no segment file, but {} says the log reached offset {rp}",
                    dir.display(),
                    crate::checkpoint::RECOVERY_POINT_FILE
                ),
            );
        }
        return Ok(());
    };
    let end = last.next_offset();
    if end < rp {
        return missing(
            end,
            rp,
            format!(
                "{} says the log reached offset {rp}, but the last segment, {}, ends at {end} \
                 (byte {}); {} is missing",
                crate::checkpoint::RECOVERY_POINT_FILE,
                last.log_path().display(),
                last.size(),
                crate::segment::file_name(end, ".log")
            ),
        );
    }
    if let (true, Some(start)) = (state.clean, state.log_start) {
        if start < first.base_offset() {
            return missing(
                start,
                first.base_offset(),
                format!(
                    "{} says the log starts at offset {start}, but the first segment, {}, \
                     starts at {}: a segment file before it is missing",
                    crate::checkpoint::LOG_START_FILE,
                    first.log_path().display(),
                    first.base_offset(),
                ),
            );
        }
    }
    Ok(())
}

/// Ends the operations a crash interrupted in the partition directory `dir`, from the
/// temporary files they leave (FORMAT.md, "Temporary files"), so that each ends fully
/// done or fully undone:
///
/// - `*.tmp` (an atomic replace that did not rename), `*.cleaned` (a cleaned segment whose
///   swap had not committed) and `*.deleted` (a deletion that had committed): removed;
/// - `<base>.log.swap`: a cleaned segment whose swap committed. The old segments with base
///   offsets in `[base, next offset of the swap segment)` are deleted, then the `.swap`
///   files are renamed to their final names (missing index files are rebuilt later);
/// - `.index.swap` / `.timeindex.swap` without a `.log.swap`: removed (not committed).
///
/// Returns true when anything changed (the directory then needs an fsync).
///
/// # Errors
/// I/O errors; [`Error::Corrupt`] when a committed `.log.swap` file is corrupt.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<bool> {
    let mut changed = false;
    let mut swaps = Vec::new();
    let mut index_swaps = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if DISCARDED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            tracing::info!(file = %entry.path().display(), "removing a leftover of an interrupted operation");
            remove_if_exists(&entry.path())?;
            changed = true;
        } else if let Some(final_name) = name.strip_suffix(SWAP_SUFFIX) {
            match parse_log_name(final_name) {
                Some(base) => swaps.push(base),
                None => index_swaps.push(final_name.to_string()),
            }
        }
    }
    swaps.sort_unstable();
    for &base in &swaps {
        let (log, index, time) = paths(dir, base);
        let swap = |p: &Path| crate::fs::with_suffix(p, SWAP_SUFFIX);
        let next = Segment::open_read_only_at(&swap(&log), base)?.next_offset();
        let old: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("list", dir, e))?
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(parse_log_name))
            .filter(|&b| b >= base && b < next.max(base + 1))
            .collect();
        tracing::info!(
            file = %swap(&log).display(),
            replaces = ?old,
            "finishing a committed compaction swap"
        );
        for b in old {
            delete_segment_files(dir, b)?;
        }
        // The log last: while its `.swap` exists, the swap is redone at the next open.
        for p in [&index, &time, &log] {
            if swap(p).exists() {
                crate::fs::rename(&swap(p), p)?;
            }
        }
        changed = true;
    }
    // Index files whose `.log` is gone: the rest of a deletion.
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_owned))
        .collect();
    for name in &names {
        let orphan = [".index", ".timeindex", ".txnindex"].iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|digits| {
                let log = format!("{digits}.log");
                parse_log_name(&log).is_some() && !names.contains(&log)
            })
        });
        if orphan {
            tracing::info!(file = %dir.join(name).display(), "removing an index file without its .log");
            remove_if_exists(&dir.join(name))?;
            changed = true;
        }
    }
    for name in index_swaps {
        let committed = name
            .rsplit_once('.')
            .and_then(|(digits, _)| parse_log_name(&format!("{digits}.log")))
            .is_some_and(|b| swaps.contains(&b));
        if !committed {
            tracing::info!(
                file = %dir.join(format!("{name}{SWAP_SUFFIX}")).display(),
                "removing an index swap file whose swap never committed"
            );
            remove_if_exists(&dir.join(format!("{name}{SWAP_SUFFIX}")))?;
            changed = true;
        }
    }
    if changed {
        crate::fs::sync_dir(dir)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::{plan, Treatment::*};

    #[test]
    fn clean_with_recovery_point_trusts_everything() {
        let p = plan(&[0, 100, 200], true, Some(250));
        assert_eq!(p.recovery_point, 250);
        assert_eq!(p.treatments, [Trust, Trust, CleanActive]);
    }

    #[test]
    fn clean_without_recovery_point_recovers_the_active_segment() {
        let p = plan(&[0, 100, 200], true, None);
        assert_eq!(p.recovery_point, 0);
        assert_eq!(p.treatments, [Trust, Trust, Recover]);
    }

    #[test]
    fn unclean_recovers_from_the_segment_holding_the_recovery_point() {
        // 150 lies in the segment based at 100: it and every later one are recovered.
        assert_eq!(
            plan(&[0, 100, 200], false, Some(150)).treatments,
            [Trust, Recover, Recover]
        );
        // A recovery point equal to a base offset: the segments before it were flushed whole.
        assert_eq!(
            plan(&[0, 100, 200], false, Some(100)).treatments,
            [Trust, Recover, Recover]
        );
        assert_eq!(
            plan(&[0, 100, 200], false, Some(200)).treatments,
            [Trust, Trust, Recover]
        );
        // Past the last base offset: only the active segment.
        assert_eq!(
            plan(&[0, 100, 200], false, Some(999)).treatments,
            [Trust, Trust, Recover]
        );
    }

    #[test]
    fn unclean_without_recovery_point_recovers_everything() {
        let p = plan(&[0, 100, 200], false, None);
        assert_eq!(p.recovery_point, 0);
        assert_eq!(p.treatments, [Recover, Recover, Recover]);
        // A log whose first segment starts past 0 (retention): still everything.
        assert_eq!(
            plan(&[500, 600], false, None).treatments,
            [Recover, Recover]
        );
    }

    #[test]
    fn an_empty_directory_plans_nothing() {
        for (clean, rp) in [
            (true, Some(5)),
            (true, None),
            (false, Some(5)),
            (false, None),
        ] {
            assert!(plan(&[], clean, rp).treatments.is_empty());
        }
    }

    #[test]
    fn one_segment() {
        assert_eq!(plan(&[0], true, Some(10)).treatments, [CleanActive]);
        assert_eq!(plan(&[0], false, Some(10)).treatments, [Recover]);
        assert_eq!(plan(&[0], false, Some(0)).treatments, [Recover]);
    }

    #[test]
    fn the_plan_matches_its_rule_for_random_inputs() {
        // The rule, stated once more in the simplest terms, against the implementation.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let n = (next() % 6) as usize;
            let mut bases: Vec<u64> = (0..n).map(|_| next() % 1000).collect();
            bases.sort_unstable();
            bases.dedup();
            let clean = next() % 2 == 0;
            let rp = (next() % 3 != 0).then(|| next() % 1100);
            let p = plan(&bases, clean, rp);
            for (i, t) in p.treatments.iter().enumerate() {
                let last = i + 1 == bases.len();
                let expected = match (clean, rp) {
                    (true, Some(_)) if last => CleanActive,
                    (true, Some(_)) => Trust,
                    (true, None) if last => Recover,
                    (true, None) => Trust,
                    (false, rp) => match bases.get(i + 1) {
                        Some(&next_base) if next_base <= rp.unwrap_or(0) => Trust,
                        _ => Recover,
                    },
                };
                assert_eq!(
                    *t, expected,
                    "bases {bases:?} clean {clean} rp {rp:?} at {i}"
                );
            }
        }
    }
}
