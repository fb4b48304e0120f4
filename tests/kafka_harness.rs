//! Self-test of the Kafka test harness (tests/common/kafka.rs) against a real broker:
//! Tansu, driven by kafka-python. Each test skips, saying why, without python3,
//! kafka-python or Tansu.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka::{
    b64_decode, b64_encode, Broker, Codec, ConsumedRecord, KafkaClient, ProduceOptions,
    ProduceRecord,
};

/// Records for `partitions` partitions: keys, null keys, null values, empty values, headers
/// (repeated names, empty values), explicit timestamps and binary bytes. `tag` tells the
/// runs apart.
fn records(tag: &str, partitions: i32) -> Vec<ProduceRecord> {
    (0..12)
        .map(|i| {
            let partition = i % partitions;
            ProduceRecord {
                partition,
                key: (i % 4 != 1).then(|| format!("{tag}-key-{i}").into_bytes()),
                value: match i % 5 {
                    2 => None,
                    3 => Some(Vec::new()),
                    // Compressible (kafka-python sends a batch uncompressed when the codec
                    // does not shrink it), and every byte value.
                    _ => {
                        let mut v = format!("{tag} value {i}; ")
                            .repeat(20 + i as usize)
                            .into_bytes();
                        v.extend(0..=255u8);
                        Some(v)
                    }
                },
                headers: match i % 3 {
                    0 => vec![],
                    1 => vec![("h".into(), format!("{tag}-{i}").into_bytes())],
                    _ => vec![
                        ("dup".into(), b"one".to_vec()),
                        ("dup".into(), Vec::new()),
                        ("bin".into(), vec![0, 255, 10, 13]),
                    ],
                },
                timestamp_ms: (i % 2 == 0).then_some(1_700_000_000_000 + i as i64),
            }
        })
        .collect()
}

/// Produces `sent` with every codec kafka-python has here into a 3-partition topic and
/// reads it all back: the same records, at the offsets the producer was told, dense from 0.
#[test]
fn every_codec_round_trips() {
    let Some(broker) = Broker::start() else {
        return;
    };
    eprintln!("broker started in {:?}", broker.startup_time());
    let client = broker.client();
    let codecs = client.codecs();
    for missing in Codec::ALL.iter().filter(|c| !codecs.contains(c)) {
        eprintln!(
            "codec {:?} not tested: kafka-python has no library for it here",
            missing
        );
    }
    client.create_topic("rt", 3, &[]);

    // What each partition should hold, by offset, and with which codec it was sent.
    let mut expected: BTreeMap<i32, Vec<(i64, ProduceRecord)>> = BTreeMap::new();
    let mut sent_with: BTreeMap<(i32, i64), Codec> = BTreeMap::new();
    for codec in &codecs {
        let sent = records(&format!("{codec:?}"), 3);
        // Linger so that several records of a partition share a (compressed) batch.
        let options = ProduceOptions {
            codec: *codec,
            linger_ms: Some(20),
            ..ProduceOptions::default()
        };
        let produced = client.produce("rt", &options, &sent);
        assert_eq!(produced.len(), sent.len());
        for (p, r) in produced.iter().zip(sent) {
            assert_eq!(p.partition, r.partition);
            sent_with.insert((p.partition, p.offset), *codec);
            expected.entry(p.partition).or_default().push((p.offset, r));
        }
    }

    let consumed = client.consume("rt", None);
    assert_eq!(
        consumed.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for part in consumed {
        let want = &expected[&part.partition];
        // Offsets are dense from 0 and the producer was told each record's offset.
        let offsets: Vec<i64> = want.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..want.len() as i64).collect::<Vec<_>>());
        assert_eq!(part.high_watermark, want.len() as i64);
        assert_eq!(
            part.records.len(),
            want.len(),
            "partition {}",
            part.partition
        );
        for (got, (offset, sent)) in part.records.iter().zip(want) {
            assert_eq!(got.offset, *offset);
            assert_record(got, sent);
        }
    }

    // The broker stores the batches as sent: each compressed with its producer's codec.
    let mut codecs_seen = Vec::new();
    for part in client.batches("rt", &[0, 1, 2]) {
        let records: i32 = part.batches.iter().map(|b| b.records).sum();
        assert_eq!(records as i64, part.high_watermark);
        for b in &part.batches {
            let codec = sent_with[&(part.partition, b.base_offset)];
            assert_eq!(b.compression, codec, "batch at {}", b.base_offset);
            let length = i32::from_be_bytes(b.bytes[8..12].try_into().unwrap());
            assert_eq!(b.bytes.len(), 12 + length as usize);
            codecs_seen.push(b.compression);
        }
    }
    for codec in &codecs {
        assert!(codecs_seen.contains(codec), "no batch with {codec:?}");
    }
}

