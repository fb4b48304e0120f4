//! A batching producer, as Kafka's: records sent one at a time are gathered per partition
//! into batches that a background thread appends.
//!
//! [`Topic::send`] appends one Kafka batch per record: about 60 bytes of batch header and a
//! `pwrite` each. A [`Producer`] instead keeps an accumulator per partition: `send` adds the
//! record and returns a [`Delivery`] handle at once, and the producer's sender thread
//! appends a partition's batch when it reaches [`ProducerConfig::batch_bytes`] or its first
//! record has waited [`ProducerConfig::linger`] (Kafka's `batch.size` and `linger.ms`).
//! Sends from many threads into one partition share its batches. With
//! [`Acks::Durable`], a second thread makes the appended batches durable, one fsync
//! covering every batch appended before it started (group commit), while the sender goes on
//! appending.
//!
//! Partitions are chosen as Kafka's producer does: murmur2 of the key for keyed records; for
//! keyless ones, the sticky partitioner (KIP-480, with KIP-794's switch): the producer sends
//! to one partition until `batch_bytes` went to it, then picks another at random.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::TimestampType;
use crate::error::{Error, Result};
use crate::notify::Completion;
use crate::record::encode::{size_bound, BatchBuilder};
use crate::record::{AsRecord, Compression, Record, BATCH_HEADER_SIZE};
use crate::topic::{partition_for_key, RecordMetadata, Topic};

/// When a [`Producer`] reports a record delivered (Kafka's `acks`, for one machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Once appended: in the page cache, read by consumers, lost with the machine (not with
    /// the process) until a flush. Kafka's brokers acknowledge at this point too (they do
    /// not fsync by default).
    #[default]
    Written,
    /// Once flushed: survives a crash of the machine. One fsync covers every batch appended
    /// before it started, from any thread (group commit).
    Durable,
}

/// [`Producer`] settings. Defaults are Kafka's producer defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// A partition's batch is appended once its records take this many bytes (Kafka's
    /// `batch.size`, default 16 KiB). A record larger than this goes in a batch of its own.
    /// Capped by the topic's `max_batch_bytes`.
    pub batch_bytes: usize,
    /// How long a batch waits for more records before it is appended though not full
    /// (Kafka's `linger.ms`, default 5 ms since Kafka 4.0). Zero appends as soon as the
    /// sender thread is free: records still gather while it writes.
    pub linger: Duration,
    /// When a record counts as delivered. Default [`Acks::Written`].
    pub acks: Acks,
    /// Bytes of records accepted but not yet appended; `send` blocks while more are
    /// buffered (Kafka's `buffer.memory`, default 32 MiB).
    pub buffer_bytes: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_bytes: 16 * 1024,
            linger: Duration::from_millis(5),
            acks: Acks::Written,
            buffer_bytes: 32 << 20,
        }
    }
}

impl ProducerConfig {
    /// Sets `batch_bytes`.
    #[must_use]
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }
    /// Sets `linger`.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
    /// Sets `acks`.
    #[must_use]
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }
    /// Sets `buffer_bytes`.
    #[must_use]
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.batch_bytes == 0 {
            return Err(Error::config("batch_bytes", 0, "at least 1"));
        }
        if self.buffer_bytes == 0 {
            return Err(Error::config("buffer_bytes", 0, "at least 1"));
        }
        Ok(())
    }
}

/// How a batch ended: its base offset, and the log append time for log-append-time
/// topics; or the error every record of it gets.
#[derive(Debug)]
enum Outcome {
    Written {
        base_offset: u64,
        append_time: Option<i64>,
    },
    Failed(Error),
}

/// A batch's shared state: what its records' handles wait for.
type BatchState = Completion<Outcome>;

/// Where a sent record goes: a handle to wait for (blocking, [`Delivery::wait`]) or, with
/// the `async` feature, to `.await`, giving the record's partition and offset once it is
/// delivered (see [`Acks`]), or the error that stopped it. Dropping the handle does not
/// cancel the send.
#[derive(Debug)]
#[must_use = "a Delivery tells whether the record was written"]
pub struct Delivery {
    state: Arc<BatchState>,
    index: u32,
    partition: u32,
    timestamp: i64,
    /// The async waiter's registration.
    key: Option<usize>,
}

