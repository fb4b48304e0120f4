//! `Partition::append_raw` and the forwarding helpers on `Batch`: Kafka's own bytes appended
//! with `OffsetMode::Keep` stay byte for byte, with `Assign` get new offsets (and, on a
//! log-append-time topic, the stamp a Kafka broker gives); every validation error leaves
//! the log unchanged; offset gaps from `Keep` read correctly across rolls, reopens and
//! crash recovery; compacted batches are recognised as not forwardable and re-encode densely.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::fixtures::{hex, kafka_java as fixture};
use common::{copy_dir, create, partition, store_config, ManualClock};
use seglog::record::{
    crc32c, encode_batch, Batch, BatchIter, BatchSpec, DecodeError, ATTRIBUTES_OFFSET, CRC_OFFSET,
    MAGIC_OFFSET,
};
use seglog::{
    BatchProblem, CleanupPolicy, Compression, Error, ForwardError, OffsetMode, Partition, Record,
    Store, TimestampType, TopicCompression, TopicConfig, RECOVERY_POINT_FILE,
};
use serde_json::Value;

/// The fixtures' base time (see tests/fixtures/kafka-java/README.md).
const T: i64 = 1_700_000_000_000;

/// A record as compared here: offset, timestamp, key, value, headers.
type Rec = (
    u64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// The JSON's records of every batch, their offsets moved by `shift`.
fn json_records(json: &Value, shift: i64) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in json["batches"].as_array().unwrap() {
        for r in b["records"].as_array().unwrap() {
            out.push((
                (r["offset"].as_i64().unwrap() + shift) as u64,
                r["timestamp"].as_i64().unwrap(),
                hex(&r["keyHex"]),
                hex(&r["valueHex"]),
                r["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h["key"].as_str().unwrap().as_bytes().to_vec(),
                            hex(&h["valueHex"]),
                        )
                    })
                    .collect(),
            ));
        }
    }
    out
}

fn rec(r: &seglog::RecordView<'_>) -> Rec {
    (
        r.offset(),
        r.timestamp(),
        r.key().map(<[u8]>::to_vec),
        r.value().map(<[u8]>::to_vec),
        r.headers()
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect(),
    )
}

/// Every record of `p`, read in small steps.
fn all_records(p: &Partition) -> Vec<Rec> {
    common::read_all(p, 1, |r| {
        (
            r.offset,
            r.timestamp,
            r.key.clone(),
            r.value.clone(),
            r.headers
                .iter()
                .map(|h| (h.key.clone().into_bytes(), h.value.clone()))
                .collect(),
        )
    })
}

