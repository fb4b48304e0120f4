//! The store: one data directory holding topics (Kafka's `log.dir` and `LogManager`).
//! How it is opened is `open.rs`; its topic metadata file is `topics_file.rs`.

mod dirs;
mod open;
mod topics_file;

pub use topics_file::TOPICS_FILE;
use topics_file::{read_topics, write_topics};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::RwLock;

use crate::checkpoint::{Checkpoints, Offsets, CLEAN_SHUTDOWN_FILE};
use crate::config::{FlushPolicy, StoreConfig, TopicConfig};
use crate::consumer::{
    Consumer, ConsumerConfig, Coordinator, OffsetAndMetadata, PartitionLag, OFFSETS_TOPIC,
};
use crate::error::{Error, Result};
use crate::fs::DirLock;
use crate::partition::{OpenContext, Partition};
use crate::topic::{validate_topic_name, Topic};

/// An open data directory. Holds the directory's exclusive lock until closed or dropped.
///
/// ```
/// # fn main() -> seglog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use seglog::{Record, Store, TopicConfig};
/// let store = Store::open(dir.path())?;
/// let topic = store.create_topic("events", TopicConfig::default().partitions(2))?;
/// let meta = topic.send(Record::new(b"hello".to_vec()).with_key(b"k".to_vec()))?;
/// let fetch = topic.partition(meta.partition)?.read(meta.offset, 1 << 20)?;
/// assert_eq!(fetch.records().next().unwrap().value(), Some(&b"hello"[..]));
/// store.close()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    config: StoreConfig,
    topics: Arc<RwLock<BTreeMap<String, Topic>>>,
    /// What open found (clean shutdown or not, checkpoints) and the checkpoint files:
    /// every partition opens with it (a topic created later as fresh, inheriting nothing).
    ctx: OpenContext,
    flusher: Option<Background>,
    maintainer: Option<Maintenance>,
    last_maintenance: Arc<parking_lot::Mutex<LastPasses>>,
    groups: Arc<Coordinator>,
    closed: bool,
    _lock: DirLock,
}

/// What a maintenance pass ([`Store::enforce_retention`], [`Store::compact`], or the
/// background threads, see [`Store::last_maintenance`]) did across the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaintenanceReport {
    /// Segments deleted by retention.
    pub segments_deleted: usize,
    /// `.log` bytes deleted by retention.
    pub bytes_deleted: u64,
    /// Partitions compaction cleaned.
    pub partitions_compacted: usize,
    /// Dirty bytes compaction read.
    pub dirty_bytes_cleaned: u64,
    /// `.log` bytes of the segments compaction rewrote, before and after.
    pub compacted_bytes_before: u64,
    /// See `compacted_bytes_before`.
    pub compacted_bytes_after: u64,
    /// Partitions that failed; the others were still maintained.
    pub failures: Vec<MaintenanceFailure>,
}

/// One partition's failure in a maintenance pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceFailure {
    /// `<topic>-<partition>`.
    pub partition: String,
    /// The error, as text.
    pub error: String,
}

impl MaintenanceReport {
    /// Adds `other`'s counts and failures to this report.
    fn absorb(&mut self, other: &MaintenanceReport) {
        self.segments_deleted += other.segments_deleted;
        self.bytes_deleted += other.bytes_deleted;
        self.partitions_compacted += other.partitions_compacted;
        self.dirty_bytes_cleaned += other.dirty_bytes_cleaned;
        self.compacted_bytes_before += other.compacted_bytes_before;
        self.compacted_bytes_after += other.compacted_bytes_after;
        self.failures.extend(other.failures.iter().cloned());
    }

    fn fail(&mut self, p: &Partition, e: &Error) {
        self.failures.push(MaintenanceFailure {
            partition: p.name().to_string(),
            error: e.to_string(),
        });
    }
}

