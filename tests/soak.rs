//! Soak: several threads append at full speed to size-retained, compacted and
//! `compact,delete` topics while the store's background maintenance runs at a short
//! interval. Appends never fail, deleted segments release their descriptors, and once
//! writes stop the background retention brings every size-retained partition
//! back within its limit, on disk too.
//!
//! The soak lasts `SEGLOG_SOAK_SECS` seconds (default 3; `SEGLOG_SOAK_TRACE=1` prints
//! every sample). No assertion depends on timing: how far retention falls behind writers
//! at full speed depends on how the machine schedules the threads (on a loaded 2-core CI
//! machine a partition once reached 341 segments between passes), so the peak segment
//! counts are printed, not asserted. The bounds asserted are on the state
//! the background maintenance reaches once writes stop.
//!
//! The other tests pin down, deterministically, the two causes the soak exposed: what keeps
//! deleted segments' files open, and retention running while a compaction pass cleans the
//! same partition. They look inside a compaction pass through the store clock, which the
//! pass reads at its start and before each swap.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seglog::{CleanupPolicy, Clock, Partition, Record, Store, StoreConfig, TopicConfig};

const SEGMENT: u64 = 16 << 10;
const RETAINED: u64 = 256 << 10;
/// The compacted topic: prefilled with this many keys of `PREFILL_VALUE` bytes each
/// (10 MB per partition), in segments small enough that each compaction pass, which
/// rewrites the whole cleaned log and syncs every rewritten segment, takes a while; large
/// enough that the cleaner keeps up with the writers (with 16 KiB segments it does not,
/// whichever thread retention runs on).
const COMPACTED_SEGMENT: u64 = 64 << 10;
const COMPACTED_KEYS: u64 = 10_000;
const PREFILL_VALUE: usize = 1000;

/// Descriptors of this process on files under `dir`: (all, those on deleted files).
fn fds_under(dir: &Path) -> (usize, usize) {
    let dir = dir.to_string_lossy().into_owned();
    let (mut all, mut deleted) = (0, 0);
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    for e in entries.flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue; // closed meanwhile
        };
        let target = target.to_string_lossy();
        if target.starts_with(&dir) {
            all += 1;
            deleted += target.ends_with(" (deleted)") as usize;
        }
    }
    (all, deleted)
}