/// The bytes of every `.log` file of `p`, oldest first.
fn log_bytes(p: &Partition) -> Vec<u8> {
    common::log_files(p.dir())
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

fn store(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::open_with(dir, store_config(clock)).unwrap()
}

/// Encodes `n` records at `base` (values `v<offset>`, keys `k<offset % keys>`).
fn batch_at(base: u64, n: usize, ts: i64) -> Vec<u8> {
    let records: Vec<Record> = (0..n as u64)
        .map(|i| {
            Record::new(format!("v{}-{}", base + i, "x".repeat(60)))
                .with_key(format!("k{}", (base + i) % 7))
                .with_timestamp(ts + i as i64)
        })
        .collect();
    let mut out = Vec::new();
    encode_batch(&mut out, &BatchSpec::new(base, ts), &records).unwrap();
    out
}

#[test]
fn keep_appends_kafka_bytes_byte_for_byte() {
    let _g = common::shared();
    for name in [
        "codec-none",
        "txn-sequence",
        "log-append-time",
        "log-append-time-broker",
        "idempotent",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(T + 10_000);
        let store = store(dir.path(), &clock);
        let p = create(&store, "t", TopicConfig::default());
        let (bin, json) = fixture(name);
        let info = p.append_raw(&bin, OffsetMode::Keep).unwrap();
        let batches = json["batches"].as_array().unwrap();
        let first = batches[0]["baseOffset"].as_u64().unwrap();
        let last = batches.last().unwrap()["lastOffset"].as_u64().unwrap();
        assert_eq!(
            (info.base_offset, info.last_offset),
            (first, last),
            "{name}"
        );
        assert_eq!(info.batch_bytes, bin.len(), "{name}");
        assert_eq!(p.log_end_offset(), last + 1, "{name}");
        // On disk exactly as given (the offsets below the first batch are a gap).
        assert_eq!(log_bytes(&p), bin, "{name}: the .log holds the input");
        // Reads hand out the same bytes, field for field as Kafka decoded them.
        let uncompressed = batches
            .iter()
            .take_while(|b| b["compression"] == "none")
            .count();
        let mut read = Vec::new();
        let mut next = 0;
        for _ in 0..uncompressed {
            let f = p.read(next, 1).unwrap();
            let b = f.batches().next().unwrap();
            read.extend_from_slice(b.as_bytes());
            next = f.next_offset();
        }
        let end: usize = batches[..uncompressed]
            .iter()
            .map(|b| b["batchLength"].as_u64().unwrap() as usize + 12)
            .sum();
        assert_eq!(read, bin[..end], "{name}: as_bytes equal the input");
        for (b, want) in BatchIter::new(&read).zip(batches) {
            let h = *b.unwrap().1.header();
            assert_eq!(h.producer_id, want["producerId"].as_i64().unwrap());
            assert_eq!(
                h.producer_epoch as i64,
                want["producerEpoch"].as_i64().unwrap()
            );
            assert_eq!(
                h.base_sequence as i64,
                want["baseSequence"].as_i64().unwrap()
            );
            assert_eq!(
                h.partition_leader_epoch as i64,
                want["partitionLeaderEpoch"].as_i64().unwrap()
            );
            let attrs = i64::from_str_radix(&want["attributes"].as_str().unwrap()[2..], 16);
            assert_eq!(h.attributes as i64, attrs.unwrap());
        }
    }
}

#[test]
fn keep_decodes_to_the_json_and_reads_from_inside_the_leading_gap() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default());
    let (bin, json) = fixture("codec-none");
    p.append_raw(&bin, OffsetMode::Keep).unwrap();
    // Offsets 0..100 are a gap: a read there returns the batch at 100.
    for at in [0, 50, 99, 100, 103] {
        let f = p.read(at, 1).unwrap();
        let got: Vec<Rec> = f.records().map(|r| rec(&r)).collect();
        let want: Vec<Rec> = json_records(&json, 0)
            .into_iter()
            .filter(|r| r.0 >= at)
            .collect();
        assert_eq!(got, want, "read at {at}");
        assert_eq!(f.next_offset(), 105);
    }
}

/// A compressed batch appended opaque is never read as an empty batch: this build reports
/// its codec (a build with the codec decodes it). Failed before `Segment::append` left
/// compressed batches unchecked: the read returned the batch with no records.
#[test]
fn a_raw_compressed_batch_is_never_read_as_empty() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default());
    let (bin, json) = fixture("idempotent");
    p.append_raw(&bin, OffsetMode::Keep).unwrap();
    let f = p.read(3, 1).unwrap();
    let got: Vec<Rec> = f.records().map(|r| rec(&r)).collect();
    let want: Vec<Rec> = json_records(&json, 0).into_iter().skip(3).collect();
    assert_eq!(got, want, "the lz4 batch's records");
}

