//! The import (Kafka → seglog) against a real Kafka-protocol broker (Tansu), fed and
//! checked with an independent client (kafka-python): the local records are what the
//! broker serves, at the same offsets; the local batches are the broker's, byte for byte,
//! compressed ones still compressed; an import run again, or killed and run again, brings
//! every record exactly once. Also the example binaries `mirror` and `import` as processes.
//! Every test prints why and returns when Python, kafka-python or Tansu is missing.
#![cfg(feature = "kafka")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{
    fill, local_records, Broker, Codec, ProduceOptions, ProduceRecord, StoredBatch, T0,
};
use seglog::bridge::{Import, ImportConfig, Mirror, MirrorConfig};
use seglog::record::{Batch, BatchIter, BATCH_HEADER_SIZE};
use seglog::{Error, Partition, Store, StoreConfig, TopicConfig};

fn open(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap()
}

/// Record `i` for `partition`: some keys null (never with the value), some values null and some empty, headers
/// on some, an explicit timestamp, and a value that compresses well (kafka-python sends a
/// batch uncompressed when its codec does not shrink it).
fn produced(i: u64, partition: i32) -> ProduceRecord {
    let mut r = ProduceRecord {
        partition,
        // kafka-python refuses a record with neither key nor value.
        key: (!i.is_multiple_of(5) || i.is_multiple_of(7))
            .then(|| format!("key-{}", i % 23).into_bytes()),
        value: Some(format!("value-{i}-{}", "abcd".repeat(10 + (i % 13) as usize)).into_bytes()),
        headers: Vec::new(),
        timestamp_ms: Some(T0 + i as i64),
    };
    if i.is_multiple_of(7) {
        r.value = None;
    } else if i.is_multiple_of(11) {
        r.value = Some(Vec::new());
    }
    if i.is_multiple_of(3) {
        r.headers
            .push(("trace".into(), format!("t{i}").into_bytes()));
    }
    if i.is_multiple_of(4) {
        r.headers.push(("".into(), Vec::new()));
        r.headers.push(("dup".into(), b"1".to_vec()));
        r.headers.push(("dup".into(), b"2".to_vec()));
    }
    r
}

/// Records `from..from + n` of each of `partitions`, interleaved.
fn records(partitions: i32, from: u64, n: u64) -> Vec<ProduceRecord> {
    (from..from + n)
        .flat_map(|i| (0..partitions).map(move |p| produced(i, p)))
        .collect()
}

/// Every batch of `p`, raw, as stored.
fn local_batches(p: &Partition) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let f = p.read(next, 1 << 20).unwrap();
        let before = out.len();
        out.extend(f.batches().map(|b: Batch<'_>| b.as_bytes().to_vec()));
        assert!(out.len() > before, "no batch read at {next}");
        next = Batch::parse(out.last().unwrap()).unwrap().last_offset() + 1;
    }
    out
}

fn config(broker: &Broker, topic: &str) -> ImportConfig {
    ImportConfig::new(broker.bootstrap())
        .topic(topic)
        .timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(30))
}

/// The local topic `topic` of `store` holds exactly what kafka-python reads remotely:
/// same records at the same offsets, log ends at the high watermarks.
fn assert_same_records(store: &Store, broker: &Broker, topic: &str) {
    let got = broker.consume_all(topic);
    let t = store.topic(topic).unwrap();
    assert_eq!(
        t.partition_count() as usize,
        got.len(),
        "{topic}: partitions"
    );
    for p in t.partitions() {
        let r = &got[&(p.number() as i32)];
        assert_eq!(
            local_records(p),
            r.records,
            "{topic}-{}: records",
            p.number()
        );
        assert_eq!(
            p.log_end_offset(),
            r.high_watermark as u64,
            "{topic}-{}",
            p.number()
        );
    }
}

