//! seglog: Kafka-style persistent logs in-process, stored in Apache Kafka's own on-disk
//! format.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod fs;
mod mmap;
mod partition;
pub mod record;
pub mod segment;
mod store;
mod topic;

pub use config::{Clock, StoreConfig, SystemClock, TimestampType, TopicConfig, MAX_PARTITIONS};
pub use error::{Error, Result};
pub use partition::{AppendInfo, Fetch, Partition, PartitionStats, TimestampOffset};
pub use record::{Header, Record, RecordView};
pub use segment::Segment;
pub use store::{Store, TOPICS_FILE};
pub use topic::{murmur2, partition_for_key, validate_topic_name, RecordMetadata, Topic};