/// Sum of the sizes of the files under `dir` (blocks allocated: index files are sparse).
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            total += disk_use(&e.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

fn proc_fd_available() -> bool {
    if std::fs::read_dir("/proc/self/fd").is_err() {
        println!("skipped: /proc/self/fd is not readable on this system");
        return false;
    }
    true
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(100, b'.');
    v
}

fn retained(policy: CleanupPolicy) -> TopicConfig {
    TopicConfig::default()
        .partitions(3)
        .segment_bytes(SEGMENT)
        .segment_index_bytes(4096)
        .cleanup_policy(policy)
        .retention_bytes(Some(RETAINED))
        .retention_ms(None)
}

/// The largest values seen by the samples of the measured phase. "Bounded" partitions are
/// those of the two topics with size retention (delete and compact,delete).
#[derive(Debug, Default)]
struct Peaks {
    segments_retained: usize,
    segments_mixed: usize,
    segments_compacted: usize,
    /// Disk use of the bounded partitions' directories.
    disk_bounded: u64,
    /// Disk use of the whole data directory.
    disk_all: u64,
    /// Descriptors on the bounded partitions' files.
    fds_bounded: usize,
    /// Descriptors on files under the data directory.
    fds_all: usize,
    /// Descriptors on deleted files under the data directory.
    deleted_fds: usize,
    samples: usize,
}

/// Segments retention keeps at most per partition right after a pass: the segments that
/// hold `RETAINED` bytes, one over (a segment goes only when the rest still hold the
/// limit), and the active one.
fn retention_allows() -> usize {
    (RETAINED / SEGMENT) as usize + 2
}

#[test]
fn retention_keeps_up_with_full_speed_appends() {
    if !proc_fd_available() {
        return;
    }
    let secs: u64 = std::env::var("SEGLOG_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    // Topics created and the compacted one filled with the maintenance off, so that the
    // soak starts from the same state every time.
    {
        let store = Store::open_with(
            dir.path(),
            StoreConfig::default().maintenance_interval(None),
        )
        .unwrap();
        store
            .create_topic("retained", retained(CleanupPolicy::Delete))
            .unwrap();
        store
            .create_topic(
                "mixed",
                retained(CleanupPolicy::CompactDelete).partitions(6),
            )
            .unwrap();
        let compacted = TopicConfig::default()
            .partitions(3)
            .segment_bytes(COMPACTED_SEGMENT)
            .segment_index_bytes(4096)
            .cleanup_policy(CleanupPolicy::Compact)
            .min_cleanable_dirty_ratio(0.01);
        for p in store
            .create_topic("compacted", compacted)
            .unwrap()
            .partitions()
        {
            for chunk in (0..COMPACTED_KEYS).collect::<Vec<_>>().chunks(50) {
                let batch: Vec<Record> = chunk
                    .iter()
                    .map(|k| Record::new(vec![b'v'; PREFILL_VALUE]).with_key(format!("key-{k}")))
                    .collect();
                p.append(&batch).unwrap();
            }
        }
        store.close().unwrap();
    }
    let config = StoreConfig::default()
        .maintenance_interval(Some(Duration::from_millis(20)))
        .checkpoint_interval(Duration::from_millis(500));
    let store = Store::open_with(dir.path(), config).unwrap();
    let (ret, mixed, compacted) = (
        store.topic("retained").unwrap(),
        store.topic("mixed").unwrap(),
        store.topic("compacted").unwrap(),
    );
    let retained_parts: Vec<Partition> = ret.partitions().to_vec();
    let mixed_parts: Vec<Partition> = mixed.partitions().to_vec();
    let compacted_parts: Vec<Partition> = compacted.partitions().to_vec();
    let all: Vec<Partition> = [&ret, &mixed, &compacted]
        .iter()
        .flat_map(|t| t.partitions().iter().cloned())
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (stop, appended, all) = (stop.clone(), appended.clone(), all.clone());
            // A failed append (pre-fix: "Too many open files") stops every writer.
            std::thread::spawn(move || -> seglog::Result<()> {
                let mut i = w as u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = &all[(i as usize) % all.len()];
                    // Compaction has plenty to remove: 2,000 keys in the compact,delete
                    // topic, the prefilled ones in the compacted topic.
                    let keys = if p.config().cleanup_policy == CleanupPolicy::Compact {
                        COMPACTED_KEYS
                    } else {
                        2000
                    };
                    let key = format!("key-{}", i % keys).into_bytes();
                    if let Err(e) = p.append(&[Record::new(value(i)).with_key(key)]) {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    appended.fetch_add(1, Ordering::Relaxed);
                    i += 2;
                }
                Ok(())
            })
        })
        .collect();

    // Samples from the start; the soak lasts `secs` from the first maintenance pass's end
    // (or until an append fails).
    let mut peaks = Peaks::default();
    let bounded: Vec<Partition> = retained_parts.iter().chain(&mixed_parts).cloned().collect();
    let trace = std::env::var_os("SEGLOG_SOAK_TRACE").is_some();
    let start = Instant::now();
    let mut measured: Option<(Instant, u64)> = None;
    while !stop.load(Ordering::Relaxed) {
        match measured {
            None if store.last_maintenance().is_some() => {
                measured = Some((Instant::now(), appended.load(Ordering::Relaxed)));
            }
            Some((from, _)) if from.elapsed() >= Duration::from_secs(secs) => break,
            _ => {}
        }
        let seg_max = |ps: &[Partition]| ps.iter().map(|p| p.stats().segments).max().unwrap();
        let (retained_now, mixed_now, compacted_now) = (
            seg_max(&retained_parts),
            seg_max(&mixed_parts),
            seg_max(&compacted_parts),
        );
        let disk_bounded: u64 = bounded.iter().map(|p| disk_use(p.dir())).sum();
        let fds_bounded: usize = bounded.iter().map(|p| fds_under(p.dir()).0).sum();
        let disk_all = disk_use(dir.path());
        let (fds_all, deleted) = fds_under(dir.path());
        if trace {
            println!(
                "{} ms: segments retained {retained_now} mixed {mixed_now} compacted \
                 {compacted_now}; disk {disk_bounded} bounded, {disk_all} all; fds \
                 {fds_bounded} bounded, {fds_all} all, {deleted} deleted",
                start.elapsed().as_millis(),
            );
        }
        peaks.segments_retained = peaks.segments_retained.max(retained_now);
        peaks.segments_mixed = peaks.segments_mixed.max(mixed_now);
        peaks.segments_compacted = peaks.segments_compacted.max(compacted_now);
        peaks.disk_bounded = peaks.disk_bounded.max(disk_bounded);
        peaks.disk_all = peaks.disk_all.max(disk_all);
        peaks.fds_bounded = peaks.fds_bounded.max(fds_bounded);
        peaks.fds_all = peaks.fds_all.max(fds_all);
        peaks.deleted_fds = peaks.deleted_fds.max(deleted);
        peaks.samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let failed: Vec<seglog::Error> = writers
        .into_iter()
        .filter_map(|w| w.join().unwrap().err())
        .collect();
    let rate = measured.map_or(0, |(from, warm)| {
        (appended.load(Ordering::Relaxed) - warm) * 1000
            / (from.elapsed().as_millis() as u64).max(1)
    });
    let report = store.last_maintenance();
    println!("appends/s: {rate}; peaks: {peaks:?}; last maintenance: {report:?}");

    // Before deleted segments released their descriptors, a process whose live segments
    // needed a few hundred held 19,994 and appends failed with EMFILE.
    assert!(failed.is_empty(), "appends failed: {failed:?}; {peaks:?}");
    // Once writes stop, the background retention thread (not a call of ours) brings every
    // size-retained partition within what retention allows. Waited for generously: this
    // is a liveness check, a pass takes milliseconds.
    let allowed = retention_allows();
    let deadline = Instant::now() + Duration::from_secs(120);
    let over = || -> Vec<(String, usize)> {
        bounded
            .iter()
            .filter(|p| p.stats().segments > allowed)
            .map(|p| (p.dir().display().to_string(), p.stats().segments))
            .collect()
    };
    while !over().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        over(),
        Vec::<(String, usize)>::new(),
        "size-retained partitions above the {allowed} segments retention allows after \
         writes stopped: {peaks:?}"
    );
    // And every deleted segment's descriptors are released (polled: a pass may be deleting
    // at the moment of a sample).
    let mut deleted_at_end = usize::MAX;
    while Instant::now() < deadline {
        deleted_at_end = fds_under(dir.path()).1;
        if deleted_at_end == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        deleted_at_end, 0,
        "descriptors on deleted files after writes stopped: {peaks:?}"
    );
    // Per segment: the `.log` (at most a segment's bytes) and two index files of at most
    // `segment_index_bytes` (4096) each, with a page of slack per file.
    let per_segment = SEGMENT + 2 * 4096 + 3 * 4096;
    let disk_bound = (bounded.len() * allowed) as u64 * per_segment;
    let disk_now: u64 = bounded.iter().map(|p| disk_use(p.dir())).sum();
    assert!(
        disk_now <= disk_bound,
        "size-retained partitions use {disk_now} bytes after retention (bound {disk_bound})"
    );
    store.close().unwrap();
}