/// Every codec's Kafka batch through `Assign`: a `producer` topic keeps the batch's own
/// codec (the bytes from the attributes on are Kafka's), a topic with a codec re-encodes
/// batches in any other codec in its own, and the records read back as Kafka decoded them.
#[test]
fn assign_keeps_or_recompresses_as_the_topics_compression_says() {
    let _g = common::shared();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let (bin, json) = fixture(&format!("codec-{codec}"));
        for (topic, want_codec) in [
            (TopicCompression::Producer, codec),
            (TopicCompression::Codec(Compression::ZSTD), "zstd"),
            (TopicCompression::Codec(Compression::None), "none"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::at(T + 10_000);
            let store = store(dir.path(), &clock);
            let p = create(&store, "t", TopicConfig::default().compression(topic));
            p.append_raw(&bin, OffsetMode::Assign).unwrap();
            let f = p.read(0, 1 << 20).unwrap();
            let b = f.batches().next().unwrap();
            let got_codec = b.header().codec().unwrap().name();
            assert_eq!(
                got_codec, want_codec,
                "{codec} batch into a {topic:?} topic"
            );
            if want_codec == codec {
                assert_eq!(&b.as_bytes()[8..], &bin[8..], "{codec}: bytes kept");
            }
            let got: Vec<Rec> = f.records().map(|r| rec(&r)).collect();
            assert_eq!(got, json_records(&json, -100), "{codec} into {topic:?}");
        }
    }
}

/// A compressed batch whose CRC is right but whose stream is damaged is refused whole at
/// append (its records are checked), and nothing is written.
#[test]
fn a_compressed_batch_that_does_not_decompress_is_refused() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default());
    let (mut bin, _) = fixture("codec-gzip");
    let last = bin.len() - 10;
    bin[last] ^= 0x55; // inside the gzip stream (its CRC-32 and deflate data)
    let crc = crc32c(&bin[ATTRIBUTES_OFFSET..]);
    bin[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    for mode in [OffsetMode::Keep, OffsetMode::Assign] {
        match p.append_raw(&bin, mode) {
            Err(Error::InvalidBatch { index: 0, .. }) => {}
            other => panic!("{mode:?}: expected InvalidBatch, got {other:?}"),
        }
        assert_eq!(p.log_end_offset(), 0);
    }
}

#[test]
fn assign_gives_next_offsets_and_keeps_records_and_producer_fields() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default());
    for _ in 0..3 {
        p.append(&[Record::new("seglog").with_timestamp(T)])
            .unwrap();
    }
    // Two batches in one call: codec-none (5 records), then the idempotent producer's
    // uncompressed batch (3 records) and the transactional data batch (3 records).
    let (none, none_json) = fixture("codec-none");
    let (idem, idem_json) = fixture("idempotent");
    let idem_first = &idem[..idem_json["batches"][1]["position"].as_u64().unwrap() as usize];
    let (txn, txn_json) = fixture("txn-data");
    let input = [&none[..], idem_first, &txn[..]].concat();
    let info = p.append_raw(&input, OffsetMode::Assign).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 13));
    assert_eq!(info.batch_bytes, input.len());
    assert_eq!(p.log_end_offset(), 14);

    let got = all_records(&p);
    let mut want: Vec<Rec> = json_records(&none_json, 3 - 100);
    want.extend(json_records(&idem_json, 8).into_iter().take(3));
    want.extend(json_records(&txn_json, 11));
    assert_eq!(got[3..], want[..]);

    let f = p.read(3, usize::MAX).unwrap();
    let batches: Vec<Batch<'_>> = f.batches().collect();
    assert_eq!(batches.len(), 3);
    for (b, (src, base)) in batches
        .iter()
        .zip([(&none[..], 3), (idem_first, 8), (&txn[..], 11)])
    {
        assert_eq!(b.base_offset(), base);
        // Create time, max timestamp already the records' largest: only the base offset
        // (outside the CRC) changed.
        assert_eq!(b.as_bytes()[8..], src[8..], "batch at {base}");
    }
    let h = batches[1].header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (777, 1, 42)
    );
    assert_eq!(h.partition_leader_epoch, 0);
    let h = batches[2].header();
    assert!(h.is_transactional());
    assert_eq!(
        (
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.partition_leader_epoch
        ),
        (4242, 3, 0, 7)
    );

    // The same survives a reopen.
    drop(batches);
    drop(f);
    drop(store);
    let store = self::store(dir.path(), &clock);
    let p = partition(&store, "t");
    assert_eq!(all_records(&p)[3..], want[..]);
}

