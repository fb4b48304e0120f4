//! Soak: several threads append at full speed to size-retained, compacted and
//! `compact,delete` topics while the store's background maintenance runs at a short
//! interval. Retention must keep up (segments per retained partition and disk use stay
//! bounded) and deleted segments must release their descriptors.
//!
//! The soak lasts `SEGLOG_SOAK_SECS` seconds (default 3). No assertion depends on timing:
//! the bounds are on counts and sizes, and the writers wait for the first maintenance
//! passes before the measured phase starts.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{CleanupPolicy, Partition, Record, Store, StoreConfig, TopicConfig};

const SEGMENT: u64 = 16 << 10;
const RETAINED: u64 = 256 << 10;

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

#[derive(Debug, Default)]
struct Peaks {
    segments_retained: usize,
    segments_mixed: usize,
    disk: u64,
    fds: usize,
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
    let config = StoreConfig::default()
        .maintenance_interval(Some(Duration::from_millis(20)))
        .checkpoint_interval(Duration::from_millis(500));
    let store = Store::open_with(dir.path(), config).unwrap();
    let ret = store
        .create_topic("retained", retained(CleanupPolicy::Delete))
        .unwrap();
    let mixed = store
        .create_topic("mixed", retained(CleanupPolicy::CompactDelete))
        .unwrap();
    let compacted = store
        .create_topic(
            "compacted",
            TopicConfig::default()
                .partitions(3)
                .segment_bytes(SEGMENT)
                .segment_index_bytes(4096)
                .cleanup_policy(CleanupPolicy::Compact)
                .min_cleanable_dirty_ratio(0.1),
        )
        .unwrap();
    let retained_parts: Vec<Partition> = ret.partitions().to_vec();
    let mixed_parts: Vec<Partition> = mixed.partitions().to_vec();
    let all: Vec<Partition> = [&ret, &mixed, &compacted]
        .iter()
        .flat_map(|t| t.partitions().iter().cloned())
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, appended, all) = (stop.clone(), appended.clone(), all.clone());
            std::thread::spawn(move || {
                let mut i = w as u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = &all[(i as usize) % all.len()];
                    // 2,000 keys: compaction has plenty to remove.
                    let key = format!("key-{}", i % 2000).into_bytes();
                    p.append(&[Record::new(value(i)).with_key(key)]).unwrap();
                    appended.fetch_add(1, Ordering::Relaxed);
                    i += 3;
                }
            })
        })
        .collect();

    // The measured phase starts once the background maintenance has reported a pass.
    while store.last_maintenance().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let warm = appended.load(Ordering::Relaxed);
    let mut peaks = Peaks::default();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let seg_max = |ps: &[Partition]| ps.iter().map(|p| p.stats().segments).max().unwrap();
        let (fds, deleted) = fds_under(dir.path());
        peaks.segments_retained = peaks.segments_retained.max(seg_max(&retained_parts));
        peaks.segments_mixed = peaks.segments_mixed.max(seg_max(&mixed_parts));
        peaks.disk = peaks.disk.max(disk_use(dir.path()));
        peaks.fds = peaks.fds.max(fds);
        peaks.deleted_fds = peaks.deleted_fds.max(deleted);
        peaks.samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    let rate = (appended.load(Ordering::Relaxed) - warm) / secs.max(1);
    let report = store.last_maintenance();
    println!("appends/s: {rate}; peaks: {peaks:?}; last maintenance: {report:?}");

    // Once writes stop, the maintenance catches up: every deleted segment's descriptors
    // are released (polled: a pass may be deleting at the moment of a sample).
    let mut deleted_at_end = usize::MAX;
    for _ in 0..500 {
        deleted_at_end = fds_under(dir.path()).1;
        if deleted_at_end == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let allowed = retention_allows();
    // 9 partitions; retained ones at most 4× what retention allows, compacted ones hold at
    // most 2,000 keys' latest values (≈ 300 KiB) plus their dirty part and active segment.
    let disk_bound = 6 * 4 * allowed as u64 * SEGMENT + 3 * 4 * RETAINED;
    // Three descriptors per segment.
    let fd_bound = 3 * (6 * 4 * allowed + 3 * 4 * allowed);
    assert!(
        peaks.segments_retained <= 4 * allowed,
        "a size-retained partition reached {} segments (retention allows {allowed}): {peaks:?}",
        peaks.segments_retained
    );
    assert!(
        peaks.segments_mixed <= 4 * allowed,
        "a compact,delete partition reached {} segments (retention allows {allowed}): {peaks:?}",
        peaks.segments_mixed
    );
    assert!(
        peaks.disk <= disk_bound,
        "disk use reached {} bytes (bound {disk_bound}): {peaks:?}",
        peaks.disk
    );
    assert!(
        peaks.fds <= fd_bound,
        "{} descriptors on the store's files (bound {fd_bound}): {peaks:?}",
        peaks.fds
    );
    assert_eq!(
        deleted_at_end, 0,
        "descriptors on deleted files after writes stopped: {peaks:?}"
    );
    store.close().unwrap();
}
