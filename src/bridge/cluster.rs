//! A Kafka cluster as the bridge sees it: the brokers and partition leaders of the last
//! metadata answer, one connection per broker, and the few cluster-wide requests (create a
//! topic, get a producer id, find a partition's ends).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, FetchResponse, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use super::wire::{error_name, is_retriable, Conn, Fault};
use crate::error::{Error, Result};

/// Newest versions the bridge fills in. Produce 13 and Fetch 13 name topics by id only.
pub(crate) const METADATA_VERSION: i16 = 12;
pub(crate) const PRODUCE_VERSION: i16 = 12;
pub(crate) const FETCH_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 7;

/// Kafka's `NONE` and the error codes the bridge acts on.
pub(crate) mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
}

pub(crate) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The cluster: where partitions lead, and connections to their brokers.
#[derive(Debug)]
pub(crate) struct Cluster {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    /// Broker id to `host:port`, from the last metadata answer.
    brokers: HashMap<i32, String>,
    /// Open connections by address.
    conns: HashMap<String, Conn>,
    /// `(topic, partition)` to the leader's broker id (absent: unknown or leaderless).
    leaders: HashMap<(String, i32), i32>,
    /// Topic to its partition count, or the error the metadata gave for it.
    topics: HashMap<String, std::result::Result<i32, i16>>,
    controller: i32,
}

impl Cluster {
    /// Connects to the first reachable of `bootstrap` (`host:port`, comma-separated).
    pub(crate) fn connect(bootstrap: &str, client_id: &str, timeout: Duration) -> Result<Cluster> {
        let list: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if list.is_empty() {
            return Err(Error::config(
                "bootstrap",
                bootstrap,
                "host:port[,host:port...]",
            ));
        }
        let mut cluster = Cluster {
            bootstrap: list,
            client_id: client_id.to_string(),
            timeout,
            brokers: HashMap::new(),
            conns: HashMap::new(),
            leaders: HashMap::new(),
            topics: HashMap::new(),
            controller: -1,
        };
        cluster.refresh(&[])?;
        Ok(cluster)
    }

    /// The error for `fault` at `addr`.
    pub(crate) fn error(addr: &str, what: impl std::fmt::Display) -> Error {
        Error::Kafka {
            broker: addr.to_string(),
            reason: what.to_string(),
        }
    }

    /// An error not due to one broker: it names the bootstrap list.
    pub(crate) fn bootstrap_error(&self, what: impl std::fmt::Display) -> Error {
        Cluster::error(&self.bootstrap.join(","), what)
    }

    /// The connection to `addr`, opened (or reopened after a failure) as needed.
    fn conn_at(&mut self, addr: &str) -> Result<&mut Conn> {
        if self.conns.get(addr).is_some_and(Conn::is_broken) {
            self.conns.remove(addr);
        }
        if !self.conns.contains_key(addr) {
            let conn = Conn::connect(addr, &self.client_id, self.timeout)
                .map_err(|f| Cluster::error(addr, f))?;
            self.conns.insert(addr.to_string(), conn);
        }
        Ok(self.conns.get_mut(addr).expect("inserted above"))
    }

    /// The connection to broker `id`.
    pub(crate) fn broker(&mut self, id: i32) -> Result<&mut Conn> {
        let addr = self
            .brokers
            .get(&id)
            .cloned()
            .ok_or_else(|| self.bootstrap_error(format!("no broker {id}")))?;
        self.conn_at(&addr)
    }

    /// Runs `call` on some broker: known brokers first, then the bootstrap list; the
    /// first that answers wins. Errors name the last failure.
    fn any<T>(
        &mut self,
        mut call: impl FnMut(&mut Conn) -> std::result::Result<T, Fault>,
    ) -> Result<T> {
        let mut addrs: Vec<String> = self.brokers.values().cloned().collect();
        addrs.sort();
        addrs.extend(self.bootstrap.iter().cloned());
        let mut last = None;
        for addr in addrs {
            let conn = match self.conn_at(&addr) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match call(conn) {
                Ok(t) => return Ok(t),
                Err(f @ Fault::Io(_)) => last = Some(Cluster::error(&addr, f)),
                Err(f) => return Err(Cluster::error(&addr, f)),
            }
        }
        Err(last.unwrap_or_else(|| Cluster::error("", "no broker to ask")))
    }