impl Delivery {
    fn failed(partition: u32, error: Error) -> Delivery {
        let state = Arc::new(BatchState::default());
        state.complete(Outcome::Failed(error));
        Delivery {
            state,
            index: 0,
            partition,
            timestamp: 0,
            key: None,
        }
    }

    /// The partition the record was sent to.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// True once the outcome is known (`wait` returns at once).
    pub fn is_done(&self) -> bool {
        self.state.get().is_some()
    }

    /// The outcome if known, without waiting.
    pub fn try_result(&self) -> Option<Result<RecordMetadata>> {
        self.state.get().map(|o| self.resolve(o))
    }

    /// Waits until the record is delivered (or failed).
    ///
    /// # Errors
    /// What stopped the record: [`Error::BatchTooLarge`] for a record larger than the topic
    /// allows, [`Error::InvalidTimestamp`], [`Error::Poisoned`] or an I/O error of the
    /// partition, [`Error::Closed`] when the store or producer closed first.
    pub fn wait(self) -> Result<RecordMetadata> {
        let outcome = self.state.wait(None).expect("no deadline");
        self.resolve(outcome)
    }

    /// As [`Delivery::wait`], giving up after `timeout` (`None` then).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<RecordMetadata>> {
        let deadline = Instant::now().checked_add(timeout);
        self.state.wait(deadline).map(|o| self.resolve(o))
    }

    fn resolve(&self, outcome: &Outcome) -> Result<RecordMetadata> {
        match outcome {
            Outcome::Failed(e) => Err(e.duplicate()),
            Outcome::Written {
                base_offset,
                append_time,
            } => Ok(RecordMetadata {
                partition: self.partition,
                offset: base_offset + u64::from(self.index),
                timestamp: append_time.unwrap_or(self.timestamp),
            }),
        }
    }
}

/// `.await` on a [`Delivery`] (feature `async`). A `Delivery` is not itself a future, so
/// a handle dropped unawaited (a send whose outcome is not wanted) is not a lint.
#[cfg(feature = "async")]
impl std::future::IntoFuture for Delivery {
    type Output = Result<RecordMetadata>;
    type IntoFuture = DeliveryFuture;

    fn into_future(self) -> DeliveryFuture {
        DeliveryFuture(self)
    }
}

/// The future of a [`Delivery`] handle (feature `async`): its outcome, awaited without
/// blocking a thread.
#[cfg(feature = "async")]
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct DeliveryFuture(Delivery);

#[cfg(feature = "async")]
impl std::future::Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut self.0;
        let state = Arc::clone(&this.state);
        state
            .poll_until_set(&mut this.key, cx)
            .map(|o| this.resolve(o))
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.state.forget(self.key.take());
    }
}

/// Records gathered for one partition's next append.
#[derive(Debug)]
struct Building {
    /// The records, encoded as they came.
    batch: BatchBuilder,
    /// [`size_bound`] of the records.
    bytes: usize,
    /// What the batch counts for in `buffered` (reserved when it was opened).
    reserved: usize,
    state: Arc<BatchState>,
    /// When its first record came.
    started: Instant,
}

/// One partition's accumulator: batches in send order; all but the last are full.
#[derive(Debug, Default)]
struct Accumulator {
    batches: VecDeque<Building>,
    /// The newest batch made (still here, or taken by the sender): `flush` waits for it.
    newest: Option<Arc<BatchState>>,
    /// Bytes of keyless records sent here since it became the sticky partition.
    sticky_bytes: usize,
}

