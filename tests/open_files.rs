//! Bounded file descriptors and memory maps (`StoreConfig::max_open_files`): a store of
//! 20 partitions × 500 segments is built, read back, appended to, recovered after an unclean
//! shutdown and reopened in a child process whose descriptor limit is 256, with default
//! store settings; the descriptors and maps of the store's files are sampled throughout and
//! must stay within the cap.

use std::path::Path;
use std::process::Command;

use seglog::{Record, Store, StoreConfig, TopicConfig, RECOVERY_POINT_FILE};

const CHILD_ROLE: &str = "SEGLOG_OPEN_FILES_CHILD";
const CHILD_DIR: &str = "SEGLOG_OPEN_FILES_DIR";

const PARTITIONS: u32 = 20;
const SEGMENTS: usize = 500;
/// The soft descriptor limit of the child (an ordinary `ulimit -n 256`).
const NOFILE: u64 = 256;

/// Descriptors and maps of files under `dir` held by this process now.
fn open_files_under(dir: &Path) -> (usize, usize) {
    let dir = dir.canonicalize().unwrap();
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count();
    let prefix = dir.to_str().unwrap().to_string();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(5)
                .is_some_and(|p| p.starts_with(&prefix))
        })
        .count();
    (fds, maps)
}

/// The largest counts seen.
#[derive(Debug, Default)]
struct Peak {
    fds: usize,
    maps: usize,
    samples: usize,
}

impl Peak {
    /// Prints the peaks so far after `phase`.
    fn report(&self, phase: &str) {
        println!("{phase}: peak fds {} maps {}", self.fds, self.maps);
    }

    fn sample(&mut self, dir: &Path) {
        let (fds, maps) = open_files_under(dir);
        self.fds = self.fds.max(fds);
        self.maps = self.maps.max(maps);
        self.samples += 1;
    }
}

fn value(partition: u32, i: u64) -> String {
    format!("p{partition}-record-{i:08}-{}", "x".repeat(100))
}

/// Reads every record of every partition and checks it; returns the record count.
fn read_back(store: &Store, dir: &Path, peak: &mut Peak, ends: &[u64]) -> u64 {
    let t = store.topic("t").unwrap();
    let mut n = 0;
    for p in 0..PARTITIONS {
        let part = t.partition(p).unwrap();
        assert_eq!(part.log_end_offset(), ends[p as usize], "partition {p}");
        let mut next = 0;
        while next < part.log_end_offset() {
            let f = part.read(next, 4096).unwrap();
            for r in f.records() {
                assert_eq!(r.offset(), next);
                assert_eq!(r.value(), Some(value(p, next).as_bytes()), "partition {p}");
                next += 1;
                n += 1;
            }
            assert_eq!(f.next_offset(), next);
            if next % 300 == 0 {
                peak.sample(dir);
            }
        }
        peak.sample(dir);
    }
    n
}

/// Appends `count` records to every partition, sampling as it goes.
fn append(store: &Store, dir: &Path, peak: &mut Peak, ends: &mut [u64], count: u64) {
    let t = store.topic("t").unwrap();
    for i in 0..count {
        for p in 0..PARTITIONS {
            let o = ends[p as usize];
            let info = t
                .partition(p)
                .unwrap()
                .append(&[Record::new(value(p, o))])
                .unwrap();
            assert_eq!(info.base_offset, o);
            ends[p as usize] += 1;
        }
        if i % 200 == 0 {
            peak.sample(dir);
        }
    }
}

fn child(dir: &Path) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(NOFILE),
            maximum: hard,
        },
    )
    .unwrap();
    let cap = StoreConfig::default().max_open_files;
    let mut peak = Peak::default();
    let mut ends = vec![0u64; PARTITIONS as usize];
    // Build: tiny batches in 1 KiB segments.
    let store = Store::open(dir).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(PARTITIONS)
                .segment_bytes(1024)
                .segment_index_bytes(4096)
                .retention_ms(None),
        )
        .unwrap();
    let per_segment = {
        let p = t.partition(0).unwrap();
        let mut n = 0;
        while p.segments().len() < 2 {
            p.append(&[Record::new(value(0, n))]).unwrap();
            n += 1;
        }
        ends[0] = n;
        n - 1
    };
    let want = per_segment * SEGMENTS as u64 + 1;
    for (p, end) in ends.iter_mut().enumerate().skip(1) {
        let part = t.partition(p as u32).unwrap();
        while *end < want {
            part.append(&[Record::new(value(p as u32, *end))]).unwrap();
            *end += 1;
            if *end % 500 == 0 {
                peak.sample(dir);
            }
        }
    }
    {
        let part = t.partition(0).unwrap();
        while ends[0] < want {
            part.append(&[Record::new(value(0, ends[0]))]).unwrap();
            ends[0] += 1;
        }
    }
    for p in 0..PARTITIONS {
        assert!(t.partition(p).unwrap().segments().len() >= SEGMENTS);
    }
    peak.sample(dir);
    peak.report("built");
    store.close().unwrap();

    // A clean open, everything read back, appends.
    let store = Store::open(dir).unwrap();
    assert!(store.opened_clean());
    peak.sample(dir);
    let total: u64 = ends.iter().sum();
    assert_eq!(read_back(&store, dir, &mut peak, &ends), total);
    append(&store, dir, &mut peak, &mut ends, 50);
    peak.report("clean open, read, append");

    // An unclean shutdown without a recovery point: every segment is recovered.
    store.simulate_crash();
    std::fs::remove_file(dir.join(RECOVERY_POINT_FILE)).unwrap();
    let store = Store::open(dir).unwrap();
    assert!(!store.opened_clean());
    peak.sample(dir);
    peak.report("recovered");
    let total: u64 = ends.iter().sum();
    assert_eq!(read_back(&store, dir, &mut peak, &ends), total);
    append(&store, dir, &mut peak, &mut ends, 50);
    peak.report("read, append");
    store.close().unwrap();

    // And a last clean reopen.
    let store = Store::open(dir).unwrap();
    let total: u64 = ends.iter().sum();
    assert_eq!(read_back(&store, dir, &mut peak, &ends), total);
    store.close().unwrap();
    println!(
        "CHILD-REPORT: cap {cap} peak fds {} peak maps {} samples {} records {total}",
        peak.fds, peak.maps, peak.samples
    );
    assert!(
        peak.fds <= cap,
        "{} descriptors over the cap {cap}",
        peak.fds
    );
    assert!(peak.maps <= cap, "{} maps over the cap {cap}", peak.maps);
}

