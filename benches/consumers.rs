//! Consumers: end-to-end latency of a tailing consumer, and read throughput with several
//! concurrent readers.
//!
//! `cargo bench --bench consumers` runs the full suite (about 35 s on 2 cores);
//! `SEGLOG_BENCH_QUICK=1 cargo bench --bench consumers` a scaled-down one (a few seconds).
//!
//! (a) Latency. A consumer thread waits in `Consumer::poll(.., 10 s)` on a 1-partition
//!     topic; the main thread appends one record of 8 bytes (its sequence number) with
//!     `Partition::append` and notes `Instant::now()` just before the call and just after it
//!     returns; the consumer notes `Instant::now()` when `poll` returns the record. Latency =
//!     receive − append start (always ≥ 0) and receive − append return (negative when the
//!     consumer had the record before the producer got back from `append`, which wakes it
//!     from inside; negatives count as 0 in the percentiles and are reported). The reference
//!     is the OS wake-up cost measured the same way, interleaved sample by sample with the
//!     seglog case so both see the same background load: a waiter blocked on a
//!     `std::sync::Condvar`, woken by a counter bumped under its `Mutex` and `notify_one`
//!     after the unlock. Sends are paced, one every 200 µs (the sender sleeps, then spins the
//!     last 60 µs), so every waiter is idle and waiting when its record comes. 10,000 samples
//!     per case (quick: 2,000) after 200 unmeasured ones. Also: how long `append` takes with
//!     a consumer waiting (it wakes it) and with nobody waiting, and an 8-partition topic with
//!     a consumer on each partition, appends to partition 0 (seglog's wake-up is per topic).
//!     The goal reported against: p99 under 50 µs from append return.
//! (b) Read throughput. A topic of 8 partitions × 16 MiB of 100 B values (quick: 1 MiB),
//!     written in batches of 1,000 and flushed, then read once unmeasured (reads come from
//!     the page cache, CRC checks already done). For k = 1, 4 and 8 concurrent readers, each
//!     on its own thread: "each reads everything" — k standalone consumers (`Store::consumer`,
//!     `OffsetReset::Earliest`) of all 8 partitions, each consuming every record (aggregate
//!     = k × records ÷ wall time); and "group of k" — k members of one fresh group
//!     (`Store::join_group`, no commits) sharing the partitions (records ÷ wall time).
//!     `poll(1,000, ..)` with `fetch_bytes` 64 KiB: every poll returns one whole written
//!     batch, in every case. Records/s, MB/s of values, the ratio to k = 1 in the same mode
//!     and the minor page faults per 1,000 records. Each case is the median of 5 runs
//!     (quick: 1), taken in rounds of one run of every case. References in the same run: a
//!     plain `Partition::read` loop (1 thread, no per-record copies), `Partition::records_from`
//!     over every partition (1 thread, owned records as a consumer's) and a single consumer
//!     swept over `max_records` 500 (Kafka's `max.poll.records` default), 10,000 and 100,000
//!     × `fetch_bytes` 64 KiB and 1 MiB (the default).
//!
//! The CPU count and the load average before and after are printed: on a small shared
//! machine, the latency tails measure the scheduler as much as seglog.

#[path = "common/units.rs"]
#[allow(dead_code)] // `si` is not printed here
mod units;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use seglog::{Consumer, ConsumerConfig, OffsetReset, Partition, Record, Store, TopicConfig};

/// 1 MB = 10^6 bytes in every MB/s figure.
const MB: f64 = 1e6;
const MIB: usize = 1 << 20;
/// Time between two latency samples.
const PACE: Duration = Duration::from_micros(200);
/// Unmeasured records before the latency samples.
const WARMUP: usize = 200;
/// The sender spins (rather than sleeps) this long before its slot.
const SPIN: Duration = Duration::from_micros(60);
/// Partitions of the fan-out case, one consumer each.
const FANOUT_PARTITIONS: u32 = 8;
/// The latency goal, from append return, at p99.
const GOAL_P99_US: f64 = 50.0;
const READ_PARTITIONS: u32 = 8;
const VALUE_BYTES: usize = 100;
const WRITE_BATCH: usize = 1_000;
/// `max_records` and `fetch_bytes` of the multi-reader cases: a fetch smaller than a written
/// batch returns exactly one batch, and a poll takes all of it, so every poll of every case
/// returns one whole batch and reads nothing twice.
const MAX_RECORDS: usize = WRITE_BATCH;
const FETCH_BYTES: usize = 64 << 10;
const READER_COUNTS: [usize; 3] = [1, 4, 8];
/// The single-consumer sweep: `max_records` (500 is Kafka's `max.poll.records` default)...
const SWEEP_POLLS: [usize; 3] = [500, 10_000, 100_000];
/// ...by `fetch_bytes` (1 MiB is the default).
const SWEEP_FETCHES: [usize; 2] = [64 << 10, MIB];

