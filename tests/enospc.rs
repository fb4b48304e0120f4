//! A full file system is an error, never a signal (issue 11 item 3).
//!
//! Each scenario mounts its own small tmpfs (needs root; otherwise the test prints why it
//! skipped), re-executes this test binary as a child that fills the file system and drives
//! one operation into ENOSPC, and checks in the parent that
//!
//! - the child exited normally (an index store into an unallocated page of a full file
//!   system used to kill it with SIGBUS),
//! - the child saw `Error::Io` with OS error 28 (checked in the child),
//! - after the filler is deleted, the store reopens, every record the child had seen
//!   acknowledged as flushed reads back byte for byte, and appends work again.
//!
//! Runs per scenario: `SEGLOG_ENOSPC_RUNS` (default 3), each with another amount of free
//! space left by the filler.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

mod common;

use common::{exclusive, shared};
use seglog::faults::{self, FaultOp};
use seglog::{
    CleanupPolicy, Error, FlushPolicy, Partition, Record, Store, StoreConfig, TopicConfig,
};

const CHILD_SCENARIO: &str = "SEGLOG_ENOSPC_SCENARIO";
const CHILD_DIR: &str = "SEGLOG_ENOSPC_DIR";
const CHILD_OUT: &str = "SEGLOG_ENOSPC_OUT";
const CHILD_SEED: &str = "SEGLOG_ENOSPC_SEED";
const RUNS_VAR: &str = "SEGLOG_ENOSPC_RUNS";
const ENOSPC: i32 = 28;
const PAGE: u64 = 4096;
const TS0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Parent side

/// A tmpfs mounted on a fresh directory, unmounted (and the directory removed) on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// Mounts a 32 MiB tmpfs, or says why it cannot.
    fn new() -> Result<Mount, String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            });
        if uid.as_deref() != Some("0") {
            return Err(format!(
                "not running as root (uid {uid:?}): cannot mount a tmpfs"
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it (a failed assertion left a store open): detach.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// How one child run ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Exited normally, having seen ENOSPC as an error.
    Error,
    /// Killed by this signal.
    Signal(i32),
    /// Exited with this code (a failed assertion in the child).
    Failed(i32),
}

fn runs() -> u64 {
    std::env::var(RUNS_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// Runs `scenario` `runs()` times, each in a child on its own tmpfs, and checks each.
fn run_scenario(scenario: &str) {
    // This process reopens stores: no fault planned by another test may hit it.
    let _shared = shared();
    let mut outcomes = Vec::new();
    for run in 0..runs() {
        let mount = match Mount::new() {
            Ok(m) => m,
            Err(why) => {
                println!("skipped: {why}");
                return;
            }
        };
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("acked");
        let seed = 0xE05_0000 + run;
        let result = common::child::helper("child_entry")
            .env(CHILD_SCENARIO, scenario)
            .env(CHILD_DIR, mount.path())
            .env(CHILD_OUT, &out)
            .env(CHILD_SEED, seed.to_string())
            .output()
            .unwrap();
        let status = result.status;
        let outcome = match (status.signal(), status.code()) {
            (Some(sig), _) => Outcome::Signal(sig),
            (None, Some(0)) => Outcome::Error,
            (None, code) => Outcome::Failed(code.unwrap_or(-1)),
        };
        println!("enospc {scenario} run {run} seed {seed:#x}: {outcome:?}");
        if outcome != Outcome::Error {
            println!(
                "child stdout:\n{}\nchild stderr:\n{}",
                String::from_utf8_lossy(&result.stdout),
                String::from_utf8_lossy(&result.stderr)
            );
        } else {
            for line in String::from_utf8_lossy(&result.stdout).lines() {
                if let Some(seen) = line.split_once("seen: ") {
                    println!("  {}", seen.1);
                }
            }
            // Space returns: the store reopens and holds every acknowledged record.
            std::fs::remove_file(mount.path().join("filler")).unwrap();
            check_reopen(&mount.path().join("store"), &out, scenario);
        }
        outcomes.push(outcome);
    }
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Error),
        "{scenario}: children that did not end with an error: {outcomes:?}"
    );
}

/// Reopens the store, reads back every acknowledged record, appends once more per
/// partition and closes.
fn check_reopen(dir: &Path, acked: &Path, scenario: &str) {
    let acked = std::fs::read_to_string(acked).unwrap();
    let mut want: BTreeMap<(String, u32), Vec<(u64, String)>> = BTreeMap::new();
    for line in acked.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        want.entry((f[0].to_string(), f[1].parse().unwrap()))
            .or_default()
            .push((f[2].parse().unwrap(), f[3].to_string()));
    }
    let store = Store::open_with(dir, StoreConfig::default().maintenance_interval(None))
        .unwrap_or_else(|e| panic!("{scenario}: reopen after space returned: {e}"));
    for ((topic, part), records) in &want {
        let p = store
            .topic(topic)
            .unwrap()
            .partition(*part)
            .unwrap()
            .clone();
        let have = read_all(&p);
        for (offset, value) in records {
            assert_eq!(
                have.get(offset).map(String::as_str),
                Some(value.as_str()),
                "{scenario}: {topic}-{part}: acknowledged offset {offset} lost"
            );
        }
    }
    for topic in store.topics() {
        for p in store.topic(&topic).unwrap().partitions() {
            p.append(&[Record::new("after")])
                .unwrap_or_else(|e| panic!("{scenario}: append after reopen: {e}"));
        }
    }
    store.close().unwrap();
}

fn read_all(p: &Partition) -> BTreeMap<u64, String> {
    let end = p.log_end_offset();
    let mut records = p.records_from(p.log_start_offset());
    let out = records
        .by_ref()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset,
                String::from_utf8(r.value.unwrap_or_default()).unwrap(),
            )
        })
        .collect();
    assert_eq!(records.position(), end, "records stop below the log end");
    out
}

