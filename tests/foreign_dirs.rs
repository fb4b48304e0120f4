//! A store deletes only the partition directories it marked for deletion itself (FORMAT.md
//! §1): a Kafka broker's log dir, a store whose `seglog-topics` went missing, or a partition
//! directory copied in make the open fail with every file untouched; `delete_topic` renames
//! before it removes, so a crash at any step ends with the topic fully deleted or fully
//! present, and the open finishes what was marked.

mod common;

use std::path::Path;

use common::files::{copy_dir, tree};
use seglog::faults::{self, FaultOp};
use seglog::{Error, Record, Store, TopicConfig, TOPICS_FILE};

/// The open fails with `UnknownDirectories` naming `names`, and changes nothing.
fn assert_refused(root: &Path, names: &[&str]) -> String {
    let before = tree(root);
    let Err(err) = Store::open(root) else {
        panic!("the open must refuse unknown directories");
    };
    let text = err.to_string();
    match &err {
        Error::UnknownDirectories { directories, .. } => {
            let mut found: Vec<String> = directories
                .iter()
                .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            found.sort();
            let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(found, want, "{text}");
        }
        other => panic!("expected UnknownDirectories, got {other:?}"),
    }
    for name in names {
        assert!(text.contains(name), "{text} does not name {name}");
    }
    assert!(
        text.contains("move them out of the data directory"),
        "{text}"
    );
    assert_eq!(tree(root), before, "the refused open changed files");
    text
}

fn read_all(store: &Store, topic: &str, partition: u32) -> Vec<Vec<u8>> {
    let p = store
        .topic(topic)
        .unwrap()
        .partition(partition)
        .unwrap()
        .clone();
    let end = p.log_end_offset();
    let mut records = p.records_from(p.log_start_offset());
    let out = records
        .by_ref()
        .map(|r| r.unwrap().value.unwrap())
        .collect();
    assert_eq!(records.position(), end, "records stop below the log end");
    out
}

/// `tests/fixtures/kafka-logdir` was written by Apache Kafka's own Java classes
/// (`LogSegment`, `OffsetCheckpointFile`, `CleanShutdownFileHandler`; topic `orders`, 3
/// segments, 210 records), as a broker leaves its log dir after a clean shutdown.
#[test]
fn a_kafka_log_dir_is_refused_untouched() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-logdir"),
        root,
    );
    // What else a broker's log dir holds: its internal topic and metadata files.
    std::fs::create_dir(root.join("__consumer_offsets-0")).unwrap();
    std::fs::write(
        root.join("__consumer_offsets-0/00000000000000000000.log"),
        b"",
    )
    .unwrap();
    std::fs::write(root.join("meta.properties"), b"version=1\nnode.id=1\n").unwrap();
    std::fs::write(root.join("replication-offset-checkpoint"), b"0\n0\n").unwrap();
    let text = assert_refused(root, &["__consumer_offsets-0", "orders-0"]);
    assert!(text.contains(TOPICS_FILE), "{text}");
    // Still refused (not half-cleaned) the second time.
    assert_refused(root, &["__consumer_offsets-0", "orders-0"]);
}

#[test]
fn a_missing_topics_file_is_refused_not_a_wipe() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let t = store
        .create_topic("events", TopicConfig::default().partitions(2))
        .unwrap();
    for i in 0..10 {
        t.send(Record::new(format!("v{i}"))).unwrap();
    }
    drop(t);
    store.close().unwrap();
    std::fs::remove_file(root.join(TOPICS_FILE)).unwrap();
    assert_refused(root, &["events-0", "events-1"]);
}

