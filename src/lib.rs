//! seglog: Kafka-style persistent logs in-process, stored in Apache Kafka's own on-disk
//! format.
//!
//! # A guided tour
//!
//! A [`Store`] is one data directory, like a Kafka broker's `log.dir`. It holds
//! [`Topic`]s, each split into [`Partition`]s; a partition is an append-only log of
//! [`Segment`]s, each a `.log` file of Kafka v2 record batches with a sparse `.index`
//! (offset → file position) and a `.timeindex` (timestamp → offset).
//!
//! ```
//! use seglog::{Record, Store, TopicConfig};
//! # fn main() -> seglog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path())?;
//! let topic = store.create_topic("clicks", TopicConfig::default().partitions(2))?;
//!
//! // Producing: `send` picks the partition like Kafka's default partitioner.
//! let meta = topic.send(Record::new(b"/home".to_vec()).with_key(b"user-1".to_vec()))?;
//!
//! // Or append a batch to a partition directly: one Kafka batch, dense offsets.
//! let p = topic.partition(meta.partition)?;
//! p.append(&[Record::new("/cart").with_key("user-1"), Record::new("/pay").with_key("user-1")])?;
//! p.flush()?; // durable: fdatasync of the log and indexes
//!
//! // Reading: every record from an offset on, as owned records.
//! let pages = p
//!     .records_from(meta.offset)
//!     .map(|r| r.map(|r| r.value.unwrap()))
//!     .collect::<seglog::Result<Vec<_>>>()?;
//! assert_eq!(pages, [b"/home".to_vec(), b"/cart".to_vec(), b"/pay".to_vec()]);
//!
//! // Reads of whole batches, whose records borrow from the fetch buffer.
//! let fetch = p.read(meta.offset, 64 * 1024)?;
//! assert_eq!(fetch.records().count(), 3);
//!
//! // Many small records from many threads: a Producer batches them as Kafka's does.
//! let producer = topic.producer(seglog::ProducerConfig::default())?;
//! let delivery = producer.send(Record::new(b"/search".to_vec()));
//! producer.flush()?;
//! let at = delivery.wait()?; // its partition and offset
//! let value = topic.partition(at.partition)?.read_record(at.offset, |r| r.value().map(<[u8]>::to_vec))?;
//! assert_eq!(value.flatten(), Some(b"/search".to_vec()));
//!
//! // Without copies: append bytes the caller keeps, look one record up in the mapped file.
//! let body = b"/checkout".to_vec();
//! let info = p.append(&[seglog::RecordRef::new(&body).with_key(b"user-1")])?;
//! let len = p.read_record(info.base_offset, |r| r.value().map_or(0, <[u8]>::len))?;
//! assert_eq!(len, Some(body.len()));
//! store.close()?;
//! # Ok(()) }
//! ```
//!
//! Where to look next:
//!
//! - [`TopicConfig`]: segment size and age, index spacing, batch limit, timestamp type —
//!   Kafka's settings with Kafka's defaults.
//! - [`Partition`]: `append`, `read`, `offset_for_timestamp`, `truncate_to`, `flush`, and
//!   the concurrency contract (one writer, many readers that never block it); the
//!   copy-free paths: [`RecordRef`] appends, [`Partition::read_in_place`] ([`FetchRef`]),
//!   [`Partition::read_record`], [`Partition::read_into`].
//! - [`FlushPolicy`] and [`Partition::flush`]: when appends become durable; the README's
//!   "Guarantees" section says exactly what survives a crash, and how a [`Store`] recovers
//!   from Kafka's checkpoint files ([`RECOVERY_POINT_FILE`], [`CLEAN_SHUTDOWN_FILE`]).
//! - [`CleanupPolicy`], [`Partition::enforce_retention`], [`Partition::compact`],
//!   [`Partition::delete_records_before`]: Kafka's retention and compaction, run by the
//!   store's background threads, one for retention and one for compaction
//!   ([`StoreConfig::maintenance_interval`]), or on demand.
//! - [`Producer`] ([`Topic::producer`]): Kafka's batching producer — per-partition
//!   batches by size and linger, the sticky partitioner, [`Delivery`] handles resolving to
//!   offsets once written or ([`Acks::Durable`]) flushed with shared fsyncs.
//! - [`Consumer`] ([`Store::consumer`], [`Store::join_group`],
//!   [`Store::consumer_of_topics`]): tailing reads that block until data arrives, over one
//!   topic or several, seeking, pause/resume, wakeup from another thread, Kafka's offset
//!   reset policies, and consumer groups with durable committed offsets in
//!   [`OFFSETS_TOPIC`], explicit commits and a [`RebalanceListener`].
//! - [`Partition::records_from`]: every record from an offset, as an iterator.
//! - Feature `async`: `Consumer::poll_async`, `Consumer::stream` (a `futures_core::Stream`),
//!   `Consumer::commit_async`, awaitable [`Delivery`] handles and `Producer::flush_async`,
//!   `Partition::wait_durable` and `Partition::flush_async`. Runtime-agnostic: tasks wait
//!   on the same wake-up counters as blocking callers, with their wakers, and fsyncs run on
//!   seglog's own threads; examples/tokio_service.rs is a tokio service built on them.
//! - [`txn`]: Kafka's transaction rules as pure state machines: ongoing transactions, the
//!   last stable offset, the aborted transactions a `.txnindex` keeps
//!   ([`segment::txnindex`]), and the read-committed filter.
//! - [`Partition::append_raw`] ([`OffsetMode`]): Kafka batches in as they are, with offsets
//!   assigned as a broker does or kept as a follower does; [`record::Batch::producer_refusal`],
//!   [`record::Batch::forward_bytes`] and [`record::Batch::to_dense`] send stored batches on
//!   to Kafka.
//! - `bridge` (feature `kafka`, on by default): move topics to a Kafka cluster
//!   (`bridge::Mirror`) and from one (`bridge::Import`) over the Kafka protocol, batches
//!   unchanged, resumable after a kill.
//! - [`record`]: the v2 batch codec as pure functions over byte slices, for tools that
//!   want to decode or build Kafka batches themselves.
//! - [`Segment::open_read_only`]: open one segment file for dumping or verification.
//! - [`Error`]: every failure, naming the file, offset or field concerned.
//!
//! FORMAT.md in the repository is the byte-level specification.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "kafka")]
pub mod bridge;
mod checkpoint;
mod config;
mod consumer;
mod error;
mod files;
mod fs;
mod mmap;
mod notify;
mod partition;
mod producer;
pub mod record;
pub mod segment;
mod store;
mod topic;
pub mod verify;

