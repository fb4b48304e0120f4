//! Consumer groups inside one process: membership, partition assignment (Kafka's range and
//! round-robin assignors), the positions members hand over when partitions move, and the
//! committed offsets kept in `__consumer_offsets`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::offsets::{self, OffsetKey, OFFSETS_TOPIC};
use super::{Assignor, OffsetAndMetadata};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::topic::Topic;

/// The store's group coordinator: every group's state, and the committed offsets.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    /// The offsets topic, once opened or created, and the offsets read from it.
    committed: Mutex<Option<Committed>>,
    groups: Mutex<HashMap<(String, String), Arc<Group>>>,
    next_member: AtomicU64,
}

/// Committed offsets and the topic that keeps them.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) topic: Topic,
    pub(crate) offsets: HashMap<OffsetKey, u64>,
    /// The metadata strings committed with offsets, for those that have one.
    pub(crate) metadata: HashMap<OffsetKey, String>,
}

impl Coordinator {
    /// The committed offsets, loading them from `topic` (the offsets topic, which
    /// `open_topic` opens or creates) on first use.
    pub(crate) fn committed<'a>(
        &'a self,
        open_topic: impl FnOnce() -> Result<Topic>,
    ) -> Result<parking_lot::MappedMutexGuard<'a, Committed>> {
        let mut guard = self.committed.lock();
        if guard.is_none() {
            let topic = open_topic()?;
            let (offsets, metadata) = load(&topic)?;
            *guard = Some(Committed {
                topic,
                offsets,
                metadata,
            });
        }
        Ok(parking_lot::MutexGuard::map(guard, |c| {
            c.as_mut().expect("loaded above")
        }))
    }

    /// The committed offsets, once `committed` loaded them (every group member exists
    /// after that: `Store::join_group` loads them first).
    pub(crate) fn loaded(&self) -> Result<parking_lot::MappedMutexGuard<'_, Committed>> {
        let guard = self.committed.lock();
        parking_lot::MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| Error::Closed(OFFSETS_TOPIC.to_string()))
    }

    /// Forgets the offsets topic (it was deleted): the next use opens or creates it anew.
    pub(crate) fn forget_offsets_topic(&self) {
        *self.committed.lock() = None;
    }

    /// The group `name` consuming `topic`, created on first use.
    /// A group of a deleted topic is replaced when a topic of the same name is consumed.
    pub(crate) fn group(&self, name: &str, topic: &Topic, assignor: Assignor) -> Arc<Group> {
        let mut groups = self.groups.lock();
        let key = (name.to_string(), topic.name().to_string());
        match groups.get(&key) {
            Some(g) if g.topic.same_as(topic) => Arc::clone(g),
            _ => {
                let g = Arc::new(Group::new(name, topic.clone(), assignor));
                groups.insert(key, Arc::clone(&g));
                g
            }
        }
    }

    /// A new member id (increasing: members are ordered by when they joined).
    pub(crate) fn member_id(&self) -> u64 {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }
}

/// Every committed offset in the offsets topic (the latest record per key), and the
/// non-empty metadata strings committed with them.
type Loaded = (HashMap<OffsetKey, u64>, HashMap<OffsetKey, String>);

/// Reads every committed offset from the offsets topic.
fn load(topic: &Topic) -> Result<Loaded> {
    let mut offsets = HashMap::new();
    let mut metadata = HashMap::new();
    for p in topic.partitions() {
        let mut next = p.log_start_offset();
        while next < p.log_end_offset() {
            // Read-committed, as Kafka's coordinator loads offsets: commits of aborted
            // transactions are skipped, markers are never records. (Reads stop at the
            // last stable offset: commits of a transaction still open wait for it.)
            let fetch = p.read_committed(next, 1 << 20)?;
            if fetch.is_empty() {
                break;
            }
            for r in fetch.records() {
                let corrupt = |reason: String| Error::Corrupt {
                    path: p.dir().to_path_buf(),
                    position: r.offset(),
                    reason: format!("{OFFSETS_TOPIC} record at offset {}: {reason}", r.offset()),
                };
                let Some(key) = r.key() else { continue };
                let Some(key) = offsets::decode_key(key).map_err(corrupt)? else {
                    continue;
                };
                match r.value() {
                    None => {
                        offsets.remove(&key);
                        metadata.remove(&key);
                    }
                    Some(v) => {
                        let (offset, meta) = offsets::decode_value(v).map_err(corrupt)?;
                        if meta.is_empty() {
                            metadata.remove(&key);
                        } else {
                            metadata.insert(key.clone(), meta);
                        }
                        offsets.insert(key, offset);
                    }
                }
            }
            if fetch.next_offset() == next {
                break;
            }
            next = fetch.next_offset();
        }
    }
    Ok((offsets, metadata))
}

