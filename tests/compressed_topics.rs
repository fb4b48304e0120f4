//! Compressed topics end to end, for every codec (and levels where they matter), through
//! the public API: appends of batches with keys, headers, null values and tombstones read
//! back exactly through `Partition::read`, consumers and a group consumer; clean reopens;
//! reopens after a killed child process, with and without a torn compressed batch at the
//! tail; a flipped byte inside a sealed segment's compressed batch; `truncate_to` inside a
//! compressed batch; compaction (the topic's codec, or each batch's own for `producer`);
//! retention by size; `offset_for_timestamp` against a linear scan; the persisted topic
//! config; `seglog::verify` on a compressed log.
//!
//! A codec whose cargo feature is off is skipped (printed). Kafka-written mixed-codec logs
//! are covered by tests/adopt.rs.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use common::child;
use common::model::Stored;
use common::{create, log_files, open, partition, partition_dir, read_dense, ManualClock, Rng};
use seglog::record::{crc32c, BatchHeader, BatchIter};
use seglog::verify::{verify_partition, Options};
use seglog::{
    CleanupPolicy, Compression, ConsumerConfig, Error, Header, OffsetReset, Partition, Record,
    Store, StoreConfig, TopicCompression, TopicConfig, TOPICS_FILE,
};

const TOPIC: &str = "ct";
/// The store clock; record timestamps are below it (no compaction lag applies).
const T: i64 = 1_700_000_000_000;
const TS0: i64 = T - 50_000_000;
const LONG: Duration = Duration::from_secs(30);

/// Every codec with its default level, and levels at both ends where the codec has them;
/// only those this build has.
fn codecs() -> Vec<Compression> {
    let all = [
        Compression::None,
        Compression::GZIP,
        Compression::Gzip { level: Some(1) },
        Compression::Gzip { level: Some(9) },
        Compression::SNAPPY,
        Compression::LZ4,
        Compression::Lz4 { level: Some(1) },
        Compression::Lz4 { level: Some(17) },
        Compression::ZSTD,
        Compression::Zstd { level: Some(-5) },
        Compression::Zstd { level: Some(19) },
    ];
    all.into_iter()
        .filter(|c| {
            let ok = c.is_available();
            if !ok {
                println!("skipping {c}: its cargo feature is off in this build");
            }
            ok
        })
        .collect()
}

/// The codecs proper (no `None`), default levels.
fn compressing() -> Vec<Compression> {
    codecs()
        .into_iter()
        .filter(|c| {
            *c != Compression::None && c.level() == Compression::from_id(c.id()).unwrap().level()
        })
        .collect()
}

fn topic_config(c: Compression) -> TopicConfig {
    TopicConfig::default()
        .compression(c)
        .segment_bytes(16 * 1024)
}

/// A JSON-like value with varying fields (compressible, not all alike).
fn json(rng: &mut Rng, i: u64) -> Vec<u8> {
    let kinds = ["click", "view", "buy", "scroll"];
    format!(
        r#"{{"id":{i},"user":"u{}","kind":"{}","ms":{},"tag":"{:x}"}}"#,
        rng.below(50),
        kinds[rng.below(4) as usize],
        rng.below(100_000),
        rng.next() & 0xffff
    )
    .into_bytes()
}

/// Record `i` of seed `seed`: a key for most (from 40 keys), a tombstone (key, null value)
/// or an unkeyed null value now and then, 0..3 headers (some with null values), and a
/// timestamp that wanders around `TS0 + 10 i` (not monotonic).
fn record(rng: &mut Rng, i: u64) -> Record {
    let key = (rng.below(10) < 8).then(|| format!("key-{}", rng.below(40)).into_bytes());
    let value = match rng.below(20) {
        0 => None,
        _ => Some(json(rng, i)),
    };
    let headers = (0..rng.below(3))
        .map(|h| Header {
            key: format!("h{h}"),
            value: (rng.below(4) != 0).then(|| rng.bytes(rng_len(h))),
        })
        .collect();
    Record {
        key,
        value,
        headers,
        timestamp: Some(TS0 + 10 * i as i64 + rng.below(40) as i64 - 20),
    }
}

fn rng_len(h: u64) -> usize {
    (h as usize * 3) % 7
}

/// `n` batches of 1..40 records, numbered from `first`.
fn batches(seed: u64, first: u64, n: usize) -> Vec<Vec<Record>> {
    let mut rng = Rng::new(seed);
    let mut i = first;
    (0..n)
        .map(|_| {
            let len = rng.range(1, 40);
            (0..len)
                .map(|_| {
                    i += 1;
                    record(&mut rng, i - 1)
                })
                .collect()
        })
        .collect()
}

