//! Activity tracking with a consumer group that is stopped and restarted:
//! `cargo run --release --example activity -- [DATA_DIR] [--seconds N] [--events-per-sec N] [--keep]`.
//!
//! Producer threads append page-view events (`{"user":"user-17","page":"/products/4","ts":…}`,
//! keyed by the user, so all of a user's views land in one partition, in order) to the
//! topic `page-views` (6 partitions), paced to `--events-per-sec` (default 20,000) in all.
//! Meanwhile the consumer group `view-counter` — three members, each a thread that called
//! `Store::join_group` with `OffsetReset::Earliest` and auto-commit every 200 ms — counts
//! views per user as they arrive. The members join one after the other, so the group
//! rebalances while they poll; each partition ends with one owner. Once a second a
//! reporter prints the events produced and consumed so far, the group's lag as
//! `Store::group_lag` sees it (log end offset minus the *committed* offset, so it includes
//! up to one auto-commit interval of records already counted) and the top users.
//!
//! The run has two phases of `--seconds` (default 3) each:
//!
//! 1. Produce and count. Then the producers stop, the group drains (consumes everything
//!    produced), the members close (which commits their positions to `__consumer_offsets`)
//!    and the store is closed: a clean shutdown of the whole application.
//! 2. The store is reopened and the group rejoined, as after a restart. The members resume
//!    at the committed offsets (printed next to the log end offsets), not at the start of
//!    the partitions, while the producers add new events.
//!
//! Every member records the (partition, offset) of every record it receives. At the end
//! the example checks that each record was consumed exactly once over both phases: phase 1
//! consumed exactly offsets `0..end₁` of each partition, phase 2 exactly `end₁..end₂` — so
//! the number of records phase 2 consumed equals the number produced in phase 2 — and the
//! per-user view counts equal what the producers sent per user. Any record consumed twice
//! or never is reported and the example exits non-zero. (The view counts live in memory
//! and are carried across the restart here; a real application would store them with its
//! offsets, or rebuild them.)
//!
//! `DATA_DIR` defaults to a fresh temporary directory, removed at the end unless `--keep`
//! is given. In a given `DATA_DIR`, a `page-views` topic left by an earlier run is deleted
//! first (with the group's committed offsets on it); nothing else is touched.
//! With the defaults the run takes about 6 s.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seglog::{ConsumerConfig, OffsetReset, Record, Store, Topic, TopicConfig};

