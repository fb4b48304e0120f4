//! The offline verifier (`seglog::verify`): real partitions written through the public API
//! verify cleanly (while open with preallocated indexes, after a clean close with trimmed
//! ones, after a reopen), and each kind of damage injected into a copy is reported with the
//! right file and byte position — without a panic.

mod common;

use std::path::{Path, PathBuf};

use common::copy_dir;
use seglog::record::DecodeError;
use seglog::segment::file_name;
use seglog::verify::{
    verify_partition, verify_segment, Options, PartitionReport, Problem, ProblemKind,
};
use seglog::{Record, Store, TimestampType, TopicConfig};

const TOPIC: &str = "t";

fn config() -> TopicConfig {
    TopicConfig::default()
        .segment_bytes(4096)
        .index_interval_bytes(300)
        .segment_index_bytes(1024)
}

/// Batch `i`: 1 to 4 records with timestamps that do not rise monotonically, so that the
/// time index's running maximum matters.
fn batch(i: u64) -> Vec<Record> {
    let n = 1 + i % 4;
    (0..n)
        .map(|j| {
            let ts = 1_700_000_000_000 + ((i * 7919) % 23) as i64 * 1000 + j as i64 * 3;
            let mut r = Record::new(format!(
                "value-{i}-{j}-{}",
                "x".repeat((i % 5) as usize * 20)
            ))
            .with_timestamp(ts);
            if j % 2 == 0 {
                r = r.with_key(format!("key-{}", i % 7));
            }
            if i.is_multiple_of(3) {
                r = r.with_header("h", Some(vec![0, 1, 2, i as u8]));
            }
            r
        })
        .collect()
}

fn append(store: &Store, from: u64, to: u64) {
    let p = store.topic(TOPIC).unwrap();
    let p = p.partition(0).unwrap();
    for i in from..to {
        p.append(&batch(i)).unwrap();
    }
}

fn partition_dir(data: &Path) -> PathBuf {
    data.join(format!("{TOPIC}-0"))
}

fn verify(dir: &Path) -> PartitionReport {
    verify_partition(dir, &Options::default().with_records(true)).expect("verify")
}

fn assert_ok(r: &PartitionReport) {
    let problems: Vec<String> = r.problems().map(Problem::to_string).collect();
    assert!(
        r.is_ok(),
        "problems in {}:\n{}",
        r.dir.display(),
        problems.join("\n")
    );
}

/// A closed partition with several segments, each with index entries.
fn build(data: &Path) -> PathBuf {
    let store = Store::open(data).unwrap();
    store.create_topic(TOPIC, config()).unwrap();
    append(&store, 0, 120);
    store.close().unwrap();
    let dir = partition_dir(data);
    let r = verify(&dir);
    assert_ok(&r);
    assert!(r.segments.len() >= 4, "{} segments", r.segments.len());
    assert!(r.segments[..3].iter().all(|s| s.index.entries.len() >= 2
        && s.time_index.entries.len() >= 2
        && s.log.batch_count >= 4));
    dir
}

/// A copy of the partition in `dir` to damage.
fn damaged_copy(dir: &Path, tmp: &Path, name: &str) -> PathBuf {
    let to = tmp.join(name);
    copy_dir(dir, &to);
    to
}

fn seg_path(dir: &Path, base: u64, suffix: &str) -> PathBuf {
    dir.join(file_name(base, suffix))
}

/// The one problem of `r`, checked to be in `path` at `position`.
fn only_problem(r: &PartitionReport, path: &Path, position: u64) -> ProblemKind {
    let problems: Vec<&Problem> = r.problems().collect();
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    assert!(!r.is_ok());
    assert_eq!(problems[0].path, path, "{}", problems[0]);
    assert_eq!(problems[0].position, position, "{}", problems[0]);
    problems[0].kind.clone()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::write(p, bytes).unwrap()
}

