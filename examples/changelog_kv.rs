//! A compacted topic as a durable key-value changelog:
//! `cargo run --release --example changelog_kv [DATA_DIR]`.
//!
//! Every change to a key-value map is appended to the topic `kv-changelog` (cleanup policy
//! `compact`): a put is a record with the key and the new value, a delete a tombstone
//! (`Record::tombstone(key)`, a null value). The map is the fold of the log, so it can be
//! rebuilt at any time by reading the log from the start — after a restart, for example.
//! Compaction keeps only the latest record of each key, so the log stays about as large as
//! the map rather than growing with the number of changes.
//!
//! The example writes a few thousand puts, overwrites and deletes over a few hundred keys,
//! rebuilds the map from the log, compacts (`Partition::compact_now` until every sealed
//! segment is clean), checks the rebuilt map did not change, writes a second round once
//! the tombstones' `delete_retention_ms` has passed and compacts again (the old tombstones
//! go), then closes the store, reopens it ("restart"), and checks that the map rebuilt from
//! the log equals the one before. It prints what it does at each step and exits non-zero
//! with a message when a check fails.
//!
//! `DATA_DIR` defaults to a fresh directory under the system temp dir, removed at the end.
//! In a given `DATA_DIR`, a `kv-changelog` topic left by an earlier run is deleted first;
//! nothing else there is touched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seglog::{CleanupPolicy, Partition, Record, Store, StoreConfig, TopicConfig};

const TOPIC: &str = "kv-changelog";
const KEYS: u64 = 300;
/// Changes of the first round, and of the second.
const CHANGES: u64 = 5_000;
const MORE_CHANGES: u64 = 1_000;
/// Changes per append (a producer's batch).
const BATCH: usize = 25;
/// One change in this many is a delete.
const DELETE_EVERY: u64 = 7;
const SEGMENT_BYTES: u64 = 64 * 1024;
/// How long a tombstone outlives the first cleaning that sees it.
const DELETE_RETENTION_MS: u64 = 200;

type Map = HashMap<Vec<u8>, Vec<u8>>;

