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
//! // Consuming: reads return whole batches; records borrow from the fetch buffer.
//! let mut next = meta.offset;
//! let mut pages = Vec::new();
//! while next < p.log_end_offset() {
//!     let fetch = p.read(next, 64 * 1024)?;
//!     pages.extend(fetch.records().map(|r| r.value().unwrap().to_vec()));
//!     next = fetch.next_offset();
//! }
//! assert_eq!(pages, [b"/home".to_vec(), b"/cart".to_vec(), b"/pay".to_vec()]);
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
//! - [`Consumer`] ([`Store::consumer`], [`Store::join_group`]): tailing reads that block
//!   until data arrives, seeking, Kafka's offset reset policies, and consumer groups with
//!   durable committed offsets in [`OFFSETS_TOPIC`].
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
