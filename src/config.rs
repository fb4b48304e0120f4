//! Topic and store configuration, with Kafka's defaults and validation.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Which timestamp a record carries (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// The producer's timestamp, or the store clock at append when the record has none.
    #[default]
    CreateTime,
    /// The store clock at append, for every record (the batch's max timestamp).
    LogAppendTime,
}

/// When appended records become durable (survive a crash or power loss).
///
/// Kafka leaves this to replication and the OS (`flush.messages`, `flush.ms`); an embedded
/// log has no replicas, so the choice is explicit. Whatever the policy,
/// [`Partition::flush`](crate::Partition::flush) makes every earlier append durable, and
/// [`Store::close`](crate::Store::close) flushes everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// The OS writes data back when it likes; only explicit flushes are durable points.
    #[default]
    Never,
    /// The append that brings the records appended since the last flush to at least `n`
    /// flushes before it returns.
    EveryRecords(u64),
    /// A background thread of the `Store` flushes each partition holding unflushed appends
    /// every this many milliseconds: a crash loses at most about that much.
    EveryMillis(u64),
    /// Every append is durable when it returns. Appenders on several threads share
    /// fsyncs: one fsync covers every append written before it started (group commit).
    EveryAppend,
}

impl FlushPolicy {
    fn to_setting(self) -> String {
        match self {
            FlushPolicy::Never => "never".into(),
            FlushPolicy::EveryRecords(n) => format!("records:{n}"),
            FlushPolicy::EveryMillis(ms) => format!("ms:{ms}"),
            FlushPolicy::EveryAppend => "every_append".into(),
        }
    }

    fn from_setting(v: &str) -> std::result::Result<FlushPolicy, String> {
        let num = |n: &str| n.parse().map_err(|_| format!("not a number: {n:?}"));
        match v.split_once(':') {
            None if v == "never" => Ok(FlushPolicy::Never),
            None if v == "every_append" => Ok(FlushPolicy::EveryAppend),
            Some(("records", n)) => Ok(FlushPolicy::EveryRecords(num(n)?)),
            Some(("ms", n)) => Ok(FlushPolicy::EveryMillis(num(n)?)),
            _ => Err(format!("unknown flush policy {v:?}")),
        }
    }
}

/// Per-topic settings. Every field has Kafka's default; build with the setters and let
/// [`Store::create_topic`](crate::Store::create_topic) validate.
///
/// ```
/// use seglog::TopicConfig;
/// let cfg = TopicConfig::default().partitions(4).segment_bytes(64 << 20);
/// assert!(cfg.validate().is_ok());
/// assert!(TopicConfig::default().partitions(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions. Default 1; allowed 1..=10,000.
    pub partitions: u32,
    /// Roll a new segment before a batch would make the active one larger than this.
    /// Default 1 GiB; allowed 128 B..=2 GiB - 1 (positions in the index are 32-bit).
    pub segment_bytes: u64,
    /// Roll when the active segment's first timestamp is this much older than the
    /// incoming batch's. Default 7 days; allowed at least 1.
    pub segment_ms: u64,
    /// Size at which the offset index (and time index) of a segment is full.
    /// Default 10 MiB; allowed 24 B..=2 GiB - 1.
    pub segment_index_bytes: u32,
    /// Bytes of batches between two index entries. Default 4096; 0 indexes every batch.
    pub index_interval_bytes: u32,
    /// Largest batch an append may write. Default 1 MiB (Kafka's `max.message.bytes`);
    /// allowed 61 B..=2 GiB - 1.
    pub max_batch_bytes: u32,
    /// Create time (default) or log-append time.
    pub timestamp_type: TimestampType,
    /// When appends become durable. Default [`FlushPolicy::Never`] (Kafka's default:
    /// only explicit flushes); `EveryRecords(n)` needs `n >= 1`, `EveryMillis(ms)` needs
    /// `ms >= 1`.
    pub flush_policy: FlushPolicy,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            max_batch_bytes: 1 << 20,
            timestamp_type: TimestampType::CreateTime,
            flush_policy: FlushPolicy::Never,
        }
    }
}

/// Largest partition count accepted.
pub const MAX_PARTITIONS: u32 = 10_000;
const MAX_I32: u64 = i32::MAX as u64;