/// Removes every committed offset of `topic` (tombstones in the offsets topic, flushed).
pub(crate) fn forget_topic(committed: &mut Committed, topic: &str, now_ms: i64) -> Result<()> {
    let keys: Vec<OffsetKey> = committed
        .offsets
        .keys()
        .filter(|(_, t, _)| t == topic)
        .cloned()
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let records: Vec<Record> = keys
        .iter()
        .map(|(g, t, p)| Record {
            key: Some(offsets::encode_key(g, t, *p)),
            value: None,
            headers: Vec::new(),
            timestamp: Some(now_ms),
        })
        .collect();
    let p = committed.topic.partition(0)?;
    p.append(&records)?;
    p.flush()?;
    for k in keys {
        committed.offsets.remove(&k);
        committed.metadata.remove(&k);
    }
    Ok(())
}

/// One committed offset to write: see [`commit`].
#[derive(Debug)]
pub(crate) struct Commit<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    /// Stored beside the offset ("" when none).
    pub(crate) metadata: &'a str,
}

/// Writes `entries` of `group` as committed, durably, in one append and flush.
pub(crate) fn commit(
    committed: &mut Committed,
    group: &str,
    entries: &[Commit<'_>],
    now_ms: i64,
    flush: Flush,
) -> Result<()> {
    if entries.is_empty() {
        // Nothing new, but an async commit before may not be durable yet (cancelled, or
        // its flush failed): a blocking commit returns only once it is (at once if so).
        if flush == Flush::Now {
            committed.topic.partition(0)?.flush()?;
        }
        return Ok(());
    }
    let records: Vec<Record> = entries
        .iter()
        .map(|e| {
            Record::new(offsets::encode_value(e.offset, e.metadata, now_ms))
                .with_key(offsets::encode_key(group, e.topic, e.partition))
                .with_timestamp(now_ms)
        })
        .collect();
    let p = committed.topic.partition(0)?;
    p.append(&records)?;
    if flush == Flush::Now {
        p.flush()?;
    }
    for e in entries {
        let key = (group.to_string(), e.topic.to_string(), e.partition);
        match e.metadata {
            "" => committed.metadata.remove(&key),
            m => committed.metadata.insert(key.clone(), m.to_string()),
        };
        committed.offsets.insert(key, e.offset);
    }
    Ok(())
}

/// Whether a commit flushes the offsets topic before it returns, or leaves that to its
/// caller (an async commit awaits the flush on seglog's flush thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    Now,
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Later,
}

/// One group consuming one topic.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) topic: Topic,
    assignor: Assignor,
    pub(crate) state: RwLock<Assignment>,
    /// Per partition: the next offset to deliver, shared by the members so that a
    /// partition that moves is continued where its last owner stopped (`None`: from the
    /// committed offset).
    pub(crate) positions: Vec<Mutex<Option<u64>>>,
}

/// Members and who owns which partition.
#[derive(Debug, Default)]
pub(crate) struct Assignment {
    /// Bumped by every join and leave.
    pub(crate) generation: u64,
    /// Member ids in the order they joined.
    pub(crate) members: Vec<u64>,
    /// Per partition, the owning member.
    pub(crate) owner: Vec<Option<u64>>,
    /// Per partition, bumped whenever its owner changes: a member that sees the same
    /// epoch owned the partition all along.
    pub(crate) epoch: Vec<u64>,
}

