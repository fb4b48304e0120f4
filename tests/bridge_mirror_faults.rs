//! Mirror faults found in review (issue 13), each of which failed before its fix: local
//! retention or compaction between a send and the next commit (records were skipped, now
//! none is), a resync code from one broker of several (a panic), a retriable error that
//! never clears (retried with no pause, forever), and an import fed a corrupt batch length
//! (waited for forever). The first two run against Tansu and print why and return when
//! Python, kafka-python or Tansu is missing; the others use a scripted two-broker cluster
//! written here.
#![cfg(feature = "kafka")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::kafka::Broker;
use seglog::bridge::{Import, ImportConfig, Mirror, MirrorConfig};
use seglog::{Partition, Record, Store, StoreConfig, TopicConfig};

fn open(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().maintenance_interval(None)).unwrap()
}

fn value(i: u64) -> String {
    format!("value-{i}")
}

/// A mirror of `topic` that commits only in `new` (and `catch_up`): what it sends between
/// is acknowledged but not committed.
fn uncommitted_mirror(broker: &Broker, topic: &str) -> MirrorConfig {
    MirrorConfig::new(broker.bootstrap())
        .topic(topic)
        .create_topics(true)
        .timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(30))
        .commit_interval(Duration::from_secs(3600))
}

/// Steps `mirror` until it has sent `records` in all, exactly.
fn send_until(mirror: &mut Mirror, records: u64, what: &str) {
    while mirror.totals().records < records {
        mirror.step(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(mirror.totals().records, records, "{what}");
}

/// A compacted topic of one partition with one batch per entry of `batches`: record
/// values are the key and the batch's number (`a0`, `b0`, ... `a1`, ...).
fn compacted(store: &Store, topic: &str, batches: &[[&str; 4]]) -> Partition {
    let cfg = TopicConfig::default()
        .cleanup_policy(seglog::CleanupPolicy::Compact)
        .segment_bytes(128);
    let p = store.create_topic(topic, cfg).unwrap().partitions()[0].clone();
    for (n, keys) in batches.iter().enumerate() {
        let recs: Vec<Record> = keys
            .iter()
            .map(|k| Record::new(format!("{k}{n}")).with_key(*k))
            .collect();
        p.append(&recs).unwrap();
    }
    p.flush().unwrap();
    p
}

/// The values the broker holds in `topic`'s partition 0, as text.
fn remote_values(broker: &Broker, topic: &str) -> Vec<String> {
    broker.client().consume(topic, None)[0]
        .records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect()
}

/// A mirror acknowledged records past its last commit, then stopped (killed, or simply
/// dropped: nothing commits on drop). While it was down, retention (here
/// `delete_records_before`) removed records it had sent but not committed. Counting the
/// broker's records against the local ones no longer tells which were sent, so the
/// restarted mirror sends again from the new log start: nothing is skipped, and the
/// broker gets the unacknowledged window twice (before the fix, records never sent were
/// counted as sent and lost).
#[test]
fn retention_between_send_and_commit_sends_again_rather_than_skip() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("ret", TopicConfig::default().partitions(1))
        .unwrap();
    let p = &t.partitions()[0];
    // 100 batches of one record each.
    for i in 0..100u64 {
        p.append(&[Record::new(value(i))]).unwrap();
    }
    p.flush().unwrap();
    {
        // Commits (local 0, remote 0) in `new`, then sends without committing.
        let mut mirror = Mirror::new(&store, uncommitted_mirror(&broker, "ret")).unwrap();
        send_until(&mut mirror, 50, "0..50 sent");
        // Dropped: no commit past (0, 0).
    }
    assert_eq!(
        store.committed_offsets("seglog-mirror", "ret").unwrap()[&0],
        0
    );
    // Retention removes 30 records that were mirrored (but not committed).
    p.delete_records_before(30).unwrap();

    let mut mirror = Mirror::new(&store, uncommitted_mirror(&broker, "ret")).unwrap();
    mirror.catch_up().unwrap();
    let values = remote_values(&broker, "ret");
    let expected: Vec<String> = (0..100).map(value).collect();
    let missing: Vec<&String> = expected.iter().filter(|v| !values.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "the broker lacks {} records that were never sent: {:?}..",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // What was sent before (0..50), then everything from the new log start.
    let resent: Vec<String> = (0..50).chain(30..100).map(value).collect();
    assert_eq!(values, resent);
}

/// The same window (acknowledged, not committed) with the local cleaner running in it: a
/// batch the mirror sent whole is thinned before the restart. Batches A..E of four
/// records: A = a b c d, B = a b e f, C = g h i j, D = a b k l, E = m n o p. The mirror
/// sends A and B (8 records); compaction thins A to c d and B to e f. Before the fix the
/// restart counted A (2) + B (2) + C (4) = 8 as sent and C was lost; now the moved first
/// dirty offset says the records changed, and the mirror sends again from its commit.
#[test]
fn compaction_between_send_and_commit_loses_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let p = compacted(
        &store,
        "cmp",
        &[
            ["a", "b", "c", "d"],
            ["a", "b", "e", "f"],
            ["g", "h", "i", "j"],
            ["a", "b", "k", "l"],
            ["m", "n", "o", "p"],
        ],
    );
    {
        let mut mirror = Mirror::new(&store, uncommitted_mirror(&broker, "cmp")).unwrap();
        send_until(&mut mirror, 8, "A and B sent");
    }
    p.compact_now().unwrap();
    let mut mirror = Mirror::new(&store, uncommitted_mirror(&broker, "cmp")).unwrap();
    mirror.catch_up().unwrap();
    let values = remote_values(&broker, "cmp");
    for v in ["g2", "h2", "i2", "j2"] {
        assert!(
            values.iter().any(|x| x == v),
            "{v} (batch C, never sent before the restart) is missing remotely: {values:?}"
        );
    }
}

/// A scripted two-broker "cluster" speaking just enough of the protocol for the mirror:
/// ApiVersions, Metadata (partition 0 led by broker 0, partition 1 by broker 1),
/// InitProducerId, Fetch (the high watermark only) and Produce. Broker 0 answers its first
/// Produce with OUT_OF_ORDER_SEQUENCE_NUMBER; everything else succeeds.
mod fake {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    /// How Produce requests are answered.
    #[derive(Clone, Copy, PartialEq)]
    pub enum Mode {
        /// Broker 0's first Produce: OUT_OF_ORDER_SEQUENCE_NUMBER.
        OutOfOrderOnce,
        /// Every Produce: NOT_LEADER_OR_FOLLOWER (retriable, the leader unchanged).
        NotLeaderAlways,
        /// Every Fetch: high watermark 5, and records whose first batch claims a length
        /// of 2^31 - 1 bytes.
        CorruptFetch,
        /// Broker 0 dies at its first Produce (the connection drops unanswered, and every
        /// later request to it too); the metadata then names broker 1 as every leader.
        FailOver,
    }

    pub struct Cluster {
        pub ports: [u16; 2],
        /// Produce requests received.
        pub produces: Arc<std::sync::atomic::AtomicU64>,
        /// Records acknowledged per partition (the high watermark).
        pub hw: Arc<Mutex<[i64; 2]>>,
    }

    pub fn start(topic: &'static str, mode: Mode) -> Cluster {
        let produces = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let l0 = TcpListener::bind("127.0.0.1:0").unwrap();
        let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
        let ports = [
            l0.local_addr().unwrap().port(),
            l1.local_addr().unwrap().port(),
        ];
        let hw = Arc::new(Mutex::new([0i64; 2]));
        let refused_once = Arc::new(AtomicBool::new(false));
        for (id, l) in [l0, l1].into_iter().enumerate() {
            let hw = Arc::clone(&hw);
            let refused_once = Arc::clone(&refused_once);
            let produces = Arc::clone(&produces);
            std::thread::spawn(move || {
                for s in l.incoming() {
                    let Ok(s) = s else { return };
                    let hw = Arc::clone(&hw);
                    let refused_once = Arc::clone(&refused_once);
                    let produces = Arc::clone(&produces);
                    std::thread::spawn(move || {
                        serve(s, id as i32, ports, topic, hw, refused_once, mode, produces)
                    });
                }
            });
        }
        Cluster {
            ports,
            produces,
            hw,
        }
    }

    #[allow(clippy::too_many_arguments)] // one connection's share of the cluster state
    fn serve(
        mut s: TcpStream,
        id: i32,
        ports: [u16; 2],
        topic: &'static str,
        hw: Arc<Mutex<[i64; 2]>>,
        refused_once: Arc<AtomicBool>,
        mode: Mode,
        produces: Arc<std::sync::atomic::AtomicU64>,
    ) {
        loop {
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).is_err() {
                return;
            }
            let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).unwrap();
            let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
            let version = i16::from_be_bytes([body[2], body[3]]);
            let mut body = Bytes::from(body);
            let head =
                RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
            let mut out = vec![0u8; 4];
            ResponseHeader::default()
                .with_correlation_id(head.correlation_id)
                .encode(&mut out, key.response_header_version(version))
                .unwrap();
            let name = TopicName(StrBytes::from_static_str(topic));
            if mode == Mode::FailOver && id == 0 {
                let dead = refused_once.load(Ordering::SeqCst);
                if dead || key == ApiKey::Produce {
                    refused_once.store(true, Ordering::SeqCst);
                    return;
                }
            }
            let failed_over = mode == Mode::FailOver && refused_once.load(Ordering::SeqCst);
            match key {
                ApiKey::ApiVersions => {
                    let v = |k: ApiKey, max: i16| {
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(0)
                            .with_max_version(max)
                    };
                    ApiVersionsResponse::default()
                        .with_api_keys(vec![
                            v(ApiKey::Produce, 12),
                            v(ApiKey::Fetch, 12),
                            v(ApiKey::Metadata, 12),
                            v(ApiKey::InitProducerId, 4),
                            v(ApiKey::ListOffsets, 7),
                            v(ApiKey::CreateTopics, 7),
                            v(ApiKey::ApiVersions, 3),
                        ])
                        .encode(&mut out, version)
                        .unwrap();
                }
                ApiKey::Metadata => {
                    let broker = |i: i32| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(i))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(ports[i as usize] as i32)
                    };
                    let part = |i: i32| {
                        MetadataResponsePartition::default()
                            .with_partition_index(i)
                            .with_leader_id(BrokerId(if failed_over { 1 } else { i }))
                            .with_replica_nodes(vec![BrokerId(i)])
                            .with_isr_nodes(vec![BrokerId(i)])
                    };
                    MetadataResponse::default()
                        .with_brokers(vec![broker(0), broker(1)])
                        .with_controller_id(BrokerId(0))
                        .with_topics(vec![MetadataResponseTopic::default()
                            .with_name(Some(name.clone()))
                            .with_partitions(vec![part(0), part(1)])])
                        .encode(&mut out, version)
                        .unwrap();
                }
                ApiKey::InitProducerId => {
                    InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(1000 + id as i64))
                        .with_producer_epoch(0)
                        .encode(&mut out, version)
                        .unwrap();
                }
                ApiKey::Fetch => {
                    let req = FetchRequest::decode(&mut body, version).unwrap();
                    let (hw, records) = match mode {
                        Mode::CorruptFetch => {
                            let mut batch = vec![0u8; 61];
                            batch[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
                            batch[16] = 2; // magic
                            ([5, 5], Bytes::from(batch))
                        }
                        _ => (*hw.lock().unwrap(), Bytes::new()),
                    };
                    let topics = req
                        .topics
                        .iter()
                        .map(|t| {
                            FetchableTopicResponse::default()
                                .with_topic(t.topic.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            PartitionData::default()
                                                .with_partition_index(p.partition)
                                                .with_high_watermark(hw[p.partition as usize])
                                                .with_last_stable_offset(hw[p.partition as usize])
                                                .with_records(Some(records.clone()))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    FetchResponse::default()
                        .with_responses(topics)
                        .encode(&mut out, version)
                        .unwrap();
                }
                ApiKey::Produce => {
                    let req = ProduceRequest::decode(&mut body, version).unwrap();
                    produces.fetch_add(1, Ordering::SeqCst);
                    let code = match mode {
                        Mode::OutOfOrderOnce
                            if id == 0 && !refused_once.swap(true, Ordering::SeqCst) =>
                        {
                            45
                        }
                        Mode::OutOfOrderOnce | Mode::CorruptFetch | Mode::FailOver => 0,
                        Mode::NotLeaderAlways => 6,
                    };
                    let mut hw = hw.lock().unwrap();
                    let topics = req
                        .topic_data
                        .iter()
                        .map(|t| {
                            TopicProduceResponse::default()
                                .with_name(t.name.clone())
                                .with_partition_responses(
                                    t.partition_data
                                        .iter()
                                        .map(|p| {
                                            let r = PartitionProduceResponse::default()
                                                .with_index(p.index);
                                            if code != 0 {
                                                return r
                                                    .with_error_code(code)
                                                    .with_base_offset(-1);
                                            }
                                            let records = p.records.as_ref().unwrap();
                                            let count = i32::from_be_bytes(
                                                records[57..61].try_into().unwrap(),
                                            );
                                            let base = hw[p.index as usize];
                                            hw[p.index as usize] += count as i64;
                                            r.with_base_offset(base)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    ProduceResponse::default()
                        .with_responses(topics)
                        .encode(&mut out, version)
                        .unwrap();
                }
                other => panic!("fake broker: unexpected {other:?}"),
            }
            let n = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&n.to_be_bytes());
            s.write_all(&out).unwrap();
        }
    }
}

/// Two partitions led by two brokers: broker 0 answers OUT_OF_ORDER_SEQUENCE_NUMBER. Before
/// the fix `send_to` reconciled at once, clearing every lane's queue, and the round went on
/// to broker 1 with the lanes it grouped before: a panic on a broker's answer. Now the
/// round stops and the next step reconciles.
#[test]
fn a_resync_code_from_one_broker_does_not_panic_the_round() {
    let cluster = fake::start("two", fake::Mode::OutOfOrderOnce);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("two", TopicConfig::default().partitions(2))
        .unwrap();
    for p in t.partitions() {
        p.append(&[Record::new("x"), Record::new("y")]).unwrap();
    }
    let cfg = MirrorConfig::new(format!("127.0.0.1:{}", cluster.ports[0]))
        .topic("two")
        .timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(10));
    let mut mirror = Mirror::new(&store, cfg).unwrap();
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mirror.catch_up()));
    let done = done.expect("the mirror does not panic on a broker's error code");
    done.unwrap();
    assert_eq!(*cluster.hw.lock().unwrap(), [2, 2]);
}

/// A retriable Produce error that a metadata refresh does not cure (here
/// NOT_LEADER_OR_FOLLOWER while the metadata still names the same leader; in real life
/// also NOT_ENOUGH_REPLICAS, KAFKA_STORAGE_ERROR...): the partition pauses between
/// attempts (50 ms doubling to 1 s) and `catch_up` gives up with the error once the
/// delivery timeout has passed. Before the fix it retried with no pause, forever (304,035
/// requests in 30 s). The 30 s bound only keeps a regression from hanging the suite.
#[test]
fn a_persistent_retriable_produce_error_backs_off_and_gives_up() {
    let cluster = fake::start("two", fake::Mode::NotLeaderAlways);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("two", TopicConfig::default().partitions(2))
        .unwrap();
    for p in t.partitions() {
        p.append(&[Record::new("x")]).unwrap();
    }
    let cfg = MirrorConfig::new(format!("127.0.0.1:{}", cluster.ports[0]))
        .topic("two")
        .timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(2));
    let mut mirror = Mirror::new(&store, cfg).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = mirror.catch_up().map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    let answer = rx.recv_timeout(Duration::from_secs(30));
    let n = cluster.produces.load(std::sync::atomic::Ordering::SeqCst);
    println!("{n} produce requests; catch_up: {answer:?}");
    assert!(
        answer.is_ok(),
        "catch_up still retrying 30 s into a 2 s delivery timeout, after {n} produce requests"
    );
    assert!(answer.unwrap().is_err());
    assert!(n < 200, "{n} produce requests: retried without backoff");
}