fn assert_record(got: &ConsumedRecord, sent: &ProduceRecord) {
    assert_eq!(got.key, sent.key, "key at {}", got.offset);
    assert_eq!(got.value, sent.value, "value at {}", got.offset);
    let headers: Vec<(String, Option<Vec<u8>>)> = sent
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Some(v.clone())))
        .collect();
    assert_eq!(got.headers, headers, "headers at {}", got.offset);
    if let Some(ts) = sent.timestamp_ms {
        assert_eq!(got.timestamp_ms, ts, "timestamp at {}", got.offset);
    }
}

/// Reading chosen partitions returns only those, in the order asked.
#[test]
fn consume_chosen_partitions() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("some", 3, &[]);
    client.produce("some", &ProduceOptions::default(), &records("s", 3));
    let consumed = client.consume("some", Some(&[2, 0]));
    assert_eq!(
        consumed.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [2, 0]
    );
    assert!(consumed.iter().all(|p| p.records.len() == 4));
}

/// Creating a topic that exists fails unless allowed.
#[test]
fn create_existing_topic() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    assert_eq!(client.try_create_topic("x", 2, &[], false), Ok(true));
    let err = client.try_create_topic("x", 2, &[], false).unwrap_err();
    assert!(err.contains("TopicAlreadyExists"), "{err}");
    assert_eq!(client.try_create_topic("x", 2, &[], true), Ok(false));
}

/// After a restart the broker answers on the same port, empty (memory engine), and takes
/// new records from offset 0.
#[test]
fn restart_comes_back_on_the_same_port() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let client = broker.client();
    client.create_topic("r", 1, &[]);
    let one = [ProduceRecord {
        value: Some(b"v".to_vec()),
        ..ProduceRecord::default()
    }];
    client.produce("r", &ProduceOptions::default(), &one);
    let port = broker.port();

    broker.kill();
    assert!(!broker.is_running());
    let quick = client
        .clone()
        .with_bootstrap_timeout(Duration::from_millis(500));
    assert!(quick.try_consume("r", None).is_err());

    broker.restart();
    broker.assert_running();
    eprintln!("broker restarted in {:?}", broker.startup_time());
    assert_eq!(broker.port(), port);
    assert!(!client.api_versions().is_empty());
    // The memory engine forgot the topic: creating it again succeeds.
    assert_eq!(client.try_create_topic("r", 1, &[], false), Ok(true));
    let produced = client.produce("r", &ProduceOptions::default(), &one);
    assert_eq!(produced[0].offset, 0);
    assert_eq!(client.consume("r", None)[0].records.len(), 1);
}

/// The broker serves the APIs a bridge needs, at versions of the record-batch era.
#[test]
fn api_versions_listed() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let apis = broker.client().api_versions();
    for a in &apis {
        eprintln!("{:>3} {:<28} {}..={}", a.api_key, a.name, a.min, a.max);
    }
    for (key, min_max) in [(0, 3), (1, 4), (3, 1), (18, 0), (19, 0), (22, 0)] {
        let api = apis.iter().find(|a| a.api_key == key);
        assert!(
            api.is_some_and(|a| a.max >= min_max),
            "api {key} missing or below v{min_max}: {api:?}"
        );
    }
}

/// A client pointed at a port nobody serves fails with kafka-python's error, no panic.
#[test]
fn client_error_is_returned() {
    let Some(_broker) = Broker::start() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = KafkaClient::new(&format!("127.0.0.1:{port}"))
        .with_bootstrap_timeout(Duration::from_millis(500));
    let err = client.try_create_topic("t", 1, &[], false).unwrap_err();
    assert!(err.starts_with("kclient.py create: "), "{err}");
}

/// The base64 helpers agree with the standard's test vectors (RFC 4648 section 10) and
/// round-trip every length.
#[test]
fn base64_helpers() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64_encode(plain.as_bytes()), encoded);
        assert_eq!(b64_decode(encoded).unwrap(), plain.as_bytes());
    }
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    for n in 0..bytes.len() {
        assert_eq!(b64_decode(&b64_encode(&bytes[..n])).unwrap(), &bytes[..n]);
    }
    assert_eq!(b64_decode("Zg=!"), None);
    assert_eq!(b64_decode("Z"), None);
}