/// The local batches of `topic` are the broker's, byte for byte: the import appends the
/// fetched bytes as they are. Nothing differs, not even the partition leader epoch (which
/// a broker may stamp on append, Tansu with 0, and a fetch returns as stored) or the base
/// offset (the broker's, kept with `OffsetMode::Keep`); so the CRC is the broker's too.
/// Returns the broker's batches, per partition.
fn assert_same_batches(store: &Store, broker: &Broker, topic: &str) -> Vec<Vec<StoredBatch>> {
    let t = store.topic(topic).unwrap();
    let numbers: Vec<i32> = t.partitions().iter().map(|p| p.number() as i32).collect();
    let stored = broker.client().batches(topic, &numbers);
    let mut out = Vec::new();
    for (p, sp) in t.partitions().iter().zip(stored) {
        let mine = local_batches(p);
        assert_eq!(
            mine.len(),
            sp.batches.len(),
            "{topic}-{}: one local batch per remote one",
            p.number()
        );
        for (a, b) in mine.iter().zip(&sp.batches) {
            let at = b.base_offset;
            assert_eq!(a.len(), b.bytes.len(), "{topic}-{} batch {at}", p.number());
            let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b.bytes[i]).collect();
            assert!(
                differ.is_empty(),
                "{topic}-{} batch {at}: bytes {differ:?} differ",
                p.number()
            );
        }
        out.push(sp.batches);
    }
    out
}

/// Keys, null keys, null and empty values, headers, timestamps, three partitions, with
/// no compression and with each codec kafka-python has here: one catch-up brings exactly
/// what kafka-python reads, the batches byte for byte, compressed ones in their codec.
#[test]
fn every_codec_imports_byte_for_byte() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    for codec in client.codecs() {
        let topic = format!("in-{}", codec.name().unwrap_or("none"));
        client.create_topic(&topic, 3, &[]);
        let opts = ProduceOptions {
            codec,
            linger_ms: Some(5),
            batch_size: Some(2048),
            ..ProduceOptions::default()
        };
        let sent = client.produce(&topic, &opts, &records(3, 0, 150));
        assert_eq!(sent.len(), 450);

        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut import = Import::new(&store, config(&broker, &topic)).unwrap();
        let done = import.catch_up().unwrap();
        assert_eq!((done.records, done.lag), (450, 0), "{topic}: {done:?}");
        assert_same_records(&store, &broker, &topic);
        let stored = assert_same_batches(&store, &broker, &topic);
        let batches: Vec<&StoredBatch> = stored.iter().flatten().collect();
        assert_eq!(done.batches, batches.len() as u64);
        assert!(
            batches.iter().any(|b| b.records > 1),
            "{topic}: batches of several records"
        );
        if codec != Codec::None {
            assert!(
                batches.iter().any(|b| b.compression == codec),
                "{topic}: kafka-python compressed some batches"
            );
        }
        // Codec numbers are Kafka's attribute bits, in `Codec::ALL` order.
        let t = store.topic(&topic).unwrap();
        for (p, remote) in t.partitions().iter().zip(&stored) {
            for (a, b) in local_batches(p).iter().zip(remote) {
                let codec = Batch::parse(a).unwrap().header().compression();
                assert_eq!(Codec::ALL[codec as usize], b.compression, "{topic}");
            }
        }
        // Opened again, the store has it all (flushed by catch_up).
        drop(import);
        store.close().unwrap();
        let store = open(dir.path());
        assert_same_records(&store, &broker, &topic);
    }
}

/// More records produced remotely after an import: the next catch-up brings only those,
/// at the broker's offsets; one more finds nothing.
#[test]
fn importing_again_brings_only_the_new_records() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("again", 3, &[]);
    let opts = ProduceOptions::default();
    client.produce("again", &opts, &records(3, 0, 40));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut import = Import::new(&store, config(&broker, "again")).unwrap();
    assert_eq!(import.catch_up().unwrap().records, 120);

    let sent = client.produce("again", &opts, &records(3, 40, 25));
    assert!(sent.iter().all(|s| s.offset >= 40), "{sent:?}");
    let more = import.catch_up().unwrap();
    assert_eq!((more.records, more.lag), (75, 0), "{more:?}");
    assert_eq!(import.totals().records, 195);
    assert_same_records(&store, &broker, "again");
    assert_same_batches(&store, &broker, "again");
    assert_eq!(import.catch_up().unwrap().records, 0);

    // A new import of the same store starts from the local log end too.
    drop(import);
    client.produce("again", &opts, &records(3, 65, 5));
    let mut fresh = Import::new(&store, config(&broker, "again")).unwrap();
    assert_eq!(fresh.catch_up().unwrap().records, 15);
    assert_same_records(&store, &broker, "again");
}