#[test]
fn live_closed_and_reopened_partitions_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic(TOPIC, config()).unwrap();
    append(&store, 0, 90);
    let dir = partition_dir(tmp.path());

    // While open: the active segment's indexes are preallocated and zero-filled.
    let r = verify(&dir);
    assert_ok(&r);
    let active = r.segments.last().unwrap();
    assert!(active.index.unused_slots > 0 && active.time_index.unused_slots > 0);
    assert_eq!(active.index.size, 1024);
    assert_eq!(active.time_index.size, 1020);
    // The report agrees with the store's own view of its indexes and batches.
    let topic = store.topic(TOPIC).unwrap();
    let p = topic.partition(0).unwrap();
    let segments = p.segments();
    assert_eq!(segments.len(), r.segments.len());
    for (seg, rep) in segments.iter().zip(&r.segments) {
        assert_eq!(seg.base_offset(), rep.log.base_offset);
        assert_eq!(seg.size(), rep.log.size);
        let idx: Vec<(u64, u32)> = rep
            .index
            .entries
            .iter()
            .map(|e| (e.offset, e.position))
            .collect();
        assert_eq!(seg.offset_index().unwrap(), idx);
        let tidx: Vec<(i64, u64)> = rep
            .time_index
            .entries
            .iter()
            .map(|e| (e.timestamp, e.offset))
            .collect();
        assert_eq!(seg.time_index().unwrap(), tidx);
    }
    let records: Vec<_> = r
        .segments
        .iter()
        .flat_map(|s| &s.log.batches)
        .flat_map(|b| &b.records)
        .collect();
    assert_eq!(records.len() as u64, p.log_end_offset());
    let first = batch(0).remove(0);
    assert_eq!(records[0].key, first.key);
    assert_eq!(records[0].value, first.value);
    assert_eq!(records[0].timestamp, first.timestamp.unwrap());
    assert!(records.windows(2).all(|w| w[1].offset == w[0].offset + 1));
    let batches: Vec<_> = r.segments.iter().flat_map(|s| &s.log.batches).collect();
    assert!(batches.iter().all(|b| b.is_valid() && b.crc_ok));
    drop(segments);
    store.close().unwrap();

    // Closed: every index trimmed to its entries.
    let r = verify(&dir);
    assert_ok(&r);
    for s in &r.segments {
        assert_eq!(s.index.unused_slots, 0);
        assert_eq!(s.index.size, 8 * s.index.entries.len() as u64);
        assert_eq!(s.time_index.size, 12 * s.time_index.entries.len() as u64);
        // A closed segment's last time-index entry holds its max timestamp.
        assert_eq!(
            s.time_index.entries.last().map(|e| e.timestamp),
            s.log.max_timestamp
        );
    }

    // Reopened, appended to, verified while open and closed again.
    let store = Store::open(tmp.path()).unwrap();
    append(&store, 90, 160);
    assert_ok(&verify(&dir));
    store.close().unwrap();
    let r = verify(&dir);
    assert_ok(&r);
    assert_eq!(
        r.segments.iter().map(|s| s.log.record_count).sum::<u64>(),
        { (0..160).map(|i| 1 + i % 4).sum::<u64>() }
    );

    // Each segment file verifies on its own too.
    for s in &r.segments {
        let one = verify_segment(&s.log.path, &Options::default()).unwrap();
        assert!(one.is_ok());
        assert_eq!(one.log.batch_count, s.log.batch_count);
    }
}

#[test]
fn log_append_time_partition_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .create_topic(TOPIC, config().timestamp_type(TimestampType::LogAppendTime))
        .unwrap();
    append(&store, 0, 60);
    assert_ok(&verify(&partition_dir(tmp.path())));
    store.close().unwrap();
    let r = verify(&partition_dir(tmp.path()));
    assert_ok(&r);
    let b = &r.segments[0].log.batches[0];
    assert_eq!(b.timestamp_type, TimestampType::LogAppendTime);
    assert!(b.records.iter().all(|rec| rec.timestamp == b.max_timestamp));
}

#[test]
fn verify_only_keeps_no_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let r = verify_partition(&dir, &Options::default().with_batches(false)).unwrap();
    assert_ok(&r);
    assert!(r
        .segments
        .iter()
        .all(|s| s.log.batches.is_empty() && s.log.batch_count > 0));
}

#[test]
fn flipped_byte_is_a_crc_mismatch_at_its_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[1];
    let victim = &seg.log.batches[2];
    let copy = damaged_copy(&dir, tmp.path(), "flip");
    let log = seg_path(&copy, seg.log.base_offset, ".log");
    let mut bytes = read(&log);
    bytes[victim.position as usize + 70] ^= 0x40;
    write(&log, &bytes);

    let r = verify(&copy);
    match only_problem(&r, &log, victim.position) {
        ProblemKind::BadBatch(DecodeError::CrcMismatch {
            position, stored, ..
        }) => {
            assert_eq!(position as u64, victim.position);
            assert_eq!(stored, victim.crc);
        }
        other => panic!("unexpected {other:?}"),
    }
    let s = &r.segments[1];
    assert_eq!(s.log.valid_bytes, victim.position);
    assert_eq!(s.log.batch_count, 2);
    // The bad batch is listed last, invalid, with its header.
    let last = s.log.batches.last().unwrap();
    assert_eq!(last.position, victim.position);
    assert!(!last.crc_ok && !last.is_valid());
    // Index entries at or after it cannot be checked, and are not blamed.
    assert!(s.index.unchecked > 0);
}

