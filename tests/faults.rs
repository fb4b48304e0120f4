//! Fault injection (the `fault-injection` feature, on for tests): a failed write, fsync,
//! rename or create gives an error, poisons the partition (later writes refused, reads go
//! on), and loses nothing that was durable; reopening recovers.
//!
//! Faults are planned process-wide, so the tests in this file run one at a time.

mod common;

use common::{create, exclusive};
use seglog::faults::{self, FaultOp};
use seglog::{Error, FlushPolicy, Partition, Record, Store, TopicConfig};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn value(o: u64) -> Vec<u8> {
    format!("value-{o:05}-{}", "x".repeat((o % 40) as usize)).into_bytes()
}

fn append(p: &Partition, n: u64) -> seglog::Result<()> {
    let base = p.log_end_offset();
    let recs: Vec<Record> = (base..base + n).map(|o| Record::new(value(o))).collect();
    p.append(&recs).map(|_| ())
}

/// Every record below `end` reads back with its value, offsets dense from 0.
fn check(p: &Partition, end: u64) {
    let mut next = 0;
    while next < end {
        let f = p.read(next, 4096).unwrap();
        for r in f.records() {
            if r.offset() >= end {
                return;
            }
            assert_eq!(r.offset(), next);
            assert_eq!(r.value().unwrap(), &value(next)[..]);
            next += 1;
        }
    }
}

fn config() -> TopicConfig {
    TopicConfig::default().segment_bytes(4096)
}

/// Runs `fault` against a partition holding 100 durable records, then checks what every
/// failure mode must keep: an error, poisoning, readable durable data, and a reopen that
/// recovers and appends again.
fn inject(op: FaultOp, errno: i32, nth: u64, policy: FlushPolicy) {
    let _faults = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("f", config().flush_policy(policy))
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    for _ in 0..10 {
        append(&p, 10).unwrap();
    }
    p.flush().unwrap();
    let durable = p.log_end_offset();

    faults::fail_nth(op, nth, errno);
    let mut failed = None;
    for _ in 0..200 {
        let r = append(&p, 3).and_then(|()| p.flush());
        if let Err(e) = r {
            failed = Some(e);
            break;
        }
    }
    faults::clear();
    let err = failed.unwrap_or_else(|| panic!("{op:?} #{nth} never failed"));
    assert!(
        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(errno)),
        "{op:?}: expected the injected OS error, got {err}"
    );
    assert!(p.poisoned().is_some());
    // Writes are refused, naming the original error; reads of durable data go on.
    match append(&p, 1) {
        Err(Error::Poisoned { partition, cause }) => {
            assert_eq!(partition, "f-0");
            assert!(cause.contains(&std::io::Error::from_raw_os_error(errno).to_string()));
        }
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(matches!(p.flush(), Err(Error::Poisoned { .. })));
    assert!(matches!(p.truncate_to(0), Err(Error::Poisoned { .. })));
    check(&p, durable);
    assert!(matches!(store.close(), Err(Error::Poisoned { .. })));

    // Reopen: nothing durable is lost, and writing works again.
    let store = Store::open(dir.path()).unwrap();
    let p = store.topic("f").unwrap().partition(0).unwrap().clone();
    assert!(p.log_end_offset() >= durable);
    check(&p, p.log_end_offset());
    let end = p.log_end_offset();
    append(&p, 5).unwrap();
    p.flush().unwrap();
    check(&p, end + 5);
    store.close().unwrap();
}

#[test]
fn enospc_on_write_poisons_and_loses_nothing() {
    for nth in [1, 2, 7] {
        inject(FaultOp::Write, ENOSPC, nth, FlushPolicy::Never);
    }
}

#[test]
fn eio_on_fsync_poisons_and_loses_nothing() {
    for nth in [1, 3] {
        inject(FaultOp::Fsync, EIO, nth, FlushPolicy::Never);
        inject(FaultOp::Fsync, EIO, nth, FlushPolicy::EveryAppend);
    }
}

#[test]
fn failed_segment_create_poisons_and_loses_nothing() {
    // Appends of 3 records roll a 4 KiB segment every few appends.
    for nth in [1, 2] {
        inject(FaultOp::Create, ENOSPC, nth, FlushPolicy::Never);
    }
}

/// Topic metadata is replaced atomically: a failed create, write, fsync or rename of the
/// temporary file leaves the store as it was, and the topic can be created afterwards.
#[test]
fn failed_metadata_write_leaves_topics_unchanged() {
    let _faults = exclusive();
    for op in [
        FaultOp::Create,
        FaultOp::Write,
        FaultOp::Fsync,
        FaultOp::Rename,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("before", config()).unwrap();
        faults::fail_nth(op, 1, EIO);
        let r = store.create_topic("t", config());
        faults::clear();
        assert!(
            matches!(&r, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(EIO)),
            "{op:?}: {r:?}"
        );
        assert_eq!(store.topics(), ["before"], "{op:?}");
        store.close().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.topics(), ["before"], "{op:?} after reopen");
        store.create_topic("t", config()).unwrap();
        store.close().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.topics(), ["before", "t"], "{op:?}");
    }
}