const TOPIC: &str = "page-views";
const GROUP: &str = "view-counter";
const PARTITIONS: u32 = 6;
const PRODUCERS: usize = 2;
const MEMBERS: usize = 3;
const USERS: u64 = 1_000;
const PAGES: u64 = 50;
/// Most records one `poll` returns.
const MAX_POLL_RECORDS: usize = 2_000;
const AUTO_COMMIT: Duration = Duration::from_millis(200);
/// How long the group may take to consume what is left after the producers stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Args {
    dir: Option<PathBuf>,
    seconds: f64,
    events_per_sec: u64,
    keep: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "activity: {msg}\nusage: activity [DATA_DIR] [--seconds N] [--events-per-sec N] [--keep]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        dir: None,
        seconds: 3.0,
        events_per_sec: 20_000,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--seconds" => {
                let v = value("--seconds");
                a.seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .unwrap_or_else(|| usage(&format!("--seconds: not a positive number: {v}")));
            }
            "--events-per-sec" => {
                let v = value("--events-per-sec");
                a.events_per_sec = v
                    .replace('_', "")
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| {
                        usage(&format!("--events-per-sec: not a positive number: {v}"))
                    });
            }
            "--keep" => a.keep = true,
            "-h" | "--help" => usage("help"),
            s if s.starts_with("--") => usage(&format!("unknown option {s:?}")),
            _ if a.dir.is_none() => a.dir = Some(PathBuf::from(arg)),
            _ => usage(&format!("unexpected argument {arg:?}")),
        }
    }
    a
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let args = parse_args();
    let mut tmp = None;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile::Builder::new()
                .prefix("seglog-activity-")
                .tempdir()?;
            let path = t.path().to_path_buf();
            tmp = Some(t);
            path
        }
    };
    println!(
        "activity: {PRODUCERS} producers at {} events/s in all, group {GROUP:?} of {MEMBERS} members, \
         topic {TOPIC:?} with {PARTITIONS} partitions, {} s per phase, dir {}",
        args.events_per_sec,
        args.seconds,
        dir.display()
    );

    // Views per user, as counted by the group, and as sent by the producers.
    let views: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let mut sent_per_user: HashMap<String, u64> = HashMap::new();

    // ---- Phase 1 -------------------------------------------------------------------------
    println!("\n== phase 1: produce and count ==");
    let store = Store::open(&dir)?;
    let topic = fresh_topic(&store)?;
    let first = run_phase(1, &store, &topic, &args, &views, &mut sent_per_user)?;
    print_ends("after phase 1", &store, &topic)?;
    drop(topic);
    store.close()?;
    println!("closed the store (consumers closed first: their positions are committed)");

    // ---- Phase 2 -------------------------------------------------------------------------
    println!("\n== phase 2: reopen, rejoin, resume ==");
    let store = Store::open(&dir)?;
    println!(
        "reopened the store (clean shutdown found: {})",
        store.opened_clean()
    );
    let topic = store.topic(TOPIC)?;
    let committed = store.committed_offsets(GROUP, TOPIC)?;
    println!("group {GROUP:?} resumes from its committed offsets:");
    for p in topic.partitions() {
        println!(
            "  partition {}: committed {:>8}, log end offset {:>8}",
            p.number(),
            committed
                .get(&p.number())
                .map_or("none".to_string(), u64::to_string),
            p.log_end_offset()
        );
    }
    let second = run_phase(2, &store, &topic, &args, &views, &mut sent_per_user)?;
    print_ends("after phase 2", &store, &topic)?;
    drop(topic);
    store.close()?;

    // ---- Checks --------------------------------------------------------------------------
    println!("\n== checks ==");
    let problems = check(&first, &second, &committed, &views, &sent_per_user);
    let total_views: u64 = views.lock().expect("views lock").values().sum();
    println!(
        "phase 1: produced {}, consumed {}; phase 2: produced {}, consumed {} \
         (resumed at the committed offsets: {} records of phase 1 read again)",
        first.produced,
        first.consumed_count(),
        second.produced,
        second.consumed_count(),
        second.reread(&first),
    );
    println!(
        "{total_views} views counted for {} users",
        views.lock().expect("views lock").len()
    );
    match tmp.take() {
        Some(t) if args.keep => {
            let path = t.keep();
            println!(
                "data kept in {} (`cargo run --example dump -- {}` shows it)",
                path.display(),
                path.display()
            );
        }
        Some(t) => t.close()?,
        None => println!("data left in {}", dir.display()),
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("FAILED: {p}");
        }
        eprintln!("activity: {} check(s) failed", problems.len());
        std::process::exit(1);
    }
    println!(
        "OK: every record consumed exactly once across the restart; view counts match what \
         was sent ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Creates the topic, deleting one left by an earlier run in the same directory (which
/// deletes the group's committed offsets on it too).
fn fresh_topic(store: &Store) -> Result<Topic, Box<dyn std::error::Error>> {
    if store.topics().iter().any(|t| t == TOPIC) {
        store.delete_topic(TOPIC)?;
        println!("deleted topic {TOPIC:?} left by an earlier run");
    }
    let topic = store.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))?;
    let stale = store.committed_offsets(GROUP, TOPIC)?;
    if !stale.is_empty() {
        return Err(format!(
            "group {GROUP:?} kept committed offsets of the deleted topic: {stale:?}"
        )
        .into());
    }
    Ok(topic)
}