/// An import process killed (SIGKILL) mid-way: the local log end is where the next one
/// resumes (a torn last batch is cut by recovery); every record arrives exactly once, at
/// its offset.
#[test]
fn a_killed_import_resumes_from_the_local_log_end() {
    if let Ok(dir) = std::env::var("SEGLOG_IMPORT_CHILD_DIR") {
        // The child: import in many small rounds, never flushing, until killed.
        let bootstrap = std::env::var("SEGLOG_IMPORT_CHILD_BOOTSTRAP").unwrap();
        let store = open(Path::new(&dir));
        let cfg = ImportConfig::new(bootstrap)
            .topic("killed")
            .fetch_bytes(600);
        let mut import = Import::new(&store, cfg).unwrap();
        loop {
            let p = import.step(Duration::from_millis(10)).unwrap();
            if p.records > 0 {
                common::child::report(&format!("IMPORTED {}", import.totals().records));
            }
        }
    }
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("killed", 2, &[]);
    let opts = ProduceOptions {
        batch_size: Some(1024),
        linger_ms: Some(5),
        ..ProduceOptions::default()
    };
    let total = client.produce("killed", &opts, &records(2, 0, 1500)).len() as u64;
    let dir = tempfile::tempdir().unwrap();

    let child = common::child::spawn_lines(
        common::child::helper("a_killed_import_resumes_from_the_local_log_end")
            .env("SEGLOG_IMPORT_CHILD_DIR", dir.path())
            .env("SEGLOG_IMPORT_CHILD_BOOTSTRAP", broker.bootstrap()),
    );
    let imported = loop {
        let (_, line) = child
            .lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the child imports");
        if let Some(n) = line.split("IMPORTED ").nth(1) {
            let n: u64 = n.trim().parse().unwrap();
            if n >= total / 3 {
                break n;
            }
        }
    };
    let killed = child.kill();
    assert!(
        !killed.status.success(),
        "killed, not exited: {}",
        killed.stderr
    );
    assert!(imported < total, "killed mid-way ({imported} of {total})");

    // A torn last batch, as a kill in the middle of a write leaves: the first half of the
    // next remote batch of partition 0 after what its last log file holds.
    let log = common::log_files(&common::partition_dir(dir.path(), "killed", 0))
        .pop()
        .unwrap();
    let bytes = std::fs::read(&log).unwrap();
    let end = BatchIter::new(&bytes)
        .map(|b| b.unwrap().1.last_offset() + 1)
        .last()
        .unwrap_or(0);
    let next = client.batches("killed", &[0]).remove(0).batches;
    let torn = next.iter().find(|b| b.base_offset as u64 == end);
    if torn.is_none() {
        eprintln!("partition 0 was complete at the kill: no torn batch added");
    }
    if let Some(b) = torn {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, &b.bytes[..b.bytes.len() / 2]).unwrap();
    }

    let store = open(dir.path());
    let t = store.topic("killed").unwrap();
    if torn.is_some() {
        assert_eq!(
            t.partition(0).unwrap().log_end_offset(),
            end,
            "torn batch cut"
        );
    }
    let before: u64 = t.partitions().iter().map(Partition::log_end_offset).sum();
    assert!(
        before >= imported && before < total,
        "the local logs kept what was appended: {before} of {total} ({imported} reported)"
    );
    let mut import = Import::new(&store, config(&broker, "killed")).unwrap();
    let rest = import.catch_up().unwrap();
    assert_eq!(
        rest.records,
        total - before,
        "nothing fetched twice: {rest:?}"
    );
    assert_same_records(&store, &broker, "killed");
    assert_same_batches(&store, &broker, "killed");
}

