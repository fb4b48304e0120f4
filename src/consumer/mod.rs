//! Consumers: tailing reads over a topic's partitions, seeking, Kafka's offset reset
//! policy, and consumer groups with durable committed offsets.
//!
//! A [`Consumer`] made by [`Store::consumer`](crate::Store::consumer) reads partitions
//! on its own; one made by [`Store::join_group`](crate::Store::join_group) is a member of
//! a named group: the group's members share the topic's partitions (each partition has one
//! owner, reassigned whenever a member joins or leaves), and commit their positions to the
//! internal topic `__consumer_offsets`, from which a restarted group resumes. One consumer
//! can read several topics ([`Store::consumer_of_topics`](crate::Store::consumer_of_topics),
//! [`Store::join_group_topics`](crate::Store::join_group_topics)); its calls then name
//! partitions with their topic ([`TopicPartition`], [`PartitionRef`]). Beside `poll`:
//! [`Consumer::pause`] / [`Consumer::resume`], [`Consumer::commit_offsets`], a
//! [`RebalanceListener`], and [`ConsumerWakeup`] to interrupt a blocked poll from another
//! thread.

mod controls;
mod group;
mod offsets;
#[cfg(feature = "async")]
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use controls::{ConsumerWakeup, PartitionRef, RebalanceListener, TopicPartition};
pub(crate) use group::{committed_of, committed_with_metadata_of, forget_topic, Coordinator};
pub use offsets::OFFSETS_TOPIC;
#[cfg(feature = "async")]
pub use stream::RecordStream;

use crate::config::Clock;
use crate::error::{Error, Result};
use crate::notify::Sleeper;
use crate::partition::{Fetch, Partition};
use crate::record::{Header, RecordView};
use crate::topic::Topic;
use controls::WakeupState;
use group::{Flush, Group};

/// Where a consumer starts, or goes on, when it has no valid position: no committed
/// offset yet, or its position left the log (retention deleted it, or a truncation
/// removed it). Kafka's `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start offset: everything still held.
    Earliest,
    /// The log end offset: only what is appended from now on (Kafka's default).
    #[default]
    Latest,
    /// No reset: `poll` fails with [`Error::OffsetOutOfRange`] (or
    /// [`Error::NoCommittedOffset`] when a group has no committed offset).
    None,
}

/// How a group's partitions are spread over its members (Kafka's assignors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Contiguous ranges of partitions, in join order; the first members get one more
    /// when the count does not divide (Kafka's `RangeAssignor`, its default).
    #[default]
    Range,
    /// Partition `p` goes to member `p % members` (Kafka's `RoundRobinAssignor`).
    RoundRobin,
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// What to do without a valid position. Default [`OffsetReset::Latest`].
    pub reset: OffsetReset,
    /// For group members: commit the positions of the records returned so far every
    /// this often, from `poll`, and when leaving the group (Kafka's
    /// `enable.auto.commit` with `auto.commit.interval.ms`, default 5 s). `None`: only
    /// [`Consumer::commit`] and [`Consumer::commit_offsets`] commit. A standalone
    /// consumer (not in a group) has nothing to commit: it sets this to `None`, which its
    /// [`Consumer::config`] shows.
    pub auto_commit: Option<Duration>,
    /// Read only durable (flushed) records, which survive a crash
    /// ([`Partition::read_durable`]). Default false: everything appended.
    pub durable_reads: bool,
    /// Bytes read from one partition at a time (Kafka's `max.partition.fetch.bytes`,
    /// default 1 MiB; a larger batch is still read whole).
    pub fetch_bytes: usize,
    /// How a group's partitions are assigned. Default [`Assignor::Range`]; every member
    /// of a group should use the same (the first member's is kept).
    pub assignor: Assignor,
    /// Which transactional records are returned (Kafka's `isolation.level`). Default
    /// [`Isolation::ReadUncommitted`], as in Kafka.
    pub isolation: Isolation,
}

/// Which records of transactions a consumer returns (Kafka's `isolation.level`).
/// Transaction markers (control batches) are never returned either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Every data record, whether its transaction committed, aborted or is still open
    /// (Kafka's `read_uncommitted`, its default).
    #[default]
    ReadUncommitted,
    /// Only records below the last stable offset, without those of aborted
    /// transactions ([`Partition::read_committed`]).
    ReadCommitted,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            reset: OffsetReset::Latest,
            auto_commit: Some(Duration::from_secs(5)),
            durable_reads: false,
            fetch_bytes: 1 << 20,
            assignor: Assignor::Range,
            isolation: Isolation::ReadUncommitted,
        }
    }
}

impl ConsumerConfig {
    /// Sets `reset`.
    pub fn reset(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
        self
    }
    /// Sets `auto_commit`.
    pub fn auto_commit(mut self, every: Option<Duration>) -> Self {
        self.auto_commit = every;
        self
    }
    /// Sets `durable_reads`.
    pub fn durable_reads(mut self, on: bool) -> Self {
        self.durable_reads = on;
        self
    }
    /// Sets `fetch_bytes`.
    pub fn fetch_bytes(mut self, bytes: usize) -> Self {
        self.fetch_bytes = bytes;
        self
    }
    /// Sets `isolation`.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }
    /// Sets `assignor`.
    pub fn assignor(mut self, assignor: Assignor) -> Self {
        self.assignor = assignor;
        self
    }
}