/// What one phase saw.
struct Phase {
    /// Records appended in this phase.
    produced: u64,
    /// Per partition, the offsets consumed in this phase.
    consumed: Vec<BTreeSet<u64>>,
    /// Records received more than once within this phase: (partition, offset).
    duplicates: Vec<(u32, u64)>,
    /// Per partition, the log end offsets when the phase started and ended.
    start_ends: Vec<u64>,
    end_ends: Vec<u64>,
}

impl Phase {
    fn consumed_count(&self) -> u64 {
        self.consumed.iter().map(|s| s.len() as u64).sum()
    }

    /// Records this phase consumed that an earlier phase had consumed.
    fn reread(&self, earlier: &Phase) -> u64 {
        self.consumed
            .iter()
            .zip(&earlier.consumed)
            .map(|(now, before)| now.intersection(before).count() as u64)
            .sum()
    }
}

/// Counters the phase's threads share.
struct Shared {
    produced: AtomicU64,
    consumed: AtomicU64,
    stop_producing: AtomicBool,
    stop_consuming: AtomicBool,
}

/// Tells every thread of a phase to stop when dropped.
struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop_producing.store(true, Ordering::Release);
        self.0.stop_consuming.store(true, Ordering::Release);
    }
}

/// Runs producers and the group for `args.seconds`, stops the producers, drains, closes
/// the members (committing), and returns what was produced and consumed.
fn run_phase(
    phase: usize,
    store: &Store,
    topic: &Topic,
    args: &Args,
    views: &Mutex<HashMap<String, u64>>,
    sent_per_user: &mut HashMap<String, u64>,
) -> Result<Phase, Box<dyn std::error::Error>> {
    let shared = Shared {
        produced: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        stop_producing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
    };
    let start_ends: Vec<u64> = topic
        .partitions()
        .iter()
        .map(|p| p.log_end_offset())
        .collect();
    // The members and the main thread meet once every member has joined.
    let joined = Barrier::new(MEMBERS + 1);
    let rate_per_producer = args.events_per_sec as f64 / PRODUCERS as f64;

    let outcome = std::thread::scope(|s| -> Result<Phase, Box<dyn std::error::Error>> {
        let (shared, joined) = (&shared, &joined);
        // However this closure ends (an error included), the threads stop: the scope
        // joins them when it returns.
        let _stop = StopOnDrop(shared);
        let members: Vec<_> = (0..MEMBERS)
            .map(|m| {
                s.spawn(move || -> seglog::Result<Vec<(u32, u64)>> {
                    let config = ConsumerConfig::default()
                        .reset(OffsetReset::Earliest)
                        .auto_commit(Some(AUTO_COMMIT));
                    let joined_group = store.join_group(GROUP, TOPIC, config);
                    joined.wait(); // every member is in: the assignment is final
                    let mut consumer = joined_group?;
                    println!("  member {m} owns partitions {:?}", consumer.assignment());
                    let mut seen = Vec::new();
                    let mut local: HashMap<String, u64> = HashMap::new();
                    while !shared.stop_consuming.load(Ordering::Acquire) {
                        let records = consumer.poll(MAX_POLL_RECORDS, Duration::from_millis(50))?;
                        for r in &records {
                            seen.push((r.partition, r.offset));
                            let user = String::from_utf8_lossy(r.key.as_deref().unwrap_or(b""));
                            *local.entry(user.into_owned()).or_insert(0) += 1;
                        }
                        if !records.is_empty() {
                            let mut views = views.lock().expect("views lock");
                            for (user, n) in local.drain() {
                                *views.entry(user).or_insert(0) += n;
                            }
                            drop(views);
                            shared
                                .consumed
                                .fetch_add(records.len() as u64, Ordering::Release);
                        }
                    }
                    consumer.close()?; // commits the positions reached
                    Ok(seen)
                })
            })
            .collect();
        joined.wait();
        std::thread::sleep(Duration::from_millis(20)); // let the members print

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|t| {
                s.spawn(move || -> seglog::Result<HashMap<String, u64>> {
                    produce(phase, t, topic, rate_per_producer, shared)
                })
            })
            .collect();

        // Report about once a second until the phase's time is up.
        let t0 = Instant::now();
        let duration = Duration::from_secs_f64(args.seconds);
        let mut next_report = Duration::from_secs(1);
        let mut last_produced = 0;
        while t0.elapsed() < duration {
            let left = duration.saturating_sub(t0.elapsed());
            std::thread::sleep(left.min(next_report.saturating_sub(t0.elapsed())));
            if t0.elapsed() >= next_report {
                let produced = shared.produced.load(Ordering::Acquire);
                report(
                    phase,
                    &format!("{:.1} s", t0.elapsed().as_secs_f64()),
                    produced,
                    produced - last_produced,
                    shared.consumed.load(Ordering::Acquire),
                    store,
                    views,
                )?;
                last_produced = produced;
                next_report += Duration::from_secs(1);
            }
        }

        // Stop the producers, then let the group consume what is left.
        shared.stop_producing.store(true, Ordering::Release);
        let mut phase_sent: HashMap<String, u64> = HashMap::new();
        for p in producers {
            for (user, n) in p.join().expect("producer panicked")? {
                *phase_sent.entry(user).or_insert(0) += n;
            }
        }
        let produced = shared.produced.load(Ordering::Acquire);
        let drain_start = Instant::now();
        while shared.consumed.load(Ordering::Acquire) < produced
            && drain_start.elapsed() < DRAIN_TIMEOUT
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let consumed = shared.consumed.load(Ordering::Acquire);
        println!(
            "  producers stopped after {produced} events; the group drained to {consumed} in {:.0} ms",
            drain_start.elapsed().as_secs_f64() * 1e3
        );
        report(phase, "drained", produced, 0, consumed, store, views)?;

        // Close the members: each commits its positions as it leaves.
        shared.stop_consuming.store(true, Ordering::Release);
        let mut consumed = vec![BTreeSet::new(); PARTITIONS as usize];
        let mut duplicates = Vec::new();
        for m in members {
            for (p, o) in m.join().expect("member panicked")? {
                if !consumed[p as usize].insert(o) {
                    duplicates.push((p, o));
                }
            }
        }
        for (user, n) in phase_sent {
            *sent_per_user.entry(user).or_insert(0) += n;
        }
        Ok(Phase {
            produced,
            consumed,
            duplicates,
            start_ends,
            end_ends: topic
                .partitions()
                .iter()
                .map(|p| p.log_end_offset())
                .collect(),
        })
    })?;
    let lag: u64 = store.group_lag(GROUP, TOPIC)?.iter().map(|l| l.lag).sum();
    println!("  members closed; group lag from the committed offsets is now {lag}");
    Ok(outcome)
}

