//! Each fast path pinned against the checked path it replaces:
//!
//! - encoding from `Record`, `RecordRef` and re-appended `RecordView`s gives the same bytes,
//!   and decodes back field for field, for every codec;
//! - `read_record`, `read_in_place` and `read_into` agree with `read` on a multi-segment
//!   log (plain, compressed, compacted) reopened so that nothing is checked yet, and again
//!   once everything is;
//! - a damaged batch is `Error::Corrupt` naming its file on every path, every time;
//! - stepping over records (`skip_below`) inside dense and sparse batches gives what
//!   decoding every record gives;
//! - `BatchHeader::parse` follows FORMAT.md §3.6 on random and mutated headers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use seglog::record::{
    crc32c, encode_batch, Batch, BatchHeader, BatchIter, BatchSpec, DecodeError, EncodeError,
    ATTRIBUTES_OFFSET, BATCH_HEADER_SIZE, COMPRESSION_MASK, CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET,
    LENGTH_OFFSET, MAGIC_OFFSET, MIN_BATCH_LENGTH, RECORDS_COUNT_OFFSET, TIMESTAMP_TYPE_BIT,
};
use seglog::{
    AsRecord, CleanupPolicy, Compression, Error, Header, OffsetMode, Partition, Record, RecordRef,
    RecordView, Store, StoreConfig, TopicConfig,
};

// ---------------------------------------------------------------------------------------
// Shared helpers

/// A record as read back: offset, timestamp, key, value, header pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The `Rec` a `Record` appended at `offset` with timestamp `ts` reads back as.
fn rec_of(offset: u64, ts: i64, r: &Record) -> Rec {
    Rec {
        offset,
        ts,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r
            .headers
            .iter()
            .map(|h| (h.key.as_bytes().to_vec(), h.value.clone()))
            .collect(),
    }
}

fn rec(r: &RecordView<'_>) -> Rec {
    Rec {
        offset: r.offset(),
        ts: r.timestamp(),
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().map(<[u8]>::to_vec),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect(),
    }
}

/// Bytes of length `len` derived from `seed`: cheap to make, and hardly compressible (so
/// that compressed topics still fill several segments).
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Lengths that give record-length varints of 1, 2 and 3 bytes (and 2-byte lengths whose
/// second byte is large, just under 8 KiB, where the dense skip switches to its slow walk).
fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..60,
        3 => 60usize..400,
        1 => 7_000usize..8_300,
        1 => 8_300usize..20_000,
    ]
}

fn opt_bytes(max_small: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        3 => (0..max_small, any::<u8>()).prop_map(|(n, s)| Some(bytes(n, s))),
    ]
}

fn record_strategy() -> impl Strategy<Value = Record> {
    let value = prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => (len_strategy(), any::<u8>()).prop_map(|(n, s)| Some(bytes(n, s))),
    ];
    let header = ("[a-z]{0,6}", opt_bytes(20)).prop_map(|(key, value)| Header { key, value });
    (
        opt_bytes(40),
        value,
        proptest::collection::vec(header, 0..4),
        prop_oneof![
            9 => proptest::option::of(-1_000_000i64..3_000_000_000_000),
            1 => proptest::option::of(any::<i64>()),
        ],
    )
        .prop_map(|(key, value, headers, timestamp)| Record {
            key,
            value,
            headers,
            timestamp,
        })
}

fn codec_strategy() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip { level: None }),
        Just(Compression::Snappy),
        Just(Compression::Lz4 { level: None }),
        Just(Compression::Zstd { level: None }),
    ]
}

/// Decodes every record of the one batch at the start of `bytes`, decompressing.
fn decode_all(bytes: &[u8]) -> Vec<Rec> {
    let batch = Batch::parse(bytes).unwrap();
    let mut scratch = Vec::new();
    let it = batch.records_with(&mut scratch).unwrap();
    it.map(|r| rec(&r.unwrap())).collect()
}

fn store_config() -> StoreConfig {
    StoreConfig::default().maintenance_interval(None)
}

fn open(dir: &Path) -> Store {
    Store::open_with(dir, store_config()).unwrap()
}

/// `read(o, 1 << 24)` repeated until the log end: every record, by the checked path.
fn read_everything(p: &Partition) -> BTreeMap<u64, Rec> {
    let mut all = BTreeMap::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let f = p.read(next, 1 << 24).unwrap();
        for r in f.records() {
            all.insert(r.offset(), rec(&r));
        }
        assert!(f.next_offset() > next, "no progress at {next}");
        next = f.next_offset();
    }
    all
}

// ---------------------------------------------------------------------------------------
// (a) Encoding

