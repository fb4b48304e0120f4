//! The README's first command: `cargo run --release --example quickstart [DATA_DIR]`.
//!
//! Creates a topic with a few partitions, appends keyed records, reads them back, closes
//! and reopens the store, reads again, and prints what it did. The data dir defaults to
//! `./seglog-data`. A topic left by an earlier run is deleted first, so every run starts
//! from an empty topic; nothing else in the directory is touched.

use std::collections::BTreeMap;
use std::time::Instant;

use seglog::{Record, Store, Topic, TopicConfig};

const TOPIC: &str = "page-views";
const PARTITIONS: u32 = 3;
const RECORDS: usize = 20_000;
const BATCH: usize = 500;
const USERS: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./seglog-data".to_string());
    let store = Store::open(&dir)?;
    if store.topics().iter().any(|t| t == TOPIC) {
        store.delete_topic(TOPIC)?;
        println!("deleted topic {TOPIC:?} left by an earlier run");
    }
    let config = TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(256 * 1024);
    let topic = store.create_topic(TOPIC, config)?;
    println!("created topic {TOPIC:?} with {PARTITIONS} partitions in {dir}");

    let started = Instant::now();
    let mut sent = 0;
    while sent < RECORDS {
        let batch: Vec<Record> = (sent..(sent + BATCH).min(RECORDS))
            .map(|i| {
                Record::new(format!("{{\"view\":{i},\"page\":\"/item/{}\"}}", i % 37))
                    .with_key(format!("user-{}", i % USERS))
                    .with_header("source", Some(b"quickstart".to_vec()))
            })
            .collect();
        sent += batch.len();
        topic.send_batch(batch)?;
    }
    topic.flush()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "appended {RECORDS} keyed records in batches of up to {BATCH} and flushed: {:.0} records/s",
        RECORDS as f64 / secs
    );

    let first = summarize(&topic)?;
    print_summary("read back", &first);

    store.close()?;
    println!("closed the store");

    let store = Store::open(&dir)?;
    let topic = store.topic(TOPIC)?;
    let second = summarize(&topic)?;
    print_summary("after reopen", &second);
    if first != second {
        return Err("reads after reopen differ from reads before".into());
    }
    println!("reads after reopen are identical");

    let p = topic.partition(0)?;
    if let Some(r) = p
        .read(p.log_end_offset().saturating_sub(1), 4096)?
        .records()
        .next()
    {
        println!(
            "last record of {}: offset {} key {} value {}",
            p.name(),
            r.offset(),
            String::from_utf8_lossy(r.key().unwrap_or_default()),
            String::from_utf8_lossy(r.value().unwrap_or_default()),
        );
    }
    println!("files of {}:", p.name());
    for seg in p.segments() {
        let (idx, tidx) = seg.index_entries()?;
        println!(
            "  {}  {} bytes, offsets {}..{}, {idx} index / {tidx} time-index entries",
            seg.log_path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            seg.size(),
            seg.base_offset(),
            seg.next_offset(),
        );
    }
    store.close()?;
    Ok(())
}

/// Per partition: (records, last offset + 1, views per user).
type Summary = Vec<(usize, u64, BTreeMap<String, usize>)>;

fn summarize(topic: &Topic) -> seglog::Result<Summary> {
    let mut out = Vec::new();
    for p in topic.partitions() {
        let mut count = 0;
        let mut per_user = BTreeMap::new();
        let mut records = p.records_from(p.log_start_offset());
        for r in records.by_ref() {
            count += 1;
            let user = String::from_utf8_lossy(&r?.key.unwrap_or_default()).into_owned();
            *per_user.entry(user).or_insert(0) += 1;
        }
        out.push((count, records.position(), per_user));
    }
    Ok(out)
}

fn print_summary(what: &str, s: &Summary) {
    let total: usize = s.iter().map(|p| p.0).sum();
    let users: usize = s.iter().map(|p| p.2.len()).sum();
    println!("{what}: {total} records from {users} users");
    for (i, (count, end, per_user)) in s.iter().enumerate() {
        println!(
            "  partition {i}: {count} records (log end offset {end}), {} users",
            per_user.len()
        );
    }
}