/// A log-append-time topic stamps a producer's batch as Kafka's broker does
/// (`log-append-time-broker.bin` is Kafka's `LogValidator` result for the same records):
/// max timestamp the clock, timestamp-type bit set, CRC recomputed.
#[test]
fn assign_on_a_log_append_time_topic_stamps_like_kafka() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 123_456);
    let store = store(dir.path(), &clock);
    let p = create(
        &store,
        "t",
        TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
    );
    let (none, _) = fixture("codec-none");
    let (broker, broker_json) = fixture("log-append-time-broker");
    let info = p.append_raw(&none, OffsetMode::Assign).unwrap();
    assert_eq!(info.max_timestamp, T + 123_456);
    let f = p.read(0, usize::MAX).unwrap();
    let b = f.batches().next().unwrap();
    let h = b.header();
    assert_eq!(h.base_offset, 0);
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, T + 123_456);
    let kafka_crc =
        u32::from_str_radix(&broker_json["batches"][0]["crc"].as_str().unwrap()[2..], 16);
    assert_eq!(h.crc, kafka_crc.unwrap(), "Kafka's CRC");
    assert_eq!(h.crc, crc32c(&b.as_bytes()[ATTRIBUTES_OFFSET..]));
    // From the magic on, Kafka's bytes exactly (Kafka also set its leader epoch, 2; seglog
    // has none and keeps the batch's).
    assert_eq!(b.as_bytes()[MAGIC_OFFSET..], broker[MAGIC_OFFSET..]);
    assert_eq!(h.partition_leader_epoch, -1);
    for r in f.records() {
        assert_eq!(r.timestamp(), T + 123_456);
    }
    // A create-time topic keeps the producer's timestamps and bytes.
    let p2 = create(&store, "ct", TopicConfig::default());
    p2.append_raw(&none, OffsetMode::Assign).unwrap();
    let f = p2.read(0, usize::MAX).unwrap();
    assert_eq!(f.batches().next().unwrap().as_bytes()[8..], none[8..]);
}

