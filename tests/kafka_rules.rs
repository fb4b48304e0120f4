//! Where Apache Kafka's own code decides a rule, seglog follows it: the time index's
//! capacity (and so when a segment rolls), the timestamps of what compaction keeps (so that
//! Kafka's lookup by time gives seglog's answer), lookups by time that never skip a batch,
//! topic names that collide once `.` and `_` are alike, reserved internal topic names, and
//! files inside partition directories that are never opened through a symbolic link.

mod common;

use std::path::Path;

use common::{log_files, partition};
use seglog::record::BatchIter;
use seglog::segment::Segment;
use seglog::{CleanupPolicy, Error, Record, Store, StoreConfig, TopicConfig, OFFSETS_TOPIC};

const T: i64 = 1_700_000_000_000;

fn store(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap()
}

fn keyed(key: &str, ts: i64) -> Record {
    Record::new(format!("value-of-{key}-at-{ts}")).with_key(key.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------------------
// 6a. The time index is full at `capacity - 1` entries (Kafka's `TimeIndex.isFull`).

/// With 48-byte index files the time index has 4 slots and is full at 3 entries; with an
/// entry per batch (every batch after the first) and rising timestamps, Kafka's
/// `LogSegment` rolls after 4 batches. seglog filled all 4 slots and rolled after 5, so a
/// Kafka broker rebuilding such a segment failed with "Attempt to append to a full time
/// index".
#[test]
fn time_index_full_one_entry_early_rolls_after_four_batches() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let cfg = TopicConfig::default()
        .segment_index_bytes(48)
        .index_interval_bytes(0);
    s.create_topic("t", cfg).unwrap();
    let p = partition(&s, "t");
    for i in 0..14 {
        p.append(&[Record::new("x").with_timestamp(T + i)]).unwrap();
    }
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, [0, 4, 8, 12], "segments roll after 4 batches");
    let segs = p.segments();
    for seg in &segs[..3] {
        let b = seg.base_offset();
        // Entries for the 2nd, 3rd and 4th batch; the seal entry adds nothing newer.
        assert_eq!(
            seg.offset_index()
                .unwrap()
                .iter()
                .map(|e| e.0)
                .collect::<Vec<_>>(),
            [b + 1, b + 2, b + 3]
        );
        let times = seg.time_index().unwrap();
        assert_eq!(
            times,
            [1, 2, 3].map(|d| (T + (b + d) as i64, b + d)),
            "time index of segment {b}"
        );
    }
    drop(segs);
    drop(p);
    s.close().unwrap();
    // Kafka's capacity for a 48-byte file is 4 entries: every sealed time index keeps one
    // slot free for the roll entry.
    for base in [0u64, 4, 8] {
        let len = std::fs::metadata(dir.path().join(format!("t-0/{base:020}.timeindex")))
            .unwrap()
            .len();
        assert!(len < 48, "{base}: {len} bytes");
    }
}

/// The entry written when a segment is sealed always has its slot: with rising
/// timestamps and an index entry every other batch, the last batch of a segment rolled
/// because its time index was full is not indexed, and the seal entry must name it.
#[test]
fn seal_entry_always_has_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    // Each batch is well over 40 bytes: an entry for every other batch.
    let cfg = TopicConfig::default()
        .segment_index_bytes(36)
        .index_interval_bytes(100);
    s.create_topic("t", cfg).unwrap();
    let p = partition(&s, "t");
    for i in 0..40 {
        p.append(&[Record::new(vec![b'v'; 60]).with_timestamp(T + i)])
            .unwrap();
    }
    let segs = p.segments();
    assert!(segs.len() > 3);
    for seg in &segs[..segs.len() - 1] {
        let times = seg.time_index().unwrap();
        // Three slots: at most two entries from appends, then the seal entry.
        assert!(times.len() <= 3, "{times:?}");
        let last = *times.last().unwrap();
        assert_eq!(
            last,
            (T + (seg.next_offset() - 1) as i64, seg.next_offset() - 1),
            "the final entry names the segment's max timestamp"
        );
        assert_eq!(seg.max_timestamp().unwrap(), last.0);
    }
}