/// One producer: page views paced to `rate` per second until told to stop. Returns the
/// views it sent per user.
fn produce(
    phase: usize,
    thread: usize,
    topic: &Topic,
    rate: f64,
    shared: &Shared,
) -> seglog::Result<HashMap<String, u64>> {
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (((phase as u64) << 32) | (thread as u64 + 1)));
    let start = Instant::now();
    let mut n = 0u64;
    while !shared.stop_producing.load(Ordering::Acquire) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if n >= due {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        while n < due {
            // Skewed: the minimum of two uniform draws favours low user ids.
            let user = rng.below(USERS).min(rng.below(USERS));
            let user = format!("user-{user}");
            let page = rng.below(PAGES);
            let value = format!(
                "{{\"user\":\"{user}\",\"page\":\"/products/{page}\",\"ts\":{}}}",
                now_ms()
            );
            topic.send(Record::new(value).with_key(user.clone()))?;
            *sent.entry(user).or_insert(0) += 1;
            shared.produced.fetch_add(1, Ordering::Release);
            n += 1;
        }
    }
    Ok(sent)
}

fn report(
    phase: usize,
    when: &str,
    produced: u64,
    produced_last_second: u64,
    consumed: u64,
    store: &Store,
    views: &Mutex<HashMap<String, u64>>,
) -> seglog::Result<()> {
    let lag = store.group_lag(GROUP, TOPIC)?;
    let total_lag: u64 = lag.iter().map(|l| l.lag).sum();
    let per_partition: Vec<String> = lag.iter().map(|l| l.lag.to_string()).collect();
    let mut top: Vec<(String, u64)> = views
        .lock()
        .expect("views lock")
        .iter()
        .map(|(u, n)| (u.clone(), *n))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top: Vec<String> = top
        .iter()
        .take(3)
        .map(|(u, n)| format!("{u} {n}"))
        .collect();
    println!(
        "  [{phase}] {when:>7}  produced {produced:>7} (+{produced_last_second:>5})  consumed {consumed:>7}  \
         group lag {total_lag:>5} [{}]  top users: {}",
        per_partition.join(" "),
        top.join(", ")
    );
    Ok(())
}

