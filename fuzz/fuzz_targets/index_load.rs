//! A valid log whose `.index` and/or `.timeindex` of one segment (sealed or active) is
//! replaced by arbitrary bytes: the store still opens, and every read and timestamp lookup
//! returns what the original log holds. A corrupt index may cost time, never answers.
//!
//! The log is built once per process through the public API (a topic with small segments,
//! ~50 batches of 1–5 records with non-monotonic timestamps, closed) and copied into a
//! fresh directory for each input.
//!
//! Input: the first byte chooses what is replaced. Bits 0–1: 0 the `.index`, 1 the
//! `.timeindex`, 2 or 3 both (the rest is then `[u16 BE len][.index][.timeindex]`). Bit 2:
//! 0 replaces the file's contents with the bytes; 1 patches the original file: the first
//! byte is how many bytes to cut from its end, the rest is XORed onto it from byte 0
//! (extending it when longer). Bits 3–7, modulo the segment count: which segment (the
//! last one is the active segment).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use seglog::{Record, Store, TimestampOffset, TopicConfig};

const MAX_INPUT: usize = 64 << 10;
const TOPIC: &str = "t";
const BATCHES: u64 = 50;
const T0: i64 = 1_700_000_000_000;

struct Golden {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// Every record, at the index of its offset (the log starts at 0).
    records: Vec<Record>,
    /// Base offsets of the segments, oldest first.
    segments: Vec<u64>,
    /// Timestamps to look up.
    targets: Vec<i64>,
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("seglog-fuzz-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir")
}

/// Record `n`: keys repeat, some values are empty or null, some have headers, and
/// timestamps rise with noise larger than the step (so they are not monotonic).
fn record(n: u64) -> Record {
    let ts = T0 + n as i64 * 10 + ((n * 7919) % 13) as i64 * 25 - 150;
    let mut r = if n % 17 == 16 {
        Record::tombstone(format!("key-{}", n % 10))
    } else {
        Record::new(vec![b'a' + (n % 26) as u8; (n * 13 % 40) as usize])
            .with_key(format!("key-{}", n % 10))
    };
    if n.is_multiple_of(5) {
        r = r.with_header("h", Some(n.to_be_bytes().to_vec()));
    }
    if n.is_multiple_of(11) {
        r.key = None;
    }
    r.with_timestamp(ts)
}

fn build() -> Golden {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    let store = Store::open(&dir).expect("open golden store");
    let cfg = TopicConfig::default()
        .segment_bytes(2048)
        .index_interval_bytes(100);
    let topic = store.create_topic(TOPIC, cfg).expect("create golden topic");
    let p = topic.partition(0).expect("partition 0");
    let mut records = Vec::new();
    for b in 0..BATCHES {
        let batch: Vec<Record> = (0..1 + (b * 7) % 5)
            .map(|i| record(records.len() as u64 + i))
            .collect();
        let info = p.append(&batch).expect("append to golden log");
        assert_eq!(info.base_offset, records.len() as u64);
        records.extend(batch);
    }
    store.close().expect("close golden store");
    let mut segments: Vec<u64> = std::fs::read_dir(dir.join(format!("{TOPIC}-0")))
        .expect("list golden partition")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    segments.sort_unstable();
    assert!(
        segments.len() >= 4,
        "golden log has {} segments",
        segments.len()
    );
    let mut targets = vec![i64::MIN, -1, 0, T0, i64::MAX];
    for r in &records {
        let ts = r.timestamp.unwrap();
        targets.extend([ts - 1, ts, ts + 1]);
    }
    targets.sort_unstable();
    targets.dedup();
    Golden {
        _tmp: tmp,
        dir,
        records,
        segments,
        targets,
    }
}

/// `INDEX_LOAD_ONLY=index` (or `timeindex`) damages only that file, whatever the first
/// byte says: a way to keep fuzzing one index while a bug in the other is open.
fn only_file() -> Option<u8> {
    static ONLY: OnceLock<Option<u8>> = OnceLock::new();
    *ONLY.get_or_init(|| match std::env::var("INDEX_LOAD_ONLY").as_deref() {
        Ok("index") => Some(0),
        Ok("timeindex") => Some(1),
        Ok(other) => panic!("INDEX_LOAD_ONLY must be index or timeindex, not {other:?}"),
        Err(_) => None,
    })
}

fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(build)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("list dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != ".lock" {
            std::fs::copy(e.path(), &target).expect("copy file");
        }
    }
}

fn take_prefixed(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let len = u16::from_be_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    rest.split_at(len.min(rest.len()))
}