/// Removes the directory the example created (never a directory it was given).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (dir, _cleanup) = match std::env::args_os().nth(1) {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let d = std::env::temp_dir().join(format!(
                "seglog-changelog-kv-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir(&d)?;
            (d.clone(), Some(TempDir(d)))
        }
    };
    let store_config = || StoreConfig::default().maintenance_interval(None);

    // --- Open a store and create the compacted topic ------------------------------------
    let store = Store::open_with(&dir, store_config())?;
    if store.topics().iter().any(|t| t == TOPIC) {
        store.delete_topic(TOPIC)?;
        println!("deleted topic {TOPIC:?} left by an earlier run");
    }
    let config = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(SEGMENT_BYTES)
        .min_cleanable_dirty_ratio(0.0)
        .delete_retention_ms(DELETE_RETENTION_MS);
    let topic = store.create_topic(TOPIC, config)?;
    let p = topic.partition(0)?.clone();
    println!(
        "created compacted topic {TOPIC:?} in {} ({} KiB segments, tombstones kept \
         {DELETE_RETENTION_MS} ms after the first cleaning that sees them)",
        dir.display(),
        SEGMENT_BYTES / 1024
    );

    // --- Round 1: puts, overwrites and deletes ------------------------------------------
    let mut model = Map::new();
    let mut rng = XorShift(0x5eed_1234_abcd_9876);
    let (puts, deletes) = write_changes(&p, &mut model, &mut rng, 0, CHANGES)?;
    p.flush()?;
    println!(
        "wrote {CHANGES} changes over {KEYS} keys ({puts} puts, {deletes} deletes as \
         tombstones) in appends of {BATCH}, and flushed"
    );

    let (state, scan) = rebuild(&p)?;
    println!(
        "rebuilt the map from the log: {} keys live ({} records read, {} of them tombstones)",
        state.len(),
        scan.records,
        scan.tombstones
    );
    check(
        &state,
        &model,
        "the map rebuilt from the log differs from the writer's",
    )?;

    // --- Compaction -----------------------------------------------------------------------
    let before = p.stats();
    println!(
        "before compaction: {} bytes in {} segments (log offsets {}..{})",
        before.size_bytes, before.segments, before.log_start_offset, before.log_end_offset
    );
    let clean_to = compact_until_clean(&p)?;
    let after = p.stats();
    println!(
        "after compaction:  {} bytes in {} segments — {:.1}% smaller",
        after.size_bytes,
        after.segments,
        reduction(before.size_bytes, after.size_bytes)
    );
    let (compacted, scan) = rebuild(&p)?;
    println!(
        "rebuilt the map again: {} keys live from {} records ({} tombstones, {} of them \
         below offset {clean_to} kept until {DELETE_RETENTION_MS} ms after this cleaning)",
        compacted.len(),
        scan.records,
        scan.tombstones,
        scan.tombstones_below(clean_to)
    );
    check(&compacted, &state, "compaction changed the map")?;

    // --- Round 2, after the tombstones' delete horizon ------------------------------------
    std::thread::sleep(Duration::from_millis(DELETE_RETENTION_MS + 50));
    let (puts, deletes) = write_changes(&p, &mut model, &mut rng, CHANGES, MORE_CHANGES)?;
    p.flush()?;
    println!(
        "waited {} ms, wrote {MORE_CHANGES} more changes ({puts} puts, {deletes} deletes)",
        DELETE_RETENTION_MS + 50
    );
    let before = p.stats();
    compact_until_clean(&p)?;
    let after = p.stats();
    let (state, scan) = rebuild(&p)?;
    let old = scan.tombstones_below(clean_to);
    println!(
        "compacted again: {} -> {} bytes, {} -> {} segments; {} keys live from {} records \
         ({} tombstones, {old} of them below offset {clean_to}: the first cleaning's are \
         past their delete horizon)",
        before.size_bytes,
        after.size_bytes,
        before.segments,
        after.segments,
        state.len(),
        scan.records,
        scan.tombstones
    );
    check(
        &state,
        &model,
        "the map after the second compaction is wrong",
    )?;
    if old > 0 {
        return Err(format!(
            "{old} tombstones below offset {clean_to} outlived their delete horizon"
        )
        .into());
    }

    // --- Restart ----------------------------------------------------------------------------
    drop(topic);
    store.close()?;
    println!("closed the store");
    let store = Store::open_with(&dir, store_config())?;
    let p = store.topic(TOPIC)?.partition(0)?.clone();
    let (reopened, scan) = rebuild(&p)?;
    println!(
        "reopened (clean shutdown: {}): {} keys live from {} records",
        store.opened_clean(),
        reopened.len(),
        scan.records
    );
    check(
        &reopened,
        &state,
        "the map after the restart differs from the one before",
    )?;
    println!("the map after the restart equals the map before it");
    store.close()?;
    println!("done in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Appends `n` changes numbered from `first`, applying each to `model`; returns (puts,
/// deletes).
fn write_changes(
    p: &Partition,
    model: &mut Map,
    rng: &mut XorShift,
    first: u64,
    n: u64,
) -> seglog::Result<(u64, u64)> {
    let (mut puts, mut deletes) = (0, 0);
    let mut batch = Vec::with_capacity(BATCH);
    for i in first..first + n {
        let key = format!("account-{:04}", rng.next() % KEYS).into_bytes();
        let record = if rng.next().is_multiple_of(DELETE_EVERY) {
            deletes += 1;
            model.remove(&key);
            Record::tombstone(key)
        } else {
            puts += 1;
            let value = format!(
                "{{\"version\":{i},\"balance\":{},\"note\":\"{}\"}}",
                rng.next() % 100_000,
                "x".repeat((rng.next() % 80) as usize)
            )
            .into_bytes();
            model.insert(key.clone(), value.clone());
            Record::new(value).with_key(key)
        };
        batch.push(record);
        if batch.len() == BATCH || i + 1 == first + n {
            p.append(&batch)?;
            batch.clear();
        }
    }
    Ok((puts, deletes))
}

/// What a rebuild read.
struct Scan {
    records: u64,
    tombstones: u64,
    tombstone_offsets: Vec<u64>,
}

impl Scan {
    fn tombstones_below(&self, offset: u64) -> usize {
        self.tombstone_offsets
            .iter()
            .filter(|&&o| o < offset)
            .count()
    }
}

/// Folds the whole log into a map: a record with a value sets its key, a tombstone
/// removes it.
fn rebuild(p: &Partition) -> seglog::Result<(Map, Scan)> {
    let mut map = Map::new();
    let mut scan = Scan {
        records: 0,
        tombstones: 0,
        tombstone_offsets: Vec::new(),
    };
    for r in p.records_from(p.log_start_offset()).fetch_bytes(256 * 1024) {
        let r = r?;
        scan.records += 1;
        let key = r.key.expect("every changelog record has a key");
        match r.value {
            Some(v) => {
                map.insert(key, v);
            }
            None => {
                scan.tombstones += 1;
                scan.tombstone_offsets.push(r.offset);
                map.remove(&key);
            }
        }
    }
    Ok((map, scan))
}

/// Runs compaction passes until every sealed segment is clean, printing each pass;
/// returns the first dirty offset afterwards.
fn compact_until_clean(p: &Partition) -> Result<u64, Box<dyn std::error::Error>> {
    for pass in 1..=100 {
        let started = Instant::now();
        let r = p.compact_now()?;
        if !r.cleaned {
            println!("  compaction pass {pass}: nothing to clean");
            return Ok(r.first_dirty_offset);
        }
        let active_base = p.segments().last().map_or(0, |s| s.base_offset());
        println!(
            "  compaction pass {pass}: {} dirty bytes, {} keys; {} segments ({} bytes) \
             rewritten as {} ({} bytes); {} records removed; first dirty offset {} \
             (active segment from {active_base}); {:.1} ms",
            r.dirty_bytes,
            r.keys,
            r.segments_before,
            r.bytes_before,
            r.segments_after,
            r.bytes_after,
            r.records_removed,
            r.first_dirty_offset,
            started.elapsed().as_secs_f64() * 1e3
        );
        if r.first_dirty_offset >= active_base {
            return Ok(r.first_dirty_offset);
        }
    }
    Err("compaction did not finish in 100 passes".into())
}

fn check(got: &Map, want: &Map, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if got == want {
        return Ok(());
    }
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
    let changed = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .count();
    Err(format!(
        "{what}: {} keys vs {} expected ({missing} missing, {extra} extra, {changed} with \
         another value)",
        got.len(),
        want.len()
    )
    .into())
}

fn reduction(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        (1.0 - after as f64 / before as f64) * 100.0
    }
}

/// xorshift64*: a reproducible workload without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