impl Group {
    fn new(name: &str, topic: Topic, assignor: Assignor) -> Group {
        let n = topic.partition_count() as usize;
        Group {
            name: name.to_string(),
            assignor,
            positions: (0..n).map(|_| Mutex::new(None)).collect(),
            state: RwLock::new(Assignment {
                generation: 0,
                members: Vec::new(),
                owner: vec![None; n],
                epoch: vec![0; n],
            }),
            topic,
        }
    }

    /// Adds `member` and reassigns every partition.
    pub(crate) fn join(&self, member: u64) {
        let mut state = self.state.write();
        state.members.push(member);
        self.reassign(&mut state);
    }

    /// Removes `member` and reassigns its partitions to the others. When the last member
    /// leaves, positions are forgotten: the next member starts from the committed offsets.
    pub(crate) fn leave(&self, member: u64) {
        let mut state = self.state.write();
        state.members.retain(|&m| m != member);
        if state.members.is_empty() {
            for p in &self.positions {
                *p.lock() = None;
            }
        }
        self.reassign(&mut state);
    }

    fn reassign(&self, state: &mut Assignment) {
        state.generation += 1;
        let n = state.owner.len();
        let m = state.members.len();
        for p in 0..n {
            let owner = (m > 0).then(|| state.members[self.assignor.member_for(p, n, m)]);
            if state.owner[p] != owner {
                state.owner[p] = owner;
                state.epoch[p] += 1;
            }
        }
        // Members waiting in `poll` may have new partitions with data.
        self.topic.notify().notify();
    }

    /// The partitions `member` owns, ascending.
    pub(crate) fn assigned(state: &Assignment, member: u64) -> Vec<u32> {
        state
            .owner
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == Some(member))
            .map(|(p, _)| p as u32)
            .collect()
    }
}

impl Assignor {
    /// The index (in join order) of the member that gets partition `p` of `n`, among `m`.
    fn member_for(self, p: usize, n: usize, m: usize) -> usize {
        match self {
            Assignor::RoundRobin => p % m,
            // Kafka's RangeAssignor: contiguous ranges, the first `n % m` members one more.
            Assignor::Range => {
                let (per, extra) = (n / m, n % m);
                let big = extra * (per + 1);
                if p < big {
                    p / (per + 1)
                } else {
                    extra + (p - big) / per.max(1)
                }
            }
        }
    }
}

/// Committed offsets of `group` on `topic` with their metadata strings, by partition.
pub(crate) fn committed_with_metadata_of(
    committed: &Committed,
    group: &str,
    topic: &str,
) -> BTreeMap<u32, OffsetAndMetadata> {
    committed
        .offsets
        .iter()
        .filter(|((g, t, _), _)| g == group && t == topic)
        .map(|(key, &offset)| {
            let metadata = committed.metadata.get(key).cloned().unwrap_or_default();
            (key.2, OffsetAndMetadata { offset, metadata })
        })
        .collect()
}

/// Committed offsets of `group` on `topic`, by partition.
pub(crate) fn committed_of(committed: &Committed, group: &str, topic: &str) -> BTreeMap<u32, u64> {
    committed
        .offsets
        .iter()
        .filter(|((g, t, _), _)| g == group && t == topic)
        .map(|((_, _, p), o)| (*p, *o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(a: Assignor, n: usize, m: usize) -> Vec<usize> {
        (0..n).map(|p| a.member_for(p, n, m)).collect()
    }

    #[test]
    fn range_assignor_gives_contiguous_ranges_like_kafka() {
        assert_eq!(owners(Assignor::Range, 7, 3), [0, 0, 0, 1, 1, 2, 2]);
        assert_eq!(owners(Assignor::Range, 6, 3), [0, 0, 1, 1, 2, 2]);
        assert_eq!(owners(Assignor::Range, 2, 4), [0, 1]);
        assert_eq!(owners(Assignor::Range, 4, 1), [0, 0, 0, 0]);
        assert_eq!(owners(Assignor::RoundRobin, 5, 2), [0, 1, 0, 1, 0]);
    }
}