// ---------------------------------------------------------------------------------------
// 6b. Kafka's lookup by time on seglog's compacted output.

/// Kafka's `UnifiedLog.fetchOffsetByTimestamp` over seglog's public segment API: the first
/// segment whose `largestTimestamp` (max timestamp, or the file's mtime when it has none)
/// is at or past `target`, then `LogSegment.findOffsetByTimestamp` in that segment only:
/// the time-index floor entry (timestamp <= target) gives an offset, the offset-index floor
/// of it gives a position, and the batches from there are searched.
fn kafka_offset_for_timestamp(
    segs: &[std::sync::Arc<Segment>],
    target: i64,
    start: u64,
) -> Option<u64> {
    let seg = segs
        .iter()
        .find(|s| s.largest_timestamp().unwrap() >= target)?;
    let ts_offset = seg
        .time_index()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.0 <= target)
        .map_or(seg.base_offset(), |e| e.1);
    let from = ts_offset.max(start);
    let read_from = seg
        .offset_index()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.0 <= from)
        .map_or(seg.base_offset(), |e| e.0);
    let mut buf = Vec::new();
    seg.read(read_from, usize::MAX >> 2, true, &mut buf)
        .unwrap()?;
    for item in BatchIter::new(&buf) {
        let (_, b) = item.unwrap();
        if b.header().max_timestamp >= target {
            for r in b.records() {
                let r = r.unwrap();
                if r.timestamp() >= target && r.offset() >= start {
                    return Some(r.offset());
                }
            }
        }
    }
    None
}

/// Compaction keeps the last batch of a cleaned segment group even when all its records
/// go (it holds the segment's offset range). It kept its old max timestamp, so a segment
/// holding nothing but that batch (or records all older than it) looked to Kafka's lookup
/// like the place to search for later timestamps, and Kafka answered "no offset" where
/// seglog answered correctly.
#[test]
fn kafka_lookup_by_time_agrees_on_compacted_output() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    // Two batches per segment; two segments never merge into one cleaned group.
    let cfg = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(200);
    s.create_topic("c", cfg).unwrap();
    let p = partition(&s, "c");
    let one = |key: &str, ts: i64| {
        p.append(&[keyed(key, ts)]).unwrap();
    };
    // Segment 0: both records are superseded later (only an empty batch stays).
    one("a", T + 5_000);
    one("b", T + 6_000);
    // Segment 1: `x` stays, `c` (the newest timestamp) is superseded.
    one("x", T + 100);
    one("c", T + 7_000);
    // Segment 2 and later: the newer values, older timestamps.
    one("a", T + 200);
    one("b", T + 300);
    one("c", T + 400);
    one("y", T + 500);
    one("z", T + 600);
    let before: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(
        before[..3],
        [0, 2, 4],
        "two batches per segment: {before:?}"
    );
    let report = p.compact_now().unwrap();
    assert!(report.cleaned);
    let segs = p.segments();
    // The first segment holds only the kept empty batch (offset 1).
    assert_eq!(segs[0].base_offset(), 0);
    assert_eq!(segs[0].next_offset(), 2);
    let mut buf = Vec::new();
    segs[0].read(0, 1 << 20, true, &mut buf).unwrap();
    let batches: Vec<_> = BatchIter::new(&buf).map(|b| b.unwrap().1).collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].header().records_count, 0);
    let start = p.log_start_offset();
    let mut checked = 0;
    for target in (T - 50..=T + 8_000)
        .step_by(50)
        .chain([T + 100, T + 600, T + 601])
    {
        let seglog = p.offset_for_timestamp(target).unwrap().map(|t| t.offset);
        let kafka = kafka_offset_for_timestamp(&segs, target, start);
        assert_eq!(kafka, seglog, "target T{:+}", target - T);
        checked += seglog.is_some() as u32;
    }
    assert!(checked > 10);
    // Reopened (indexes read back from disk), the answers stay the same.
    drop(segs);
    drop(p);
    s.close().unwrap();
    let s = store(dir.path());
    let p = partition(&s, "c");
    let segs = p.segments();
    for target in (T - 50..=T + 8_000).step_by(50) {
        let seglog = p.offset_for_timestamp(target).unwrap().map(|t| t.offset);
        assert_eq!(kafka_offset_for_timestamp(&segs, target, start), seglog);
    }
}

