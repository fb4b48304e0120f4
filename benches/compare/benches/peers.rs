//! seglog side by side with its peers, commitlog 0.2 and kafko 0.3, on identical workloads
//! (same payload bytes, fresh temp dir per run), next to the machine's physical limits:
//! raw `write(2)` bandwidth, `memcpy` bandwidth and the raw `fdatasync` rate.
//!
//! `cargo bench -p seglog-compare --bench peers` runs the full suite (a few minutes on
//! 2 cores); `SEGLOG_BENCH_QUICK=1 cargo bench -p seglog-compare --bench peers` a
//! scaled-down one (seconds).
//!
//! Each log implements [`Log`] with its natural API (the backends are in this package's
//! library, every seglog call in `src/seglog_backend.rs`); one function per workload drives
//! them all through it. Appends and sequential reads also run seglog on lz4 and zstd topics.
//! The notes printed under the table explain every trap and deviation.

use std::hint::black_box;
use std::time::{Duration, Instant};

use seglog_compare::common::{
    latency_histogram, median, median_f64, payloads, print_table, probe_fdatasync, probe_memcpy,
    probe_write, si, Cell, Latency, Limits, Line, Rate, Row, Scale, COLUMNS, MB, MIB, PERCENTILES,
};
use seglog_compare::{open, random_offsets, Log, Purpose, Subject, POOL};

/// The subjects of the workloads that run every codec (appends, sequential reads).
const ALL: [Subject; 5] = COLUMNS;
/// The subjects of the others: seglog uncompressed and the peers.
const PLAIN: [Subject; 3] = [Subject::Seglog, Subject::Commitlog, Subject::Kafko];
/// Read size for sequential reads (seglog and commitlog).
const READ_CHUNK: usize = MIB;
/// Records per append when building the sequential-read logs.
const READ_LOG_BATCH: usize = 100;

// ------------------------------------------------------------------------------------------
// Running and reporting
// ------------------------------------------------------------------------------------------

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

/// Runs `run(index, subject)` for the subjects in turn, round after round (rotating who
/// goes first), until each has run for `Scale::min_case_time` in measured time or for
/// `Scale::max_reps` rounds. Interleaving spreads background noise over all of them.
/// Returns each subject's median rate, in the order of `subjects`.
fn interleaved(
    scale: &Scale,
    subjects: &[Subject],
    mut run: impl FnMut(usize, Subject) -> (Rate, Duration),
) -> Vec<Rate> {
    let mut rates: Vec<Vec<Rate>> = vec![Vec::new(); subjects.len()];
    let mut spent = vec![Duration::ZERO; subjects.len()];
    for round in 0..scale.max_reps() {
        for k in 0..subjects.len() {
            // Rotate who goes first, so no subject always follows the same one.
            let i = (k + round) % subjects.len();
            if round == 0 || spent[i] < scale.min_case_time() {
                let (rate, elapsed) = run(i, subjects[i]);
                rates[i].push(rate);
                spent[i] += elapsed;
            }
        }
        if spent.iter().all(|&s| s >= scale.min_case_time()) {
            break;
        }
    }
    rates.into_iter().map(median).collect()
}

/// A row's cells: `cell(i)` for `subjects[i]` in its column, `None` in the others.
fn cells(subjects: &[Subject], cell: impl Fn(usize) -> Cell) -> Vec<Option<Cell>> {
    COLUMNS
        .iter()
        .map(|c| subjects.iter().position(|s| s == c).map(&cell))
        .collect()
}

/// Builds one log per subject in its own temp dir: `records` records of the pool, in
/// appends of `batch`.
fn build_logs(
    subjects: &[Subject],
    pool: &[Vec<u8>],
    records: usize,
    batch: usize,
    purpose: Purpose,
) -> Vec<(tempfile::TempDir, Box<dyn Log>)> {
    subjects
        .iter()
        .map(|&subject| {
            let dir = temp_dir();
            let mut log = open(subject, dir.path(), pool, purpose);
            log.append_run(batch, records / batch);
            (dir, log)
        })
        .collect()
}

fn close_all(logs: Vec<(tempfile::TempDir, Box<dyn Log>)>) {
    for (dir, log) in logs {
        log.close();
        drop(dir);
    }
}

