//! Compression per codec, side by side with uncompressed: 100 B JSON-like records (fields
//! vary from record to record) appended in batches of 100 to a topic with
//! `TopicConfig::compression(codec)`.
//!
//! `cargo bench --bench compression` first prints a summary table, measured in one run on
//! fresh temp dirs, each figure the median of the repetitions, with ratios against
//! uncompressed:
//!
//! - bytes on disk per record (the `.log` files' sizes over the record count),
//! - append throughput (records/s, `Partition::append` of 100-record batches, no flush),
//! - read throughput (records/s, `Partition::read` of 1 MiB from the start to the log end,
//!   summing value lengths through `Fetch::records`).
//!
//! Then the criterion benchmarks `compression/append/<codec>` (one 100-record batch) and
//! `compression/read/<codec>` (the whole log). `SEGLOG_BENCH_QUICK=1` scales everything
//! down (a few seconds per codec).

#[path = "common/units.rs"]
#[allow(dead_code)] // `si` is not printed here
mod units;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use seglog::{Compression, Partition, Record, Store, StoreConfig, TopicConfig};

const BATCH: usize = 100;
const TOPIC: &str = "bench";

fn quick() -> bool {
    units::quick_from_env()
}

/// Records in a summary log, and repetitions per figure.
fn scale() -> (usize, usize) {
    if quick() {
        (20_000, 3)
    } else {
        (200_000, 5)
    }
}

/// The codecs this build has, uncompressed first.
fn codecs() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_available())
        .collect()
}

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A JSON-like value of 100 bytes whose fields vary: an id, a user, an event kind, a
/// page, a duration, a flag, and a hex tag (padded with spaces to 100 bytes).
fn value(rng: &mut Rng, i: usize) -> Vec<u8> {
    const EVENTS: [&str; 6] = ["view", "click", "scroll", "buy", "login", "search"];
    let mut v = format!(
        r#"{{"id":{i},"user":"u{:05}","event":"{}","page":"/p/{}","ms":{},"ok":{},"tag":"{:08x}"}}"#,
        rng.below(20_000),
        EVENTS[rng.below(EVENTS.len() as u64) as usize],
        rng.below(500),
        rng.below(5_000),
        rng.below(2) == 0,
        rng.next() as u32,
    )
    .into_bytes();
    v.resize(100, b' ');
    v
}

/// `n` records in batches of [`BATCH`], keyed by user.
fn batches(n: usize) -> Vec<Vec<Record>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let records: Vec<Record> = (0..n)
        .map(|i| Record::new(value(&mut rng, i)).with_key(format!("u{:05}", i % 20_000)))
        .collect();
    records.chunks(BATCH).map(<[Record]>::to_vec).collect()
}

fn open(dir: &Path, codec: Compression) -> (Store, Partition) {
    let store = Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap();
    let topic = store
        .create_topic(
            TOPIC,
            TopicConfig::default()
                .compression(codec)
                .segment_bytes(1 << 30),
        )
        .unwrap();
    let p = topic.partition(0).unwrap().clone();
    (store, p)
}

fn append_all(p: &Partition, batches: &[Vec<Record>]) {
    for b in batches {
        p.append(b).unwrap();
    }
}

/// Reads the whole log, summing value lengths.
fn read_all(p: &Partition) -> u64 {
    let (mut next, end, mut sum) = (p.log_start_offset(), p.log_end_offset(), 0u64);
    while next < end {
        let f = p.read(next, 1 << 20).unwrap();
        sum += f
            .records()
            .map(|r| r.value().map_or(0, <[u8]>::len) as u64)
            .sum::<u64>();
        next = f.next_offset();
    }
    sum
}

fn log_bytes(p: &Partition) -> u64 {
    std::fs::read_dir(p.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Row {
    codec: Compression,
    bytes_per_record: f64,
    append: f64,
    read: f64,
}

/// The summary table: each codec, each repetition on a fresh directory.
fn summary() {
    let (n, reps) = scale();
    let data = batches(n);
    let raw: usize = data
        .iter()
        .flatten()
        .map(|r| r.value.as_ref().map_or(0, Vec::len) + r.key.as_ref().map_or(0, Vec::len))
        .sum();
    let mut rows = Vec::new();
    for codec in codecs() {
        let (mut appends, mut reads, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..reps {
            let dir = tempfile::tempdir().unwrap();
            let (store, p) = open(dir.path(), codec);
            let t = Instant::now();
            append_all(&p, &data);
            appends.push(n as f64 / t.elapsed().as_secs_f64());
            bytes = log_bytes(&p);
            let t = Instant::now();
            let sum = black_box(read_all(&p));
            reads.push(n as f64 / t.elapsed().as_secs_f64());
            assert_eq!(sum, (n * 100) as u64);
            drop(p);
            store.close().unwrap();
        }
        rows.push(Row {
            codec,
            bytes_per_record: bytes as f64 / n as f64,
            append: median(appends),
            read: median(reads),
        });
    }
    println!(
        "\ncompression summary ({} mode): {n} records of 100 B values + 6 B keys ({:.1} B of \
         key and value each), batches of {BATCH}, median of {reps}",
        if quick() { "QUICK" } else { "full" },
        raw as f64 / n as f64
    );
    println!(
        "{:<8} {:>12} {:>8} {:>14} {:>8} {:>14} {:>8}",
        "codec", "B/record", "ratio", "append rec/s", "ratio", "read rec/s", "ratio"
    );
    let base = &rows[0];
    for r in &rows {
        println!(
            "{:<8} {:>12.1} {:>8.2} {:>14.0} {:>8.2} {:>14.0} {:>8.2}",
            r.codec.name(),
            r.bytes_per_record,
            r.bytes_per_record / base.bytes_per_record,
            r.append,
            r.append / base.append,
            r.read,
            r.read / base.read
        );
    }
    println!();
}

fn criterion_benches(c: &mut Criterion) {
    summary();
    let (n, _) = scale();
    let data = batches(n);
    let mut g = c.benchmark_group("compression");
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    }
    for codec in codecs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, p) = open(dir.path(), codec);
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut i = 0;
        g.bench_function(format!("append/{}", codec.name()), |b| {
            b.iter(|| {
                p.append(&data[i % data.len()]).unwrap();
                i += 1;
            })
        });
        drop(p);
        store.close().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let (store, p) = open(dir.path(), codec);
        append_all(&p, &data);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("read/{}", codec.name()), |b| {
            b.iter(|| black_box(read_all(&p)))
        });
        drop(p);
        store.close().unwrap();
    }
    g.finish();
}

criterion_group!(benches, criterion_benches);
criterion_main!(benches);