impl TopicConfig {
    /// Sets `partitions`.
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }
    /// Sets `segment_bytes`.
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n;
        self
    }
    /// Sets `segment_ms`.
    pub fn segment_ms(mut self, n: u64) -> Self {
        self.segment_ms = n;
        self
    }
    /// Sets `segment_index_bytes`.
    pub fn segment_index_bytes(mut self, n: u32) -> Self {
        self.segment_index_bytes = n;
        self
    }
    /// Sets `index_interval_bytes`.
    pub fn index_interval_bytes(mut self, n: u32) -> Self {
        self.index_interval_bytes = n;
        self
    }
    /// Sets `max_batch_bytes`.
    pub fn max_batch_bytes(mut self, n: u32) -> Self {
        self.max_batch_bytes = n;
        self
    }
    /// Sets `timestamp_type`.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// Sets `flush_policy`.
    pub fn flush_policy(mut self, p: FlushPolicy) -> Self {
        self.flush_policy = p;
        self
    }

    /// Checks every field against its allowed range.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            "partitions",
            self.partitions as u64,
            1,
            MAX_PARTITIONS as u64,
        )?;
        check("segment_bytes", self.segment_bytes, 128, MAX_I32)?;
        check("segment_ms", self.segment_ms, 1, i64::MAX as u64)?;
        check(
            "segment_index_bytes",
            self.segment_index_bytes as u64,
            24,
            MAX_I32,
        )?;
        check(
            "index_interval_bytes",
            self.index_interval_bytes as u64,
            0,
            MAX_I32,
        )?;
        check("max_batch_bytes", self.max_batch_bytes as u64, 61, MAX_I32)?;
        match self.flush_policy {
            FlushPolicy::EveryRecords(n) => check("flush_policy records", n, 1, u64::MAX)?,
            FlushPolicy::EveryMillis(ms) => check("flush_policy ms", ms, 1, i64::MAX as u64)?,
            FlushPolicy::Never | FlushPolicy::EveryAppend => {}
        }
        Ok(())
    }

    /// Serializes as `key=value` lines (the topic metadata file's body).
    pub(crate) fn to_lines(&self) -> String {
        format!(
            "partitions={}\nsegment_bytes={}\nsegment_ms={}\nsegment_index_bytes={}\nindex_interval_bytes={}\nmax_batch_bytes={}\ntimestamp_type={}\nflush_policy={}\n",
            self.partitions,
            self.segment_bytes,
            self.segment_ms,
            self.segment_index_bytes,
            self.index_interval_bytes,
            self.max_batch_bytes,
            match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            },
            self.flush_policy.to_setting()
        )
    }

    /// Sets one field from its `to_lines` spelling; unknown keys are an error.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        fn num<T: std::str::FromStr>(v: &str) -> std::result::Result<T, String> {
            v.parse().map_err(|_| format!("not a number: {v:?}"))
        }
        match key {
            "partitions" => self.partitions = num(value)?,
            "segment_bytes" => self.segment_bytes = num(value)?,
            "segment_ms" => self.segment_ms = num(value)?,
            "segment_index_bytes" => self.segment_index_bytes = num(value)?,
            "index_interval_bytes" => self.index_interval_bytes = num(value)?,
            "max_batch_bytes" => self.max_batch_bytes = num(value)?,
            "timestamp_type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    v => return Err(format!("unknown timestamp type {v:?}")),
                }
            }
            "flush_policy" => self.flush_policy = FlushPolicy::from_setting(value)?,
            k => return Err(format!("unknown setting {k:?}")),
        }
        Ok(())
    }
}

fn check(field: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(Error::config(
            field,
            value,
            format!("allowed {min}..={max}"),
        ));
    }
    Ok(())
}

/// Where time comes from: the system clock, or a test's clock.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// Store-wide settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Source of "now" for default timestamps, log-append time and segment ageing.
    pub clock: Arc<dyn Clock>,
    /// How often the background thread writes the recovery-point checkpoint (Kafka's
    /// `log.flush.offset.checkpoint.interval.ms`, default 60 s). Recovery after a crash
    /// checks what was appended since the last one. [`Store::flush`](crate::Store::flush)
    /// and close also write it.
    pub checkpoint_interval: std::time::Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            clock: Arc::new(SystemClock),
            checkpoint_interval: std::time::Duration::from_secs(60),
        }
    }
}

impl StoreConfig {
    /// Sets [`StoreConfig::checkpoint_interval`].
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Uses `clock` instead of the system clock (for tests and simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}