/// Runs retention on every partition of `topics`.
fn enforce_retention(topics: &[Topic], report: &mut MaintenanceReport) {
    for p in topics.iter().flat_map(|t| t.partitions().iter()) {
        match p.enforce_retention() {
            Ok(r) => {
                report.segments_deleted += r.segments_deleted;
                report.bytes_deleted += r.bytes_deleted;
            }
            Err(Error::Closed(_)) => {}
            Err(e) => report.fail(p, &e),
        }
    }
}

/// Runs a compaction pass on every partition of `topics` that needs one.
fn compact(topics: &[Topic], report: &mut MaintenanceReport) {
    for p in topics.iter().flat_map(|t| t.partitions().iter()) {
        match p.compact() {
            Ok(r) if r.cleaned => {
                report.partitions_compacted += 1;
                report.dirty_bytes_cleaned += r.dirty_bytes;
                report.compacted_bytes_before += r.bytes_before;
                report.compacted_bytes_after += r.bytes_after;
            }
            Ok(_) | Err(Error::Closed(_)) => {}
            Err(e) => report.fail(p, &e),
        }
    }
}

/// The last pass of each background maintenance thread.
#[derive(Debug, Default)]
struct LastPasses {
    retention: Option<MaintenanceReport>,
    compaction: Option<MaintenanceReport>,
}

impl LastPasses {
    /// Both reports in one (see [`Store::last_maintenance`]).
    fn merged(&self) -> Option<MaintenanceReport> {
        if self.retention.is_none() && self.compaction.is_none() {
            return None;
        }
        let mut report = MaintenanceReport::default();
        for r in [&self.retention, &self.compaction].into_iter().flatten() {
            report.absorb(r);
        }
        Some(report)
    }
}

/// The background maintenance: two threads, like Kafka's (its scheduler's
/// `kafka-log-retention` task and its `LogCleaner` threads), so that deleting what
/// retention no longer keeps never waits behind a compaction pass's reads, writes and
/// fsyncs. Each runs every `maintenance_interval`.
#[derive(Debug)]
struct Maintenance {
    retention: Background,
    cleaner: Background,
}

impl Maintenance {
    /// Stops both threads, each after the pass it is running (a compaction pass stops
    /// early once its partition is closing).
    fn stop(self) {
        let _ = self.retention.stop.send(());
        let _ = self.cleaner.stop.send(());
        self.retention.stop();
        self.cleaner.stop();
    }
}

