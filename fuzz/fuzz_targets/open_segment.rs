//! Arbitrary bytes as a segment's files (`.log`, optionally `.index` and `.timeindex`):
//! verifying them, opening them read-only, and opening a store whose partition holds them,
//! then reading, looking up timestamps, appending and truncating, never panics or hangs.
//! Any `Err` is fine.
//!
//! Input: a first byte of 0 (as in a real `.log`, whose base offset starts with zeros) means
//! the whole input is the `.log` and there are no index files. Otherwise the first byte is
//! flags (bit 0: write a `.index`, bit 1: write a `.timeindex`) followed by
//! `[u16 BE len][.log][u16 BE len][.index][rest: .timeindex]`; lengths are clamped to what
//! is left. The last 8 bytes also serve as knobs (a timestamp target, a truncation point).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use seglog::record::{Batch, BatchIter};
use seglog::segment::Segment;
use seglog::verify::{verify_partition, verify_segment, Options};
use seglog::{Partition, Record, Store, TopicConfig};

/// Larger inputs are cut: per-input work stays small.
const MAX_INPUT: usize = 64 << 10;
const LOG: &str = "00000000000000000000.log";
const INDEX: &str = "00000000000000000000.index";
const TIMEINDEX: &str = "00000000000000000000.timeindex";

struct Files<'a> {
    log: &'a [u8],
    index: Option<&'a [u8]>,
    timeindex: Option<&'a [u8]>,
}

/// `[u16 BE len][len bytes][rest]`, the length clamped to what is there.
fn take_prefixed(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let len = u16::from_be_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    rest.split_at(len.min(rest.len()))
}

fn split(data: &[u8]) -> Files<'_> {
    match data.split_first() {
        None | Some((0, _)) => Files {
            log: data,
            index: None,
            timeindex: None,
        },
        Some((&flags, rest)) => {
            let (log, rest) = take_prefixed(rest);
            let (index, timeindex) = take_prefixed(rest);
            Files {
                log,
                index: (flags & 1 != 0).then_some(index),
                timeindex: (flags & 2 != 0).then_some(timeindex),
            }
        }
    }
}

/// A fresh directory, in memory when `/dev/shm` exists (fsync is then free).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("seglog-fuzz-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir")
}

/// Writes the segment files into `dir`, removing an index file the input does not have.
fn write_segment(dir: &Path, files: &Files<'_>) {
    std::fs::write(dir.join(LOG), files.log).expect("write .log");
    for (name, bytes) in [(INDEX, files.index), (TIMEINDEX, files.timeindex)] {
        let path = dir.join(name);
        match bytes {
            Some(b) => std::fs::write(&path, b).expect("write index"),
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove {}: {e}", path.display()),
            },
        }
    }
}

/// Every batch a read returned is whole, CRC-checked and has well-formed records
/// (compressed ones decompressed).
fn check_read_bytes(buf: &[u8]) {
    let mut scratch = Vec::new();
    for item in BatchIter::new(buf) {
        let (_, b) = item.expect("a read returned a bad batch");
        b.validate_all()
            .expect("a read returned a batch with bad records");
        for r in b.records_with(&mut scratch).expect("validated") {
            let _ = r.expect("validated").to_record();
        }
    }
}

/// (a): the files as a tool sees them.
fn read_only(dir: &Path, knob: u64) {
    let log_path = dir.join(LOG);
    let _ = verify_segment(&log_path, &Options::default().with_records(true));
    let _ = verify_partition(dir, &Options::default());
    let Ok(seg) = Segment::open_read_only(&log_path) else {
        return;
    };
    let _ = (
        seg.size(),
        seg.index_entries(),
        seg.offset_index(),
        seg.time_index(),
    );
    let base = seg.base_offset();
    let next = seg.next_offset();
    let mid = base + next.saturating_sub(base) / 2;
    let offsets = [
        0,
        base,
        base.saturating_add(1),
        mid,
        next.saturating_sub(1),
        next,
        next.saturating_add(1),
        knob,
        u64::MAX,
    ];
    for o in offsets {
        for (max, min_one) in [
            (0, true),
            (1, false),
            (1, true),
            (4096, true),
            (usize::MAX, false),
        ] {
            let mut buf = Vec::new();
            if let Ok(Some(_)) = seg.read(o, max, min_one, &mut buf) {
                check_read_bytes(&buf);
            }
        }
    }
    let max_ts = seg.max_timestamp().unwrap_or(-1);
    let targets = [
        i64::MIN,
        -1,
        0,
        1,
        max_ts,
        max_ts.saturating_add(1),
        i64::MAX,
        knob as i64,
    ];
    for t in targets {
        for from in [0, base, mid, next] {
            if let Ok(Some((o, ts))) = seg.find_offset_by_timestamp(t, from) {
                assert!(ts >= t, "found timestamp {ts} below target {t}");
                assert!(o >= from, "found offset {o} below from_offset {from}");
            }
        }
    }
}