/// A store clock that runs `hook` on every reading (once at a time: a reading made by the
/// hook itself does not run it again).
#[derive(Default)]
struct ProbeClock {
    now: AtomicI64,
    calls: AtomicUsize,
    #[allow(clippy::type_complexity)]
    hook: Mutex<Option<Box<dyn FnMut(usize) + Send>>>,
}

impl std::fmt::Debug for ProbeClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeClock")
            .field("now", &self.now)
            .finish()
    }
}

impl ProbeClock {
    fn set_hook(&self, hook: impl FnMut(usize) + Send + 'static) {
        self.calls.store(0, Ordering::SeqCst);
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    fn clear_hook(&self) {
        *self.hook.lock().unwrap() = None;
    }
}

impl Clock for ProbeClock {
    fn now_ms(&self) -> i64 {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let hook = self.hook.lock().unwrap().take();
        if let Some(mut hook) = hook {
            hook(call);
            let mut slot = self.hook.lock().unwrap();
            if slot.is_none() {
                *slot = Some(hook);
            }
        }
        self.now.load(Ordering::SeqCst)
    }
}

const T: i64 = 1_700_000_000_000;

fn probe_store(dir: &Path) -> (Store, Arc<ProbeClock>) {
    let clock = Arc::new(ProbeClock::default());
    clock.now.store(T, Ordering::SeqCst);
    let config = StoreConfig::default()
        .maintenance_interval(None)
        .clock(clock.clone());
    (Store::open_with(dir, config).unwrap(), clock)
}

/// A one-record batch of fixed size: key `o % 7`, value naming `o`.
fn fixed(o: u64, ts: i64) -> Record {
    Record::new(format!("value-{o:08}"))
        .with_key(format!("key-{}", o % 7))
        .with_timestamp(ts)
}

/// Segments of exactly three such batches: two never fit together in `segment_bytes`, so
/// compaction rewrites every segment as a group of its own.
fn three_batch_segments(dir: &Path) -> u64 {
    let (store, _) = probe_store(dir);
    let p = store
        .create_topic("probe", TopicConfig::default())
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    let size = p.append(&[fixed(0, T)]).unwrap().batch_bytes as u64;
    store.close().unwrap();
    3 * size + size / 2
}

/// Reads every record from the log start: (offset, key, value, timestamp).
type Rec = (u64, Vec<u8>, Vec<u8>, i64);
fn read_all(p: &Partition) -> Vec<Rec> {
    let end = p.log_end_offset();
    let mut records = p.records_from(p.log_start_offset());
    let out = records
        .by_ref()
        .map(|r| {
            let r = r.unwrap();
            (r.offset, r.key.unwrap(), r.value.unwrap(), r.timestamp)
        })
        .take_while(|r| r.0 < end)
        .collect();
    assert!(records.position() >= end, "records stop below the log end");
    out
}

/// The segment files in `dir` (no leftovers such as `.cleaned` or `.swap`), by base offset.
fn log_files(dir: &Path) -> Vec<u64> {
    let mut bases = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap"),
            "leftover {name}"
        );
        if let Some(base) = name.strip_suffix(".log") {
            bases.push(base.parse().unwrap());
        }
    }
    bases.sort();
    bases
}

