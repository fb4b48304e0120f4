//! Recovery bookkeeping: Kafka's checkpoint files, the clean-shutdown marker, what an open
//! after a clean or an unclean shutdown reads and checks, corruption below the recovery
//! point, and the temporary files interrupted operations leave.

mod common;

use std::path::Path;

use common::{flip, log_files, nth_partition, partition_dir};
use seglog::{
    Error, Partition, Record, Store, TopicConfig, CLEAN_SHUTDOWN_FILE, LOG_START_FILE,
    RECOVERY_POINT_FILE,
};

/// Small segments (several per test) with an index entry every few batches.
fn config() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(2048)
        .index_interval_bytes(256)
}

fn value(o: u64) -> Vec<u8> {
    format!("value-{o:05}-{}", "x".repeat((o % 23) as usize)).into_bytes()
}

/// Appends records with values `value(o)` and timestamps `1000 + o` until the log end
/// offset reaches `to`, two records per batch.
fn fill(p: &Partition, to: u64) {
    while p.log_end_offset() < to {
        let o = p.log_end_offset();
        let recs: Vec<Record> = (o..(o + 2).min(to))
            .map(|o| Record::new(value(o)).with_timestamp(1000 + o as i64))
            .collect();
        p.append(&recs).unwrap();
    }
}

/// Reads every offset from the log start and checks the values.
fn check_all(p: &Partition) {
    let mut next = p.log_start_offset();
    for r in p.records_from(next).fetch_bytes(4096) {
        let r = r.unwrap();
        assert_eq!(r.offset, next);
        assert_eq!(r.value.as_deref(), Some(&value(next)[..]), "offset {next}");
        next += 1;
    }
    assert_eq!(next, p.log_end_offset());
}

/// A store with topic `t` (one partition) holding `records` records, closed cleanly.
fn closed_store(records: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", config()).unwrap();
    fill(&nth_partition(&store, "t", 0), records);
    store.close().unwrap();
    dir
}

/// Position and length of every batch of a `.log` file.
fn batches(log: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(log).unwrap();
    seglog::record::BatchIter::new(&bytes)
        .map(|b| {
            let (pos, b) = b.unwrap();
            (pos, b.as_bytes().len())
        })
        .collect()
}

#[test]
fn close_writes_kafka_checkpoints_and_the_marker_open_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(!store.opened_clean(), "a new directory was never shut down");
    store.create_topic("a", config().partitions(2)).unwrap();
    store.create_topic("b", config()).unwrap();
    fill(&nth_partition(&store, "a", 0), 30);
    fill(&nth_partition(&store, "a", 1), 7);
    fill(&nth_partition(&store, "b", 0), 300);
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    store.close().unwrap();

    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let rp = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp, "0\n3\na 0 30\na 1 7\nb 0 300\n");
    let ls = std::fs::read_to_string(dir.path().join(LOG_START_FILE)).unwrap();
    assert_eq!(ls, "0\n3\na 0 0\na 1 0\nb 0 0\n");

    let store = Store::open(dir.path()).unwrap();
    assert!(store.opened_clean());
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "the marker goes at open: a crash from now on is unclean"
    );
    let p = nth_partition(&store, "b", 0);
    assert_eq!(p.log_end_offset(), 300);
    assert_eq!(
        p.durable_offset(),
        300,
        "a clean shutdown flushed everything"
    );
    check_all(&p);
    store.simulate_crash();
    let store = Store::open(dir.path()).unwrap();
    assert!(!store.opened_clean());
    check_all(&nth_partition(&store, "b", 0));
}

#[test]
fn clean_open_reads_no_log_data() {
    let dir = closed_store(400);
    let logs = log_files(&partition_dir(dir.path(), "t", 0));
    assert!(logs.len() >= 5);
    // Garbage in the middle of a sealed segment: a clean open does not look at it.
    let (pos, _) = batches(&logs[1])[3];
    flip(&logs[1], pos + 30, 0x10);

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), 400);
    let segs = p.segments();
    assert!(
        segs[..segs.len() - 1].iter().all(|s| !s.indexes_loaded()),
        "sealed segments are opened lazily"
    );
    // Reading it reports the file and the position; nothing is cut.
    let base = segs[1].base_offset();
    let err = (base..segs[2].base_offset())
        .find_map(|o| p.read(o, 1).err())
        .expect("the damaged batch is reported");
    match err {
        Error::Corrupt { path, position, .. } => {
            assert_eq!(path, logs[1]);
            assert_eq!(position, pos as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(segs[1].indexes_loaded());
    assert_eq!(std::fs::metadata(&logs[1]).unwrap().len(), segs[1].size());
    assert_eq!(p.log_end_offset(), 400);
}

#[test]
fn unclean_open_checks_only_from_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", config()).unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 300);
    store.flush().unwrap(); // recovery point 300
    let rp = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp, "0\n1\nt 0 300\n");
    fill(&p, 420);
    let segs = p.segments();
    let at_rp = segs.iter().rposition(|s| s.base_offset() <= 300).unwrap();
    drop((p, segs));
    store.simulate_crash();

    // Damage a batch below the recovery point in an earlier segment: not read at open.
    let logs = log_files(&partition_dir(dir.path(), "t", 0));
    let (pos, _) = batches(&logs[0])[2];
    flip(&logs[0], pos + 40, 0x10);

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), 420);
    assert_eq!(
        p.durable_offset(),
        300,
        "what was found past it is not yet synced"
    );
    let segs = p.segments();
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(
            s.indexes_loaded(),
            i >= at_rp,
            "segment {i}: only segments from the one holding the recovery point are recovered"
        );
    }
    assert!(matches!(p.read(0, 1 << 20), Err(Error::Corrupt { .. })));
    p.flush().unwrap();
    assert_eq!(p.durable_offset(), 420);
}