/// A header as `RecordRef::with_headers` takes it.
type HeaderPair<'a> = (&'a str, Option<&'a [u8]>);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `Vec<Record>`, `Vec<RecordRef>` over the same bytes and the decoded `RecordView`s
    /// encode to the same batch, and that batch decodes to the records (timestamps
    /// resolved as FORMAT.md says), for every codec and both timestamp types.
    #[test]
    fn encoding_is_the_same_from_owned_borrowed_and_viewed_records(
        records in proptest::collection::vec(record_strategy(), 1..10),
        base in 0u64..1_000_000,
        default_ts in 0i64..3_000_000_000_000,
        log_append in any::<bool>(),
        codec in codec_strategy(),
    ) {
        let mut spec = BatchSpec::new(base, default_ts);
        spec.compression = codec;
        if log_append {
            spec.attributes |= TIMESTAMP_TYPE_BIT;
        }
        let resolved = |r: &Record| match r.timestamp {
            Some(ts) if !log_append => ts,
            _ => default_ts,
        };
        let mut owned = vec![0xAA; 3]; // something before: the batch is appended after it
        let encoded = encode_batch(&mut owned, &spec, &records);
        let pairs: Vec<Vec<HeaderPair<'_>>> = records
            .iter()
            .map(|r| r.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref())).collect())
            .collect();
        let refs: Vec<RecordRef<'_>> = records
            .iter()
            .zip(&pairs)
            .map(|(r, pairs)| {
                let mut x = RecordRef::default().with_headers(pairs);
                x.key = r.key.as_deref();
                x.value = r.value.as_deref();
                x.timestamp = r.timestamp;
                x
            })
            .collect();
        let mut borrowed = vec![0xAA; 3];
        prop_assert_eq!(&encode_batch(&mut borrowed, &spec, &refs), &encoded);
        prop_assert_eq!(&borrowed, &owned);
        // A timestamp too far from the first record's for a 64-bit delta is refused,
        // leaving the buffer as it was.
        let base_ts = resolved(&records[0]);
        let too_far = records
            .iter()
            .map(resolved)
            .find(|ts| ts.checked_sub(base_ts).is_none());
        let h = match (encoded, too_far) {
            (Ok(h), None) => h,
            (Err(e), Some(ts)) => {
                prop_assert_eq!(e, EncodeError::TimestampDelta { timestamp: ts, base: base_ts });
                prop_assert_eq!(owned, vec![0xAA; 3]);
                return Ok(());
            }
            (got, want) => {
                prop_assert!(false, "encode gave {:?}; a timestamp too far: {:?}", got, want);
                unreachable!()
            }
        };
        let owned = owned.split_off(3);
        prop_assert_eq!(owned.len(), h.size());

        let batch = Batch::parse(&owned).unwrap();
        let mut scratch = Vec::new();
        let views: Vec<RecordView<'_>> = batch
            .records_with(&mut scratch)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // A view's borrowed form lists the headers its record was encoded from.
        let pairs_of = |r: RecordRef<'_>| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            r.headers().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect()
        };
        for (v, r) in views.iter().zip(&refs) {
            prop_assert_eq!(v.as_record().header_count(), r.header_count());
            prop_assert_eq!(pairs_of(v.as_record()), pairs_of(*r));
            prop_assert_eq!(pairs_of(records[0].as_record()), pairs_of(refs[0]));
        }
        let mut viewed = Vec::new();
        prop_assert_eq!(encode_batch(&mut viewed, &spec, &views).unwrap(), h);
        prop_assert_eq!(&viewed, &owned);

        // decode(encode(x)) == x, field for field.
        let max_ts = records.iter().map(resolved).max().unwrap();
        let expected: Vec<Rec> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let ts = if log_append { max_ts } else { resolved(r) };
                rec_of(base + i as u64, ts, r)
            })
            .collect();
        prop_assert_eq!(decode_all(&owned), expected);
        prop_assert_eq!(h.base_offset, base as i64);
        prop_assert_eq!(h.records_count as usize, records.len());
        prop_assert_eq!(h.last_offset_delta as usize, records.len() - 1);
        prop_assert_eq!(h.base_timestamp, resolved(&records[0]));
        prop_assert_eq!(h.max_timestamp, max_ts);
        prop_assert_eq!(h.compression(), codec.id());
        // The views of a record-by-record `to_record` copy encode the same as well.
        let copies: Vec<Record> = views.iter().map(RecordView::to_record).collect();
        let mut copied = Vec::new();
        encode_batch(&mut copied, &spec, &copies).unwrap();
        prop_assert_eq!(&copied, &owned);
    }
}

// ---------------------------------------------------------------------------------------
// (b) Reads

/// One append: records' key index (into a small key set, for compaction) and value size.
type Append = Vec<(u8, usize)>;