/// Continuous mode: `run` follows what kafka-python produces while it runs, until
/// stopped.
#[test]
fn continuous_mode_follows_remote_appends() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("follow", 3, &[]);
    let opts = ProduceOptions::default();
    client.produce("follow", &opts, &records(3, 0, 10));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = config(&broker, "follow").max_wait(Duration::from_millis(100));
    let mut import = Import::new(&store, cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || import.run(&stop).map(|p| (p, import)))
    };
    let mut n = 10;
    for round in 0..4 {
        client.produce("follow", &opts, &records(3, n, 5 + round));
        n += 5 + round;
    }
    let want = 3 * n;
    let t = store.topic("follow").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: u64 = t.partitions().iter().map(Partition::log_end_offset).sum();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline && !runner.is_finished(),
            "the import did not follow: {got} of {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let (done, import) = runner.join().unwrap().unwrap();
    assert_eq!((done.records, done.lag), (want, 0), "{done:?}");
    assert_eq!(import.totals().records, want);
    assert_same_records(&store, &broker, "follow");
    assert_same_batches(&store, &broker, "follow");
}

/// A broker that stops answering mid-import (SIGSTOP) and comes back: fetches time out,
/// connections are reopened, and the import goes on from the local log end: every record
/// exactly once.
#[test]
fn a_hung_broker_costs_neither_records_nor_duplicates() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("hang", 2, &[]);
    let opts = ProduceOptions {
        batch_size: Some(1024),
        linger_ms: Some(5),
        ..ProduceOptions::default()
    };
    let total = client.produce("hang", &opts, &records(2, 0, 600)).len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = config(&broker, "hang")
        .timeout(Duration::from_millis(500))
        .fetch_bytes(600);
    let mut import = Import::new(&store, cfg).unwrap();
    let t = store.topic("hang").unwrap();
    let (mut rounds, mut failures) = (0, 0);
    let imported = || {
        t.partitions()
            .iter()
            .map(Partition::log_end_offset)
            .sum::<u64>()
    };
    // The broker hangs once the import is under way (not after a number of rounds: how
    // many records a round brings depends on how the producer batched them).
    let mut paused_at = None;
    while imported() < total {
        rounds += 1;
        match paused_at {
            None if imported() > 0 => {
                broker.pause();
                paused_at = Some(rounds);
            }
            Some(at) if rounds == at + 4 => broker.resume(),
            _ => {}
        }
        match import.step(Duration::from_millis(10)) {
            Ok(_) => {}
            Err(Error::Kafka { .. }) => failures += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(rounds < 10_000, "no progress");
    }
    broker.resume();
    assert!(failures > 0, "the paused broker made fetches fail");
    assert_eq!(import.totals().records, total);
    assert_eq!(import.catch_up().unwrap().records, 0);
    assert_same_records(&store, &broker, "hang");
    assert_same_batches(&store, &broker, "hang");
}