// ---------------------------------------------------------------------------------------
// 6c. A lookup by time never skips a compressed batch.

/// `offset_for_timestamp` skipped the records of a batch it could not decode (a
/// compressed one) and answered with a later offset: on a Kafka-written batch it answered
/// the next batch's offset where Kafka answers one inside the compressed batch.
#[test]
fn lookup_by_time_never_skips_a_compressed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.create_topic("z", TopicConfig::default()).unwrap();
    s.close().unwrap();
    // The gzip batch Kafka's MemoryRecordsBuilder wrote (offsets 100..=104, timestamps
    // T-5..T+1000), moved to offset 0 (the base offset is outside the CRC).
    let mut batch = std::fs::read("tests/fixtures/kafka-java/codec-gzip.bin").unwrap();
    batch[..8].copy_from_slice(&0u64.to_be_bytes());
    let pdir = dir.path().join("z-0");
    std::fs::write(pdir.join(format!("{:020}.log", 0)), &batch).unwrap();
    for ext in ["index", "timeindex"] {
        let _ = std::fs::remove_file(pdir.join(format!("{:020}.{ext}", 0)));
    }
    std::fs::remove_file(dir.path().join(seglog::CLEAN_SHUTDOWN_FILE)).unwrap();
    let s = store(dir.path());
    let p = partition(&s, "z");
    assert_eq!(p.log_end_offset(), 5);
    p.append(&[Record::new("later").with_timestamp(T + 2_000)])
        .unwrap();
    // Kafka answers offset 4 (timestamp T+1000); seglog once answered 5, then (unable to
    // decompress) an error; it now looks inside the batch as Kafka does.
    let found = p.offset_for_timestamp(T + 500).unwrap().unwrap();
    assert_eq!((found.offset, found.timestamp), (4, T + 1_000));
    // A target past the compressed batch is answered from the batch after it.
    let found = p.offset_for_timestamp(T + 1_500).unwrap().unwrap();
    assert_eq!((found.offset, found.timestamp), (5, T + 2_000));
}

// ---------------------------------------------------------------------------------------
// 7. Topic names, internal topics, symbolic links.