#[test]
fn assign_refuses_what_a_broker_refuses_from_a_producer() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default());
    let (commit, _) = fixture("txn-commit");
    let (data, _) = fixture("txn-data");
    let input = [&data[..], &commit[..]].concat();
    match p.append_raw(&input, OffsetMode::Assign) {
        Err(Error::InvalidBatch {
            index: 1,
            position,
            problem: BatchProblem::Refused(ForwardError::Control),
            ..
        }) => assert_eq!(position, data.len()),
        other => panic!("expected a refused control batch, got {other:?}"),
    }
    assert_eq!(p.log_end_offset(), 0, "nothing written");
    assert!(log_bytes(&p).is_empty());
    // A follower copies control batches.
    p.append_raw(&input, OffsetMode::Keep).unwrap();
    assert_eq!(p.log_end_offset(), 4);

    // A producer id with a negative base sequence.
    let mut bad = data.clone();
    bad[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c(&bad[ATTRIBUTES_OFFSET..]);
    bad[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    match p.append_raw(&bad, OffsetMode::Assign) {
        Err(Error::InvalidBatch {
            problem:
                BatchProblem::Refused(ForwardError::NoSequence {
                    producer_id: 4242, ..
                }),
            ..
        }) => {}
        other => panic!("expected NoSequence, got {other:?}"),
    }
    assert_eq!(p.log_end_offset(), 4);
}

/// A validation case: what, the input, the mode, and the problem expected.
type Case = (&'static str, Vec<u8>, OffsetMode, fn(&BatchProblem) -> bool);

/// Every validation error names the batch and leaves the log exactly as it was, even when
/// the bad batch comes after good ones.
#[test]
fn every_validation_error_leaves_the_log_unchanged() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default().max_batch_bytes(4096));
    p.append_raw(&batch_at(0, 3, T), OffsetMode::Keep).unwrap();
    let before = (p.log_end_offset(), log_bytes(&p), all_records(&p));

    let good = batch_at(10, 2, T);
    let glen = good.len();
    let with = |bad: &[u8]| [&good[..], bad].concat();
    let mut crc = batch_at(20, 2, T);
    let last = crc.len() - 1;
    crc[last] ^= 0x01;
    let mut magic0 = batch_at(20, 2, T);
    magic0[MAGIC_OFFSET] = 0;
    let mut magic1 = batch_at(20, 2, T);
    magic1[MAGIC_OFFSET] = 1;
    let whole = batch_at(20, 2, T);
    let cut = &whole[..whole.len() - 1];
    let mut delta = batch_at(20, 2, T);
    delta[23..27].copy_from_slice(&(-1i32).to_be_bytes()); // lastOffsetDelta
    let big = {
        let mut out = Vec::new();
        let r = Record::new(vec![b'x'; 5000]).with_timestamp(T);
        encode_batch(&mut out, &BatchSpec::new(20, T), &[r]).unwrap();
        out
    };
    let future = batch_at(20, 2, T + 10_000 + 3_600_001);

    let cases: Vec<Case> = vec![
        ("bad crc", with(&crc), OffsetMode::Keep, |p| {
            matches!(p, BatchProblem::Decode(DecodeError::CrcMismatch { .. }))
        }),
        ("magic 0", with(&magic0), OffsetMode::Keep, |p| {
            matches!(
                p,
                BatchProblem::Decode(DecodeError::BadMagic { magic: 0, .. })
            )
        }),
        ("magic 1", with(&magic1), OffsetMode::Assign, |p| {
            matches!(
                p,
                BatchProblem::Decode(DecodeError::BadMagic { magic: 1, .. })
            )
        }),
        ("truncated", with(cut), OffsetMode::Keep, |p| {
            matches!(
                p,
                BatchProblem::Incomplete {
                    needed: Some(_),
                    ..
                }
            )
        }),
        (
            "trailing bytes",
            with(&[0, 0, 0, 0, 0]),
            OffsetMode::Keep,
            |p| matches!(p, BatchProblem::Incomplete { available: 5, .. }),
        ),
        ("bad lastOffsetDelta", with(&delta), OffsetMode::Keep, |p| {
            matches!(
                p,
                BatchProblem::Decode(DecodeError::BadField {
                    field: "lastOffsetDelta",
                    ..
                })
            )
        }),
        (
            "backwards",
            with(&batch_at(11, 1, T)),
            OffsetMode::Keep,
            |p| {
                matches!(
                    p,
                    BatchProblem::Backwards {
                        base_offset: 11,
                        expected: 12
                    }
                )
            },
        ),
        ("too large", with(&big), OffsetMode::Assign, |p| {
            matches!(
                p,
                BatchProblem::TooLarge {
                    limit_name: "max_batch_bytes",
                    ..
                }
            )
        }),
        ("skewed timestamp", with(&future), OffsetMode::Assign, |p| {
            matches!(p, BatchProblem::TimestampSkew { .. })
        }),
    ];
    for (what, input, mode, want) in cases {
        match p.append_raw(&input, mode) {
            Err(Error::InvalidBatch {
                index,
                position,
                problem,
                ..
            }) => {
                assert_eq!((index, position), (1, glen), "{what}");
                assert!(want(&problem), "{what}: got {problem}");
            }
            other => panic!("{what}: expected InvalidBatch, got {other:?}"),
        }
        let after = (p.log_end_offset(), log_bytes(&p), all_records(&p));
        assert!(after == before, "{what}: the log changed");
    }
    // Backwards from the log end itself (the first batch), and empty input.
    match p.append_raw(&batch_at(2, 1, T), OffsetMode::Keep) {
        Err(Error::InvalidBatch {
            index: 0,
            position: 0,
            problem: BatchProblem::Backwards { expected: 3, .. },
            ..
        }) => {}
        other => panic!("expected Backwards, got {other:?}"),
    }
    assert!(matches!(
        p.append_raw(&[], OffsetMode::Keep),
        Err(Error::EmptyAppend)
    ));
    // Equal to the log end is normal.
    p.append_raw(&batch_at(3, 1, T), OffsetMode::Keep).unwrap();
    assert_eq!(p.log_end_offset(), 4);
}