/// Appends each batch (one Kafka batch each) and returns the records as stored.
fn append_all(p: &Partition, batches: &[Vec<Record>]) -> Vec<Stored> {
    let mut out = Vec::new();
    for b in batches {
        let info = p.append(b).unwrap();
        assert_eq!(info.last_offset + 1 - info.base_offset, b.len() as u64);
        out.extend(b.iter().map(Stored::timed));
    }
    out
}

/// Every record from the log start, densely, reading `max_bytes` at a time.
fn read_back(p: &Partition, max_bytes: usize, ctx: &str) -> Vec<Stored> {
    read_dense(p, max_bytes, ctx, Stored::from_consumer)
}

/// The headers of every batch in the partition's `.log` files, with the file.
fn batches_on_disk(p: &Partition) -> Vec<(PathBuf, u64, BatchHeader)> {
    let mut out = Vec::new();
    for log in log_files(p.dir()) {
        let bytes = std::fs::read(&log).unwrap();
        let mut it = BatchIter::new(&bytes);
        for b in it.by_ref() {
            let (pos, b) = b.unwrap();
            out.push((log.clone(), pos as u64, *b.header()));
        }
        assert_eq!(
            it.position(),
            bytes.len(),
            "{} has a bad tail",
            log.display()
        );
    }
    out
}

/// Every batch on disk is written with `codec`'s id.
fn assert_codec_on_disk(p: &Partition, codec: Compression, ctx: &str) {
    let on_disk = batches_on_disk(p);
    assert!(!on_disk.is_empty(), "{ctx}: no batch on disk");
    for (log, pos, h) in on_disk {
        assert_eq!(
            h.compression(),
            codec.id(),
            "{ctx}: batch at {pos} of {} (base {})",
            log.display(),
            h.base_offset
        );
    }
}

fn consumer_record_matches(r: &seglog::ConsumerRecord, want: &Stored) -> bool {
    r.key == want.key
        && r.value == want.value
        && r.headers == want.headers
        && r.timestamp == want.timestamp
}

/// Polls `c` until it has `n` records.
fn poll_n(c: &mut seglog::Consumer, n: usize) -> Vec<seglog::ConsumerRecord> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + LONG;
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "consumer stalled at {}",
            out.len()
        );
        out.extend(c.poll(n - out.len(), Duration::from_millis(100)).unwrap());
    }
    out
}

/// The first record at or past `ts` by a linear scan: `(offset, timestamp)`.
fn linear_lookup(stored: &[(u64, Stored)], ts: i64) -> Option<(u64, i64)> {
    stored
        .iter()
        .find(|(_, r)| r.timestamp >= ts)
        .map(|(o, r)| (*o, r.timestamp))
}

fn check_timestamp_lookups(p: &Partition, stored: &[(u64, Stored)], ctx: &str) {
    let (lo, hi) = (
        stored.iter().map(|(_, r)| r.timestamp).min().unwrap(),
        stored.iter().map(|(_, r)| r.timestamp).max().unwrap(),
    );
    let mut targets: Vec<i64> = vec![i64::MIN, lo - 1, lo, hi, hi + 1];
    targets.extend((lo..=hi).step_by(7));
    for ts in targets {
        let got = p
            .offset_for_timestamp(ts)
            .unwrap()
            .map(|t| (t.offset, t.timestamp));
        assert_eq!(got, linear_lookup(stored, ts), "{ctx}: timestamp {ts}");
    }
}

// ---------------------------------------------------------------------------------------
// Reads, consumers, reopen