/// A background thread of the store: it waits, runs `work`, waits as long as `work` says,
/// and so on, until stopped.
#[derive(Debug)]
struct Background {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Background {
    /// Starts the thread `name`, which first waits `first_wait`.
    fn spawn(
        name: &str,
        first_wait: Duration,
        mut work: impl FnMut() -> Duration + Send + 'static,
    ) -> std::io::Result<Background> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut wait = first_wait;
                loop {
                    match stopped.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    wait = work();
                }
            })?;
        Ok(Background { stop, thread })
    }

    /// Stops the thread and waits for it (after the work it is doing, if any).
    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }

    /// The maintenance threads: `seglog-retention` enforces retention and
    /// `seglog-cleaner` compacts, each every `interval`.
    fn maintainer(
        topics: Arc<RwLock<BTreeMap<String, Topic>>>,
        interval: Duration,
        last: Arc<parking_lot::Mutex<LastPasses>>,
    ) -> std::io::Result<Maintenance> {
        let pass =
            |topics: Arc<RwLock<BTreeMap<String, Topic>>>,
             last: Arc<parking_lot::Mutex<LastPasses>>,
             work: fn(&[Topic], &mut MaintenanceReport),
             slot: fn(&mut LastPasses) -> &mut Option<MaintenanceReport>| {
                move || {
                    let list: Vec<Topic> = topics.read().values().cloned().collect();
                    let mut report = MaintenanceReport::default();
                    work(&list, &mut report);
                    *slot(&mut last.lock()) = Some(report);
                    interval
                }
            };
        let retention = Background::spawn(
            "seglog-retention",
            interval,
            pass(
                Arc::clone(&topics),
                Arc::clone(&last),
                enforce_retention,
                |l| &mut l.retention,
            ),
        )?;
        let cleaner = Background::spawn(
            "seglog-cleaner",
            interval,
            pass(topics, last, compact, |l| &mut l.compaction),
        );
        match cleaner {
            Ok(cleaner) => Ok(Maintenance { retention, cleaner }),
            Err(e) => {
                retention.stop();
                Err(e)
            }
        }
    }

    /// The flusher: flushes topics with [`FlushPolicy::EveryMillis`] and writes the
    /// checkpoints every `checkpoint_interval`.
    fn flusher(
        topics: Arc<RwLock<BTreeMap<String, Topic>>>,
        checkpoints: Arc<Checkpoints>,
        checkpoint_interval: Duration,
    ) -> std::io::Result<Background> {
        let mut last_checkpoint = std::time::Instant::now();
        Background::spawn("seglog-flusher", Duration::ZERO, move || {
            let due: Vec<(Topic, Duration)> = topics
                .read()
                .values()
                .filter_map(|t| match t.config().flush_policy {
                    FlushPolicy::EveryMillis(ms) => Some((t.clone(), Duration::from_millis(ms))),
                    _ => None,
                })
                .collect();
            for (topic, interval) in &due {
                for p in topic.partitions() {
                    // A failed flush leaves the data unflushed; the next tick (or an
                    // explicit flush, which reports the error) tries again.
                    let _ = p.flush_if_older(*interval);
                }
            }
            if last_checkpoint.elapsed() >= checkpoint_interval {
                // A failure leaves the older checkpoint, which is still correct (it only
                // makes the next recovery check more); the next tick retries. Under the
                // topics lock: a topic deleted meanwhile must not come back into the files.
                let _ = write_checkpoints(&topics.read(), &checkpoints);
                last_checkpoint = std::time::Instant::now();
            }
            // Wake at the shortest interval (at most every 100 ms, to notice new topics).
            due.iter()
                .map(|(_, i)| *i)
                .chain([checkpoint_interval])
                .min()
                .unwrap_or(Duration::MAX)
                .clamp(Duration::from_millis(1), Duration::from_millis(100))
        })
    }
}

