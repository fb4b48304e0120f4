//! Property tests of the Kafka v2 batch codec (`seglog::record`): round trip, single-byte
//! corruption, truncation and walking concatenated batches. Crashes found by the fuzz
//! targets in `fuzz/` are kept at the end as named regression tests.

use proptest::prelude::*;
use seglog::record::{
    crc32c, encode_batch, Batch, BatchHeader, BatchIter, BatchSpec, DecodeError, EncodeError,
    CONTROL_BIT, DELETE_HORIZON_BIT, PARTITION_LEADER_EPOCH_OFFSET, TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
};
use seglog::{Compression, Header, Record, RecordView};

/// Header names drawn from a small set, so that names repeat within a record.
fn header() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            Just(String::new()),
            Just("trace".to_string()),
            Just("trace".to_string()),
            Just("ünïcödé".to_string()),
            "[a-z]{1,12}",
        ],
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
    )
        .prop_map(|(key, value)| Header { key, value })
}

/// Null, empty, short or (rarely) large byte strings.
fn bytes(large: bool) -> BoxedStrategy<Option<Vec<u8>>> {
    let max_large = if large { 70_000 } else { 300 };
    prop_oneof![
        2 => Just(None),
        2 => Just(Some(Vec::new())),
        6 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        1 => proptest::collection::vec(any::<u8>(), 0..max_large).prop_map(Some),
    ]
    .boxed()
}

/// Timestamps around `around`: mostly small steps either way (negative deltas), sometimes
/// the i64 extremes, sometimes `None` (the spec's default timestamp).
fn timestamp() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        6 => (-5_000i64..5_000).prop_map(|d| Some(1_700_000_000_000 + d)),
        1 => prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64),
            Just(0i64),
            any::<i64>()
        ]
        .prop_map(Some),
    ]
}

fn record(large: bool) -> impl Strategy<Value = Record> {
    (
        bytes(false),
        bytes(large),
        proptest::collection::vec(header(), 0..5),
        timestamp(),
    )
        .prop_map(|(key, value, headers, timestamp)| Record {
            key,
            value,
            headers,
            timestamp,
        })
}

fn spec() -> impl Strategy<Value = BatchSpec> {
    let attribute_bits = proptest::sample::subsequence(
        vec![
            TIMESTAMP_TYPE_BIT,
            TRANSACTIONAL_BIT,
            CONTROL_BIT,
            DELETE_HORIZON_BIT,
        ],
        0..=2,
    );
    (
        prop_oneof![
            6 => 0u64..1_000_000,
            1 => (i64::MAX as u64 - 20)..=i64::MAX as u64,
            1 => (i64::MAX as u64 + 1)..=u64::MAX,
        ],
        any::<i32>(),
        attribute_bits,
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
        prop_oneof![
            4 => Just(1_700_000_000_000i64),
            1 => any::<i64>()
        ],
        // Every codec this build has, Kafka's default level or one from its range.
        proptest::sample::select(
            Compression::ALL
                .into_iter()
                .filter(|c| c.is_available())
                .collect::<Vec<_>>(),
        ),
        any::<bool>(),
    )
        .prop_map(
            |(
                base_offset,
                epoch,
                bits,
                producer_id,
                producer_epoch,
                base_sequence,
                ts,
                codec,
                low,
            )| {
                let compression = match (codec, low) {
                    (Compression::Gzip { .. }, true) => Compression::Gzip { level: Some(1) },
                    (Compression::Lz4 { .. }, true) => Compression::Lz4 { level: Some(17) },
                    (Compression::Zstd { .. }, true) => Compression::Zstd { level: Some(-5) },
                    (c, _) => c,
                };
                BatchSpec {
                    base_offset,
                    partition_leader_epoch: epoch,
                    compression,
                    attributes: bits.iter().fold(0, |a, b| a | b),
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    default_timestamp: ts,
                }
            },
        )
}

