//! A read below the log end never stalls silently, and no range of offsets goes missing
//! without an error: (a) a bit flipped in the base offset of the empty batch compaction
//! keeps, (b) the active segment's `.log` deleted (after a clean or an unclean shutdown),
//! (c) a sealed segment deleted from the middle. Each gives an error naming the file and
//! the position or the missing range, never an empty fetch or a silent gap.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{shared, ManualClock};
use seglog::{CleanupPolicy, Clock, Error, Partition, Record, Store, StoreConfig, TopicConfig};

const T: i64 = 1_700_000_000_000;

fn open(dir: &Path, clock: &Arc<ManualClock>) -> seglog::Result<Store> {
    let clock: Arc<dyn Clock> = clock.clone();
    Store::open_with(
        dir,
        StoreConfig::default()
            .clock(clock)
            .maintenance_interval(None),
    )
}

fn partition(store: &Store) -> Partition {
    store.topic("t").unwrap().partition(0).unwrap().clone()
}

/// Every `.log` file of the partition directory, by base offset.
fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn base_of(log: &Path) -> u64 {
    log.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A delete-policy topic `t` with `n` records over several segments, closed cleanly (or
/// crashed after a flush, which writes the checkpoints, when `clean` is false).
fn delete_topic_log(dir: &Path, clock: &Arc<ManualClock>, n: u64, clean: bool) -> PathBuf {
    let store = open(dir, clock).unwrap();
    let t = store
        .create_topic("t", TopicConfig::default().segment_bytes(2_000))
        .unwrap();
    for i in 0..n {
        t.send_to(0, Record::new(format!("value-{i:04}")).with_timestamp(T))
            .unwrap();
    }
    let pdir = partition(&store).dir().to_path_buf();
    assert!(logs(&pdir).len() >= 4, "{:?}", logs(&pdir));
    drop(t);
    if clean {
        store.close().unwrap();
    } else {
        store.flush().unwrap();
        store.simulate_crash();
    }
    pdir
}

/// Reads the whole log in order: every read below the log end must make progress.
fn read_through(p: &Partition) -> seglog::Result<u64> {
    let mut at = p.log_start_offset();
    let mut records = 0;
    while at < p.log_end_offset() {
        let f = p.read(at, 1 << 20)?;
        assert!(
            f.next_offset() > at,
            "read at {at} below the log end {} made no progress",
            p.log_end_offset()
        );
        for r in f.records() {
            assert!(r.offset() >= at);
            records += 1;
        }
        at = f.next_offset();
    }
    Ok(records)
}

/// A compacted topic of small segments, cleaned whatever its dirty ratio.
fn compacted() -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(2_000)
        .min_cleanable_dirty_ratio(0.0)
}

#[test]
fn a_flipped_base_offset_in_a_kept_empty_batch_is_an_error_not_a_stall() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock).unwrap();
    let t = store.create_topic("t", compacted()).unwrap();
    // One key: compaction empties every cleaned segment but keeps its last batch.
    for i in 0..300 {
        t.send_to(
            0,
            Record::new(format!("v{i:04}"))
                .with_key("k")
                .with_timestamp(T),
        )
        .unwrap();
    }
    let p = partition(&store);
    let report = p.compact().unwrap();
    assert!(report.cleaned);
    let first = p.segments()[0].log_path().to_path_buf();
    // The cleaned first segment holds one empty batch: a 61-byte header.
    assert_eq!(std::fs::metadata(&first).unwrap().len(), 61);
    let f = p.read(0, 1 << 20).unwrap();
    assert!(f.next_offset() > 0);
    drop((t, p));
    store.close().unwrap();

    // Bit 40 of the first batch's base offset (not covered by the CRC).
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[2] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();

    let store = open(dir.path(), &clock).unwrap();
    let p = partition(&store);
    assert_eq!(p.log_end_offset(), 300);
    match p.read(0, 1 << 20) {
        Err(Error::Corrupt { path, position, .. }) => {
            assert_eq!(path, first);
            assert_eq!(position, 0);
        }
        Ok(f) => panic!(
            "read(0) below the log end 300 returned {} bytes, next offset {}",
            f.as_bytes().len(),
            f.next_offset()
        ),
        Err(e) => panic!("unexpected error {e}"),
    }
    store.close().unwrap();
}

