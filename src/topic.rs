//! A topic: a named set of partitions, and Kafka's default partitioner.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::notify::Notify;
use crate::partition::{AppendInfo, Partition};
use crate::producer::{Producer, ProducerConfig};
use crate::record::Record;

/// Where a sent record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition chosen.
    pub partition: u32,
    /// The record's offset in it.
    pub offset: u64,
    /// The record's timestamp as stored.
    pub timestamp: i64,
}

#[derive(Debug)]
struct Inner {
    name: Arc<str>,
    config: TopicConfig,
    partitions: Vec<Partition>,
    round_robin: AtomicU32,
    notify: Arc<Notify>,
    /// `Store::delete_topic` deleted it.
    deleted: std::sync::atomic::AtomicBool,
}

/// A named set of partitions. Cheap to clone (a handle).
#[derive(Debug, Clone)]
pub struct Topic {
    inner: Arc<Inner>,
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), as the Java
/// client computes it for keys.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

impl Topic {
    pub(crate) fn new(
        name: String,
        config: TopicConfig,
        partitions: Vec<Partition>,
        notify: Arc<Notify>,
    ) -> Topic {
        Topic {
            inner: Arc::new(Inner {
                name: name.into(),
                config,
                partitions,
                round_robin: AtomicU32::new(0),
                notify,
                deleted: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Marks the topic deleted (see [`Topic::is_deleted`]).
    pub(crate) fn mark_deleted(&self) {
        self.inner.deleted.store(true, Ordering::Release);
    }

    /// True once [`Store::delete_topic`](crate::Store::delete_topic) deleted this topic.
    pub fn is_deleted(&self) -> bool {
        self.inner.deleted.load(Ordering::Acquire)
    }

    /// True when `other` is a handle to this very topic (not one deleted and created
    /// again under the same name).
    pub(crate) fn same_as(&self, other: &Topic) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Notified on every append and flush of any partition (for waiting consumers).
    pub(crate) fn notify(&self) -> &Notify {
        &self.inner.notify
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's configuration.
    pub fn config(&self) -> &TopicConfig {
        &self.inner.config
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.inner.partitions.len() as u32
    }

    /// All partitions, by number.
    pub fn partitions(&self) -> &[Partition] {
        &self.inner.partitions
    }

    /// Partition `id`.
    ///
    /// # Errors
    /// [`Error::UnknownPartition`] when `id` is not below the partition count.
    pub fn partition(&self, id: u32) -> Result<&Partition> {
        self.inner
            .partitions
            .get(id as usize)
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.inner.name.to_string(),
                partition: id,
                count: self.partition_count(),
            })
    }

    /// The partition a record goes to: murmur2 of the key like Kafka's default
    /// partitioner, round-robin for records without a key.
    pub fn choose_partition(&self, record: &Record) -> u32 {
        let n = self.partition_count();
        match &record.key {
            Some(k) => partition_for_key(k, n),
            None => self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// Appends one record to the partition [`Topic::choose_partition`] picks.
    ///
    /// # Errors
    /// As [`Partition::append`].
    pub fn send(&self, record: Record) -> Result<RecordMetadata> {
        let p = self.choose_partition(&record);
        self.send_to(p, record)
    }

    /// Appends one record to partition `partition`.
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], and as [`Partition::append`].
    pub fn send_to(&self, partition: u32, record: Record) -> Result<RecordMetadata> {
        let info = self
            .partition(partition)?
            .append(std::slice::from_ref(&record))?;
        Ok(RecordMetadata {
            partition,
            offset: info.base_offset,
            timestamp: info.max_timestamp,
        })
    }

    /// Sends many records, one batch per partition: records are grouped by the partition
    /// [`Topic::choose_partition`] picks, keeping their order within each partition.
    /// Returns the append of each partition written to.
    ///
    /// # Errors
    /// As [`Partition::append`]; batches of partitions before the failing one stay written.
    pub fn send_batch(&self, records: Vec<Record>) -> Result<Vec<(u32, AppendInfo)>> {
        let mut groups: Vec<Vec<Record>> = vec![Vec::new(); self.partition_count() as usize];
        for r in records {
            let p = self.choose_partition(&r);
            groups[p as usize].push(r);
        }
        let mut out = Vec::new();
        for (p, group) in groups.iter().enumerate() {
            if !group.is_empty() {
                out.push((p as u32, self.inner.partitions[p].append(group)?));
            }
        }
        Ok(out)
    }

    /// A batching producer for this topic (see [`Producer`]): records sent one at a time
    /// are gathered per partition into Kafka batches that a background thread appends.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero `batch_bytes` or `buffer_bytes`; an I/O error
    /// when the producer's threads cannot be started.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        Producer::new(self.clone(), config)
    }

    /// Flushes every partition (see [`Partition::flush`]).
    ///
    /// # Errors
    /// The first I/O error.
    pub fn flush(&self) -> Result<()> {
        self.inner.partitions.iter().try_for_each(Partition::flush)
    }
}

/// Checks a topic name against Kafka's rules: 1..=249 characters from `[a-zA-Z0-9._-]`,
/// and not `.` or `..`.
///
/// # Errors
/// [`Error::InvalidTopicName`] saying which rule the name breaks.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Topic names Kafka reserves for its internal topics: a user cannot create them (nor a
/// name colliding with them).
pub(crate) const INTERNAL_TOPICS: [&str; 2] =
    [crate::consumer::OFFSETS_TOPIC, "__transaction_state"];

/// True for an internal topic name, or one colliding with it (`.` and `_` alike).
pub(crate) fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS
        .iter()
        .any(|t| *t == name || collides(t, name))
}

/// True when two different names are equal once `.` and `_` are treated alike (Kafka's
/// `Topic.hasCollision`: their metric names would be the same).
pub(crate) fn collides(a: &str, b: &str) -> bool {
    let unify = |c: u8| if c == b'.' { b'_' } else { c };
    a != b && a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| unify(x) == unify(y))
}