/// Retention deleting segments, with nothing reading, leaves no descriptor on a deleted
/// file, for flushed and unflushed segments, on delete and compact,delete topics.
#[test]
fn retention_leaves_no_descriptor_on_deleted_files() {
    if !proc_fd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = probe_store(dir.path());
    for (name, policy) in [
        ("delete", CleanupPolicy::Delete),
        ("both", CleanupPolicy::CompactDelete),
    ] {
        let p = store
            .create_topic(name, retained(policy).partitions(1))
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        for i in 0..20_000u64 {
            p.append(&[Record::new(value(i)).with_key(format!("k{}", i % 100))])
                .unwrap();
            if i == 10_000 {
                // Older segments flushed (and compacted), newer ones not.
                p.flush().unwrap();
                if policy.compacts() {
                    assert!(p.compact_now().unwrap().cleaned);
                }
            }
        }
        let before = p.stats().segments;
        let r = p.enforce_retention().unwrap();
        assert!(
            r.segments_deleted > 10,
            "{name}: {r:?} of {before} segments"
        );
        let (fds, deleted) = fds_under(p.dir());
        assert_eq!(deleted, 0, "{name}: descriptors on deleted files");
        assert!(
            fds <= 3 * p.stats().segments,
            "{name}: {fds} descriptors for {} segments",
            p.stats().segments
        );
    }
    store.close().unwrap();
}

