//! Flush policies and group commit: when appends become durable, and that concurrent
//! durable appenders share fsyncs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::wait_for;

use seglog::{Error, FlushPolicy, Partition, Record, Store, TopicConfig};

fn open(policy: FlushPolicy) -> (tempfile::TempDir, Store, Partition) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("d", TopicConfig::default().flush_policy(policy))
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    (dir, store, p)
}

#[test]
fn every_append_is_durable_when_it_returns() {
    let (_dir, _store, p) = open(FlushPolicy::EveryAppend);
    let before = p.stats().flushes;
    for i in 0..20u64 {
        let info = p.append(&[Record::new(format!("v{i}"))]).unwrap();
        assert!(p.durable_offset() > info.last_offset, "append {i}");
    }
    assert_eq!(
        p.stats().flushes - before,
        20,
        "one flush per append on one thread"
    );
}

#[test]
fn never_leaves_durability_to_explicit_flushes() {
    let (_dir, _store, p) = open(FlushPolicy::Never);
    for i in 0..20u64 {
        p.append(&[Record::new(format!("v{i}"))]).unwrap();
    }
    assert_eq!(p.durable_offset(), 0);
    let flushes = p.stats().flushes;
    p.flush().unwrap();
    assert_eq!(p.durable_offset(), 20);
    assert_eq!(p.stats().flushes, flushes + 1);
    // Nothing pending: a second flush has nothing to do.
    p.flush().unwrap();
    assert_eq!(p.stats().flushes, flushes + 1);
}

#[test]
fn every_records_flushes_on_the_append_that_reaches_n() {
    let (_dir, _store, p) = open(FlushPolicy::EveryRecords(10));
    for i in 1..=25u64 {
        p.append(&[Record::new(format!("v{i}"))]).unwrap();
        let expected = (i / 10) * 10;
        assert_eq!(p.durable_offset(), expected, "after {i} records");
    }
    // A batch crossing the threshold flushes all of itself.
    p.append(
        &(0..7)
            .map(|i| Record::new(format!("b{i}")))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(p.durable_offset(), 32);
}

#[test]
fn every_millis_is_flushed_by_the_background_thread() {
    let (_dir, store, p) = open(FlushPolicy::EveryMillis(20));
    p.append(&[Record::new("a"), Record::new("b")]).unwrap();
    wait_for("the background flush", Duration::from_secs(10), || {
        p.durable_offset() >= 2
    });
    assert!(p.stats().flushes >= 1);
    // Closing stops the thread (and flushes what is left).
    p.append(&[Record::new("c")]).unwrap();
    store.close().unwrap();
    assert_eq!(p.durable_offset(), 3);
}

#[test]
fn concurrent_durable_appends_share_fsyncs() {
    let (_dir, _store, p) = open(FlushPolicy::EveryAppend);
    let threads = 8;
    let per_thread = 60;
    let before = p.stats().flushes;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let info = p.append(&[Record::new(format!("t{t}-{i}"))]).unwrap();
                    // Durable when the append returns, whoever ran the fsync.
                    assert!(p.durable_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let appends = (threads * per_thread) as u64;
    let flushes = p.stats().flushes - before;
    assert_eq!(p.log_end_offset(), appends);
    assert_eq!(p.durable_offset(), appends);
    assert!(
        flushes < appends,
        "group commit: {flushes} flushes for {appends} concurrent durable appends"
    );
}

#[test]
fn flush_policy_is_persisted_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let policies = [
        FlushPolicy::Never,
        FlushPolicy::EveryAppend,
        FlushPolicy::EveryRecords(7),
        FlushPolicy::EveryMillis(250),
    ];
    {
        let store = Store::open(dir.path()).unwrap();
        for (i, policy) in policies.iter().enumerate() {
            store
                .create_topic(
                    &format!("t{i}"),
                    TopicConfig::default().flush_policy(*policy),
                )
                .unwrap();
        }
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    for (i, policy) in policies.iter().enumerate() {
        assert_eq!(
            store.topic(&format!("t{i}")).unwrap().config().flush_policy,
            *policy
        );
    }
    for bad in [FlushPolicy::EveryRecords(0), FlushPolicy::EveryMillis(0)] {
        match store.create_topic("bad", TopicConfig::default().flush_policy(bad)) {
            Err(Error::InvalidConfig { field, .. }) => assert!(field.starts_with("flush_policy")),
            other => panic!("expected InvalidConfig for {bad:?}, got {other:?}"),
        }
    }
}

/// A flush racing a truncation never leaves offsets marked durable that the truncation
/// removed (they would be rewritten by later appends without an fsync).
#[test]
fn durable_offset_never_passes_the_log_end() {
    let (_dir, _store, p) = open(FlushPolicy::Never);
    let p = Arc::new(p);
    let flusher = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            for _ in 0..300 {
                p.flush().unwrap();
            }
        })
    };
    for round in 0..300u64 {
        p.append(&[Record::new("x"), Record::new("y")]).unwrap();
        if round % 3 == 0 {
            let end = p.log_end_offset();
            p.truncate_to(end - 1).unwrap();
        }
        assert!(p.durable_offset() <= p.log_end_offset(), "round {round}");
    }
    flusher.join().unwrap();
    assert!(p.durable_offset() <= p.log_end_offset());
}

/// After an open nothing counts as durable until a flush has synced every segment: the
/// previous process may have died with appends still dirty in the page cache.
#[test]
fn reopened_data_is_durable_only_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let t = store
            .create_topic("r", TopicConfig::default().segment_bytes(1024))
            .unwrap();
        let p = t.partition(0).unwrap();
        for i in 0..50 {
            p.append(&[Record::new(format!("value-{i:04}"))]).unwrap();
        }
        assert!(p.segments().len() > 1);
        // Never closed or flushed, as if the process died here.
        std::mem::forget(store);
    }
    // The forgotten store still holds its directory's lock: open a copy of its files.
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let to = copy.path().join(entry.file_name());
            std::fs::create_dir(&to).unwrap();
            for f in std::fs::read_dir(entry.path()).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
            }
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    let store = Store::open(copy.path()).unwrap();
    let p = store.topic("r").unwrap().partition(0).unwrap().clone();
    assert_eq!(p.log_end_offset(), 50);
    assert_eq!(p.durable_offset(), 0);
    p.flush().unwrap();
    assert_eq!(p.durable_offset(), 50);
}