// ------------------------------------------------------------------------------------------
// Workloads
// ------------------------------------------------------------------------------------------

/// Workload 1: appends of 10 B .. 16 KiB records in batches of 1, 100 and 1000, to the
/// page cache. Each subject appends the same records, on a fresh temp dir per repetition.
fn appends(scale: &Scale, limits: &Limits, out: &mut Vec<Line>) {
    out.push(Line::Section(
        "appends (page cache, no fsync), same records for all; MB/s of payload".into(),
    ));
    for size in [10usize, 100, 1024, 16 * 1024] {
        let pool = payloads(size, POOL);
        for batch in [1usize, 100, 1000] {
            let records = (scale.append_bytes() / size).min(scale.max_appends() * batch);
            let batches = (records / batch).max(1);
            let n = (batches * batch) as u64;
            let rates = interleaved(scale, &ALL, |_, subject| {
                let dir = temp_dir();
                let mut log = open(subject, dir.path(), &pool, Purpose::Append);
                let start = Instant::now();
                log.append_run(batch, batches);
                let elapsed = start.elapsed();
                log.close();
                (Rate::new(n, n * size as u64, elapsed), elapsed)
            });
            out.push(Line::Row(Row {
                workload: format!("append {} x {batch}", size_name(size)),
                cells: cells(&ALL, |i| Cell::Rate(rates[i], "")),
                vs_limit: Some((rates[0].bytes_per_s / limits.write_bytes_per_s, "write(2)")),
            }));
        }
    }
}

/// Workload 2: sequential read of a whole log, checking every record's length.
fn sequential_reads(scale: &Scale, limits: &Limits, out: &mut Vec<Line>) {
    out.push(Line::Section(format!(
        "sequential read of the whole log (written in appends of {READ_LOG_BATCH}), \
         from the page cache; seglog/commitlog in {} MiB reads",
        READ_CHUNK / MIB
    )));
    for size in [100usize, 1024] {
        let pool = payloads(size, POOL);
        let records = scale.read_log_bytes() / size / READ_LOG_BATCH * READ_LOG_BATCH;
        let mut logs = build_logs(&ALL, &pool, records, READ_LOG_BATCH, Purpose::Read);
        let mut partial = [false; ALL.len()];
        let rates = interleaved(scale, &ALL, |i, _| {
            let log = &mut logs[i].1;
            let start = Instant::now();
            let n = log.scan(READ_CHUNK, Some(start + scale.time_box()), &mut |v| {
                assert_eq!(v.len(), size, "record value length");
                black_box(v);
            });
            let elapsed = start.elapsed();
            partial[i] |= n < records as u64;
            (Rate::new(n, n * size as u64, elapsed), elapsed)
        });
        close_all(logs);
        let cells = cells(&ALL, |i| {
            Cell::Rate(rates[i], if partial[i] { "‡" } else { "" })
        });
        out.push(Line::Row(Row {
            workload: format!("seq read {} ({} recs)", size_name(size), si(records as f64)),
            cells,
            vs_limit: Some((rates[0].bytes_per_s / limits.memcpy_bytes_per_s, "memcpy")),
        }));
    }
}

/// Workload 3: random single-offset reads from the page cache, per-read latency.
fn random_reads(scale: &Scale, out: &mut Vec<Line>) {
    out.push(Line::Section(
        "random single-offset reads of 100 B records from the page cache; latency".into(),
    ));
    let size = 100;
    let pool = payloads(size, POOL);
    let records = scale.random_log_records() / POOL * POOL;
    let offsets = random_offsets(scale.random_reads(), records as u64);
    for batch in [1usize, 100, 1000] {
        let mut logs = build_logs(&PLAIN, &pool, records, batch, Purpose::Read);
        let mut lat = Vec::new();
        for (_, log) in &mut logs {
            let warmup = offsets.len().min(1000);
            for &o in &offsets[..warmup] {
                black_box(log.read_one(o));
            }
            let mut h = latency_histogram();
            let deadline = Instant::now() + scale.time_box();
            for &o in &offsets {
                let start = Instant::now();
                let len = log.read_one(o);
                let t = start.elapsed();
                assert_eq!(len, size, "random read length");
                h.record(t.as_nanos() as u64).expect("record latency");
                if start > deadline {
                    break;
                }
            }
            lat.push(Latency::of(&h));
        }
        close_all(logs);
        let partial = |l: &Latency| {
            if l.samples < offsets.len() as u64 {
                "‡"
            } else {
                ""
            }
        };
        for (p, (name, _)) in PERCENTILES.iter().enumerate() {
            out.push(Line::Row(Row {
                workload: format!("rand read, log b={batch} {name}"),
                cells: cells(&PLAIN, |i| Cell::Latency(lat[i].ns[p], partial(&lat[i]))),
                vs_limit: None,
            }));
        }
    }
}