/// A failure while writing the checkpoints or the clean-shutdown marker at close: close
/// reports it, no marker is left (the next open recovers), and nothing is lost.
#[test]
fn failed_checkpoint_or_marker_write_at_close_means_an_unclean_open() {
    let _faults = exclusive();
    // Close writes two checkpoint files then the marker, each by create, write, fsync,
    // rename: fail each of the three renames in turn, and the first create.
    for (op, nth) in [
        (FaultOp::Rename, 1),
        (FaultOp::Rename, 2),
        (FaultOp::Rename, 3),
        (FaultOp::Create, 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let p = create(&store, "c", config());
        append(&p, 100).unwrap();
        drop(p);
        faults::fail_nth(op, nth, ENOSPC);
        let r = store.close();
        faults::clear();
        assert!(
            matches!(&r, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(ENOSPC)),
            "{op:?} #{nth}: {r:?}"
        );
        assert!(!dir.path().join(seglog::CLEAN_SHUTDOWN_FILE).exists());
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.opened_clean(), "{op:?} #{nth}");
        let p = store.topic("c").unwrap().partition(0).unwrap().clone();
        assert_eq!(p.log_end_offset(), 100);
        check(&p, 100);
        drop(p);
        store.close().unwrap();
        assert!(Store::open(dir.path()).unwrap().opened_clean());
    }
}

/// A truncation that cannot lower the recovery point in the checkpoint changes nothing and
/// poisons the partition (the log and the checkpoint must not disagree).
#[test]
fn failed_recovery_point_write_at_truncation_poisons_and_changes_nothing() {
    let _faults = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = create(&store, "c", config());
    append(&p, 100).unwrap();
    store.flush().unwrap();
    faults::fail_nth(FaultOp::Rename, 1, EIO);
    let r = p.truncate_to(50);
    faults::clear();
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    assert_eq!(p.log_end_offset(), 100);
    assert!(matches!(append(&p, 1), Err(Error::Poisoned { .. })));
    check(&p, 100);
    drop(p);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let p = store.topic("c").unwrap().partition(0).unwrap().clone();
    assert_eq!(p.log_end_offset(), 100);
    check(&p, 100);
    p.truncate_to(50).unwrap();
    assert_eq!(p.log_end_offset(), 50);
}

/// Group commit after a failed fsync: appenders that were waiting for the failed flush
/// (or arrive after it) get an error rather than running an fsync of their own, which
/// could succeed for pages the failed one dropped. So no append that reported an error
/// is ever counted durable.
#[test]
fn waiters_for_a_failed_flush_do_not_retry_it() {
    let _faults = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic(
            "g",
            config()
                .segment_bytes(1 << 20)
                .flush_policy(FlushPolicy::EveryAppend),
        )
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    faults::fail_nth(FaultOp::Fsync, 20, EIO);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let value = format!("t{t}-{i}");
                    if let Err(e) = p.append(&[Record::new(value.clone())]) {
                        return Some((value, e));
                    }
                }
                None
            })
        })
        .collect();
    let failed: Vec<(String, Error)> = threads
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    faults::clear();
    assert!(
        failed.iter().any(|(_, e)| matches!(e, Error::Io { .. })),
        "{failed:?}"
    );
    let durable = p.durable_offset();
    for r in p.records_from(0) {
        let r = r.unwrap();
        let value = r.value.unwrap();
        if let Some((_, e)) = failed.iter().find(|(v, _)| v.as_bytes() == value) {
            assert!(
                r.offset >= durable,
                "offset {} counted durable (durable offset {durable}) after its append failed: {e}",
                r.offset
            );
        }
    }
    assert!(matches!(store.close(), Err(Error::Poisoned { .. })));
}

/// Recovery makes its cut of a torn tail durable before the store opens: once appends roll
/// past that segment it lies below the recovery point and is never checked again, so a
/// cut lost in a power cut would bring the torn bytes back into trusted data. The fsync is
/// observed by failing it: the open reports the error instead of opening on an unsynced
/// cut.
#[test]
fn recovery_syncs_the_cut_of_a_torn_tail() {
    let _faults = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = create(&store, "c", config());
    append(&p, 10).unwrap();
    store.flush().unwrap();
    let active = p.segments().last().unwrap().log_path().to_path_buf();
    drop(p);
    store.simulate_crash();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&active)
            .unwrap();
        f.write_all(&[0; 100]).unwrap();
    }
    faults::fail_nth(FaultOp::Fsync, 1, EIO);
    let r = Store::open(dir.path());
    faults::clear();
    assert!(
        matches!(&r, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(EIO)),
        "{r:?}"
    );
    drop(r);
    let store = Store::open(dir.path()).unwrap();
    let p = store.topic("c").unwrap().partition(0).unwrap().clone();
    assert_eq!(p.log_end_offset(), 10);
    check(&p, 10);
}
