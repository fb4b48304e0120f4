//! Readers racing the writer: every record a reader sees is complete and in order, offsets
//! are dense, and nothing past the log end is ever returned, while the writer appends and
//! rolls segments. Truncation racing readers never panics or hands out torn data.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::create;
use seglog::record::crc32c;
use seglog::{Error, Partition, Record, Store, TopicConfig};

/// A value that names its own offset and generation and carries a checksum of itself:
/// `offset u64 | generation u32 | payload | crc32c u32` (big-endian).
fn make_value(offset: u64, generation: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(&generation.to_be_bytes());
    let len = (offset.wrapping_mul(2_654_435_761) % 97) as usize;
    v.extend((0..len).map(|i| (offset as usize + i * 31 + generation as usize) as u8));
    let crc = crc32c(&v);
    v.extend_from_slice(&crc.to_be_bytes());
    v
}

/// Checks a value made by `make_value`; returns `(offset, generation)`.
fn check_value(v: &[u8]) -> (u64, u32) {
    assert!(v.len() >= 16, "value too short: {} bytes", v.len());
    let (body, crc) = v.split_at(v.len() - 4);
    assert_eq!(
        crc32c(body),
        u32::from_be_bytes(crc.try_into().unwrap()),
        "value checksum"
    );
    let offset = u64::from_be_bytes(body[..8].try_into().unwrap());
    let generation = u32::from_be_bytes(body[8..12].try_into().unwrap());
    assert_eq!(
        body.len(),
        12 + (offset.wrapping_mul(2_654_435_761) % 97) as usize
    );
    (offset, generation)
}

fn batch_sizes(total: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let (mut done, mut i) = (0, 0u64);
    while done < total {
        let n = (1 + (i * 7) % 9).min(total - done);
        out.push(n);
        done += n;
        i += 1;
    }
    out
}

fn append_batch(p: &Partition, n: u64, generation: u32) {
    let base = p.log_end_offset();
    let recs: Vec<Record> = (base..base + n)
        .map(|o| Record::new(make_value(o, generation)).with_key(o.to_string()))
        .collect();
    let info = p.append(&recs).unwrap();
    assert_eq!(info.base_offset, base);
}

#[test]
fn readers_see_complete_dense_records_while_writer_appends_and_rolls() {
    const TOTAL: u64 = 8_000;
    const READERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = create(
        &store,
        "c",
        TopicConfig::default()
            .segment_bytes(4096)
            .segment_index_bytes(1 << 16)
            .index_interval_bytes(256),
    );
    let start = Arc::new(Barrier::new(READERS + 1));
    let writer_failed = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|id| {
            let p = p.clone();
            let start = Arc::clone(&start);
            let writer_failed = Arc::clone(&writer_failed);
            thread::spawn(move || {
                start.wait();
                let mut pos = 0u64;
                let mut reads = 0u64;
                let mut empty = 0u64;
                while pos < TOTAL {
                    assert!(!writer_failed.load(Ordering::SeqCst), "writer failed");
                    let max = [1usize, 300, 2000, 10_000][(reads as usize + id) % 4];
                    let f = p.read(pos, max).unwrap();
                    // Read the log end after the fetch: nothing returned may lie past it.
                    let end_after = p.log_end_offset();
                    reads += 1;
                    if f.is_empty() {
                        assert_eq!(f.next_offset(), pos);
                        empty += 1;
                        thread::yield_now();
                        continue;
                    }
                    for r in f.records() {
                        assert_eq!(r.offset(), pos, "reader {id}: offsets not dense");
                        let (o, generation) = check_value(r.value().unwrap());
                        assert_eq!((o, generation), (pos, 0), "reader {id}");
                        assert_eq!(r.key().unwrap(), pos.to_string().as_bytes());
                        assert!(
                            pos < end_after,
                            "reader {id}: record {pos} past log end {end_after}"
                        );
                        pos += 1;
                    }
                    assert_eq!(f.next_offset(), pos);
                    assert!(f.next_offset() <= end_after);
                }
                (reads, empty)
            })
        })
        .collect();

    start.wait();
    let mut rolls_seen = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut segs = 1;
        for n in batch_sizes(TOTAL) {
            append_batch(&p, n, 0);
            let now = p.stats().segments;
            if now != segs {
                rolls_seen += 1;
                segs = now;
            }
        }
    }));
    if result.is_err() {
        writer_failed.store(true, Ordering::SeqCst);
    }
    let mut reports = Vec::new();
    for r in readers {
        reports.push(r.join().expect("reader panicked"));
    }
    result.expect("writer panicked");
    assert_eq!(p.log_end_offset(), TOTAL);
    assert!(rolls_seen > 20, "only {rolls_seen} rolls");
    // Every reader made progress through many reads, not one read at the end.
    for (reads, _) in &reports {
        assert!(*reads > 10, "reports: {reports:?}");
    }
    store.close().unwrap();
}