/// Workload 4: durable appends, one 100 B record then flush/fsync per op, one thread,
/// next to the raw fdatasync rate measured in the same rounds (the device's flush rate
/// drifts, so the limit is measured alongside rather than at start-up).
fn durable_appends(scale: &Scale, limits: &mut Limits, out: &mut Vec<Line>) {
    out.push(Line::Section(
        "durable appends: one 100 B record + flush/fsync per op, one thread".into(),
    ));
    let size = 100;
    let pool = payloads(size, POOL);
    let rounds = 3;
    let slot = scale.time_box() / rounds;
    let (mut raw_4k, mut raw_100) = (Vec::new(), Vec::new());
    let mut rates: [Vec<Rate>; PLAIN.len()] = Default::default();
    for _ in 0..rounds {
        let dir = temp_dir();
        raw_4k.push(probe_fdatasync(dir.path(), slot, 4096));
        raw_100.push(probe_fdatasync(dir.path(), slot, size));
        for (i, &subject) in PLAIN.iter().enumerate() {
            let dir = temp_dir();
            let mut log = open(subject, dir.path(), &pool, Purpose::Durable);
            for _ in 0..5 {
                log.durable_append(); // warm-up: first segment and index pages, journal
            }
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < slot || n < 10 {
                log.durable_append();
                n += 1;
            }
            rates[i].push(Rate::new(n, n * size as u64, start.elapsed()));
            log.close();
        }
    }
    limits.fdatasync_per_s = median_f64(raw_4k);
    limits.small_fdatasync_per_s = median_f64(raw_100);
    let rates = rates.map(median);
    out.push(Line::Row(Row {
        workload: "durable append 100B x 1".into(),
        cells: cells(&PLAIN, |i| {
            Cell::Rate(
                rates[i],
                if PLAIN[i] == Subject::Commitlog {
                    "†"
                } else {
                    ""
                },
            )
        }),
        vs_limit: Some((rates[0].records_per_s / limits.fdatasync_per_s, "fdatasync")),
    }));
}

/// The 1, 5 and 15 minute load averages (other processes skew the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("?".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

