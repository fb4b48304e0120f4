//! Mirror: seglog topics forwarded to a Kafka cluster, partition to partition, batch by
//! batch, as an idempotent producer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use byteorder::{BigEndian, ByteOrder};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;

use super::cluster::{code, name, Cluster, PRODUCE_VERSION};
use super::wire::{error_name, is_retriable, Fault};
use super::{Progress, Retry};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Error, Result};
use crate::notify::Sleeper;
use crate::partition::{ForwardError, Partition};
use crate::record::{
    crc32c, Batch, BatchHeader, ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, BASE_SEQUENCE_OFFSET,
    CRC_OFFSET, PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET, TRANSACTIONAL_BIT,
};
use crate::store::Store;
use crate::topic::Topic;
use crate::{CleanupPolicy, Isolation};

/// How a [`Mirror`] runs. Built with [`MirrorConfig::new`] and the builder methods.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    bootstrap: String,
    topics: Vec<(String, String)>,
    group: String,
    durable_only: bool,
    create_topics: bool,
    replication_factor: i16,
    read_bytes: usize,
    timeout: Duration,
    delivery_timeout: Duration,
    commit_interval: Duration,
    client_id: String,
}

impl MirrorConfig {
    /// A mirror to the cluster at `bootstrap` (`host:port`, several comma-separated), of
    /// no topic yet ([`MirrorConfig::topic`] adds them). Defaults: group `seglog-mirror`,
    /// every appended record leaves (not only flushed ones), remote topics must exist,
    /// 1 MiB read per partition and round, 30 s network timeout, 2 min delivery timeout,
    /// progress committed every second.
    pub fn new(bootstrap: impl Into<String>) -> MirrorConfig {
        MirrorConfig {
            bootstrap: bootstrap.into(),
            topics: Vec::new(),
            group: "seglog-mirror".to_string(),
            durable_only: false,
            create_topics: false,
            replication_factor: -1,
            read_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            commit_interval: Duration::from_secs(1),
            client_id: "seglog-mirror".to_string(),
        }
    }

    /// Mirrors the local topic `name` to the remote topic of the same name.
    pub fn topic(self, name: &str) -> MirrorConfig {
        self.topic_as(name, name)
    }

    /// Mirrors the local topic `local` to the remote topic `remote`.
    pub fn topic_as(mut self, local: &str, remote: &str) -> MirrorConfig {
        self.topics.push((local.to_string(), remote.to_string()));
        self
    }

    /// The consumer group whose committed offsets (in this store) record the progress,
    /// one group per mirror: the offsets' metadata holds the remote offsets the mirror
    /// reached, which a restart checks against the cluster.
    pub fn group(mut self, group: &str) -> MirrorConfig {
        self.group = group.to_string();
        self
    }

    /// Only durable records leave (below each partition's
    /// [`durable_offset`](crate::Partition::durable_offset)): a crash of this machine can
    /// then never take back a record the cluster already has.
    pub fn durable_only(mut self, on: bool) -> MirrorConfig {
        self.durable_only = on;
        self
    }

    /// Creates a missing remote topic with the local topic's partition count (and
    /// `cleanup.policy` for compacted topics).
    pub fn create_topics(mut self, on: bool) -> MirrorConfig {
        self.create_topics = on;
        self
    }

    /// The replication factor of created topics (-1, the default: the broker's default).
    pub fn replication_factor(mut self, factor: i16) -> MirrorConfig {
        self.replication_factor = factor;
        self
    }

    /// How many bytes of one partition are read ahead at a time (at least one batch).
    pub fn read_bytes(mut self, bytes: usize) -> MirrorConfig {
        self.read_bytes = bytes.max(1);
        self
    }

    /// The connect and request timeout.
    pub fn timeout(mut self, timeout: Duration) -> MirrorConfig {
        self.timeout = timeout;
        self
    }

    /// How long failures may go on (a broker down, no leader) before
    /// [`Mirror::catch_up`] and [`Mirror::run`] give up with the last error.
    pub fn delivery_timeout(mut self, timeout: Duration) -> MirrorConfig {
        self.delivery_timeout = timeout;
        self
    }

    /// How often progress is committed while running (also at the end of
    /// [`Mirror::catch_up`] and [`Mirror::run`], and by [`Mirror::commit`]). A restart
    /// loses nothing and duplicates nothing whatever this is: it reconciles with the
    /// cluster; a shorter interval only means less to check.
    pub fn commit_interval(mut self, every: Duration) -> MirrorConfig {
        self.commit_interval = every;
        self
    }

    /// The client id sent with every request.
    pub fn client_id(mut self, id: &str) -> MirrorConfig {
        self.client_id = id.to_string();
        self
    }
}

/// What a mirror sends: one batch, stamped with the producer's id and sequence when sent.
#[derive(Debug)]
struct Outgoing {
    /// The batch (base offset 0), or `None` when nothing is sent: control batches,
    /// aborted transactions and empty batches only move the local position.
    bytes: Option<Vec<u8>>,
    /// How many offsets it takes on the broker (its records).
    records: u64,
    /// The local offset after it.
    next_local: u64,
    /// Its base sequence, once sent under the current producer id.
    seq: Option<i32>,
    reencoded: bool,
}

