//! Transactions: control records and end-transaction markers checked against batches made by
//! Apache Kafka's own Java classes (tests/fixtures/kafka-java, README there), the
//! `.txnindex` codec, and the transaction tracker and read-committed filter against a model.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::fixtures::kafka_java as fixture;
use proptest::prelude::*;
use seglog::record::{
    Batch, BatchHeader, BatchIter, ControlError, ControlRecord, ControlType, EndTxnMarker,
    MarkerType, CONTROL_BIT, MAGIC_V2, TRANSACTIONAL_BIT,
};
use seglog::segment::txnindex::{
    encode_txn_index, parse_txn_index, AbortedTxn, TxnIndex, TxnIndexError, ABORTED_TXN_SIZE,
};
use seglog::txn::{
    aborted_in_range, aborted_txns, batch_control_type, read_committed, ReadCommitted,
    TxnStateError, TxnTracker,
};

fn batches(bin: &[u8]) -> Vec<Batch<'_>> {
    BatchIter::new(bin).map(|b| b.unwrap().1).collect()
}

fn headers_and_controls(bin: &[u8]) -> Vec<(BatchHeader, Option<ControlType>)> {
    batches(bin)
        .iter()
        .map(|b| (*b.header(), batch_control_type(b).unwrap()))
        .collect()
}

#[test]
fn control_records_read_as_kafka_wrote_them() {
    for name in ["txn-commit", "txn-abort", "txn-sequence", "txn-data"] {
        let (bin, json) = fixture(name);
        let found = batches(&bin);
        let expected = json["batches"].as_array().unwrap();
        assert_eq!(found.len(), expected.len(), "{name}");
        for (batch, want) in found.iter().zip(expected) {
            let h = batch.header();
            assert_eq!(h.is_control(), want["isControlBatch"].as_bool().unwrap());
            assert_eq!(
                h.is_transactional(),
                want["isTransactional"].as_bool().unwrap()
            );
            assert_eq!(h.producer_id, want["producerId"].as_i64().unwrap());
            let control = ControlRecord::of_batch(batch).unwrap();
            if !h.is_control() {
                assert_eq!(control, None, "{name} at {}", h.base_offset);
                continue;
            }
            let control = control.unwrap();
            let record = &want["records"][0];
            let ty = match record["controlType"].as_str().unwrap() {
                "COMMIT" => ControlType::Commit,
                "ABORT" => ControlType::Abort,
                other => panic!("unexpected control type {other} in {name}"),
            };
            assert_eq!(control.control_type, ty, "{name} at {}", h.base_offset);
            assert_eq!(control.version, 0);
            assert_eq!(
                control.coordinator_epoch,
                Some(record["coordinatorEpoch"].as_i64().unwrap() as i32)
            );
            assert_eq!(batch_control_type(batch).unwrap(), Some(ty));
        }
    }
}