#[test]
fn a_copied_in_partition_dir_is_refused_untouched() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let t = store
        .create_topic("keep", TopicConfig::default().partitions(2))
        .unwrap();
    t.send_to(1, Record::new("kept")).unwrap();
    drop(t);
    store.close().unwrap();
    // Another store's partitions, and one past the topic's count.
    for name in ["ghost-0", "keep-2"] {
        std::fs::create_dir(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("00000000000000000000.log"), b"data").unwrap();
    }
    // Not partition directories: left alone, no error.
    std::fs::create_dir(root.join("notes")).unwrap();
    std::fs::create_dir(root.join("ghost-x")).unwrap();
    std::fs::write(root.join("ghost-3"), b"a file, not a directory").unwrap();
    assert_refused(root, &["ghost-0", "keep-2"]);
    // Moved out: the store opens, its data and the other names intact.
    for name in ["ghost-0", "keep-2"] {
        std::fs::remove_dir_all(root.join(name)).unwrap();
    }
    let store = Store::open(root).unwrap();
    assert_eq!(read_all(&store, "keep", 1), vec![b"kept".to_vec()]);
    for stays in ["notes", "ghost-x", "ghost-3"] {
        assert!(root.join(stays).exists(), "{stays} was removed");
    }
    store.close().unwrap();
}

/// Names of the directories at `root`, sorted.
fn dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

/// A store with topics `gone` (3 partitions, to be deleted) and `stay`, with data.
fn two_topics(root: &Path) -> Store {
    let store = Store::open(root).unwrap();
    for name in ["gone", "stay"] {
        let t = store
            .create_topic(name, TopicConfig::default().partitions(3))
            .unwrap();
        for i in 0..30 {
            t.send(Record::new(format!("{name}-{i}"))).unwrap();
        }
    }
    store.flush().unwrap();
    store
}

/// After a reopen, `gone` is either fully present with all its records or fully deleted
/// with no directory left; `stay` is intact. Returns whether `gone` is present.
fn check_whole(root: &Path, expect_present: Option<bool>) -> bool {
    let store = Store::open(root).unwrap_or_else(|e| panic!("reopen failed: {e}"));
    let present = store.topics().contains(&"gone".to_string());
    if let Some(want) = expect_present {
        assert_eq!(present, want, "topics {:?}", store.topics());
    }
    let count = |topic: &str| -> usize { (0..3).map(|p| read_all(&store, topic, p).len()).sum() };
    if present {
        assert_eq!(count("gone"), 30, "gone is back, but not whole");
    } else {
        for d in dirs(root) {
            assert!(!d.starts_with("gone"), "{d} left behind");
        }
    }
    assert_eq!(count("stay"), 30);
    store.close().unwrap();
    // And again: the first reopen left nothing that changes the answer.
    let store = Store::open(root).unwrap();
    assert_eq!(store.topics().contains(&"gone".to_string()), present);
    store.close().unwrap();
    present
}

#[test]
fn delete_topic_renames_to_kafka_delete_dirs_then_removes_them() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let store = two_topics(dir.path());
    store.delete_topic("gone").unwrap();
    assert_eq!(dirs(dir.path()), ["stay-0", "stay-1", "stay-2"]);
    store.close().unwrap();
    check_whole(dir.path(), Some(false));
}

#[test]
fn a_fault_at_any_step_of_delete_topic_leaves_it_whole_or_gone() {
    let _g = common::exclusive();
    let (mut kept, mut deleted) = (0, 0);
    for op in [
        FaultOp::Rename,
        FaultOp::Fsync,
        FaultOp::Create,
        FaultOp::Write,
    ] {
        for n in 1..=8 {
            let dir = tempfile::tempdir().unwrap();
            let store = two_topics(dir.path());
            faults::fail_nth(op, n, 5);
            let result = store.delete_topic("gone");
            faults::clear();
            store.simulate_crash();
            let present = check_whole(dir.path(), None);
            // An error before the metadata commit leaves the topic; success deletes it.
            if result.is_ok() {
                assert!(
                    !present,
                    "{op:?} #{n}: delete_topic succeeded, topic came back"
                );
            }
            if present {
                kept += 1;
            } else {
                deleted += 1;
            }
        }
    }
    // Faults landed both before and after the commit.
    assert!(kept > 0 && deleted > 0, "kept {kept}, deleted {deleted}");
}

