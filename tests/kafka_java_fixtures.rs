//! Every single-batch fixture written by Apache Kafka's own Java classes
//! (tests/fixtures/kafka-java/, README there) decodes to exactly its JSON sidecar, and
//! Kafka's compressed bytes re-encoded by seglog decode to the same records.

mod common;

use common::fixtures::kafka_java;

use seglog::record::{encode_batch, Batch, BatchIter, BatchSpec};
use seglog::{Compression, Record};
use serde_json::Value;

const FIXTURES: &[&str] = &[
    "codec-none",
    "codec-gzip",
    "codec-snappy",
    "codec-lz4",
    "codec-zstd",
    "zstd-200",
    "txn-data",
    "txn-commit",
    "txn-abort",
    "txn-sequence",
    "idempotent",
    "log-append-time",
    "log-append-time-broker",
    "consumer-offsets",
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn opt_hex(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, |b| Value::String(hex(b)))
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

/// `"0x0001"` -> 1.
fn hex_int(v: &Value, field: &str) -> i64 {
    let s = v[field].as_str().unwrap();
    i64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn codec_name(id: u8) -> &'static str {
    Compression::from_id(id).map_or("unknown", Compression::name)
}

/// Checks one batch's header fields against the sidecar's batch object.
fn check_header(name: &str, at: usize, b: &Batch<'_>, want: &Value) {
    let h = b.header();
    let ctx = format!("{name} batch at {at}");
    assert_eq!(at as i64, int(want, "position"), "{ctx}: position");
    let fields: [(&str, i64); 13] = [
        ("baseOffset", h.base_offset),
        ("batchLength", h.batch_length as i64),
        ("partitionLeaderEpoch", h.partition_leader_epoch as i64),
        ("magic", h.magic as i64),
        ("lastOffsetDelta", h.last_offset_delta as i64),
        ("lastOffset", h.last_offset() as i64),
        ("baseTimestamp", h.base_timestamp),
        ("maxTimestamp", h.max_timestamp),
        ("producerId", h.producer_id),
        ("producerEpoch", h.producer_epoch as i64),
        ("baseSequence", h.base_sequence as i64),
        ("recordsCount", h.records_count as i64),
        ("position", at as i64),
    ];
    for (field, got) in fields {
        assert_eq!(got, int(want, field), "{ctx}: {field}");
    }
    assert_eq!(h.crc as i64, hex_int(want, "crc"), "{ctx}: crc");
    assert_eq!(
        h.attributes as i64,
        hex_int(want, "attributes"),
        "{ctx}: attributes"
    );
    assert_eq!(
        codec_name(h.compression()),
        want["compression"].as_str().unwrap(),
        "{ctx}: compression"
    );
    let ts_type = if h.is_log_append_time() {
        "LogAppendTime"
    } else {
        "CreateTime"
    };
    assert_eq!(ts_type, want["timestampType"], "{ctx}: timestampType");
    assert_eq!(
        h.is_transactional(),
        want["isTransactional"],
        "{ctx}: isTransactional"
    );
    assert_eq!(
        h.is_control(),
        want["isControlBatch"],
        "{ctx}: isControlBatch"
    );
    assert_eq!(
        h.delete_horizon().map_or(Value::Null, Value::from),
        want["deleteHorizonMs"],
        "{ctx}: deleteHorizonMs"
    );
}

/// Checks every record of one batch (decompressed as needed) against the sidecar.
fn check_records(name: &str, at: usize, b: &Batch<'_>, want: &Value) {
    let ctx = format!("{name} batch at {at}");
    let want = want["records"].as_array().unwrap();
    let mut scratch = Vec::new();
    let codec = b.header().codec().unwrap();
    if !codec.is_available() {
        // A build without the codec names it instead of decoding.
        let e = b.records_with(&mut scratch).unwrap_err();
        assert!(
            matches!(e, seglog::record::DecodeError::CodecDisabled { codec: c, .. } if c == codec.name()),
            "{ctx}: {e:?}"
        );
        println!("{ctx}: records not checked, built without the {codec} feature");
        return;
    }
    let got: Vec<_> = b
        .records_with(&mut scratch)
        .unwrap_or_else(|e| panic!("{ctx}: {e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(got.len(), want.len(), "{ctx}: record count");
    for (r, w) in got.iter().zip(want) {
        let ctx = format!("{ctx}, record {}", r.offset());
        assert_eq!(r.offset() as i64, int(w, "offset"), "{ctx}: offset");
        assert_eq!(r.timestamp(), int(w, "timestamp"), "{ctx}: timestamp");
        assert_eq!(opt_hex(r.key()), w["keyHex"], "{ctx}: key");
        assert_eq!(opt_hex(r.value()), w["valueHex"], "{ctx}: value");
        let headers: Vec<Value> = r
            .headers()
            .iter()
            .map(|(k, v)| {
                serde_json::json!({
                    "key": std::str::from_utf8(k).expect("UTF-8 header key"),
                    "valueHex": opt_hex(v),
                })
            })
            .collect();
        assert_eq!(&Value::Array(headers), &w["headers"], "{ctx}: headers");
    }
}

#[test]
fn every_single_batch_fixture_decodes_to_its_sidecar() {
    for name in FIXTURES {
        let (bin, json) = kafka_java(name);
        let want = json["batches"].as_array().unwrap();
        let mut it = BatchIter::new(&bin);
        let mut n = 0;
        for item in &mut it {
            let (at, b) = item.unwrap_or_else(|e| panic!("{name}: {e}"));
            let w = want
                .get(n)
                .unwrap_or_else(|| panic!("{name}: more batches than the sidecar lists"));
            check_header(name, at, &b, w);
            check_records(name, at, &b, w);
            if b.header().codec().is_some_and(Compression::is_available) {
                b.validate_all().unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            n += 1;
        }
        assert_eq!(n, want.len(), "{name}: batch count");
        assert_eq!(it.position(), bin.len(), "{name}: bytes left over");
        assert_eq!(int(&json, "sizeBytes") as usize, bin.len(), "{name}: size");
    }
}

/// The records of a batch as owned values (timestamps as Kafka reports them).
fn records_of(b: &Batch<'_>) -> Vec<(u64, Record)> {
    let mut scratch = Vec::new();
    b.records_with(&mut scratch)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.offset(), r.to_record())
        })
        .collect()
}

#[test]
fn kafka_compressed_batches_reencoded_by_seglog_decode_to_the_same_records() {
    for name in [
        "codec-gzip",
        "codec-snappy",
        "codec-lz4",
        "codec-zstd",
        "zstd-200",
    ] {
        let (bin, _) = kafka_java(name);
        let b = Batch::parse(&bin).unwrap();
        let h = *b.header();
        let codec = h.codec().unwrap();
        if !codec.is_available() {
            println!("{name}: skipped, built without the {codec} feature");
            continue;
        }
        assert_ne!(codec, Compression::None, "{name}");
        let want = records_of(&b);
        let records: Vec<Record> = want.iter().map(|(_, r)| r.clone()).collect();
        let mut spec = BatchSpec::new(h.base_offset as u64, 0);
        spec.compression = codec;
        spec.attributes = h.attributes;
        spec.partition_leader_epoch = h.partition_leader_epoch;
        let mut out = Vec::new();
        let written = encode_batch(&mut out, &spec, &records).unwrap();
        assert_eq!(written.compression(), codec.id(), "{name}");
        let again = Batch::parse(&out).unwrap();
        again.validate_all().unwrap();
        assert_eq!(again.header().attributes, h.attributes, "{name}");
        assert_eq!(again.header().max_timestamp, h.max_timestamp, "{name}");
        assert_eq!(records_of(&again), want, "{name}");
    }
}

/// Kafka's snappy batch is snappy-java's framed stream, and seglog writes the same framing
/// (header, version 1, compatible version 1, then length-prefixed blocks).
#[test]
fn snappy_batches_use_the_xerial_framing_both_ways() {
    if !Compression::SNAPPY.is_available() {
        println!("skipped: built without the snappy feature");
        return;
    }
    let header = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    let (bin, _) = kafka_java("codec-snappy");
    assert_eq!(&bin[61..61 + 16], header, "Kafka's own snappy batch");
    let mut spec = BatchSpec::new(0, 0);
    spec.compression = Compression::Snappy;
    let mut out = Vec::new();
    encode_batch(&mut out, &spec, &[Record::new(vec![b'x'; 100_000])]).unwrap();
    assert_eq!(&out[61..61 + 16], header, "seglog's snappy batch");
    // 100,000 bytes of records make 4 blocks of at most 32 KiB each.
    let mut pos = 61 + 16;
    let mut blocks = 0;
    while pos < out.len() {
        let len = u32::from_be_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4 + len;
        blocks += 1;
    }
    assert_eq!((pos, blocks), (out.len(), 4));
}

/// seglog's LZ4 frame starts with the same descriptor as Kafka's (`KafkaLZ4BlockOutputStream`:
/// version 1, independent blocks, no block or content checksum, no content size, 64 KiB
/// blocks, and the header checksum over the descriptor), and ends with the end mark.
#[test]
fn lz4_frames_match_kafkas_frame_descriptor() {
    if !Compression::LZ4.is_available() {
        println!("skipped: built without the lz4 feature");
        return;
    }
    let (bin, _) = kafka_java("codec-lz4");
    let kafka = &bin[61..];
    let mut spec = BatchSpec::new(0, 0);
    spec.compression = Compression::LZ4;
    let mut out = Vec::new();
    encode_batch(&mut out, &spec, &[Record::new("x")]).unwrap();
    let ours = &out[61..];
    assert_eq!(&ours[..7], &kafka[..7], "magic, FLG, BD, HC");
    assert_eq!(&kafka[..6], &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40]);
    assert_eq!(&ours[ours.len() - 4..], &[0, 0, 0, 0], "end mark");
    assert_eq!(&kafka[kafka.len() - 4..], &[0, 0, 0, 0], "end mark");
}