fn print_ends(what: &str, store: &Store, topic: &Topic) -> seglog::Result<()> {
    let committed = store.committed_offsets(GROUP, TOPIC)?;
    let line: Vec<String> = topic
        .partitions()
        .iter()
        .map(|p| {
            format!(
                "p{} {}/{}",
                p.number(),
                committed.get(&p.number()).copied().unwrap_or(0),
                p.log_end_offset()
            )
        })
        .collect();
    println!("{what}: committed / log end offset: {}", line.join(", "));
    Ok(())
}

/// Everything the checks found wrong.
fn check(
    first: &Phase,
    second: &Phase,
    committed: &std::collections::BTreeMap<u32, u64>,
    views: &Mutex<HashMap<String, u64>>,
    sent_per_user: &HashMap<String, u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (phase, ph) in [(1, first), (2, second)] {
        for (p, o) in ph.duplicates.iter().take(5) {
            problems.push(format!(
                "phase {phase}: partition {p} offset {o} consumed twice"
            ));
        }
        if ph.duplicates.len() > 5 {
            problems.push(format!(
                "phase {phase}: {} duplicates in all",
                ph.duplicates.len()
            ));
        }
        for p in 0..PARTITIONS as usize {
            let (from, to) = (ph.start_ends[p], ph.end_ends[p]);
            let got = &ph.consumed[p];
            let outside: Vec<u64> = got
                .iter()
                .copied()
                .filter(|o| *o < from || *o >= to)
                .take(5)
                .collect();
            if !outside.is_empty() {
                problems.push(format!(
                    "phase {phase}: partition {p}: consumed offsets outside this phase's \
                     {from}..{to} (read again after the restart?): {outside:?}"
                ));
            }
            let missing = (from..to).filter(|o| !got.contains(o)).count();
            if missing > 0 {
                let first_missing = (from..to).find(|o| !got.contains(o));
                problems.push(format!(
                    "phase {phase}: partition {p}: {missing} of offsets {from}..{to} never \
                     consumed (first {first_missing:?})"
                ));
            }
        }
    }
    for p in 0..PARTITIONS {
        let c = committed.get(&p).copied();
        if c != Some(first.end_ends[p as usize]) {
            problems.push(format!(
                "partition {p}: committed offset after phase 1 is {c:?}, expected the log end \
                 offset {}",
                first.end_ends[p as usize]
            ));
        }
    }
    if second.consumed_count() != second.produced {
        problems.push(format!(
            "phase 2 consumed {} records but {} were produced in phase 2",
            second.consumed_count(),
            second.produced
        ));
    }
    let views = views.lock().expect("views lock");
    let wrong: Vec<String> = sent_per_user
        .iter()
        .filter(|(u, n)| views.get(*u) != Some(n))
        .take(5)
        .map(|(u, n)| format!("{u}: sent {n}, counted {:?}", views.get(u)))
        .collect();
    if !wrong.is_empty() || views.len() != sent_per_user.len() {
        problems.push(format!(
            "view counts differ from what was sent ({} users sent, {} counted): {}",
            sent_per_user.len(),
            views.len(),
            wrong.join("; ")
        ));
    }
    problems
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// xorshift64*: a small deterministic generator, enough for picking users and pages.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