/// How big the run is: full, or quick (`SEGLOG_BENCH_QUICK=1`).
#[derive(Debug, Clone, Copy)]
struct Scale {
    quick: bool,
}

impl Scale {
    fn from_env() -> Scale {
        let quick = units::quick_from_env();
        Scale { quick }
    }
    fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
    fn latency_samples(&self) -> usize {
        self.pick(10_000, 2_000)
    }
    fn partition_bytes(&self) -> usize {
        self.pick(16 * MIB, MIB)
    }
    fn reps(&self) -> usize {
        self.pick(5, 1)
    }
}

fn main() {
    let scale = Scale::from_env();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "seglog consumers bench ({} run), {cpus} CPUs available",
        if scale.quick { "quick" } else { "full" }
    );
    let load_before = load_average();
    let started = Instant::now();
    let latency = measure_latency(scale);
    let throughput = measure_throughput(scale);
    print_latency(scale, &latency);
    print_throughput(scale, cpus, &throughput);
    println!(
        "\n(total {:.1} s; load average before {load_before}, after {})",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

/// The 1-minute load average (Linux), or "?".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

// ------------------------------------------------------------------------------------------
// (a) Latency
// ------------------------------------------------------------------------------------------

/// A standalone consumer's settings: from the start, no auto-commit (it has no group to
/// commit to).
fn standalone() -> ConsumerConfig {
    ConsumerConfig::default()
        .reset(OffsetReset::Earliest)
        .auto_commit(None)
}

/// A latency histogram in nanoseconds, 1 ns .. 10 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds")
}

/// When one sample was sent (just before the call, just after it returned) and received.
#[derive(Debug, Default)]
struct Times {
    starts: Vec<Instant>,
    returns: Vec<Instant>,
    received: Vec<Option<Instant>>,
}

/// Receive − send over the samples (the warm-up left out): "from start", "from return"
/// (negatives count as 0; their number and the most negative are kept), and how long the
/// send itself took (append, or lock + notify).
struct WakeLatency {
    from_start: Histogram<u64>,
    from_return: Histogram<u64>,
    negative: u64,
    most_negative_ns: u64,
    send: Histogram<u64>,
}

impl WakeLatency {
    fn of(t: &Times) -> WakeLatency {
        let mut w = WakeLatency {
            from_start: histogram(),
            from_return: histogram(),
            negative: 0,
            most_negative_ns: 0,
            send: histogram(),
        };
        let samples = t.starts.iter().zip(&t.returns).zip(&t.received);
        for ((s, r), got) in samples.skip(WARMUP) {
            let got = got.expect("every sample was received");
            w.from_start
                .saturating_record(got.saturating_duration_since(*s).as_nanos() as u64);
            if got >= *r {
                w.from_return
                    .saturating_record((got - *r).as_nanos() as u64);
            } else {
                w.negative += 1;
                w.most_negative_ns = w.most_negative_ns.max((*r - got).as_nanos() as u64);
                w.from_return.saturating_record(0);
            }
            w.send.saturating_record((*r - *s).as_nanos() as u64);
        }
        w
    }
}

struct LatencyResults {
    samples: usize,
    seglog: WakeLatency,
    condvar: WakeLatency,
    fanout: WakeLatency,
    append_alone: Histogram<u64>,
}