fn appends_strategy() -> impl Strategy<Value = Vec<Append>> {
    let size = prop_oneof![3 => 0usize..200, 1 => 0usize..3000];
    proptest::collection::vec(proptest::collection::vec((0u8..6, size), 1..50), 1..10)
}

/// What the log is built as.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Plain(Compression),
    Compacted(Compression),
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    let codec = prop_oneof![
        2 => Just(Compression::None),
        1 => Just(Compression::Lz4 { level: None }),
        1 => Just(Compression::Zstd { level: None }),
    ];
    (codec, any::<bool>()).prop_map(|(c, compacted)| {
        if compacted {
            Kind::Compacted(c)
        } else {
            Kind::Plain(c)
        }
    })
}

/// Small segments: a log of a few batches spans several.
const SEGMENT_BYTES: u64 = 16 * 1024;

/// Appends `records` as one batch, or split in halves when that is larger than a segment.
fn append_fitting<R: AsRecord>(p: &Partition, records: &[R]) {
    match p.append(records) {
        Ok(_) => {}
        Err(Error::BatchTooLarge { .. }) if records.len() > 1 => {
            let (a, b) = records.split_at(records.len() / 2);
            append_fitting(p, a);
            append_fitting(p, b);
        }
        Err(e) => panic!("append: {e}"),
    }
}

/// Builds topic "t" in `dir` as `kind` says, with `appends` (every other one appended as
/// `RecordRef`s), then closes the store. Returns the records appended, by offset.
fn build(dir: &Path, kind: Kind, appends: &[Append]) -> BTreeMap<u64, Rec> {
    let store = open(dir);
    let (codec, compacted) = match kind {
        Kind::Plain(c) => (c, false),
        Kind::Compacted(c) => (c, true),
    };
    let mut cfg = TopicConfig::default().segment_bytes(SEGMENT_BYTES);
    if codec != Compression::None {
        cfg = cfg.compression(codec);
    }
    if compacted {
        cfg = cfg.cleanup_policy(CleanupPolicy::Compact);
    }
    let p = store
        .create_topic("t", cfg)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone();
    let mut appended = BTreeMap::new();
    for (i, batch) in appends.iter().enumerate() {
        let records: Vec<Record> = batch
            .iter()
            .enumerate()
            .map(|(j, &(k, size))| {
                let mut r = Record::new(bytes(size, (i * 7 + j) as u8))
                    .with_timestamp(1_600_000_000_000 + i as i64);
                if compacted || k % 3 != 0 {
                    r = r.with_key(format!("k{k}").into_bytes());
                }
                if k == 5 {
                    r = r.with_header(
                        "h",
                        if j % 2 == 0 {
                            None
                        } else {
                            Some(vec![j as u8])
                        },
                    );
                }
                r
            })
            .collect();
        for r in &records {
            let offset = appended.len() as u64;
            appended.insert(offset, rec_of(offset, r.timestamp.unwrap(), r));
        }
        if i % 2 == 0 {
            append_fitting(&p, &records);
        } else {
            let refs: Vec<RecordRef<'_>> = records.iter().map(RecordRef::from).collect();
            append_fitting(&p, &refs);
        }
    }
    if compacted {
        p.compact_now().unwrap();
    }
    drop(p);
    store.close().unwrap();
    appended
}

fn error_text<T>(r: &Result<T, Error>) -> Option<String> {
    r.as_ref().err().map(ToString::to_string)
}

/// What the fast reads at one offset returned.
struct Fast {
    in_place: Result<(Vec<u8>, Vec<Rec>, u64), Error>,
    point: Result<Option<Rec>, Error>,
    into: Result<seglog::Fetch, Error>,
}

/// `read_record`, `read_in_place` and `read_into` at `o`.
fn fast_reads(p: &Partition, o: u64, max: usize) -> Fast {
    let point = p.read_record(o, |r| rec(&r));
    let in_place = p.read_in_place(o, max, |f| {
        (
            f.as_bytes().to_vec(),
            f.records().map(|r| rec(&r)).collect::<Vec<_>>(),
            f.next_offset(),
        )
    });
    let into = p.read_into(o, max, vec![0xEE; 17]);
    Fast {
        in_place,
        point,
        into,
    }
}

/// Every fast read at `o` against the checked `read`: `read_record`, `read_in_place` (a
/// prefix of `read`'s batches, one segment at most) and `read_into`.
fn check_reads_at(p: &Partition, all: &BTreeMap<u64, Rec>, o: u64, max: usize) {
    compare_reads(p, all, o, max, fast_reads(p, o, max));
}

