//! Arbitrary bytes as a `.log` file: walking, parsing and decoding never panic, and a batch
//! that decodes re-encodes to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seglog::record::{
    encode_batch, Batch, BatchHeader, BatchIter, BatchSpec, EncodeError, TIMESTAMP_TYPE_BIT,
};
use seglog::{Header, Record, RecordView};

type Owned = (
    u64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// Every field of a record, owned; walks the headers to their end.
fn touch(r: &RecordView<'_>) -> Owned {
    let headers: Vec<_> = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    // A record view exists only once its headers were checked, so all of them decode.
    assert_eq!(headers.len(), r.headers().len());
    assert_eq!(r.headers().is_empty(), headers.is_empty());
    assert_eq!(r.is_tombstone(), r.value().is_none());
    let _ = r.to_record();
    (
        r.offset(),
        r.timestamp(),
        r.key().map(<[u8]>::to_vec),
        r.value().map(<[u8]>::to_vec),
        headers,
    )
}

fn touch_header(h: &BatchHeader) {
    assert_eq!(h.magic, 2);
    assert!(h.size() >= 61);
    assert!(h.next_offset() > h.last_offset());
    assert!(h.last_offset() >= h.base_offset as u64);
    let _ = (
        h.compression(),
        h.is_log_append_time(),
        h.is_control(),
        h.is_transactional(),
    );
}

fn check_batch(batch: &Batch<'_>) {
    let h = *batch.header();
    touch_header(&h);
    assert_eq!(batch.as_bytes().len(), h.size());
    let valid = batch.validate();
    // Decoding record by record must agree with `validate` and stop after an error.
    let mut records: Vec<Owned> = Vec::new();
    let mut failed = false;
    for r in batch.records() {
        assert!(!failed, "record iterator yielded after an error");
        match r {
            Ok(v) => {
                assert!(v.offset() >= batch.base_offset() && v.offset() <= batch.last_offset());
                if let Some((prev, ..)) = records.last() {
                    assert!(v.offset() > *prev);
                }
                records.push(touch(&v));
            }
            Err(_) => failed = true,
        }
    }
    assert_eq!(valid.is_err(), failed);
    if valid.is_err() {
        return;
    }
    assert_eq!(records.len(), h.records_count as usize);
    for (r, back) in records.iter().zip(batch.records()) {
        let back = back.unwrap();
        assert_eq!(r.4.len(), back.headers().len());
    }
    reencode(&h, &records);
}

/// Re-encodes decoded records with the header's fields; they must decode the same.
fn reencode(h: &BatchHeader, records: &[Owned]) {
    let dense = records
        .iter()
        .enumerate()
        .all(|(i, r)| r.0 == h.base_offset as u64 + i as u64);
    let utf8_names = records
        .iter()
        .all(|r| r.4.iter().all(|(k, _)| std::str::from_utf8(k).is_ok()));
    if records.is_empty() || !dense || !utf8_names {
        return;
    }
    let log_append = h.attributes & TIMESTAMP_TYPE_BIT != 0;
    let input: Vec<Record> = records
        .iter()
        .map(|(_, ts, key, value, headers)| Record {
            key: key.clone(),
            value: value.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| Header {
                    key: String::from_utf8(k.clone()).unwrap(),
                    value: v.clone(),
                })
                .collect(),
            timestamp: Some(*ts),
        })
        .collect();
    let spec = BatchSpec {
        base_offset: h.base_offset as u64,
        partition_leader_epoch: h.partition_leader_epoch,
        attributes: h.attributes,
        compression: h.codec().unwrap_or_default(),
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        default_timestamp: h.max_timestamp,
    };
    let mut out = Vec::new();
    let first_ts = records[0].1;
    let delta_overflows =
        !log_append && records.iter().any(|r| r.1.checked_sub(first_ts).is_none());
    match encode_batch(&mut out, &spec, &input) {
        Err(EncodeError::TimestampDelta { .. }) if delta_overflows => {
            assert!(out.is_empty());
            return;
        }
        Err(e) => panic!("re-encoding decoded records failed: {e}"),
        Ok(_) => assert!(!delta_overflows),
    }
    let again = Batch::parse(&out).expect("re-encoded batch parses");
    again.validate().expect("re-encoded batch validates");
    let h2 = again.header();
    assert_eq!(h2.base_offset, h.base_offset);
    assert_eq!(h2.partition_leader_epoch, h.partition_leader_epoch);
    assert_eq!(h2.attributes, h.attributes);
    assert_eq!(h2.producer_id, h.producer_id);
    assert_eq!(h2.producer_epoch, h.producer_epoch);
    assert_eq!(h2.base_sequence, h.base_sequence);
    assert_eq!(h2.records_count, h.records_count);
    let decoded: Vec<Owned> = again.records().map(|r| touch(&r.unwrap())).collect();
    assert_eq!(decoded, records);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BatchHeader::parse(data) {
        touch_header(&h);
    }
    let mut iter = BatchIter::new(data);
    let mut end = 0;
    let mut failed = false;
    for item in &mut iter {
        assert!(!failed, "BatchIter yielded after an error");
        match item {
            Ok((pos, batch)) => {
                assert_eq!(pos, end);
                end = pos + batch.as_bytes().len();
                check_batch(&batch);
            }
            Err(e) => {
                assert!(e.position() >= end && e.position() <= data.len());
                failed = true;
            }
        }
    }
    assert_eq!(iter.position(), end);
    assert_eq!(failed, end < data.len());
});