/// One local partition and the remote partition it goes to.
#[derive(Debug)]
struct Lane {
    topic: usize,
    partition: u32,
    /// Every local offset below `local` is on the broker (or has nothing to send), and
    /// `remote` is the broker's next offset after them.
    local: u64,
    remote: u64,
    /// Where the next read starts: past the queued batches.
    read_to: u64,
    queue: VecDeque<Outgoing>,
    /// The next sequence number under the current producer id.
    seq: i32,
    /// When this lane's retriable failures began.
    failing_since: Option<Instant>,
    /// After a retriable failure: not sent to before this instant, and the pause after
    /// the next failure.
    retry_at: Option<Instant>,
    pause: Duration,
    /// The partition's first dirty offset when `local` was committed (see `Meta`).
    first_dirty: u64,
    /// The first dirty offset just before the queued batches were read: a commit while
    /// some wait records it, not a later one (they hold records as they were then).
    queued_dirty: u64,
    dirty: bool,
}

impl Lane {
    /// True when the leading batch has bytes to send and no retry pause holds it back.
    fn sendable(&self, now: Instant) -> bool {
        self.queue.front().is_some_and(|o| o.bytes.is_some())
            && self.retry_at.is_none_or(|t| t <= now)
    }

    /// An acknowledgement: failures and pauses are over.
    fn succeeded(&mut self) {
        self.failing_since = None;
        self.retry_at = None;
        self.pause = RETRY_PAUSE;
    }
}

/// The first pause after a retriable failure of a partition, and the longest.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One mirrored topic.
#[derive(Debug)]
struct Mirrored {
    topic: Topic,
    remote: String,
    consumer: Consumer,
}

/// Forwards seglog topics to a Kafka cluster: each local partition to the same remote
/// partition, each batch's bytes as stored (no decode, no re-encode) in a `Produce`
/// request — except batches a broker refuses from a producer, which are re-encoded
/// densely ([`crate::record::Batch::to_dense`]: compaction's thinned batches). Control batches and
/// aborted transactions stay home (reads are read-committed); committed transactional
/// batches go as plain batches. So on a dense topic without transactions, mirrored to an
/// empty remote partition, every record keeps its offset.
///
/// It produces as an idempotent producer (`InitProducerId`, sequences per partition): a
/// failed or timed-out request goes again with the same sequences, so it is never written
/// twice; retriable broker errors refresh metadata and retry after a pause, following
/// leader changes. Progress is the consumer group of [`MirrorConfig::group`] in this store,
/// committed only after the broker acknowledged, with the remote offset reached in the
/// commit's metadata: a mirror that restarts (after a kill too) compares it with the
/// remote partition's end and skips what the broker already has, so nothing is lost and
/// nothing duplicated. Two limits: when retention or compaction changed the local records
/// sent since the last commit, the restart sends them again (at least once, never lost);
/// and against a replicated cluster a batch written but not yet replicated when the
/// mirror died is sent again (the end is the high watermark). One mirror per group, and no
/// other writer on the remote partitions.
///
/// ```no_run
/// # fn main() -> seglog::Result<()> {
/// use seglog::bridge::{Mirror, MirrorConfig};
/// let store = seglog::Store::open("data")?;
/// let config = MirrorConfig::new("127.0.0.1:9092").topic("orders").create_topics(true);
/// let mut mirror = Mirror::new(&store, config)?;
/// let done = mirror.catch_up()?; // everything appended so far, then return
/// println!("{} records, {} bytes", done.records, done.bytes);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Mirror {
    config: MirrorConfig,
    cluster: Cluster,
    topics: Vec<Mirrored>,
    lanes: Vec<Lane>,
    producer: (i64, i16),
    last_commit: Instant,
    /// A request failed in a way that leaves the broker's state unknown.
    resync: bool,
    /// The last error is a refusal that retrying will not change.
    refused: bool,
    totals: Progress,
    spare: Vec<u8>,
}

/// The commit metadata: `seglog-mirror 1 <remote topic> <remote offset> <first dirty>`:
/// the remote offset the committed local offset maps to, and the local partition's first
/// dirty offset when committed (a compaction pass since moves it).
const META_TAG: &str = "seglog-mirror";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta<'a> {
    remote_topic: &'a str,
    remote: u64,
    first_dirty: u64,
}

fn encode_meta(remote_topic: &str, remote: u64, first_dirty: u64) -> String {
    format!("{META_TAG} 1 {remote_topic} {remote} {first_dirty}")
}

fn decode_meta(meta: &str) -> Option<Meta<'_>> {
    let mut it = meta.split(' ');
    match (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) {
        (Some(META_TAG), Some("1"), Some(topic), Some(remote), Some(dirty), None) => Some(Meta {
            remote_topic: topic,
            remote: remote.parse().ok()?,
            first_dirty: dirty.parse().ok()?,
        }),
        _ => None,
    }
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
fn next_sequence(seq: i32, records: u64) -> i32 {
    let records = (records % (i32::MAX as u64 + 1)) as i64;
    ((seq as i64 + records) % (i32::MAX as i64 + 1)) as i32
}