/// `fast` (the fast reads at `o`, made earlier) against `read(o, max)` and the model.
fn compare_reads(p: &Partition, all: &BTreeMap<u64, Rec>, o: u64, max: usize, fast: Fast) {
    let Fast {
        in_place,
        point,
        into,
    } = fast;
    let read = p.read(o, max);
    let Ok(read) = read else {
        let e = error_text(&read);
        assert_eq!(error_text(&in_place), e, "read_in_place({o})");
        assert_eq!(error_text(&point), e, "read_record({o})");
        assert_eq!(error_text(&into), e, "read_into({o})");
        return;
    };
    let records: Vec<Rec> = read.records().map(|r| rec(&r)).collect();
    // The checked read against the model (every record, read in order).
    let from_model: Vec<Rec> = all
        .range(o..)
        .map(|(_, r)| r.clone())
        .take(records.len())
        .collect();
    assert_eq!(records, from_model, "read({o}, {max})");

    // read_record: the record at `o` of `read`, or none.
    let expected = records.first().filter(|r| r.offset == o).cloned();
    assert_eq!(expected.as_ref(), all.get(&o), "model at {o}");
    assert_eq!(point.unwrap(), expected, "read_record({o})");

    // read_in_place: a prefix of `read`'s batches and records.
    let (ip_bytes, ip_records, ip_next) = in_place.unwrap();
    assert!(
        read.as_bytes().starts_with(&ip_bytes),
        "read_in_place({o}, {max}): {} bytes, not a prefix of read's {}",
        ip_bytes.len(),
        read.as_bytes().len()
    );
    assert_eq!(
        ip_records[..],
        records[..ip_records.len()],
        "read_in_place({o}) records"
    );
    assert_eq!(
        ip_bytes.is_empty(),
        read.is_empty(),
        "read_in_place({o}) emptiness"
    );
    if ip_bytes.len() == read.as_bytes().len() {
        assert_eq!(
            ip_next,
            read.next_offset(),
            "read_in_place({o}) next_offset"
        );
    } else {
        let last = BatchIter::new(&ip_bytes).last().unwrap().unwrap().1;
        assert_eq!(
            ip_next,
            last.last_offset() + 1,
            "read_in_place({o}) next_offset"
        );
        assert!(ip_next < read.next_offset());
    }
    if ip_bytes.is_empty() {
        assert_eq!(ip_next, read.next_offset());
    }

    let into = into.unwrap();
    assert_eq!(into.as_bytes(), read.as_bytes(), "read_into({o})");
    assert_eq!(into.next_offset(), read.next_offset(), "read_into({o})");
    let into_records: Vec<Rec> = into.records().map(|r| rec(&r)).collect();
    assert_eq!(into_records, records, "read_into({o}) records");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// On a reopened multi-segment log (nothing checked yet, then everything), the fast
    /// reads agree with `read` at random offsets, gaps, the log start, the end and past it.
    #[test]
    fn fast_reads_agree_with_read(
        kind in kind_strategy(),
        appends in appends_strategy(),
        picks in proptest::collection::vec((any::<u64>(), 0usize..4), 8..24),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let appended = build(dir.path(), kind, &appends);
        let store = open(dir.path());
        let p = store.topic("t").unwrap().partition(0).unwrap().clone();
        let (start, end) = (p.log_start_offset(), p.log_end_offset());
        prop_assert_eq!(end, appended.len() as u64);
        let mut offsets = vec![start, end, end + 1];
        offsets.extend(picks.iter().map(|&(x, _)| x % (end + 3)));
        let maxes = [1usize, 300, 9_000, 1 << 20];
        let max_of = |i: usize| maxes[picks.get(i).map_or(i, |p| p.1) % maxes.len()];
        // The first pass reads with the fast paths before anything else has read (each
        // batch's first read checks it, out of order); the second finds them checked. Both
        // are compared with `read` and the model afterwards.
        for _pass in 0..2 {
            let fast: Vec<Fast> = offsets
                .iter()
                .enumerate()
                .map(|(i, &o)| fast_reads(&p, o, max_of(i)))
                .collect();
            let all = read_everything(&p);
            for ((i, &o), fast) in offsets.iter().enumerate().zip(fast) {
                compare_reads(&p, &all, o, max_of(i), fast);
            }
        }
        // And every offset, once everything is checked; what was appended reads back.
        let all = read_everything(&p);
        if let Kind::Plain(_) = kind {
            prop_assert_eq!(&all, &appended);
        }
        for o in start..=end {
            check_reads_at(&p, &all, o, 1);
        }
        drop(p);
        store.close().unwrap();
    }
}