/// Keep gaps across segment rolls: every segment starts where the previous one's data
/// ends (the gap lies in the new segment), reads at and inside gaps return the next
/// batch, and all of it survives a clean reopen and a crash (an unclean open that
/// recovers every segment). Failed when a roll started the new segment at the batch's
/// base offset: the open after a reopen found a segment ending short of its successor.
#[test]
fn keep_gaps_survive_rolls_reopen_and_crash_recovery() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let cfg = TopicConfig::default().segment_bytes(1024);
    let mut written: Vec<u64> = Vec::new();
    {
        let store = store(dir.path(), &clock);
        let p = create(&store, "t", cfg.clone());
        let mut base = 5;
        for i in 0..20 {
            let n = 1 + i % 3;
            p.append_raw(&batch_at(base, n, T + i as i64), OffsetMode::Keep)
                .unwrap();
            written.extend(base..base + n as u64);
            base += n as u64 + 1 + (i as u64 * 7) % 5;
        }
        assert!(p.segments().len() >= 4, "rolled: {}", p.segments().len());
        check_gaps(&p, &written, "live");
        p.flush().unwrap();
        // A crash image: the files as they are while the store is open, with no
        // recovery point, so that the open recovers every segment.
        let crash = dir.path().join("crash");
        copy_dir(&dir.path().join("t-0"), &crash.join("t-0"));
        std::fs::copy(
            dir.path().join(seglog::TOPICS_FILE),
            crash.join(seglog::TOPICS_FILE),
        )
        .unwrap();
    }
    let crash = dir.path().join("crash");
    assert!(!crash.join(RECOVERY_POINT_FILE).exists());
    for (what, path) in [("clean reopen", dir.path().to_path_buf()), ("crash", crash)] {
        let store = store(&path, &clock);
        let p = partition(&store, "t");
        let segs = p.segments();
        for pair in segs.windows(2) {
            assert_eq!(
                pair[0].next_offset(),
                pair[1].base_offset(),
                "{what}: a segment ends where the next starts"
            );
        }
        check_gaps(&p, &written, what);
        // Appends go on after the gap-laden log, in both modes.
        let end = p.log_end_offset();
        p.append_raw(&batch_at(end + 3, 1, T), OffsetMode::Keep)
            .unwrap();
        let info = p
            .append_raw(&batch_at(0, 2, T), OffsetMode::Assign)
            .unwrap();
        assert_eq!(info.base_offset, end + 4, "{what}");
        let mut want = written.clone();
        want.extend([end + 3, end + 4, end + 5]);
        check_gaps(&p, &want, what);
    }
    // The segments start at data ends, with the first batch above the base.
    let store = store(dir.path(), &clock);
    let p = partition(&store, "t");
    let above = p
        .segments()
        .iter()
        .filter(|s| {
            let mut buf = Vec::new();
            s.read(s.base_offset(), 1, true, &mut buf).unwrap();
            BatchIter::new(&buf)
                .next()
                .unwrap()
                .unwrap()
                .1
                .base_offset()
                > s.base_offset()
        })
        .count();
    assert!(above >= 2, "gaps start segments: {above}");
}

/// Reads at every offset of `p`: each returns the first record at or past it.
fn check_gaps(p: &Partition, written: &[u64], ctx: &str) {
    let end = p.log_end_offset();
    assert_eq!(end, written.last().unwrap() + 1, "{ctx}");
    for at in 0..end {
        let f = p.read(at, 1).unwrap();
        let first = f.records().next().map(|r| r.offset());
        let want = written.iter().copied().find(|&o| o >= at);
        assert_eq!(first, want, "{ctx}: read at {at}");
        assert!(f.next_offset() > at, "{ctx}: read at {at} makes progress");
    }
    let offsets: Vec<u64> = all_records(p).iter().map(|r| r.0).collect();
    assert_eq!(offsets, written, "{ctx}");
}

