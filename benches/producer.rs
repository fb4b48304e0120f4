//! The producer of issue 15 against today's ways of appending, measured in one run:
//! 1. single-record sends from one thread: `Topic::send` vs `Producer::send` (+ one flush);
//! 2. durable sends: one thread (today's `FlushPolicy::EveryAppend` + `Topic::send`, and the
//!    producer with `Acks::Durable`, `send(..).wait()` per record), eight threads each
//!    waiting per record, and eight threads keeping a window of sends outstanding;
//! 3. bytes on disk per record: producer vs `Partition::append` of 1000 vs `Topic::send`.
//!
//! The comparison with commitlog's single-record appends is in the peer package
//! (`cargo bench -p seglog-compare --bench producer_vs_peers`): commitlog is not a
//! dependency of this package, so that the peers stay out of its dev-dependencies.
//!
//! `cargo bench --bench producer` (about a minute), `SEGLOG_BENCH_QUICK=1` for a quick run.
//! Logs go to a fresh directory under `SEGLOG_BENCH_DIR` (default `/var/tmp`: a disk, not
//! tmpfs; the file system is printed). Prints a table, ratios and a MET/MISS line per goal.
//!
//! `SEGLOG_PRODUCER_INSTR=<n>` runs only `n` producer sends and a flush, the sending part
//! in `timed_part`, for `valgrind --tool=callgrind --separate-threads=yes
//! --toggle-collect='*timed_part*'`; the sender thread is measured whole, without the
//! toggle (its loop is inlined into its closure). `SEGLOG_PRODUCER_INSTR_BUFFER=<bytes>`
//! sets the producer's `buffer_bytes` for that run: valgrind runs one thread at a time, so
//! with the default 32 MiB the sender hardly runs until the flush and no batch buffer is
//! recycled; a few batches' worth makes the threads alternate (see BENCHMARKS.md).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use seglog::{Acks, Delivery, FlushPolicy, Producer, ProducerConfig, Record, Store, TopicConfig};

#[path = "common/units.rs"]
mod units;
use units::si;

/// Distinct payloads cycled through by every case.
const POOL: usize = 1000;
/// Records per append of the batched reference.
const BATCH: usize = 1000;
/// Threads of the concurrent durable cases.
const THREADS: usize = 8;
/// Sends outstanding per thread in the windowed durable case.
const WINDOW: usize = 256;
/// Rounds the durable cases take turns in.
const DURABLE_ROUNDS: usize = 3;

struct Scale {
    quick: bool,
}

impl Scale {
    fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
    /// Records of each single-thread throughput run.
    fn records(&self) -> usize {
        self.pick(1_000_000, 100_000)
    }
    /// Repetitions of each throughput case (interleaved; the median is reported).
    fn reps(&self) -> usize {
        self.pick(3, 1)
    }
    /// Time box of each durable case (over all its rounds).
    fn durable_time(&self) -> Duration {
        self.pick(Duration::from_secs(3), Duration::from_millis(300))
    }
    /// Records of each bytes-on-disk log.
    fn size_records(&self) -> usize {
        self.pick(200_000, 20_000)
    }
}

/// `n` distinct payloads of `size` bytes.
fn payloads(size: usize) -> Vec<Vec<u8>> {
    (0..POOL)
        .map(|i| (0..size).map(|j| (i * 31 + j) as u8).collect())
        .collect()
}

/// Where the logs go, and that place's file system (from /proc/mounts, the longest
/// mount point containing it).
fn base_dir() -> (PathBuf, String) {
    let base = std::env::var_os("SEGLOG_BENCH_DIR").map_or("/var/tmp".into(), PathBuf::from);
    let canon = base.canonicalize().unwrap_or_else(|_| base.clone());
    let fs = std::fs::read_to_string("/proc/mounts")
        .ok()
        .and_then(|m| {
            m.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() >= 3 && canon.starts_with(f[1])).then(|| (f[1].len(), f[2], f[0]))
                })
                .max_by_key(|&(len, ..)| len)
                .map(|(_, fs, dev)| format!("{fs} on {dev}"))
        })
        .unwrap_or_else(|| "unknown".into());
    (base, fs)
}

/// A store with one single-partition topic in a fresh directory under `base`. Fields drop
/// in order: the store closes before the directory is removed.
struct Log {
    topic: seglog::Topic,
    store: Store,
    dir: tempfile::TempDir,
}

impl Log {
    fn new(base: &Path, config: TopicConfig) -> Log {
        let dir = tempfile::Builder::new()
            .prefix("seglog-producer-bench")
            .tempdir_in(base)
            .expect("temp dir");
        let store = Store::open(dir.path()).expect("open store");
        let topic = store.create_topic("bench", config).expect("create topic");
        Log { topic, store, dir }
    }