/// `build` makes what `fast_reads_agree_with_read` needs: several segments, and after
/// compaction sparse batches (fewer records than offsets) and gaps; compressed batches on
/// a compressed topic, compacted too.
#[test]
fn build_makes_segments_sparse_batches_and_gaps() {
    let appends: Vec<Append> = (0..8)
        .map(|i| (0..30).map(|j| ((i + j) as u8 % 6, 500)).collect())
        .collect();
    for codec in [Compression::None, Compression::Zstd { level: None }] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), Kind::Compacted(codec), &appends);
        let files = log_files(dir.path());
        assert!(files.len() >= 3, "{} segments", files.len());
        let (mut sparse, mut compressed, mut offsets) = (0, 0, Vec::new());
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            for b in BatchIter::new(&bytes) {
                let (_, b) = b.unwrap();
                let h = b.header();
                sparse += usize::from(h.records_count < h.last_offset_delta + 1);
                compressed += usize::from(h.compression() != 0);
                offsets.extend(decode_all(b.as_bytes()).iter().map(|r| r.offset));
            }
        }
        assert!(sparse > 0, "{codec:?}: no sparse batch");
        assert_eq!(compressed > 0, codec != Compression::None, "{codec:?}");
        assert!(offsets.len() < 240, "{codec:?}: compaction removed nothing");
        let store = open(dir.path());
        let p = store.topic("t").unwrap().partition(0).unwrap().clone();
        let all = read_everything(&p);
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), offsets);
        for o in 0..=p.log_end_offset() + 1 {
            check_reads_at(&p, &all, o, 1);
            check_reads_at(&p, &all, o, 5000);
        }
        drop(p);
        store.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// (c) Corrupt batches

/// The sealed segments' `.log` files of partition `t-0`, in offset order.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// `(file position, first offset, last offset, size)` of each batch in `bytes`.
fn batches_of(bytes: &[u8]) -> Vec<(usize, u64, u64, usize)> {
    BatchIter::new(bytes)
        .map(|b| {
            let (pos, b) = b.unwrap();
            (pos, b.base_offset(), b.last_offset(), b.as_bytes().len())
        })
        .collect()
}

fn assert_corrupt<T: std::fmt::Debug>(what: &str, r: Result<T, Error>, file: &Path) {
    match r {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, file, "{what}: wrong file"),
        other => panic!(
            "{what}: expected Error::Corrupt naming {}, got {other:?}",
            file.display()
        ),
    }
}