/// A compaction pass closes the files of the segments it swapped out as it goes: it
/// never holds more deleted files than those of the group it is swapping. (It held all of
/// them until the end of the pass: with thousands of small segments, thousands of
/// descriptors on deleted files.)
#[test]
fn compaction_pass_releases_swapped_out_segments() {
    if !proc_fd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes = three_batch_segments(&dir.path().join("probe"));
    let (store, clock) = probe_store(dir.path());
    let p = store
        .create_topic(
            "compacted",
            TopicConfig::default()
                .segment_bytes(segment_bytes)
                .cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    for o in 0..60 {
        p.append(&[fixed(o, T)]).unwrap();
    }
    assert_eq!(p.stats().segments, 20);
    let peak = Arc::new(AtomicUsize::new(0));
    let (pdir, peak2) = (p.dir().to_path_buf(), peak.clone());
    clock.set_hook(move |_| {
        peak2.fetch_max(fds_under(&pdir).1, Ordering::SeqCst);
    });
    let r = p.compact_now().unwrap();
    clock.clear_hook();
    assert_eq!(r.segments_before, 19, "{r:?}");
    let peak = peak.load(Ordering::SeqCst);
    // One group is one segment: three files.
    assert!(
        peak <= 3,
        "{peak} descriptors on deleted files during the pass (one group has 3 files)"
    );
    assert_eq!(fds_under(p.dir()).1, 0);
    store.close().unwrap();
}

/// Retention runs while a compaction pass cleans the same partition (it does not wait for
/// the pass) and deletes segments the pass is cleaning: the pass discards their cleaned
/// copies, so nothing retention deleted comes back, now or after a reopen.
#[test]
fn retention_during_a_compaction_pass_wins() {
    let dir = tempfile::tempdir().unwrap();
    let segment_bytes = three_batch_segments(&dir.path().join("probe"));
    let data = dir.path().join("data");
    let (store, clock) = probe_store(&data);
    let config = TopicConfig::default()
        .segment_bytes(segment_bytes)
        .cleanup_policy(CleanupPolicy::CompactDelete)
        .retention_ms(Some(50_000));
    let p = store
        .create_topic("both", config)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    // Segments 0-4 old (timestamp T), 5-19 new.
    let mut history = Vec::new();
    for o in 0..60u64 {
        let ts = if o < 15 { T } else { T + 100_000 };
        p.append(&[fixed(o, ts)]).unwrap();
        history.push((o, ts));
    }
    let old_bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(old_bases.len(), 20);
    // Clock readings of the pass: 1 at its start, then one before each swap. Before the
    // second swap (group 1 cleaned, group 0 swapped in), time moves on and retention runs
    // — on this thread: the pass must not hold the lock retention takes.
    let retained = Arc::new(Mutex::new(None));
    let (p2, clock2, retained2) = (p.clone(), Arc::downgrade(&clock), retained.clone());
    clock.set_hook(move |call| {
        if call == 3 {
            clock2
                .upgrade()
                .unwrap()
                .now
                .store(T + 100_000, Ordering::SeqCst);
            *retained2.lock().unwrap() = Some(p2.enforce_retention().unwrap());
        }
    });
    let r = p.compact_now().unwrap();
    clock.clear_hook();
    let retention = retained
        .lock()
        .unwrap()
        .take()
        .expect("retention ran during the pass");
    // Groups 0-4 (group 0 already cleaned, group 1 cleaned but not swapped, 2-4 not yet
    // cleaned) went by retention; the pass swapped 0 and 5-18 only.
    assert_eq!(retention.segments_deleted, 5, "{retention:?}");
    assert_eq!(p.log_start_offset(), 15);
    assert_eq!(r.segments_before, 15, "{r:?}");
    assert_eq!(r.segments_after, 15, "{r:?}");

    let check = |p: &Partition, at: &str| {
        assert_eq!(p.log_start_offset(), 15, "{at}");
        let recs = read_all(p);
        let mut latest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for (o, key, value, ts) in &recs {
            assert!(
                *o >= 15,
                "{at}: record {o}, which retention deleted, is back"
            );
            assert_eq!(*ts, history[*o as usize].1, "{at}: record {o}");
            assert_eq!(
                value,
                format!("value-{o:08}").as_bytes(),
                "{at}: record {o}"
            );
            latest.insert(key.clone(), *o);
        }
        // Every key's latest value is there (offsets 53-59 hold keys 0-6).
        assert_eq!(latest.values().copied().min(), Some(53), "{at}: {latest:?}");
        assert_eq!(latest.len(), 7, "{at}");
        let listed: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
        assert_eq!(log_files(p.dir()), listed, "{at}: files on disk");
        assert!(listed.iter().all(|&b| b >= 15), "{at}: {listed:?}");
    };
    check(&p, "after the pass");
    drop(p);
    store.close().unwrap();
    let (store, _) = probe_store(&data);
    check(
        &store.topic("both").unwrap().partition(0).unwrap().clone(),
        "after a reopen",
    );
    store.close().unwrap();
}
