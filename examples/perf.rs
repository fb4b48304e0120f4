//! A load generator like Kafka's `kafka-producer-perf-test` / `kafka-consumer-perf-test`.
//!
//! ```text
//! cargo run --release --example perf -- [produce|consume|both] [options]
//!   --dir PATH          data directory (default: a fresh temp dir, removed afterwards)
//!   --records N         records to produce (default 2,000,000)
//!   --record-size B     value size in bytes (default 100)
//!   --batch N           records per append (default 1000)
//!   --partitions N      partitions of the topic (default 1)
//!   --threads N         producer / consumer threads (default 1)
//!   --flush POLICY      never | batch (flush after every append) | N (every N records)
//!   --fetch-bytes B     max bytes per read when consuming (default 1 MiB)
//! ```
//!
//! Prints a progress line each second and a summary: records/s, MB/s, append (or fetch)
//! latency percentiles p50, p99, p99.9 and max, and the peak heap of the phase (measured
//! by a counting global allocator; memory-mapped files are not heap and do not count).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use seglog::{Partition, Record, Store, Topic, TopicConfig};

#[path = "../benches/common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{HEAP_NOW, HEAP_PEAK};

#[global_allocator]
static ALLOCATOR: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

/// Runs `phase` with the heap peak reset to the live heap at its start, then prints the
/// phase's peak.
fn measure_heap<T>(name: &str, phase: impl FnOnce() -> T) -> T {
    let start = HEAP_NOW.load(Ordering::Relaxed);
    HEAP_PEAK.store(start, Ordering::Relaxed);
    let result = phase();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "{name}: peak heap: {:.2} MiB ({:.2} MiB live at the start of the phase, {:.2} MiB at its end)",
        mib(HEAP_PEAK.load(Ordering::Relaxed)),
        mib(start),
        mib(HEAP_NOW.load(Ordering::Relaxed)),
    );
    result
}

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    dir: Option<PathBuf>,
    records: u64,
    record_size: usize,
    batch: usize,
    partitions: u32,
    threads: usize,
    flush: Flush,
    fetch_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flush {
    Never,
    EveryBatch,
    EveryRecords(u64),
}

fn usage(msg: &str) -> ! {
    eprintln!("perf: {msg}\nusage: perf [produce|consume|both] [--dir PATH] [--records N] [--record-size B] [--batch N] [--partitions N] [--threads N] [--flush never|batch|N] [--fetch-bytes B]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: "both".into(),
        dir: None,
        records: 2_000_000,
        record_size: 100,
        batch: 1000,
        partitions: 1,
        threads: 1,
        flush: Flush::Never,
        fetch_bytes: 1 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> T {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| usage(&format!("{name}: not a number: {v}")))
        }
        match arg.as_str() {
            "produce" | "consume" | "both" => a.mode = arg,
            "--dir" => a.dir = Some(PathBuf::from(value("--dir"))),
            "--records" => a.records = num("--records", value("--records")),
            "--record-size" => a.record_size = num("--record-size", value("--record-size")),
            "--batch" => a.batch = num("--batch", value("--batch")),
            "--partitions" => a.partitions = num("--partitions", value("--partitions")),
            "--threads" => a.threads = num("--threads", value("--threads")),
            "--fetch-bytes" => a.fetch_bytes = num("--fetch-bytes", value("--fetch-bytes")),
            "--flush" => {
                a.flush = match value("--flush").as_str() {
                    "never" => Flush::Never,
                    "batch" => Flush::EveryBatch,
                    n => Flush::EveryRecords(num("--flush", n.to_string())),
                }
            }
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if a.batch == 0 || a.threads == 0 || a.partitions == 0 {
        usage("--batch, --threads and --partitions must be at least 1");
    }
    a
}

const TOPIC: &str = "perf";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let store = Store::open(&dir)?;
    let topic = match store.topic(TOPIC) {
        Ok(t) => t,
        Err(_) => {
            // Batches may exceed Kafka's 1 MiB default when records are large.
            let batch_bytes = (args.batch * (args.record_size + 64) + 4096).max(1 << 20);
            let cfg = TopicConfig::default()
                .partitions(args.partitions)
                .max_batch_bytes(batch_bytes.min(i32::MAX as usize) as u32);
            store.create_topic(TOPIC, cfg)?
        }
    };
    println!(
        "perf: {} records of {} B in batches of {}, {} partition(s), {} thread(s), flush {:?}, dir {}",
        args.records,
        args.record_size,
        args.batch,
        topic.partition_count(),
        args.threads,
        args.flush,
        dir.display()
    );
    if args.mode == "produce" || args.mode == "both" {
        measure_heap("produce", || produce(&args, &topic))?;
    }
    if args.mode == "consume" || args.mode == "both" {
        measure_heap("consume", || consume(&args, &topic))?;
    }
    store.close()?;
    Ok(())
}

/// Shared counters for the progress line.
struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
    done: AtomicBool,
}

