//! Issue 15's goal (a), measured in one run: single-record sends of 100 B values from one
//! thread, seglog's `Producer::send` (+ one flush at the end) against today's
//! `Topic::send` and commitlog 0.2's single-record appends (its `append` of a one-message
//! `MessageBuf`, the peers bench's backend). A fourth row, `Partition::append` of 1000
//! records, is the ceiling of the producer's sender thread, printed as the goal's bound.
//!
//! It lives in this package because commitlog is a dependency here and not of seglog's
//! own package (whose `benches/producer.rs` has the durable and bytes-on-disk parts).
//!
//! `cargo bench -p seglog-compare --bench producer_vs_peers`; `SEGLOG_BENCH_QUICK=1` for a
//! quick run. Logs go to a fresh directory per run under `SEGLOG_BENCH_DIR` (default
//! `/var/tmp`, a disk; the file system is printed). The three run interleaved, rotating
//! who goes first; each cell is the median of its runs.
//!
//! seglog's records are built per send (`Record::new` of a copy of the pooled payload:
//! `send` takes an owned record); commitlog's appends borrow the pool.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use seglog_compare::common::{payloads, si, Scale};
use seglog_compare::{open, Purpose, Subject, POOL};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    TopicSend,
    Producer,
    Commitlog,
    /// The ceiling of the producer's sender thread: `Partition::append` of 1000 records.
    Batches,
}

const ALL: [Who; 4] = [Who::TopicSend, Who::Producer, Who::Commitlog, Who::Batches];

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::TopicSend => "seglog Topic::send, one record per call",
            Who::Producer => "seglog Producer::send + one flush (default config)",
            Who::Commitlog => "commitlog append, one record per call",
            Who::Batches => "seglog Partition::append, batches of 1000 (reference)",
        }
    }
}

/// Where the logs go, and that place's file system (the longest mount point of
/// /proc/mounts containing it).
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

/// `n` single-record appends of `pool`'s payloads (cycling) by `who` in `dir`; the time of
/// the appends alone (opening and closing untimed).
fn run(who: Who, dir: &Path, pool: &[Vec<u8>], n: usize) -> Duration {
    match who {
        Who::Commitlog => {
            let mut log = open(Subject::Commitlog, dir, pool, Purpose::Append);
            let start = Instant::now();
            log.append_run(1, n);
            let elapsed = start.elapsed();
            log.close();
            elapsed
        }
        Who::TopicSend | Who::Producer | Who::Batches => {
            let store = seglog::Store::open(dir).expect("open store");
            let topic = store
                .create_topic("bench", seglog::TopicConfig::default())
                .expect("create topic");
            let producer = (who == Who::Producer).then(|| {
                topic
                    .producer(seglog::ProducerConfig::default())
                    .expect("producer")
            });
            let start = Instant::now();
            if let Some(p) = &producer {
                for i in 0..n {
                    drop(p.send(seglog::Record::new(pool[i % POOL].clone())));
                }
                p.flush().expect("flush");
            } else if who == Who::Batches {
                let p = topic.partition(0).expect("partition 0");
                for at in (0..n).step_by(1000) {
                    let recs: Vec<seglog::Record> = (at..(at + 1000).min(n))
                        .map(|i| seglog::Record::new(pool[i % POOL].clone()))
                        .collect();
                    p.append(&recs).expect("append");
                }
            } else {
                for i in 0..n {
                    topic
                        .send(seglog::Record::new(pool[i % POOL].clone()))
                        .expect("send");
                }
            }
            let elapsed = start.elapsed();
            if let Some(p) = producer {
                p.close().expect("close producer");
            }
            let end = topic.partition(0).expect("partition 0").log_end_offset();
            assert_eq!(end, n as u64, "records appended");
            drop(topic);
            store.close().expect("close store");
            elapsed
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("?".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

fn main() {
    let scale = Scale::from_env();
    let (base, fs) = base_dir();
    let n = if scale.quick { 100_000 } else { 1_000_000 };
    let reps = if scale.quick { 1 } else { 5 };
    let pool = payloads(100, POOL);
    let started = Instant::now();
    let load_start = load_average();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); ALL.len()];
    for rep in 0..reps {
        for k in 0..ALL.len() {
            let i = (k + rep) % ALL.len();
            let dir = tempfile::Builder::new()
                .prefix("seglog-producer-vs-peers")
                .tempdir_in(&base)
                .expect("temp dir");
            let t = run(ALL[i], dir.path(), &pool, n);
            rates[i].push(n as f64 / t.as_secs_f64());
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    let [topic_send, producer, commitlog, batches] = [rates[0], rates[1], rates[2], rates[3]];
    println!(
        "producer vs peers: one thread, 100 B values, {} records, median of {reps} interleaved \
         runs; logs under {} ({fs})",
        si(n as f64),
        base.display()
    );
    println!("| case | records/s | Producer ÷ this |");
    println!("|---|---:|---:|");
    for (who, r) in ALL.iter().zip(&rates) {
        println!("| {} | {} | {:.2}x |", who.name(), si(*r), producer / r);
    }
    println!(
        "\nGoal (a) of issue 15 (this run; load average {load_start} at the start, {} at the \
         end; {:.0} s)",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    let verdict = |ok: bool| if ok { "MET " } else { "MISS" };
    let r = producer / topic_send;
    println!(
        "  {} Producer::send >= 10x Topic::send: {r:.2}x",
        verdict(r >= 10.0)
    );
    let r = producer / commitlog;
    println!(
        "  {} Producer::send >= 5x commitlog's single-record appends: {r:.2}x",
        verdict(r >= 5.0)
    );
    println!(
        "  bound: each send encodes its record as batches of 1000 do, plus its own work; \
         batches of 1000 ran at {} here, {:.2}x Topic::send and {:.2}x commitlog; the \
         producer at {:.2}x of them",
        si(batches),
        batches / topic_send,
        batches / commitlog,
        producer / batches
    );
}