/// Stamps a batch for the idempotent producer `(pid, epoch)`: base offset 0, producer
/// fields, the transactional bit cleared (the mirror is not in the transaction), and the
/// CRC over the changed header.
fn stamp(bytes: &mut [u8], (pid, epoch): (i64, i16), seq: i32) {
    BigEndian::write_i64(&mut bytes[BASE_OFFSET_OFFSET..], 0);
    let attributes = BigEndian::read_i16(&bytes[ATTRIBUTES_OFFSET..]) & !TRANSACTIONAL_BIT;
    BigEndian::write_i16(&mut bytes[ATTRIBUTES_OFFSET..], attributes);
    BigEndian::write_i64(&mut bytes[PRODUCER_ID_OFFSET..], pid);
    BigEndian::write_i16(&mut bytes[PRODUCER_EPOCH_OFFSET..], epoch);
    BigEndian::write_i32(&mut bytes[BASE_SEQUENCE_OFFSET..], seq);
    let crc = crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut bytes[CRC_OFFSET..], crc);
}

impl Mirror {
    /// Connects to the cluster, checks (or creates) the remote topics, joins the group,
    /// and reconciles each partition's committed progress with the remote partition's end.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no topics or a group whose commits are not a mirror's;
    /// [`Error::UnknownTopic`] for a missing local topic; [`Error::Kafka`] when the cluster
    /// cannot be reached, a remote topic is missing (and not to be created) or has fewer
    /// partitions, or a remote partition holds records this mirror did not write or lost
    /// some it did; errors reading the local log or the offsets topic.
    pub fn new(store: &Store, config: MirrorConfig) -> Result<Mirror> {
        let mut cluster = super::connect(
            config.topics.len(),
            "mirror",
            &config.bootstrap,
            &config.client_id,
            config.timeout,
        )?;
        let remotes: Vec<String> = config.topics.iter().map(|(_, r)| r.clone()).collect();
        cluster.refresh(&remotes)?;
        let mut topics = Vec::new();
        let mut lanes = Vec::new();
        for (i, (local, remote)) in config.topics.iter().enumerate() {
            let topic = store.topic(local)?;
            let count = topic.partition_count();
            match cluster.partition_count(remote) {
                Some(Ok(n)) if n >= count as i32 => {}
                Some(Ok(n)) => {
                    return Err(cluster.bootstrap_error(format!(
                        "remote topic {remote} has {n} partitions, {local} has {count}"
                    )))
                }
                Some(Err(code::UNKNOWN_TOPIC_OR_PARTITION)) | None if config.create_topics => {
                    let mut configs = Vec::new();
                    if topic.config().cleanup_policy == CleanupPolicy::Compact {
                        configs.push(("cleanup.policy", "compact".to_string()));
                    }
                    cluster.create_topic(remote, count, config.replication_factor, &configs)?;
                }
                Some(Err(c)) => {
                    let hint = if c == code::UNKNOWN_TOPIC_OR_PARTITION {
                        " (MirrorConfig::create_topics creates it)"
                    } else {
                        ""
                    };
                    return Err(cluster.bootstrap_error(format!(
                        "remote topic {remote}: {}{hint}",
                        error_name(c)
                    )));
                }
                None => {
                    return Err(cluster.bootstrap_error(format!(
                    "remote topic {remote} does not exist (MirrorConfig::create_topics creates it)"
                )))
                }
            }
            cluster.await_leaders(remote)?;
            let consumer = store.join_group(
                &config.group,
                local,
                ConsumerConfig::default().auto_commit(None),
            )?;
            let committed = store.committed_with_metadata(&config.group, local)?;
            for p in consumer.assignment() {
                let part = topic.partition(p)?;
                let (local_at, remote_at, first_dirty, dirty) = match committed.get(&p) {
                    None => {
                        let end = cluster.high_watermark(remote, p as i32, 0)?;
                        (part.log_start_offset(), end, part.first_dirty_offset(), true)
                    }
                    Some(c) => match decode_meta(&c.metadata) {
                        Some(m) if m.remote_topic == remote => {
                            (c.offset, m.remote, m.first_dirty, false)
                        }
                        Some(Meta {
                            remote_topic: t, ..
                        }) => {
                            return Err(Error::config(
                                "group",
                                &config.group,
                                format!("a group of its own: it mirrored {local}-{p} to topic {t}, not {remote}"),
                            ))
                        }
                        None => {
                            return Err(Error::config(
                                "group",
                                &config.group,
                                format!("a group only the mirror commits to: {local}-{p} has a commit without mirror metadata"),
                            ))
                        }
                    },
                };
                lanes.push(Lane {
                    topic: i,
                    partition: p,
                    local: local_at,
                    remote: remote_at,
                    read_to: local_at,
                    queue: VecDeque::new(),
                    seq: 0,
                    failing_since: None,
                    retry_at: None,
                    pause: RETRY_PAUSE,
                    first_dirty,
                    queued_dirty: first_dirty,
                    dirty,
                });
            }
            topics.push(Mirrored {
                topic,
                remote: remote.clone(),
                consumer,
            });
        }
        let mut mirror = Mirror {
            config,
            cluster,
            topics,
            lanes,
            producer: (-1, -1),
            last_commit: Instant::now(),
            resync: true,
            refused: false,
            totals: Progress::default(),
            spare: Vec::new(),
        };
        mirror.resync_all()?;
        mirror.commit()?;
        Ok(mirror)
    }