/// Sleeps, then spins for the last stretch, until `deadline`: the sender is running when
/// its slot comes, without keeping a CPU busy between samples (2 CPUs are few).
fn wait_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now + SPIN {
        std::thread::sleep(deadline - now - SPIN);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Sends one sample at the next slot with `send`, noting the times around it; returns the
/// slot after.
fn paced(next: Instant, times: &mut Times, send: impl FnOnce()) -> Instant {
    wait_until(next);
    let t0 = Instant::now();
    send();
    let t1 = Instant::now();
    times.starts.push(t0);
    times.returns.push(t1);
    t1.max(next) + PACE
}

/// The single-record appends of the latency runs, made before timing: record `i` holds `i`.
fn sequence_records(n: usize) -> Vec<Record> {
    (0..n as u64)
        .map(|i| Record::new(i.to_le_bytes().to_vec()))
        .collect()
}

/// A tailing consumer: waits in `poll`, notes when each record arrives (by the sequence
/// number in its value) until `total` have.
fn tail(mut consumer: Consumer, total: usize, ready: &Barrier) -> Vec<Option<Instant>> {
    let mut received = vec![None; total];
    ready.wait();
    let mut got = 0;
    while got < total {
        let batch = consumer.poll(1024, Duration::from_secs(10)).expect("poll");
        let now = Instant::now();
        assert!(!batch.is_empty(), "no record within 10 s");
        for r in batch {
            let v = r.value.expect("value");
            let seq = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
            received[seq as usize] = Some(now);
            got += 1;
        }
    }
    received
}

/// The OS reference: a waiter blocked on a std `Condvar` until the counter moves.
fn condvar_waiter(
    state: &(Mutex<usize>, Condvar),
    total: usize,
    ready: &Barrier,
) -> Vec<Option<Instant>> {
    let mut received = vec![None; total];
    let (lock, cv) = state;
    ready.wait();
    let mut seen = 0;
    while seen < total {
        let mut count = lock.lock().expect("lock");
        while *count == seen {
            count = cv.wait(count).expect("wait");
        }
        let now = Instant::now();
        let upto = *count;
        drop(count);
        for slot in &mut received[seen..upto] {
            *slot = Some(now);
        }
        seen = upto;
    }
    received
}

fn measure_latency(scale: Scale) -> LatencyResults {
    let samples = scale.latency_samples();
    let total = WARMUP + samples;
    println!("(a) latency: {samples} samples per case...");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let records = sequence_records(total);

    // seglog on a 1-partition topic and the Condvar reference, interleaved: both see the
    // same background load.
    let topic = store
        .create_topic("latency", TopicConfig::default())
        .expect("create topic");
    let partition = topic.partition(0).expect("partition 0");
    let consumer = store.consumer("latency", standalone()).expect("consumer");
    let state = (Mutex::new(0usize), Condvar::new());
    let (mut seglog, mut condvar) = (Times::default(), Times::default());
    let ready = Barrier::new(3);
    std::thread::scope(|s| {
        let (state, ready) = (&state, &ready);
        let waiter = s.spawn(move || tail(consumer, total, ready));
        let cv_waiter = s.spawn(move || condvar_waiter(state, total, ready));
        ready.wait();
        std::thread::sleep(Duration::from_millis(20)); // both are waiting
        let mut next = Instant::now() + PACE;
        for i in 0..total {
            next = paced(next, &mut seglog, || {
                partition.append(&records[i..i + 1]).expect("append");
            });
            next = paced(next, &mut condvar, || {
                *state.0.lock().expect("lock") += 1;
                state.1.notify_one();
            });
        }
        seglog.received = waiter.join().expect("consumer thread panicked");
        condvar.received = cv_waiter.join().expect("waiter thread panicked");
    });

    // The same appends with nobody waiting.
    let alone = store
        .create_topic("alone", TopicConfig::default())
        .expect("create topic");
    let partition = alone.partition(0).expect("partition 0");
    let mut times = Times::default();
    let mut next = Instant::now() + PACE;
    for i in 0..total {
        next = paced(next, &mut times, || {
            partition.append(&records[i..i + 1]).expect("append");
        });
    }
    let mut append_alone = histogram();
    for (s, r) in times.starts.iter().zip(&times.returns).skip(WARMUP) {
        append_alone.saturating_record((*r - *s).as_nanos() as u64);
    }

    // An 8-partition topic with a consumer on each partition; appends go to partition 0.
    let fanout = store
        .create_topic(
            "fanout",
            TopicConfig::default().partitions(FANOUT_PARTITIONS),
        )
        .expect("create topic");
    let partition = fanout.partition(0).expect("partition 0");
    let stop = AtomicBool::new(false);
    let mut times = Times::default();
    let ready = Barrier::new(FANOUT_PARTITIONS as usize + 1);
    std::thread::scope(|s| {
        let (stop, ready) = (&stop, &ready);
        let consumer = store
            .consumer_of("fanout", &[0], standalone())
            .expect("consumer");
        let waiter = s.spawn(move || tail(consumer, total, ready));
        for p in 1..FANOUT_PARTITIONS {
            let mut idle = store
                .consumer_of("fanout", &[p], standalone())
                .expect("consumer");
            s.spawn(move || {
                ready.wait();
                while !stop.load(Ordering::Acquire) {
                    let got = idle.poll(1024, Duration::from_millis(20)).expect("poll");
                    assert!(got.is_empty(), "nothing is appended to partition {p}");
                }
            });
        }
        ready.wait();
        std::thread::sleep(Duration::from_millis(20));
        let mut next = Instant::now() + PACE;
        for i in 0..total {
            next = paced(next, &mut times, || {
                partition.append(&records[i..i + 1]).expect("append");
            });
        }
        times.received = waiter.join().expect("consumer thread panicked");
        stop.store(true, Ordering::Release);
    });
    drop((topic, alone, fanout));
    store.close().expect("close store");
    LatencyResults {
        samples,
        seglog: WakeLatency::of(&seglog),
        condvar: WakeLatency::of(&condvar),
        fanout: WakeLatency::of(&times),
        append_alone,
    }
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

fn print_latency(scale: Scale, r: &LatencyResults) {
    let w = 60;
    let line = "-".repeat(w + 4 * 9);
    println!();
    println!(
        "(a) end-to-end latency: 8-byte records appended one at a time every {} µs (paced), \
         {} samples per case{}",
        PACE.as_micros(),
        r.samples,
        if scale.quick { " (quick)" } else { "" }
    );
    println!(
        "{:<w$} {:>8} {:>8} {:>8} {:>8}",
        "µs", "p50", "p99", "p99.9", "max"
    );
    println!("{line}");
    let row = |name: &str, h: &Histogram<u64>| {
        println!(
            "{:<w$} {:>8} {:>8} {:>8} {:>8}",
            name,
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max())
        );
    };
    row(
        "1 partition: append start -> poll returns it",
        &r.seglog.from_start,
    );
    row(
        "1 partition: append return -> poll returns it [1]",
        &r.seglog.from_return,
    );
    row(
        "ref Condvar: notify start -> waiter wakes",
        &r.condvar.from_start,
    );
    row(
        "ref Condvar: notify return -> waiter wakes [1]",
        &r.condvar.from_return,
    );
    row(
        "8 partitions, 8 consumers: append return -> poll [1][2]",
        &r.fanout.from_return,
    );
    println!("{line}");
    row(
        "append duration: 1 partition, consumer waiting",
        &r.seglog.send,
    );
    row(
        "append duration: 1 partition, nobody waiting",
        &r.append_alone,
    );
    row(
        "append duration: 8 partitions, 8 consumers [2]",
        &r.fanout.send,
    );
    row("ref Condvar: lock + notify_one duration", &r.condvar.send);
    println!("{line}");
    let p99 = r.seglog.from_return.value_at_quantile(0.99) as f64 / 1e3;
    let os_p99 = r.condvar.from_start.value_at_quantile(0.99) as f64 / 1e3;
    println!(
        "goal p99 < {GOAL_P99_US} µs (1 partition, from append return): {} — p99 {p99:.1} µs, \
         against the OS wake-up (Condvar, from notify start) p99 {os_p99:.1} µs",
        if p99 < GOAL_P99_US { "MET" } else { "NOT MET" },
    );
    let neg = |w: &WakeLatency| {
        format!(
            "{} of {} (down to -{} µs)",
            w.negative,
            r.samples,
            us(w.most_negative_ns)
        )
    };
    println!(
        "[1] received before the sender returned (counted as 0 in the percentiles): \
         1 partition {}, Condvar {}, 8 partitions {}",
        neg(&r.seglog),
        neg(&r.condvar),
        neg(&r.fanout)
    );
    println!(
        "[2] seglog's wake-up is per topic: each append to partition 0 wakes all {FANOUT_PARTITIONS} \
         consumers, {} of which find nothing and wait again.",
        FANOUT_PARTITIONS - 1
    );
    println!(
        "Notes: the seglog and Condvar cases alternate sample by sample, so they share the \
         background load. A consumer's figure includes its wake-up, the read of the new \
         batch and the copy into an owned ConsumerRecord; \"from start\" also includes the \
         append, which wakes the consumer before it returns. The sender sleeps between \
         samples and spins the last {} µs before its slot. On a 2-CPU machine shared with \
         other work the tails show scheduling as much as seglog.",
        SPIN.as_micros()
    );
}

// ------------------------------------------------------------------------------------------
// (b) Read throughput
// ------------------------------------------------------------------------------------------

/// One throughput measurement.
#[derive(Debug, Clone, Copy)]
struct Rate {
    records_per_s: f64,
    /// The process's minor page faults per 1,000 records read (Linux; `None` elsewhere).
    faults_per_k: Option<f64>,
}

impl Rate {
    fn mb_per_s(&self) -> f64 {
        self.records_per_s * VALUE_BYTES as f64 / MB
    }
}

/// The median by records/s.
fn median(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.records_per_s.total_cmp(&b.records_per_s));
    rates[rates.len() / 2]
}