#[test]
fn append() {
    run_scenario("append");
}

#[test]
fn roll() {
    run_scenario("roll");
}

#[test]
fn flush() {
    run_scenario("flush");
}

#[test]
fn compaction() {
    run_scenario("compaction");
}

#[test]
fn retention() {
    run_scenario("retention");
}

#[test]
fn checkpoint() {
    run_scenario("checkpoint");
}

#[test]
fn group_commit() {
    run_scenario("group_commit");
}

#[test]
fn close() {
    run_scenario("close");
}

#[test]
fn reopen() {
    run_scenario("reopen");
}

/// Without root: the allocation ahead of an index entry fails (injected ENOSPC). The
/// append fails before its batch reaches the `.log`, the partition is poisoned, and a
/// reopen has every earlier record.
#[test]
fn failed_index_allocation_fails_the_append_before_the_log_is_written() {
    let _serial = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().maintenance_interval(None),
    )
    .unwrap();
    let config = TopicConfig::default().index_interval_bytes(0);
    let p = common::setup::create(&store, "t", config);
    p.append(&[Record::new("first")]).unwrap();
    p.flush().unwrap();
    let log = dir.path().join("t-0").join("00000000000000000000.log");
    let log_len = std::fs::metadata(&log).unwrap().len();
    // The second batch is the first with an index entry due: its allocation fails.
    faults::fail_nth(FaultOp::Allocate, 1, ENOSPC);
    let r = p.append(&[Record::new("second")]);
    faults::clear();
    match &r {
        Err(e @ Error::Io { path, .. }) => {
            expect_enospc(e, "append");
            assert!(path.to_string_lossy().ends_with(".index"), "{e}");
        }
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        log_len,
        "the batch was written"
    );
    assert_eq!(p.log_end_offset(), 1);
    assert!(p.poisoned().is_some());
    assert!(matches!(
        p.append(&[Record::new("x")]),
        Err(Error::Poisoned { .. })
    ));
    drop(p);
    drop(store);
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().maintenance_interval(None),
    )
    .unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    assert_eq!(read_all(&p).into_values().collect::<Vec<_>>(), ["first"]);
    p.append(&[Record::new("second")]).unwrap();
    assert_eq!(read_all(&p).len(), 2);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// Child side

