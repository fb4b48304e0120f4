//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::record::{DecodeError, EncodeError};

/// `Result` with seglog's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("write", "open", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another `Store` (in this or another process) holds the data directory's lock.
    #[error("data directory {path} is locked by another open Store")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A topic name breaks Kafka's rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `create_topic` for a name that equals an existing topic's once `.` and `_` are
    /// treated alike (Kafka refuses it: the two topics' metric names would collide).
    #[error("topic {name:?} collides with existing topic {existing:?}: names that differ only in '.' versus '_' are not allowed")]
    TopicCollision {
        /// The name asked for.
        name: String,
        /// The existing topic it collides with.
        existing: String,
    },
    /// No topic of this name exists.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// `create_topic` for a name that exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// A partition number at or past the topic's partition count.
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        count: u32,
    },
    /// An offset outside `[log_start_offset, log_end_offset]`.
    #[error(
        "offset {offset} is out of range for {partition}: log start {log_start}, log end {log_end}"
    )]
    OffsetOutOfRange {
        /// `<topic>-<partition>`.
        partition: String,
        /// The offset asked for.
        offset: u64,
        /// The first offset held.
        log_start: u64,
        /// The next offset to be written.
        log_end: u64,
    },
    /// An append whose encoded batch is larger than the topic allows.
    #[error("batch of {size} bytes exceeds {limit_name} of {limit} bytes")]
    BatchTooLarge {
        /// The encoded batch size.
        size: usize,
        /// The config field that limits it (`max_batch_bytes` or `segment_bytes`).
        limit_name: &'static str,
        /// Its value.
        limit: u64,
    },
    /// An append of zero records.
    #[error("an append needs at least one record")]
    EmptyAppend,
    /// A config value outside its allowed range.
    #[error("invalid config {field} = {value}: {expected}")]
    InvalidConfig {
        /// The field name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The allowed range or form.
        expected: String,
    },
    /// Records that cannot be encoded as a Kafka batch.
    #[error("cannot encode batch: {0}")]
    Encode(#[from] EncodeError),
    /// A file holds bytes that are not what the format says.
    #[error("corrupt {path} at byte {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte position in the file.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A batch is compressed with a codec this build cannot decode. The batch is intact
    /// (its CRC matched) and kept; only its records cannot be returned.
    #[error("batch at byte {position} of {path} is compressed with codec {codec}, which this build cannot decode")]
    UnsupportedCompression {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the batch in the file.
        position: u64,
        /// Kafka's codec id (1 gzip, 2 snappy, 3 lz4, 4 zstd).
        codec: u8,
    },
    /// A batch is compressed with a codec whose cargo feature this build left out. The
    /// batch is intact and kept; its records can be read by a build with the feature.
    #[error("batch at byte {position} of {path} is compressed with {codec}: build seglog with the cargo feature `{feature}` to read it")]
    CodecDisabled {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the batch in the file.
        position: u64,
        /// Kafka's codec name (`gzip`, `snappy`, `lz4`, `zstd`).
        codec: &'static str,
        /// The cargo feature that builds the codec in.
        feature: &'static str,
    },
    /// An earlier write or fsync of this partition failed, so what is durable is unknown;
    /// writes are refused until the store is reopened (reads go on).
    #[error(
        "{partition} refuses writes after an I/O error ({cause}); reopen the store to recover"
    )]
    Poisoned {
        /// `<topic>-<partition>`.
        partition: String,
        /// The original error.
        cause: String,
    },
    /// A record's timestamp is further ahead of the store clock than the topic's
    /// `max_timestamp_skew_ms` allows.
    #[error(
        "{partition}: timestamp {timestamp} is more than {max_skew_ms} ms ahead of the clock ({now}); see TopicConfig::max_timestamp_skew_ms"
    )]
    InvalidTimestamp {
        /// `<topic>-<partition>`.
        partition: String,
        /// The largest timestamp of the batch.
        timestamp: i64,
        /// The store clock at the append.
        now: i64,
        /// The topic's limit.
        max_skew_ms: u64,
    },
    /// [`Partition::append_raw`](crate::Partition::append_raw) refused a batch of its
    /// input; nothing of the input was written.
    #[error("{partition}: append_raw refused batch {index} (at byte {position} of the input), nothing was written: {problem}")]
    InvalidBatch {
        /// `<topic>-<partition>`.
        partition: String,
        /// The batch's index in the input (0 for the first).
        index: usize,
        /// The batch's byte position in the input.
        position: usize,
        /// What is wrong with it.
        problem: crate::BatchProblem,
    },
    /// A consumer has no position for a partition (a group: no committed offset) and its
    /// reset policy is `OffsetReset::None`.
    #[error(
        "no committed offset or position for {partition} (group {group:?}) and the reset policy is None"
    )]
    NoCommittedOffset {
        /// The group; empty for a consumer outside any group.
        group: String,
        /// `<topic>-<partition>`.
        partition: String,
    },
    /// The data directory holds partition directories that are not seglog's: of a topic
    /// not in `seglog-topics` (or `seglog-topics` is missing), or past a topic's partition
    /// count. seglog removes only the directories it marked for deletion itself, so the open
    /// stopped before changing anything.
    #[error("{}", unknown_directories(.dir, .directories, *.topics_file_missing))]
    UnknownDirectories {
        /// The data directory.
        dir: PathBuf,
        /// The directories, sorted.
        directories: Vec<PathBuf>,
        /// `seglog-topics` does not exist (a Kafka broker's log dir, or a lost file).
        topics_file_missing: bool,
    },
    /// Offsets that the checkpoint files or the neighbouring segments say were written are
    /// in no segment file (a segment file was deleted or lost): reading or appending past
    /// them would skip them silently.
    #[error("{partition}: offsets {from}..{to} are in no segment file: {detail}")]
    MissingOffsets {
        /// `<topic>-<partition>`.
        partition: String,
        /// The first missing offset.
        from: u64,
        /// The offset after the last missing one.
        to: u64,
        /// Which file or checkpoint claims them, and which file is missing or ends early.
        detail: String,
    },
    /// The Kafka bridge ([`crate::bridge`], feature `kafka`): a broker could not be
    /// reached, refused a request, or answered something the bridge cannot use.
    #[error("kafka broker {broker}: {reason}")]
    Kafka {
        /// The broker's address (or the bootstrap list when no one broker is at fault).
        broker: String,
        /// What failed, naming the topic and partition and Kafka's error code.
        reason: String,
    },
    /// A consumer's `poll` was interrupted by
    /// [`ConsumerWakeup::wakeup`](crate::ConsumerWakeup::wakeup) (Kafka's
    /// `WakeupException`): one wakeup makes one such error, from the poll blocked then or
    /// else from the next one. Nothing was read or lost; poll again to go on.
    #[error("consumer woken up: poll interrupted by ConsumerWakeup::wakeup")]
    Wakeup,
    /// A consumer call named a partition not assigned to this consumer now (Kafka's
    /// `IllegalStateException` for `pause`, `resume` and commits of unowned partitions),
    /// or of a topic it does not read.
    #[error("{operation} of {partition}: the partition is not assigned to this consumer")]
    NotAssigned {
        /// The call (`"pause"`, `"commit_offsets"`, ...).
        operation: &'static str,
        /// `<topic>-<partition>`.
        partition: String,
    },
    /// A bare partition number given to a consumer of several topics, where it could be a
    /// partition of any of them: name the topic (`(topic, partition)` or a
    /// [`TopicPartition`](crate::TopicPartition)).
    #[error("{operation}: partition number {partition} is ambiguous on a consumer of topics {topics:?}; name the topic with (topic, partition) or a TopicPartition")]
    AmbiguousPartition {
        /// The call.
        operation: &'static str,
        /// The number given.
        partition: u32,
        /// The topics the consumer reads.
        topics: Vec<String>,
    },
    /// A call that the object's state does not allow now (Kafka's
    /// `IllegalStateException`), such as `commit_offsets` on a consumer outside any group,
    /// or `poll` from inside a rebalance listener.
    #[error("{operation} not allowed: {reason}")]
    IllegalState {
        /// The call.
        operation: &'static str,
        /// Why not.
        reason: String,
    },
    /// The partition, topic or store was closed or deleted.
    #[error("{0} is closed")]
    Closed(String),
}

