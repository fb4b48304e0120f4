//! `instr <backend> <workload> <n> [lookups]`: one workload on one backend, its timed part
//! alone in [`timed_part`], for counting instructions under
//! `valgrind --tool=callgrind --toggle-collect='*timed_part*'` (see `instructions.sh`).
//!
//! Backends: seglog, seglog-lz4, seglog-zstd, commitlog, kafko, raw. Workloads (100-byte
//! values, no keys, the same payload pool for all):
//! - `append-batch`: n records in appends of 1000;
//! - `append-single`: n records, one per append;
//! - `seq-read`: a log of n records written in appends of 1000 (untimed), read from 0 to
//!   the end in 1 MiB reads, summing every value's bytes;
//! - `lookup-batched`: the same log; `lookups` (default n) random offsets, each read alone
//!   and its value length checked;
//! - `lookup-single`: the same on a log written one record per append.
//!
//! Prints the operation count the timed part did (records or lookups).

use std::hint::black_box;
use std::process::ExitCode;

use seglog_compare::common::payloads;
use seglog_compare::{open, random_offsets, Log, Purpose, Subject, POOL};

const VALUE: usize = 100;
const BATCH: usize = 1000;
/// Read size of a sequential read (where the backend takes one).
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    AppendBatch,
    AppendSingle,
    SeqRead,
    LookupBatched,
    LookupSingle,
}

const WORKLOADS: [(&str, Workload); 5] = [
    ("append-batch", Workload::AppendBatch),
    ("append-single", Workload::AppendSingle),
    ("seq-read", Workload::SeqRead),
    ("lookup-batched", Workload::LookupBatched),
    ("lookup-single", Workload::LookupSingle),
];

/// What the timed part does, prepared before it.
enum Work {
    Append { batch: usize, batches: usize },
    Scan { records: u64 },
    Lookups(Vec<u64>),
}

/// The measured part: everything between setup and teardown. Never inlined, so that
/// callgrind can switch collection on and off at its entry and exit.
#[inline(never)]
fn timed_part(log: &mut dyn Log, work: &Work) -> u64 {
    match work {
        Work::Append { batch, batches } => {
            log.append_run(*batch, *batches);
            (batch * batches) as u64
        }
        Work::Scan { records } => {
            // The harness share (summing each value) is the same closure for every backend.
            let mut acc = 0u64;
            let n = log.scan(CHUNK, None, &mut |v| {
                acc = acc.wrapping_add(v.iter().map(|&b| u64::from(b)).sum::<u64>());
            });
            black_box(acc);
            assert_eq!(n, *records, "records read");
            n
        }
        Work::Lookups(offsets) => {
            for &o in offsets {
                let len = log.read_one(o);
                assert_eq!(len, VALUE, "value length at offset {o}");
            }
            offsets.len() as u64
        }
    }
}

fn usage() -> ExitCode {
    let backends: Vec<&str> = Subject::ALL.iter().map(|s| s.name()).collect();
    let workloads: Vec<&str> = WORKLOADS.iter().map(|w| w.0).collect();
    eprintln!(
        "usage: instr <backend> <workload> <n> [lookups]\n  backends: {}\n  workloads: {}",
        backends.join(", "),
        workloads.join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 4 {
        return usage();
    }
    let Some(subject) = Subject::parse(&args[0]) else {
        eprintln!("unknown backend {:?}", args[0]);
        return usage();
    };
    let Some(&(_, workload)) = WORKLOADS.iter().find(|w| w.0 == args[1]) else {
        eprintln!("unknown workload {:?}", args[1]);
        return usage();
    };
    let n: usize = match args[2].parse() {
        Ok(n) if n > 0 && n % BATCH == 0 => n,
        _ => {
            eprintln!(
                "n must be a positive multiple of {BATCH}, not {:?}",
                args[2]
            );
            return usage();
        }
    };
    let lookups: usize = match args.get(3).map(|a| a.parse()) {
        None => n,
        Some(Ok(l)) if l > 0 => l,
        Some(_) => {
            eprintln!("lookups must be a positive number, not {:?}", args[3]);
            return usage();
        }
    };

    let pool = payloads(VALUE, POOL);
    let dir = tempfile::tempdir().expect("create temp dir");
    let purpose = match workload {
        Workload::AppendBatch | Workload::AppendSingle => Purpose::Append,
        _ => Purpose::Read,
    };
    let mut log = open(subject, dir.path(), &pool, purpose);
    let work = match workload {
        Workload::AppendBatch => Work::Append {
            batch: BATCH,
            batches: n / BATCH,
        },
        Workload::AppendSingle => Work::Append {
            batch: 1,
            batches: n,
        },
        Workload::SeqRead => {
            log.append_run(BATCH, n / BATCH);
            Work::Scan { records: n as u64 }
        }
        Workload::LookupBatched | Workload::LookupSingle => {
            if workload == Workload::LookupBatched {
                log.append_run(BATCH, n / BATCH);
            } else {
                log.append_run(1, n);
            }
            Work::Lookups(random_offsets(lookups, n as u64))
        }
    };
    let ops = timed_part(&mut *log, &work);
    log.close();
    println!("{} {} ops {ops}", subject.name(), args[1]);
    ExitCode::SUCCESS
}