pub use checkpoint::{CLEANER_FILE, CLEAN_SHUTDOWN_FILE, LOG_START_FILE, RECOVERY_POINT_FILE};
pub use config::{
    CleanupPolicy, Clock, FlushPolicy, StoreConfig, SystemClock, TimestampType, TopicCompression,
    TopicConfig, MAX_PARTITIONS,
};
#[cfg(feature = "async")]
pub use consumer::RecordStream;
pub use consumer::{
    Assignor, Consumer, ConsumerConfig, ConsumerRecord, ConsumerWakeup, Isolation,
    OffsetAndMetadata, OffsetReset, PartitionLag, PartitionRef, RebalanceListener, TopicPartition,
    OFFSETS_TOPIC,
};
pub use error::{Error, Result};
#[cfg(feature = "fault-injection")]
pub use fs::faults;
pub use fs::FaultOp;
pub use partition::txn;
pub use partition::{
    AppendInfo, BatchProblem, CompactionReport, Fetch, FetchRef, ForwardError, OffsetMode,
    Partition, PartitionStats, Records, RetentionReport, TimestampOffset,
};
#[cfg(feature = "async")]
pub use producer::DeliveryFuture;
pub use producer::{Acks, Delivery, Producer, ProducerConfig};
pub use record::{AsRecord, Compression, Header, Record, RecordRef, RecordView};
pub use segment::Segment;
pub use store::{MaintenanceFailure, MaintenanceReport, Store, TOPICS_FILE};
pub use topic::{murmur2, partition_for_key, validate_topic_name, RecordMetadata, Topic};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