/// The child's entry point: a no-op unless started by `run_scenario`.
#[test]
fn child_entry() {
    let (Ok(scenario), Ok(dir), Ok(out), Ok(seed)) = (
        std::env::var(CHILD_SCENARIO),
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_OUT),
        std::env::var(CHILD_SEED),
    ) else {
        return;
    };
    let mut c = Child {
        root: PathBuf::from(dir),
        rng: Rng::new(seed.parse().unwrap()),
        acked: Arc::new(Mutex::new(Vec::new())),
        pending: Vec::new(),
    };
    match scenario.as_str() {
        "append" => c.appends(
            TopicConfig::default()
                .segment_bytes(1 << 20)
                .index_interval_bytes(0),
        ),
        // Segments of one page, rolled before any index entry is due: every roll seals
        // a segment with an empty time index, so the seal adds its first entry.
        "roll" => c.appends(
            TopicConfig::default()
                .segment_bytes(PAGE)
                .index_interval_bytes(PAGE as u32),
        ),
        "flush" => c.flushes(),
        "compaction" => c.compaction(),
        "retention" => c.retention(),
        "checkpoint" => c.checkpoint(),
        "group_commit" => c.group_commit(),
        "close" => c.close(),
        "reopen" => c.reopen(),
        other => panic!("unknown scenario {other}"),
    }
    let mut f = std::fs::File::create(out).unwrap();
    for (t, p, o, v) in c.acked.lock().unwrap().iter() {
        writeln!(f, "{t}\t{p}\t{o}\t{v}").unwrap();
    }
    f.sync_all().unwrap();
}

type Acked = (String, u32, u64, String);

struct Child {
    root: PathBuf,
    rng: Rng,
    /// Records acknowledged as flushed.
    acked: Arc<Mutex<Vec<Acked>>>,
    /// Records appended, not flushed yet.
    pending: Vec<Acked>,
}

/// Panics unless `e` is `Error::Io` with ENOSPC.
fn expect_enospc(e: &Error, what: &str) {
    assert!(
        matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(ENOSPC)),
        "{what}: expected an I/O error ENOSPC, got {e:?}"
    );
    println!("seen: {what}: {e}");
}

/// A value of about `len` bytes that names its origin.
fn value(tag: &str, n: u64, len: usize) -> String {
    let mut v = format!("{tag}-{n}-");
    while v.len() < len {
        v.push('.');
    }
    v
}

impl Child {
    fn open(&self) -> Store {
        Store::open_with(
            self.root.join("store"),
            StoreConfig::default().maintenance_interval(None),
        )
        .unwrap()
    }

    /// Appends one record to `p`, remembering it as pending.
    fn append(&mut self, p: &Partition, n: u64, len: usize) -> seglog::Result<()> {
        let v = value(p.name(), n, len);
        let info = p.append(&[Record::new(v.clone())
            .with_key(format!("k{n}"))
            .with_timestamp(TS0 + n as i64)])?;
        self.pending
            .push((topic_of(p), p.number(), info.base_offset, v));
        Ok(())
    }

    /// Flushes `p`; on success its pending records are acknowledged.
    fn flush(&mut self, p: &Partition) -> seglog::Result<()> {
        p.flush()?;
        self.ack();
        Ok(())
    }

    fn ack(&mut self) {
        self.acked.lock().unwrap().append(&mut self.pending);
    }

    /// `n` flushed records in `p`, numbered from `from`.
    fn baseline(&mut self, p: &Partition, from: u64, n: u64, len: usize) {
        for i in from..from + n {
            self.append(p, i, len).unwrap();
        }
        self.flush(p).unwrap();
    }