/// kafka-python's producer is idempotent by default: its batches carry a producer id,
/// epoch and sequences, and the imported batches keep them (a non-idempotent producer's
/// batches have none, kept as such too).
#[test]
fn idempotent_producer_fields_are_kept() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("idem", 2, &[]);
    let small = ProduceOptions {
        batch_size: Some(512),
        linger_ms: Some(5),
        ..ProduceOptions::default()
    };
    client.produce("idem", &small, &records(2, 0, 60));
    let plain = ProduceOptions {
        idempotent: false,
        ..ProduceOptions::default()
    };
    client.produce("idem", &plain, &records(2, 60, 3));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    Import::new(&store, config(&broker, "idem"))
        .unwrap()
        .catch_up()
        .unwrap();
    let stored = assert_same_batches(&store, &broker, "idem");
    let t = store.topic("idem").unwrap();
    for (p, remote) in t.partitions().iter().zip(&stored) {
        let mine = local_batches(p);
        let idempotent: Vec<&StoredBatch> = remote.iter().filter(|b| b.producer_id >= 0).collect();
        assert!(
            idempotent.len() > 1,
            "several sequenced batches: {remote:?}"
        );
        assert!(remote.iter().any(|b| b.producer_id < 0), "and plain ones");
        // Sequences run on from batch to batch of the one producer.
        let mut next_seq = 0;
        for b in &idempotent {
            assert_eq!(b.producer_id, idempotent[0].producer_id);
            assert_eq!(b.base_sequence, next_seq, "{b:?}");
            next_seq += b.records;
        }
        for (a, b) in mine.iter().zip(remote) {
            let h = *Batch::parse(a).unwrap().header();
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (b.producer_id, b.producer_epoch, b.base_sequence)
            );
        }
    }
}

/// What cannot work is an `Error` naming the problem: no topic, a remote topic that does
/// not exist, a local topic with fewer partitions than the remote one, no broker, and a
/// remote topic that lost records the local one has (a broker restarted empty).
#[test]
fn refusals_are_errors_naming_the_problem() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let quick = |cfg: ImportConfig| {
        cfg.timeout(Duration::from_secs(2))
            .delivery_timeout(Duration::from_secs(5))
    };

    let err = Import::new(&store, ImportConfig::new(broker.bootstrap())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                field: "topics",
                ..
            }
        ),
        "{err}"
    );

    let err = Import::new(&store, quick(config(&broker, "missing"))).unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { reason, .. } if reason.contains("missing")),
        "{err}"
    );
    assert!(
        store.topic("missing").is_err(),
        "no local topic created for it"
    );

    let client = broker.client();
    client.create_topic("wide", 3, &[]);
    store
        .create_topic("wide", TopicConfig::default().partitions(2))
        .unwrap();
    let err = Import::new(&store, quick(config(&broker, "wide"))).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { value, expected, .. }
            if value == "wide" && expected.contains("3 partitions") && expected.contains("(2)")),
        "{err}"
    );

    let nowhere = ImportConfig::new("127.0.0.1:1")
        .topic("wide")
        .timeout(Duration::from_secs(2));
    let err = Import::new(&store, nowhere).unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { broker, .. } if broker.contains("127.0.0.1:1")),
        "{err}"
    );

    client.create_topic("lost", 2, &[]);
    client.produce("lost", &ProduceOptions::default(), &records(2, 0, 10));
    let mut import = Import::new(&store, quick(config(&broker, "lost"))).unwrap();
    assert_eq!(import.catch_up().unwrap().records, 20);
    broker.restart(); // the memory engine forgets everything
    let client = broker.client();
    client.create_topic("lost", 2, &[]);
    client.produce("lost", &ProduceOptions::default(), &records(2, 0, 3));
    let err = import.catch_up().unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { reason, .. } if reason.contains("lost-0") && reason.contains("lost records")),
        "{err}"
    );
    // Nothing local was touched.
    let t = store.topic("lost").unwrap();
    assert!(t.partitions().iter().all(|p| p.log_end_offset() == 10));
    let err = Import::new(&store, quick(config(&broker, "lost")))
        .unwrap()
        .catch_up()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Kafka { reason, .. } if reason.contains("lost records")),
        "{err}"
    );
}