    fn partition(&self) -> &seglog::Partition {
        self.topic.partition(0).expect("partition 0")
    }

    /// The sum of the topic's `.log` file sizes (the index files are preallocated).
    fn log_bytes(&self) -> u64 {
        fn walk(dir: &Path, sum: &mut u64) {
            for e in std::fs::read_dir(dir).expect("read dir").flatten() {
                let path = e.path();
                let meta = e.metadata().expect("metadata");
                if meta.is_dir() {
                    walk(&path, sum);
                } else if path.extension().is_some_and(|x| x == "log") {
                    *sum += meta.len();
                }
            }
        }
        let mut sum = 0;
        walk(self.dir.path(), &mut sum);
        sum
    }

    fn close(self) {
        drop(self.topic);
        self.store.close().expect("close store");
    }
}

/// How one timed case appends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    /// `Topic::send`, one record per call.
    TopicSend,
    /// `Producer::send` per record, one `flush` at the end.
    Producer,
    /// `Partition::append` of [`BATCH`] records.
    Batches,
}

/// Appends `n` records of `pool` (cycling) to `log` the `way` given; returns the time.
fn append(log: &Log, way: Way, pool: &[Vec<u8>], n: usize) -> Duration {
    let start = Instant::now();
    match way {
        Way::TopicSend => {
            for i in 0..n {
                black_box(
                    log.topic
                        .send(Record::new(pool[i % POOL].clone()))
                        .expect("send"),
                );
            }
        }
        Way::Producer => {
            let producer = log
                .topic
                .producer(ProducerConfig::default())
                .expect("producer");
            for i in 0..n {
                drop(producer.send(Record::new(pool[i % POOL].clone())));
            }
            producer.flush().expect("flush");
            let elapsed = start.elapsed();
            producer.close().expect("close producer");
            return elapsed;
        }
        Way::Batches => {
            let p = log.partition();
            for at in (0..n).step_by(BATCH) {
                let recs: Vec<Record> = (at..(at + BATCH).min(n))
                    .map(|i| Record::new(pool[i % POOL].clone()))
                    .collect();
                p.append(&recs).expect("append");
            }
        }
    }
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Part 1: one thread, 100 B values; records/s of each way (median of interleaved reps).
fn single_thread(scale: &Scale, base: &Path) -> Vec<(Way, f64)> {
    let pool = payloads(100);
    let n = scale.records();
    let ways = [Way::TopicSend, Way::Producer, Way::Batches];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for rep in 0..scale.reps() {
        for k in 0..ways.len() {
            let i = (k + rep) % ways.len();
            let log = Log::new(base, TopicConfig::default());
            let t = append(&log, ways[i], &pool, n);
            assert_eq!(
                log.partition().log_end_offset(),
                n as u64,
                "records appended"
            );
            log.close();
            rates[i].push(n as f64 / t.as_secs_f64());
        }
    }
    ways.into_iter()
        .zip(rates.into_iter().map(median))
        .collect()
}

/// How a durable case sends.
#[derive(Debug, Clone, Copy)]
enum Durable {
    /// `Topic::send` on a topic with `FlushPolicy::EveryAppend`.
    TopicSend,
    /// `Producer` with `Acks::Durable` and this linger; `send(..).wait()` per record, or
    /// with `window` sends outstanding per thread.
    Producer { linger: Duration, window: usize },
}

struct DurableResult {
    records: u64,
    fsyncs: u64,
    elapsed: Duration,
}

impl DurableResult {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// `threads` threads send durably for `time`; every record counted is durable.
fn durable(scale: &Scale, base: &Path, how: Durable, threads: usize) -> DurableResult {
    let config = match how {
        Durable::TopicSend => TopicConfig::default().flush_policy(FlushPolicy::EveryAppend),
        Durable::Producer { .. } => TopicConfig::default(),
    };
    let log = Log::new(base, config);
    let producer: Option<Producer> = match how {
        Durable::TopicSend => None,
        Durable::Producer { linger, .. } => Some(
            log.topic
                .producer(ProducerConfig::default().acks(Acks::Durable).linger(linger))
                .expect("producer"),
        ),
    };
    let pool = payloads(100);
    let fsyncs_before = log.partition().stats().flushes;
    let barrier = Barrier::new(threads);
    let time = scale.durable_time() / DURABLE_ROUNDS as u32;
    let start = Instant::now();
    let records: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (log, producer, pool, barrier) = (&log, &producer, &pool, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let deadline = Instant::now() + time;
                    let mut n = 0u64;
                    let value = |n: u64| Record::new(pool[(t * 97 + n as usize) % POOL].clone());
                    while Instant::now() < deadline {
                        match (how, producer) {
                            (Durable::TopicSend, _) => {
                                log.topic.send(value(n)).expect("durable send");
                                n += 1;
                            }
                            (Durable::Producer { window: 1, .. }, Some(p)) => {
                                p.send(value(n)).wait().expect("durable send");
                                n += 1;
                            }
                            (Durable::Producer { window, .. }, Some(p)) => {
                                let sent: Vec<Delivery> =
                                    (0..window as u64).map(|k| p.send(value(n + k))).collect();
                                for d in sent {
                                    d.wait().expect("durable send");
                                }
                                n += window as u64;
                            }
                            (Durable::Producer { .. }, None) => unreachable!("made above"),
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("sender")).sum()
    });
    let elapsed = start.elapsed();
    let fsyncs = log.partition().stats().flushes - fsyncs_before;
    if let Some(p) = producer {
        p.close().expect("close producer");
    }
    log.close();
    DurableResult {
        records,
        fsyncs,
        elapsed,
    }
}

/// Part 3: `.log` bytes per record of `n` records of `size`-byte values, per way.
fn bytes_per_record(scale: &Scale, base: &Path, size: usize) -> Vec<(Way, f64)> {
    let pool = payloads(size);
    let n = scale.size_records();
    [Way::Batches, Way::Producer, Way::TopicSend]
        .into_iter()
        .map(|way| {
            let log = Log::new(base, TopicConfig::default());
            append(&log, way, &pool, n);
            let per = log.log_bytes() as f64 / n as f64;
            log.close();
            (way, per)
        })
        .collect()
}

/// Only the producer's sends, for callgrind (see the module docs).
#[inline(never)]
fn timed_part(producer: &Producer, pool: &[Vec<u8>], n: usize) {
    for i in 0..n {
        drop(producer.send(Record::new(pool[i % POOL].clone())));
    }
    producer.flush().expect("flush");
}

fn instructions(base: &Path, n: usize) {
    let log = Log::new(base, TopicConfig::default());
    let pool = payloads(100);
    let mut config = ProducerConfig::default();
    if let Some(bytes) = std::env::var("SEGLOG_PRODUCER_INSTR_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.buffer_bytes(bytes);
    }
    let producer = log.topic.producer(config).expect("producer");
    timed_part(&producer, &pool, n);
    producer.close().expect("close producer");
    assert_eq!(log.partition().log_end_offset(), n as u64);
    log.close();
    println!("{n}");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("?".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET "
    } else {
        "MISS"
    }
}

fn main() {
    let (base, fs) = base_dir();
    if let Some(n) = std::env::var("SEGLOG_PRODUCER_INSTR")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return instructions(&base, n);
    }
    let scale = Scale {
        quick: units::quick_from_env(),
    };
    let started = Instant::now();
    let load_start = load_average();
    println!(
        "producer bench ({}): logs under {} ({fs}); load average {load_start}",
        if scale.quick { "quick" } else { "full" },
        base.display()
    );

    // 1. One thread, one record per call.
    let single = single_thread(&scale, &base);
    let rate_of = |w: Way| single.iter().find(|(x, _)| *x == w).expect("way").1;
    let (topic_send, producer, batches) = (
        rate_of(Way::TopicSend),
        rate_of(Way::Producer),
        rate_of(Way::Batches),
    );
    println!(
        "\n1. one thread, 100 B values, {} records, median of {} interleaved runs",
        si(scale.records() as f64),
        scale.reps()
    );
    println!("| case | records/s | ÷ Topic::send |");
    println!("|---|---:|---:|");
    for (name, r) in [
        ("Topic::send, one record per call", topic_send),
        ("Producer::send + one flush (default config)", producer),
        ("Partition::append, batches of 1000 (reference)", batches),
    ] {
        println!("| {name} | {} | {:.2}x |", si(r), r / topic_send);
    }

    // 2. Durable sends.
    let linger0 = Duration::ZERO;
    let linger5 = ProducerConfig::default().linger;
    let cases: Vec<(String, Durable, usize)> = vec![
        (
            "(i) 1 thread, Topic::send, FlushPolicy::EveryAppend".into(),
            Durable::TopicSend,
            1,
        ),
        (
            "(i) 1 thread, Producer Durable linger 0, send().wait()".into(),
            Durable::Producer {
                linger: linger0,
                window: 1,
            },
            1,
        ),
        (
            format!("(i) 1 thread, Producer Durable linger {linger5:?}, send().wait()"),
            Durable::Producer {
                linger: linger5,
                window: 1,
            },
            1,
        ),
        (
            "8 threads, Topic::send, FlushPolicy::EveryAppend".into(),
            Durable::TopicSend,
            THREADS,
        ),
        (
            "(ii) 8 threads, Producer Durable linger 0, send().wait()".into(),
            Durable::Producer {
                linger: linger0,
                window: 1,
            },
            THREADS,
        ),
        (
            format!("(ii) 8 threads, Producer Durable linger {linger5:?}, send().wait()"),
            Durable::Producer {
                linger: linger5,
                window: 1,
            },
            THREADS,
        ),
        (
            format!("(iii) 8 threads, Producer Durable linger 0, windows of {WINDOW}"),
            Durable::Producer {
                linger: linger0,
                window: WINDOW,
            },
            THREADS,
        ),
        (
            format!("(iii) 8 threads, Producer Durable linger {linger5:?}, windows of {WINDOW}"),
            Durable::Producer {
                linger: linger5,
                window: WINDOW,
            },
            THREADS,
        ),
    ];
    // The device's fsync rate drifts: the cases take turns, in rounds, each summed.
    let mut results: Vec<DurableResult> = (0..cases.len())
        .map(|_| DurableResult {
            records: 0,
            fsyncs: 0,
            elapsed: Duration::ZERO,
        })
        .collect();
    for round in 0..DURABLE_ROUNDS {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let (_, how, threads) = &cases[i];
            let r = durable(&scale, &base, *how, *threads);
            results[i].records += r.records;
            results[i].fsyncs += r.fsyncs;
            results[i].elapsed += r.elapsed;
        }
    }
    let one_today = results[0].rate();
    let one_best = results[..3]
        .iter()
        .map(DurableResult::rate)
        .fold(0.0, f64::max);
    println!(
        "\n2. durable sends, 100 B values, {:?} per case in {DURABLE_ROUNDS} interleaved rounds; \
         every record counted is durable",
        scale.durable_time()
    );
    println!("| case | records/s | records/fsync | ÷ (i) Topic::send | ÷ best (i) |");
    println!("|---|---:|---:|---:|---:|");
    for ((name, ..), r) in cases.iter().zip(&results) {
        println!(
            "| {name} | {} | {:.1} | {:.2}x | {:.2}x |",
            si(r.rate()),
            r.records as f64 / r.fsyncs.max(1) as f64,
            r.rate() / one_today,
            r.rate() / one_best
        );
    }

    // 3. Bytes on disk.
    println!(
        "\n3. bytes on disk per record (sum of .log sizes / records), {} records",
        si(scale.size_records() as f64)
    );
    println!("| value | batches of 1000 | Producer (default) | ÷ | Topic::send | ÷ |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut size_ratios = Vec::new();
    for size in [100usize, 10] {
        let per = bytes_per_record(&scale, &base, size);
        let of = |w: Way| per.iter().find(|(x, _)| *x == w).expect("way").1;
        let (b, p, t) = (of(Way::Batches), of(Way::Producer), of(Way::TopicSend));
        println!(
            "| {size} B | {b:.1} | {p:.1} | {:.3}x | {t:.1} | {:.2}x |",
            p / b,
            t / b
        );
        size_ratios.push((size, p / b));
    }

    println!(
        "\nGoals (issue 15, this run; load average {load_start} at the start, {} at the end; {:.0} s)",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    let r = producer / topic_send;
    println!(
        "  {} (a) one-thread single-record sends >= 10x Topic::send: {r:.2}x \
         (the 5x over commitlog is in `cargo bench -p seglog-compare --bench producer_vs_peers`)",
        verdict(r >= 10.0)
    );
    println!(
        "       bound: each send encodes its record as batches of 1000 do, plus its own \
         work; batches of 1000 ran at {:.2}x Topic::send here, the producer at {:.2}x of them",
        batches / topic_send,
        producer / batches
    );
    for (i, label) in [(4, "per-record waits"), (6, "windows of 256")] {
        let best = results[i].rate().max(results[i + 1].rate());
        let r = best / one_best;
        println!(
            "  {} (b) 8 threads, Acks::Durable, {label}, >= 10x one thread's durable rate: \
             {r:.2}x the best one-thread reading ({:.2}x today's Topic::send)",
            verdict(r >= 10.0),
            best / one_today
        );
    }
    println!(
        "       bound with per-record waits: {THREADS} threads give at most {THREADS} records \
         per fsync (measured {:.1} at linger 0, {:.1} at {linger5:?})",
        results[4].records as f64 / results[4].fsyncs.max(1) as f64,
        results[5].records as f64 / results[5].fsyncs.max(1) as f64
    );
    for (size, r) in size_ratios {
        println!(
            "  {} (c) {size} B bytes on disk per record within 10% of batches of 1000: {r:.3}x",
            verdict(r <= 1.10)
        );
    }
}