/// The process's minor page faults so far, from `/proc/self/stat` (field 10).
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(7)?.parse().ok()
}

/// Runs `read` (which reads `records` records in all) and measures it.
fn measured(records: u64, read: impl FnOnce()) -> Rate {
    let faults = minor_faults();
    let start = Instant::now();
    read();
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    Rate {
        records_per_s: records as f64 / secs,
        faults_per_k: faults
            .zip(minor_faults())
            .map(|(a, b)| (b - a) as f64 * 1000.0 / records as f64),
    }
}

struct ThroughputResults {
    records: u64,
    log_bytes: u64,
    each_reads_all: Vec<(usize, Rate)>,
    group_splits: Vec<(usize, Rate)>,
    raw_read: Rate,
    /// One thread iterating `Partition::records_from` over every partition.
    records_from: Rate,
    /// One consumer reading everything, by (max_records, fetch_bytes).
    sweep: Vec<(usize, usize, Rate)>,
}

fn measure_throughput(scale: Scale) -> ThroughputResults {
    let dir = tempfile::tempdir().expect("temp dir");
    let per_partition = (scale.partition_bytes() / VALUE_BYTES) as u64;
    println!(
        "(b) read throughput: writing {READ_PARTITIONS} partitions x {per_partition} records \
         of {VALUE_BYTES} B..."
    );
    let store = Store::open(dir.path()).expect("open store");
    let topic = store
        .create_topic("reads", TopicConfig::default().partitions(READ_PARTITIONS))
        .expect("create topic");
    let batch: Vec<Record> = (0..WRITE_BATCH)
        .map(|i| {
            Record::new(
                (0..VALUE_BYTES)
                    .map(|j| (i * 31 + j) as u8)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    for p in topic.partitions() {
        while p.log_end_offset() < per_partition {
            let n = (per_partition - p.log_end_offset()).min(WRITE_BATCH as u64) as usize;
            p.append(&batch[..n]).expect("append");
        }
    }
    topic.flush().expect("flush");
    let records = per_partition * READ_PARTITIONS as u64;
    // Unmeasured: the first read of a segment's data CRC-checks it (later reads trust the
    // checked range) and faults in its memory map.
    measured(records, || raw_scan(topic.partitions(), records));
    let log_bytes = topic
        .partitions()
        .iter()
        .map(|p| p.stats().size_bytes)
        .sum();
    // The cases, run round after round (one run of each per round), so that a burst of
    // background load spreads over all of them rather than hitting one.
    enum Case {
        EachReadsAll(usize),
        Group(usize),
        Raw,
        RecordsFrom,
        Sweep(usize, usize),
    }
    let mut cases: Vec<Case> = READER_COUNTS
        .iter()
        .map(|&k| Case::EachReadsAll(k))
        .collect();
    cases.extend(READER_COUNTS.iter().map(|&k| Case::Group(k)));
    cases.push(Case::Raw);
    cases.push(Case::RecordsFrom);
    for m in SWEEP_POLLS {
        cases.extend(SWEEP_FETCHES.iter().map(|&f| Case::Sweep(m, f)));
    }
    let mut runs: Vec<Vec<Rate>> = cases.iter().map(|_| Vec::new()).collect();
    let mut group_seq = 0;
    for _ in 0..scale.reps() {
        for (case, runs) in cases.iter().zip(&mut runs) {
            runs.push(match *case {
                Case::EachReadsAll(k) => each_reads_everything(&store, k, records),
                Case::Group(k) => {
                    group_seq += 1;
                    group_split(&store, &format!("bench-{group_seq}"), k, records)
                }
                Case::Raw => measured(records, || raw_scan(topic.partitions(), records)),
                Case::RecordsFrom => {
                    measured(records, || records_scan(topic.partitions(), records))
                }
                Case::Sweep(max_records, fetch_bytes) => {
                    let config = standalone().fetch_bytes(fetch_bytes);
                    let c = store.consumer("reads", config).expect("consumer");
                    measured(records, || consume_all(c, max_records, records))
                }
            });
        }
    }
    let (mut each_reads_all, mut group_splits, mut raw_read, mut records_from, mut sweep) =
        (Vec::new(), Vec::new(), None, None, Vec::new());
    for (case, runs) in cases.into_iter().zip(runs) {
        let rate = median(runs);
        match case {
            Case::EachReadsAll(k) => each_reads_all.push((k, rate)),
            Case::Group(k) => group_splits.push((k, rate)),
            Case::Raw => raw_read = Some(rate),
            Case::RecordsFrom => records_from = Some(rate),
            Case::Sweep(m, f) => sweep.push((m, f, rate)),
        }
    }
    let raw_read = raw_read.expect("the raw case ran");
    let records_from = records_from.expect("the records_from case ran");
    drop(topic);
    store.close().expect("close store");
    ThroughputResults {
        records,
        log_bytes,
        each_reads_all,
        group_splits,
        raw_read,
        records_from,
        sweep,
    }
}

/// Polls `consumer` until it has received `records` records; checks every value's size.
fn consume_all(mut consumer: Consumer, max_records: usize, records: u64) {
    let mut got = 0u64;
    while got < records {
        let batch = consumer
            .poll(max_records, Duration::from_secs(10))
            .expect("poll");
        assert!(!batch.is_empty(), "no records within 10 s");
        for r in &batch {
            assert_eq!(r.value.as_ref().map(Vec::len), Some(VALUE_BYTES));
        }
        got += batch.len() as u64;
    }
    assert_eq!(got, records, "read more records than the topic holds");
}

/// `k` standalone consumers of every partition, each reading every record.
fn each_reads_everything(store: &Store, k: usize, records: u64) -> Rate {
    let consumers: Vec<Consumer> = (0..k)
        .map(|_| {
            store
                .consumer("reads", standalone().fetch_bytes(FETCH_BYTES))
                .expect("consumer")
        })
        .collect();
    let go = Barrier::new(k + 1);
    std::thread::scope(|s| {
        let go = &go;
        let handles: Vec<_> = consumers
            .into_iter()
            .map(|c| {
                s.spawn(move || {
                    go.wait();
                    consume_all(c, MAX_RECORDS, records);
                })
            })
            .collect();
        measured(records * k as u64, || {
            go.wait();
            for h in handles {
                h.join().expect("reader panicked");
            }
        })
    })
}

/// `k` members of a fresh group sharing the partitions; every record is read once.
fn group_split(store: &Store, group: &str, k: usize, records: u64) -> Rate {
    let config = ConsumerConfig::default()
        .reset(OffsetReset::Earliest)
        .auto_commit(None)
        .fetch_bytes(FETCH_BYTES);
    // All join before any reads: the assignment does not change during the run.
    let members: Vec<Consumer> = (0..k)
        .map(|_| {
            store
                .join_group(group, "reads", config.clone())
                .expect("join")
        })
        .collect();
    let total = AtomicU64::new(0);
    let go = Barrier::new(k + 1);
    let rate = std::thread::scope(|s| {
        let (go, total) = (&go, &total);
        let handles: Vec<_> = members
            .into_iter()
            .map(|mut c| {
                s.spawn(move || {
                    go.wait();
                    let mut got = 0u64;
                    // Done when every owned partition is read to its end.
                    while c.lag().iter().any(|(_, lag)| *lag > 0) {
                        let batch = c.poll(MAX_RECORDS, Duration::from_secs(10)).expect("poll");
                        assert!(!batch.is_empty(), "no records within 10 s");
                        got += batch.len() as u64;
                    }
                    total.fetch_add(got, Ordering::Relaxed);
                    c
                })
            })
            .collect();
        let mut done = Vec::new();
        let rate = measured(records, || {
            go.wait();
            done = handles
                .into_iter()
                .map(|h| h.join().expect("member panicked"))
                .collect();
        });
        // Members leave only after all are done (a leave reassigns partitions).
        for c in done {
            c.close().expect("leave group");
        }
        rate
    });
    assert_eq!(
        total.load(Ordering::Relaxed),
        records,
        "the group read each record once"
    );
    rate
}

/// One thread reading every partition with `Partition::read` (1 MiB), touching each value.
fn raw_scan(partitions: &[Partition], records: u64) {
    let mut n = 0u64;
    for p in partitions {
        let mut next = p.log_start_offset();
        while next < p.log_end_offset() {
            let fetch = p.read(next, MIB).expect("read");
            for r in fetch.records() {
                assert_eq!(r.value().map(<[u8]>::len), Some(VALUE_BYTES));
                n += 1;
            }
            next = fetch.next_offset();
        }
    }
    assert_eq!(n, records, "raw scan read every record");
}

/// One thread iterating `Partition::records_from` (1 MiB fetches) over every partition:
/// owned records, as a consumer's, without the consumer.
fn records_scan(partitions: &[Partition], records: u64) {
    let mut n = 0u64;
    for p in partitions {
        for r in p.records_from(p.log_start_offset()) {
            let r = r.expect("records_from");
            assert_eq!(r.value.map(|v| v.len()), Some(VALUE_BYTES));
            n += 1;
        }
    }
    assert_eq!(n, records, "records_from read every record");
}

fn print_throughput(scale: Scale, cpus: usize, r: &ThroughputResults) {
    let w = 50;
    let line = "-".repeat(w + 49);
    println!();
    println!(
        "(b) read throughput: {READ_PARTITIONS} partitions, {} records of {VALUE_BYTES} B in \
         all ({:.1} MB of values, {:.1} MB of log, batches of {WRITE_BATCH}), from the page \
         cache, {cpus} CPUs, median of {}",
        r.records,
        r.records as f64 * VALUE_BYTES as f64 / MB,
        r.log_bytes as f64 / MB,
        scale.reps()
    );
    println!(
        "{:<w$} {:>12} {:>9} {:>12} {:>12}",
        "case", "records/s", "MB/s", "vs 1 reader", "faults/1k"
    );
    println!("{line}");
    let print = |name: &str, rate: &Rate, base: f64| {
        println!(
            "{:<w$} {:>12.0} {:>9.1} {:>11.2}x {:>12}",
            name,
            rate.records_per_s,
            rate.mb_per_s(),
            rate.records_per_s / base,
            rate.faults_per_k
                .map_or("-".to_string(), |f| format!("{f:.1}"))
        );
    };
    for (title, rows) in [
        ("each reads everything, aggregate", &r.each_reads_all),
        ("group of k splits the partitions", &r.group_splits),
    ] {
        let one = rows[0].1.records_per_s;
        for (k, rate) in rows.iter() {
            print(&format!("{title}: k={k}"), rate, one);
        }
    }
    println!("{line}");
    let one = r.each_reads_all[0].1.records_per_s;
    print("ref: Partition::read loop, 1 thread", &r.raw_read, one);
    print(
        "ref: Partition::records_from, 1 thread",
        &r.records_from,
        one,
    );
    for (m, f, rate) in &r.sweep {
        let fetch = if *f >= MIB {
            format!("{} MiB", f / MIB)
        } else {
            format!("{} KiB", f >> 10)
        };
        print(
            &format!("1 consumer: poll({m}), fetch_bytes {fetch}"),
            rate,
            one,
        );
    }
    println!("{line}");
    println!(
        "Notes: k readers run on k threads. \"each reads everything\": k standalone consumers \
         of all {READ_PARTITIONS} partitions, aggregate = k x records / wall time. \"group of k\": \
         k members of one group, each owning {READ_PARTITIONS}/k partitions; records / wall \
         time. Both poll up to {MAX_RECORDS} records with fetch_bytes {} KiB: a fetch returns \
         one written batch ({WRITE_BATCH} records, about 110 KB) and the poll takes all of it, so \
         all cases do the same work per poll. The single-consumer sweep (ratios to k=1 \"each \
         reads everything\") shows the two slow paths this avoids: a poll reads fetch_bytes \
         from a partition and drops the records past max_records, which the next poll reads \
         again (poll(500) with the default 1 MiB reads about 19x what it returns), and polls \
         with 1 MiB fetches and thousands of records take page faults (faults/1k: the \
         process's minor page faults per 1,000 records: memory given back to the OS and \
         faulted in again, poll after poll). MB/s counts values only. With {cpus} CPUs (shared with other work) the \
         aggregate cannot pass about {cpus}x. The Partition::read loop reads, decodes and \
         touches every record without copying it out: the floor under a consumer.",
        FETCH_BYTES >> 10
    );
}