/// Not a test by itself: the child process of the test below.
#[test]
fn child_process_helper() {
    if let (Ok(_), Ok(dir)) = (std::env::var(CHILD_ROLE), std::env::var(CHILD_DIR)) {
        child(Path::new(&dir));
    }
}

#[test]
fn thousands_of_segments_under_ulimit_256() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, "1")
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout
        .lines()
        .find(|l| l.contains("CHILD-REPORT:"))
        .unwrap_or_else(|| panic!("no report from the child:\n{stdout}"));
    println!("{report}");
}

/// Open files of this process under `dir` (descriptors, maps), for the in-process tests.
fn counts(dir: &Path) -> (usize, usize) {
    open_files_under(dir)
}

// With the smallest cap, files are closed all the time while readers race compaction (which
// deletes and replaces segments), retention (which deletes them) and truncation (which
// rewrites a sealed segment and makes it active again): every read returns the records
// written, in order, and the store's files stay within the cap between operations.
#[test]
fn tiny_cap_under_compaction_retention_and_truncation() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let cap = 16;
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default()
            .maintenance_interval(None)
            .max_open_files(cap),
    )
    .unwrap();
    let small = TopicConfig::default().segment_bytes(600).retention_ms(None);
    let compacted = store
        .create_topic(
            "c",
            small
                .clone()
                .cleanup_policy(seglog::CleanupPolicy::Compact)
                .min_cleanable_dirty_ratio(0.0),
        )
        .unwrap();
    let retained = store
        .create_topic("r", small.clone().retention_bytes(Some(6_000)))
        .unwrap();
    let c = compacted.partition(0).unwrap().clone();
    let r = retained.partition(0).unwrap().clone();
    // Keys 0..20: the value names the offset, so a reader can check every record it gets.
    let rec = |o: u64| Record::new(format!("{o}")).with_key(format!("k{}", o % 20));
    for o in 0..400 {
        c.append(&[rec(o)]).unwrap();
        r.append(&[rec(o)]).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [c.clone(), r.clone(), c.clone(), r.clone()]
        .into_iter()
        .map(|p| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut scans = 0u64;
                while !done.load(Ordering::Acquire) || scans == 0 {
                    let mut next = p.log_start_offset();
                    while next < p.log_end_offset() {
                        let f = match p.read(next, 700) {
                            Ok(f) => f,
                            // Retention moved the log start past `next`: start again.
                            Err(seglog::Error::OffsetOutOfRange { .. }) => break,
                            Err(e) => panic!("read at {next}: {e}"),
                        };
                        for rv in f.records() {
                            assert!(rv.offset() >= next);
                            let v = std::str::from_utf8(rv.value().unwrap()).unwrap();
                            assert_eq!(v, rv.offset().to_string());
                            next = rv.offset() + 1;
                        }
                        next = next.max(f.next_offset());
                    }
                    scans += 1;
                }
                scans
            })
        })
        .collect();
    for round in 0..30u64 {
        for _ in 0..40 {
            let o = c.log_end_offset();
            c.append(&[rec(o)]).unwrap();
            let o = r.log_end_offset();
            r.append(&[rec(o)]).unwrap();
        }
        c.compact_now().unwrap();
        r.enforce_retention().unwrap();
        if round % 10 == 9 {
            // Into a sealed segment some way back: rewritten, and active again.
            let to = r.log_end_offset() - 25;
            r.truncate_to(to).unwrap();
        }
        c.flush().unwrap();
        r.flush().unwrap();
        let (fds, maps) = counts(dir.path());
        // The lock file and a reader's segment in use may come on top of the cap.
        assert!(fds <= cap + 6, "{fds} descriptors, cap {cap}");
        assert!(maps <= cap + 6, "{maps} maps, cap {cap}");
    }
    done.store(true, Ordering::Release);
    for t in readers {
        assert!(t.join().unwrap() > 0);
    }
    // Everything is still readable after a reopen.
    drop((c, r, compacted, retained));
    store.close().unwrap();
    let store = Store::open_with(dir.path(), StoreConfig::default().max_open_files(cap)).unwrap();
    for name in ["c", "r"] {
        let p = store.topic(name).unwrap().partition(0).unwrap().clone();
        for r in p.records_from(p.log_start_offset()).fetch_bytes(4096) {
            let r = r.unwrap();
            assert_eq!(r.value.unwrap(), r.offset.to_string().as_bytes());
        }
    }
    store.close().unwrap();
}

#[test]
fn max_open_files_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    match Store::open_with(dir.path(), StoreConfig::default().max_open_files(3)) {
        Err(seglog::Error::InvalidConfig { field, .. }) => assert_eq!(field, "max_open_files"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    assert!(StoreConfig::default().max_open_files >= 16);
}