/// On a compacted partition: thinned batches are not forwardable as they are, their dense
/// re-encoding is (and keeps the records), and a broker-like `Assign` takes it.
#[test]
fn compacted_batches_are_refused_and_reencode_densely() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let cfg = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(2048);
    let p = create(&store, "t", cfg);
    for i in 0..40u64 {
        p.append_raw(&batch_at(i * 4, 4, T + i as i64), OffsetMode::Assign)
            .unwrap();
    }
    let report = p.compact_now().unwrap();
    assert!(report.cleaned, "{report:?}");
    let before = all_records(&p);

    let f = p.read(0, usize::MAX).unwrap();
    let (mut thinned, mut whole, mut empty) = (0, 0, 0);
    let broker = create(&store, "broker", TopicConfig::default());
    let mut forwarded = Vec::new();
    for b in f.batches() {
        let h = *b.header();
        let records: Vec<Rec> = b.records().map(|r| rec(&r.unwrap())).collect();
        match b.producer_refusal() {
            Some(ForwardError::Thinned {
                records: n,
                offsets,
            }) => {
                thinned += 1;
                assert_eq!(n, h.records_count);
                assert_eq!(offsets, h.last_offset_delta as u64 + 1);
                assert!(matches!(
                    b.forward_bytes(),
                    Err(ForwardError::Thinned { .. })
                ));
            }
            None => {
                whole += 1;
                let bytes = b.forward_bytes().unwrap();
                let fb = Batch::parse(&bytes).unwrap();
                assert_eq!(fb.base_offset(), 0, "a producer's base offset");
                assert_eq!(bytes[8..], b.as_bytes()[8..]);
            }
            // Compaction keeps a batch it emptied when it ends a segment (its offsets).
            Some(ForwardError::Empty) => {
                assert_eq!(h.records_count, 0);
                assert_eq!(b.to_dense(), Err(ForwardError::Empty));
                empty += 1;
                continue;
            }
            other => panic!("unexpected refusal {other:?}"),
        }
        let dense = b.to_dense().unwrap();
        let d = Batch::parse(&dense).unwrap();
        assert_eq!(d.producer_refusal(), None);
        assert_eq!(d.base_offset(), 0);
        assert_eq!(d.header().records_count as usize, records.len());
        let renumbered: Vec<Rec> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64, r.1, r.2.clone(), r.3.clone(), r.4.clone()))
            .collect();
        let got: Vec<Rec> = d.records().map(|r| rec(&r.unwrap())).collect();
        assert_eq!(got, renumbered, "dense re-encoding keeps the records");
        let info = broker.append_raw(&dense, OffsetMode::Assign).unwrap();
        forwarded.extend(records.iter().enumerate().map(|(i, r)| {
            (
                info.base_offset + i as u64,
                r.1,
                r.2.clone(),
                r.3.clone(),
                r.4.clone(),
            )
        }));
    }
    assert!(
        thinned > 0 && whole > 0,
        "thinned {thinned}, whole {whole}, empty {empty}"
    );
    assert_eq!(all_records(&broker), forwarded);
    assert_eq!(forwarded.len(), before.len());

    // Control batches are never a producer's, and do not re-encode.
    let txn = create(&store, "txn", TopicConfig::default());
    txn.append_raw(&fixture("txn-sequence").0, OffsetMode::Keep)
        .unwrap();
    let f = txn.read(0, usize::MAX).unwrap();
    let refusals: Vec<Option<ForwardError>> = f.batches().map(|b| b.producer_refusal()).collect();
    assert_eq!(
        refusals,
        [
            None,
            Some(ForwardError::Control),
            None,
            Some(ForwardError::Control)
        ]
    );
    let commit = f.batches().nth(1).unwrap();
    assert_eq!(commit.to_dense(), Err(ForwardError::Control));
    // A transactional batch re-encodes without its producer fields.
    let data = f.batches().next().unwrap();
    let dense = data.to_dense().unwrap();
    let h = *Batch::parse(&dense).unwrap().header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert!(!h.is_transactional());
}