/// A random-looking 32-hex-digit id, as Kafka's `logDeleteDirName` makes.
const ID: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_crash_between_renames_and_the_metadata_write_keeps_the_topic() {
    let _g = common::shared();
    for renamed in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let store = two_topics(root);
        store.simulate_crash();
        // delete_topic renamed `renamed` partition directories, then the process died.
        for p in 0..renamed {
            std::fs::rename(
                root.join(format!("gone-{p}")),
                root.join(format!("gone-{p}.{ID}-delete")),
            )
            .unwrap();
        }
        check_whole(root, Some(true));
        assert_eq!(
            dirs(root),
            ["gone-0", "gone-1", "gone-2", "stay-0", "stay-1", "stay-2"]
        );
    }
}

#[test]
fn leftover_delete_dirs_are_finished_at_open() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = two_topics(root);
    store.close().unwrap();
    // A committed deletion's remains (topic not in seglog-topics), one partly removed,
    // and one Kafka left (its own name for a deleted topic).
    for (name, files) in [
        (format!("old-0.{ID}-delete"), 2),
        (format!("old-1.{ID}-delete"), 0),
        (
            "__consumer_offsets-7.fedcba9876543210fedcba9876543210-delete".to_string(),
            1,
        ),
    ] {
        std::fs::create_dir(root.join(&name)).unwrap();
        for f in 0..files {
            std::fs::write(root.join(&name).join(format!("{f:020}.log")), b"x").unwrap();
        }
    }
    // Not seglog's (or Kafka's) name for a deletion: left alone.
    std::fs::create_dir(root.join("old-2.not-an-id-delete")).unwrap();
    check_whole(root, Some(true));
    assert_eq!(
        dirs(root),
        [
            "gone-0",
            "gone-1",
            "gone-2",
            "old-2.not-an-id-delete",
            "stay-0",
            "stay-1",
            "stay-2"
        ]
    );
}

#[test]
fn a_crash_after_the_metadata_write_finishes_the_deletion() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let saved = tempfile::tempdir().unwrap();
    let store = two_topics(root);
    store.close().unwrap();
    // The partition directories as they were, to put back as renamed ones afterwards.
    for p in 0..3 {
        copy_dir(
            &root.join(format!("gone-{p}")),
            &saved.path().join(format!("gone-{p}")),
        );
    }
    let store = Store::open(root).unwrap();
    store.delete_topic("gone").unwrap();
    store.simulate_crash();
    // The state between the metadata write and the removal of the renamed directories.
    for p in 0..3 {
        copy_dir(
            &saved.path().join(format!("gone-{p}")),
            &root.join(format!("gone-{p}.{ID}-delete")),
        );
    }
    check_whole(root, Some(false));
}

#[test]
fn creating_a_topic_removes_marked_dirs_of_its_earlier_deletion() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = two_topics(root);
    store.delete_topic("gone").unwrap();
    // What a deletion whose removal failed after its commit leaves.
    std::fs::create_dir(root.join(format!("gone-0.{ID}-delete"))).unwrap();
    std::fs::write(
        root.join(format!("gone-0.{ID}-delete/00000000000000000000.log")),
        b"x",
    )
    .unwrap();
    let t = store
        .create_topic("gone", TopicConfig::default().partitions(3))
        .unwrap();
    for i in 0..30 {
        t.send(Record::new(format!("gone-{i}"))).unwrap();
    }
    drop(t);
    // A crash half-way through deleting the new topic: only its own marks to rename back.
    store.simulate_crash();
    std::fs::rename(
        root.join("gone-0"),
        root.join("gone-0.fedcba9876543210fedcba9876543210-delete"),
    )
    .unwrap();
    check_whole(root, Some(true));
}