// Regression: a read could return a batch appended after it loaded the log end offset, so
// its next_offset passed log_end_offset() and reading there gave OffsetOutOfRange.
#[test]
fn reads_never_pass_the_log_end() {
    const TOTAL: u64 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = create(&store, "c", TopicConfig::default());
    let done = Arc::new(AtomicBool::new(false));
    // Readers that made their first read: the writer starts once all have (on a loaded
    // machine a reader may otherwise get no CPU before the appends are over).
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|id| {
            let p = p.clone();
            let done = Arc::clone(&done);
            let started = Arc::clone(&started);
            thread::spawn(move || {
                let mut reads = 0u64;
                while reads == 0 || !done.load(Ordering::SeqCst) {
                    if reads == 1 {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    // Re-read the newest batch while the writer appends the next one.
                    let end = p.log_end_offset();
                    let at = end.saturating_sub(1);
                    let f = p.read(at, 1 << 20).unwrap();
                    let end_after = p.log_end_offset();
                    assert!(
                        f.next_offset() <= end_after,
                        "reader {id}: fetch at {at} ends at {} past log end {end_after}",
                        f.next_offset()
                    );
                    if id == 0 {
                        // A consumer continues where the fetch ended: never out of range.
                        p.read(f.next_offset(), 1).unwrap();
                    }
                    if id == 1 {
                        let found = p.offset_for_timestamp(end as i64).unwrap();
                        let end_after = p.log_end_offset();
                        if let Some(t) = found {
                            assert!(
                                t.offset < end_after,
                                "timestamp lookup found {t:?} past log end {end_after}"
                            );
                        }
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    // The first record lets every reader make its first read (of offset 0).
    let first = Record::new(make_value(0, 0)).with_timestamp(0);
    assert_eq!(p.append(&[first]).unwrap().base_offset, 0);
    while started.load(Ordering::SeqCst) < 4 {
        thread::yield_now();
    }
    for o in 1..TOTAL {
        let r = Record::new(make_value(o, 0)).with_timestamp(o as i64);
        assert_eq!(p.append(&[r]).unwrap().base_offset, o);
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().expect("reader panicked") > 0);
    }
    store.close().unwrap();
}

#[test]
fn truncation_racing_readers_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = create(
        &store,
        "c",
        TopicConfig::default()
            .segment_bytes(8000)
            .segment_index_bytes(1 << 16)
            .index_interval_bytes(200),
    );
    for n in batch_sizes(2000) {
        append_batch(&p, n, 0);
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|id| {
            let p = p.clone();
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ id;
                let (mut ok, mut out_of_range) = (0u64, 0u64);
                while !done.load(Ordering::SeqCst) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let end = p.log_end_offset();
                    let at = x % (end + 1);
                    match p.read(at, [50usize, 1000, 8000][(x % 3) as usize]) {
                        Ok(f) => {
                            for (want, r) in (at..).zip(f.records()) {
                                assert_eq!(r.offset(), want, "reader {id}");
                                let (o, _) = check_value(r.value().unwrap());
                                assert_eq!(o, want, "reader {id}: value of another offset");
                            }
                            ok += 1;
                        }
                        // The log end moved down between choosing `at` and reading.
                        Err(Error::OffsetOutOfRange {
                            offset, log_end, ..
                        }) => {
                            assert!(offset > log_end);
                            out_of_range += 1;
                        }
                        Err(e) => panic!("reader {id}: {e}"),
                    }
                    thread::yield_now();
                    if x.is_multiple_of(5) {
                        let t = p.offset_for_timestamp(i64::MIN).unwrap();
                        assert!(t.is_none_or(|t| t.offset == 0) || p.log_end_offset() == 0);
                    }
                }
                (ok, out_of_range)
            })
        })
        .collect();

    let mut x = 12345u64;
    for generation in 1..16u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let end = p.log_end_offset();
        let to = end - (x % 400).min(end);
        p.truncate_to(to).unwrap();
        assert_eq!(p.log_end_offset(), to);
        for n in batch_sizes(300 + x % 200) {
            append_batch(&p, n, generation);
        }
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        let (ok, _) = r.join().expect("reader panicked");
        assert!(ok > 0);
    }
    // The final log is dense and every record is intact.
    let mut next = 0;
    for r in p.records_from(0).fetch_bytes(1 << 16) {
        assert_eq!(check_value(&r.unwrap().value.unwrap()).0, next);
        next += 1;
    }
    assert_eq!(next, p.log_end_offset());
    store.close().unwrap();
}