fn size_name(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

// ------------------------------------------------------------------------------------------
// Goals
// ------------------------------------------------------------------------------------------

fn find<'a>(lines: &'a [Line], workload: &str) -> &'a Row {
    lines
        .iter()
        .find_map(|l| match l {
            Line::Row(r) if r.workload == workload => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no row {workload:?}"))
}

fn rate(row: &Row, i: usize) -> f64 {
    match &row.cells[i] {
        Some(Cell::Rate(r, _)) => r.records_per_s,
        _ => f64::NAN,
    }
}

/// seglog's figure over commitlog's in `row` (records/s; for latency rows commitlog's
/// latency over seglog's), so that > 1 means seglog is ahead.
fn vs_commitlog(row: &Row) -> f64 {
    let at = |s: Subject| COLUMNS.iter().position(|c| *c == s);
    let (Some(me), Some(peer)) = (at(Subject::Seglog), at(Subject::Commitlog)) else {
        return f64::NAN;
    };
    match (&row.cells[me], &row.cells[peer]) {
        (Some(Cell::Rate(a, _)), Some(Cell::Rate(b, _))) => a.records_per_s / b.records_per_s,
        (Some(Cell::Latency(a, _)), Some(Cell::Latency(b, _))) => *b as f64 / *a as f64,
        _ => f64::NAN,
    }
}

/// The goals of issue 14 measured on the clock (its instruction goals are
/// `instructions.sh`'s), each against commitlog or a physical limit of the same run.
fn print_goals(lines: &[Line], limits: &Limits) {
    let verdict = |ok: bool| if ok { "MET " } else { "MISS" };
    let vs = |w: &str| vs_commitlog(find(lines, w));
    let of_limit = |w: &str| find(lines, w).vs_limit.map_or(f64::NAN, |v| v.0);
    println!("\nGoals (issue 14, on the clock; ratios over commitlog, > 1 = seglog ahead)");
    let r = vs("append 100B x 1");
    println!(
        "  {} single-record 100 B appends >= 1.3x commitlog: {r:.2}x",
        verdict(r >= 1.3)
    );
    let r = vs("append 100B x 1000");
    println!(
        "  {} 100 B x 1000 appends >= 1.5x commitlog: {r:.2}x",
        verdict(r >= 1.5)
    );
    let f = of_limit("append 1KiB x 1000");
    println!(
        "  {} 1 KiB x 1000 appends >= 75% of write(2): {:.0}%",
        verdict(f >= 0.75),
        f * 100.0
    );
    let seq_100 = lines
        .iter()
        .find_map(|l| match l {
            Line::Row(r) if r.workload.starts_with("seq read 100B") => Some(r),
            _ => None,
        })
        .map_or(f64::NAN, vs_commitlog);
    println!(
        "  {} sequential 100 B reads >= 1.5x commitlog: {seq_100:.2}x",
        verdict(seq_100 >= 1.5)
    );
    let seq_1k = lines
        .iter()
        .find_map(|l| match l {
            Line::Row(r) if r.workload.starts_with("seq read 1KiB") => r.vs_limit,
            _ => None,
        })
        .map_or(f64::NAN, |v| v.0);
    println!(
        "  {} sequential 1 KiB reads >= 50% of memcpy: {:.0}%",
        verdict(seq_1k >= 0.5),
        seq_1k * 100.0
    );
    let p99 = vs("rand read, log b=1000 p99");
    println!(
        "  {} random single-offset read p99, log of 1000-record batches, <= 3x commitlog's: \
         commitlog's / seglog's = {p99:.2} (>= 0.33 needed; b=1 {:.2}, b=100 {:.2})",
        verdict(p99 >= 1.0 / 3.0),
        vs("rand read, log b=1 p99"),
        vs("rand read, log b=100 p99"),
    );
    let durable = rate(find(lines, "durable append 100B x 1"), 0);
    println!(
        "  {} durable appends within 10% of raw fdatasync: {} ops/s vs {} ops/s ({:.0}%; \
         {:.0}% of 100 B append + fdatasync)",
        verdict(durable >= 0.9 * limits.fdatasync_per_s),
        si(durable),
        si(limits.fdatasync_per_s),
        durable / limits.fdatasync_per_s * 100.0,
        durable / limits.small_fdatasync_per_s * 100.0
    );
}

const NOTES: &str = "\
Notes
  MB = 10^6 bytes of record payload (value bytes; each format's framing is not counted).
  Throughput cells are medians of interleaved repetitions; each repetition runs on a fresh
  temp dir. Limits are the best of their runs. \"seglog ÷ faster peer\" divides seglog's
  records/s by the faster peer's (for latency rows: the faster peer's latency by seglog's),
  so > 1 always means seglog is ahead; both ratios are uncompressed seglog's (see [7]).
  \"seglog ÷ limit\": appends vs raw write(2) bandwidth, sequential reads vs memcpy
  bandwidth, durable appends vs the raw fdatasync rate.
  Records have no key; seglog and kafko add a timestamp, commitlog has none.
  [1] kafko: its storage-level Log is the comparison for appends and reads, but
      kafko::Log::create needs a tokio runtime (tokio::fs::create_dir_all -> spawn_blocking
      panics without one) and tokio is not a dev-dependency here. The kafko column is
      therefore kafko's Log rebuilt from kafko's public Segment, SparseIndex and Record:
      Log::append (batches of 1), Log::append_batch, Log::read_record_at and Log::sync,
      body for body (KafkoLog in benches/compare/src/kafko_backend.rs); all I/O and
      encoding is kafko's code.
  [2] Batch limits raised so that 16 KiB x 1000 fits everywhere: commitlog caps a whole
      appended batch at LogOptions::message_max_bytes (default 1,000,000 B, which rejects
      1 KiB x 1000 and 16 KiB x 100/1000) -> raised to 64 MiB; seglog's
      TopicConfig::max_batch_bytes (default 1 MiB, which rejects
      16 KiB x 100 and x 1000) -> 32 MiB; segment_bytes stays at its 1 GiB default.
      kafko's Log has no batch limit. No case is skipped.
  [3] commitlog's flush() is NOT an fsync: Segment::flush_sync is File::flush, a no-op for
      std::fs::File, and the index is msync'ed only up to its last full page. Its native
      durable rate is therefore n/a; † = emulated: append + flush() + fdatasync of the
      active .log through a separately opened fd (its index is still not made durable).
  [4] kafko's read_record_at reads the whole rest of the segment after the sparse-index
      entry into a freshly zeroed buffer for every single record, so reading slows
      quadratically with segment size. To keep its read sizes modest (<= 1 MiB, like the
      1 MiB reads of the others), kafko's read logs use 1 MiB segments
      (LogConfig::segment_size_threshold); it has no ranged read, so sequential reads are
      read_record_at per offset. ‡ = time-boxed: the rate is over the part read in time.
  [5] seglog's single-offset reads are point lookups (Partition::read_record): the record
      borrowed from the mapped segment, found through the offset index and, in a batch of
      many records, by stepping over the records before it by their lengths (from a kept
      position every 32 records); commitlog and kafko store records one by one, so layout
      does not matter to them. Sequential reads: seglog read_in_place(next, 1 MiB) (the
      batches borrowed from the mapping), commitlog read(next, ReadLimit::max_bytes(1 MiB));
      every record's value length is checked.
  [6] commitlog trap: read(offset, ReadLimit::max_bytes(exactly one message)) fails with
      \"Message exceeded max byte size\" for the last record of a segment (its end-of-segment
      shortcut needs remaining < max_bytes), so single-offset reads ask for one byte more.
  [7] seglog-lz4 / seglog-zstd: seglog on a topic with TopicConfig::compression(Lz4 / Zstd,
      default levels): every appended batch is compressed (inside the timed append) and
      decompressed when read. The peers do not compress, so these columns show what the
      codec costs on the same records, not a like-for-like race; MB/s counts payload bytes
      before compression. The payloads are a repeating byte pattern, so they compress far
      better than real data. Random reads and durable appends run uncompressed only.
  The raw fdatasync rates are measured in rounds interleaved with the durable workload,
  as the device's flush rate drifts over minutes. seglog's close (untimed) fsyncs its
  log; the others' drops do not.";

fn main() {
    let scale = Scale::from_env();
    let started = Instant::now();
    let probe_dir = temp_dir();
    println!(
        "seglog (also on lz4 and zstd topics) vs commitlog 0.2 vs kafko 0.3 — {} mode, temp dir {}, {} CPUs, load average {}",
        if scale.quick { "QUICK" } else { "full" },
        probe_dir
            .path()
            .parent()
            .map_or("?".into(), |p| p.display().to_string()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    let mut limits = Limits {
        write_bytes_per_s: probe_write(probe_dir.path(), scale.raw_write_bytes(), MIB),
        memcpy_bytes_per_s: probe_memcpy(scale.memcpy_reps()),
        // Measured alongside the durable workload.
        fdatasync_per_s: f64::NAN,
        small_fdatasync_per_s: f64::NAN,
    };
    drop(probe_dir);

    let mut lines = Vec::new();
    appends(&scale, &limits, &mut lines);
    sequential_reads(&scale, &limits, &mut lines);
    random_reads(&scale, &mut lines);
    durable_appends(&scale, &mut limits, &mut lines);

    println!(
        "Physical limits, same temp dir: write(2) of 1 MiB buffers to a new file (page cache, \
         no fsync) {:.0} MB/s;\n  memcpy of a 64 MiB buffer {:.0} MB/s; 4 KiB append + \
         fdatasync {:.0} ops/s (100 B append + fdatasync {:.0} ops/s)\n",
        limits.write_bytes_per_s / MB,
        limits.memcpy_bytes_per_s / MB,
        limits.fdatasync_per_s,
        limits.small_fdatasync_per_s,
    );
    println!("load average at the end: {}", load_average());
    print_table(&lines);
    println!("{NOTES}");
    print_goals(&lines, &limits);
    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
}
