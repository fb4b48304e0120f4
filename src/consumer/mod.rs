//! Consumers: tailing reads over a topic's partitions, seeking, Kafka's offset reset
//! policy, and consumer groups with durable committed offsets.
//!
//! A [`Consumer`] made by [`Store::consumer`](crate::Store::consumer) reads partitions
//! on its own; one made by [`Store::join_group`](crate::Store::join_group) is a member of
//! a named group: the group's members share the topic's partitions (each partition has one
//! owner, reassigned whenever a member joins or leaves), and commit their positions to the
//! internal topic `__consumer_offsets`, from which a restarted group resumes.

mod group;
mod offsets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use group::{committed_of, committed_with_metadata_of, forget_topic, Coordinator};
pub use offsets::OFFSETS_TOPIC;

use crate::config::Clock;
use crate::error::{Error, Result};
use crate::partition::{Fetch, Partition};
use crate::record::{Header, RecordView};
use crate::topic::Topic;
use group::Group;

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
    /// [`Consumer::commit`] commits.
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

/// What the consumer reads and where it stands.
#[derive(Debug)]
enum Mode {
    /// Its own partitions and positions.
    Standalone {
        partitions: Vec<u32>,
        positions: BTreeMap<u32, u64>,
    },
    /// A member of a group: partitions and positions are the group's.
    Member {
        group: Arc<Group>,
        id: u64,
        coordinator: Arc<Coordinator>,
        clock: Arc<dyn Clock>,
    },
}

/// Reads records from a topic's partitions, blocking in [`Consumer::poll`] until some are
/// appended. Not `Sync` (one thread polls); make one consumer per thread.
#[derive(Debug)]
pub struct Consumer {
    topic: Topic,
    config: ConsumerConfig,
    mode: Mode,
    /// Where the next poll starts among the assigned partitions (fairness).
    next_partition: usize,
    last_commit: Instant,
    /// Positions reached by the records returned so far, not yet committed (members).
    dirty: bool,
    /// `close` ran (dropping then does nothing more).
    left: bool,
    /// Per partition, records read but not returned yet.
    pending: BTreeMap<u32, Pending>,
    /// A fetch buffer to read into next.
    spare: Vec<u8>,
}

impl Consumer {
    fn new(topic: Topic, config: ConsumerConfig, mode: Mode) -> Self {
        Consumer {
            topic,
            config,
            mode,
            next_partition: 0,
            last_commit: Instant::now(),
            dirty: false,
            left: false,
            pending: BTreeMap::new(),
            spare: Vec::new(),
        }
    }

    pub(crate) fn standalone(topic: Topic, partitions: Vec<u32>, config: ConsumerConfig) -> Self {
        let mode = Mode::Standalone {
            partitions,
            positions: BTreeMap::new(),
        };
        Consumer::new(topic, config, mode)
    }

    pub(crate) fn member(
        topic: Topic,
        group: Arc<Group>,
        coordinator: Arc<Coordinator>,
        clock: Arc<dyn Clock>,
        config: ConsumerConfig,
    ) -> Self {
        let id = coordinator.member_id();
        group.join(id);
        let mode = Mode::Member {
            group,
            id,
            coordinator,
            clock,
        };
        Consumer::new(topic, config, mode)
    }

    /// The topic read.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The group's name, for a group member.
    pub fn group(&self) -> Option<&str> {
        match &self.mode {
            Mode::Member { group, .. } => Some(&group.name),
            Mode::Standalone { .. } => None,
        }
    }

    /// The partitions this consumer reads now (a member's change when others join or
    /// leave its group).
    pub fn assignment(&self) -> Vec<u32> {
        match &self.mode {
            Mode::Standalone { partitions, .. } => partitions.clone(),
            Mode::Member { group, id, .. } => Group::assigned(&group.state.read(), *id),
        }
    }