/// What wakes the sender thread, and producers blocked on a full buffer.
#[derive(Debug, Default)]
struct Signal {
    /// Threads in `flush`: everything goes at once, lingering or not.
    flushing: usize,
    /// Threads in `send` waiting for buffer space: everything goes at once too (the
    /// buffered batches may never fill nor, for a long linger, come due).
    starved: usize,
    /// A batch filled, or a first record came to an empty accumulator.
    poked: bool,
    /// No more sends: the sender appends what is left and ends.
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    topic: Topic,
    config: ProducerConfig,
    /// `batch_bytes` capped by the topic's batch limit (less a margin for a codec's
    /// worst-case growth on compressed topics).
    batch_bytes: usize,
    accumulators: Vec<Mutex<Accumulator>>,
    sticky: AtomicU32,
    rng: AtomicU64,
    /// Bytes accepted and not yet appended (or failed).
    buffered: AtomicUsize,
    signal: Mutex<Signal>,
    /// The sender waits on it for `signal`; blocked producers wait on it for buffer space.
    wake: Condvar,
    closed: AtomicBool,
    /// Buffers of appended batches, for new ones (no allocation, no zeroing).
    spare: Mutex<Vec<Vec<u8>>>,
    /// The first failure since the last `flush` returned.
    failure: Mutex<Option<Error>>,
}

/// Sends records to a topic in batches, as Kafka's producer does. `Send + Sync` and
/// cheap to clone: every clone sends through the same accumulators and threads. Made by
/// [`Topic::producer`].
///
/// Records sent from one thread to one partition are appended in the order sent. Dropping
/// the last clone appends (and, with [`Acks::Durable`], flushes) every record accepted, then
/// stops the threads: an accepted record is never dropped silently; [`Producer::close`]
/// does the same and reports a failure.
///
/// ```
/// # fn main() -> seglog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = seglog::Store::open(dir.path())?;
/// let topic = store.create_topic("events", seglog::TopicConfig::default())?;
/// let producer = topic.producer(seglog::ProducerConfig::default())?;
/// let handles: Vec<_> = (0..1000)
///     .map(|i| producer.send(seglog::Record::new(format!("event {i}"))))
///     .collect();
/// producer.flush()?; // every record sent so far is appended
/// let first = handles.into_iter().next().unwrap().wait()?;
/// assert_eq!(first.offset, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// The producer's threads; dropping the last handle closes the producer.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
        for t in self.threads.get_mut().drain(..) {
            let _ = t.join();
        }
    }
}

/// A batch appended with [`Acks::Durable`], waiting for its flush.
struct Unsynced {
    partition: u32,
    /// The flush must cover offsets below this.
    end: u64,
    state: Arc<BatchState>,
    outcome: Outcome,
}