/// A fetch answer whose batch claims a length no batch has (2^31 - 1 bytes): the import
/// reports it, naming the partition and the length, instead of waiting forever for the
/// rest of a batch that never comes.
#[test]
fn an_import_reports_a_corrupt_batch_length() {
    let _cluster = fake::start("two", fake::Mode::CorruptFetch);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = ImportConfig::new(format!("127.0.0.1:{}", _cluster.ports[0]))
        .topic("two")
        .timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_millis(300));
    let mut import = Import::new(&store, cfg).unwrap();
    let err = import.catch_up().unwrap_err();
    assert!(
        matches!(&err, seglog::Error::Kafka { reason, .. }
            if reason.contains("two-") && reason.contains(&i32::MAX.to_string())),
        "{err}"
    );
    assert_eq!(
        store
            .topic("two")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        0
    );
}

/// Review 13b: the queue holds bytes read before a compaction pass; a commit after the
/// pass records the new first dirty offset; a queued (pre-compaction) batch is then sent
/// and acknowledged, and the mirror stops. Batches A = w x y z, B = a b c d, C = g h i j,
/// D = a b c d, E = m n o p: the pass removes B. The restart sees no change in the first
/// dirty offset (the commit already has it), counts the broker's 4 extra records (B, sent
/// whole) against the compacted log, whose next batch is C, and skips C, never sent —
/// before the fix. Now a commit records the first dirty offset from before the queued
/// batches were read, so the restart sees the change and sends again.
#[test]
fn compaction_before_a_commit_of_queued_batches_loses_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let p = compacted(
        &store,
        "cmpq",
        &[
            ["w", "x", "y", "z"],
            ["a", "b", "c", "d"],
            ["g", "h", "i", "j"],
            ["a", "b", "c", "d"],
            ["m", "n", "o", "p"],
        ],
    );
    {
        let mut mirror = Mirror::new(&store, uncommitted_mirror(&broker, "cmpq")).unwrap();
        // One round: every batch is queued, A is sent.
        send_until(&mut mirror, 4, "A sent");
        assert!(p.compact_now().unwrap().cleaned, "the pass ran");
        // Commits local 4 with the first dirty offset after the pass.
        mirror.commit().unwrap();
        // B, as read before the pass, goes.
        send_until(&mut mirror, 8, "A and B sent");
    }
    let mut mirror = Mirror::new(&store, uncommitted_mirror(&broker, "cmpq")).unwrap();
    mirror.catch_up().unwrap();
    let values = remote_values(&broker, "cmpq");
    for v in ["g2", "h2", "i2", "j2"] {
        assert!(
            values.iter().any(|x| x == v),
            "{v} (batch C, never sent before the restart) is missing remotely: {values:?}"
        );
    }
}