/// `EndTxnMarker::encode` with the fields the JSON reports gives Kafka's bytes exactly.
#[test]
fn marker_encoder_reproduces_kafkas_batches() {
    for (name, marker) in [
        ("txn-commit", MarkerType::Commit),
        ("txn-abort", MarkerType::Abort),
    ] {
        let (bin, json) = fixture(name);
        let b = &json["batches"][0];
        let m = EndTxnMarker {
            offset: b["baseOffset"].as_u64().unwrap(),
            producer_id: b["producerId"].as_i64().unwrap(),
            producer_epoch: b["producerEpoch"].as_i64().unwrap() as i16,
            coordinator_epoch: b["records"][0]["coordinatorEpoch"].as_i64().unwrap() as i32,
            marker,
            timestamp: b["records"][0]["timestamp"].as_i64().unwrap(),
            partition_leader_epoch: b["partitionLeaderEpoch"].as_i64().unwrap() as i32,
        };
        let mut out = Vec::new();
        let header = m.encode(&mut out).unwrap();
        assert_eq!(out, bin, "{name}");
        assert_eq!(
            format!("{:#010x}", header.crc),
            b["crc"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn bad_control_records_are_errors_not_panics() {
    let (bin, _) = fixture("txn-commit");
    let batch = Batch::parse(&bin).unwrap();
    let r = batch.records().next().unwrap().unwrap();
    assert_eq!(
        ControlRecord::parse(r.key(), Some(&r.value().unwrap()[..4])),
        Err(ControlError::ShortValue { len: 4 })
    );
    assert_eq!(
        ControlRecord::parse(Some(&[0xff, 0xff, 0, 1]), r.value()),
        Err(ControlError::BadKeyVersion { version: -1 })
    );
}

fn hdr(base: u64, count: u32, producer_id: i64, attributes: i16) -> BatchHeader {
    BatchHeader {
        base_offset: base as i64,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: MAGIC_V2,
        crc: 0,
        attributes,
        last_offset_delta: count as i32 - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id,
        producer_epoch: 0,
        base_sequence: -1,
        records_count: count as i32,
    }
}

#[test]
fn txn_sequence_aborts_one_transaction_and_reads_committed_offsets_only() {
    let (bin, _) = fixture("txn-sequence");
    let batches = headers_and_controls(&bin);

    let mut tracker = TxnTracker::new();
    let mut lsos = Vec::new();
    let mut aborted = Vec::new();
    for (h, c) in &batches {
        if let Some(done) = tracker.observe(h, *c) {
            aborted.extend(done.aborted_txn());
        }
        lsos.push(tracker.last_stable_offset(h.next_offset()));
    }
    // Data 0-2 opens a transaction; COMMIT at 3 ends it; data 4-5 opens one; ABORT at 6.
    assert_eq!(lsos, [0, 4, 4, 7]);
    assert_eq!(
        aborted,
        [AbortedTxn {
            producer_id: 4242,
            first_offset: 4,
            last_offset: 6,
            last_stable_offset: 7,
        }]
    );
    assert_eq!(aborted_txns(batches.iter().copied()), aborted);

    let returned = read_committed(batches.iter().copied(), &aborted);
    let offsets: Vec<u64> = batches
        .iter()
        .zip(&returned)
        .filter(|(_, &keep)| keep)
        .flat_map(|((h, _), _)| h.base_offset as u64..=h.last_offset())
        .collect();
    assert_eq!(offsets, [0, 1, 2]);

    // A fetch from offset 5 (inside the aborted transaction) is told about it and skips it.
    let from5 = aborted_in_range(&aborted, 5, 7);
    assert_eq!(from5, aborted);
    assert_eq!(
        read_committed(batches[2..].iter().copied(), &from5),
        [false, false]
    );
    // Without the aborted list, a reader would return the aborted data: the list matters.
    assert_eq!(
        read_committed(batches.iter().copied(), &[]),
        [true, false, true, false]
    );
}

#[test]
fn tracker_rejects_non_transactional_data_inside_a_transaction() {
    let mut t = TxnTracker::new();
    t.observe(&hdr(0, 2, 7, TRANSACTIONAL_BIT), None);
    assert_eq!(
        t.check(&hdr(2, 1, 7, 0)),
        Err(TxnStateError::NonTransactionalInTxn {
            offset: 2,
            producer_id: 7,
            txn_first_offset: 0
        })
    );
    assert_eq!(t.check(&hdr(2, 1, 8, 0)), Ok(()));
    assert_eq!(t.check(&hdr(2, 1, 7, TRANSACTIONAL_BIT)), Ok(()));
    // Unknown control types and empty control batches end nothing.
    let control = TRANSACTIONAL_BIT | CONTROL_BIT;
    assert_eq!(
        t.observe(&hdr(2, 1, 7, control), Some(ControlType::Unknown(3))),
        None
    );
    assert_eq!(t.observe(&hdr(3, 1, 7, control), None), None);
    assert_eq!(t.ongoing_txn(7), Some(0));
    assert_eq!(t.last_stable_offset(4), 0);
    // A marker with no transaction ongoing (an empty transaction) completes nothing.
    assert_eq!(
        t.observe(&hdr(4, 1, 9, control), Some(ControlType::Abort)),
        None
    );
}

fn entry(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

#[test]
fn txnindex_round_trips_in_kafkas_layout() {
    let entries = [entry(4242, 4, 6, 7), entry(-1, 0, i64::MAX as u64, 3)];
    let bytes = encode_txn_index(&entries);
    assert_eq!(bytes.len(), 2 * ABORTED_TXN_SIZE);
    // version 0, then producerId, firstOffset, lastOffset, lastStableOffset, big-endian.
    let mut first = vec![0, 0];
    for v in [4242i64, 4, 6, 7] {
        first.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(&bytes[..ABORTED_TXN_SIZE], &first[..]);
    assert_eq!(parse_txn_index(&bytes).unwrap(), entries);
    assert_eq!(parse_txn_index(&[]).unwrap(), []);

    let index = TxnIndex::parse(4, &bytes).unwrap();
    assert_eq!(index.entries(), entries);
    assert_eq!(index.to_bytes(), bytes);
}

#[test]
fn txnindex_bad_sizes_versions_and_orders_are_errors() {
    let good = encode_txn_index(&[entry(1, 0, 5, 6), entry(2, 3, 9, 10)]);
    for len in [1, 33, 35, 67] {
        let err = parse_txn_index(&good[..len]).unwrap_err();
        let whole = len / ABORTED_TXN_SIZE * ABORTED_TXN_SIZE;
        assert_eq!(
            err,
            TxnIndexError::PartialEntry {
                position: whole,
                len
            }
        );
        assert!(
            err.to_string().contains(&format!("at byte {whole}")),
            "{err}"
        );
    }

    let mut v1 = good.clone();
    v1[ABORTED_TXN_SIZE + 1] = 1;
    let err = parse_txn_index(&v1).unwrap_err();
    assert_eq!(
        err,
        TxnIndexError::BadVersion {
            position: 34,
            version: 1
        }
    );
    assert!(err.to_string().contains("version 1 at byte 34"), "{err}");
    let mut high = good.clone();
    high[0] = 0x80;
    assert_eq!(
        parse_txn_index(&high).unwrap_err(),
        TxnIndexError::BadVersion {
            position: 0,
            version: i16::MIN
        }
    );

    let negative = encode_txn_index(&[entry(1, 0, 5, 6), entry(2, 3, u64::MAX, 10)]);
    assert_eq!(
        parse_txn_index(&negative).unwrap_err(),
        TxnIndexError::BadField {
            field: "lastOffset",
            position: 34,
            value: -1
        }
    );
    let inverted = encode_txn_index(&[entry(1, 6, 5, 6)]);
    assert!(matches!(
        parse_txn_index(&inverted).unwrap_err(),
        TxnIndexError::BadField {
            field: "firstOffset",
            position: 0,
            ..
        }
    ));
    let unordered = encode_txn_index(&[entry(1, 0, 9, 10), entry(2, 3, 9, 10)]);
    assert_eq!(
        parse_txn_index(&unordered).unwrap_err(),
        TxnIndexError::OutOfOrder {
            position: 34,
            last_offset: 9,
            previous: 9
        }
    );
    assert_eq!(
        TxnIndex::parse(6, &good).unwrap_err(),
        TxnIndexError::BeforeBase {
            position: 0,
            last_offset: 5,
            base_offset: 6
        }
    );
}

#[test]
fn txnindex_push_truncate_and_collect_follow_kafka() {
    let mut index = TxnIndex::new(10);
    assert_eq!(
        index.push(entry(1, 2, 12, 13)).unwrap(),
        entry(1, 2, 12, 13).encode()
    );
    index.push(entry(2, 11, 15, 14)).unwrap();
    index.push(entry(1, 16, 20, 21)).unwrap();
    assert!(matches!(
        index.push(entry(3, 0, 20, 21)),
        Err(TxnIndexError::OutOfOrder { .. })
    ));
    assert!(matches!(
        TxnIndex::new(10).push(entry(3, 0, 9, 10)),
        Err(TxnIndexError::BeforeBase { .. })
    ));
    assert_eq!(index.entries().len(), 3);

    let mut found = Vec::new();
    // The first entry's LSO (13) reaches the bound: later segments need not be searched.
    assert!(index.collect_aborted(0, 13, &mut found));
    assert_eq!(found, [entry(1, 2, 12, 13)]);
    found.clear();
    assert!(!index.collect_aborted(13, 100, &mut found));
    assert_eq!(found, [entry(2, 11, 15, 14), entry(1, 16, 20, 21)]);

    assert_eq!(index.truncate_to(16), 2 * ABORTED_TXN_SIZE);
    assert_eq!(index.truncate_to(15), ABORTED_TXN_SIZE);
    assert_eq!(index.entries(), [entry(1, 2, 12, 13)]);
}

/// A step of the model: producer `p` (of a few) appends data, or its coordinator writes a
/// marker; or a producer-less batch arrives.
#[derive(Debug, Clone)]
enum Op {
    Data {
        p: usize,
        transactional: bool,
        n: u32,
    },
    Commit(usize),
    Abort(usize),
    Plain(u32),
    OtherControl(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, any::<bool>(), 1..4u32)
            .prop_map(|(p, transactional, n)| Op::Data { p, transactional, n }),
        2 => (0..4usize).prop_map(Op::Commit),
        2 => (0..4usize).prop_map(Op::Abort),
        1 => (1..3u32).prop_map(Op::Plain),
        1 => (0..4usize).prop_map(Op::OtherControl),
    ]
}

/// Kafka's `LocalLog.collectAbortedTransactions`: from the segment holding `fetch_offset`
/// onwards, until an index says the search is complete.
fn collect(segments: &[TxnIndex], fetch_offset: u64, upper: u64) -> Vec<AbortedTxn> {
    let start = segments
        .iter()
        .rposition(|s| s.base_offset() <= fetch_offset)
        .unwrap_or(0);
    let mut out = Vec::new();
    for s in &segments[start..] {
        if s.collect_aborted(fetch_offset, upper, &mut out) {
            break;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random interleavings of several producers' transactions: the LSO is right after every
    /// batch, the aborted entries match the model, and a read-committed reader starting
    /// anywhere below the LSO returns exactly the committed and non-transactional records,
    /// whether given all aborted transactions or only those a segmented `.txnindex` yields.
    #[test]
    fn tracker_and_read_committed_match_a_model(
        ops in proptest::collection::vec(op(), 1..60),
        fetch_pick in any::<u64>(),
        segment_every in 2..9u64,
    ) {
        const PID: i64 = 1000;
        let mut tracker = TxnTracker::new();
        let mut log: Vec<(BatchHeader, Option<ControlType>)> = Vec::new();
        let mut end = 0u64;
        // Model: each producer's ongoing transaction (first offset, its offsets).
        let mut ongoing: HashMap<usize, (u64, Vec<u64>)> = HashMap::new();
        let mut visible = BTreeSet::new(); // committed or non-transactional offsets
        let mut expected_aborted = Vec::new();
        let mut got_aborted = Vec::new();
        let control = TRANSACTIONAL_BIT | CONTROL_BIT;
        for op in ops {
            let (h, c) = match op {
                Op::Data { p, transactional, n } => {
                    let h = hdr(end, n, PID + p as i64, if transactional { TRANSACTIONAL_BIT } else { 0 });
                    if !transactional && ongoing.contains_key(&p) {
                        // A broker refuses it; it never reaches the log.
                        prop_assert!(tracker.check(&h).is_err());
                        continue;
                    }
                    prop_assert_eq!(tracker.check(&h), Ok(()));
                    let offsets = end..end + n as u64;
                    if transactional {
                        ongoing.entry(p).or_insert((end, Vec::new())).1.extend(offsets);
                    } else {
                        visible.extend(offsets);
                    }
                    (h, None)
                }
                Op::Commit(p) | Op::Abort(p) => {
                    let abort = matches!(op, Op::Abort(_));
                    if let Some((first, offsets)) = ongoing.remove(&p) {
                        if abort {
                            let lso = ongoing.values().map(|t| t.0).min().unwrap_or(end + 1);
                            expected_aborted.push(AbortedTxn {
                                producer_id: PID + p as i64,
                                first_offset: first,
                                last_offset: end,
                                last_stable_offset: lso,
                            });
                        } else {
                            visible.extend(offsets);
                        }
                    }
                    let ty = if abort { ControlType::Abort } else { ControlType::Commit };
                    (hdr(end, 1, PID + p as i64, control), Some(ty))
                }
                Op::Plain(n) => {
                    visible.extend(end..end + n as u64);
                    (hdr(end, n, -1, 0), None)
                }
                Op::OtherControl(p) => (hdr(end, 1, PID + p as i64, control), Some(ControlType::Unknown(5))),
            };
            if let Some(done) = tracker.observe(&h, c) {
                got_aborted.extend(done.aborted_txn());
            }
            end = h.next_offset();
            log.push((h, c));
            let model_lso = ongoing.values().map(|t| t.0).min().unwrap_or(end);
            prop_assert_eq!(tracker.last_stable_offset(end), model_lso);
            let mut model_ongoing: Vec<(u64, i64)> =
                ongoing.iter().map(|(&p, t)| (t.0, PID + p as i64)).collect();
            model_ongoing.sort();
            prop_assert_eq!(tracker.ongoing().collect::<Vec<_>>(), model_ongoing);
        }
        prop_assert_eq!(&got_aborted, &expected_aborted);

        // Segments every `segment_every` offsets (at batch boundaries); each index holds the
        // entries whose marker lies in its segment.
        let mut segments: Vec<TxnIndex> = Vec::new();
        for (h, _) in &log {
            let base = h.base_offset as u64;
            if segments.last().is_none_or(|s| base >= s.base_offset() + segment_every) {
                segments.push(TxnIndex::new(base));
            }
        }
        for a in &got_aborted {
            let s = segments.iter_mut().rev().find(|s| s.base_offset() <= a.last_offset).unwrap();
            s.push(*a).unwrap();
        }

        let lso = tracker.last_stable_offset(end);
        let fetch_offset = if lso == 0 { 0 } else { fetch_pick % (lso + 1) };
        // The fetch: whole batches from the one holding fetch_offset, below the LSO.
        let fetched: Vec<_> = log
            .iter()
            .copied()
            .filter(|(h, _)| h.last_offset() >= fetch_offset && h.last_offset() < lso)
            .collect();
        let expected: Vec<u64> = visible.range(fetch_offset..lso).copied().collect();
        let lists = [
            aborted_in_range(&got_aborted, fetch_offset, lso),
            collect(&segments, fetch_offset, lso),
        ];
        for aborted in lists {
            let keep = read_committed(fetched.iter().copied(), &aborted);
            let returned: Vec<u64> = fetched
                .iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .flat_map(|((h, _), _)| h.base_offset as u64..=h.last_offset())
                .filter(|&o| o >= fetch_offset)
                .collect();
            prop_assert_eq!(&returned, &expected, "aborted list {:?}", aborted);
        }
        // The streaming filter agrees with the function.
        let mut filter = ReadCommitted::new(got_aborted.iter().copied());
        let streamed: Vec<bool> = log.iter().map(|(h, c)| filter.accept(h, *c)).collect();
        prop_assert_eq!(streamed, read_committed(log.iter().copied(), &got_aborted));
    }
}

/// FORMAT.md §13's worked example is what the marker encoder writes.
#[test]
fn format_md_marker_example_is_what_the_encoder_writes() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md")).unwrap();
    let at = spec.find("## 13.").expect("FORMAT.md lost §13");
    let rest = &spec[at..];
    let start = rest.find("```text\n").unwrap() + "```text\n".len();
    let block = &rest[start..start + rest[start..].find("```").unwrap()];
    let bytes: Vec<u8> = block
        .lines()
        .flat_map(|l| {
            l.split_once(": ")
                .unwrap()
                .1
                .split_whitespace()
                .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|t| u8::from_str_radix(t, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let m = EndTxnMarker {
        offset: 3,
        producer_id: 4242,
        producer_epoch: 3,
        coordinator_epoch: 11,
        marker: MarkerType::Commit,
        timestamp: 1_700_000_000_050,
        partition_leader_epoch: 7,
    };
    let mut out = Vec::new();
    m.encode(&mut out).unwrap();
    assert_eq!(bytes, out);
}

/// `__consumer_offsets` records of every key and value version, written by Kafka's own
/// generated classes, give the committed offsets Kafka's README for the fixture states.
#[test]
fn consumer_offsets_of_every_kafka_version_load_as_committed_offsets() {
    let (bin, _) = fixture("consumer-offsets");
    let dir = tempfile::tempdir().unwrap();
    {
        let store = seglog::Store::open(dir.path()).unwrap();
        // First use creates the offsets topic.
        assert!(store.committed_offsets("g1", "orders").unwrap().is_empty());
        let topic = store.topic(seglog::OFFSETS_TOPIC).unwrap();
        let batch = Batch::parse(&bin).unwrap();
        let records: Vec<seglog::Record> =
            batch.records().map(|r| r.unwrap().to_record()).collect();
        topic.partition(0).unwrap().append(&records).unwrap();
        store.close().unwrap();
    }
    let store = seglog::Store::open(dir.path()).unwrap();
    let committed = |g| store.committed_offsets(g, "orders").unwrap();
    assert_eq!(committed("g1"), [(0, 42)].into());
    assert_eq!(committed("g0"), [(0, 3)].into());
    assert_eq!(committed("g4"), [(2, 99)].into());
    store.close().unwrap();
}

/// A segment's `.txnindex` (placed by hand until appends write it) is read, cut by a
/// truncation and deleted with its topic.
#[test]
fn segment_txnindex_is_read_truncated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = seglog::Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", seglog::TopicConfig::default())
        .unwrap();
    let p = topic.partition(0).unwrap();
    for i in 0..8u8 {
        p.append(&[seglog::record::Record::new(vec![i])]).unwrap();
    }
    let seg = p.segments()[0].clone();
    let entries = [entry(7, 0, 2, 3), entry(8, 1, 5, 6)];
    std::fs::write(seg.txn_index_path(), encode_txn_index(&entries)).unwrap();
    assert_eq!(seg.aborted_txns().unwrap(), entries);
    p.truncate_to(4).unwrap();
    assert_eq!(seg.aborted_txns().unwrap(), entries[..1]);
    assert_eq!(
        std::fs::read(seg.txn_index_path()).unwrap(),
        encode_txn_index(&entries[..1])
    );
    let path = seg.txn_index_path();
    store.delete_topic("t").unwrap();
    assert!(!path.exists());
}

/// A point lookup of a transaction marker's offset finds no record (markers hold none, as
/// `Fetch::records` leaves them out), and of every data offset the record a read returns:
/// Kafka's own transactional log (committed and aborted transactions), kept at its offsets.
#[test]
fn point_lookups_of_kafkas_transactional_log_agree_with_reads() {
    let (bin, _) = fixture("txn-sequence");
    let dir = tempfile::tempdir().unwrap();
    let store = seglog::Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", seglog::TopicConfig::default())
        .unwrap();
    let p = topic.partition(0).unwrap();
    p.append_raw(&bin, seglog::OffsetMode::Keep).unwrap();
    let mut markers = 0;
    for o in p.log_start_offset()..p.log_end_offset() {
        let read = p.read(o, 1).unwrap();
        let want = read
            .records()
            .find(|r| r.offset() >= o)
            .filter(|r| r.offset() == o)
            .map(|r| r.to_record());
        let got = p.read_record(o, |r| r.to_record()).unwrap();
        assert_eq!(got, want, "offset {o}");
        let in_place = p
            .read_in_place(o, 1, |f| {
                f.records()
                    .find(|r| r.offset() >= o)
                    .filter(|r| r.offset() == o)
                    .map(|r| r.to_record())
            })
            .unwrap();
        assert_eq!(in_place, want, "offset {o}");
        markers += usize::from(read.batches().next().unwrap().header().is_control());
    }
    assert!(markers >= 2, "the fixture holds commit and abort markers");
    store.close().unwrap();
}
