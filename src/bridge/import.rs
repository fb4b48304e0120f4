//! Import: a Kafka cluster's topics fetched into seglog topics with the same offsets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::cluster::{code, fetch_request, fetch_topic, Cluster, FETCH_VERSION};
use super::wire::{error_name, is_retriable, Fault};
use super::{Progress, Retry};
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::partition::OffsetMode;
use crate::record::{
    BatchHeader, LENGTH_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, MIN_BATCH_LENGTH,
};
use crate::store::Store;
use crate::topic::Topic;

/// How an [`Import`] runs. Built with [`ImportConfig::new`] and the builder methods.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    bootstrap: String,
    topics: Vec<(String, String)>,
    topic_config: TopicConfig,
    fetch_bytes: i32,
    max_wait: Duration,
    timeout: Duration,
    delivery_timeout: Duration,
    client_id: String,
}

impl ImportConfig {
    /// An import from the cluster at `bootstrap` (`host:port`, several comma-separated), of
    /// no topic yet ([`ImportConfig::topic`] adds them). Defaults: missing local topics are
    /// created with `TopicConfig::default()` and the remote partition count, 1 MiB fetched
    /// per partition and request, 500 ms broker wait in continuous mode, 30 s network
    /// timeout, 2 min delivery timeout.
    pub fn new(bootstrap: impl Into<String>) -> ImportConfig {
        ImportConfig {
            bootstrap: bootstrap.into(),
            topics: Vec::new(),
            topic_config: TopicConfig::default(),
            fetch_bytes: 1 << 20,
            max_wait: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            client_id: "seglog-import".to_string(),
        }
    }

    /// Imports the remote topic `name` into the local topic of the same name.
    pub fn topic(self, name: &str) -> ImportConfig {
        self.topic_as(name, name)
    }

    /// Imports the remote topic `remote` into the local topic `local`.
    pub fn topic_as(mut self, remote: &str, local: &str) -> ImportConfig {
        self.topics.push((remote.to_string(), local.to_string()));
        self
    }

    /// The configuration of local topics the import creates (its partition count is
    /// replaced by the remote topic's).
    pub fn topic_config(mut self, config: TopicConfig) -> ImportConfig {
        self.topic_config = config;
        self
    }

    /// Bytes fetched per partition and request (a larger first batch still comes whole).
    pub fn fetch_bytes(mut self, bytes: usize) -> ImportConfig {
        self.fetch_bytes = bytes.clamp(1, i32::MAX as usize) as i32;
        self
    }

    /// How long a broker may hold a fetch waiting for new data, in continuous mode.
    pub fn max_wait(mut self, wait: Duration) -> ImportConfig {
        self.max_wait = wait;
        self
    }

    /// The connect and request timeout.
    pub fn timeout(mut self, timeout: Duration) -> ImportConfig {
        self.timeout = timeout;
        self
    }

    /// How long failures may go on before [`Import::catch_up`] and [`Import::run`] give
    /// up with the last error.
    pub fn delivery_timeout(mut self, timeout: Duration) -> ImportConfig {
        self.delivery_timeout = timeout;
        self
    }

    /// The client id sent with every request.
    pub fn client_id(mut self, id: &str) -> ImportConfig {
        self.client_id = id.to_string();
        self
    }
}

/// The largest batch length believed (a corrupt length field is an error, not a batch to
/// wait for): Kafka's `message.max.bytes` tops out far below it.
const MAX_BATCH_LENGTH: i32 = 1 << 30;

/// A partition to fetch: `(partition, offset, max_bytes)`.
type FetchAt = (i32, u64, i32);

/// One remote partition and the local partition it fills.
#[derive(Debug)]
struct Lane {
    topic: usize,
    partition: u32,
    /// The remote partition's high watermark, as last seen.
    high_watermark: Option<u64>,
    /// Catch-up mode: the high watermark to reach.
    target: Option<u64>,
    /// The remote log start, once a fetch below it failed: the remote partition has
    /// nothing below it, so fetches start there (a gap locally).
    floor: u64,
}