/// Review 13b: broker 0, leader of partition 0, dies mid-run (the connection drops, and
/// reconnects too) and the cluster fails over: the metadata names broker 1. An I/O
/// failure forgets neither the leader nor refreshes metadata (only retriable codes and
/// the three resync codes do), so the mirror kept sending to the dead broker until the
/// delivery timeout and gave up, while the new leader was there all along. Now a lost
/// connection or a failed connect forgets the leader, and the retry finds broker 1.
#[test]
fn a_dead_leader_is_followed_to_the_new_one() {
    let cluster = fake::start("two", fake::Mode::FailOver);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("two", TopicConfig::default().partitions(2))
        .unwrap();
    for p in t.partitions() {
        p.append(&[Record::new("x"), Record::new("y")]).unwrap();
    }
    let cfg = MirrorConfig::new(format!(
        "127.0.0.1:{},127.0.0.1:{}",
        cluster.ports[0], cluster.ports[1]
    ))
    .topic("two")
    .timeout(Duration::from_secs(2))
    .delivery_timeout(Duration::from_secs(5));
    let mut mirror = Mirror::new(&store, cfg).unwrap();
    let done = mirror.catch_up();
    assert!(
        done.is_ok(),
        "the mirror gave up instead of following the new leader: {done:?}"
    );
    assert_eq!(*cluster.hw.lock().unwrap(), [2, 2]);
}
