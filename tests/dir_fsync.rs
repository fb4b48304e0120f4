//! Every creation, rename and removal of a file or directory that an acknowledgement
//! depends on is followed by an fsync of its directory before the call returns (issue 11,
//! item 8). Power-cut tests cannot see a missing directory fsync (the file systems they
//! run on keep directory changes); this reads the event log of the fault-injection seam
//! (`seglog::faults::record_events`) instead.
//!
//! Each test records the events under its own temporary directory, around one
//! acknowledged call, and checks that each change of a directory's entries is followed
//! by an fsync of that directory among the call's events.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{create, shared};
use seglog::faults::{self, FsEvent};
use seglog::{CleanupPolicy, FlushPolicy, Partition, Record, Store, StoreConfig, TopicConfig};

/// No background checkpoint or maintenance pass: only the call under test changes files.
fn config() -> StoreConfig {
    StoreConfig::default()
        .maintenance_interval(None)
        .checkpoint_interval(Duration::from_secs(3600))
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .expect("a path below the test directory")
        .to_path_buf()
}

/// Runs `call` (named `what`) and checks its events under `root`: every creation, rename
/// and removal is followed by an fsync of its directory. Returns the call's result and
/// the events, for further checks.
fn acknowledged<T>(root: &Path, what: &str, call: impl FnOnce() -> T) -> (T, Vec<FsEvent>) {
    faults::record_events(true);
    drop(faults::take_events_under(root));
    let result = call();
    let events = faults::take_events_under(root);
    for (i, e) in events.iter().enumerate() {
        let dirs = match e {
            FsEvent::Create(p)
            | FsEvent::CreateDir(p)
            | FsEvent::Remove(p)
            | FsEvent::RemoveDir(p) => vec![parent(p)],
            FsEvent::Rename(from, to) => vec![parent(from), parent(to)],
            FsEvent::SyncDir(_) | FsEvent::SyncFile(_) => continue,
        };
        for d in dirs {
            assert!(
                events[i + 1..].contains(&FsEvent::SyncDir(d.clone())),
                "{what}: {e:?} is not followed by an fsync of {} before the call returns; \
                 events: {events:#?}",
                d.display()
            );
        }
    }
    (result, events)
}

fn count(events: &[FsEvent], f: impl Fn(&FsEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn fill(p: &Partition, n: usize, key: impl Fn(usize) -> Vec<u8>) {
    for i in 0..n {
        p.append(&[Record::new(vec![0u8; 200]).with_key(key(i))])
            .unwrap();
    }
}

#[test]
fn store_open_on_a_new_directory_and_clean_shutdown() {
    let _f = shared();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let (store, events) = acknowledged(root.path(), "Store::open (new directory)", || {
        Store::open_with(&data, config()).unwrap()
    });
    assert!(
        events.contains(&FsEvent::CreateDir(data.clone())),
        "{events:#?}"
    );
    let ((), events) = acknowledged(root.path(), "Store::close", || store.close().unwrap());
    assert!(count(&events, |e| matches!(e, FsEvent::Rename(..))) > 0);
    // Opening after a clean shutdown removes the marker: a crash from now on is unclean.
    let (store, events) = acknowledged(root.path(), "Store::open (after close)", || {
        Store::open_with(&data, config()).unwrap()
    });
    assert!(count(&events, |e| matches!(e, FsEvent::Remove(_))) > 0);
    drop(store);
}

#[test]
fn topic_create_and_delete() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let (_, events) = acknowledged(dir.path(), "create_topic", || {
        store
            .create_topic("t", TopicConfig::default().partitions(3))
            .unwrap()
    });
    assert_eq!(count(&events, |e| matches!(e, FsEvent::CreateDir(_))), 3);
    let ((), events) = acknowledged(dir.path(), "delete_topic", || {
        store.delete_topic("t").unwrap()
    });
    assert_eq!(count(&events, |e| matches!(e, FsEvent::RemoveDir(_))), 3);
}

#[test]
fn segment_roll_by_a_durable_append() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let cfg = TopicConfig::default()
        .segment_bytes(2048)
        .flush_policy(FlushPolicy::EveryAppend);
    let p = create(&store, "t", cfg);
    let mut rolls = 0;
    for i in 0..40u8 {
        let before = p.segments().len();
        acknowledged(dir.path(), "append (EveryAppend)", || {
            p.append(&[Record::new(vec![i; 200])]).unwrap()
        });
        rolls += p.segments().len() - before;
    }
    assert!(rolls >= 3, "{rolls} rolls");
}

#[test]
fn segment_roll_then_flush_and_checkpoint() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let cfg = TopicConfig::default().segment_bytes(2048);
    let p = create(&store, "t", cfg);
    let (_, events) = acknowledged(dir.path(), "append + Partition::flush", || {
        fill(&p, 40, |i| vec![i as u8]);
        p.flush().unwrap()
    });
    assert!(count(&events, |e| matches!(e, FsEvent::Create(_))) >= 3);
    p.append(&[Record::new("more")]).unwrap();
    let (_, events) = acknowledged(dir.path(), "Store::flush (checkpoints)", || {
        store.flush().unwrap()
    });
    assert!(count(&events, |e| matches!(e, FsEvent::Rename(..))) >= 2);
}

#[test]
fn retention_deletions() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let cfg = TopicConfig::default()
        .segment_bytes(2048)
        .retention_ms(None)
        .retention_bytes(Some(4096));
    let p = create(&store, "t", cfg);
    fill(&p, 60, |i| vec![i as u8]);
    p.flush().unwrap();
    let (report, events) = acknowledged(dir.path(), "enforce_retention", || {
        p.enforce_retention().unwrap()
    });
    assert!(report.segments_deleted > 0);
    assert!(count(&events, |e| matches!(e, FsEvent::Remove(_))) >= 3);
    let target = p.segments()[1].base_offset() + 1;
    let (_, events) = acknowledged(dir.path(), "delete_records_before", || {
        p.delete_records_before(target).unwrap()
    });
    assert!(count(&events, |e| matches!(e, FsEvent::Remove(_))) >= 3);
    // Everything: the active segment's data goes too, after a roll.
    let end = p.log_end_offset();
    let (_, events) = acknowledged(dir.path(), "delete_records_before(log end)", || {
        p.delete_records_before(end).unwrap()
    });
    assert!(count(&events, |e| matches!(e, FsEvent::Create(_))) >= 1);
}

#[test]
fn truncation_across_segments() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let cfg = TopicConfig::default().segment_bytes(2048);
    let p = create(&store, "t", cfg);
    fill(&p, 60, |i| vec![i as u8]);
    p.flush().unwrap();
    let (_, events) = acknowledged(dir.path(), "truncate_to", || p.truncate_to(5).unwrap());
    assert!(count(&events, |e| matches!(e, FsEvent::Remove(_))) >= 3);
}

#[test]
fn compaction_swap() {
    let _f = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let cfg = TopicConfig::default()
        .segment_bytes(2048)
        .cleanup_policy(CleanupPolicy::Compact)
        .min_cleanable_dirty_ratio(0.0)
        .retention_ms(None);
    let p = create(&store, "t", cfg);
    fill(&p, 60, |i| vec![(i % 3) as u8]);
    p.flush().unwrap();
    let (report, events) = acknowledged(dir.path(), "compact", || p.compact().unwrap());
    assert!(report.cleaned, "{report:?}");
    assert!(count(&events, |e| matches!(e, FsEvent::Rename(..))) >= 2);
}