/// A truncation inside a Keep gap leaves the log end above the active segment's data; the
/// next roll starts at the data end, so the new segment still follows on without a hole
/// at open. Failed when rolls started at the log end offset (the open after it reported
/// offsets in no segment file).
#[test]
fn a_roll_after_truncating_into_a_gap_starts_at_the_data_end() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let want: Vec<u64> = (0..8).chain(9..13).collect();
    let first = batch_at(0, 8, T);
    let gap = batch_at(10, 2, T);
    let next = batch_at(0, 4, T);
    // The gap batch fits the first segment; the next batch, in its place, does not.
    assert!(next.len() > gap.len());
    let cfg = TopicConfig::default().segment_bytes((first.len() + gap.len()) as u64);
    {
        let store = store(dir.path(), &clock);
        let p = create(&store, "t", cfg);
        p.append_raw(&first, OffsetMode::Keep).unwrap();
        p.append_raw(&gap, OffsetMode::Keep).unwrap();
        assert_eq!(p.segments().len(), 1);
        p.truncate_to(9).unwrap();
        assert_eq!(p.log_end_offset(), 9);
        // Rolls: the new segment starts at 8, where the data ends.
        p.append_raw(&next, OffsetMode::Assign).unwrap();
        let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
        assert_eq!(bases, [0, 8]);
        let offsets: Vec<u64> = all_records(&p).iter().map(|r| r.0).collect();
        assert_eq!(offsets, want);
    }
    let store = store(dir.path(), &clock);
    let p = partition(&store, "t");
    let offsets: Vec<u64> = all_records(&p).iter().map(|r| r.0).collect();
    assert_eq!(offsets, want, "after reopen");
    assert_eq!(p.read(8, 1).unwrap().records().next().unwrap().offset(), 9);
}

/// Transaction markers are never user records: a fetch over Kafka's transactional
/// sequence (data, COMMIT, data, ABORT) returns the five data records and no marker, and
/// consumers move past the markers.
#[test]
fn control_batches_are_never_returned_as_records() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let p = create(&store, "t", TopicConfig::default());
    let (bin, _) = fixture("txn-sequence");
    p.append_raw(&bin, OffsetMode::Keep).unwrap();
    assert_eq!(p.log_end_offset(), 7);
    let f = p.read(0, 1 << 20).unwrap();
    assert_eq!(f.batches().count(), 4, "the markers are stored");
    let offsets: Vec<u64> = f.records().map(|r| r.offset()).collect();
    assert_eq!(offsets, [0, 1, 2, 4, 5]);
    let mut c = store
        .consumer(
            "t",
            seglog::ConsumerConfig {
                reset: seglog::OffsetReset::Earliest,
                ..Default::default()
            },
        )
        .unwrap();
    let got: Vec<u64> = c
        .poll(100, std::time::Duration::from_secs(5))
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(got, [0, 1, 2, 4, 5]);
}

/// On a topic with a codec, `Assign` recompresses a batch in another codec before the
/// checks; an error about a later batch still names its byte position in the caller's
/// input, not in the recompressed copy.
#[cfg(feature = "gzip")]
#[test]
fn a_refused_batch_after_a_recompressed_one_names_its_position_in_the_input() {
    let _g = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T + 10_000);
    let store = store(dir.path(), &clock);
    let cfg = TopicConfig::default()
        .compression(TopicCompression::Codec(Compression::Gzip { level: None }));
    let p = create(&store, "t", cfg);
    let mut plain = Vec::new();
    let records: Vec<Record> = (0..50).map(|_| Record::new(vec![b'x'; 100])).collect();
    encode_batch(&mut plain, &BatchSpec::new(0, T), &records).unwrap();
    let (commit, _) = fixture("txn-commit");
    let input = [&plain[..], &commit[..]].concat();
    match p.append_raw(&input, OffsetMode::Assign) {
        Err(Error::InvalidBatch {
            index: 1,
            position,
            problem: BatchProblem::Refused(ForwardError::Control),
            ..
        }) => assert_eq!(
            position,
            plain.len(),
            "the control batch's position in the input"
        ),
        other => panic!("expected a refused control batch, got {other:?}"),
    }
    assert_eq!(p.log_end_offset(), 0, "nothing written");
}