#[test]
fn truncated_tail_is_reported_at_the_torn_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = clean.segments.last().unwrap();
    let victim = seg.log.batches.last().unwrap();
    let copy = damaged_copy(&dir, tmp.path(), "trunc");
    let log = seg_path(&copy, seg.log.base_offset, ".log");
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(seg.log.size - 10).unwrap();
    drop(f);

    let r = verify(&copy);
    match only_problem(&r, &log, victim.position) {
        ProblemKind::BadBatch(DecodeError::Truncated { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(r.segments.last().unwrap().log.valid_bytes, victim.position);

    // Cut inside the header too, and at every byte of a small tail: never OK, never a panic.
    for cut in [1u64, 11, 12, 20, 60, 61] {
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(victim.position + cut).unwrap();
        drop(f);
        let r = verify(&copy);
        let p = r.problems().next().unwrap();
        assert_eq!(
            (p.path.as_path(), p.position),
            (log.as_path(), victim.position)
        );
    }
}

#[test]
fn index_entry_pointing_mid_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[0];
    let entry = seg.index.entries[1];
    let copy = damaged_copy(&dir, tmp.path(), "mid");
    let index = seg_path(&copy, seg.log.base_offset, ".index");
    let mut bytes = read(&index);
    bytes[8..16].copy_from_slice(
        &[
            ((entry.offset - seg.log.base_offset) as u32).to_be_bytes(),
            (entry.position + 5).to_be_bytes(),
        ]
        .concat(),
    );
    write(&index, &bytes);

    let r = verify(&copy);
    assert_eq!(
        only_problem(&r, &index, 8),
        ProblemKind::IndexNotAtBatchStart {
            offset: entry.offset,
            log_position: entry.position + 5
        }
    );
}

#[test]
fn index_entry_naming_the_wrong_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[0];
    let entry = seg.index.entries[0];
    let copy = damaged_copy(&dir, tmp.path(), "wrongoff");
    let index = seg_path(&copy, seg.log.base_offset, ".index");
    let mut bytes = read(&index);
    let rel = (entry.offset - seg.log.base_offset) as u32 - 1;
    bytes[0..4].copy_from_slice(&rel.to_be_bytes());
    write(&index, &bytes);

    let r = verify(&copy);
    match only_problem(&r, &index, 0) {
        ProblemKind::IndexOffsetMismatch {
            offset,
            batch_last_offset,
            ..
        } => assert_eq!(
            (offset, batch_last_offset),
            (entry.offset - 1, entry.offset)
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn index_entry_past_the_log_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[1];
    let n = seg.index.entries.len();
    let entry = seg.index.entries[n - 1];
    let copy = damaged_copy(&dir, tmp.path(), "past");
    let index = seg_path(&copy, seg.log.base_offset, ".index");
    let mut bytes = read(&index);
    let at = (n - 1) * 8;
    let position = seg.log.size as u32 + 100;
    bytes[at + 4..at + 8].copy_from_slice(&position.to_be_bytes());
    write(&index, &bytes);

    let r = verify(&copy);
    assert_eq!(
        only_problem(&r, &index, at as u64),
        ProblemKind::IndexPastLogEnd {
            offset: entry.offset,
            log_position: position,
            log_size: seg.log.size
        }
    );
}

#[test]
fn decreasing_index_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[0];
    let (e1, e2) = (seg.index.entries[1], seg.index.entries[2]);
    let copy = damaged_copy(&dir, tmp.path(), "decr");
    let index = seg_path(&copy, seg.log.base_offset, ".index");
    let mut bytes = read(&index);
    let (a, b) = bytes[8..24].split_at_mut(8);
    a.swap_with_slice(b);
    write(&index, &bytes);

    let r = verify(&copy);
    assert_eq!(
        only_problem(&r, &index, 16),
        ProblemKind::IndexNotIncreasing {
            offset: e1.offset,
            log_position: e1.position,
            previous_offset: e2.offset,
            previous_log_position: e2.position,
        }
    );
}

#[test]
fn time_index_entry_with_a_wrong_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[2];
    let entry = seg.time_index.entries[1];
    let copy = damaged_copy(&dir, tmp.path(), "ts");
    let tindex = seg_path(&copy, seg.log.base_offset, ".timeindex");
    let mut bytes = read(&tindex);
    // One less: still above the entry before it, so only the value is wrong.
    assert!(entry.timestamp - 1 > seg.time_index.entries[0].timestamp);
    bytes[12..20].copy_from_slice(&(entry.timestamp - 1).to_be_bytes());
    write(&tindex, &bytes);

    let r = verify(&copy);
    assert_eq!(
        only_problem(&r, &tindex, 12),
        ProblemKind::TimeIndexWrongTimestamp {
            timestamp: entry.timestamp - 1,
            offset: entry.offset,
            expected: entry.timestamp,
        }
    );
}