impl Producer {
    pub(crate) fn new(topic: Topic, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let mut topic_limit = (topic.config().max_batch_bytes as usize)
            .min(usize::try_from(topic.config().segment_bytes).unwrap_or(usize::MAX))
            .saturating_sub(BATCH_HEADER_SIZE);
        if topic.config().compression.for_records() != Compression::None {
            // Incompressible records grow a little (snappy's bound is n + n/6 + 32).
            topic_limit = (topic_limit - topic_limit / 7).saturating_sub(64);
        }
        let topic_limit = topic_limit.max(1);
        let n = topic.partition_count();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        let shared = Arc::new(Shared {
            batch_bytes: config.batch_bytes.min(topic_limit),
            accumulators: (0..n).map(|_| Mutex::default()).collect(),
            sticky: AtomicU32::new((seed % u64::from(n.max(1))) as u32),
            rng: AtomicU64::new(seed),
            buffered: AtomicUsize::new(0),
            signal: Mutex::default(),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            spare: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            topic,
            config,
        });
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(f)
                .map_err(|e| Error::io("spawn producer thread", "", e))
        };
        let mut threads = Vec::new();
        let unsynced = if shared.config.acks == Acks::Durable {
            let (tx, rx) = mpsc::channel::<Unsynced>();
            let s = Arc::clone(&shared);
            threads.push(spawn(
                "seglog-producer-sync",
                Box::new(move || s.sync_loop(rx)),
            )?);
            Some(tx)
        } else {
            None
        };
        let s = Arc::clone(&shared);
        threads.push(spawn(
            "seglog-producer",
            Box::new(move || s.send_loop(unsynced)),
        )?);
        Ok(Producer {
            handle: Arc::new(Handle {
                shared,
                threads: Mutex::new(threads),
            }),
        })
    }

    /// The topic sent to.
    pub fn topic(&self) -> &Topic {
        &self.handle.shared.topic
    }

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.handle.shared.config
    }

    /// Sends `record` to the partition Kafka's producer would pick (murmur2 of the key;
    /// keyless records: the sticky partition) and returns its handle at once, unless more
    /// than `buffer_bytes` wait to be appended: then it blocks until the sender catches
    /// up. A record without a timestamp gets the store clock's time now (Kafka's producer
    /// does the same), unless the topic uses log-append time.
    ///
    /// Errors reach the handle: a record larger than the topic's batch limit or with a
    /// timestamp too far ahead fails at once; append errors fail every record of the batch.
    pub fn send(&self, record: Record) -> Delivery {
        let shared = &self.handle.shared;
        let partition = match &record.key {
            Some(k) => partition_for_key(k, shared.topic.partition_count()),
            None => shared.sticky.load(Ordering::Relaxed),
        };
        let sticky = record.key.is_none();
        shared.send_to(partition, record, sticky)
    }

    /// Sends `record` to partition `partition`.
    ///
    /// # Errors
    /// [`Error::UnknownPartition`] (nothing is sent); otherwise as [`Producer::send`].
    pub fn send_to(&self, partition: u32, record: Record) -> Result<Delivery> {
        self.handle.shared.topic.partition(partition)?;
        Ok(self.handle.shared.send_to(partition, record, false))
    }

    /// Appends every record sent before this call, without waiting for `linger`, and waits
    /// until each is delivered (flushed too, with [`Acks::Durable`]).
    ///
    /// # Errors
    /// The first error any record failed with since the last `flush` returned (each
    /// record's handle has its own).
    pub fn flush(&self) -> Result<()> {
        let shared = &self.handle.shared;
        let (newest, flushing) = shared.begin_flush();
        for state in &newest {
            state.wait(None);
        }
        shared.end_flush(flushing)
    }

    /// As [`Producer::flush`], waiting without blocking the thread.
    ///
    /// # Errors
    /// As [`Producer::flush`].
    #[cfg(feature = "async")]
    pub async fn flush_async(&self) -> Result<()> {
        let shared = &self.handle.shared;
        let (newest, flushing) = shared.begin_flush();
        for state in newest {
            crate::notify::Completed::new(state).await;
        }
        shared.end_flush(flushing)
    }

    /// Flushes, then stops accepting records (later sends, from any clone, fail with
    /// [`Error::Closed`]) and ends the producer's threads once the last clone is gone.
    ///
    /// # Errors
    /// As [`Producer::flush`].
    pub fn close(self) -> Result<()> {
        let flushed = self.flush();
        self.handle.shared.close();
        flushed
    }
}

/// A flush under way (see [`Signal::flushing`]); dropping it ends the flush.
struct Flushing<'a>(&'a Shared);

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.signal.lock().flushing -= 1;
    }
}