impl Store {
    /// Opens (creating if needed) the data directory `dir` with default settings.
    ///
    /// # Errors
    /// [`Error::Locked`] when another `Store` has it open; [`Error::Corrupt`] when the
    /// topic metadata fails its checksum; I/O errors.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreConfig::default())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a topic with `config.partitions` partitions. The config is validated, then
    /// persisted before any partition directory is created. Like Kafka, a name that equals
    /// an existing topic's once `.` and `_` are treated alike is refused, and internal
    /// names (`__consumer_offsets`, `__transaction_state`) are reserved.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`] (including an internal name), [`Error::InvalidConfig`],
    /// [`Error::TopicExists`], [`Error::TopicCollision`], I/O.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        if crate::topic::is_internal(name) {
            return Err(Error::InvalidTopicName {
                name: name.to_string(),
                reason: "an internal topic name (the store creates __consumer_offsets itself)",
            });
        }
        self.create_topic_as(name, config)
    }

    /// `create_topic` without the internal-name check: the store's own internal topics.
    pub(crate) fn create_topic_as(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        validate_topic_name(name)?;
        config.validate()?;
        let mut topics = self.topics.write();
        if topics.contains_key(name) {
            return Err(Error::TopicExists(name.to_string()));
        }
        if let Some(existing) = topics.keys().find(|t| crate::topic::collides(t, name)) {
            return Err(Error::TopicCollision {
                name: name.to_string(),
                existing: existing.clone(),
            });
        }
        // A directory seglog did not make (copied in while the store is open): a new topic
        // must not take over its data, and seglog never deletes it.
        let foreign: Vec<PathBuf> = (0..config.partitions)
            .map(|p| self.ctx.partition_dir(name, p))
            .filter(|d| d.exists())
            .collect();
        if !foreign.is_empty() {
            return Err(Error::UnknownDirectories {
                dir: self.dir.clone(),
                directories: foreign,
                topics_file_missing: false,
            });
        }
        if self.ctx.checkpoints.lock().may_mention(name) {
            // Left by a deleted topic whose checkpoint rewrite failed: the new partitions
            // must not inherit its recovery points or log start offsets at the next open.
            write_checkpoints(&topics, &self.ctx.checkpoints)?;
        }
        let mut configs: BTreeMap<String, TopicConfig> = topics
            .iter()
            .map(|(n, t)| (n.clone(), t.config().clone()))
            .collect();
        configs.insert(name.to_string(), config.clone());
        // Marked directories of an earlier deletion of this name (committed: it is not
        // listed) go first, so that the open never has two candidates to rename back.
        dirs::remove_marked_of(&self.dir, name)?;
        // Metadata first: a crash before the directories exist recreates them on open.
        write_topics(&self.dir, &configs)?;
        // A new topic's partitions are empty: nothing to recover, nothing checkpointed.
        let topic = open::open_topic(&self.ctx, name, config, true)?;
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// The topic `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    /// Names of all topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.topics.read().keys().cloned().collect()
    }

    /// Deletes a topic and all its data, and the offsets consumer groups committed on it.
    /// Handles to it still held fail with [`Error::Closed`] on writes.
    ///
    /// The deletion takes effect, durably, when `seglog-topics` is replaced by a version
    /// without the topic; then this returns `Ok`. Removing the partition directories and
    /// their checkpoint entries comes after: should that fail part-way, the next open
    /// removes what is left (and a topic created again under the name inherits nothing).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; I/O errors. An error means the topic was not deleted: it
    /// still exists, readable and writable, and is not [`Topic::is_deleted`]. Two things
    /// may have happened: the groups' committed offsets on it are removed first (so that a
    /// topic created again under the name starts afresh), and may be gone; and when the
    /// final directory fsync of `seglog-topics` fails, the topic is gone from the store
    /// ([`Topic::is_deleted`] says so) but not durably — the next open settles it as the
    /// file on disk says. Appends to the topic that run while it is being deleted may fail
    /// with [`Error::Closed`].
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        // Lock order: the coordinator's lock, then the topics lock (as loading the offsets
        // takes them).
        let mut committed = if name != OFFSETS_TOPIC
            && self.topic(OFFSETS_TOPIC).is_ok()
            && self.topic(name).is_ok()
        {
            Some(self.groups.committed(|| self.offsets_topic())?)
        } else {
            None
        };
        let mut topics = self.topics.write();
        let Some(topic) = topics.get(name).cloned() else {
            return Err(Error::UnknownTopic(name.to_string()));
        };
        let configs: BTreeMap<String, TopicConfig> = topics
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(n, t)| (n.clone(), t.config().clone()))
            .collect();
        // Groups' committed offsets of the topic go first (Kafka deletes them too), so
        // that a topic created again under the name starts afresh.
        if let Some(committed) = committed.as_mut() {
            crate::consumer::forget_topic(committed, name, self.config.clock.now_ms())?;
        }
        // Kafka's protocol (FORMAT.md §1, `dirs.rs`): rename every partition directory to a
        // `-delete` name (durable), then rewrite the metadata (the commit), then remove.
        // A crash before the commit leaves marked directories of a listed topic, which the
        // open renames back (the topic stays whole); after it, marked directories of no
        // listed topic, which the open removes (the topic is gone). A directory seglog did
        // not mark is never removed, so the rename must come first. The partitions are
        // closed meanwhile (their files move) and reopened for writes if the deletion
        // does not commit.
        for p in topic.partitions() {
            p.mark_closed();
        }
        // Only partitions whose directory is back in place take writes again.
        let reopen = || {
            for p in topic.partitions().iter().filter(|p| p.dir().exists()) {
                p.unmark_closed();
            }
        };
        let partition_dirs: Vec<(u32, PathBuf)> = topic
            .partitions()
            .iter()
            .map(|p| (p.number(), p.dir().to_path_buf()))
            .collect();
        let marked = match dirs::mark_for_deletion(&self.dir, name, &partition_dirs) {
            Ok(marked) => marked,
            Err(e) => {
                reopen();
                return Err(e);
            }
        };
        if let Err(e) = write_topics(&self.dir, &configs) {
            // The new file may be in place without being durable (a failed directory
            // fsync): the marks then stay, and the next open undoes or finishes the deletion
            // as the file on disk says. Only a file that still lists the topic is undone now.
            match read_topics(&self.dir) {
                Ok(on_disk) if on_disk.contains_key(name) => {
                    dirs::unmark(&self.dir, &marked);
                    reopen();
                }
                Ok(_) => {
                    // The file says deleted, not yet durably: the error says so.
                    topic.mark_deleted();
                    topics.remove(name);
                }
                Err(_) => {}
            }
            return Err(e);
        }
        // The commit point is passed. Under the coordinator's lock, which commits check it
        // under: no commit on the topic lands after its offsets are forgotten. Consumers
        // still holding the topic can no longer commit on it.
        topic.mark_deleted();
        drop(committed);
        topics.remove(name);
        // Deleted. What follows only tidies up; a failure leaves files the next open
        // removes, so it is not reported as a failure of the deletion.
        let removed = marked
            .iter()
            .try_for_each(|(_, path)| dirs::remove_dir(path))
            .and_then(|()| crate::fs::sync_dir(&self.dir));
        if let Err(e) = removed {
            tracing::warn!(topic = name, error = %e, "deleted topic's directories not all removed; the next open removes them");
        }
        // Should this fail, `create_topic` writes the checkpoints before a topic of the
        // same name can inherit these entries.
        let _ = write_checkpoints(&topics, &self.ctx.checkpoints);
        drop(topics);
        if name == OFFSETS_TOPIC {
            // Not under the topics lock: loading the offsets takes the coordinator's lock
            // first, then the topics lock.
            self.groups.forget_offsets_topic();
        }
        Ok(())
    }

    /// Flushes every partition of every topic, then writes the checkpoint files, so that
    /// recovery after a crash starts from here. Topics deleted while it runs are skipped.
    ///
    /// # Errors
    /// The first I/O error.
    pub fn flush(&self) -> Result<()> {
        let topics = self.topics.read().clone();
        for (name, topic) in &topics {
            if let Err(e) = topic.flush() {
                // A topic deleted under the flush fails with `Closed` (or an error from its
                // removed directory): it has nothing left to flush.
                let deleted = !self
                    .topics
                    .read()
                    .get(name)
                    .is_some_and(|t| t.same_as(topic));
                if !deleted {
                    return Err(e);
                }
            }
        }
        // Under the topics lock: a topic deleted meanwhile must not come back into the
        // files (its partitions would inherit its offsets if created again).
        write_checkpoints(&self.topics.read(), &self.ctx.checkpoints)
    }

    /// Enforces retention on every partition now (see [`Partition::enforce_retention`]).
    /// A partition that fails is reported in the result and does not stop the others.
    pub fn enforce_retention(&self) -> MaintenanceReport {
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let mut report = MaintenanceReport::default();
        enforce_retention(&topics, &mut report);
        report
    }

    /// Runs a compaction pass on every partition of a compacted topic that needs one (see
    /// [`Partition::compact`]). A partition that fails is reported in the result and does
    /// not stop the others.
    pub fn compact(&self) -> MaintenanceReport {
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let mut report = MaintenanceReport::default();
        compact(&topics, &mut report);
        report
    }

    /// What the background maintenance did last: retention and compaction run on two
    /// threads of their own (so that retention never waits behind compaction), and this
    /// merges their last passes — the retention fields come from the retention thread's
    /// last pass, the compaction fields from the cleaner thread's, and the failures are
    /// those of both. `None` until one of them has finished a pass.
    pub fn last_maintenance(&self) -> Option<MaintenanceReport> {
        self.last_maintenance.lock().merged()
    }

    /// A consumer of every partition of `topic`, on its own (no group): positions start
    /// per `config.reset` and are not committed. It has nothing to auto-commit, so its
    /// [`Consumer::config`] says `auto_commit: None` whatever `config` said.
    ///
    /// ```
    /// # fn main() -> seglog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use seglog::{ConsumerConfig, OffsetReset, Record, Store, TopicConfig};
    /// let store = Store::open(dir.path())?;
    /// let topic = store.create_topic("events", TopicConfig::default())?;
    /// let mut consumer =
    ///     store.consumer("events", ConsumerConfig::default().reset(OffsetReset::Earliest))?;
    /// topic.send(Record::new("hello"))?;
    /// let records = consumer.poll(100, Duration::from_secs(1))?;
    /// assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    /// assert_eq!(consumer.config().auto_commit, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn consumer(&self, topic: &str, config: ConsumerConfig) -> Result<Consumer> {
        self.consumer_of_topics([topic], config)
    }

    /// A consumer of some partitions of `topic`, on its own (Kafka's `assign`); as
    /// [`Store::consumer`] otherwise.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`].
    pub fn consumer_of(
        &self,
        topic: &str,
        partitions: &[u32],
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        let topic = self.topic(topic)?;
        for &p in partitions {
            topic.partition(p)?;
        }
        Ok(Consumer::standalone(
            vec![(topic, partitions.to_vec())],
            config,
        ))
    }

    /// A consumer of every partition of each of `topics`, on its own (no group); as
    /// [`Store::consumer`] otherwise. Its records say their topic
    /// ([`ConsumerRecord::topic`](crate::ConsumerRecord::topic)); calls that name a
    /// partition take it with its topic (`("events", 0)` or a
    /// [`TopicPartition`](crate::TopicPartition)). A topic named twice is read once.
    ///
    /// ```
    /// # fn main() -> seglog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use seglog::{ConsumerConfig, OffsetReset, Record, Store, TopicConfig};
    /// let store = Store::open(dir.path())?;
    /// let clicks = store.create_topic("clicks", TopicConfig::default())?;
    /// let views = store.create_topic("views", TopicConfig::default())?;
    /// let config = ConsumerConfig::default().reset(OffsetReset::Earliest);
    /// let mut consumer = store.consumer_of_topics(["clicks", "views"], config)?;
    /// clicks.send(Record::new("c"))?;
    /// views.send(Record::new("v"))?;
    /// let mut got = Vec::new();
    /// while got.len() < 2 {
    ///     got.extend(consumer.poll(100, Duration::from_secs(1))?);
    /// }
    /// consumer.seek(("views", 0), 0)?;
    /// assert!(got.iter().any(|r| &*r.topic == "views"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidConfig`] for no topics.
    pub fn consumer_of_topics<S: AsRef<str>>(
        &self,
        topics: impl IntoIterator<Item = S>,
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        let assigned = self
            .distinct_topics(topics)?
            .into_iter()
            .map(|t| {
                let all = (0..t.partition_count()).collect();
                (t, all)
            })
            .collect();
        Ok(Consumer::standalone(assigned, config))
    }

    /// A consumer of the given partitions of one or several topics, on its own (Kafka's
    /// `assign(Collection<TopicPartition>)`); as [`Store::consumer`] otherwise.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`]; [`Error::InvalidConfig`] for
    /// no partitions.
    pub fn consumer_of_partitions(
        &self,
        partitions: &[crate::TopicPartition],
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        let mut assigned: Vec<(Topic, Vec<u32>)> = Vec::new();
        for tp in partitions {
            let i = match assigned.iter().position(|(t, _)| t.name() == &*tp.topic) {
                Some(i) => i,
                None => {
                    assigned.push((self.topic(&tp.topic)?, Vec::new()));
                    assigned.len() - 1
                }
            };
            let (topic, parts) = &mut assigned[i];
            topic.partition(tp.partition)?;
            if !parts.contains(&tp.partition) {
                parts.push(tp.partition);
            }
        }
        if assigned.is_empty() {
            return Err(Error::config(
                "partitions",
                "none",
                "at least one partition to consume",
            ));
        }
        Ok(Consumer::standalone(assigned, config))
    }

    /// The topics of `names`, each once; at least one.
    fn distinct_topics<S: AsRef<str>>(
        &self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Topic>> {
        let mut topics: Vec<Topic> = Vec::new();
        for name in names {
            let name = name.as_ref();
            if !topics.iter().any(|t| t.name() == name) {
                topics.push(self.topic(name)?);
            }
        }
        if topics.is_empty() {
            return Err(Error::config(
                "topics",
                "none",
                "at least one topic to consume",
            ));
        }
        Ok(topics)
    }

    /// Joins the consumer group `group` on `topic`: the group's members (in this store)
    /// share the topic's partitions, each partition owned by one member and reassigned
    /// when a member joins or leaves (dropping or closing its [`Consumer`]); each record
    /// goes to one member. A partition starts at the group's committed offset (kept in
    /// the internal topic [`OFFSETS_TOPIC`], created on first use), else per
    /// `config.reset`; a partition that moves continues where its last owner stopped.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty group name or one over 32,767 bytes;
    /// [`Error::UnknownTopic`]; errors opening or reading the offsets topic.
    pub fn join_group(&self, group: &str, topic: &str, config: ConsumerConfig) -> Result<Consumer> {
        self.join_group_topics(group, [topic], config)
    }

    /// Joins the consumer group `group` on each of `topics` (Kafka's `subscribe` to
    /// several topics), as [`Store::join_group`] does for one. The member belongs to the
    /// group of each topic, and each topic's partitions are spread over that topic's
    /// members on their own: the assignor (range or round-robin) runs per topic, as
    /// Kafka's `RangeAssignor` does (unlike Kafka's `RoundRobinAssignor`, which deals the
    /// partitions of all topics together). A topic named twice is joined once.
    ///
    /// # Errors
    /// As [`Store::join_group`]; [`Error::InvalidConfig`] for no topics.
    pub fn join_group_topics<S: AsRef<str>>(
        &self,
        group: &str,
        topics: impl IntoIterator<Item = S>,
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        // Kafka's strings are int16-length-prefixed (the offsets topic's keys).
        if group.is_empty() || group.len() > i16::MAX as usize {
            return Err(Error::config(
                "group",
                format!("{} bytes", group.len()),
                format!("a name of 1..={} bytes", i16::MAX),
            ));
        }
        let topics = self.distinct_topics(topics)?;
        drop(self.groups.committed(|| self.offsets_topic())?);
        let groups = topics
            .iter()
            .map(|t| self.groups.group(group, t, config.assignor))
            .collect();
        Ok(Consumer::member(
            group,
            groups,
            Arc::clone(&self.groups),
            self.config.clock.clone(),
            config,
        ))
    }

    /// The offsets `group` committed on `topic`, by partition.
    ///
    /// # Errors
    /// Errors opening or reading the offsets topic.
    pub fn committed_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>> {
        let committed = self.groups.committed(|| self.offsets_topic())?;
        Ok(crate::consumer::committed_of(&committed, group, topic))
    }

    /// The offsets `group` committed on `topic` with the metadata strings committed beside
    /// them ([`Consumer::commit_with_metadata`]), by partition.
    ///
    /// # Errors
    /// Errors opening or reading the offsets topic.
    pub fn committed_with_metadata(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<BTreeMap<u32, OffsetAndMetadata>> {
        let committed = self.groups.committed(|| self.offsets_topic())?;
        Ok(crate::consumer::committed_with_metadata_of(
            &committed, group, topic,
        ))
    }

    /// The lag of `group` on every partition of `topic`: log end offset minus the
    /// committed offset.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; errors reading the offsets topic.
    pub fn group_lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>> {
        let t = self.topic(topic)?;
        let committed = self.committed_offsets(group, topic)?;
        Ok(t.partitions()
            .iter()
            .map(|p| {
                let c = committed.get(&p.number()).copied();
                let end = p.log_end_offset();
                PartitionLag {
                    partition: p.number(),
                    log_end_offset: end,
                    committed: c,
                    lag: end.saturating_sub(c.unwrap_or(p.log_start_offset())),
                }
            })
            .collect())
    }

    /// The offsets topic, created (compacted, one partition) when missing.
    fn offsets_topic(&self) -> Result<Topic> {
        match self.topic(OFFSETS_TOPIC) {
            Ok(t) => Ok(t),
            Err(Error::UnknownTopic(_)) => {
                let config = TopicConfig::default()
                    .cleanup_policy(crate::CleanupPolicy::Compact)
                    .segment_bytes(100 << 20)
                    .retention_ms(None);
                match self.create_topic_as(OFFSETS_TOPIC, config) {
                    Err(Error::TopicExists(_)) => self.topic(OFFSETS_TOPIC),
                    r => r,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// True when the last shutdown was clean (the marker written by [`Store::close`] was
    /// there at open): nothing was recovered.
    pub fn opened_clean(&self) -> bool {
        self.ctx.clean
    }

    /// Flushes and closes every partition, then releases the lock. Dropping a `Store` does
    /// the same but cannot report errors.
    ///
    /// # Errors
    /// The first error; the lock is released regardless.
    pub fn close(mut self) -> Result<()> {
        self.close_all()
    }

    /// Ends the store the way a crash (`SIGKILL`, power cut) would, for tests: the
    /// background thread stops and the lock is released, but nothing is flushed, closed or
    /// checkpointed, and no clean-shutdown marker is written. Handles still held fail with
    /// [`Error::Closed`] on writes. Built with the `fault-injection` feature.
    ///
    /// The page cache keeps what was written, as after a process crash; to model a power
    /// cut, a test then cuts the files back to what was durable.
    #[cfg(feature = "fault-injection")]
    pub fn simulate_crash(mut self) {
        self.closed = true;
        if let Some(f) = self.flusher.take() {
            f.stop();
        }
        if let Some(m) = self.maintainer.take() {
            m.stop();
        }
        for t in self.topics.read().values() {
            for p in t.partitions() {
                p.mark_closed();
            }
        }
    }

    fn close_all(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if let Some(f) = self.flusher.take() {
            f.stop();
        }
        // A compaction pass in the cleaner thread stops early once its partition is
        // closing.
        for t in self.topics.read().values() {
            t.partitions().iter().for_each(Partition::begin_close);
        }
        if let Some(m) = self.maintainer.take() {
            m.stop();
        }
        let mut first = Ok(());
        let topics = self.topics.read();
        for t in topics.values() {
            for p in t.partitions() {
                if let Err(e) = p.close() {
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        // Every partition is flushed: the recovery points are the log end offsets, and the
        // marker tells the next open that nothing needs checking. Not after a failure: the
        // next open then recovers.
        first?;
        write_checkpoints(&topics, &self.ctx.checkpoints)?;
        crate::fs::write_atomic(&self.dir.join(CLEAN_SHUTDOWN_FILE), b"")
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close_all();
    }
}

/// Writes both checkpoint files from the partitions' durable offsets (recovery points)
/// and log start offsets. The values are read under the checkpoint lock, so a truncation
/// lowering a recovery point cannot be overwritten by an older value.
fn write_checkpoints(topics: &BTreeMap<String, Topic>, checkpoints: &Checkpoints) -> Result<()> {
    let mut guard = checkpoints.lock();
    let mut recovery_points = Offsets::new();
    let mut log_starts = Offsets::new();
    for (name, topic) in topics {
        for (i, p) in topic.partitions().iter().enumerate() {
            let key = (name.clone(), i as u32);
            recovery_points.insert(key.clone(), p.durable_offset());
            log_starts.insert(key, p.log_start_offset());
        }
    }
    guard.retain_cleaner(&recovery_points)?;
    guard.write(recovery_points, log_starts)
}