#[derive(Debug)]
struct Imported {
    topic: Topic,
    remote: String,
}

/// Fetches a Kafka cluster's topics into seglog topics: every batch appended as fetched
/// ([`OffsetMode::Keep`]: same offsets, compressed batches kept compressed, transaction
/// markers and aborted batches included, so read-committed reads here give what they give
/// there). Each partition resumes from the local log end offset, so an import that stopped
/// (or was killed) goes on where its last appended batch ended. A local topic that does
/// not exist is created with the remote topic's partition count.
#[derive(Debug)]
pub struct Import {
    config: ImportConfig,
    cluster: Cluster,
    topics: Vec<Imported>,
    lanes: Vec<Lane>,
    totals: Progress,
    /// The last error is one that retrying will not change.
    refused: bool,
    /// The lane each round starts with.
    first: usize,
}

impl Import {
    /// Connects to the cluster, finds the remote topics, and opens (or creates) the local
    /// ones.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no topics or a local topic with fewer partitions than
    /// the remote one; [`Error::Kafka`] when the cluster cannot be reached or a remote topic
    /// does not exist; errors creating a local topic.
    pub fn new(store: &Store, config: ImportConfig) -> Result<Import> {
        let mut cluster = super::connect(
            config.topics.len(),
            "import",
            &config.bootstrap,
            &config.client_id,
            config.timeout,
        )?;
        let mut topics = Vec::new();
        let mut lanes = Vec::new();
        for (i, (remote, local)) in config.topics.iter().enumerate() {
            let n = cluster.await_leaders(remote)? as u32;
            let topic = match store.topic(local) {
                Ok(t) => t,
                Err(Error::UnknownTopic(_)) => {
                    store.create_topic(local, config.topic_config.clone().partitions(n))?
                }
                Err(e) => return Err(e),
            };
            if topic.partition_count() < n {
                return Err(Error::config(
                    "topic",
                    local,
                    format!(
                        "a topic of at least {n} partitions, as remote topic {remote} has ({})",
                        topic.partition_count()
                    ),
                ));
            }
            lanes.extend((0..n).map(|partition| Lane {
                topic: i,
                partition,
                high_watermark: None,
                target: None,
                floor: 0,
            }));
            topics.push(Imported {
                topic,
                remote: remote.clone(),
            });
        }
        Ok(Import {
            config,
            cluster,
            topics,
            lanes,
            totals: Progress::default(),
            refused: false,
            first: 0,
        })
    }

    /// Totals since [`Import::new`], with the current lag.
    pub fn totals(&self) -> Progress {
        Progress {
            lag: self.lag(),
            ..self.totals
        }
    }