/// The original file patched: `patch[0]` bytes cut from the end, the rest XORed on from 0.
fn patched(orig: &[u8], patch: &[u8]) -> Vec<u8> {
    let (cut, xor) = patch
        .split_first()
        .map_or((0, &[][..]), |(c, x)| (*c as usize, x));
    let mut out = orig.to_vec();
    for (i, &b) in xor.iter().enumerate() {
        match out.get_mut(i) {
            Some(o) => *o ^= b,
            None => out.push(b),
        }
    }
    out.truncate(out.len().saturating_sub(cut));
    out
}

fn brute_force(records: &[Record], target: i64) -> Option<TimestampOffset> {
    records
        .iter()
        .enumerate()
        .find(|(_, r)| r.timestamp.unwrap() >= target)
        .map(|(o, r)| TimestampOffset {
            offset: o as u64,
            timestamp: r.timestamp.unwrap(),
        })
}

fn check(store: &Store, g: &Golden, when: &str) {
    let topic = store.topic(TOPIC).expect("topic");
    let p = topic.partition(0).expect("partition 0");
    let end = g.records.len() as u64;
    assert_eq!(p.log_start_offset(), 0, "{when}: log start offset");
    assert_eq!(p.log_end_offset(), end, "{when}: log end offset");
    for (o, want) in g.records.iter().enumerate() {
        let o = o as u64;
        let f = p
            .read(o, 1)
            .unwrap_or_else(|e| panic!("{when}: read({o}, 1) failed: {e}"));
        let got = f
            .records()
            .next()
            .unwrap_or_else(|| panic!("{when}: read({o}, 1) returned no record"));
        assert_eq!(
            got.offset(),
            o,
            "{when}: read({o}, 1) starts at another offset"
        );
        assert_eq!(got.to_record(), *want, "{when}: record {o} differs");
        assert!(f.next_offset() > o, "{when}: read({o}, 1) made no progress");
    }
    let at_end = p
        .read(end, 1)
        .unwrap_or_else(|e| panic!("{when}: read at the log end failed: {e}"));
    assert!(
        at_end.is_empty(),
        "{when}: read at the log end returned batches"
    );
    assert!(
        p.read(end + 1, 1).is_err(),
        "{when}: read past the log end succeeded"
    );
    // A consumer loop with a small budget sees every record once, in order.
    let mut next = 0;
    let mut seen = 0;
    for _ in 0..=g.records.len() {
        if next >= end {
            break;
        }
        let f = p
            .read(next, 300)
            .unwrap_or_else(|e| panic!("{when}: read({next}, 300) failed: {e}"));
        for r in f.records() {
            assert_eq!(
                r.offset(),
                seen,
                "{when}: consumer loop skipped or repeated"
            );
            assert_eq!(r.to_record(), g.records[seen as usize]);
            seen += 1;
        }
        assert!(
            f.next_offset() > next,
            "{when}: read({next}, 300) made no progress"
        );
        next = f.next_offset();
    }
    assert_eq!(seen, end, "{when}: consumer loop did not reach the end");
    for &t in &g.targets {
        let got = p
            .offset_for_timestamp(t)
            .unwrap_or_else(|e| panic!("{when}: offset_for_timestamp({t}) failed: {e}"));
        assert_eq!(
            got,
            brute_force(&g.records, t),
            "{when}: offset_for_timestamp({t})"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if data.len() > MAX_INPUT {
        return;
    }
    let g = golden();
    let tmp = scratch();
    copy_dir(&g.dir, tmp.path());
    let base = g.segments[(sel >> 3) as usize % g.segments.len()];
    let pdir = tmp.path().join(format!("{TOPIC}-0"));
    let index = pdir.join(format!("{base:020}.index"));
    let timeindex = pdir.join(format!("{base:020}.timeindex"));
    let (for_index, for_time) = match only_file().unwrap_or(sel & 3) {
        0 => (Some(rest), None),
        1 => (None, Some(rest)),
        _ => {
            let (a, b) = take_prefixed(rest);
            (Some(a), Some(b))
        }
    };
    for (path, bytes) in [(&index, for_index), (&timeindex, for_time)] {
        let Some(bytes) = bytes else { continue };
        let contents = if sel & 4 != 0 {
            let orig = std::fs::read(path).unwrap_or_default();
            patched(&orig, bytes)
        } else {
            bytes.to_vec()
        };
        std::fs::write(path, contents).expect("write index");
    }

    let store = Store::open(tmp.path())
        .unwrap_or_else(|e| panic!("a valid log with a damaged index does not open: {e}"));
    check(&store, g, "after open");
    store
        .close()
        .unwrap_or_else(|e| panic!("close after a damaged index failed: {e}"));
    let store = Store::open(tmp.path())
        .unwrap_or_else(|e| panic!("reopen after a damaged index failed: {e}"));
    check(&store, g, "after close and reopen");
    let _ = store.close();
});
