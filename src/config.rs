//! Topic and store configuration, with Kafka's defaults and validation.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::record::Compression;

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

/// What happens to old data (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Segments are deleted by time and size retention (the default).
    #[default]
    Delete,
    /// Only the latest record per key is kept; time and size retention do not apply.
    Compact,
    /// Compaction, and deletion by time and size retention (`compact,delete`).
    CompactDelete,
}

impl CleanupPolicy {
    /// True for `Compact` and `CompactDelete`.
    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }

    /// True for `Delete` and `CompactDelete`.
    pub fn deletes(self) -> bool {
        self != CleanupPolicy::Compact
    }

    fn to_setting(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    fn from_setting(v: &str) -> std::result::Result<CleanupPolicy, String> {
        match v {
            "delete" => Ok(CleanupPolicy::Delete),
            "compact" => Ok(CleanupPolicy::Compact),
            "compact,delete" | "delete,compact" => Ok(CleanupPolicy::CompactDelete),
            _ => Err(format!("unknown cleanup policy {v:?}")),
        }
    }
}

/// How a topic compresses its batches (Kafka's `compression.type`).
///
/// ```
/// use seglog::{Compression, TopicCompression, TopicConfig};
/// let cfg = TopicConfig::default().compression(Compression::Zstd { level: Some(6) });
/// assert_eq!(cfg.compression, TopicCompression::Codec(Compression::Zstd { level: Some(6) }));
/// assert_eq!(TopicConfig::default().compression, TopicCompression::Producer);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TopicCompression {
    /// Kafka's default, `producer`: a raw batch keeps the codec it came with; records that
    /// seglog encodes itself are written uncompressed.
    #[default]
    Producer,
    /// Every batch is written with this codec (`Compression::None` is Kafka's
    /// `uncompressed`).
    Codec(Compression),
}

impl From<Compression> for TopicCompression {
    fn from(c: Compression) -> TopicCompression {
        TopicCompression::Codec(c)
    }
}

impl TopicCompression {
    /// The codec for a batch that arrived compressed with `batch_codec` (`producer` keeps
    /// it).
    pub fn for_batch(self, batch_codec: Compression) -> Compression {
        match self {
            TopicCompression::Producer => batch_codec,
            TopicCompression::Codec(c) => c,
        }
    }

    /// The codec for records seglog encodes itself (`producer` means uncompressed).
    pub fn for_records(self) -> Compression {
        self.for_batch(Compression::None)
    }

    fn to_setting(self) -> String {
        match self {
            TopicCompression::Producer => "producer".into(),
            TopicCompression::Codec(Compression::None) => "uncompressed".into(),
            TopicCompression::Codec(c) => c.to_string(),
        }
    }