/// (b): the active segment's `.log` deleted; after a clean shutdown and after a crash.
#[test]
fn a_deleted_active_segment_is_a_missing_range_at_open() {
    let _g = shared();
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let pdir = delete_topic_log(dir.path(), &clock, 330, clean);
        let active = logs(&pdir).pop().unwrap();
        let base = base_of(&active);
        std::fs::remove_file(&active).unwrap();
        match open(dir.path(), &clock) {
            Err(Error::MissingOffsets {
                from, to, detail, ..
            }) => {
                assert_eq!((from, to), (base, 330), "clean {clean}: {detail}");
                let name = active.file_name().unwrap().to_str().unwrap();
                assert!(detail.contains(name), "clean {clean}: {detail}");
            }
            Ok(store) => {
                let p = partition(&store);
                panic!(
                    "clean {clean}: opened with log end {} although offsets {base}.. are gone; \
                     read({base}) gives {:?} bytes",
                    p.log_end_offset(),
                    p.read(base, 1 << 20).map(|f| f.as_bytes().len())
                );
            }
            Err(e) => panic!("clean {clean}: unexpected error {e}"),
        }
    }
}

#[test]
fn a_partition_with_every_segment_deleted_is_a_missing_range_at_open() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let pdir = delete_topic_log(dir.path(), &clock, 330, true);
    for log in logs(&pdir) {
        std::fs::remove_file(log).unwrap();
    }
    match open(dir.path(), &clock) {
        Err(Error::MissingOffsets { to, .. }) => assert_eq!(to, 330),
        Ok(store) => panic!(
            "opened with log end {}: offsets 0..330 would be reused",
            partition(&store).log_end_offset()
        ),
        Err(e) => panic!("unexpected error {e}"),
    }
    // Nothing was created in place of the lost segments.
    assert!(logs(&pdir).is_empty());
}

/// (c): a sealed segment deleted from the middle of a delete-policy log.
#[test]
fn a_segment_deleted_from_the_middle_is_an_error_not_a_gap() {
    let _g = shared();
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let pdir = delete_topic_log(dir.path(), &clock, 330, clean);
        let all = logs(&pdir);
        let (gone, next) = (base_of(&all[1]), base_of(&all[2]));
        for ext in ["log", "index", "timeindex"] {
            let _ = std::fs::remove_file(all[1].with_extension(ext));
        }
        let store = match open(dir.path(), &clock) {
            Ok(s) => s,
            Err(Error::MissingOffsets { from, to, .. }) => {
                assert_eq!((from, to), (gone, next));
                continue;
            }
            Err(e) => panic!("clean {clean}: unexpected error {e}"),
        };
        let p = partition(&store);
        match read_through(&p) {
            Err(Error::MissingOffsets {
                from, to, detail, ..
            }) => {
                assert_eq!((from, to), (gone, next), "clean {clean}: {detail}");
                let name = all[0].file_name().unwrap().to_str().unwrap();
                assert!(detail.contains(name), "{detail}");
            }
            Ok(n) => panic!("clean {clean}: read {n} records of 330 without an error"),
            Err(e) => panic!("clean {clean}: unexpected error {e}"),
        }
        // A read inside the missing range too.
        assert!(
            matches!(p.read(gone + 1, 1 << 20), Err(Error::MissingOffsets { .. })),
            "clean {clean}"
        );
        store.close().unwrap();
    }
}

/// Compaction's gaps are not missing offsets: a compacted log reads through at every
/// offset after a reopen.
#[test]
fn compaction_gaps_read_through_after_a_reopen() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock).unwrap();
    let t = store.create_topic("t", compacted()).unwrap();
    for i in 0..400 {
        let key = format!("k{}", if i % 7 == 0 { i } else { i % 5 });
        t.send_to(
            0,
            Record::new(format!("v{i:04}"))
                .with_key(key)
                .with_timestamp(T),
        )
        .unwrap();
    }
    assert!(partition(&store).compact().unwrap().cleaned);
    drop(t);
    store.close().unwrap();
    let store = open(dir.path(), &clock).unwrap();
    let p = partition(&store);
    let n = read_through(&p).unwrap();
    assert!(n < 400 && n > 0, "{n}");
    for at in 0..p.log_end_offset() {
        let f = p.read(at, 1 << 20).unwrap();
        assert!(f.next_offset() > at, "read at {at}");
    }
    store.close().unwrap();
}