/// Any error that says the batch is bad, for a compressed batch whose payload is damaged
/// under a good CRC.
fn is_bad_batch_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. } | Error::CodecDisabled { .. } | Error::UnsupportedCompression { .. }
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A flipped byte in the records of a sealed segment's batch fails its CRC: `read`,
    /// `read_in_place` and `read_record` at each of its offsets say `Corrupt`, naming the
    /// file, every time; the other batches still read.
    #[test]
    fn corrupt_batch_is_corrupt_on_every_path(
        appends in proptest::collection::vec(proptest::collection::vec((0u8..6, 0usize..600), 1..20), 4..10),
        pick in any::<usize>(),
        at in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), Kind::Plain(Compression::None), &appends);
        let files = log_files(dir.path());
        let sealed = &files[..files.len() - 1];
        prop_assume!(!sealed.is_empty());
        let file = sealed[pick % sealed.len()].clone();
        let mut bytes = std::fs::read(&file).unwrap();
        let batches = batches_of(&bytes);
        let (pos, first, last, size) = batches[(pick / 7) % batches.len()];
        // A byte of the records section (the CRC covers it).
        let i = pos + BATCH_HEADER_SIZE + at % (size - BATCH_HEADER_SIZE);
        bytes[i] ^= mask;
        std::fs::write(&file, &bytes).unwrap();

        let store = open(dir.path());
        let p = store.topic("t").unwrap().partition(0).unwrap().clone();
        for attempt in 0..2 {
            for o in first..=last {
                let what = |path: &str| format!("attempt {attempt}: {path}({o})");
                assert_corrupt(&what("read"), p.read(o, 1 << 20).map(|f| f.as_bytes().len()), &file);
                assert_corrupt(&what("read_in_place"), p.read_in_place(o, 1 << 20, |f| f.as_bytes().len()), &file);
                assert_corrupt(&what("read_record"), p.read_record(o, |r| r.offset()), &file);
                assert_corrupt(&what("read_into"), p.read_into(o, 1, Vec::new()).map(|f| f.as_bytes().len()), &file);
            }
            // The other batches: one batch per read, so the damaged one is not reached.
            for o in (0..p.log_end_offset()).filter(|o| !(first..=last).contains(o)) {
                let f = p.read(o, 1).unwrap();
                let r = f.records().next().unwrap();
                prop_assert_eq!(r.offset(), o);
                let point = p.read_record(o, |r| rec(&r)).unwrap();
                prop_assert_eq!(point, Some(rec(&r)));
                let ip = p.read_in_place(o, 1, |f| f.records().next().map(|r| rec(&r))).unwrap();
                prop_assert_eq!(ip, Some(rec(&r)));
            }
        }
        drop(p);
        store.close().unwrap();
    }

    /// A damaged byte in a compressed batch's payload under a recomputed CRC: every path
    /// fails with a bad-batch error or (the codec did not notice) returns the same records
    /// as the others; never a panic. Damage to the codec's frame magic (the first payload
    /// byte) is always an error.
    #[test]
    fn corrupt_compressed_payload_is_an_error_or_agrees(
        codec in prop_oneof![
            Just(Compression::Gzip { level: None }),
            Just(Compression::Snappy),
            Just(Compression::Lz4 { level: None }),
            Just(Compression::Zstd { level: None }),
        ],
        appends in proptest::collection::vec(proptest::collection::vec((0u8..6, 0usize..600), 1..20), 3..8),
        pick in any::<usize>(),
        at in any::<usize>(),
        magic in any::<bool>(),
        mask in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), Kind::Plain(codec), &appends);
        let files = log_files(dir.path());
        let file = files[pick % files.len()].clone();
        let mut bytes = std::fs::read(&file).unwrap();
        let batches = batches_of(&bytes);
        prop_assume!(!batches.is_empty());
        let (pos, first, last, size) = batches[(pick / 7) % batches.len()];
        let payload = size - BATCH_HEADER_SIZE;
        let i = pos + BATCH_HEADER_SIZE + if magic { 0 } else { at % payload };
        bytes[i] ^= mask;
        let crc = crc32c(&bytes[pos + ATTRIBUTES_OFFSET..pos + size]);
        bytes[pos + CRC_OFFSET..pos + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&file, &bytes).unwrap();

        let store = open(dir.path());
        let p = store.topic("t").unwrap().partition(0).unwrap().clone();
        let mut outcomes = Vec::new();
        for _attempt in 0..2 {
            for o in first..=last {
                let read = p.read(o, 1).map(|f| f.records().map(|r| rec(&r)).next());
                let ip = p.read_in_place(o, 1, |f| f.records().map(|r| rec(&r)).next());
                let point = p.read_record(o, |r| rec(&r));
                for (what, r) in [("read", &read), ("read_in_place", &ip)] {
                    if let Err(e) = r {
                        prop_assert!(is_bad_batch_error(e), "{}({}): {:?}", what, o, e);
                    }
                }
                if let Err(e) = &point {
                    prop_assert!(is_bad_batch_error(e), "read_record({}): {:?}", o, e);
                }
                let read_err = read.as_ref().err().map(ToString::to_string);
                prop_assert_eq!(ip.as_ref().err().map(ToString::to_string), read_err.clone(), "read_in_place({})", o);
                prop_assert_eq!(point.as_ref().err().map(ToString::to_string), read_err.clone(), "read_record({})", o);
                if magic {
                    prop_assert!(read.is_err(), "damaged {:?} frame magic read as {:?}", codec, read);
                }
                if let (Ok(read), Ok(ip), Ok(point)) = (&read, &ip, &point) {
                    prop_assert_eq!(read, ip);
                    prop_assert_eq!(read.as_ref().filter(|r| r.offset == o), point.as_ref());
                }
                outcomes.push((read_err, point.ok()));
            }
        }
        let (a, b) = outcomes.split_at(outcomes.len() / 2);
        prop_assert_eq!(a, b, "the second attempt differs from the first");
        drop(p);
        store.close().unwrap();
    }
}

