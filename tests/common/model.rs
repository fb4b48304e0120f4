//! The record model of the model-based tests (tests/partition.rs, tests/crash_model.rs):
//! records as the log stores them, and a generator of arbitrary records.

use proptest::prelude::*;
use seglog::{Header, Record, RecordView};

/// A record as stored: every field, the timestamp resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
}

impl Stored {
    /// `r` as appended, `default_ts` standing in for a missing timestamp.
    pub fn of(r: &Record, default_ts: i64) -> Stored {
        Stored {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp.unwrap_or(default_ts),
        }
    }

    /// `r` as appended; `r` carries its timestamp.
    pub fn timed(r: &Record) -> Stored {
        let ts = r.timestamp.expect("test records carry a timestamp");
        Stored::of(r, ts)
    }

    /// A record read back by `records_from`.
    pub fn from_consumer(r: &seglog::ConsumerRecord) -> Stored {
        Stored {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp,
        }
    }

    /// A record read back.
    pub fn from_view(v: &RecordView<'_>) -> Stored {
        let r = v.to_record();
        Stored {
            key: r.key,
            value: r.value,
            headers: r.headers,
            timestamp: v.timestamp(),
        }
    }
}

/// Arbitrary records: a key of up to 7 bytes (70% of them), a value of fewer than
/// `values_below` bytes (90%), fewer than `headers_below` headers with keys of up to
/// `header_key_len` letters, and a timestamp from `timestamp`.
pub fn record(
    values_below: usize,
    headers_below: usize,
    header_key_len: usize,
    timestamp: impl Strategy<Value = Option<i64>>,
) -> impl Strategy<Value = Record> {
    let header_key = proptest::string::string_regex(&format!("[a-z]{{0,{header_key_len}}}"))
        .expect("a valid regex");
    (
        prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..8)),
        prop::option::weighted(0.9, prop::collection::vec(any::<u8>(), 0..values_below)),
        prop::collection::vec(
            (
                header_key,
                prop::option::of(prop::collection::vec(any::<u8>(), 0..4)),
            ),
            0..headers_below,
        ),
        timestamp,
    )
        .prop_map(|(key, value, headers, timestamp)| Record {
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(key, value)| Header { key, value })
                .collect(),
            timestamp,
        })
}