    /// Offsets between each local log end and the remote high watermark last seen, summed.
    pub fn lag(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| {
                l.high_watermark
                    .unwrap_or(0)
                    .saturating_sub(self.position(l))
            })
            .sum()
    }

    /// Where the next fetch of `lane` starts: the local log end, or the remote log start
    /// when that is past it.
    fn position(&self, lane: &Lane) -> u64 {
        self.topics[lane.topic].topic.partitions()[lane.partition as usize]
            .log_end_offset()
            .max(lane.floor)
    }

    /// One round: one fetch per leader broker for its partitions (from each local log end),
    /// the batches appended. The broker holds the fetch up to `wait` when it has nothing.
    /// Partitions at their catch-up target are not fetched.
    fn round(&mut self, wait: Duration) -> Result<Progress> {
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        let mut refreshed = false;
        // Each round starts with another partition: a broker owes a whole batch only to
        // the first partition of a fetch, so a large batch elsewhere is not starved.
        let n = self.lanes.len();
        self.first = (self.first + 1) % n.max(1);
        for i in (0..n).map(|k| (self.first + k) % n) {
            if self.reached(&self.lanes[i]) {
                continue;
            }
            let remote = self.topics[self.lanes[i].topic].remote.clone();
            let p = self.lanes[i].partition as i32;
            if self.cluster.leader(&remote, p).is_none() && !refreshed {
                let all: Vec<String> = self.topics.iter().map(|t| t.remote.clone()).collect();
                self.cluster.refresh(&all)?;
                refreshed = true;
            }
            match self.cluster.leader(&remote, p) {
                Some(id) => by_leader.entry(id).or_default().push(i),
                None => {
                    return Err(self
                        .cluster
                        .bootstrap_error(format!("{remote}-{p} has no leader")))
                }
            }
        }
        let mut progress = Progress::default();
        // Never zero: some brokers (Tansu) answer a zero-wait fetch with nothing. (With
        // several brokers asked one after the other, idle ones each hold their fetch.)
        let wait_ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
        for (broker, lanes) in by_leader {
            self.fetch_from(broker, &lanes, wait_ms, &mut progress)?;
        }
        progress.lag = self.lag();
        self.totals.add(&progress);
        Ok(progress)
    }

    fn fetch_from(
        &mut self,
        broker: i32,
        lanes: &[usize],
        wait_ms: i32,
        progress: &mut Progress,
    ) -> Result<()> {
        // Per topic index: `(partition, offset, max_bytes)` each.
        let mut topics: Vec<(usize, Vec<FetchAt>)> = Vec::new();
        for &i in lanes {
            let l = &self.lanes[i];
            let at = self.position(l);
            let entry = (l.partition as i32, at, self.config.fetch_bytes);
            match topics.iter_mut().find(|(t, _)| *t == l.topic) {
                Some((_, ps)) => ps.push(entry),
                None => topics.push((l.topic, vec![entry])),
            }
        }
        let req = fetch_request(
            topics
                .iter()
                .map(|(t, ps)| fetch_topic(&self.topics[*t].remote, ps.clone()))
                .collect(),
            wait_ms,
            self.config.fetch_bytes.saturating_mul(lanes.len() as i32),
        );
        let addr = self.cluster.addr(broker);
        let resp = match self.cluster.broker(broker)?.call(&req, FETCH_VERSION) {
            Ok(r) => r,
            Err(f @ Fault::Io(_)) => {
                self.cluster.disconnect(broker);
                return Err(Cluster::error(&addr, f));
            }
            Err(f) => return Err(Cluster::error(&addr, f)),
        };
        if resp.error_code != code::NONE {
            return Err(Cluster::error(
                &addr,
                format!("fetch: {}", error_name(resp.error_code)),
            ));
        }
        for t in &resp.responses {
            let remote = t.topic.0.as_str();
            for pr in &t.partitions {
                let Some(&i) = lanes.iter().find(|&&i| {
                    let l = &self.lanes[i];
                    self.topics[l.topic].remote == remote
                        && l.partition as i32 == pr.partition_index
                }) else {
                    continue;
                };
                match pr.error_code {
                    code::NONE => {
                        self.lanes[i].high_watermark = Some(pr.high_watermark.max(0) as u64);
                        if let Some(records) = &pr.records {
                            self.append(i, records, &addr, progress)?;
                        }
                    }
                    code::OFFSET_OUT_OF_RANGE => self.out_of_range(i)?,
                    c if is_retriable(c) => {
                        self.cluster.forget_leader(remote, pr.partition_index);
                        return Err(Cluster::error(
                            &addr,
                            format!("fetch {remote}-{}: {}", pr.partition_index, error_name(c)),
                        ));
                    }
                    c => {
                        self.refused = true;
                        return Err(Cluster::error(
                            &addr,
                            format!("fetch {remote}-{}: {}", pr.partition_index, error_name(c)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends the whole batches of a fetch answer at or past the local log end (a broker
    /// may start with a batch below the fetch offset and end with a cut one).
    fn append(
        &mut self,
        i: usize,
        records: &[u8],
        addr: &str,
        progress: &mut Progress,
    ) -> Result<()> {
        let lane = &self.lanes[i];
        let part = &self.topics[lane.topic].topic.partitions()[lane.partition as usize];
        let end = part.log_end_offset();
        let position = self.position(lane);
        let remote = &self.topics[lane.topic].remote;
        let mut rest = records;
        let (mut from, mut to) = (None, 0);
        let (mut count, mut batches) = (0u64, 0u64);
        let mut at = 0;
        while rest.len() >= LOG_OVERHEAD + 5 {
            let magic = rest[MAGIC_OFFSET] as i8;
            if magic != MAGIC_V2 {
                return Err(Cluster::error(
                    addr,
                    format!("{remote}-{}: a batch of message format v{magic} at byte {at} of a fetch: only v2 batches (Kafka 0.11 and later) can be imported", lane.partition),
                ));
            }
            let len = i32::from_be_bytes(
                rest[LENGTH_OFFSET..LENGTH_OFFSET + 4]
                    .try_into()
                    .expect("4 bytes"),
            );
            if !(MIN_BATCH_LENGTH as i32..=MAX_BATCH_LENGTH).contains(&len) {
                return Err(Cluster::error(
                    addr,
                    format!(
                        "{remote}-{}: a batch of a fetch at byte {at} has length {len}",
                        lane.partition
                    ),
                ));
            }
            let size = LOG_OVERHEAD + len as usize;
            if rest.len() < size {
                break; // cut by the fetch size: fetched again next time
            }
            let h = BatchHeader::parse(&rest[..size]).map_err(|e| {
                Cluster::error(
                    addr,
                    format!("{remote}-{}: a batch of a fetch: {e}", lane.partition),
                )
            })?;
            if h.last_offset() >= position {
                if h.base_offset < end as i64 {
                    return Err(Cluster::error(
                        addr,
                        format!("{remote}-{}: the batch at offsets {}..={} straddles the local log end {end}: the local topic has records the remote one does not", lane.partition, h.base_offset, h.last_offset()),
                    ));
                }
                from.get_or_insert(at);
                to = at + size;
                count += h.records_count.max(0) as u64;
                batches += 1;
            }
            at += size;
            rest = &rest[size..];
        }
        if let Some(from) = from {
            part.append_raw(&records[from..to], OffsetMode::Keep)?;
            progress.records += count;
            progress.bytes += (to - from) as u64;
            progress.batches += batches;
        }
        Ok(())
    }

    /// The fetch offset (the local log end) is outside the remote log: past its start
    /// (retention removed records never imported) it moves up, leaving a gap; past its
    /// end the remote partition lost records the local one has.
    fn out_of_range(&mut self, i: usize) -> Result<()> {
        let lane = &self.lanes[i];
        let remote = self.topics[lane.topic].remote.clone();
        let p = lane.partition;
        let part = &self.topics[lane.topic].topic.partitions()[p as usize];
        let end = part.log_end_offset();
        let start = self.cluster.log_start(&remote, p as i32)?;
        if end < start {
            tracing::warn!(
                topic = %remote, partition = p, from = end, to = start,
                "kafka import: records removed remotely before they were imported"
            );
            // A gap: the next fetch starts at the remote log start, and the first batch
            // appended there opens it (Keep mode).
            self.lanes[i].floor = start;
            return Ok(());
        }
        self.refused = true;
        Err(self.cluster.bootstrap_error(format!("{remote}-{p}: the local log ends at offset {end}, past the remote partition's end: the remote topic lost records (recreated or truncated)"),
        ))
    }

    /// One round of fetches (see [`Import`]); the broker holds each fetch up to `wait`
    /// when it has nothing new.
    ///
    /// # Errors
    /// [`Error::Kafka`] for a broker that cannot be reached or answers an error; local
    /// append errors ([`Error::InvalidBatch`] for a batch that fails its checks).
    pub fn step(&mut self, wait: Duration) -> Result<Progress> {
        self.round(wait)
    }

    /// True when `lane` has a catch-up target and reached it.
    fn reached(&self, lane: &Lane) -> bool {
        lane.target.is_some_and(|t| self.position(lane) >= t)
    }

    /// Catch-up mode: imports up to each remote partition's high watermark as first seen,
    /// flushes, and returns the totals of this call. Broker failures are retried until
    /// they outlast the delivery timeout.
    ///
    /// # Errors
    /// As [`Import::step`], once failures outlast [`ImportConfig::delivery_timeout`].
    pub fn catch_up(&mut self) -> Result<Progress> {
        // The targets: each partition's high watermark now.
        let mut targets = Vec::with_capacity(self.lanes.len());
        let mut retry = Retry::new(self.config.delivery_timeout);
        for i in 0..self.lanes.len() {
            let remote = self.topics[self.lanes[i].topic].remote.clone();
            let p = self.lanes[i].partition as i32;
            let near = self.position(&self.lanes[i]);
            loop {
                match self.cluster.high_watermark(&remote, p, near) {
                    Ok(hw) if hw < near => {
                        return Err(self.cluster.bootstrap_error(format!("{remote}-{p}: the local log ends at offset {near}, past the remote partition's end {hw}: the remote topic lost records (recreated or truncated)"),
                        ))
                    }
                    Ok(hw) => {
                        targets.push(hw);
                        break;
                    }
                    Err(e @ Error::Kafka { .. }) => {
                        retry.failed(e)?;
                        let _ = self.cluster.refresh(std::slice::from_ref(&remote));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        for (l, &t) in self.lanes.iter_mut().zip(&targets) {
            l.high_watermark = Some(t);
            l.target = Some(t);
        }
        let result = self.reach_targets(&mut retry);
        for l in &mut self.lanes {
            l.target = None;
        }
        let total = result?;
        self.flush()?;
        Ok(Progress {
            lag: self.lag(),
            ..total
        })
    }

    fn reach_targets(&mut self, retry: &mut Retry) -> Result<Progress> {
        let mut total = Progress::default();
        let mut stalled = 0;
        while !self.lanes.iter().all(|l| self.reached(l)) {
            // Partitions below their target have data: a broker answers without waiting
            // out `max_wait` (which is not zero: a zero-wait fetch gets nothing from Tansu).
            let round = self.round(self.config.max_wait);
            let Some(p) = retry.outcome(round, &mut self.refused)? else {
                continue;
            };
            stalled = if p.batches == 0 { stalled + 1 } else { 0 };
            total.add(&p);
            if stalled > 0 {
                // Nothing came below the target (a broker holding back): ask again
                // shortly rather than spin.
                std::thread::sleep(Duration::from_millis(10 * stalled.min(20)));
            }
            if stalled > 500 {
                return Err(self.cluster.bootstrap_error(
                    "fetches return nothing below the high watermark".to_string(),
                ));
            }
        }
        Ok(total)
    }

    /// Continuous mode: follows the remote topics until `stop` is set, then flushes and
    /// returns the totals of this call.
    ///
    /// # Errors
    /// As [`Import::catch_up`].
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Progress> {
        self.run_with(stop, |_| {})
    }

    /// As [`Import::run`], calling `report` with the totals since [`Import::new`] after
    /// every round (to print progress, say).
    ///
    /// # Errors
    /// As [`Import::catch_up`].
    pub fn run_with(
        &mut self,
        stop: &AtomicBool,
        mut report: impl FnMut(&Progress),
    ) -> Result<Progress> {
        let mut total = Progress::default();
        let mut retry = Retry::new(self.config.delivery_timeout);
        while !stop.load(Ordering::Relaxed) {
            let step = self.step(self.config.max_wait);
            if let Some(p) = retry.outcome(step, &mut self.refused)? {
                total.add(&p);
                report(&self.totals());
            }
        }
        self.flush()?;
        total.lag = self.lag();
        Ok(total)
    }

    /// Flushes the local topics (what was imported becomes durable).
    ///
    /// # Errors
    /// I/O errors.
    pub fn flush(&self) -> Result<()> {
        self.topics.iter().try_for_each(|t| t.topic.flush())
    }
}
