//! Golden tests: every fixture batch (made by kafka-python, an independent implementation
//! of Kafka's format) decodes to exactly its JSON, and re-encoding gives the same bytes.

mod common;

use common::fixtures::hex;

use std::path::{Path, PathBuf};

use seglog::record::{encode_batch, Batch, BatchSpec};
use seglog::{murmur2, partition_for_key, Header, Record};
use serde_json::Value;

fn fixtures() -> Vec<(PathBuf, Vec<u8>, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let bin = std::fs::read(&path).unwrap();
            let json: Value =
                serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap())
                    .unwrap();
            out.push((path, bin, json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 7, "fixtures missing from {}", dir.display());
    out
}

fn records_of(json: &Value) -> Vec<Record> {
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Record {
            key: hex(&r["key"]),
            value: hex(&r["value"]),
            headers: r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| Header {
                    key: h[0].as_str().unwrap().to_string(),
                    value: hex(&h[1]),
                })
                .collect(),
            timestamp: Some(r["timestamp"].as_i64().unwrap()),
        })
        .collect()
}

#[test]
fn every_fixture_decodes_to_its_json() {
    for (path, bin, json) in fixtures() {
        let name = path.display();
        assert_eq!(bin.len() as u64, json["size"].as_u64().unwrap(), "{name}");
        let batch = Batch::parse(&bin).unwrap_or_else(|e| panic!("{name}: {e}"));
        batch.validate().unwrap();
        let h = batch.header();
        assert_eq!(h.size(), bin.len(), "{name}");
        assert_eq!(
            h.base_offset,
            json["base_offset"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.partition_leader_epoch as i64,
            json["partition_leader_epoch"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(h.magic as i64, json["magic"].as_i64().unwrap(), "{name}");
        assert_eq!(h.crc as u64, json["crc"].as_u64().unwrap(), "{name}");
        assert_eq!(
            h.attributes as i64,
            json["attributes"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.last_offset_delta as i64,
            json["last_offset_delta"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.base_timestamp,
            json["base_timestamp"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.max_timestamp,
            json["max_timestamp"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.producer_id,
            json["producer_id"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.producer_epoch as i64,
            json["producer_epoch"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.base_sequence as i64,
            json["base_sequence"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            h.records_count as i64,
            json["records_count"].as_i64().unwrap(),
            "{name}"
        );

        let decoded: Vec<_> = batch.records().map(|r| r.unwrap()).collect();
        let expected = json["records"].as_array().unwrap();
        assert_eq!(decoded.len(), expected.len(), "{name}");
        for (r, e) in decoded.iter().zip(expected) {
            assert_eq!(r.offset() as i64, e["offset"].as_i64().unwrap(), "{name}");
            assert_eq!(r.timestamp(), e["timestamp"].as_i64().unwrap(), "{name}");
            assert_eq!(r.key().map(<[u8]>::to_vec), hex(&e["key"]), "{name} key");
            assert_eq!(
                r.value().map(<[u8]>::to_vec),
                hex(&e["value"]),
                "{name} value"
            );
            let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = r
                .headers()
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect();
            let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = e["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().as_bytes().to_vec(), hex(&h[1])))
                .collect();
            assert_eq!(headers, want, "{name} headers");
        }
    }
}

#[test]
fn every_fixture_reencodes_byte_for_byte() {
    for (path, bin, json) in fixtures() {
        let mut spec = BatchSpec::new(json["base_offset"].as_u64().unwrap(), 0);
        spec.partition_leader_epoch = json["partition_leader_epoch"].as_i64().unwrap() as i32;
        spec.attributes = json["attributes"].as_i64().unwrap() as i16;
        spec.producer_id = json["producer_id"].as_i64().unwrap();
        spec.producer_epoch = json["producer_epoch"].as_i64().unwrap() as i16;
        spec.base_sequence = json["base_sequence"].as_i64().unwrap() as i32;
        let mut out = Vec::new();
        encode_batch(&mut out, &spec, &records_of(&json)).unwrap();
        assert_eq!(out, bin, "{}", path.display());
    }
}

#[test]
fn murmur2_matches_kafka() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/murmur2.json");
    let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let vectors = json["vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for v in vectors {
        let key = v["key_utf8"].as_str().unwrap().as_bytes();
        assert_eq!(
            murmur2(key) as i64,
            v["murmur2_i32"].as_i64().unwrap(),
            "key {key:?}"
        );
        for (n, p) in v["partition"].as_object().unwrap() {
            let n: u32 = n.parse().unwrap();
            assert_eq!(
                partition_for_key(key, n) as u64,
                p.as_u64().unwrap(),
                "key {key:?} over {n}"
            );
        }
    }
}