/// (b): the files as a store's only partition, through the public API.
fn through_store(files: &Files<'_>, knob: u64) {
    let tmp = scratch();
    let dir = tmp.path();
    {
        let store = Store::open(dir).expect("open a fresh store");
        store
            .create_topic("f", TopicConfig::default())
            .expect("create topic");
        store.close().expect("close a fresh store");
    }
    let pdir = dir.join("f-0");
    write_segment(&pdir, files);
    let Ok(store) = Store::open(dir) else {
        return;
    };
    let topic = store.topic("f").expect("topic f is still in the metadata");
    let p = topic.partition(0).expect("partition 0").clone();
    exercise(&p, knob);
    let _ = store.close();
    // What the exercise left behind must reopen (or fail) cleanly too.
    let _ = verify_partition(&pdir, &Options::default());
    if let Ok(store) = Store::open(dir) {
        if let Ok(t) = store.topic("f") {
            if let Ok(p) = t.partition(0) {
                if let Ok(f) = p.read(p.log_start_offset(), 4096) {
                    check_read_bytes(f.as_bytes());
                }
            }
        }
        let _ = store.close();
    }
}

fn exercise(p: &Partition, knob: u64) {
    let start = p.log_start_offset();
    let end = p.log_end_offset();
    assert!(start <= end, "log start {start} past log end {end}");
    let mid = start + (end - start) / 2;
    let mut seen_ts = Vec::new();
    for o in [start, start + 1, mid, end.saturating_sub(1), end] {
        if o < start || o > end {
            continue;
        }
        for max in [0, 1, 512, 1 << 20] {
            let Ok(f) = p.read(o, max) else { continue };
            assert_eq!(f.offset(), o);
            assert!(
                f.next_offset() <= end,
                "read({o}, {max}): next offset {} past the log end {end}",
                f.next_offset()
            );
            if o == end {
                assert!(f.is_empty(), "read at the log end returned batches");
            }
            check_read_bytes(f.as_bytes());
            for r in f.records() {
                assert!(r.offset() >= o);
                seen_ts.push(r.timestamp());
                let _ = r.to_record();
            }
            // The copy-free paths agree with the copying one wherever both succeed.
            let copied: Vec<Record> = f.records().map(|r| r.to_record()).collect();
            if let Ok(lent) = p.read_in_place(o, max, |f| {
                f.records().map(|r| r.to_record()).collect::<Vec<_>>()
            }) {
                assert!(
                    copied.starts_with(&lent),
                    "read_in_place({o}, {max}) disagrees with read"
                );
            }
            if let Ok(found) = p.read_record(o, |r| r.to_record()) {
                let want = f
                    .records()
                    .find(|r| r.offset() >= o)
                    .filter(|r| r.offset() == o)
                    .map(|r| r.to_record());
                assert_eq!(found, want, "read_record({o}) disagrees with read");
            }
        }
    }
    assert!(
        p.read(end.saturating_add(1), 1).is_err() || end == u64::MAX,
        "read past the log end succeeded"
    );
    // A consumer loop, bounded: it may stop early on an error or no progress.
    let mut next = start;
    for _ in 0..64 {
        if next >= end {
            break;
        }
        match p.read(next, 4096) {
            Ok(f) if f.next_offset() > next => next = f.next_offset(),
            _ => break,
        }
    }
    seen_ts.sort_unstable();
    seen_ts.dedup();
    seen_ts.truncate(4);
    let mut targets = vec![i64::MIN, -1, 0, 1, i64::MAX, knob as i64];
    for ts in seen_ts {
        targets.extend([ts, ts.saturating_add(1)]);
    }
    for t in targets {
        if let Ok(Some(found)) = p.offset_for_timestamp(t) {
            assert!(
                found.timestamp >= t,
                "offset_for_timestamp({t}) gave {found:?}"
            );
            assert!(
                found.offset >= start && found.offset < end,
                "offset_for_timestamp({t}) gave {found:?} outside {start}..{end}"
            );
        }
    }
    append_and_read_back(p, b"fuzz");
    let end = p.log_end_offset();
    let span = end.saturating_sub(start).saturating_add(1);
    let to = start + (knob >> 8) % span;
    if p.truncate_to(to).is_ok() {
        assert_eq!(p.log_end_offset(), to, "log end after truncate_to({to})");
        if let Ok(f) = p.read(start, 4096) {
            check_read_bytes(f.as_bytes());
        }
        append_and_read_back(p, b"again");
    }
    let _ = p.flush();
    let _ = p.stats();
}

/// Appends one record; if that works, reading its offset gives it back.
fn append_and_read_back(p: &Partition, value: &[u8]) {
    let end = p.log_end_offset();
    let Ok(info) = p.append(&[Record::new(value).with_key("k")]) else {
        return;
    };
    assert_eq!(info.base_offset, end, "append did not start at the log end");
    assert_eq!(info.last_offset, end);
    assert_eq!(p.log_end_offset(), end + 1, "log end after an append");
    if let Ok(f) = p.read(end, 1 << 20) {
        let r = f
            .records()
            .next()
            .unwrap_or_else(|| panic!("read({end}) after appending at {end} returned nothing"));
        assert_eq!(r.offset(), end, "read after append returned another offset");
        assert_eq!(
            r.value(),
            Some(value),
            "read after append returned another value"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INPUT)];
    let knob = data
        .len()
        .checked_sub(8)
        .map_or(0, |i| u64::from_le_bytes(data[i..].try_into().unwrap()));
    let files = split(data);

    let tmp = scratch();
    write_segment(tmp.path(), &files);
    read_only(tmp.path(), knob);
    drop(tmp);

    through_store(&files, knob);

    // Keeps the codec's own checks in the loop as well.
    if let Ok(b) = Batch::parse(files.log) {
        let _ = b.validate();
    }
});