#[test]
fn corruption_below_the_recovery_point_in_a_recovered_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = nth_partition(&store, "t", 0);
    let active = p.segments().last().unwrap().log_path().to_path_buf();
    // Several flushed batches in the active segment, then a recovery point past them.
    fill(&p, 12);
    store.flush().unwrap();
    fill(&p, 16);
    drop(p);
    store.simulate_crash();
    let (pos, _) = batches(&active)[1];
    let len = std::fs::metadata(&active).unwrap().len();
    flip(&active, pos + 40, 0x10);

    match Store::open(dir.path()) {
        Err(Error::Corrupt {
            path,
            position,
            reason,
        }) => {
            assert_eq!(path, active);
            assert_eq!(position, pos as u64);
            assert!(reason.contains("recovery point"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was cut: the flushed data is all still there for a human to look at.
    assert_eq!(std::fs::metadata(&active).unwrap().len(), len);
}

#[test]
fn torn_batch_in_an_unflushed_sealed_segment_drops_later_segments() {
    let dir = closed_store(400);
    let pd = partition_dir(dir.path(), "t", 0);
    let logs = log_files(&pd);
    assert!(logs.len() >= 5);
    // As after a crash before anything was flushed: no marker, no recovery point.
    std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    let (pos, len) = batches(&logs[2])[4];
    let bytes = std::fs::read(&logs[2]).unwrap();
    let base_of_torn = u64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
    flip(&logs[2], pos + len - 1, 0x10);

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), base_of_torn, "cut at the torn batch");
    assert_eq!(p.segments().len(), 3, "later segments deleted");
    for later in &logs[3..] {
        assert!(!later.exists(), "{} deleted", later.display());
        assert!(!later.with_extension("index").exists());
    }
    assert_eq!(std::fs::metadata(&logs[2]).unwrap().len(), pos as u64);
    check_all(&p);
    // Appending goes on in the cut segment, now active.
    fill(&p, base_of_torn + 10);
    check_all(&p);
    drop(p);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), base_of_torn + 10);
    check_all(&p);
}

#[test]
fn truncation_lowers_the_recovery_point_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", config()).unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 200);
    store.flush().unwrap();
    p.truncate_to(150).unwrap();
    let rp = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp, "0\n1\nt 0 150\n");
    assert_eq!(p.durable_offset(), 150);
    // New, unflushed data past the truncation point, torn by a crash, is cut at reopen
    // (with the old recovery point 200 it would have been trusted, or reported).
    fill(&p, 180);
    let active = p.segments().last().unwrap().log_path().to_path_buf();
    drop(p);
    store.simulate_crash();
    let (pos, len) = *batches(&active).last().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    f.set_len((pos + len / 2) as u64).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), 178);
    check_all(&p);
}

#[test]
fn damaged_recovery_point_file_costs_a_full_recovery_not_data() {
    let dir = closed_store(300);
    std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "0\n1\nt 0 zz\n").unwrap();
    std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), 300);
    assert!(
        p.segments().iter().all(|s| s.indexes_loaded()),
        "all recovered"
    );
    check_all(&p);
}

#[test]
fn damaged_log_start_file_is_an_error_naming_it() {
    let dir = closed_store(10);
    let path = dir.path().join(LOG_START_FILE);
    std::fs::write(&path, "0\n2\nt 0 0\n").unwrap();
    match Store::open(dir.path()) {
        Err(Error::Corrupt {
            path: p, reason, ..
        }) => {
            assert_eq!(p, path);
            assert!(reason.contains("entry"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn log_start_offset_comes_back_from_its_checkpoint() {
    let dir = closed_store(300);
    // As Kafka's DeleteRecords leaves it: the log start inside the first segment.
    std::fs::write(dir.path().join(LOG_START_FILE), "0\n1\nt 0 55\n").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_start_offset(), 55);
    assert!(matches!(
        p.read(54, 100),
        Err(Error::OffsetOutOfRange { offset: 54, .. })
    ));
    assert_eq!(
        p.read(55, 100).unwrap().records().next().unwrap().offset(),
        55
    );
    drop(p);
    store.close().unwrap();
    let ls = std::fs::read_to_string(dir.path().join(LOG_START_FILE)).unwrap();
    assert_eq!(ls, "0\n1\nt 0 55\n");
}

#[test]
fn clean_open_without_a_recovery_point_recovers_the_active_segment() {
    let dir = closed_store(300);
    std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "0\n0\n").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.opened_clean());
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), 300);
    check_all(&p);
}