/// The timestamp the codec must give record `r` of a batch encoded with `spec`.
fn expected_ts(spec: &BatchSpec, r: &Record) -> i64 {
    if spec.attributes & TIMESTAMP_TYPE_BIT != 0 {
        spec.default_timestamp
    } else {
        r.timestamp.unwrap_or(spec.default_timestamp)
    }
}

type Owned = (
    u64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// Every field of a view, owned, with the header iterator walked to its end.
fn owned(v: &RecordView<'_>) -> Owned {
    let headers: Vec<_> = v
        .headers()
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(headers.len(), v.headers().len(), "header count");
    (
        v.offset(),
        v.timestamp(),
        v.key().map(<[u8]>::to_vec),
        v.value().map(<[u8]>::to_vec),
        headers,
    )
}

fn decode(buf: &[u8]) -> Result<(BatchHeader, Vec<Owned>), DecodeError> {
    let batch = Batch::parse(buf)?;
    batch.validate_all()?;
    let mut scratch = Vec::new();
    let records = batch
        .records_with(&mut scratch)?
        .map(|r| r.map(|v| owned(&v)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((*batch.header(), records))
}

/// Encodes `records` as one batch, for tests whose inputs are always encodable.
fn encoded(spec: &BatchSpec, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&mut out, spec, records).expect("encodable input");
    out
}

/// Small, always encodable batches for the corruption and iteration tests.
fn small_batch() -> impl Strategy<Value = (BatchSpec, Vec<Record>)> {
    (
        0u64..1 << 40,
        any::<i32>(),
        proptest::collection::vec(record(false), 1..4),
    )
        .prop_map(|(base, epoch, mut records)| {
            for (i, r) in records.iter_mut().enumerate() {
                r.timestamp = Some(1_700_000_000_000 - i as i64 * 7);
            }
            let mut spec = BatchSpec::new(base, 1_700_000_000_000);
            spec.partition_leader_epoch = epoch;
            (spec, records)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(spec in spec(), records in proptest::collection::vec(record(true), 1..12)) {
        let n = records.len();
        let ts: Vec<i64> = records.iter().map(|r| expected_ts(&spec, r)).collect();
        let mut out = vec![0xAA; 3]; // encoding appends after whatever `out` holds
        let result = encode_batch(&mut out, &spec, &records);
        let delta_overflows = ts.iter().any(|t| t.checked_sub(ts[0]).is_none());
        let offset_overflows = spec.base_offset > i64::MAX as u64 - (n as u64 - 1);
        let header = match result {
            Err(EncodeError::TimestampDelta { .. }) if delta_overflows => {
                prop_assert_eq!(out, vec![0xAA; 3]);
                return Ok(());
            }
            Err(EncodeError::TooLarge { what: "base offset", .. }) if offset_overflows => {
                prop_assert_eq!(out, vec![0xAA; 3]);
                return Ok(());
            }
            Err(e) => panic!("unexpected encode error {e}"),
            Ok(h) => h,
        };
        prop_assert!(!delta_overflows && !offset_overflows);
        let bytes = &out[3..];

        let (parsed, decoded) = decode(bytes).expect("encoded batch decodes");
        prop_assert_eq!(parsed, header);
        prop_assert_eq!(BatchHeader::parse(bytes).unwrap(), header);
        prop_assert_eq!(parsed.size(), bytes.len());
        prop_assert_eq!(parsed.batch_length as usize, bytes.len() - 12);
        prop_assert_eq!(parsed.base_offset as u64, spec.base_offset);
        prop_assert_eq!(parsed.partition_leader_epoch, spec.partition_leader_epoch);
        prop_assert_eq!(parsed.magic, 2);
        prop_assert_eq!(parsed.crc, crc32c(&bytes[21..]));
        prop_assert_eq!(parsed.attributes, spec.attributes | spec.compression.id() as i16);
        prop_assert_eq!(parsed.codec().map(|c| c.id()), Some(spec.compression.id()));
        prop_assert_eq!(parsed.last_offset_delta as usize, n - 1);
        prop_assert_eq!(parsed.base_timestamp, ts[0]);
        prop_assert_eq!(parsed.max_timestamp, *ts.iter().max().unwrap());
        prop_assert_eq!(parsed.producer_id, spec.producer_id);
        prop_assert_eq!(parsed.producer_epoch, spec.producer_epoch);
        prop_assert_eq!(parsed.base_sequence, spec.base_sequence);
        prop_assert_eq!(parsed.records_count as usize, n);
        prop_assert_eq!(parsed.last_offset(), spec.base_offset + n as u64 - 1);

        prop_assert_eq!(decoded.len(), n);
        for (i, (r, d)) in records.iter().zip(&decoded).enumerate() {
            let headers: Vec<_> = r
                .headers
                .iter()
                .map(|h| (h.key.as_bytes().to_vec(), h.value.clone()))
                .collect();
            let want = (spec.base_offset + i as u64, ts[i], r.key.clone(), r.value.clone(), headers);
            prop_assert_eq!(d, &want, "record {}", i);
        }
        // Owned copies come back as they went in (with the effective timestamp).
        let batch = Batch::parse(bytes).unwrap();
        let mut scratch = Vec::new();
        for (r, v) in records.iter().zip(batch.records_with(&mut scratch).unwrap()) {
            let back = v.unwrap().to_record();
            prop_assert_eq!(&back.key, &r.key);
            prop_assert_eq!(&back.value, &r.value);
            prop_assert_eq!(&back.headers, &r.headers);
        }
    }

    #[test]
    fn single_byte_corruption_is_detected((spec, records) in small_batch(), xor in 1u8..=255) {
        let good = encoded(&spec, &records);
        let (header, want) = decode(&good).unwrap();
        let mut bad = good.clone();
        for i in 0..good.len() {
            bad[i] ^= xor;
            match decode(&bad) {
                Err(_) => {}
                // The CRC starts at `attributes`: base offset and leader epoch are not covered.
                Ok((h, got)) if i < 8 => {
                    prop_assert_ne!(h.base_offset, header.base_offset);
                    prop_assert_eq!(BatchHeader { base_offset: header.base_offset, ..h }, header);
                    let shift = |r: &Owned, base: i64| {
                        let mut r = r.clone();
                        r.0 -= base as u64;
                        r
                    };
                    for (g, w) in got.iter().zip(&want) {
                        prop_assert_eq!(shift(g, h.base_offset), shift(w, header.base_offset));
                    }
                    prop_assert_eq!(got.len(), want.len());
                }
                Ok((h, got)) if (PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4)
                    .contains(&i) =>
                {
                    prop_assert_ne!(h.partition_leader_epoch, header.partition_leader_epoch);
                    prop_assert_eq!(
                        BatchHeader { partition_leader_epoch: header.partition_leader_epoch, ..h },
                        header
                    );
                    prop_assert_eq!(&got, &want);
                }
                Ok(_) => panic!("flipping byte {i} with {xor:#04x} was not detected"),
            }
            bad[i] = good[i];
        }
    }

    #[test]
    fn every_prefix_is_an_error((spec, records) in small_batch()) {
        let good = encoded(&spec, &records);
        for len in 0..good.len() {
            let prefix = &good[..len];
            let r = Batch::parse(prefix).and_then(|b| b.validate());
            prop_assert!(
                matches!(r, Err(DecodeError::Truncated { .. })),
                "prefix of {} bytes: {:?}",
                len,
                r
            );
            let mut it = BatchIter::new(prefix);
            if len > 0 {
                let first = it.next();
                prop_assert!(
                    matches!(first, Some(Err(DecodeError::Truncated { .. }))),
                    "BatchIter over a {}-byte prefix: {:?}",
                    len,
                    first
                );
            }
            prop_assert!(it.next().is_none());
            prop_assert_eq!(it.position(), 0);
        }
    }

    #[test]
    fn batch_iter_walks_batches_then_stops_at_garbage(
        batches in proptest::collection::vec(small_batch(), 0..5),
        tail in prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 1..80),
            (small_batch(), any::<prop::sample::Index>()).prop_map(|((spec, records), cut)| {
                let b = encoded(&spec, &records);
                b[..1 + cut.index(b.len() - 1)].to_vec()
            }),
        ],
    ) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for (spec, records) in &batches {
            starts.push(buf.len());
            buf.extend_from_slice(&encoded(spec, records));
        }
        let tail_start = buf.len();
        buf.extend_from_slice(&tail);

        let mut it = BatchIter::new(&buf);
        for (k, (spec, records)) in batches.iter().enumerate() {
            let (pos, batch) = it.next().expect("a batch").expect("a valid batch");
            prop_assert_eq!(pos, starts[k]);
            prop_assert_eq!(batch.base_offset(), spec.base_offset);
            prop_assert_eq!(batch.as_bytes(), &encoded(spec, records)[..]);
            prop_assert_eq!(it.position(), pos + batch.as_bytes().len());
        }
        if !tail.is_empty() {
            let e = it.next().expect("an error at the tail").expect_err("garbage is not a batch");
            prop_assert!(e.position() >= tail_start, "error {:?} before the tail at {}", e, tail_start);
            prop_assert_eq!(it.position(), tail_start);
        }
        prop_assert!(it.next().is_none());
        prop_assert!(it.next().is_none());
        prop_assert_eq!(it.position(), tail_start);
    }
}

/// Encoding no records must fail cleanly: there is no last offset delta to write.
#[test]
fn regression_encode_empty_batch() {
    // Postmortem: `count.saturating_sub(1)` gave last_offset_delta -1, so the base-offset
    // bound check overflowed (panic in debug) and release builds wrote a batch the decoder
    // rejects.
    let mut out = vec![1, 2, 3];
    let r = encode_batch(&mut out, &BatchSpec::new(5, 0), &[] as &[Record]);
    assert_eq!(r, Err(EncodeError::Empty));
    assert_eq!(out, [1, 2, 3]);
}

/// `Batch::truncated_before` keeps a byte-exact prefix of the records and still ends just
/// before the cut, for every cut point of every golden fixture.
#[test]
fn truncated_before_keeps_exact_record_prefix() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "keyed_headers",
        "many",
        "old_timestamp",
        "single",
        "tombstone",
    ] {
        let bin = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let batch = Batch::parse(&bin).unwrap();
        let all: Vec<_> = batch.records().map(|r| r.unwrap()).collect();
        for cut in batch.base_offset()..=batch.last_offset() + 1 {
            let out = batch.truncated_before(cut).unwrap();
            let kept: Vec<_> = all.iter().filter(|r| r.offset() < cut).collect();
            let Some(out) = out else {
                assert!(kept.is_empty(), "{name} cut {cut}");
                continue;
            };
            let b = Batch::parse(&out).unwrap_or_else(|e| panic!("{name} cut {cut}: {e}"));
            b.validate().unwrap();
            assert_eq!(
                b.last_offset() + 1,
                cut.min(batch.last_offset() + 1),
                "{name} cut {cut}"
            );
            let got: Vec<_> = b.records().map(|r| r.unwrap()).collect();
            assert_eq!(got.len(), kept.len());
            for (g, k) in got.iter().zip(&kept) {
                assert_eq!(g, *k, "{name} cut {cut}");
            }
            let max_ts = kept.iter().map(|r| r.timestamp()).max().unwrap();
            assert_eq!(b.header().max_timestamp, max_ts);
            assert_eq!(b.header().base_timestamp, batch.header().base_timestamp);
        }
    }
}