/// A batch is checked once per process (README, "Semantics"): one that a process read
/// and then found damaged on disk — changed while no store had it open — is `Corrupt` on
/// every path of the next process, however often the first one had read it.
#[test]
fn batch_damaged_between_processes_is_corrupt_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let appends: Vec<Append> = (0..6).map(|_| vec![(1, 300); 10]).collect();
    build(dir.path(), Kind::Plain(Compression::None), &appends);
    let file = log_files(dir.path())[0].clone();
    let (pos, first, last, size) = batches_of(&std::fs::read(&file).unwrap())[0];

    let store = open(dir.path());
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    // First reads: the batch is checked, and good.
    assert_eq!(
        p.read(first, 1).unwrap().records().count() as u64,
        last - first + 1
    );
    assert!(p.read_record(last, |r| r.offset()).unwrap().is_some());
    drop(p);
    store.close().unwrap();
    // Then a byte of a record value changes on disk, with no store open.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[pos + size - 3] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let store = open(dir.path());
    let p = store.topic("t").unwrap().partition(0).unwrap().clone();
    for o in first..=last {
        assert_corrupt(
            &format!("read({o})"),
            p.read(o, 1).map(|f| f.as_bytes().len()),
            &file,
        );
        assert_corrupt(
            &format!("read_in_place({o})"),
            p.read_in_place(o, 1, |f| f.as_bytes().len()),
            &file,
        );
        assert_corrupt(
            &format!("read_record({o})"),
            p.read_record(o, |r| r.offset()),
            &file,
        );
    }
    drop(p);
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// (d) Stepping over records

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A batch (dense, or sparse from `Batch::filtered`) kept at its offsets by
    /// `append_raw`: for every offset from its base to its last, the records a read from
    /// there yields (stepped over by `skip_below`), and the point lookup, are what decoding
    /// every record and keeping those at or past the offset gives.
    #[test]
    fn stepping_over_records_agrees_with_decoding(
        sizes in proptest::collection::vec(len_strategy(), 1..40),
        keep in proptest::collection::vec(any::<bool>(), 40),
        sparse in any::<bool>(),
        base in 0u64..100_000,
        codec in prop_oneof![3 => Just(Compression::None), 1 => Just(Compression::Lz4 { level: None })],
    ) {
        let records: Vec<Record> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut r = Record::new(bytes(n, i as u8)).with_timestamp(1_000 + i as i64);
                if i % 3 != 0 {
                    r = r.with_key(vec![i as u8; i % 4]);
                }
                if i % 4 == 1 {
                    r = r.with_header("x", Some(bytes(i, 3)));
                }
                r
            })
            .collect();
        let mut spec = BatchSpec::new(base, 0);
        spec.compression = codec;
        let mut batch = Vec::new();
        encode_batch(&mut batch, &spec, &records).unwrap();
        if sparse {
            let b = Batch::parse(&batch).unwrap();
            let (filtered, _) = b
                .filtered(|r| keep[(r.offset() - base) as usize], None)
                .unwrap();
            batch = filtered;
        }
        let decoded = decode_all(&batch);
        let (first, last) = {
            let b = Batch::parse(&batch).unwrap();
            (b.base_offset(), b.last_offset())
        };

        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let p = store
            .create_topic("t", TopicConfig::default())
            .unwrap()
            .partition(0)
            .unwrap()
            .clone();
        p.append_raw(&batch, OffsetMode::Keep).unwrap();
        for o in first..=last {
            let want: Vec<Rec> = decoded.iter().filter(|r| r.offset >= o).cloned().collect();
            let in_place = p.read_in_place(o, 1, |f| f.records().map(|r| rec(&r)).collect::<Vec<_>>()).unwrap();
            prop_assert_eq!(&in_place, &want, "read_in_place({}) of a batch {}..={}", o, first, last);
            let fetch = p.read(o, 1).unwrap();
            let read: Vec<Rec> = fetch.records().map(|r| rec(&r)).collect();
            prop_assert_eq!(&read, &want, "read({})", o);
            let point = p.read_record(o, |r| rec(&r)).unwrap();
            prop_assert_eq!(point.as_ref(), decoded.iter().find(|r| r.offset == o), "read_record({})", o);
        }
        drop(p);
        store.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// (e) Header parse

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// FORMAT.md §3.6, checks 1–7 in order: the error `BatchHeader::parse` must give, or
/// `None` when the header is acceptable.
fn spec_error(b: &[u8]) -> Option<DecodeError> {
    if b.len() < 12 {
        return Some(DecodeError::Truncated { position: b.len() });
    }
    let (base, len) = (be_i64(b, 0), be_i32(b, LENGTH_OFFSET));
    if len < MIN_BATCH_LENGTH as i32 {
        return Some(DecodeError::BadField {
            field: "batchLength",
            position: LENGTH_OFFSET,
            value: len as i64,
        });
    }
    if base < 0 {
        return Some(DecodeError::BadField {
            field: "baseOffset",
            position: 0,
            value: base,
        });
    }
    if let Some(&m) = b.get(MAGIC_OFFSET) {
        if m as i8 != 2 {
            return Some(DecodeError::BadMagic {
                position: 0,
                magic: m as i8,
            });
        }
    }
    if b.len() < BATCH_HEADER_SIZE {
        return Some(DecodeError::Truncated { position: b.len() });
    }
    let delta = be_i32(b, LAST_OFFSET_DELTA_OFFSET);
    if delta < 0 || base.checked_add(delta as i64).is_none() {
        return Some(DecodeError::BadField {
            field: "lastOffsetDelta",
            position: LAST_OFFSET_DELTA_OFFSET,
            value: delta as i64,
        });
    }
    let count = be_i32(b, RECORDS_COUNT_OFFSET) as i64;
    let compressed = i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]])
        & COMPRESSION_MASK
        != 0;
    if count < 0 || count > delta as i64 + 1 || (!compressed && 7 * count > len as i64 - 49) {
        return Some(DecodeError::BadField {
            field: "recordsCount",
            position: RECORDS_COUNT_OFFSET,
            value: count,
        });
    }
    None
}