    /// Fills the file system, then frees `slack` bytes of it.
    fn fill(&self, slack: u64) {
        let path = self.root.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 20, PAGE as usize] {
            let buf = vec![0xAA; chunk];
            loop {
                match f.write_all(&buf) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
                    Err(e) => panic!("filling: {e}"),
                }
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(slack)).unwrap();
        println!(
            "filled: {} bytes of filler, {slack} bytes left free",
            len - slack.min(len)
        );
    }

    /// Appends (flushing every 37) until an operation fails; it must fail with ENOSPC.
    fn appends(&mut self, config: TopicConfig) {
        let store = self.open();
        let p = common::setup::create(&store, "t", config);
        self.baseline(&p, 0, 100, 100);
        let slack = self.rng.below(64) * PAGE;
        self.fill(slack);
        for n in 100.. {
            let len = 60 + self.rng.below(200) as usize;
            let r =
                self.append(&p, n, len).and_then(
                    |()| {
                        if n % 37 == 0 {
                            self.flush(&p)
                        } else {
                            Ok(())
                        }
                    },
                );
            if let Err(e) = r {
                expect_enospc(&e, &format!("append {n}"));
                break;
            }
            assert!(n < 10_000_000, "no ENOSPC");
        }
        assert!(
            p.append(&[Record::new("x")]).is_err(),
            "a poisoned partition took an append"
        );
        assert!(p.poisoned().is_some());
        drop(store);
    }

    /// Appends with a flush policy that flushes every few records, and explicit flushes;
    /// after the first error every further flush fails too.
    fn flushes(&mut self) {
        let store = self.open();
        let config = TopicConfig::default()
            .segment_bytes(64 << 10)
            .flush_policy(FlushPolicy::EveryRecords(7));
        let p = common::setup::create(&store, "t", config);
        self.baseline(&p, 0, 100, 100);
        let slack = self.rng.below(64) * PAGE;
        self.fill(slack);
        for n in 100.. {
            let r = self.append(&p, n, 300).and_then(|()| {
                if n % 7 == 6 {
                    // The policy flushed: this append's records are durable.
                    self.ack();
                }
                if n % 10 == 0 {
                    self.flush(&p)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = r {
                expect_enospc(&e, &format!("append or flush {n}"));
                break;
            }
            assert!(n < 10_000_000, "no ENOSPC");
        }
        assert!(p.flush().is_err(), "a flush after a failed write succeeded");
        drop(store);
    }

    /// Compaction of sealed segments whose cleaned copy does not fit.
    fn compaction(&mut self) {
        let store = self.open();
        let config = TopicConfig::default()
            .segment_bytes(64 << 10)
            .cleanup_policy(CleanupPolicy::Compact)
            .min_cleanable_dirty_ratio(0.0);
        let p = common::setup::create(&store, "t", config);
        // Unique keys: compaction keeps every record, so each cleaned group is as large as
        // the segments it replaces. A pass frees each group's old files once it is swapped
        // in, so only one group (a 64 KiB segment) needs room at a time: less than that.
        self.baseline(&p, 0, 5000, 200);
        let slack = self.rng.below(8) * PAGE;
        self.fill(slack);
        let e = p
            .compact_now()
            .expect_err("compaction of a 64 KiB segment into less space succeeded");
        expect_enospc(&e, "compact_now");
        drop(store);
    }

    /// `delete_records_before` on a full file system (its checkpoint cannot be written),
    /// then retention by size (which frees space), then appends.
    fn retention(&mut self) {
        let store = self.open();
        let d = store
            .create_topic("d", TopicConfig::default().segment_bytes(16 << 10))
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        let r = store
            .create_topic(
                "r",
                TopicConfig::default()
                    .segment_bytes(8 << 10)
                    .retention_bytes(Some(32 << 10)),
            )
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        self.baseline(&d, 0, 2000, 100);
        self.baseline(&r, 0, 1000, 100);
        let r_acked = std::mem::take(&mut *self.acked.lock().unwrap())
            .into_iter()
            .filter(|a| a.0 == "r")
            .collect::<Vec<_>>();
        self.acked.lock().unwrap().retain(|a| a.0 != "r");
        self.fill(0);
        let e = d
            .delete_records_before(1001)
            .expect_err("a checkpoint write on a full disk succeeded");
        expect_enospc(&e, "delete_records_before");
        let report = store.enforce_retention();
        println!("enforce_retention: {report:?}");
        // What retention kept must survive; what it deleted is gone by design.
        let start = r.log_start_offset();
        self.acked
            .lock()
            .unwrap()
            .extend(r_acked.into_iter().filter(|a| a.2 >= start));
        // Retention freed space: appends go on until the disk is full again.
        for n in 1000.. {
            let res = self.append(&r, n, 100).and_then(|()| self.flush(&r));
            if let Err(e) = res {
                expect_enospc(&e, &format!("append {n} after retention"));
                break;
            }
            assert!(n < 10_000_000, "no ENOSPC");
        }
        drop(store);
    }

    /// `Store::flush` with the data flushable but no room for the checkpoint files.
    fn checkpoint(&mut self) {
        let store = self.open();
        let p = store
            .create_topic("t", TopicConfig::default())
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        self.baseline(&p, 0, 100, 100);
        for n in 100..200 {
            self.append(&p, n, 100).unwrap();
        }
        self.fill(0);
        let e = store
            .flush()
            .expect_err("Store::flush on a full disk succeeded");
        expect_enospc(&e, "Store::flush");
        let leftovers: Vec<_> = std::fs::read_dir(self.root.join("store"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "a failed write left {leftovers:?}");
        drop(store);
    }

    /// Several threads appending with `EveryAppend`: each acknowledged append is durable.
    fn group_commit(&mut self) {
        let store = self.open();
        let config = TopicConfig::default()
            .segment_bytes(256 << 10)
            .index_interval_bytes(0)
            .flush_policy(FlushPolicy::EveryAppend);
        let p = common::setup::create(&store, "t", config);
        self.baseline(&p, 0, 100, 100);
        let slack = self.rng.below(64) * PAGE;
        self.fill(slack);
        let enospc = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let p = p.clone();
                    let acked = Arc::clone(&self.acked);
                    s.spawn(move || {
                        for n in 0.. {
                            let v = value(&format!("thread{t}"), n, 100 + 10 * t as usize);
                            match p.append(&[Record::new(v.clone())]) {
                                Ok(info) => {
                                    acked
                                        .lock()
                                        .unwrap()
                                        .push(("t".into(), 0, info.base_offset, v))
                                }
                                Err(Error::Poisoned { .. }) => return false,
                                Err(e) => {
                                    expect_enospc(&e, &format!("thread {t} append {n}"));
                                    return true;
                                }
                            }
                            assert!(n < 10_000_000, "no ENOSPC");
                        }
                        unreachable!()
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&b| b)
                .count()
        });
        assert!(enospc >= 1, "no thread saw ENOSPC");
        drop(store);
    }

    /// Closing with unflushed appends in several partitions whose time indexes are still
    /// empty: close seals them (a first time-index entry each) and writes the checkpoints.
    fn close(&mut self) {
        let store = self.open();
        let t = store
            .create_topic("t", TopicConfig::default().partitions(4))
            .unwrap();
        for p in t.partitions() {
            self.baseline(p, 0, 10, 100);
            for n in 10..20 {
                self.append(p, n, 100).unwrap();
            }
            self.pending.clear();
        }
        let slack = self.rng.below(2) * PAGE;
        self.fill(slack);
        let e = store.close().expect_err("close on a full disk succeeded");
        expect_enospc(&e, "close");
    }
}

impl Child {
    /// Reopening a store on a full disk and reading a sealed segment whose index files are
    /// still preallocated (as a crash between a seal's entry and its trims leaves them):
    /// loading them must not touch their holes (on tmpfs even a read through the mapping
    /// allocates). Reads succeed; the next append fails with ENOSPC.
    fn reopen(&mut self) {
        let store = self.open();
        let p = store
            .create_topic("t", TopicConfig::default().segment_bytes(16 << 10))
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        self.baseline(&p, 0, 1000, 100);
        drop(p);
        store.close().unwrap();
        let dir = self.root.join("store").join("t-0");
        for name in [
            "00000000000000000000.index",
            "00000000000000000000.timeindex",
        ] {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join(name))
                .unwrap();
            f.set_len(10 << 20).unwrap();
        }
        self.fill(0);
        let store = match Store::open_with(
            self.root.join("store"),
            StoreConfig::default().maintenance_interval(None),
        ) {
            Ok(s) => s,
            Err(e) => return expect_enospc(&e, "open"),
        };
        let p = store.topic("t").unwrap().partition(0).unwrap().clone();
        let have = read_all(&p);
        for (_, _, offset, value) in self.acked.lock().unwrap().iter() {
            assert_eq!(
                have.get(offset),
                Some(value),
                "offset {offset} on a full disk"
            );
        }
        let e = p
            .append(&[Record::new(vec![b'x'; 8 << 10])])
            .expect_err("an append of 8 KiB on a full disk succeeded");
        expect_enospc(&e, "append after reopen");
        drop(store);
    }
}

fn topic_of(p: &Partition) -> String {
    let name = p.name();
    name[..name.rfind('-').unwrap()].to_string()
}

/// xorshift64*, seeded through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

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