    /// Asks for the brokers and for `topics`' partitions and leaders.
    pub(crate) fn refresh(&mut self, topics: &[String]) -> Result<()> {
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let resp = self.any(|c| c.call(&req, METADATA_VERSION))?;
        self.brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.controller = resp.controller_id.0;
        for t in &resp.topics {
            let Some(topic) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            self.leaders.retain(|(name, _), _| name != &topic);
            if t.error_code != code::NONE {
                self.topics.insert(topic, Err(t.error_code));
                continue;
            }
            self.topics
                .insert(topic.clone(), Ok(t.partitions.len() as i32));
            for p in &t.partitions {
                if p.error_code == code::NONE && p.leader_id.0 >= 0 {
                    self.leaders
                        .insert((topic.clone(), p.partition_index), p.leader_id.0);
                }
            }
        }
        Ok(())
    }

    /// `topic`'s partition count per the last refresh, or the error code it had.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<std::result::Result<i32, i16>> {
        self.topics.get(topic).copied()
    }

    /// The leader of `topic`'s `partition` per the last refresh.
    pub(crate) fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.leaders.get(&(topic.to_string(), partition)).copied()
    }

    /// Forgets `topic`'s `partition`'s leader: the next `refresh` finds it again.
    pub(crate) fn forget_leader(&mut self, topic: &str, partition: i32) {
        self.leaders.remove(&(topic.to_string(), partition));
    }

    /// Drops the connection to broker `id` (after it failed).
    pub(crate) fn disconnect(&mut self, id: i32) {
        if let Some(addr) = self.brokers.get(&id) {
            self.conns.remove(addr);
        }
    }

    /// The address of broker `id`, for errors.
    pub(crate) fn addr(&self, id: i32) -> String {
        self.brokers
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("broker {id}"))
    }

    /// Waits (refreshing) until every partition of `topic` has a leader, up to the timeout.
    pub(crate) fn await_leaders(&mut self, topic: &str) -> Result<i32> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.refresh(&[topic.to_string()])?;
            if let Some(Ok(n)) = self.partition_count(topic) {
                if (0..n).all(|p| self.leader(topic, p).is_some()) {
                    return Ok(n);
                }
            }
            if Instant::now() >= deadline {
                let state = match self.partition_count(topic) {
                    Some(Err(code)) => error_name(code),
                    _ => "partitions without a leader".to_string(),
                };
                return Err(self.bootstrap_error(format!("topic {topic}: {state}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates `topic` with `partitions` partitions (replication factor `replication`,
    /// -1 for the broker's default) and `configs`; an existing topic is left alone.
    pub(crate) fn create_topic(
        &mut self,
        topic: &str,
        partitions: u32,
        replication: i16,
        configs: &[(&str, String)],
    ) -> Result<()> {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions as i32)
                .with_replication_factor(replication)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                )])
            .with_timeout_ms(self.timeout.as_millis().min(i32::MAX as u128) as i32);
        // The controller creates topics; any broker forwards (KRaft) or answers
        // NOT_CONTROLLER, so the controller is asked first when known.
        let resp = match self.controller {
            id if id >= 0 && self.brokers.contains_key(&id) => {
                let addr = self.addr(id);
                self.broker(id)?
                    .call(&req, CREATE_TOPICS_VERSION)
                    .map_err(|f| Cluster::error(&addr, f))?
            }
            _ => self.any(|c| c.call(&req, CREATE_TOPICS_VERSION))?,
        };
        for t in &resp.topics {
            if t.error_code != code::NONE && t.error_code != code::TOPIC_ALREADY_EXISTS {
                let msg = t.error_message.as_ref().map_or("", |m| m.as_str());
                return Err(self.bootstrap_error(format!(
                    "creating topic {topic}: {} {msg}",
                    error_name(t.error_code)
                )));
            }
        }
        Ok(())
    }

    /// A new idempotent producer id and epoch (`InitProducerId` without a transactional
    /// id), retried while the broker says it is not ready.
    pub(crate) fn init_producer_id(&mut self) -> Result<(i64, i16)> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let deadline = Instant::now() + self.timeout;
        loop {
            let resp = self.any(|c| c.call(&req, INIT_PRODUCER_ID_VERSION))?;
            match resp.error_code {
                code::NONE => return Ok((resp.producer_id.0, resp.producer_epoch)),
                c if is_retriable(c) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                c => return Err(self.bootstrap_error(format!("InitProducerId: {}", error_name(c)))),
            }
        }
    }

    /// Fetches `topic`'s `partition` at `offset` from its leader, up to `max_bytes`
    /// (read-uncommitted; the broker may hold the fetch `wait_ms` for data).
    pub(crate) fn fetch_one(
        &mut self,
        topic: &str,
        partition: i32,
        offset: u64,
        max_bytes: i32,
        wait_ms: i32,
    ) -> Result<FetchResponse> {
        let req = fetch_request(
            vec![fetch_topic(topic, vec![(partition, offset, max_bytes)])],
            wait_ms,
            max_bytes,
        );
        self.call_leader(topic, partition, &req, FETCH_VERSION)
            .map(|(resp, _)| resp)
    }

    /// Sends `req` (at most version `cap`) to the leader of `topic`'s `partition` and
    /// returns its answer with the leader's address.
    fn call_leader<R: Request>(
        &mut self,
        topic: &str,
        partition: i32,
        req: &R,
        cap: i16,
    ) -> Result<(R::Response, String)> {
        let leader = self
            .leader(topic, partition)
            .ok_or_else(|| self.bootstrap_error(format!("{topic}-{partition} has no leader")))?;
        let addr = self.addr(leader);
        let resp = self
            .broker(leader)?
            .call(req, cap)
            .map_err(|f| Cluster::error(&addr, f))?;
        Ok((resp, addr))
    }

    /// The first offset of `topic`'s `partition` (`ListOffsets`, earliest).
    pub(crate) fn log_start(&mut self, topic: &str, partition: i32) -> Result<u64> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-2)])]);
        let (resp, addr) = self.call_leader(topic, partition, &req, LIST_OFFSETS_VERSION)?;
        let p = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                Cluster::error(
                    &addr,
                    format!("ListOffsets: no answer for {topic}-{partition}"),
                )
            })?;
        if p.error_code != code::NONE {
            return Err(Cluster::error(
                &addr,
                format!(
                    "ListOffsets {topic}-{partition}: {}",
                    error_name(p.error_code)
                ),
            ));
        }
        Ok(p.offset.max(0) as u64)
    }

    /// The high watermark (the end consumers see) of `topic`'s `partition`, from a fetch
    /// at `near` (any offset in the log; the log start is used when `near` is not).
    /// A fetch is used rather than `ListOffsets`, whose "latest" some brokers misreport
    /// (Tansu). The fetch may wait a little (1 ms, then longer when the answer lacks the
    /// partition): some brokers (Tansu) answer a zero-wait fetch with no partitions, and an
    /// empty partition holds the fetch for the whole wait.
    pub(crate) fn high_watermark(&mut self, topic: &str, partition: i32, near: u64) -> Result<u64> {
        let mut at = near;
        let mut wait_ms = 1;
        for _ in 0..4 {
            let resp = self.fetch_one(topic, partition, at, 1, wait_ms)?;
            let p = resp
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == partition);
            let Some(p) = p else {
                wait_ms = (wait_ms * 100).min(500);
                continue;
            };
            match p.error_code {
                code::NONE => return Ok(p.high_watermark.max(0) as u64),
                code::OFFSET_OUT_OF_RANGE => at = self.log_start(topic, partition)?,
                c => {
                    return Err(Cluster::error(
                        &self.addr(self.leader(topic, partition).unwrap_or(-1)),
                        format!("fetch {topic}-{partition} at {at}: {}", error_name(c)),
                    ))
                }
            }
        }
        Err(self.bootstrap_error(format!("no high watermark for {topic}-{partition}")))
    }
}

/// A fetch request (read-uncommitted, replica id -1 as a consumer).
pub(crate) fn fetch_request(
    topics: Vec<FetchTopic>,
    max_wait_ms: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// One topic of a fetch request: `(partition, offset, max_bytes)` each.
pub(crate) fn fetch_topic(topic: &str, partitions: Vec<(i32, u64, i32)>) -> FetchTopic {
    FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(
            partitions
                .into_iter()
                .map(|(p, offset, max)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset as i64)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(max)
                })
                .collect(),
        )
}