/// A record as a consumer receives it: owned, with its partition and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// Its timestamp (milliseconds since the Unix epoch).
    pub timestamp: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Its headers.
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    /// An owned copy of `r`, read from partition `partition` of `topic`.
    pub(crate) fn from_view(topic: &Arc<str>, partition: u32, r: &RecordView<'_>) -> Self {
        ConsumerRecord {
            topic: Arc::clone(topic),
            partition,
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: r.key().map(<[u8]>::to_vec),
            value: r.value().map(<[u8]>::to_vec),
            headers: r
                .headers()
                .iter()
                .map(|(k, v)| Header {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: v.map(<[u8]>::to_vec),
                })
                .collect(),
        }
    }
}

/// A committed offset and the metadata string committed with it (Kafka's
/// `OffsetAndMetadata`): see [`Consumer::commit_with_metadata`] and
/// [`Store::committed_with_metadata`](crate::Store::committed_with_metadata).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    /// The committed offset: the next record the group reads.
    pub offset: u64,
    /// What the committer stored beside it (empty when it gave nothing).
    pub metadata: String,
}

/// A group's lag on one partition (see [`Store::group_lag`](crate::Store::group_lag)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: u32,
    /// Its log end offset.
    pub log_end_offset: u64,
    /// The group's committed offset, if it committed one.
    pub committed: Option<u64>,
    /// `log_end_offset - committed` (from the log start offset when nothing is committed).
    pub lag: u64,
}

/// One topic a consumer reads, and how.
#[derive(Debug)]
struct Source {
    topic: Topic,
    /// The topic's name, shared by the [`TopicPartition`]s handed out.
    name: Arc<str>,
    reads: Reads,
}

/// Which partitions of a source are read, and where the positions are kept.
#[derive(Debug)]
enum Reads {
    /// A standalone consumer's own partitions and positions.
    Own {
        partitions: Vec<u32>,
        positions: BTreeMap<u32, u64>,
    },
    /// A group member's: partitions and positions are the group's.
    Group(Arc<Group>),
}

/// A group member's identity, the same in the group of each topic it reads.
#[derive(Debug)]
struct Membership {
    name: String,
    id: u64,
    coordinator: Arc<Coordinator>,
    clock: Arc<dyn Clock>,
}

/// A partition as the consumer keeps it: (index in `sources`, partition number).
type Key = (usize, u32);

/// The listener slot (a trait object has no `Debug`).
#[derive(Default)]
struct ListenerSlot(Option<Box<dyn RebalanceListener>>);

impl std::fmt::Debug for ListenerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// Reads records from the partitions of one or several topics, blocking in
/// [`Consumer::poll`] until some are appended. Not `Sync` (one thread polls); make one
/// consumer per thread. Another thread can interrupt a blocked poll through
/// [`Consumer::wakeup_handle`].
#[derive(Debug)]
pub struct Consumer {
    /// Sorted by topic name, each topic once (group locks are taken in this order).
    sources: Vec<Source>,
    config: ConsumerConfig,
    member: Option<Membership>,
    /// Where the next poll starts among the readable partitions (fairness).
    next_partition: usize,
    last_commit: Instant,
    /// Positions reached by the records returned so far, not yet committed (members).
    dirty: bool,
    /// `close` ran (dropping then does nothing more).
    left: bool,
    /// Per partition, records read but not returned yet.
    pending: BTreeMap<Key, Pending>,
    /// A fetch buffer to read into next.
    spare: Vec<u8>,
    /// Partitions `poll` skips until resumed.
    paused: BTreeSet<Key>,
    /// Members: the assignment as last told to the listener, with each partition's
    /// ownership epoch; `poll` reads only these (and only while still owned). `None`
    /// before the first poll.
    told: Option<BTreeMap<Key, u64>>,
    /// Each group's generation when `told` was taken (unchanged: nothing to tell).
    told_generations: Vec<u64>,
    listener: ListenerSlot,
    /// A listener runs now (`poll` is refused).
    in_listener: bool,
    /// In `on_revoked`: the partitions being revoked, which `commit_offsets` still takes.
    revoking: BTreeSet<Key>,
    wakeup: Arc<WakeupState>,
}

impl Consumer {
    fn new(sources: Vec<Source>, config: ConsumerConfig, member: Option<Membership>) -> Self {
        Consumer {
            sources,
            config,
            member,
            next_partition: 0,
            last_commit: Instant::now(),
            dirty: false,
            left: false,
            pending: BTreeMap::new(),
            spare: Vec::new(),
            paused: BTreeSet::new(),
            told: None,
            told_generations: Vec::new(),
            listener: ListenerSlot::default(),
            in_listener: false,
            revoking: BTreeSet::new(),
            wakeup: Arc::default(),
        }
    }

    /// A standalone consumer of `assigned` (topic, partitions), topics distinct. It has
    /// nothing to commit: its config's `auto_commit` is set to `None`.
    pub(crate) fn standalone(assigned: Vec<(Topic, Vec<u32>)>, mut config: ConsumerConfig) -> Self {
        config.auto_commit = None;
        let mut sources: Vec<Source> = assigned
            .into_iter()
            .map(|(topic, partitions)| Source {
                name: Arc::from(topic.name()),
                topic,
                reads: Reads::Own {
                    partitions,
                    positions: BTreeMap::new(),
                },
            })
            .collect();
        sources.sort_by(|a, b| a.topic.name().cmp(b.topic.name()));
        Consumer::new(sources, config, None)
    }