impl Shared {
    /// Sends `record` to `partition`; `sticky` when the sticky partitioner chose it (only
    /// those records seal their way to the next sticky partition, as in Kafka).
    fn send_to(&self, partition: u32, mut record: Record, sticky: bool) -> Delivery {
        if self.closed.load(Ordering::Acquire) {
            return self.fail_at_send(partition, Error::Closed("producer".into()));
        }
        let part = &self.topic.partitions()[partition as usize];
        let config = self.topic.config();
        let now = part.now_ms();
        let timestamp = match config.timestamp_type {
            TimestampType::LogAppendTime => 0,
            TimestampType::CreateTime => *record.timestamp.get_or_insert(now),
        };
        if let (TimestampType::CreateTime, Some(skew)) =
            (config.timestamp_type, config.max_timestamp_skew_ms)
        {
            if timestamp > now.saturating_add(skew.min(i64::MAX as u64) as i64) {
                let e = Error::InvalidTimestamp {
                    partition: part.name().to_string(),
                    timestamp,
                    now,
                    max_skew_ms: skew,
                };
                return self.fail_at_send(partition, e);
            }
        }
        let size = size_bound(&record);
        if let Some(e) = self.too_large(size) {
            return self.fail_at_send(partition, e);
        }
        if let Err(e) = self.wait_for_room() {
            return self.fail_at_send(partition, e);
        }
        let log_append = config.timestamp_type == TimestampType::LogAppendTime;
        // Per record: the lock and the handle's reference count are the only atomic
        // writes; the buffer, the sender and the sticky partition hear of whole batches.
        let (state, index, move_on, poke) = {
            let mut acc = self.accumulators[partition as usize].lock();
            // Again under the lock: the sender ends once closing with every accumulator
            // empty, so a record enqueued after `close` would never go.
            if self.closed.load(Ordering::Acquire) {
                drop(acc);
                return self.fail_at_send(partition, Error::Closed("producer".into()));
            }
            let was_empty = acc.batches.is_empty();
            let fits = |b: &Building| b.bytes + size <= self.batch_bytes || b.batch.count() == 0;
            let opened = !acc.batches.back().is_some_and(fits);
            if opened {
                // A new buffer is zeroed once at about a batch's size, not grown by
                // doubling record by record.
                let buf = self.spare.lock().pop();
                let buf = buf.unwrap_or_else(|| vec![0; self.batch_bytes + 1024]);
                let reserved = self.batch_bytes.max(size);
                self.buffered.fetch_add(reserved, Ordering::AcqRel);
                let b = Building {
                    batch: BatchBuilder::new(log_append, buf),
                    bytes: 0,
                    reserved,
                    state: Arc::new(BatchState::default()),
                    started: Instant::now(),
                };
                acc.newest = Some(Arc::clone(&b.state));
                acc.batches.push_back(b);
            }
            let open = acc.batches.back_mut().expect("one is open");
            if let Err(e) = open.batch.push(&record.as_record()) {
                // Nothing was added; an empty batch just opened is appended as nothing.
                return self.fail_at_send(partition, Error::Encode(e));
            }
            let filled = open.bytes < self.batch_bytes && open.bytes + size >= self.batch_bytes;
            open.bytes += size;
            let index = (open.batch.count() - 1) as u32;
            // A batch is sealed once full, or when the next record did not fit it.
            let sealed = filled || (opened && !was_empty);
            let state = Arc::clone(&open.state);
            // KIP-794: the sticky partition moves on once a batch's worth of keyless
            // records went to it (counted under this lock: no atomic per record).
            let move_on = sticky && {
                acc.sticky_bytes += size;
                acc.sticky_bytes >= self.batch_bytes
            };
            (state, index, move_on, was_empty || sealed)
        };
        if move_on {
            self.next_sticky(partition);
        }
        if poke {
            let mut signal = self.signal.lock();
            if !signal.poked {
                signal.poked = true;
                self.wake.notify_all();
            }
        }
        Delivery {
            state,
            index,
            partition,
            timestamp,
            key: None,
        }
    }

    /// The error for a record of `size` bytes that no batch of the topic can hold.
    fn too_large(&self, size: usize) -> Option<Error> {
        let config = self.topic.config();
        let batch = size + BATCH_HEADER_SIZE;
        [
            ("max_batch_bytes", u64::from(config.max_batch_bytes)),
            ("segment_bytes", config.segment_bytes),
        ]
        .into_iter()
        .find(|&(_, limit)| batch as u64 > limit)
        .map(|(limit_name, limit)| Error::BatchTooLarge {
            size: batch,
            limit_name,
            limit,
        })
    }

    /// A handle failed at `send` (nothing was enqueued); `flush` reports it too.
    fn fail_at_send(&self, partition: u32, error: Error) -> Delivery {
        self.note_failure(&error);
        Delivery::failed(partition, error)
    }