    /// Returns up to `max_records` records as soon as any are available in the assigned
    /// partitions, waiting up to `timeout` for an append (no busy waiting: appends wake
    /// the consumer). An empty result means the timeout passed. Records of one partition
    /// come in offset order. A group member with auto-commit commits here when due: the
    /// positions of the records earlier polls returned.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] / [`Error::NoCommittedOffset`] when a position is
    /// invalid and the reset policy is [`OffsetReset::None`]; read errors
    /// ([`Error::Corrupt`], I/O); commit errors.
    pub fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        // `None`: a timeout too long to represent, which is waiting without one.
        let deadline = Instant::now().checked_add(timeout);
        let notify = self.topic.clone();
        loop {
            // Before fetching: what earlier polls returned has been handled by now (as
            // Kafka's auto-commit, which commits the previous poll's positions).
            self.maybe_auto_commit()?;
            let seen = notify.notify().seq();
            let (records, moved) = self.fetch(max_records.max(1))?;
            if !records.is_empty() {
                self.dirty = true;
                return Ok(records);
            }
            // Positions that moved past record-less batches (compaction's) may have more
            // to read right away.
            if !moved && !notify.notify().wait(seen, deadline) {
                return Ok(Vec::new());
            }
        }
    }

    /// One round over the assigned partitions, starting after the one the last round
    /// started with. Returns the records and whether any position moved. An error on one
    /// partition after records of others were taken returns those records (they are
    /// delivered; the error comes again at the next poll).
    fn fetch(&mut self, max_records: usize) -> Result<(Vec<ConsumerRecord>, bool)> {
        let mut out = Vec::new();
        let mut moved = false;
        let mut reader = Reader {
            topic: &self.topic,
            config: &self.config,
            pending: &mut self.pending,
            spare: &mut self.spare,
        };
        let first = self.next_partition;
        let n = match &mut self.mode {
            Mode::Standalone {
                partitions,
                positions,
            } => {
                round(partitions, first, max_records, &mut out, |p, out| {
                    let part = reader.topic.partition(p)?;
                    let pos = positions.get(&p).copied();
                    let start = match pos {
                        Some(pos) => pos,
                        None => initial_position(part, reader.config.reset, None, "")?,
                    };
                    let next = reader.read(part, start, max_records, out)?;
                    moved |= pos != Some(next);
                    positions.insert(p, next);
                    Ok(())
                })?;
                partitions.len()
            }
            Mode::Member {
                group,
                id,
                coordinator,
                ..
            } => {
                // Held while reading: a rebalance waits, so a partition never has two
                // readers and moves exactly at a delivered position.
                let state = group.state.read();
                let mine = Group::assigned(&state, *id);
                round(&mine, first, max_records, &mut out, |p, out| {
                    let part = reader.topic.partition(p)?;
                    let mut slot = group.positions[p as usize].lock();
                    let start = match *slot {
                        Some(pos) => pos,
                        None => {
                            let key = (group.name.clone(), reader.topic.name().to_string(), p);
                            let committed = coordinator.loaded()?.offsets.get(&key).copied();
                            initial_position(part, reader.config.reset, committed, &group.name)?
                        }
                    };
                    let next = reader.read(part, start, max_records, out)?;
                    moved |= *slot != Some(next);
                    *slot = Some(next);
                    Ok(())
                })?;
                mine.len()
            }
        };
        self.next_partition = (first + 1) % n.max(1);
        Ok((out, moved))
    }

    /// The next offset this consumer will read from `partition`, if it has one yet.
    pub fn position(&self, partition: u32) -> Option<u64> {
        match &self.mode {
            Mode::Standalone { positions, .. } => positions.get(&partition).copied(),
            Mode::Member { group, .. } => group
                .positions
                .get(partition as usize)
                .and_then(|p| *p.lock()),
        }
    }

    /// Moves the position of `partition` to `offset` (the next record read is the first
    /// at or after it).
    ///
    /// # Errors
    /// [`Error::UnknownPartition`]; [`Error::InvalidConfig`] when a group member seeks a
    /// partition it does not own.
    pub fn seek(&mut self, partition: u32, offset: u64) -> Result<()> {
        self.topic.partition(partition)?;
        match &mut self.mode {
            Mode::Standalone { positions, .. } => {
                positions.insert(partition, offset);
            }
            Mode::Member { group, id, .. } => {
                let state = group.state.read();
                if state.owner.get(partition as usize).copied().flatten() != Some(*id) {
                    return Err(Error::config(
                        "seek partition",
                        partition,
                        "a partition assigned to this member",
                    ));
                }
                *group.positions[partition as usize].lock() = Some(offset);
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
        for p in self.assignment() {
            let offset = to(self.topic.partition(p)?)?;
            self.seek(p, offset)?;
        }
        Ok(())
    }

    /// Commits the positions of the records returned so far for every partition this
    /// member owns: durable (flushed to `__consumer_offsets`) when this returns. A
    /// restarted group resumes from them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a consumer that is not a group member; write errors.
    pub fn commit(&mut self) -> Result<()> {
        self.commit_inner(&BTreeMap::new())
    }

    /// As [`Consumer::commit`], with a metadata string per partition stored beside the
    /// offset in `__consumer_offsets` (Kafka's `OffsetAndMetadata`; partitions missing from
    /// `metadata` get the empty string). Every assigned partition with a position whose
    /// offset or metadata differs from the committed one is written.
    ///
    /// # Errors
    /// As [`Consumer::commit`]; [`Error::InvalidConfig`] for a metadata string over
    /// 32,767 bytes (Kafka's strings are `int16`-length-prefixed).
    pub fn commit_with_metadata(&mut self, metadata: &BTreeMap<u32, String>) -> Result<()> {
        if let Some(m) = metadata.values().find(|m| m.len() > i16::MAX as usize) {
            return Err(Error::config(
                "metadata",
                format!("{} bytes", m.len()),
                format!("at most {} bytes", i16::MAX),
            ));
        }
        self.commit_inner(metadata)
    }

    fn commit_inner(&mut self, metadata: &BTreeMap<u32, String>) -> Result<()> {
        let Mode::Member {
            group,
            id,
            coordinator,
            clock,
        } = &self.mode
        else {
            return Err(Error::config(
                "commit",
                "standalone consumer",
                "a group member (Store::join_group)",
            ));
        };
        // Held until the commit is written: a rebalance waits, so a commit of this
        // member's positions never lands after the next owner's.
        let state = group.state.read();
        let mut committed = coordinator.loaded()?;
        let topic = self.topic.name();
        // Checked under the coordinator's lock, under which `delete_topic` sets it and
        // forgets the topic's offsets: nothing is committed on a deleted topic.
        if self.topic.is_deleted() {
            return Err(Error::UnknownTopic(topic.to_string()));
        }
        let positions: Vec<(u32, u64)> = Group::assigned(&state, *id)
            .into_iter()
            .filter_map(|p| group.positions[p as usize].lock().map(|o| (p, o)))
            .filter(|&(p, o)| {
                let key = (group.name.clone(), topic.to_string(), p);
                let meta = metadata.get(&p).map_or("", String::as_str);
                committed.offsets.get(&key) != Some(&o)
                    || committed.metadata.get(&key).map_or("", String::as_str) != meta
            })
            .collect();
        group::commit(
            &mut committed,
            &group.name,
            topic,
            &positions,
            metadata,
            clock.now_ms(),
        )?;
        drop(committed);
        drop(state);
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Commits when auto-commit is due. Positions that differ from the committed ones
    /// are written, whoever moved them (partitions handed over by a rebalance too).
    fn maybe_auto_commit(&mut self) -> Result<()> {
        match (&self.mode, self.config.auto_commit) {
            (Mode::Member { .. }, Some(every)) if self.last_commit.elapsed() >= every => {
                self.commit()
            }
            _ => Ok(()),
        }
    }

    /// Leaves the group (for a member), committing first when auto-commit is on.
    /// Dropping the consumer does the same but cannot report a failed commit.
    ///
    /// # Errors
    /// The commit's.
    pub fn close(mut self) -> Result<()> {
        self.leave()
    }

    fn leave(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.left, true) {
            return Ok(());
        }
        let result = match (&self.mode, self.config.auto_commit) {
            (Mode::Member { .. }, Some(_)) => self.commit(),
            _ => Ok(()),
        };
        if let Mode::Member { group, id, .. } = &self.mode {
            group.leave(*id);
        }
        result
    }

    /// For each assigned partition: log end offset minus this consumer's position.
    pub fn lag(&self) -> Vec<(u32, u64)> {
        self.assignment()
            .into_iter()
            .filter_map(|p| {
                let part = self.topic.partition(p).ok()?;
                let pos = self.position(p).unwrap_or(part.log_start_offset());
                Some((p, part.log_end_offset().saturating_sub(pos)))
            })
            .collect()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// What one `fetch` reads with: the topic, the settings, records held over from the last
/// poll, and a buffer to read into.
struct Reader<'a> {
    topic: &'a Topic,
    config: &'a ConsumerConfig,
    pending: &'a mut BTreeMap<u32, Pending>,
    spare: &'a mut Vec<u8>,
}

impl Reader<'_> {
    /// [`read_into`] for `part`, with the records it held over for that partition.
    fn read(
        &mut self,
        part: &Partition,
        start: u64,
        max: usize,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<u64> {
        let p = part.number();
        let mut held = self.pending.remove(&p);
        let next = read_into(part, start, self.config, max, out, &mut held, self.spare)?;
        if let Some(held) = held {
            self.pending.insert(p, held);
        }
        Ok(next)
    }
}

/// Visits `partitions` in turn from index `first`, until `out` holds `max` records. An
/// error after records were taken ends the round with them (the error comes again at the
/// next poll); an error before that is returned.
fn round(
    partitions: &[u32],
    first: usize,
    max: usize,
    out: &mut Vec<ConsumerRecord>,
    mut visit: impl FnMut(u32, &mut Vec<ConsumerRecord>) -> Result<()>,
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