fn report_progress(what: &'static str, p: Arc<Progress>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut last_r, mut last_t) = (0u64, start);
        while !p.done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            if last_t.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let r = p.records.load(Ordering::Relaxed);
            let now = Instant::now();
            let rate = (r - last_r) as f64 / (now - last_t).as_secs_f64();
            println!("  {what}: {r} records, {rate:.0} records/s over the last second");
            (last_r, last_t) = (r, now);
        }
    })
}

fn partitions_of(topic: &Topic, thread: usize, threads: usize) -> Vec<Partition> {
    topic
        .partitions()
        .iter()
        .enumerate()
        .filter(|(i, _)| i % threads == thread)
        .map(|(_, p)| p.clone())
        .collect()
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 10 minutes at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// What a phase measured: (records, bytes, seconds, latency histogram).
type PhaseResult = (u64, u64, f64, Histogram<u64>);

/// Runs `work(thread, its partitions, progress, latency histogram)` on one thread per share
/// of the partitions, printing progress each second; returns the totals.
fn run_phase(
    what: &'static str,
    topic: &Topic,
    threads: usize,
    work: impl Fn(usize, Vec<Partition>, &Progress, &mut Histogram<u64>) -> seglog::Result<()> + Sync,
) -> seglog::Result<PhaseResult> {
    let progress = Arc::new(Progress {
        records: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    let reporter = report_progress(what, progress.clone());
    let hist = Mutex::new(new_histogram());
    let threads = threads.min(topic.partition_count() as usize);
    let start = Instant::now();
    let result = std::thread::scope(|s| -> seglog::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (progress, hist, work) = (&progress, &hist, &work);
                s.spawn(move || -> seglog::Result<()> {
                    let mut local = new_histogram();
                    work(t, partitions_of(topic, t, threads), progress, &mut local)?;
                    hist.lock()
                        .expect("histogram lock")
                        .add(&local)
                        .expect("same histogram bounds");
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("worker thread panicked")?;
        }
        Ok(())
    });
    let secs = start.elapsed().as_secs_f64();
    progress.done.store(true, Ordering::Release);
    let _ = reporter.join();
    result?;
    let hist = hist.into_inner().expect("histogram lock");
    Ok((
        progress.records.load(Ordering::Relaxed),
        progress.bytes.load(Ordering::Relaxed),
        secs,
        hist,
    ))
}

fn produce(args: &Args, topic: &Topic) -> seglog::Result<()> {
    let threads = args.threads.min(topic.partition_count() as usize);
    let per_thread = args.records / threads as u64;
    let (records, bytes, secs, hist) =
        run_phase("produced", topic, threads, |t, parts, progress, latency| {
            // Thread 0 also takes the remainder.
            let quota = per_thread
                + if t == 0 {
                    args.records % threads as u64
                } else {
                    0
                };
            let value = vec![b'x'; args.record_size];
            let batch: Vec<Record> = (0..args.batch)
                .map(|_| Record::new(value.clone()))
                .collect();
            let (mut sent, mut since_flush, mut i) = (0u64, 0u64, 0usize);
            while sent < quota {
                let n = (quota - sent).min(args.batch as u64) as usize;
                let p = &parts[i % parts.len()];
                i += 1;
                let t0 = Instant::now();
                let info = p.append(&batch[..n])?;
                since_flush += n as u64;
                let flush_now = match args.flush {
                    Flush::Never => false,
                    Flush::EveryBatch => true,
                    Flush::EveryRecords(k) => since_flush >= k,
                };
                if flush_now {
                    p.flush()?;
                    since_flush = 0;
                }
                latency.saturating_record(t0.elapsed().as_nanos() as u64);
                sent += n as u64;
                progress.records.fetch_add(n as u64, Ordering::Relaxed);
                progress
                    .bytes
                    .fetch_add(info.batch_bytes as u64, Ordering::Relaxed);
            }
            Ok(())
        })?;
    let flush_start = Instant::now();
    topic.flush()?;
    let flush_secs = flush_start.elapsed().as_secs_f64();
    println!(
        "produce: {records} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s (batch bytes); final flush {flush_secs:.2} s",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    print_latency("append", &hist);
    Ok(())
}

fn consume(args: &Args, topic: &Topic) -> seglog::Result<()> {
    let (records, bytes, secs, hist) = run_phase(
        "consumed",
        topic,
        args.threads,
        |_, parts, progress, latency| {
            for p in parts {
                let (mut next, end) = (p.log_start_offset(), p.log_end_offset());
                while next < end {
                    let t0 = Instant::now();
                    let fetch = p.read(next, args.fetch_bytes)?;
                    let (mut n, mut bytes) = (0u64, 0u64);
                    for r in fetch.records() {
                        n += 1;
                        bytes += r.value().map_or(0, |v| v.len() as u64);
                    }
                    latency.saturating_record(t0.elapsed().as_nanos() as u64);
                    next = fetch.next_offset();
                    progress.records.fetch_add(n, Ordering::Relaxed);
                    progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                }
            }
            Ok(())
        },
    )?;
    println!(
        "consume: {records} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s of values",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    print_latency("fetch", &hist);
    Ok(())
}

fn print_latency(what: &str, h: &Histogram<u64>) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{what} latency (µs): p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        h.len()
    );
}