/// seglog → Kafka → seglog: a dense topic mirrored, then imported into a second store,
/// comes back with every record at its offset and every batch's records section as it
/// was (only producer fields and the CRC are restamped by the mirror).
#[test]
fn a_mirrored_topic_imports_back_unchanged() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("round", TopicConfig::default().partitions(3))
        .unwrap();
    for (i, p) in t.partitions().iter().enumerate() {
        fill(p, 0, 50 + 31 * i as u64);
    }
    let mirrored = Mirror::new(
        &store,
        MirrorConfig::new(broker.bootstrap())
            .topic("round")
            .create_topics(true),
    )
    .unwrap()
    .catch_up()
    .unwrap();
    let back_dir = tempfile::tempdir().unwrap();
    let back = open(back_dir.path());
    let imported = Import::new(&back, config(&broker, "round"))
        .unwrap()
        .catch_up()
        .unwrap();
    assert_eq!(imported.records, mirrored.records);
    assert_eq!(imported.batches, mirrored.batches);
    let u = back.topic("round").unwrap();
    assert_eq!(u.partition_count(), 3);
    for (p, q) in t.partitions().iter().zip(u.partitions()) {
        assert_eq!(
            local_records(q),
            local_records(p),
            "partition {}",
            p.number()
        );
        assert_eq!(q.log_end_offset(), p.log_end_offset());
        let (mine, theirs) = (local_batches(p), local_batches(q));
        assert_eq!(mine.len(), theirs.len());
        for (a, b) in mine.iter().zip(&theirs) {
            assert_eq!(a[..8], b[..8], "base offset");
            assert_eq!(a[BATCH_HEADER_SIZE..], b[BATCH_HEADER_SIZE..], "records");
        }
    }
}

/// An example binary built next to this test binary (`cargo test` builds examples;
/// `cargo test --test bridge_import` alone does not: `cargo build --examples` then).
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: no example binary at {} (`cargo build --examples` builds it)",
            path.display()
        );
        None
    }
}

/// Runs `bin args`: (exit code, stdout, stderr).
fn run(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `examples/mirror` and `examples/import` as processes: `--once` moves the data and
/// exits 0 with its summary line; a usage error exits 2; no broker exits 1 saying so.
#[test]
fn the_example_binaries_move_data_and_exit_with_status() {
    let (Some(mirror), Some(import)) = (example("mirror"), example("import")) else {
        return;
    };
    for bin in [&mirror, &import] {
        let (code, _, err) = run(bin, &[]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("usage:"), "{err}");
        let (code, _, err) = run(bin, &["--data", "x", "--bogus"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--bogus"), "{err}");
    }
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (want, data) = {
        let store = open(dir.path());
        let t = store
            .create_topic("cli", TopicConfig::default().partitions(2))
            .unwrap();
        for p in t.partitions() {
            fill(p, 0, 40);
        }
        let want: Vec<_> = t.partitions().iter().map(local_records).collect();
        store.close().unwrap();
        (want, dir.path().to_str().unwrap().to_string())
    };
    let bootstrap = broker.bootstrap();
    let args = ["--data", &data, "--bootstrap", &bootstrap, "--topic", "cli"];
    let (code, out, err) = run(
        &mirror,
        &[&args[..], &["--once", "--create-topics"]].concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("mirror: 80 records"), "{out}");
    let got = broker.consume_all("cli");
    for (p, records) in want.iter().enumerate() {
        assert_eq!(&got[&(p as i32)].records, records);
    }

    let back = tempfile::tempdir().unwrap();
    let back_data = back.path().to_str().unwrap();
    let args = [
        "--data",
        back_data,
        "--bootstrap",
        &bootstrap,
        "--topic",
        "cli",
        "--once",
    ];
    let (code, out, err) = run(&import, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("import: 80 records"), "{out}");
    {
        let store = open(back.path());
        let t = store.topic("cli").unwrap();
        for (p, records) in t.partitions().iter().zip(&want) {
            assert_eq!(&local_records(p), records);
        }
    }
    // Again: nothing new.
    let (code, out, err) = run(&import, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("import: 0 records"), "{out}");

    for (bin, name) in [(&mirror, "mirror"), (&import, "import")] {
        let args = [
            "--data",
            &data,
            "--bootstrap",
            "127.0.0.1:1",
            "--topic",
            "cli",
            "--once",
        ];
        let (code, out, err) = run(bin, &args);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains(&format!("{name}: ")) && err.contains("127.0.0.1:1"),
            "{err}"
        );
    }
}