fn check_header(b: &[u8]) -> Result<(), TestCaseError> {
    match (BatchHeader::parse(b), spec_error(b)) {
        (Ok(h), None) => {
            prop_assert_eq!(h.base_offset, be_i64(b, 0));
            prop_assert_eq!(h.batch_length, be_i32(b, LENGTH_OFFSET));
            prop_assert_eq!(h.magic, 2);
            prop_assert_eq!(
                h.crc,
                u32::from_be_bytes(b[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap())
            );
            prop_assert_eq!(h.last_offset_delta, be_i32(b, LAST_OFFSET_DELTA_OFFSET));
            prop_assert_eq!(h.base_timestamp, be_i64(b, 27));
            prop_assert_eq!(h.max_timestamp, be_i64(b, 35));
            prop_assert_eq!(h.producer_id, be_i64(b, 43));
            prop_assert_eq!(h.producer_epoch, i16::from_be_bytes([b[51], b[52]]));
            prop_assert_eq!(h.base_sequence, be_i32(b, 53));
            prop_assert_eq!(h.records_count, be_i32(b, RECORDS_COUNT_OFFSET));
            prop_assert_eq!(h.size(), be_i32(b, LENGTH_OFFSET) as usize + 12);
        }
        (Err(got), Some(want)) => prop_assert_eq!(got, want),
        (got, want) => prop_assert!(false, "parse gave {:?}, FORMAT.md says {:?}", got, want),
    }
    Ok(())
}

/// A valid header (with some records' worth of length), as the encoder writes it.
fn valid_header(n: usize, base: u64, codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..n).map(|i| Record::new(vec![i as u8; i])).collect();
    let mut spec = BatchSpec::new(base, 5);
    spec.compression = codec;
    let mut out = Vec::new();
    encode_batch(&mut out, &spec, &records).unwrap();
    out
}

/// Interesting values for a field of `width` bytes.
fn field_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(1),
        Just(2),
        Just(48),
        Just(49),
        Just(i32::MAX as i64),
        Just(i32::MIN as i64),
        Just(i64::MAX),
        Just(i64::MIN),
        -100i64..1000,
        any::<i64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes of 0..80: the errors and values FORMAT.md §3.6 gives, never a panic.
    #[test]
    fn header_parse_of_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        check_header(&b)?;
    }

    /// Random bytes with the magic right and a plausible length, to reach the later checks.
    #[test]
    fn header_parse_of_random_v2_bytes(
        mut b in proptest::collection::vec(any::<u8>(), 0..80),
        len in 0i32..200,
        base in 0i64..1000,
    ) {
        if b.len() >= 12 {
            b[0..8].copy_from_slice(&base.to_be_bytes());
            b[8..12].copy_from_slice(&len.to_be_bytes());
        }
        if b.len() > MAGIC_OFFSET {
            b[MAGIC_OFFSET] = 2;
        }
        check_header(&b)?;
    }

    /// A valid header with one field set to an interesting value, cut to a random length.
    #[test]
    fn header_parse_of_a_mutated_valid_header(
        n in 0usize..12,
        base in prop_oneof![Just(0u64), 0u64..1000, Just(i64::MAX as u64 - 20)],
        compressed in any::<bool>(),
        field in 0usize..12,
        value in field_value(),
        cut in prop_oneof![3 => Just(usize::MAX), 1 => 0usize..80],
    ) {
        let codec = if compressed { Compression::Lz4 { level: None } } else { Compression::None };
        let mut b = if n == 0 {
            // No records: a header alone (as compaction writes an emptied batch).
            let mut h = valid_header(1, base, Compression::None);
            h.truncate(BATCH_HEADER_SIZE);
            h[8..12].copy_from_slice(&(MIN_BATCH_LENGTH as i32).to_be_bytes());
            h[RECORDS_COUNT_OFFSET..].copy_from_slice(&0i32.to_be_bytes());
            h
        } else {
            valid_header(n, base, codec)
        };
        // (position, width) of each header field.
        const FIELDS: [(usize, usize); 12] = [
            (0, 8), (8, 4), (12, 4), (16, 1), (17, 4), (21, 2),
            (23, 4), (27, 8), (35, 8), (43, 8), (51, 2), (57, 4),
        ];
        let (at, width) = FIELDS[field];
        let v = value.to_be_bytes();
        b[at..at + width].copy_from_slice(&v[8 - width..]);
        b.truncate(cut.min(b.len()));
        check_header(&b)?;
    }
}

/// The batch header of FORMAT.md's worked example parses to the fields it lists.
#[test]
fn header_parse_of_the_worked_example() {
    let b = valid_header(1, 42, Compression::None);
    let h = BatchHeader::parse(&b).unwrap();
    assert_eq!((h.base_offset, h.magic, h.records_count), (42, 2, 1));
    check_header(&b).unwrap();
}