    /// Totals since [`Mirror::new`], with the current lag.
    pub fn totals(&self) -> Progress {
        Progress {
            lag: self.lag(),
            ..self.totals
        }
    }

    /// Records (offsets) appended locally and not yet acknowledged by the cluster, summed
    /// over the partitions (up to what is readable: the last stable offset, and with
    /// [`MirrorConfig::durable_only`] the durable offset).
    pub fn lag(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| self.end(l).unwrap_or(l.local).saturating_sub(l.local))
            .sum()
    }

    fn partition(&self, lane: &Lane) -> &Partition {
        &self.topics[lane.topic].topic.partitions()[lane.partition as usize]
    }

    /// How far `lane` can be read now.
    fn end(&self, lane: &Lane) -> Result<u64> {
        let p = self.partition(lane);
        let end = p.last_stable_offset()?;
        Ok(if self.config.durable_only {
            end.min(p.durable_offset())
        } else {
            end
        })
    }

    /// Reads `lane`'s partition from `from`: what to send for each batch, and where the
    /// next read starts.
    fn read(&mut self, i: usize, from: u64) -> Result<(Vec<Outgoing>, u64)> {
        let lane = &self.lanes[i];
        let p = &self.topics[lane.topic].topic.partitions()[lane.partition as usize];
        let buf = std::mem::take(&mut self.spare);
        let fetch = p.read_reusing(
            from,
            self.config.read_bytes,
            self.config.durable_only,
            Isolation::ReadCommitted,
            buf,
        )?;
        let mut out: Vec<Outgoing> = Vec::new();
        for (b, visible) in fetch.as_borrowed().batches_with_visibility() {
            let next_local = b.header().next_offset();
            if b.last_offset() < from {
                continue;
            }
            let sent = if visible {
                outgoing_bytes(&b, from).map_err(|e| Error::Corrupt {
                    path: p.dir().to_path_buf(),
                    position: b.base_offset(),
                    reason: format!(
                        "the batch at offset {} cannot be mirrored: {e}",
                        b.base_offset()
                    ),
                })?
            } else {
                None
            };
            match sent {
                Some((bytes, reencoded)) => {
                    // The header only: the CRC was checked when read (or just computed),
                    // and `stamp` computes it again anyway.
                    let records = BatchHeader::parse(&bytes)
                        .map(|h| h.records_count.max(0) as u64)
                        .unwrap_or(0);
                    out.push(Outgoing {
                        bytes: Some(bytes),
                        records,
                        next_local,
                        seq: None,
                        reencoded,
                    });
                }
                None => match out.last_mut() {
                    Some(last) => last.next_local = next_local,
                    None => out.push(Outgoing {
                        bytes: None,
                        records: 0,
                        next_local,
                        seq: None,
                        reencoded: false,
                    }),
                },
            }
        }
        let next = fetch.next_offset();
        self.spare = fetch.into_buffer();
        Ok((out, next))
    }

    /// A new producer id, and every partition reconciled with the cluster: whatever the
    /// broker holds past the acknowledged remote offset was sent by this mirror (before a
    /// failure or a kill) and is counted as sent, batch by batch, from the local log.
    fn resync_all(&mut self) -> Result<()> {
        self.cluster.refresh(
            &self
                .topics
                .iter()
                .map(|t| t.remote.clone())
                .collect::<Vec<_>>(),
        )?;
        self.producer = self.cluster.init_producer_id()?;
        for i in 0..self.lanes.len() {
            self.reconcile(i)?;
        }
        self.resync = false;
        Ok(())
    }

    /// Brings `lane` in line with its remote partition's end: every record the broker has
    /// past `remote` was sent by this mirror, after the last acknowledgement (the batch in
    /// flight when a request failed) or, after a restart, after the last commit.
    fn reconcile(&mut self, i: usize) -> Result<()> {
        let (remote_topic, p, remote) = {
            let l = &self.lanes[i];
            (self.topics[l.topic].remote.clone(), l.partition, l.remote)
        };
        let end = self
            .cluster
            .high_watermark(&remote_topic, p as i32, remote)?;
        let broker = self
            .cluster
            .addr(self.cluster.leader(&remote_topic, p as i32).unwrap_or(-1));
        if end < remote {
            return Err(Cluster::error(
                &broker,
                format!("{remote_topic}-{p} ends at offset {end}, below offset {remote} the mirror reached: the remote partition lost records (recreated or truncated)"),
            ));
        }
        let (log_start, first_dirty) = {
            let part = self.partition(&self.lanes[i]);
            (part.log_start_offset(), part.first_dirty_offset())
        };
        let lane = &mut self.lanes[i];
        // The batch in flight when a request failed: written, or not at all.
        if let Some(front) = lane.queue.front().filter(|o| o.seq.is_some()) {
            if end == remote + front.records {
                lane.local = front.next_local;
                lane.remote = end;
                lane.dirty = true;
            }
        }
        // (Failures go on counting: a batch that keeps failing after reconnects still
        // reaches the delivery timeout.)
        lane.seq = 0;
        lane.queue.clear();
        let missing = end - lane.remote;
        // Records at or past `local` changed since the commit (retention removed some, or
        // a compaction pass ran): counting them no longer tells which were sent. Sending
        // again from `local` loses nothing; the broker may get the unacknowledged part
        // twice.
        let changed = lane.local < log_start || first_dirty > lane.first_dirty.max(lane.local);
        if missing > 0 && changed {
            tracing::warn!(
                partition = %format!("{remote_topic}-{p}"), records = missing, from = lane.local,
                "kafka mirror: local records changed since the last commit; sending again what the broker may already have"
            );
            lane.remote = end;
        }
        if lane.local < log_start {
            tracing::warn!(
                partition = %format!("{remote_topic}-{p}"), from = lane.local, to = log_start,
                "kafka mirror: retention removed records before they were mirrored"
            );
            lane.local = log_start;
        }
        lane.read_to = lane.local;
        let mut missing = end - lane.remote;
        let mut at = lane.local;
        while missing > 0 {
            let (outs, next) = self.read(i, at)?;
            if outs.is_empty() {
                let local = self.lanes[i].local;
                return Err(Cluster::error(
                    &broker,
                    format!("{remote_topic}-{p} holds {missing} records past offset {} that the local log past offset {local} does not account for: another writer, or local records lost", end - missing),
                ));
            }
            let lane = &mut self.lanes[i];
            for o in outs {
                if o.records > missing {
                    return Err(Cluster::error(
                        &broker,
                        format!("{remote_topic}-{p} ends at offset {end}, inside the batch the local log has at offset {}: another writer?", lane.local),
                    ));
                }
                missing -= o.records;
                lane.remote += o.records;
                lane.local = o.next_local;
                lane.dirty = true;
                if missing == 0 {
                    break;
                }
            }
            at = next;
        }
        let lane = &mut self.lanes[i];
        lane.read_to = lane.local;
        Ok(())
    }

    /// One round: reads what each partition has past its position, sends one batch per
    /// partition to each leader (one request per broker), and takes the answers. When
    /// nothing is to be sent, waits up to `wait` for an append first. Commits progress
    /// when the commit interval has passed.
    ///
    /// # Errors
    /// [`Error::Kafka`] for a broker that cannot be reached or refused a batch (the next
    /// step sends the same batches again, after a pause; a partition whose batch keeps
    /// failing longer than the delivery timeout is an error that stays); local read and
    /// commit errors.
    pub fn step(&mut self, wait: Duration) -> Result<Progress> {
        if self.resync {
            self.resync_all()?;
        }
        let seqs: Vec<u64> = self.topics.iter().map(|t| t.topic.notify().seq()).collect();
        let moved = self.fill()?;
        let mut progress = Progress::default();
        let now = Instant::now();
        // Lanes with a batch held back by a retry pause: the earliest end of one.
        let paused = self
            .lanes
            .iter()
            .filter(|l| l.queue.front().is_some_and(|o| o.bytes.is_some()))
            .filter_map(|l| l.retry_at)
            .min();
        if self.lanes.iter().any(|l| l.sendable(now)) {
            // Acknowledged batches count even when a later broker of the round failed.
            let sent = self.send_round(&mut progress);
            self.totals.add(&progress);
            sent?;
        } else if let Some(at) = paused {
            std::thread::sleep(at.saturating_duration_since(now).min(wait));
        } else if !moved && !wait.is_zero() {
            self.wait_for_appends(&seqs, wait);
        }
        progress.lag = self.lag();
        self.maybe_commit()?;
        Ok(progress)
    }

    /// Fills empty queues from the local log, and takes the queues' leading batches that
    /// send nothing (markers, aborted transactions).
    /// True when a position moved.
    fn fill(&mut self) -> Result<bool> {
        let mut moved = false;
        for i in 0..self.lanes.len() {
            if self.lanes[i].queue.is_empty() {
                let from = self.lanes[i].read_to;
                if from < self.end(&self.lanes[i])? {
                    // Before the read: a compaction pass after it moves the offset past
                    // this, and a commit while these batches wait records no more.
                    let first_dirty = self.partition(&self.lanes[i]).first_dirty_offset();
                    let (outs, next) = self.read(i, from)?;
                    let lane = &mut self.lanes[i];
                    lane.queue.extend(outs);
                    lane.read_to = next;
                    lane.queued_dirty = first_dirty;
                }
            }
            let lane = &mut self.lanes[i];
            while lane.queue.front().is_some_and(|o| o.bytes.is_none()) {
                let o = lane.queue.pop_front().expect("checked");
                lane.local = o.next_local;
                lane.dirty = true;
                moved = true;
            }
        }
        Ok(moved)
    }

    /// Waits up to `wait` for an append to, or a flush of (it makes records durable for
    /// `durable_only`), any mirrored topic since `seqs` were read.
    fn wait_for_appends(&self, seqs: &[u64], wait: Duration) {
        let sleeper = Sleeper::new();
        let _watches: Vec<_> = self
            .topics
            .iter()
            .map(|t| sleeper.watch(t.topic.notify()))
            .collect();
        sleeper.sleep_until(Some(Instant::now() + wait), || {
            self.topics
                .iter()
                .zip(seqs)
                .any(|(t, &s)| t.topic.notify().seq() != s)
        });
    }

    /// Sends the leading batch of every lane that has one, grouped by leader.
    fn send_round(&mut self, progress: &mut Progress) -> Result<()> {
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        let mut refreshed = false;
        let now = Instant::now();
        for i in 0..self.lanes.len() {
            if !self.lanes[i].sendable(now) {
                continue;
            }
            let remote = &self.topics[self.lanes[i].topic].remote;
            let p = self.lanes[i].partition as i32;
            let mut leader = self.cluster.leader(remote, p);
            if leader.is_none() && !refreshed {
                let remotes: Vec<String> = self.topics.iter().map(|t| t.remote.clone()).collect();
                self.cluster.refresh(&remotes)?;
                refreshed = true;
                leader = self
                    .cluster
                    .leader(&self.topics[self.lanes[i].topic].remote, p);
            }
            match leader {
                Some(id) => by_leader.entry(id).or_default().push(i),
                None => self.note_failure(i, "no leader")?,
            }
        }
        for (broker, lanes) in by_leader {
            self.send_to(broker, &lanes, progress)?;
            if self.resync {
                // The next step reconciles every lane before anything else is sent.
                break;
            }
        }
        Ok(())
    }

    fn send_to(&mut self, broker: i32, lanes: &[usize], progress: &mut Progress) -> Result<()> {
        // Stamp each lane's leading batch (its sequence fixed at its first send).
        let mut topics: Vec<TopicProduceData> = Vec::new();
        let mut index: HashMap<(String, i32), usize> = HashMap::new();
        for &i in lanes {
            let producer = self.producer;
            let lane = &mut self.lanes[i];
            let remote = self.topics[lane.topic].remote.clone();
            let o = lane.queue.front_mut().expect("a batch to send");
            let seq = *o.seq.get_or_insert_with(|| {
                let s = lane.seq;
                lane.seq = next_sequence(s, o.records);
                s
            });
            let bytes = o.bytes.as_mut().expect("a batch to send");
            stamp(bytes, producer, seq);
            let data = PartitionProduceData::default()
                .with_index(lane.partition as i32)
                .with_records(Some(Bytes::copy_from_slice(bytes)));
            index.insert((remote.clone(), lane.partition as i32), i);
            match topics.iter_mut().find(|t| t.name.0.as_str() == remote) {
                Some(t) => t.partition_data.push(data),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(name(&remote))
                        .with_partition_data(vec![data]),
                ),
            }
        }
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(self.config.timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(topics);
        let addr = self.cluster.addr(broker);
        // A broker that cannot be reached or drops the connection may be dead: its
        // partitions' leaders are looked up again before the retry (after a pause).
        let conn = match self.cluster.broker(broker) {
            Ok(c) => c,
            Err(e) => {
                self.leader_failed(lanes, &e.to_string())?;
                return Err(e);
            }
        };
        let resp = match conn.call(&req, PRODUCE_VERSION) {
            Ok(r) => r,
            Err(f @ Fault::Io(_)) => {
                // Written or not: the same batches go again with the same sequences, and
                // a broker that has them answers DUPLICATE_SEQUENCE_NUMBER (or success
                // with their offset), as for Kafka's own producer.
                self.cluster.disconnect(broker);
                self.leader_failed(lanes, &f.to_string())?;
                return Err(Cluster::error(&addr, f));
            }
            Err(f) => return Err(Cluster::error(&addr, f)),
        };
        let mut answered = vec![false; lanes.len()];
        for t in &resp.responses {
            for pr in &t.partition_responses {
                let Some(&i) = index.get(&(t.name.0.to_string(), pr.index)) else {
                    continue;
                };
                if let Some(k) = lanes.iter().position(|&l| l == i) {
                    answered[k] = true;
                }
                match pr.error_code {
                    code::NONE | code::DUPLICATE_SEQUENCE_NUMBER => {
                        let lane = &mut self.lanes[i];
                        let o = lane.queue.pop_front().expect("sent");
                        lane.local = o.next_local;
                        lane.remote = if pr.base_offset >= 0 && pr.error_code == code::NONE {
                            pr.base_offset as u64 + o.records
                        } else {
                            lane.remote + o.records
                        };
                        lane.dirty = true;
                        lane.succeeded();
                        progress.records += o.records;
                        progress.bytes += o.bytes.as_ref().map_or(0, |b| b.len() as u64);
                        progress.batches += 1;
                        progress.reencoded += u64::from(o.reencoded);
                        while lane.queue.front().is_some_and(|o| o.bytes.is_none()) {
                            let o = lane.queue.pop_front().expect("checked");
                            lane.local = o.next_local;
                        }
                    }
                    // The broker's producer state does not follow ours, or the batch may
                    // or may not be written: reconcile before anything else is sent.
                    // The broker's producer state does not follow ours (it lost it, or a
                    // batch went missing): a new producer id, and every partition
                    // reconciled with the broker's end before anything else is sent.
                    code::OUT_OF_ORDER_SEQUENCE_NUMBER
                    | code::UNKNOWN_PRODUCER_ID
                    | code::INVALID_PRODUCER_EPOCH => {
                        self.resync = true;
                        self.note_failure(i, &error_name(pr.error_code))?;
                    }
                    // Retriable (REQUEST_TIMED_OUT and NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    // too, though the batch may be written): the same batch, the same
                    // sequence, after a pause.
                    c if is_retriable(c) => {
                        self.cluster.forget_leader(t.name.0.as_str(), pr.index);
                        self.note_failure(i, &error_name(c))?;
                    }
                    c => {
                        let lane = &self.lanes[i];
                        let detail = pr
                            .record_errors
                            .iter()
                            .filter_map(|e| e.batch_index_error_message.as_ref())
                            .map(|m| m.as_str())
                            .chain(pr.error_message.as_ref().map(|m| m.as_str()))
                            .collect::<Vec<_>>()
                            .join("; ");
                        self.refused = true;
                        return Err(Cluster::error(
                            &addr,
                            format!(
                                "{}-{} refused the batch at local offset {} of {}: {} {detail}",
                                t.name.0.as_str(),
                                pr.index,
                                lane.local,
                                self.topics[lane.topic].topic.name(),
                                error_name(c)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(k) = answered.iter().position(|a| !a) {
            self.note_failure(lanes[k], "no answer in a produce response")?;
            return Err(Cluster::error(
                &addr,
                format!(
                    "no answer for partition {} in a produce response",
                    self.lanes[lanes[k]].partition
                ),
            ));
        }
        Ok(())
    }

    /// The leader of `lanes` failed (unreachable, connection lost): each is paused, and
    /// its leader forgotten so that the next round asks the cluster again.
    fn leader_failed(&mut self, lanes: &[usize], what: &str) -> Result<()> {
        for &i in lanes {
            let remote = self.topics[self.lanes[i].topic].remote.clone();
            self.cluster
                .forget_leader(&remote, self.lanes[i].partition as i32);
            self.note_failure(i, what)?;
        }
        Ok(())
    }

    /// A retriable failure of `lane`'s leading batch: an error once failures have gone on
    /// longer than the delivery timeout.
    fn note_failure(&mut self, i: usize, what: &str) -> Result<()> {
        let lane = &mut self.lanes[i];
        let since = *lane.failing_since.get_or_insert_with(Instant::now);
        // Not sent to again before a pause, growing as failures go on.
        lane.retry_at = Some(Instant::now() + lane.pause);
        lane.pause = (lane.pause * 2).min(MAX_RETRY_PAUSE);
        if since.elapsed() > self.config.delivery_timeout {
            let remote = &self.topics[lane.topic].remote;
            // Final: `drive` returns it instead of retrying again.
            self.refused = true;
            return Err(self.cluster.bootstrap_error(format!(
                "{remote}-{}: still failing after {:?}: {what}",
                lane.partition, self.config.delivery_timeout
            )));
        }
        Ok(())
    }

    fn maybe_commit(&mut self) -> Result<()> {
        if self.last_commit.elapsed() >= self.config.commit_interval {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits every partition's acknowledged position, with the remote offset it maps
    /// to, to the group (durably).
    ///
    /// # Errors
    /// Errors writing the offsets topic.
    pub fn commit(&mut self) -> Result<()> {
        for t in 0..self.topics.len() {
            if !self.lanes.iter().any(|l| l.topic == t && l.dirty) {
                continue;
            }
            // Every lane's metadata (unchanged ones are not rewritten), the dirty ones with
            // the first dirty offset now: a compaction pass after this commit moves it.
            let mut meta = BTreeMap::new();
            let mut seen = Vec::new();
            for (i, lane) in self.lanes.iter().enumerate().filter(|(_, l)| l.topic == t) {
                let first_dirty = if lane.dirty {
                    let now = self.partition(lane).first_dirty_offset();
                    if lane.queue.is_empty() {
                        now
                    } else {
                        now.min(lane.queued_dirty)
                    }
                } else {
                    lane.first_dirty
                };
                let m = &self.topics[t];
                meta.insert(
                    lane.partition,
                    encode_meta(&m.remote, lane.remote, first_dirty),
                );
                if lane.dirty {
                    seen.push((i, first_dirty));
                }
            }
            let m = &mut self.topics[t];
            for &(i, _) in &seen {
                m.consumer
                    .seek(self.lanes[i].partition, self.lanes[i].local)?;
            }
            m.consumer.commit_with_metadata(&meta)?;
            for (i, first_dirty) in seen {
                self.lanes[i].dirty = false;
                self.lanes[i].first_dirty = first_dirty;
            }
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Catch-up mode: sends everything readable when called (up to each partition's last
    /// stable offset, or durable offset with [`MirrorConfig::durable_only`]), then commits
    /// and returns the totals of this call. Broker failures are retried (reconnecting,
    /// reconciling) until they outlast the delivery timeout.
    ///
    /// # Errors
    /// As [`Mirror::step`], once failures outlast [`MirrorConfig::delivery_timeout`].
    pub fn catch_up(&mut self) -> Result<Progress> {
        let targets: Vec<u64> = self
            .lanes
            .iter()
            .map(|l| self.end(l))
            .collect::<Result<_>>()?;
        let done = |m: &Mirror| m.lanes.iter().zip(&targets).all(|(l, &t)| l.local >= t);
        self.drive(done, &mut |_| {})
    }

    /// Continuous mode: follows new appends until `stop` is set, then commits and returns
    /// the totals of this call.
    ///
    /// # Errors
    /// As [`Mirror::catch_up`].
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Progress> {
        self.run_with(stop, |_| {})
    }

    /// As [`Mirror::run`], calling `report` with the totals since [`Mirror::new`] after
    /// every step (to print progress, say).
    ///
    /// # Errors
    /// As [`Mirror::catch_up`].
    pub fn run_with(
        &mut self,
        stop: &AtomicBool,
        mut report: impl FnMut(&Progress),
    ) -> Result<Progress> {
        self.drive(|_| stop.load(Ordering::Relaxed), &mut report)
    }

    fn drive(
        &mut self,
        done: impl Fn(&Mirror) -> bool,
        report: &mut dyn FnMut(&Progress),
    ) -> Result<Progress> {
        let mut total = Progress::default();
        let mut retry = Retry::new(self.config.delivery_timeout);
        while !done(self) {
            let step = self.step(Duration::from_millis(100));
            if let Some(p) = retry.outcome(step, &mut self.refused)? {
                total.add(&p);
                report(&self.totals());
            }
        }
        self.commit()?;
        total.lag = self.lag();
        Ok(total)
    }
}

/// What is sent for the visible batch `b` when reading from `from`: its bytes, or a dense
/// re-encoding when a broker would refuse it (thinned by compaction) or when it starts
/// before `from` (only the records at or past `from` go); `None` for nothing to send.
fn outgoing_bytes(
    b: &Batch<'_>,
    from: u64,
) -> std::result::Result<Option<(Vec<u8>, bool)>, String> {
    if b.base_offset() < from {
        let (cut, kept) = b
            .filtered(|r| r.offset() >= from, None)
            .map_err(|e| e.to_string())?;
        if kept == 0 {
            return Ok(None);
        }
        let cut = Batch::parse(&cut).map_err(|e| e.to_string())?;
        return cut
            .to_dense()
            .map(|d| Some((d, true)))
            .map_err(|e| e.to_string());
    }
    match b.producer_refusal() {
        // The producer fields are replaced by the mirror's own.
        None | Some(ForwardError::NoSequence { .. }) => Ok(Some((b.as_bytes().to_vec(), false))),
        Some(ForwardError::Thinned { .. }) => b
            .to_dense()
            .map(|d| Some((d, true)))
            .map_err(|e| e.to_string()),
        Some(ForwardError::Empty) | Some(ForwardError::Control) => Ok(None),
        Some(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_batch, BatchSpec};
    use crate::Record;

    #[test]
    fn sequences_wrap_as_kafkas() {
        assert_eq!(next_sequence(0, 10), 10);
        assert_eq!(next_sequence(i32::MAX - 9, 10), 0);
        // Kafka: seq > MAX - n wraps to n - (MAX - seq) - 1.
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn stamping_sets_the_producer_fields_and_a_valid_crc() {
        let mut spec = BatchSpec::new(41, 1_700_000_000_000);
        spec.attributes = TRANSACTIONAL_BIT;
        spec.producer_id = 7;
        spec.producer_epoch = 1;
        spec.base_sequence = 3;
        let mut bytes = Vec::new();
        encode_batch(&mut bytes, &spec, &[Record::new("a"), Record::new("b")]).unwrap();
        stamp(&mut bytes, (1234, 5), 99);
        let b = Batch::parse(&bytes).expect("a valid batch, CRC included");
        let h = b.header();
        assert_eq!(
            (
                b.base_offset(),
                h.producer_id,
                h.producer_epoch,
                h.base_sequence
            ),
            (0, 1234, 5, 99)
        );
        assert!(!h.is_transactional());
        assert_eq!(h.records_count, 2);
        let values: Vec<_> = b
            .records()
            .map(|r| r.unwrap().value().map(<[u8]>::to_vec))
            .collect();
        assert_eq!(values, [Some(b"a".to_vec()), Some(b"b".to_vec())]);
    }

    #[test]
    fn commit_metadata_round_trips_and_foreign_metadata_is_not_ours() {
        let m = encode_meta("orders.v2", 1234, 99);
        assert_eq!(
            decode_meta(&m),
            Some(Meta {
                remote_topic: "orders.v2",
                remote: 1234,
                first_dirty: 99
            })
        );
        for foreign in [
            "",
            "meta",
            "seglog-mirror 1 t 5",
            "seglog-mirror 2 t 5 0",
            "seglog-mirror 1 t x 0",
            "seglog-mirror 1 t 5 6 7",
        ] {
            assert_eq!(decode_meta(foreign), None, "{foreign:?}");
        }
    }
}