/// Kafka refuses a topic whose name equals an existing one once `.` and `_` are treated
/// alike (their metric names collide); seglog created both.
#[test]
fn topic_names_colliding_on_dot_and_underscore_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.create_topic("a.b_c", TopicConfig::default()).unwrap();
    for name in ["a_b_c", "a.b.c", "a_b.c"] {
        let err = s.create_topic(name, TopicConfig::default()).unwrap_err();
        match &err {
            Error::TopicCollision { name: n, existing } => {
                assert_eq!((n.as_str(), existing.as_str()), (name, "a.b_c"));
            }
            e => panic!("{name}: expected TopicCollision, got {e}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains("a.b_c"), "{msg}");
        assert!(!dir.path().join(format!("{name}-0")).exists());
    }
    // The same name is still `TopicExists`; names differing otherwise are fine.
    assert!(matches!(
        s.create_topic("a.b_c", TopicConfig::default()),
        Err(Error::TopicExists(_))
    ));
    s.create_topic("a-b_c", TopicConfig::default()).unwrap();
    s.close().unwrap();
    let s = store(dir.path());
    assert_eq!(s.topics(), ["a-b_c", "a.b_c"]);
    assert!(matches!(
        s.create_topic("a_b_c", TopicConfig::default()),
        Err(Error::TopicCollision { .. })
    ));
}

/// `__consumer_offsets` could be created by a user with any config (a delete policy would
/// remove commits). Internal names are reserved; the store still creates its own.
#[test]
fn internal_topic_names_are_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for name in [OFFSETS_TOPIC, "__transaction_state"] {
        let cfg = TopicConfig::default().cleanup_policy(CleanupPolicy::Delete);
        let err = s.create_topic(name, cfg).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidTopicName { name: n, .. } if n == name),
            "{err}"
        );
        assert!(err.to_string().contains("internal"), "{err}");
    }
    assert!(s.topics().is_empty());
    // A colliding spelling of an internal name is refused too.
    assert!(s
        .create_topic("__consumer.offsets", TopicConfig::default())
        .is_err());
    // The store creates the offsets topic itself on the first commit.
    s.create_topic("orders", TopicConfig::default()).unwrap();
    partition(&s, "orders").append(&[Record::new("o")]).unwrap();
    let mut c = s
        .join_group(
            "g",
            "orders",
            seglog::ConsumerConfig::default().reset(seglog::OffsetReset::Earliest),
        )
        .unwrap();
    let polled = c.poll(10, std::time::Duration::from_millis(0)).unwrap();
    assert_eq!(polled.len(), 1);
    c.commit().unwrap();
    drop(c);
    assert!(s.topics().iter().any(|t| t == OFFSETS_TOPIC));
    assert!(s
        .topic(OFFSETS_TOPIC)
        .unwrap()
        .config()
        .cleanup_policy
        .compacts());
    s.close().unwrap();
    let s = store(dir.path());
    assert_eq!(s.committed_offsets("g", "orders").unwrap()[&0], 1);
}

/// A symbolic link planted in place of an index file made seglog write through it, over a
/// file outside the data directory. Files inside partition directories are opened with
/// `O_NOFOLLOW`: the store refuses the link with an error naming it, and the file it
/// points to is never written. (Replacing the link instead would remove something seglog
/// did not create.)
#[test]
fn symlinked_segment_files_are_never_followed() {
    for (ext, clean) in [
        ("index", false),
        ("timeindex", false),
        ("log", false),
        ("index", true),
        ("timeindex", true),
        ("log", true),
    ] {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        let precious = vec![0x5a_u8; 4096];
        std::fs::write(&victim, &precious).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let cfg = TopicConfig::default().segment_bytes(1000);
        s.create_topic("s", cfg).unwrap();
        let p = partition(&s, "s");
        for i in 0..40 {
            p.append(&[Record::new(vec![b'r'; 50]).with_timestamp(T + i)])
                .unwrap();
        }
        let n = p.segments().len();
        assert!(n >= 3);
        drop(p);
        if clean {
            s.close().unwrap();
        } else {
            s.simulate_crash();
        }
        // The first (sealed) segment and the active one.
        let logs = log_files(&dir.path().join("s-0"));
        for log in [logs.first().unwrap(), logs.last().unwrap()] {
            let target = log.with_extension(ext);
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(&victim, &target).unwrap();
        }
        let result = (|| -> seglog::Result<()> {
            let s = Store::open_with(
                dir.path(),
                StoreConfig::default().maintenance_interval(None),
            )?;
            let p = partition(&s, "s");
            for r in p.records_from(0) {
                r?;
            }
            p.offset_for_timestamp(T + 3)?;
            p.append(&[Record::new("more")])?;
            drop(p);
            s.close()
        })();
        assert!(
            std::fs::read(&victim).unwrap() == precious,
            ".{ext} (clean {clean}): the file outside the data directory was written"
        );
        let err = result.expect_err("a symlinked segment file must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(".{ext}")) && msg.contains("symbolic link"),
            ".{ext} (clean {clean}): {msg}"
        );
    }
}
