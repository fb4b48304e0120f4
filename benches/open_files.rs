//! The cost of the open-file cap (`StoreConfig::max_open_files`) on reads of sealed
//! segments: one log of many sealed segments read with a cap far below the segment count
//! (every segment reopened and remapped as the reads reach it) and with a cap above it
//! (everything stays open after the first pass).
//!
//! `cargo bench --bench open_files` (about a minute on 2 cores). Cases:
//! - `sealed_sequential/{capped,uncapped}`: the whole log read front to back with 1 MiB
//!   fetches (throughput in payload bytes);
//! - `sealed_random/{capped,uncapped}`: single-offset reads at random offsets (one lookup
//!   each, nearly always in a segment the capped cache has closed).
//!
//! `SEGLOG_OPEN_FILES_DRIVER=capped|uncapped cargo bench --bench open_files` instead runs
//! a fixed number of random reads once, without criterion (a driver for
//! `valgrind --tool=callgrind`).

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use seglog::{Record, Store, StoreConfig, TopicConfig};

/// Sealed segments in the log, and their size.
const SEGMENTS: u64 = 2000;
const SEGMENT_BYTES: u64 = 32 << 10;
/// Records per append and their value size.
const BATCH: usize = 10;
const VALUE: usize = 100;
/// The capped case's cap (the smallest allowed) and the uncapped one's.
const CAP_LOW: usize = 16;
const CAP_HIGH: usize = 100_000;
/// Random reads per iteration.
const LOOKUPS: u64 = 1000;

/// Builds the log in `dir`; returns its record count.
fn build(dir: &Path) -> u64 {
    let store = Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(SEGMENT_BYTES)
                .retention_ms(None),
        )
        .unwrap();
    let p = t.partition(0).unwrap();
    let value = vec![b'v'; VALUE];
    let records: Vec<Record> = (0..BATCH).map(|_| Record::new(value.clone())).collect();
    while (p.segments().len() as u64) <= SEGMENTS {
        p.append(&records).unwrap();
    }
    let end = p.log_end_offset();
    store.close().unwrap();
    end
}

fn open(dir: &Path, cap: usize) -> Store {
    Store::open_with(
        dir,
        StoreConfig::default()
            .maintenance_interval(None)
            .max_open_files(cap),
    )
    .unwrap()
}

/// Reads the whole log; returns the payload bytes read.
fn read_all(store: &Store) -> u64 {
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    let (mut next, mut bytes) = (0, 0);
    while next < p.log_end_offset() {
        let f = p.read(next, 1 << 20).unwrap();
        bytes += f
            .records()
            .map(|r| r.value().map_or(0, |v| v.len() as u64))
            .sum::<u64>();
        next = f.next_offset();
    }
    bytes
}

/// `LOOKUPS` single-offset reads at pseudo-random offsets below `end`.
fn lookups(store: &Store, end: u64, seed: &mut u64) {
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    for _ in 0..LOOKUPS {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let f = p.read(*seed % end, 1).unwrap();
        assert!(f.records().next().is_some());
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let end = build(dir.path());
    if let Ok(mode) = std::env::var("SEGLOG_OPEN_FILES_DRIVER") {
        let store = open(
            dir.path(),
            if mode == "capped" { CAP_LOW } else { CAP_HIGH },
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        lookups(&store, end, &mut seed); // warm: the uncapped case opens everything
        lookups(&store, end, &mut seed);
        store.close().unwrap();
        return;
    }
    let payload = end * VALUE as u64;
    for (name, cap) in [("capped", CAP_LOW), ("uncapped", CAP_HIGH)] {
        let store = open(dir.path(), cap);
        assert_eq!(read_all(&store), payload); // first pass: opens (and, uncapped, keeps) all
        let mut g = c.benchmark_group("sealed_sequential");
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .throughput(Throughput::Bytes(payload));
        g.bench_function(name, |b| b.iter(|| read_all(&store)));
        g.finish();
        let mut g = c.benchmark_group("sealed_random");
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .throughput(Throughput::Elements(LOOKUPS));
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        g.bench_function(name, |b| b.iter(|| lookups(&store, end, &mut seed)));
        g.finish();
        store.close().unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