    /// A member of group `name` on each of `groups` (one per topic, topics distinct),
    /// joining each.
    pub(crate) fn member(
        name: &str,
        mut groups: Vec<Arc<Group>>,
        coordinator: Arc<Coordinator>,
        clock: Arc<dyn Clock>,
        config: ConsumerConfig,
    ) -> Self {
        groups.sort_by(|a, b| a.topic.name().cmp(b.topic.name()));
        let id = coordinator.member_id();
        for g in &groups {
            g.join(id);
        }
        let sources = groups
            .into_iter()
            .map(|g| Source {
                name: Arc::from(g.topic.name()),
                topic: g.topic.clone(),
                reads: Reads::Group(g),
            })
            .collect();
        let member = Membership {
            name: name.to_string(),
            id,
            coordinator,
            clock,
        };
        Consumer::new(sources, config, Some(member))
    }

    /// The topic read; for a consumer of several topics, the first by name (see
    /// [`Consumer::topics`]).
    pub fn topic(&self) -> &Topic {
        &self.sources[0].topic
    }

    /// The topics read, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> + '_ {
        self.sources.iter().map(|s| &s.topic)
    }

    /// The group's name, for a group member.
    pub fn group(&self) -> Option<&str> {
        self.member.as_ref().map(|m| m.name.as_str())
    }

    /// The settings in force. A standalone consumer ([`Store::consumer`](crate::Store::consumer)
    /// and its siblings) commits nothing, so its `auto_commit` is `None` whatever it was
    /// given.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// The partitions this consumer reads now, by number (a member's change at once when
    /// others join or leave its group; its next `poll` tells its
    /// [`RebalanceListener`] and reads accordingly). Meant for a consumer of one topic: on a
    /// consumer of several, the numbers of every topic's partitions follow each other in
    /// topic order, so use [`Consumer::assigned_partitions`] to know which is which.
    pub fn assignment(&self) -> Vec<u32> {
        self.current().into_iter().map(|(_, p)| p).collect()
    }

    /// The partitions this consumer reads now, with their topics (Kafka's `assignment()`).
    pub fn assigned_partitions(&self) -> Vec<TopicPartition> {
        self.current()
            .into_iter()
            .map(|k| self.topic_partition(k))
            .collect()
    }

    /// Every partition assigned now, in source order (a standalone consumer's in the
    /// order given).
    fn current(&self) -> Vec<Key> {
        let mut out = Vec::new();
        for (s, source) in self.sources.iter().enumerate() {
            match &source.reads {
                Reads::Own { partitions, .. } => out.extend(partitions.iter().map(|&p| (s, p))),
                Reads::Group(g) => {
                    let id = self.member_id();
                    let mine = Group::assigned(&g.state.read(), id);
                    out.extend(mine.into_iter().map(|p| (s, p)));
                }
            }
        }
        out
    }

    fn member_id(&self) -> u64 {
        self.member.as_ref().map_or(u64::MAX, |m| m.id)
    }

    fn topic_partition(&self, (s, p): Key) -> TopicPartition {
        TopicPartition {
            topic: Arc::clone(&self.sources[s].name),
            partition: p,
        }
    }

    /// Finds the partition `which` names among the topics read.
    fn resolve(&self, which: &impl PartitionRef, operation: &'static str) -> Result<Key> {
        let (topic, p) = which.topic_and_partition();
        let s = match topic {
            None if self.sources.len() == 1 => 0,
            None => {
                return Err(Error::AmbiguousPartition {
                    operation,
                    partition: p,
                    topics: self.topics().map(|t| t.name().to_string()).collect(),
                })
            }
            Some(t) => match self.sources.iter().position(|s| s.topic.name() == t) {
                Some(s) => s,
                None => {
                    return Err(Error::NotAssigned {
                        operation,
                        partition: format!("{t}-{p}"),
                    })
                }
            },
        };
        self.sources[s].topic.partition(p)?;
        Ok((s, p))
    }

    /// True when partition `k` is assigned to this consumer now.
    fn owns(&self, (s, p): Key) -> bool {
        match &self.sources[s].reads {
            Reads::Own { partitions, .. } => partitions.contains(&p),
            Reads::Group(g) => {
                g.state.read().owner.get(p as usize).copied().flatten() == Some(self.member_id())
            }
        }
    }

    /// Returns up to `max_records` records as soon as any are available in the assigned
    /// partitions (paused ones skipped), waiting up to `timeout` for an append to any
    /// topic read (no busy waiting: appends wake the consumer). An empty result means the
    /// timeout passed. Records of one partition come in offset order; each poll starts
    /// with the partition after the one the last poll started with, across topics, so
    /// none is starved. A group member first runs its [`RebalanceListener`] when its
    /// partitions changed, and commits when auto-commit is due: the positions of the
    /// records earlier polls returned.
    ///
    /// # Errors
    /// [`Error::Wakeup`] when [`ConsumerWakeup::wakeup`] was called (during this poll or
    /// before it); [`Error::IllegalState`] when called from a rebalance listener;
    /// [`Error::OffsetOutOfRange`] / [`Error::NoCommittedOffset`] when a position is
    /// invalid and the reset policy is [`OffsetReset::None`]; read errors
    /// ([`Error::Corrupt`], I/O); commit errors; the listener's errors.
    pub fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.check_not_in_listener("poll")?;
        // `None`: a timeout too long to represent, which is waiting without one.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Before `prepare`: a rebalance after the listener ran (it notifies the topic)
            // must end the wait, or the partitions it gave would wait for an append.
            let seqs = self.seqs();
            self.prepare(Flush::Now)?;
            let (records, moved) = self.fetch(max_records.max(1))?;
            if !records.is_empty() {
                self.dirty = true;
                return Ok(records);
            }
            // Positions that moved past record-less batches (compaction's) may have more
            // to read right away.
            if !moved && !self.wait(&seqs, deadline) {
                return Ok(Vec::new());
            }
        }
    }

    /// A poll from a rebalance listener is refused.
    fn check_not_in_listener(&self, operation: &'static str) -> Result<()> {
        if self.in_listener {
            return Err(Error::IllegalState {
                operation,
                reason: "called from a rebalance listener".to_string(),
            });
        }
        Ok(())
    }

    /// What comes before each fetch of a poll: a pending wakeup, the auto-commit, the
    /// rebalance listener. True when an auto-commit was written and, with `Flush::Later`,
    /// waits for its flush.
    fn prepare(&mut self, flush: Flush) -> Result<bool> {
        if self.wakeup.take() {
            return Err(Error::Wakeup);
        }
        // Before fetching: what earlier polls returned has been handled by now (as
        // Kafka's auto-commit, which commits the previous poll's positions).
        let committed = self.maybe_auto_commit(flush)?;
        self.tell_listener()?;
        Ok(committed)
    }

    /// The change counters of the topics read, taken before a fetch.
    fn seqs(&self) -> Vec<u64> {
        self.sources
            .iter()
            .map(|s| s.topic.notify().seq())
            .collect()
    }

    /// Waits until a topic's counter differs from `seqs`, a wakeup, or `deadline`; true
    /// unless the deadline passed.
    fn wait(&self, seqs: &[u64], deadline: Option<Instant>) -> bool {
        let sleeper = Sleeper::new();
        let _watches: Vec<_> = self
            .sources
            .iter()
            .map(|s| sleeper.watch(s.topic.notify()))
            .collect();
        let _armed = self.wakeup.arm(sleeper.waker());
        sleeper.sleep_until(deadline, || {
            self.wakeup.requested()
                || self
                    .sources
                    .iter()
                    .zip(seqs)
                    .any(|(s, &seen)| s.topic.notify().seq() != seen)
        })
    }

    /// A handle that wakes this consumer from another thread (see [`ConsumerWakeup`]).
    pub fn wakeup_handle(&self) -> ConsumerWakeup {
        ConsumerWakeup(Arc::clone(&self.wakeup))
    }

    /// Makes the next `poll` return [`Error::Wakeup`] (from another thread, use
    /// [`Consumer::wakeup_handle`]).
    pub fn wakeup(&self) {
        self.wakeup_handle().wakeup();
    }

    /// Sets the listener told when this group member's partitions change (replacing any
    /// earlier one); see [`RebalanceListener`] for when it runs and what it may do.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener.0 = Some(Box::new(listener));
    }

    /// Every partition a member owns now, with its ownership epoch.
    fn owned_epochs(&self) -> BTreeMap<Key, u64> {
        let id = self.member_id();
        let mut out = BTreeMap::new();
        for (s, g) in self.groups() {
            let state = g.state.read();
            for (p, owner) in state.owner.iter().enumerate() {
                if *owner == Some(id) {
                    out.insert((s, p as u32), state.epoch[p]);
                }
            }
        }
        out
    }

    /// Tells the listener what changed since it was last told (members only). A partition
    /// whose ownership epoch changed was taken away and given back meanwhile: it is
    /// reported revoked and assigned.
    fn tell_listener(&mut self) -> Result<()> {
        if self.member.is_none() {
            return Ok(());
        }
        let generations: Vec<u64> = self
            .groups()
            .map(|(_, g)| g.state.read().generation)
            .collect();
        if self.told.is_some() && generations == self.told_generations {
            return Ok(());
        }
        // Read before the assignment: a rebalance in between is seen next time.
        self.told_generations = generations;
        let now = self.owned_epochs();
        let first = self.told.is_none();
        let told = self.told.take().unwrap_or_default();
        let revoked: Vec<Key> = told
            .iter()
            .filter(|(k, e)| now.get(k) != Some(e))
            .map(|(k, _)| *k)
            .collect();
        let assigned: Vec<Key> = now
            .iter()
            .filter(|(k, e)| told.get(k) != Some(e))
            .map(|(k, _)| *k)
            .collect();
        self.told = Some(now);
        for k in &revoked {
            // Forgotten with the partition (Kafka); buffered records are the next
            // owner's to read from the group's position.
            self.paused.remove(k);
            self.pending.remove(k);
        }
        let mut result = Ok(());
        if !revoked.is_empty() {
            result = self.call_listener(revoked, true);
        }
        if first || !assigned.is_empty() {
            result = result.and(self.call_listener(assigned, false));
        }
        result
    }

    /// Calls the listener's `on_revoked` (`revoked`) or `on_assigned` with `keys`.
    fn call_listener(&mut self, keys: Vec<Key>, revoked: bool) -> Result<()> {
        let Some(mut listener) = self.listener.0.take() else {
            return Ok(());
        };
        let parts: Vec<TopicPartition> = keys.iter().map(|&k| self.topic_partition(k)).collect();
        self.in_listener = true;
        let result = if revoked {
            self.revoking = keys.into_iter().collect();
            listener.on_revoked(self, &parts)
        } else {
            listener.on_assigned(self, &parts)
        };
        self.in_listener = false;
        self.revoking.clear();
        // Unless the listener set another one.
        if self.listener.0.is_none() {
            self.listener.0 = Some(listener);
        }
        result
    }

    /// The partitions `poll` may read now: assigned (for a member, also told to the
    /// listener), not paused.
    fn readable(&self) -> Vec<Key> {
        // A member's: `fetch` checks under the group's lock that each is still owned at
        // the epoch told.
        let mut keys = match (&self.member, &self.told) {
            (None, _) => self.current(),
            (Some(_), None) => Vec::new(),
            (Some(_), Some(told)) => told.keys().copied().collect(),
        };
        keys.retain(|k| !self.paused.contains(k));
        keys
    }

    /// One non-blocking round over the readable partitions, starting after the one the
    /// last round started with. Returns the records and whether any position moved. An
    /// error on one partition after records of others were taken returns those records
    /// (they are delivered; the error comes again at the next poll).
    fn fetch(&mut self, max_records: usize) -> Result<(Vec<ConsumerRecord>, bool)> {
        let keys = self.readable();
        let n = keys.len();
        let first = self.next_partition % n.max(1);
        let mut out = Vec::new();
        let mut moved = false;
        let mut reader = Reader {
            config: &self.config,
            pending: &mut self.pending,
            spare: &mut self.spare,
        };
        let sources = &mut self.sources;
        let member = self.member.as_ref();
        let told = self.told.as_ref();
        round(&keys, first, max_records, &mut out, |(s, p), out| {
            let Source { topic, reads, .. } = &mut sources[s];
            let part = topic.partition(p)?;
            match reads {
                Reads::Own { positions, .. } => {
                    let pos = positions.get(&p).copied();
                    let start = match pos {
                        Some(pos) => pos,
                        None => initial_position(part, reader.config.reset, None, "")?,
                    };
                    let next = reader.read((s, p), part, start, max_records, out)?;
                    moved |= pos != Some(next);
                    positions.insert(p, next);
                }
                Reads::Group(group) => {
                    let m = member.expect("a group source has a membership");
                    // Held while reading: a rebalance waits, so a partition never has two
                    // readers and moves exactly at a delivered position.
                    let state = group.state.read();
                    let epoch = told.and_then(|t| t.get(&(s, p)));
                    if state.owner.get(p as usize).copied().flatten() != Some(m.id)
                        || epoch != state.epoch.get(p as usize)
                    {
                        // Moved since the listener was told: the next round tells it.
                        return Ok(());
                    }
                    let mut slot = group.positions[p as usize].lock();
                    let start = match *slot {
                        Some(pos) => pos,
                        None => {
                            let key = (group.name.clone(), topic.name().to_string(), p);
                            let committed = m.coordinator.loaded()?.offsets.get(&key).copied();
                            initial_position(part, reader.config.reset, committed, &group.name)?
                        }
                    };
                    let next = reader.read((s, p), part, start, max_records, out)?;
                    moved |= *slot != Some(next);
                    *slot = Some(next);
                }
            }
            Ok(())
        })?;
        self.next_partition = (first + 1) % n.max(1);
        Ok((out, moved))
    }

    /// The next offset this consumer will read from `partition`, if it has one yet
    /// (`None` too for a partition this consumer cannot name: a bare number on a
    /// consumer of several topics, or a topic it does not read).
    pub fn position(&self, partition: impl PartitionRef) -> Option<u64> {
        let (s, p) = self.resolve(&partition, "position").ok()?;
        match &self.sources[s].reads {
            Reads::Own { positions, .. } => positions.get(&p).copied(),
            Reads::Group(group) => group.positions.get(p as usize).and_then(|p| *p.lock()),
        }
    }

    /// Moves the position of `partition` to `offset` (the next record read is the first
    /// at or after it).
    ///
    /// # Errors
    /// [`Error::UnknownPartition`]; [`Error::InvalidConfig`] when a group member seeks a
    /// partition it does not own; [`Error::AmbiguousPartition`] for a bare number on a
    /// consumer of several topics; [`Error::NotAssigned`] for a topic it does not read.
    pub fn seek(&mut self, partition: impl PartitionRef, offset: u64) -> Result<()> {
        let key = self.resolve(&partition, "seek")?;
        self.seek_key(key, offset)
    }

    fn seek_key(&mut self, (s, p): Key, offset: u64) -> Result<()> {
        let id = self.member_id();
        match &mut self.sources[s].reads {
            Reads::Own { positions, .. } => {
                positions.insert(p, offset);
            }
            Reads::Group(group) => {
                let state = group.state.read();
                if state.owner.get(p as usize).copied().flatten() != Some(id) {
                    return Err(Error::config(
                        "seek partition",
                        p,
                        "a partition assigned to this member",
                    ));
                }
                *group.positions[p as usize].lock() = Some(offset);
            }
        }
        Ok(())
    }

    /// Seeks every assigned partition to its log start offset.
    ///
    /// # Errors
    /// As [`Consumer::seek`].
    pub fn seek_to_beginning(&mut self) -> Result<()> {
        self.seek_each(|p| Ok(p.log_start_offset()))
    }

    /// Seeks every assigned partition to its log end offset (only new records follow).
    ///
    /// # Errors
    /// As [`Consumer::seek`].
    pub fn seek_to_end(&mut self) -> Result<()> {
        self.seek_each(|p| Ok(p.log_end_offset()))
    }

    /// Seeks every assigned partition to its first record with a timestamp at or after
    /// `timestamp` (via the time index), or to its log end offset when there is none.
    ///
    /// # Errors
    /// As [`Consumer::seek`], and [`Partition::offset_for_timestamp`]'s.
    pub fn seek_to_timestamp(&mut self, timestamp: i64) -> Result<()> {
        self.seek_each(|p| {
            Ok(p.offset_for_timestamp(timestamp)?
                .map_or(p.log_end_offset(), |t| t.offset))
        })
    }

    fn seek_each(&mut self, to: impl Fn(&Partition) -> Result<u64>) -> Result<()> {
        for (s, p) in self.current() {
            let offset = to(self.sources[s].topic.partition(p)?)?;
            self.seek_key((s, p), offset)?;
        }
        Ok(())
    }

    /// Stops returning records of `partitions` (Kafka's `pause`): `poll` skips them, and
    /// records already read ahead for them wait, until [`Consumer::resume`]. A group
    /// member's pause of a partition is forgotten when a rebalance takes the partition
    /// away. Pausing a paused partition does nothing.
    ///
    /// # Errors
    /// [`Error::NotAssigned`] for a partition not assigned to this consumer now (nothing
    /// is paused then); [`Error::AmbiguousPartition`], [`Error::UnknownPartition`].
    pub fn pause<P: PartitionRef>(&mut self, partitions: &[P]) -> Result<()> {
        let keys = self.assigned_keys(partitions, "pause")?;
        self.paused.extend(keys);
        Ok(())
    }

    /// Reads `partitions` again from where they stopped (Kafka's `resume`). Resuming a
    /// partition that is not paused does nothing.
    ///
    /// # Errors
    /// As [`Consumer::pause`].
    pub fn resume<P: PartitionRef>(&mut self, partitions: &[P]) -> Result<()> {
        for k in self.assigned_keys(partitions, "resume")? {
            self.paused.remove(&k);
        }
        Ok(())
    }

    /// The paused partitions (Kafka's `paused()`).
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.paused
            .iter()
            .map(|&k| self.topic_partition(k))
            .collect()
    }

    /// Resolves `partitions`, each assigned to this consumer now.
    fn assigned_keys<P: PartitionRef>(
        &self,
        partitions: &[P],
        operation: &'static str,
    ) -> Result<Vec<Key>> {
        partitions
            .iter()
            .map(|which| {
                let k = self.resolve(which, operation)?;
                if !self.owns(k) {
                    return Err(Error::NotAssigned {
                        operation,
                        partition: self.topic_partition(k).to_string(),
                    });
                }
                Ok(k)
            })
            .collect()
    }

    /// Commits the positions of the records returned so far for every partition this
    /// member owns: durable (flushed to `__consumer_offsets`) when this returns. A
    /// restarted group resumes from them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a consumer that is not a group member; write errors.
    pub fn commit(&mut self) -> Result<()> {
        self.commit_positions(&BTreeMap::new(), Flush::Now)
    }

    /// As [`Consumer::commit`], with a metadata string per partition stored beside the
    /// offset in `__consumer_offsets` (Kafka's `OffsetAndMetadata`; partitions missing from
    /// `metadata` get the empty string). Every assigned partition with a position whose
    /// offset or metadata differs from the committed one is written.
    ///
    /// # Errors
    /// As [`Consumer::commit`]; [`Error::InvalidConfig`] for a metadata string over
    /// 32,767 bytes (Kafka's strings are `int16`-length-prefixed);
    /// [`Error::AmbiguousPartition`] for metadata on a consumer of several topics (the
    /// map's keys are bare partition numbers).
    pub fn commit_with_metadata(&mut self, metadata: &BTreeMap<u32, String>) -> Result<()> {
        if let Some(m) = metadata.values().find(|m| m.len() > i16::MAX as usize) {
            return Err(Error::config(
                "metadata",
                format!("{} bytes", m.len()),
                format!("at most {} bytes", i16::MAX),
            ));
        }
        if let (Some(&p), true) = (metadata.keys().next(), self.sources.len() > 1) {
            return Err(Error::AmbiguousPartition {
                operation: "commit_with_metadata",
                partition: p,
                topics: self.topics().map(|t| t.name().to_string()).collect(),
            });
        }
        self.commit_positions(metadata, Flush::Now)
    }

    fn commit_positions(&mut self, metadata: &BTreeMap<u32, String>, flush: Flush) -> Result<()> {
        let Some(m) = &self.member else {
            return Err(Error::config(
                "commit",
                "standalone consumer",
                "a group member (Store::join_group)",
            ));
        };
        // Held until the commit is written: a rebalance waits, so a commit of this
        // member's positions never lands after the next owner's. Taken in source (topic
        // name) order, as by every member, and a rebalance takes one at a time.
        let states: Vec<_> = self.groups().map(|(_, g)| g.state.read()).collect();
        let mut committed = m.coordinator.loaded()?;
        self.check_not_deleted()?;
        let mut entries = Vec::new();
        for ((s, group), state) in self.groups().zip(&states) {
            let topic = self.sources[s].topic.name();
            for p in Group::assigned(state, m.id) {
                let Some(o) = *group.positions[p as usize].lock() else {
                    continue;
                };
                let key = (group.name.clone(), topic.to_string(), p);
                let meta = metadata.get(&p).map_or("", String::as_str);
                if committed.offsets.get(&key) != Some(&o)
                    || committed.metadata.get(&key).map_or("", String::as_str) != meta
                {
                    entries.push(group::Commit {
                        topic,
                        partition: p,
                        offset: o,
                        metadata: meta,
                    });
                }
            }
        }
        group::commit(&mut committed, &m.name, &entries, m.clock.now_ms(), flush)?;
        drop(committed);
        drop(states);
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Commits exactly `offsets` (Kafka's `commitSync(offsets)`): each the offset of the
    /// next record to read from its partition (the last processed one's plus one), durable
    /// (flushed to `__consumer_offsets`) when this returns, with an empty metadata string.
    /// Positions do not move, and other partitions' committed offsets stay as they are.
    /// Only partitions this member owns now may be committed (and, inside
    /// [`RebalanceListener::on_revoked`], those being revoked). As Kafka, any offset is
    /// accepted, also one outside the log: a group that resumes from an offset outside
    /// the log goes on per its [`OffsetReset`]. With auto-commit on, the next auto-commit
    /// overwrites these with the positions (turn it off to commit by hand). A partition
    /// named twice gets its last offset.
    ///
    /// # Errors
    /// [`Error::IllegalState`] for a standalone consumer; [`Error::NotAssigned`] for a
    /// partition this member does not own; [`Error::InvalidConfig`] for an offset over
    /// `i64::MAX` (Kafka's offsets are `int64`); [`Error::AmbiguousPartition`],
    /// [`Error::UnknownPartition`]; [`Error::UnknownTopic`] once the topic is deleted;
    /// write errors. Nothing is committed when any of these is returned.
    pub fn commit_offsets<P: PartitionRef>(&mut self, offsets: &[(P, u64)]) -> Result<()> {
        let Some(m) = &self.member else {
            return Err(Error::IllegalState {
                operation: "commit_offsets",
                reason: "a standalone consumer belongs to no group, so it has nothing to \
                         commit to (use Store::join_group)"
                    .to_string(),
            });
        };
        let mut wanted: BTreeMap<Key, u64> = BTreeMap::new();
        for (which, offset) in offsets {
            let k = self.resolve(which, "commit_offsets")?;
            if *offset > i64::MAX as u64 {
                return Err(Error::config(
                    "commit_offsets offset",
                    offset,
                    format!("at most {} (Kafka's offsets are int64)", i64::MAX),
                ));
            }
            wanted.insert(k, *offset);
        }
        // As in `commit_positions`; ownership is checked under these locks.
        let states: Vec<_> = self.groups().map(|(s, g)| (s, g.state.read())).collect();
        for &(s, p) in wanted.keys() {
            let owned = states.iter().any(|(gs, state)| {
                *gs == s && state.owner.get(p as usize).copied().flatten() == Some(m.id)
            });
            if !owned && !self.revoking.contains(&(s, p)) {
                return Err(Error::NotAssigned {
                    operation: "commit_offsets",
                    partition: self.topic_partition((s, p)).to_string(),
                });
            }
        }
        let mut committed = m.coordinator.loaded()?;
        self.check_not_deleted()?;
        let entries: Vec<group::Commit<'_>> = wanted
            .iter()
            .map(|(&(s, p), &offset)| group::Commit {
                topic: self.sources[s].topic.name(),
                partition: p,
                offset,
                metadata: "",
            })
            .collect();
        group::commit(
            &mut committed,
            &m.name,
            &entries,
            m.clock.now_ms(),
            Flush::Now,
        )
    }

    /// The group of each source, with its index (members only).
    fn groups(&self) -> impl Iterator<Item = (usize, &Arc<Group>)> + '_ {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(s, source)| match &source.reads {
                Reads::Group(g) => Some((s, g)),
                Reads::Own { .. } => None,
            })
    }

    /// Checked under the coordinator's lock, under which `delete_topic` sets it and
    /// forgets the topic's offsets: nothing is committed on a deleted topic.
    fn check_not_deleted(&self) -> Result<()> {
        match self.topics().find(|t| t.is_deleted()) {
            Some(t) => Err(Error::UnknownTopic(t.name().to_string())),
            None => Ok(()),
        }
    }

    /// Commits when auto-commit is due. Positions that differ from the committed ones
    /// are written, whoever moved them (partitions handed over by a rebalance too).
    fn maybe_auto_commit(&mut self, flush: Flush) -> Result<bool> {
        match (&self.member, self.config.auto_commit) {
            (Some(_), Some(every)) if self.last_commit.elapsed() >= every => {
                self.commit_positions(&BTreeMap::new(), flush)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Leaves the group (for a member): tells the rebalance listener that every partition
    /// it was told about is revoked, commits when auto-commit is on, then leaves.
    /// Dropping the consumer does the same but cannot report an error.
    ///
    /// # Errors
    /// The listener's, then the commit's (the consumer leaves its group either way).
    pub fn close(mut self) -> Result<()> {
        self.leave()
    }

    fn leave(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.left, true) {
            return Ok(());
        }
        let mut result = Ok(());
        if self.member.is_some() {
            let told: Vec<Key> = self.told.take().unwrap_or_default().into_keys().collect();
            if !told.is_empty() {
                result = self.call_listener(told, true);
            }
            if self.config.auto_commit.is_some() {
                result = result.and(self.commit());
            }
        }
        if let Some(m) = &self.member {
            for (_, g) in self.groups() {
                g.leave(m.id);
            }
        }
        result
    }

    /// For each assigned partition: log end offset minus this consumer's position (by
    /// number, in the order of [`Consumer::assignment`]).
    pub fn lag(&self) -> Vec<(u32, u64)> {
        self.current()
            .into_iter()
            .filter_map(|(s, p)| {
                let part = self.sources[s].topic.partition(p).ok()?;
                let pos = self.position_of((s, p)).unwrap_or(part.log_start_offset());
                Some((p, part.log_end_offset().saturating_sub(pos)))
            })
            .collect()
    }

    fn position_of(&self, (s, p): Key) -> Option<u64> {
        match &self.sources[s].reads {
            Reads::Own { positions, .. } => positions.get(&p).copied(),
            Reads::Group(group) => group.positions.get(p as usize).and_then(|p| *p.lock()),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// What one `fetch` reads with: the settings, records held over from the last poll, and
/// a buffer to read into.
struct Reader<'a> {
    config: &'a ConsumerConfig,
    pending: &'a mut BTreeMap<Key, Pending>,
    spare: &'a mut Vec<u8>,
}

impl Reader<'_> {
    /// [`read_into`] for `part` (partition `key`), with the records it held over for it.
    fn read(
        &mut self,
        key: Key,
        part: &Partition,
        start: u64,
        max: usize,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<u64> {
        let mut held = self.pending.remove(&key);
        let next = read_into(part, start, self.config, max, out, &mut held, self.spare)?;
        if let Some(held) = held {
            self.pending.insert(key, held);
        }
        Ok(next)
    }
}

/// Visits `partitions` in turn from index `first`, until `out` holds `max` records. An
/// error after records were taken ends the round with them (the error comes again at the
/// next poll); an error before that is returned.
fn round(
    partitions: &[Key],
    first: usize,
    max: usize,
    out: &mut Vec<ConsumerRecord>,
    mut visit: impl FnMut(Key, &mut Vec<ConsumerRecord>) -> Result<()>,
) -> Result<()> {
    let n = partitions.len();
    for i in 0..n {
        match visit(partitions[(first + i) % n], out) {
            Err(_) if !out.is_empty() => break,
            Err(e) => return Err(e),
            Ok(()) if out.len() >= max => break,
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Where a consumer starts on `part` without a position: at `committed` (a group's
/// committed offset) when it lies in the log, else per `reset`; with
/// [`OffsetReset::None`] and nothing committed, [`Error::NoCommittedOffset`] (`group` is
/// empty for a consumer outside any group).
fn initial_position(
    part: &Partition,
    reset: OffsetReset,
    committed: Option<u64>,
    group: &str,
) -> Result<u64> {
    match committed {
        Some(c) if c >= part.log_start_offset() && c <= part.log_end_offset() => Ok(c),
        Some(c) => reset_position(part, reset, Some(c)),
        None if reset == OffsetReset::None => Err(Error::NoCommittedOffset {
            group: group.to_string(),
            partition: part.name().to_string(),
        }),
        None => reset_position(part, reset, None),
    }
}

/// Where a consumer without a valid position goes, per `reset`.
fn reset_position(part: &Partition, reset: OffsetReset, invalid: Option<u64>) -> Result<u64> {
    match reset {
        OffsetReset::Earliest => Ok(part.log_start_offset()),
        OffsetReset::Latest => Ok(part.log_end_offset()),
        OffsetReset::None => Err(Error::OffsetOutOfRange {
            partition: part.name().to_string(),
            offset: invalid.unwrap_or(0),
            log_start: part.log_start_offset(),
            log_end: part.log_end_offset(),
        }),
    }
}

/// Records read from a partition but not returned yet (the poll was full), kept for the
/// next poll so that they are not read again.
#[derive(Debug)]
struct Pending {
    fetch: Fetch,
    /// The position it continues from.
    next: u64,
}

/// Reads from `start` and appends up to `max - out.len()` records to `out`; returns the
/// next position. A position outside the log is reset per the consumer's policy. Records
/// read beyond `max` stay in `pending` for the next call at that position.
fn read_into(
    part: &Partition,
    start: u64,
    config: &ConsumerConfig,
    max: usize,
    out: &mut Vec<ConsumerRecord>,
    pending: &mut Option<Pending>,
    spare: &mut Vec<u8>,
) -> Result<u64> {
    let mut read = |at: u64| -> Result<Fetch> {
        part.read_reusing(
            at,
            config.fetch_bytes,
            config.durable_reads,
            config.isolation,
            std::mem::take(spare),
        )
    };
    let (start, fetch) = match pending.take() {
        // Still where the position is, and neither deleted by retention nor cut off by a
        // truncation since.
        Some(p)
            if p.next == start
                && start >= part.log_start_offset()
                && start < part.log_end_offset() =>
        {
            (start, p.fetch)
        }
        _ => match read(start) {
            Ok(f) => (start, f),
            Err(Error::OffsetOutOfRange { .. }) => {
                let at = reset_position(part, config.reset, Some(start))?;
                (at, read(at)?)
            }
            Err(e) => return Err(e),
        },
    };
    let partition = part.number();
    let mut next = start;
    let mut full = false;
    for r in fetch.records() {
        if r.offset() < start {
            continue;
        }
        if out.len() >= max {
            full = true;
            break;
        }
        out.push(ConsumerRecord::from_view(
            part.topic_shared(),
            partition,
            &r,
        ));
        next = r.offset() + 1;
    }
    if full {
        *pending = Some(Pending { fetch, next });
        return Ok(next);
    }
    // Past the batches read, including gaps and empty batches compaction left.
    let next = next.max(fetch.next_offset());
    *spare = fetch.into_buffer();
    Ok(next)
}