#[test]
fn time_index_entry_outside_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[0];
    let n = seg.time_index.entries.len();
    let copy = damaged_copy(&dir, tmp.path(), "tsout");
    let tindex = seg_path(&copy, seg.log.base_offset, ".timeindex");
    let mut bytes = read(&tindex);
    let last = seg.log.last_offset.unwrap();
    let at = (n - 1) * 12;
    let rel = (last + 1 - seg.log.base_offset) as u32;
    bytes[at + 8..at + 12].copy_from_slice(&rel.to_be_bytes());
    write(&tindex, &bytes);

    let r = verify(&copy);
    match only_problem(&r, &tindex, at as u64) {
        ProblemKind::TimeIndexOffsetOutsideSegment { offset, .. } => assert_eq!(offset, last + 1),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn index_size_not_a_multiple_of_the_entry_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[1];
    let copy = damaged_copy(&dir, tmp.path(), "size");
    for (suffix, entry_size) in [(".index", 8u64), (".timeindex", 12)] {
        let path = seg_path(&copy, seg.log.base_offset, suffix);
        let mut bytes = read(&path);
        let whole = bytes.len() as u64;
        assert_eq!(whole % entry_size, 0);
        bytes.extend_from_slice(&[0xff; 3]);
        write(&path, &bytes);
        let r = verify(&copy);
        assert_eq!(
            only_problem(&r, &path, whole),
            ProblemKind::SizeNotMultiple {
                size: whole + 3,
                entry_size: entry_size as usize
            }
        );
        bytes.truncate(whole as usize);
        write(&path, &bytes);
        assert_ok(&verify(&copy));
    }
}

#[test]
fn overlapping_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let (s1, s2) = (&clean.segments[1], &clean.segments[2]);
    let lower = s2.log.base_offset - 1;
    let copy = damaged_copy(&dir, tmp.path(), "overlap");
    // Segment 2 copied under a name one below its base offset: it now starts inside
    // segment 1 (whose last batch holds `lower`) and holds segment 2's offsets.
    std::fs::copy(
        seg_path(&copy, s2.log.base_offset, ".log"),
        seg_path(&copy, lower, ".log"),
    )
    .unwrap();

    let r = verify(&copy);
    let problems: Vec<&Problem> = r.problems().collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(
        problems[0].path,
        seg_path(&copy, s1.log.base_offset, ".log")
    );
    assert_eq!(
        problems[0].position,
        s1.log.batches.last().unwrap().position
    );
    assert_eq!(
        problems[0].kind,
        ProblemKind::OverlapsNextSegment {
            last_offset: s1.log.last_offset.unwrap(),
            next_base_offset: lower,
            next_file: file_name(lower, ".log"),
        }
    );
    assert_eq!(problems[1].path, seg_path(&copy, lower, ".log"));
    assert_eq!(problems[1].position, 0);
    assert_eq!(
        problems[1].kind,
        ProblemKind::OverlapsNextSegment {
            last_offset: s2.log.last_offset.unwrap(),
            next_base_offset: s2.log.base_offset,
            next_file: file_name(s2.log.base_offset, ".log"),
        }
    );
}