    fn from_setting(v: &str) -> std::result::Result<TopicCompression, String> {
        match v {
            "producer" => Ok(TopicCompression::Producer),
            "uncompressed" => Ok(TopicCompression::Codec(Compression::None)),
            v => v.parse().map(TopicCompression::Codec),
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
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// Number of partitions. Default 1; allowed 1..=10,000.
    pub partitions: u32,
    /// Roll a new segment before a batch would make the active one larger than this.
    /// Default 1 GiB; allowed 128 B..=2 GiB - 1 (positions in the index are 32-bit).
    pub segment_bytes: u64,
    /// Roll when the active segment's first timestamp is this much older than the
    /// incoming batch's. Default 7 days; allowed at least 1.
    pub segment_ms: u64,
    /// Size of a segment's index files: the offset index is full at `n / 8` entries, the
    /// time index at `n / 12 - 1` (Kafka's rule: one slot kept for the entry written at
    /// roll or close); a full index rolls the segment. Default 10 MiB; allowed
    /// 24 B..=2 GiB - 1.
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
    /// Delete, compact, or both. Default [`CleanupPolicy::Delete`].
    pub cleanup_policy: CleanupPolicy,
    /// Time retention: a segment whose largest timestamp is older than this is deleted
    /// (policies that delete). Default 7 days; `None` keeps data forever.
    pub retention_ms: Option<u64>,
    /// Size retention per partition: the oldest segments are deleted while the log stays
    /// at least this large without them (policies that delete). Default `None` (no limit).
    pub retention_bytes: Option<u64>,
    /// Largest amount a record's timestamp may be ahead of the store clock at append
    /// (Kafka's `message.timestamp.after.max.ms`): a batch with a later one is refused,
    /// so that a far-future timestamp cannot pin a segment against time retention.
    /// Create-time topics only. Default 1 hour (Kafka 4's default); `None` accepts any.
    pub max_timestamp_skew_ms: Option<u64>,
    /// How long a tombstone (record with a null value) survives in a compacted topic,
    /// counted from the first cleaning that saw it. Default 1 day.
    pub delete_retention_ms: u64,
    /// A record is not compacted until it is at least this old (by timestamp). Default 0.
    pub min_compaction_lag_ms: u64,
    /// A segment holding a record older than this is cleaned even when the log's dirty
    /// ratio is below `min_cleanable_dirty_ratio`. Default `None` (never forced).
    pub max_compaction_lag_ms: Option<u64>,
    /// A compacted log is cleaned once its dirty part (written since the last cleaning)
    /// is at least this fraction of its cleanable part. Default 0.5; allowed 0.0..=1.0.
    pub min_cleanable_dirty_ratio: f64,
    /// How batches are compressed. Default [`TopicCompression::Producer`] (Kafka's
    /// default): raw batches keep their codec, seglog's own appends are uncompressed.
    /// A level must be in the codec's [`Compression::level_range`], and the codec's cargo
    /// feature must be on.
    pub compression: TopicCompression,
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
            cleanup_policy: CleanupPolicy::Delete,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            max_timestamp_skew_ms: Some(60 * 60 * 1000),
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
            min_cleanable_dirty_ratio: 0.5,
            compression: TopicCompression::Producer,
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

    /// Sets `cleanup_policy`.
    pub fn cleanup_policy(mut self, p: CleanupPolicy) -> Self {
        self.cleanup_policy = p;
        self
    }

    /// Sets `retention_ms`.
    pub fn retention_ms(mut self, ms: Option<u64>) -> Self {
        self.retention_ms = ms;
        self
    }

    /// Sets `retention_bytes`.
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets `max_timestamp_skew_ms`.
    pub fn max_timestamp_skew_ms(mut self, ms: Option<u64>) -> Self {
        self.max_timestamp_skew_ms = ms;
        self
    }

    /// Sets `delete_retention_ms`.
    pub fn delete_retention_ms(mut self, ms: u64) -> Self {
        self.delete_retention_ms = ms;
        self
    }

    /// Sets `min_compaction_lag_ms`.
    pub fn min_compaction_lag_ms(mut self, ms: u64) -> Self {
        self.min_compaction_lag_ms = ms;
        self
    }

    /// Sets `max_compaction_lag_ms`.
    pub fn max_compaction_lag_ms(mut self, ms: Option<u64>) -> Self {
        self.max_compaction_lag_ms = ms;
        self
    }

    /// Sets `min_cleanable_dirty_ratio`.
    pub fn min_cleanable_dirty_ratio(mut self, ratio: f64) -> Self {
        self.min_cleanable_dirty_ratio = ratio;
        self
    }

    /// Sets `compression` (a [`Compression`] or a [`TopicCompression`]).
    pub fn compression(mut self, c: impl Into<TopicCompression>) -> Self {
        self.compression = c.into();
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
        let ms_max = i64::MAX as u64;
        for (field, v) in [
            ("retention_ms", self.retention_ms),
            ("max_timestamp_skew_ms", self.max_timestamp_skew_ms),
            ("max_compaction_lag_ms", self.max_compaction_lag_ms),
            ("delete_retention_ms", Some(self.delete_retention_ms)),
            ("min_compaction_lag_ms", Some(self.min_compaction_lag_ms)),
        ] {
            if let Some(v) = v {
                check(field, v, 0, ms_max)?;
            }
        }
        if let Some(b) = self.retention_bytes {
            check("retention_bytes", b, 0, i64::MAX as u64)?;
        }
        if let TopicCompression::Codec(c) = self.compression {
            c.check_level()
                .map_err(|e| Error::config("compression", c, e))?;
            if let (false, Some(feature)) = (c.is_available(), c.feature()) {
                return Err(Error::config(
                    "compression",
                    c,
                    format!(
                        "a codec built in (seglog was built without the `{feature}` cargo feature)"
                    ),
                ));
            }
        }
        let ratio = self.min_cleanable_dirty_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::InvalidConfig {
                field: "min_cleanable_dirty_ratio",
                value: ratio.to_string(),
                expected: "allowed 0.0..=1.0".into(),
            });
        }
        Ok(())
    }

    /// Serializes as `key=value` lines (the topic metadata file's body).
    pub(crate) fn to_lines(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        let mut lines = format!(
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
        );
        lines.push_str(&format!(
            "cleanup_policy={}\nretention_ms={}\nretention_bytes={}\nmax_timestamp_skew_ms={}\ndelete_retention_ms={}\nmin_compaction_lag_ms={}\nmax_compaction_lag_ms={}\nmin_cleanable_dirty_ratio={}\n",
            self.cleanup_policy.to_setting(),
            opt(self.retention_ms),
            opt(self.retention_bytes),
            opt(self.max_timestamp_skew_ms),
            self.delete_retention_ms,
            self.min_compaction_lag_ms,
            opt(self.max_compaction_lag_ms),
            self.min_cleanable_dirty_ratio,
        ));
        lines.push_str(&format!("compression={}\n", self.compression.to_setting()));
        lines
    }