impl Error {
    /// A copy of this error for each of several callers it concerns (a producer's delivery
    /// handles): an I/O error keeps its kind and message, every other variant is cloned.
    pub(crate) fn duplicate(&self) -> Error {
        use Error::*;
        match self {
            Io { op, path, source } => Io {
                op,
                path: path.clone(),
                // The OS error code stays (a caller tells ENOSPC from EIO by it).
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            Locked { path } => Locked { path: path.clone() },
            InvalidTopicName { name, reason } => InvalidTopicName {
                name: name.clone(),
                reason,
            },
            TopicCollision { name, existing } => TopicCollision {
                name: name.clone(),
                existing: existing.clone(),
            },
            UnknownTopic(t) => UnknownTopic(t.clone()),
            TopicExists(t) => TopicExists(t.clone()),
            UnknownPartition {
                topic,
                partition,
                count,
            } => UnknownPartition {
                topic: topic.clone(),
                partition: *partition,
                count: *count,
            },
            OffsetOutOfRange {
                partition,
                offset,
                log_start,
                log_end,
            } => OffsetOutOfRange {
                partition: partition.clone(),
                offset: *offset,
                log_start: *log_start,
                log_end: *log_end,
            },
            BatchTooLarge {
                size,
                limit_name,
                limit,
            } => BatchTooLarge {
                size: *size,
                limit_name,
                limit: *limit,
            },
            EmptyAppend => EmptyAppend,
            InvalidConfig {
                field,
                value,
                expected,
            } => InvalidConfig {
                field,
                value: value.clone(),
                expected: expected.clone(),
            },
            Encode(e) => Encode(e.clone()),
            Corrupt {
                path,
                position,
                reason,
            } => Corrupt {
                path: path.clone(),
                position: *position,
                reason: reason.clone(),
            },
            UnsupportedCompression {
                path,
                position,
                codec,
            } => UnsupportedCompression {
                path: path.clone(),
                position: *position,
                codec: *codec,
            },
            CodecDisabled {
                path,
                position,
                codec,
                feature,
            } => CodecDisabled {
                path: path.clone(),
                position: *position,
                codec,
                feature,
            },
            Poisoned { partition, cause } => Poisoned {
                partition: partition.clone(),
                cause: cause.clone(),
            },
            InvalidTimestamp {
                partition,
                timestamp,
                now,
                max_skew_ms,
            } => InvalidTimestamp {
                partition: partition.clone(),
                timestamp: *timestamp,
                now: *now,
                max_skew_ms: *max_skew_ms,
            },
            InvalidBatch {
                partition,
                index,
                position,
                problem,
            } => InvalidBatch {
                partition: partition.clone(),
                index: *index,
                position: *position,
                problem: problem.clone(),
            },
            NoCommittedOffset { group, partition } => NoCommittedOffset {
                group: group.clone(),
                partition: partition.clone(),
            },
            UnknownDirectories {
                dir,
                directories,
                topics_file_missing,
            } => UnknownDirectories {
                dir: dir.clone(),
                directories: directories.clone(),
                topics_file_missing: *topics_file_missing,
            },
            MissingOffsets {
                partition,
                from,
                to,
                detail,
            } => MissingOffsets {
                partition: partition.clone(),
                from: *from,
                to: *to,
                detail: detail.clone(),
            },
            Kafka { broker, reason } => Kafka {
                broker: broker.clone(),
                reason: reason.clone(),
            },
            Wakeup => Wakeup,
            NotAssigned {
                operation,
                partition,
            } => NotAssigned {
                operation,
                partition: partition.clone(),
            },
            AmbiguousPartition {
                operation,
                partition,
                topics,
            } => AmbiguousPartition {
                operation,
                partition: *partition,
                topics: topics.clone(),
            },
            IllegalState { operation, reason } => IllegalState {
                operation,
                reason: reason.clone(),
            },
            Closed(what) => Closed(what.clone()),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, position: u64, e: DecodeError) -> Error {
        let (path, position) = (path.into(), position + e.position() as u64);
        match e {
            DecodeError::UnsupportedCompression { codec, .. } => Error::UnsupportedCompression {
                path,
                position,
                codec,
            },
            DecodeError::CodecDisabled { codec, feature, .. } => Error::CodecDisabled {
                path,
                position,
                codec,
                feature,
            },
            e => Error::Corrupt {
                path,
                position,
                reason: e.to_string(),
            },
        }
    }

    pub(crate) fn config(
        field: &'static str,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Error {
        Error::InvalidConfig {
            field,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

fn unknown_directories(dir: &std::path::Path, dirs: &[PathBuf], topics_missing: bool) -> String {
    let names: Vec<String> = dirs
        .iter()
        .map(|d| {
            d.file_name().map_or_else(
                || d.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let why = if topics_missing {
        format!("{} has no {} file", dir.display(), crate::TOPICS_FILE)
    } else {
        format!("{} names no such topic partition", crate::TOPICS_FILE)
    };
    format!(
        "{} holds partition directories that are not this store's ({why}): {}; nothing was \
         changed, since seglog deletes only directories it marked for deletion: move them \
         out of the data directory, or restore {}, then open again",
        dir.display(),
        names.join(", "),
        crate::TOPICS_FILE
    )
}