#[test]
fn segment_below_its_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let s1 = &clean.segments[1];
    let copy = damaged_copy(&dir, tmp.path(), "below");
    // Segment 1's batches under a name past its first offset (the indexes go along).
    let higher = s1.log.base_offset + 1;
    for suffix in [".log", ".index", ".timeindex"] {
        std::fs::rename(
            seg_path(&copy, s1.log.base_offset, suffix),
            seg_path(&copy, higher, suffix),
        )
        .unwrap();
    }
    let r = verify(&copy);
    let first = r.problems().next().unwrap();
    assert_eq!(first.path, seg_path(&copy, higher, ".log"));
    assert_eq!(first.position, 0);
    assert!(matches!(
        first.kind,
        ProblemKind::BatchOutsideSegment { segment_base, .. } if segment_base == higher
    ));
}

#[test]
fn garbage_named_like_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let copy = damaged_copy(&dir, tmp.path(), "garbage");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let log = seg_path(&copy, 999_999, ".log");
    write(&log, &garbage);
    write(&seg_path(&copy, 999_999, ".index"), &garbage[..1001]);
    let r = verify(&copy);
    let problems: Vec<&Problem> = r.problems().collect();
    assert!(!r.is_ok());
    assert_eq!(problems[0].path, log);
    assert_eq!(problems[0].position, 0);
    assert!(matches!(problems[0].kind, ProblemKind::BadBatch(_)));
    assert!(problems[1..]
        .iter()
        .all(|p| p.path == seg_path(&copy, 999_999, ".index")));

    // Garbage in every file of a segment, and a log of zeros.
    let seg0 = |s: &str| seg_path(&copy, 0, s);
    write(&seg0(".log"), &vec![0; 4096]);
    write(&seg0(".index"), &garbage[..800]);
    write(&seg0(".timeindex"), &garbage[..1200]);
    let r = verify(&copy);
    assert!(!r.is_ok());
    assert!(r
        .problems()
        .any(|p| p.path == seg0(".log") && p.position == 0));
}

#[test]
fn random_damage_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = build(tmp.path());
    let clean = verify(&dir);
    let seg = &clean.segments[1];
    let copy = damaged_copy(&dir, tmp.path(), "random");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for suffix in [".log", ".index", ".timeindex"] {
        let path = seg_path(&copy, seg.log.base_offset, suffix);
        let original = read(&path);
        for _ in 0..150 {
            let mut bytes = original.clone();
            match next() % 3 {
                0 => {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << (next() % 8);
                }
                1 => bytes.truncate((next() % bytes.len() as u64) as usize),
                _ => bytes.extend((0..next() % 20).map(|_| next() as u8)),
            }
            write(&path, &bytes);
            let r = verify(&copy);
            // A shorter log always loses a whole batch or cuts one.
            if suffix == ".log" && bytes.len() < original.len() {
                assert!(!r.is_ok());
            }
            for p in r.problems() {
                assert!(!p.to_string().is_empty());
            }
        }
        write(&path, &original);
    }
    assert_ok(&verify(&copy));
}

#[test]
fn bad_paths_are_errors_not_problems() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(verify_partition(&tmp.path().join("missing"), &Options::default()).is_err());
    assert!(verify_segment(&tmp.path().join("foo.log"), &Options::default()).is_err());
    assert!(verify_segment(&seg_path(tmp.path(), 0, ".log"), &Options::default()).is_err());
    let r = verify_partition(tmp.path(), &Options::default()).unwrap();
    assert_eq!(r.problems().next().unwrap().kind, ProblemKind::NoSegments);
}

/// After a crash (files copied while the store is open), reopening and closing must leave a
/// final time-index entry that names the batch with the largest timestamp (FORMAT.md §5).
/// Regression: the tail walk at open raised the max timestamp but not its offset, so the
/// entry written at close was `(300, offset 0)` instead of `(300, offset 1)`.
#[test]
fn unclean_reopen_time_index_names_the_max_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("live");
    let store = Store::open(&data).unwrap();
    let t = store.create_topic(TOPIC, TopicConfig::default()).unwrap();
    let p = t.partition(0).unwrap();
    for ts in [100, 300, 200] {
        p.append(&[Record::new("v").with_timestamp(ts)]).unwrap();
    }
    p.flush().unwrap();
    // A crash: the files as they are while the store is open.
    let crashed = tmp.path().join("crashed");
    copy_dir(&data, &crashed);
    store.close().unwrap();
    let store = Store::open(&crashed).unwrap();
    store.close().unwrap();
    let r = verify(&partition_dir(&crashed));
    assert_ok(&r);
}