#[test]
fn every_codec_reads_back_exactly_through_reads_consumers_and_reopens() {
    for codec in codecs() {
        let ctx = format!("{codec}");
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let store = open(dir.path(), &clock);
        let p = create(&store, TOPIC, topic_config(codec));
        let mut want = append_all(&p, &batches(codec.id() as u64, 0, 60));
        assert!(p.segments().len() > 2, "{ctx}: the log should roll");
        assert_codec_on_disk(&p, codec, &ctx);
        for max_bytes in [1, 1000, 1 << 20] {
            assert_eq!(
                read_back(&p, max_bytes, &ctx),
                want,
                "{ctx}: reads of {max_bytes}"
            );
        }
        // Every offset on its own: a read inside a compressed batch starts at that offset.
        for o in (0..p.log_end_offset()).step_by(5) {
            let f = p.read(o, 1).unwrap();
            let first = f.records().next().unwrap();
            assert_eq!(first.offset(), o, "{ctx}");
            assert_eq!(
                Stored::from_view(&first),
                want[o as usize],
                "{ctx}: offset {o}"
            );
        }
        let stored: Vec<(u64, Stored)> = (0..).zip(want.iter().cloned()).collect();
        check_timestamp_lookups(&p, &stored, &ctx);

        // A consumer, and a group consumer.
        let cfg = ConsumerConfig::default()
            .reset(OffsetReset::Earliest)
            .fetch_bytes(2000);
        let mut c = store.consumer(TOPIC, cfg.clone()).unwrap();
        let got = poll_n(&mut c, want.len());
        assert_eq!(got.len(), want.len());
        for (i, (r, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(r.offset, i as u64, "{ctx}");
            assert!(
                consumer_record_matches(r, w),
                "{ctx}: consumer at {i}: {r:?} vs {w:?}"
            );
        }
        let mut g = store.join_group("g", TOPIC, cfg.auto_commit(None)).unwrap();
        let got = poll_n(&mut g, want.len());
        assert!(
            got.iter()
                .zip(&want)
                .all(|(r, w)| consumer_record_matches(r, w)),
            "{ctx}: group"
        );
        g.commit().unwrap();
        g.close().unwrap();
        drop(c);
        drop(p);
        store.close().unwrap();

        // A clean reopen, then more appends, then another.
        let store = open(dir.path(), &clock);
        assert!(store.opened_clean(), "{ctx}");
        let p = partition(&store, TOPIC);
        assert_eq!(
            p.config().compression,
            TopicCompression::Codec(codec),
            "{ctx}"
        );
        assert_eq!(
            read_back(&p, 4096, &ctx),
            want,
            "{ctx}: after a clean reopen"
        );
        want.extend(append_all(&p, &batches(99, want.len() as u64, 5)));
        assert_codec_on_disk(&p, codec, &ctx);
        assert_eq!(
            store.committed_offsets("g", TOPIC).unwrap().get(&0),
            Some(&(got.len() as u64)),
            "{ctx}: the group's commit"
        );
        drop(p);
        store.close().unwrap();
        let store = open(dir.path(), &clock);
        let p = partition(&store, TOPIC);
        assert_eq!(
            read_back(&p, 4096, &ctx),
            want,
            "{ctx}: after a second reopen"
        );
        drop(p);
        store.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Crash: a killed child process

const CHILD_DIR: &str = "SEGLOG_CT_CHILD_DIR";
const CHILD_CODEC: &str = "SEGLOG_CT_CHILD_CODEC";
const CHILD_BATCHES: usize = 30;

/// Not a test by itself: the child that appends (flushing all but its last batch), says so,
/// and waits to be killed. Does nothing unless started by `killed_child`.
#[test]
fn child_appender_helper() {
    let (Ok(dir), Ok(codec)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_CODEC)) else {
        return;
    };
    let codec: Compression = codec.parse().unwrap();
    let cfg = StoreConfig::default()
        .maintenance_interval(None)
        .checkpoint_interval(Duration::from_secs(3600));
    let store = Store::open_with(&dir, cfg).unwrap();
    let p = create(&store, TOPIC, topic_config(codec));
    let all = batches(7 + codec.id() as u64, 0, CHILD_BATCHES);
    append_all(&p, &all[..CHILD_BATCHES - 1]);
    p.flush().unwrap();
    append_all(&p, &all[CHILD_BATCHES - 1..]);
    child::report(&format!("appended {}", p.log_end_offset()));
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(3);
}

/// Runs the child for `codec` in `dir` and kills it once it has appended everything.
fn killed_child(dir: &Path, codec: Compression) -> u64 {
    let c = child::spawn_lines(
        child::helper("child_appender_helper")
            .env(CHILD_DIR, dir)
            .env(CHILD_CODEC, codec.to_string()),
    );
    let end = loop {
        match c.lines.recv_timeout(LONG) {
            Ok((_, line)) => {
                if let Some((_, r)) = line.split_once("CHILD-REPORT:appended ") {
                    break r.trim().parse::<u64>().unwrap();
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("{codec}: the child said nothing"),
            Err(RecvTimeoutError::Disconnected) => {
                let k = c.kill();
                panic!("{codec}: the child ended: {:?}\n{}", k.status, k.stderr);
            }
        }
    };
    let killed = c.kill();
    assert!(
        !killed.status.success(),
        "{codec}: the child should be killed"
    );
    end
}

fn child_records(codec: Compression) -> Vec<Stored> {
    batches(7 + codec.id() as u64, 0, CHILD_BATCHES)
        .iter()
        .flatten()
        .map(Stored::timed)
        .collect()
}

#[test]
fn every_codec_survives_a_killed_process_and_a_torn_compressed_tail() {
    for codec in codecs() {
        let ctx = format!("{codec}");
        let origin = tempfile::tempdir().unwrap();
        let end = killed_child(origin.path(), codec);
        let want = child_records(codec);
        assert_eq!(end, want.len() as u64, "{ctx}");

        // Every record is back, the log goes on, and survives a clean reopen.
        let copy = tempfile::tempdir().unwrap();
        common::copy_dir(origin.path(), copy.path());
        let clock = ManualClock::at(T);
        let store = open(copy.path(), &clock);
        assert!(!store.opened_clean(), "{ctx}: the child did not close");
        let p = partition(&store, TOPIC);
        assert_eq!(read_back(&p, 3000, &ctx), want, "{ctx}: after the kill");
        assert_codec_on_disk(&p, codec, &ctx);
        let mut more = want.clone();
        more.extend(append_all(&p, &batches(5, end, 3)));
        drop(p);
        store.close().unwrap();
        let store = open(copy.path(), &clock);
        assert_eq!(
            read_back(&partition(&store, TOPIC), 3000, &ctx),
            more,
            "{ctx}"
        );
        store.close().unwrap();

        // The last (unflushed) batch torn at several points: it goes, the rest stays.
        let last = log_files(&partition_dir(origin.path(), TOPIC, 0))
            .pop()
            .unwrap();
        let bytes = std::fs::read(&last).unwrap();
        let (pos, len, base) = BatchIter::new(&bytes)
            .map(|b| b.unwrap())
            .map(|(pos, b)| (pos, b.as_bytes().len(), b.base_offset()))
            .last()
            .unwrap();
        assert_eq!(pos + len, bytes.len(), "{ctx}");
        for cut in [1, 12, 61, 62, len / 2, len - 1] {
            let ctx = format!("{codec}, last batch cut to {cut} of {len} bytes");
            let copy = tempfile::tempdir().unwrap();
            common::copy_dir(origin.path(), copy.path());
            let log = log_files(&partition_dir(copy.path(), TOPIC, 0))
                .pop()
                .unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len((pos + cut) as u64)
                .unwrap();
            let store = open(copy.path(), &clock);
            let p = partition(&store, TOPIC);
            assert_eq!(p.log_end_offset(), base, "{ctx}");
            assert_eq!(read_back(&p, 3000, &ctx), want[..base as usize], "{ctx}");
            assert_eq!(std::fs::metadata(&log).unwrap().len(), pos as u64, "{ctx}");
            let info = p.append(&[Record::new("after").with_key("k")]).unwrap();
            assert_eq!(info.base_offset, base, "{ctx}");
            assert_codec_on_disk(&p, codec, &ctx);
            drop(p);
            store.close().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Damage in a sealed segment

/// A closed store whose topic has several segments of `codec` batches; returns the
/// records.
fn closed_store(dir: &Path, codec: Compression) -> Vec<Stored> {
    let clock = ManualClock::at(T);
    let store = open(dir, &clock);
    let p = create(&store, TOPIC, topic_config(codec).segment_bytes(8192));
    let want = append_all(&p, &batches(3, 0, 80));
    assert!(p.segments().len() > 2);
    drop(p);
    store.close().unwrap();
    want
}

#[test]
fn a_flipped_byte_in_a_sealed_compressed_batch_is_corrupt_never_wrong_records() {
    for codec in compressing() {
        let dir = tempfile::tempdir().unwrap();
        let want = closed_store(dir.path(), codec);
        let first = log_files(&partition_dir(dir.path(), TOPIC, 0)).remove(0);
        let bytes = std::fs::read(&first).unwrap();
        let (pos, b) = BatchIter::new(&bytes).nth(1).unwrap().unwrap();
        let (base, last, len) = (b.base_offset(), b.last_offset(), b.as_bytes().len());
        // Inside the compressed records section (it starts at byte 61 of the batch).
        for at in [61, 61 + (len - 61) / 2, len - 1] {
            let ctx = format!("{codec}, byte {at} of the batch at {base}");
            let copy = tempfile::tempdir().unwrap();
            common::copy_dir(dir.path(), copy.path());
            let log = log_files(&partition_dir(copy.path(), TOPIC, 0)).remove(0);
            common::flip(&log, pos + at, 0x20);
            let clock = ManualClock::at(T);
            let store = open(copy.path(), &clock);
            let p = partition(&store, TOPIC);
            for o in [base, last] {
                match p.read(o, 1 << 20) {
                    Err(Error::Corrupt { path, .. }) => assert_eq!(path, log, "{ctx}"),
                    Err(e) => panic!("{ctx}: read at {o}: expected Corrupt, got {e}"),
                    Ok(f) => panic!(
                        "{ctx}: read at {o} returned {} records",
                        f.records().count()
                    ),
                }
            }
            // Reads before and after it still work, exactly.
            let before = p.read(0, 1).unwrap();
            assert_eq!(
                Stored::from_view(&before.records().next().unwrap()),
                want[0]
            );
            let after = p.read(last + 1, 1 << 20).unwrap();
            for r in after.records() {
                assert_eq!(Stored::from_view(&r), want[r.offset() as usize], "{ctx}");
            }
            // A consumer stops with the error, returning nothing wrong.
            let mut c = store
                .consumer(
                    TOPIC,
                    ConsumerConfig::default().reset(OffsetReset::Earliest),
                )
                .unwrap();
            let mut seen = 0;
            loop {
                match c.poll(1000, Duration::from_millis(10)) {
                    Ok(rs) => {
                        assert!(!rs.is_empty(), "{ctx}: the consumer stalled silently");
                        for r in rs {
                            assert!(r.offset < base, "{ctx}: got {r:?}");
                            assert!(consumer_record_matches(&r, &want[r.offset as usize]));
                            seen += 1;
                        }
                    }
                    Err(Error::Corrupt { path, .. }) => {
                        assert_eq!(path, log, "{ctx}");
                        break;
                    }
                    Err(e) => panic!("{ctx}: consumer: {e}"),
                }
            }
            assert!(seen <= base as usize, "{ctx}");
            // verify names it too.
            let report =
                verify_partition(&partition_dir(copy.path(), TOPIC, 0), &Options::default())
                    .unwrap();
            assert!(!report.is_ok(), "{ctx}: verify found nothing");
            drop((c, p));
            store.close().unwrap();
        }
    }
}

/// The same damage with the batch CRC recomputed (a bad writer, not a bad disk): the CRC
/// passes. A read fails with `Corrupt` naming the file when the stream does not decompress
/// or its records do not parse or do not match the header, and never panics. A stream
/// without its own checksum (snappy, like an uncompressed batch) can decode to a different
/// value byte: only the batch CRC guards against that, so then the records' offsets and
/// count are checked, not their bytes.
#[test]
fn a_damaged_compressed_section_under_a_good_crc_never_gives_wrong_records() {
    for codec in compressing() {
        let dir = tempfile::tempdir().unwrap();
        let want = closed_store(dir.path(), codec);
        let first = log_files(&partition_dir(dir.path(), TOPIC, 0)).remove(0);
        let bytes = std::fs::read(&first).unwrap();
        let (pos, b) = BatchIter::new(&bytes).nth(1).unwrap().unwrap();
        let (base, len) = (b.base_offset(), b.as_bytes().len());
        for at in (61..len).step_by(((len - 61) / 8).max(1)) {
            let ctx = format!("{codec}, byte {at} of the batch at {base}, CRC fixed");
            let copy = tempfile::tempdir().unwrap();
            common::copy_dir(dir.path(), copy.path());
            let log = log_files(&partition_dir(copy.path(), TOPIC, 0)).remove(0);
            let mut bytes = std::fs::read(&log).unwrap();
            bytes[pos + at] ^= 0x20;
            let crc = crc32c(&bytes[pos + 21..pos + len]);
            bytes[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
            std::fs::write(&log, bytes).unwrap();
            let clock = ManualClock::at(T);
            let store = open(copy.path(), &clock);
            let p = partition(&store, TOPIC);
            match p.read(base, 1 << 20) {
                Err(Error::Corrupt { path, reason, .. }) => {
                    assert!(
                        path == log || path.starts_with(&log),
                        "{ctx}: Corrupt names {} not {} ({reason})",
                        path.display(),
                        log.display()
                    );
                }
                Err(e) => panic!("{ctx}: expected Corrupt, got {e}"),
                Ok(f) => {
                    let b = f.batches().next().unwrap();
                    let offsets: Vec<u64> = f
                        .records()
                        .map(|r| r.offset())
                        .filter(|o| *o <= b.last_offset())
                        .collect();
                    let expect: Vec<u64> = (base..=b.last_offset()).collect();
                    assert_eq!(offsets, expect, "{ctx}");
                    assert!(want.len() as u64 > b.last_offset());
                }
            }
            drop(p);
            store.close().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Truncation

#[test]
fn truncate_to_inside_a_compressed_batch_keeps_the_records_below_compressed() {
    for codec in codecs() {
        let ctx = format!("{codec}");
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let store = open(dir.path(), &clock);
        let p = create(&store, TOPIC, topic_config(codec));
        // Three batches of ten records.
        let mut rng = Rng::new(11);
        let recs: Vec<Vec<Record>> = (0..3)
            .map(|b| (0..10).map(|i| record(&mut rng, b * 10 + i)).collect())
            .collect();
        let want = append_all(&p, &recs);
        assert_eq!(p.log_end_offset(), 30);
        p.truncate_to(15).unwrap();
        assert_eq!(p.log_end_offset(), 15, "{ctx}");
        assert_eq!(read_back(&p, 1 << 20, &ctx), want[..15], "{ctx}");
        assert_codec_on_disk(&p, codec, &ctx);
        let last = batches_on_disk(&p).pop().unwrap().2;
        assert_eq!((last.base_offset, last.last_offset()), (10, 14), "{ctx}");
        let stored: Vec<(u64, Stored)> = (0..).zip(want[..15].iter().cloned()).collect();
        check_timestamp_lookups(&p, &stored, &ctx);
        // Appends go on at 15; a crash and a clean reopen keep it all.
        let more = append_all(&p, &batches(12, 15, 2));
        let mut want: Vec<Stored> = want[..15].to_vec();
        want.extend(more);
        drop(p);
        store.simulate_crash();
        let store = open(dir.path(), &clock);
        assert_eq!(
            read_back(&partition(&store, TOPIC), 100, &ctx),
            want,
            "{ctx}: after a crash"
        );
        store.close().unwrap();
        let store = open(dir.path(), &clock);
        let p = partition(&store, TOPIC);
        assert_eq!(
            read_back(&p, 100, &ctx),
            want,
            "{ctx}: after a clean reopen"
        );
        assert_codec_on_disk(&p, codec, &ctx);
        drop(p);
        store.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Compaction

/// A compacted topic with `compression`, rolling every 50 records of timestamps.
fn compacted(compression: TopicCompression) -> TopicConfig {
    TopicConfig::default()
        .compression(compression)
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_ms(500)
        .delete_retention_ms(1_000_000_000)
}

/// Appends `n` batches of 10 keyed records (20 keys, some tombstones) at timestamps
/// `ts..`, returning `(offset, record)`s; the records of one batch share a segment.
fn keyed(p: &Partition, seed: u64, n: usize, ts: &mut i64) -> Vec<(u64, Stored)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for _ in 0..n {
        let batch: Vec<Record> = (0..10)
            .map(|i| Record {
                key: Some(format!("k{}", rng.below(20)).into_bytes()),
                value: (rng.below(8) != 0).then(|| json(&mut rng, i)),
                headers: vec![Header {
                    key: "n".into(),
                    value: Some(vec![i as u8]),
                }],
                timestamp: Some(*ts + i as i64),
            })
            .collect();
        *ts += 60;
        let info = p.append(&batch).unwrap();
        out.extend((info.base_offset..).zip(batch.iter().map(Stored::timed)));
    }
    out
}

/// What cleaning below `clean_end` leaves: each key's latest record there (tombstones
/// too: their horizon is far), everything at or past it.
fn cleaned(history: &[(u64, Stored)], clean_end: u64) -> Vec<(u64, Stored)> {
    let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
    for (o, r) in history.iter().filter(|(o, _)| *o < clean_end) {
        latest.insert(r.key.clone().unwrap(), *o);
    }
    history
        .iter()
        .filter(|(o, r)| *o >= clean_end || latest[r.key.as_ref().unwrap()] == *o)
        .cloned()
        .collect()
}

fn read_sparse(p: &Partition) -> Vec<(u64, Stored)> {
    common::read_all(p, 4096, |r| (r.offset, Stored::from_consumer(r)))
}

#[test]
fn compaction_keeps_the_latest_per_key_in_the_topics_codec() {
    for codec in codecs() {
        let ctx = format!("{codec}");
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let store = open(dir.path(), &clock);
        let p = create(&store, TOPIC, compacted(codec.into()));
        let mut ts = TS0;
        let history = keyed(&p, 21, 40, &mut ts);
        let clean_end = p.segments().last().unwrap().base_offset();
        assert!(clean_end > 100, "{ctx}: the log should roll ({clean_end})");
        let report = p.compact_now().unwrap();
        assert!(report.records_removed > 0, "{ctx}: {report:?}");
        let want = cleaned(&history, clean_end);
        assert_eq!(read_sparse(&p), want, "{ctx}");
        assert_codec_on_disk(&p, codec, &ctx);
        let stored: Vec<(u64, Stored)> = want.clone();
        check_timestamp_lookups(&p, &stored, &ctx);
        drop(p);
        store.close().unwrap();
        let store = open(dir.path(), &clock);
        let p = partition(&store, TOPIC);
        assert_eq!(read_sparse(&p), want, "{ctx}: after a reopen");
        assert!(
            verify_partition(p.dir(), &Options::default())
                .unwrap()
                .is_ok(),
            "{ctx}"
        );
        drop(p);
        store.close().unwrap();
    }
}

/// Rewrites the topic's `compression` in `seglog-topics` of the closed store in `dir` (as
/// an operator altering `compression.type` between runs would).
fn set_compression(dir: &Path, c: TopicCompression) {
    let path = dir.join(TOPICS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let setting = match c {
        TopicCompression::Producer => "producer".to_string(),
        TopicCompression::Codec(Compression::None) => "uncompressed".to_string(),
        TopicCompression::Codec(c) => c.to_string(),
    };
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("crc32c "))
        .map(|l| match l.starts_with("compression=") {
            true => format!("compression={setting}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    assert_ne!(body, text, "no compression line in {text}");
    let crc = crc32c(body.as_bytes());
    std::fs::write(&path, format!("{body}crc32c {crc:08x}\n")).unwrap();
}

/// A compacted topic whose segments hold zstd, gzip, lz4 and uncompressed batches (its
/// compression changed between runs), then compacted with `compression`: each rewritten
/// batch is in `expect(its old codec)`.
fn mixed_codecs_compacted(compression: TopicCompression, ctx: &str) {
    let phases = [
        Compression::ZSTD,
        Compression::GZIP,
        Compression::LZ4,
        Compression::None,
    ];
    let needed = phases.iter().copied().chain(match compression {
        TopicCompression::Codec(c) => Some(c),
        TopicCompression::Producer => None,
    });
    if let Some(c) = needed.into_iter().find(|c| !c.is_available()) {
        println!("skipping {ctx}: {c} is not built in");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let mut history = Vec::new();
    let mut codec_of = Vec::new();
    let mut ts = TS0;
    for (i, phase) in phases.iter().enumerate() {
        if i > 0 {
            set_compression(dir.path(), (*phase).into());
        }
        let store = open(dir.path(), &clock);
        let p = match i {
            0 => create(&store, TOPIC, compacted((*phase).into())),
            _ => partition(&store, TOPIC),
        };
        assert_eq!(p.config().compression, TopicCompression::Codec(*phase));
        let got = keyed(&p, 30 + i as u64, 12, &mut ts);
        codec_of.extend(got.iter().map(|(o, _)| (*o, *phase)));
        history.extend(got);
        drop(p);
        store.close().unwrap();
    }
    set_compression(dir.path(), compression);
    let store = open(dir.path(), &clock);
    let p = partition(&store, TOPIC);
    assert_eq!(p.config().compression, compression);
    let clean_end = p.segments().last().unwrap().base_offset();
    let report = p.compact_now().unwrap();
    assert!(report.records_removed > 0, "{ctx}: {report:?}");
    let want = cleaned(&history, clean_end);
    assert_eq!(read_sparse(&p), want, "{ctx}");
    let codec_of: HashMap<u64, Compression> = codec_of.into_iter().collect();
    for (log, pos, h) in batches_on_disk(&p) {
        let old = codec_of[&(h.base_offset as u64)];
        // Batches past the cleaned range are not rewritten.
        let expect = match h.base_offset as u64 >= clean_end {
            true => old,
            false => compression.for_batch(old),
        };
        assert_eq!(
            h.compression(),
            expect.id(),
            "{ctx}: batch {} at {pos} of {} (written as {old})",
            h.base_offset,
            log.display()
        );
    }
    drop(p);
    store.close().unwrap();
}

#[test]
fn compaction_of_a_producer_topic_keeps_each_batchs_codec() {
    mixed_codecs_compacted(TopicCompression::Producer, "producer");
}

#[test]
fn compaction_of_a_gzip_topic_turns_rewritten_batches_into_gzip() {
    mixed_codecs_compacted(Compression::GZIP.into(), "gzip");
}

// ---------------------------------------------------------------------------------------
// Retention

#[test]
fn retention_by_size_on_a_compressed_topic() {
    for codec in codecs() {
        let ctx = format!("{codec}");
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T);
        let store = open(dir.path(), &clock);
        let cfg = topic_config(codec).retention_bytes(Some(40 * 1024));
        let p = create(&store, TOPIC, cfg);
        let mut want = Vec::new();
        let mut n = 0;
        while p.stats().size_bytes < 120 * 1024 {
            let b = batches(40 + n, want.len() as u64, 10);
            want.extend(append_all(&p, &b));
            n += 1;
        }
        let before = p.segments().len();
        let report = p.enforce_retention().unwrap();
        let start = p.log_start_offset();
        assert!(start > 0, "{ctx}: nothing deleted: {report:?}");
        assert!(p.segments().len() < before, "{ctx}");
        assert_eq!(p.segments()[0].base_offset(), start, "{ctx}");
        // Kafka's rule: segments go, oldest first, while the rest would still hold the limit.
        let size = p.stats().size_bytes;
        let oldest = std::fs::metadata(p.segments()[0].log_path()).unwrap().len();
        assert!(size - oldest < 40 * 1024, "{ctx}: {size} bytes left");
        let got = read_back(&p, 5000, &ctx);
        assert_eq!(got, want[start as usize..], "{ctx}");
        assert_codec_on_disk(&p, codec, &ctx);
        drop(p);
        store.close().unwrap();
        let store = open(dir.path(), &clock);
        let p = partition(&store, TOPIC);
        assert_eq!(p.log_start_offset(), start, "{ctx}");
        assert_eq!(read_back(&p, 5000, &ctx), want[start as usize..], "{ctx}");
        drop(p);
        store.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Config and tools

#[test]
fn seglog_topics_persists_the_compression() {
    let mut settings: Vec<TopicCompression> = vec![TopicCompression::Producer];
    settings.extend(codecs().into_iter().map(TopicCompression::Codec));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T);
    let store = open(dir.path(), &clock);
    for (i, s) in settings.iter().enumerate() {
        store
            .create_topic(&format!("t{i}"), TopicConfig::default().compression(*s))
            .unwrap();
    }
    store.close().unwrap();
    let text = std::fs::read_to_string(dir.path().join(TOPICS_FILE)).unwrap();
    assert!(text.contains("compression=producer"), "{text}");
    assert!(text.contains("compression=uncompressed"), "{text}");
    let store = open(dir.path(), &clock);
    for (i, s) in settings.iter().enumerate() {
        let t = store.topic(&format!("t{i}")).unwrap();
        assert_eq!(t.config().compression, *s, "topic t{i}");
        assert_eq!(
            t.config(),
            &TopicConfig::default().compression(*s),
            "topic t{i}"
        );
    }
    store.close().unwrap();
}

#[test]
fn verify_reports_no_problem_and_shows_the_records_of_a_compressed_log() {
    for codec in codecs() {
        let ctx = format!("{codec}");
        let dir = tempfile::tempdir().unwrap();
        let want = closed_store(dir.path(), codec);
        let report = verify_partition(
            &partition_dir(dir.path(), TOPIC, 0),
            &Options::default().with_batches(true).with_records(true),
        )
        .unwrap();
        let problems: Vec<_> = report.problems().collect();
        assert!(report.is_ok(), "{ctx}: {problems:?}");
        let mut seen = Vec::new();
        for seg in &report.segments {
            for b in &seg.log.batches {
                assert_eq!(b.compression, codec.id(), "{ctx}");
                assert!(b.crc_ok && b.error.is_none(), "{ctx}");
                assert_eq!(b.records.len(), b.records_count as usize, "{ctx}");
                for r in &b.records {
                    seen.push(Stored {
                        key: r.key.clone(),
                        value: r.value.clone(),
                        headers: r
                            .headers
                            .iter()
                            .map(|(k, v)| Header {
                                key: String::from_utf8(k.clone()).unwrap(),
                                value: v.clone(),
                            })
                            .collect(),
                        timestamp: r.timestamp,
                    });
                    assert_eq!(r.offset as usize, seen.len() - 1, "{ctx}");
                }
            }
        }
        assert_eq!(seen, want, "{ctx}");
    }
}