#[test]
fn a_deleted_topic_does_not_pass_its_recovery_point_to_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", config()).unwrap();
    fill(&nth_partition(&store, "t", 0), 100);
    store.flush().unwrap();
    store.delete_topic("t").unwrap();
    let rp = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(rp, "0\n0\n");
    store.create_topic("t", config()).unwrap();
    let p = nth_partition(&store, "t", 0);
    fill(&p, 5);
    let active = p.segments().last().unwrap().log_path().to_path_buf();
    drop(p);
    store.simulate_crash();
    let (pos, len) = *batches(&active).last().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    f.set_len((pos + len - 1) as u64).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(nth_partition(&store, "t", 0).log_end_offset(), 4);
}

#[test]
fn leftover_temporary_files_are_removed() {
    let dir = closed_store(100);
    let pd = partition_dir(dir.path(), "t", 0);
    let junk = [
        pd.join("00000000000000000000.log.cleaned"),
        pd.join("00000000000000000000.index.cleaned"),
        pd.join("00000000000000000033.log.deleted"),
        pd.join("00000000000000000033.index.deleted"),
        pd.join("00000000000000000000.index.tmp"),
        pd.join("00000000000000000000.index.swap"), // no .log.swap: not committed
        dir.path().join(format!("{}.tmp", RECOVERY_POINT_FILE)),
        dir.path().join(format!("{}.tmp", seglog::TOPICS_FILE)),
    ];
    for j in &junk {
        std::fs::write(j, b"half-written").unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    for j in &junk {
        assert!(!j.exists(), "{} removed", j.display());
    }
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_end_offset(), 100);
    check_all(&p);
}

/// A committed swap (`.log.swap` present): the old segments it covers are replaced.
#[test]
fn committed_swap_replaces_the_segments_it_covers() {
    let dir = closed_store(400);
    let pd = partition_dir(dir.path(), "t", 0);
    let logs = log_files(&pd);
    assert!(logs.len() >= 4);
    // A "cleaned" segment replacing the first two: their batches in one file (what a
    // cleaner that removed nothing would write), named after the first base offset.
    let mut merged = std::fs::read(&logs[0]).unwrap();
    merged.extend(std::fs::read(&logs[1]).unwrap());
    let swap = pd.join(format!(
        "{}.swap",
        logs[0].file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&swap, &merged).unwrap();
    // A crash after the index swap was renamed into place but before the log's rename.
    std::fs::write(logs[0].with_extension("index.swap"), b"").unwrap();

    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert!(!swap.exists());
    assert!(!logs[1].exists(), "the second old segment is gone");
    assert_eq!(std::fs::read(&logs[0]).unwrap(), merged);
    assert_eq!(p.segments().len(), logs.len() - 1);
    assert_eq!(p.log_end_offset(), 400);
    check_all(&p);
    for o in [0, 10, 200, 399] {
        let found = p.offset_for_timestamp(1000 + o as i64).unwrap().unwrap();
        assert_eq!(found.offset, o);
    }
}

/// Regression (found in review): entries of a partition that no longer exists (a
/// `delete_topic` that crashed before rewriting the checkpoints, or a flush racing it) were
/// kept, and a topic created again under the name inherited its log start offset and
/// recovery point. Open rewrites the files with what it found.
#[test]
fn stale_checkpoint_entries_are_dropped_at_open() {
    let dir = closed_store(10);
    std::fs::write(dir.path().join(LOG_START_FILE), "0\n2\ngone 0 600\nt 0 0\n").unwrap();
    std::fs::write(
        dir.path().join(RECOVERY_POINT_FILE),
        "0\n2\ngone 0 1000\nt 0 10\n",
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    for file in [LOG_START_FILE, RECOVERY_POINT_FILE] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!text.contains("gone"), "{file}: {text}");
    }
    store.create_topic("gone", config()).unwrap();
    let p = nth_partition(&store, "gone", 0);
    fill(&p, 1000);
    store.flush().unwrap();
    drop(p);
    store.simulate_crash();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "gone", 0);
    assert_eq!(p.log_start_offset(), 0);
    assert_eq!(p.log_end_offset(), 1000);
    check_all(&p);
}

/// Regression (found in review): a log start offset that recovery lowered to the log end
/// (the records it pointed into were lost in a crash) stayed higher in the checkpoint, and
/// after later flushed appends and a crash it hid them. Open writes the lowered value.
#[test]
fn a_log_start_offset_lowered_by_recovery_is_written_at_open() {
    let dir = closed_store(500);
    std::fs::write(dir.path().join(LOG_START_FILE), "0\n1\nt 0 800\n").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_start_offset(), 500);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LOG_START_FILE)).unwrap(),
        "0\n1\nt 0 500\n"
    );
    fill(&p, 1000);
    p.flush().unwrap();
    drop(p);
    store.simulate_crash();
    let store = Store::open(dir.path()).unwrap();
    let p = nth_partition(&store, "t", 0);
    assert_eq!(p.log_start_offset(), 500);
    assert_eq!(
        p.read(500, 100).unwrap().records().next().unwrap().offset(),
        500
    );
}