#[test]
fn concurrent_appenders_get_dense_unique_offsets() {
    const WRITERS: u64 = 3;
    const BATCHES: u64 = 400;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store
        .create_topic(
            "c",
            TopicConfig::default()
                .partitions(2)
                .segment_bytes(4096)
                .segment_index_bytes(1 << 16),
        )
        .unwrap();
    let p = t.partition(0).unwrap().clone();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let p = p.clone();
            let t = t.clone();
            thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..BATCHES {
                    let n = 1 + (i + w) % 5;
                    let recs: Vec<Record> = (0..n)
                        .map(|j| Record::new(format!("w{w}-b{i}-r{j}")))
                        .collect();
                    let info = p.append(&recs).unwrap();
                    assert_eq!(info.last_offset - info.base_offset + 1, n);
                    mine.push((info.base_offset, w, i, n));
                    // The topic's partitioner from several threads at once, too.
                    t.send_to(1, Record::new(format!("w{w}-{i}"))).unwrap();
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<(u64, u64, u64, u64)> = writers
        .into_iter()
        .flat_map(|h| h.join().expect("writer panicked"))
        .collect();
    all.sort();
    // The batches tile the offsets exactly, each in the order its writer appended them.
    let mut next = 0;
    for &(base, w, i, n) in &all {
        assert_eq!(base, next, "gap or overlap at {base}");
        let f = p.read(base, 1).unwrap();
        let vals: Vec<String> = f
            .records()
            .take(n as usize)
            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..n).map(|j| format!("w{w}-b{i}-r{j}")).collect();
        assert_eq!(vals, want);
        next += n;
    }
    assert_eq!(p.log_end_offset(), next);
    assert_eq!(t.partition(1).unwrap().log_end_offset(), WRITERS * BATCHES);
    store.close().unwrap();
}

/// Point lookups and in-place reads from several threads at once, on a reopened store (so
/// every batch is checked for the first time by whichever thread reaches it first, and the
/// lookup caches fill concurrently), while a writer appends: every answer is the record
/// written at that offset. Run it under the wakedelay shim to widen the races.
#[test]
fn concurrent_point_lookups_on_a_reopened_store_see_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let value = |o: u64| format!("value-{o:08}-{}", "x".repeat((o % 37) as usize)).into_bytes();
    let config = || {
        TopicConfig::default()
            .segment_bytes(256 * 1024)
            .index_interval_bytes(512)
    };
    {
        let store = Store::open(dir.path()).unwrap();
        let p = store
            .create_topic("t", config())
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        // Batches of 1 to 60 records (the larger ones get seek hints).
        let mut next = 0u64;
        for round in 0..400u64 {
            let n = 1 + (round * 7 % 60);
            let records: Vec<Record> = (next..next + n).map(|o| Record::new(value(o))).collect();
            p.append(&records).unwrap();
            next += n;
        }
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    let written = p.log_end_offset();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (p, stop) = (p.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut o = written;
            while !stop.load(Ordering::Acquire) {
                p.append(&[Record::new(value(o))]).unwrap();
                o += 1;
            }
        })
    };
    let readers: Vec<_> = (0..4u64)
        .map(|t| {
            let p = p.clone();
            thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                for _ in 0..3000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let o = x % written;
                    let got = p.read_record(o, |r| r.value().map(<[u8]>::to_vec)).unwrap();
                    assert_eq!(got, Some(Some(value(o))), "read_record({o})");
                    let first = p
                        .read_in_place(o, 4096, |f| f.records().next().map(|r| r.offset()))
                        .unwrap();
                    assert_eq!(first, Some(o), "read_in_place({o})");
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    store.close().unwrap();
}
