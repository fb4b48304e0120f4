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
        .filter(|l| l.split_whitespace().nth(5).is_some_and(|p| p.starts_with(&prefix)))
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
    assert!(peak.fds <= cap, "{} descriptors over the cap {cap}", peak.fds);
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