    /// Keeps `error` for the next `flush` unless an earlier one is kept.
    fn note_failure(&self, error: &Error) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            *failure = Some(error.duplicate());
        }
    }

    /// Waits while `buffer_bytes` or more wait to be appended. (Batches reserve their
    /// room when opened: the buffer can pass its bound by a batch per sending thread.)
    fn wait_for_room(&self) -> Result<()> {
        let full = || self.buffered.load(Ordering::Acquire) >= self.config.buffer_bytes;
        if full() {
            let mut signal = self.signal.lock();
            while full() {
                if signal.closing {
                    return Err(Error::Closed("producer".into()));
                }
                // The sender is behind: make sure it is not lingering.
                signal.poked = true;
                signal.starved += 1;
                self.wake.notify_all();
                self.wake.wait(&mut signal);
                signal.starved -= 1;
            }
        }
        Ok(())
    }

    /// A batch's worth went to the sticky partition `current`: another is picked at
    /// random (KIP-480, KIP-794), unless another thread did it already.
    fn next_sticky(&self, current: u32) {
        let n = self.topic.partition_count();
        if n > 1 {
            let mut x = self.rng.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng.store(x, Ordering::Relaxed);
            let next = (current + 1 + (x % u64::from(n - 1)) as u32) % n;
            let moved = self
                .sticky
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
            if moved {
                self.accumulators[current as usize].lock().sticky_bytes = 0;
            }
        } else {
            self.accumulators[current as usize].lock().sticky_bytes = 0;
        }
    }

    /// Starts a flush: the newest batch of each partition, to wait for, and the guard that
    /// keeps everything going at once until dropped (also when a `flush_async` future is
    /// dropped unfinished).
    fn begin_flush(&self) -> (Vec<Arc<BatchState>>, Flushing<'_>) {
        let newest = self
            .accumulators
            .iter()
            .filter_map(|a| a.lock().newest.clone())
            .collect();
        let mut signal = self.signal.lock();
        signal.flushing += 1;
        signal.poked = true;
        self.wake.notify_all();
        (newest, Flushing(self))
    }

    fn end_flush(&self, flushing: Flushing<'_>) -> Result<()> {
        drop(flushing);
        match self.failure.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut signal = self.signal.lock();
        signal.closing = true;
        self.wake.notify_all();
    }

    /// The sender thread: waits until a batch is due, appends it, repeats; ends once
    /// closing and empty.
    fn send_loop(&self, unsynced: Option<mpsc::Sender<Unsynced>>) {
        let mut due = Vec::new();
        loop {
            let Some(all) = self.wait_for_due() else {
                return;
            };
            for (p, acc) in self.accumulators.iter().enumerate() {
                let mut acc = acc.lock();
                let now = Instant::now();
                while let Some(b) = acc.batches.front() {
                    let ready = all
                        || acc.batches.len() > 1
                        || b.bytes >= self.batch_bytes
                        || now.duration_since(b.started) >= self.config.linger;
                    if !ready {
                        break;
                    }
                    due.push((p as u32, acc.batches.pop_front().expect("front")));
                }
            }
            for (p, batch) in due.drain(..) {
                self.append(p, batch, unsynced.as_ref());
            }
        }
    }

    /// Waits until some batch is due; `Some(true)` when everything is (a flush, closing),
    /// `None` when closing and nothing is left.
    fn wait_for_due(&self) -> Option<bool> {
        let mut signal = self.signal.lock();
        loop {
            signal.poked = false;
            let all = signal.flushing > 0 || signal.starved > 0 || signal.closing;
            let mut next_due: Option<Instant> = None;
            let mut any = false;
            for acc in &self.accumulators {
                let acc = acc.lock();
                if let Some(b) = acc.batches.front() {
                    any = true;
                    if all || acc.batches.len() > 1 || b.bytes >= self.batch_bytes {
                        return Some(all);
                    }
                    let at = b.started + self.config.linger;
                    next_due = Some(next_due.map_or(at, |d| d.min(at)));
                }
            }
            if !any && signal.closing {
                return None;
            }
            match next_due {
                Some(at) if at <= Instant::now() => return Some(false),
                Some(at) => {
                    self.wake.wait_until(&mut signal, at);
                }
                None => self.wake.wait(&mut signal),
            }
        }
    }

    /// Bytes no longer buffered: wakes producers blocked on a full buffer.
    fn release(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::AcqRel);
        let _signal = self.signal.lock();
        self.wake.notify_all();
    }

    /// Appends `batch` to partition `p`, then settles it: delivered now, or handed to the
    /// sync thread.
    fn append(&self, p: u32, batch: Building, unsynced: Option<&mpsc::Sender<Unsynced>>) {
        let part = &self.topic.partitions()[p as usize];
        let count = batch.batch.count() as u64;
        if count == 0 {
            // Opened for a record that could not be encoded: nothing to append, and no
            // handle waits for it (a flush may).
            self.release(batch.reserved);
            let nothing = Outcome::Written {
                base_offset: part.log_end_offset(),
                append_time: None,
            };
            batch.state.complete(nothing);
            return;
        }
        let mut spare = Vec::new();
        let result = part.append_built(batch.batch, &mut spare);
        self.release(batch.reserved);
        // A few, of about a batch's size (not one a huge record grew).
        if spare.capacity() > 0 && spare.capacity() <= 4 * self.batch_bytes + 4096 {
            let mut pool = self.spare.lock();
            if pool.len() < 4 {
                pool.push(spare);
            }
        }
        let outcome = match result {
            Ok(info) => Outcome::Written {
                base_offset: info.base_offset,
                append_time: (part.config().timestamp_type == TimestampType::LogAppendTime)
                    .then_some(info.max_timestamp),
            },
            Err(e) => Outcome::Failed(e),
        };
        match (unsynced, &outcome) {
            // A failure goes the same way, so that batches of a partition settle in order
            // (a flush waits for the newest one only).
            (Some(tx), _) => {
                let end = match &outcome {
                    Outcome::Written { base_offset, .. } => base_offset + count,
                    Outcome::Failed(_) => 0,
                };
                let item = Unsynced {
                    partition: p,
                    end,
                    state: batch.state,
                    outcome,
                };
                if let Err(mpsc::SendError(item)) = tx.send(item) {
                    self.settle(
                        &item.state,
                        Outcome::Failed(Error::Closed("producer".into())),
                    );
                }
            }
            _ => self.settle(&batch.state, outcome),
        }
    }

    fn settle(&self, state: &BatchState, outcome: Outcome) {
        if let Outcome::Failed(e) = &outcome {
            self.note_failure(e);
        }
        state.complete(outcome);
    }

    /// The sync thread: flushes each partition up to the batches appended so far, then
    /// settles them.
    fn sync_loop(&self, rx: mpsc::Receiver<Unsynced>) {
        while let Ok(first) = rx.recv() {
            let mut items = vec![first];
            items.extend(rx.try_iter());
            let mut targets: Vec<(u32, u64)> = Vec::new();
            for it in items
                .iter()
                .filter(|it| matches!(it.outcome, Outcome::Written { .. }))
            {
                match targets.iter_mut().find(|(p, _)| *p == it.partition) {
                    Some((_, end)) => *end = (*end).max(it.end),
                    None => targets.push((it.partition, it.end)),
                }
            }
            let results: Vec<(u32, Result<()>)> = targets
                .into_iter()
                .map(|(p, end)| (p, self.topic.partitions()[p as usize].flush_to(end)))
                .collect();
            for it in items {
                let flushed = results.iter().find(|(p, _)| *p == it.partition);
                let outcome = match (it.outcome, flushed) {
                    (Outcome::Written { .. }, Some((_, Err(e)))) => Outcome::Failed(e.duplicate()),
                    (outcome, _) => outcome,
                };
                self.settle(&it.state, outcome);
            }
        }
    }
}