    /// Sets one field from its `to_lines` spelling; unknown keys are an error.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        fn num<T: std::str::FromStr>(v: &str) -> std::result::Result<T, String> {
            v.parse().map_err(|_| format!("not a number: {v:?}"))
        }
        /// `-1` (Kafka's spelling of "none") or a number.
        fn opt(v: &str) -> std::result::Result<Option<u64>, String> {
            if v == "-1" {
                Ok(None)
            } else {
                num(v).map(Some)
            }
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
            "cleanup_policy" => self.cleanup_policy = CleanupPolicy::from_setting(value)?,
            "retention_ms" => self.retention_ms = opt(value)?,
            "retention_bytes" => self.retention_bytes = opt(value)?,
            "max_timestamp_skew_ms" => self.max_timestamp_skew_ms = opt(value)?,
            "delete_retention_ms" => self.delete_retention_ms = num(value)?,
            "min_compaction_lag_ms" => self.min_compaction_lag_ms = num(value)?,
            "max_compaction_lag_ms" => self.max_compaction_lag_ms = opt(value)?,
            "min_cleanable_dirty_ratio" => self.min_cleanable_dirty_ratio = num(value)?,
            "compression" => self.compression = TopicCompression::from_setting(value)?,
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
    /// How often the background maintenance runs (Kafka's
    /// `log.retention.check.interval.ms`, default 5 minutes): a `seglog-retention` thread
    /// enforces retention and a `seglog-cleaner` thread compacts the topics that need it,
    /// each on its own schedule, so that deletions never wait behind a compaction pass.
    /// `None` turns the background maintenance off ([`Store::enforce_retention`](crate::Store::enforce_retention)
    /// and [`Store::compact`](crate::Store::compact) still work).
    pub maintenance_interval: Option<std::time::Duration>,
    /// Memory for the compactor's map of keys to their latest offsets (Kafka's
    /// `log.cleaner.dedupe.buffer.size`, default 128 MiB). A dirty range with more keys
    /// than fit is cleaned in several passes.
    pub cleaner_buffer_bytes: usize,
    /// Cap on the segment files the store keeps open, shared by all its partitions. Sealed
    /// segments' files are opened on demand and the least recently used closed when the
    /// cap is reached; active segments always stay open (they count, and the cap is
    /// exceeded when they alone need more). A segment's `.log` counts 1 and its two index
    /// files 2; each counts the larger of its descriptors and its memory maps, so both stay
    /// under the cap. Files a reader is using are never closed under it, so concurrent
    /// readers can exceed the cap for as long as their reads last.
    ///
    /// Default: half of the process's soft `RLIMIT_NOFILE` (as when the default is built)
    /// less 32 for the store's other files, at least 16 and at most 32,768 — 96 under
    /// `ulimit -n 256`, 480 under 1024. Allowed: at least 16.
    pub max_open_files: usize,
    /// Adopt partition directories of topics the store does not know — a Kafka broker's
    /// log directory, or partitions copied in from one — instead of refusing to open
    /// (default `false`: [`Error::UnknownDirectories`](crate::Error::UnknownDirectories)).
    ///
    /// Each unknown topic becomes a topic with as many partitions as its highest partition
    /// directory's number plus one (missing ones are created empty) and the default
    /// [`TopicConfig`], except that retention is off (`retention_ms` and
    /// `retention_bytes` `None`): the broker's retention settings are not in its log
    /// directory, and Kafka's default of 7 days would delete adopted data older than that
    /// at the first maintenance pass. The topics are added to `seglog-topics` before
    /// anything else is written. Kafka's files that seglog does not use
    /// (`meta.properties`, `leader-epoch-checkpoint`, `partition.metadata`, `.snapshot`)
    /// are left as they are. Kafka's internal topics (`__consumer_offsets`,
    /// `__transaction_state`) are not adopted: their directories make the open fail, to be
    /// moved out first.
    pub adopt_partition_dirs: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            clock: Arc::new(SystemClock),
            checkpoint_interval: std::time::Duration::from_secs(60),
            maintenance_interval: Some(std::time::Duration::from_secs(300)),
            cleaner_buffer_bytes: 128 << 20,
            max_open_files: crate::files::default_max_open_files(),
            adopt_partition_dirs: false,
        }
    }
}

impl StoreConfig {
    /// Sets [`StoreConfig::maintenance_interval`].
    pub fn maintenance_interval(mut self, interval: Option<std::time::Duration>) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Sets [`StoreConfig::cleaner_buffer_bytes`].
    pub fn cleaner_buffer_bytes(mut self, bytes: usize) -> Self {
        self.cleaner_buffer_bytes = bytes;
        self
    }

    /// Sets [`StoreConfig::max_open_files`].
    pub fn max_open_files(mut self, n: usize) -> Self {
        self.max_open_files = n;
        self
    }

    /// Sets [`StoreConfig::adopt_partition_dirs`].
    pub fn adopt_partition_dirs(mut self, adopt: bool) -> Self {
        self.adopt_partition_dirs = adopt;
        self
    }

    /// Checks every field against its allowed range.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            "max_open_files",
            self.max_open_files as u64,
            crate::files::MIN_OPEN_FILES as u64,
            u64::MAX,
        )
    }

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
