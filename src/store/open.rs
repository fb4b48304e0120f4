//! How a store is opened: "what happens at open, after a crash", for the data directory.
//! What happens to each partition is `partition/open.rs`, to each segment
//! `segment/recover.rs`.
//!
//! The open sequence (each step names its FORMAT.md paragraph). Steps 1-3 only read (and
//! create `.lock`; adoption writes `seglog-topics`), so an open that fails there has changed
//! nothing else:
//!
//! 1. **Lock** (§1.1): the directory is created if missing and its `.lock` taken, so no
//!    other store (or Kafka broker) works on it meanwhile.
//! 2. **Topics** (§1.2): `seglog-topics` is read and checked.
//! 3. **Directories** (§1): every partition-shaped directory at the root must be a
//!    partition of a listed topic, else the open fails with
//!    [`Error::UnknownDirectories`] (a Kafka broker's log dir, a lost `seglog-topics`, a
//!    directory copied in): seglog removes only what it marked for deletion. With
//!    [`StoreConfig::adopt_partition_dirs`], directories of unlisted topics are adopted
//!    instead (§1.5): their topics are added to `seglog-topics`, the first write.
//! 4. **Shutdown state** (§1.4, §1.3, §10): the clean-shutdown marker is read and removed
//!    (from now on a crash is unclean), `*.tmp` leftovers of interrupted atomic replaces at
//!    the root are removed (and the directory fsynced), and the three checkpoint files are
//!    read. A damaged recovery-point or cleaner file costs a full recovery or a re-clean,
//!    never data; a damaged log-start file is an error (records below it are deleted).
//! 5. **Deletions** (§1 "Deleting a topic"): `-delete` directories of deletions that did not
//!    commit are renamed back, the others removed, and the root fsynced.
//! 6. **Partitions** (§9): every partition of every topic is opened with one shared
//!    [`OpenContext`] (shutdown state and checkpoints).
//! 7. **Checkpoints** (§1.3, §9): rewritten with what the open found — entries of deleted
//!    partitions dropped, log start offsets as recovery clamped them.
//! 8. **Threads**: the flusher (flush policies, periodic checkpoints) and, if configured,
//!    the maintenance threads (one for retention, one for compaction) start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::topics_file::{read_topics, write_topics, TOPICS_FILE};
use super::{dirs, write_checkpoints, Background, Store};
use crate::checkpoint::{
    self, Checkpoints, Written, CLEANER_FILE, CLEAN_SHUTDOWN_FILE, LOG_START_FILE,
    RECOVERY_POINT_FILE,
};
use crate::config::{StoreConfig, TopicConfig};
use crate::consumer::Coordinator;
use crate::error::{Error, Result};
use crate::fs::DirLock;
use crate::notify::Notify;
use crate::partition::{OpenContext, Partition};
use crate::topic::Topic;

impl Store {
    /// Opens `dir` with `config`, following the sequence in the module docs.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        config.validate()?;
        // 1. Lock.
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            crate::fs::create_dir_all(&dir)?;
            // Kafka too: the new directory's entry must survive a crash with the topics
            // created in it.
            crate::fs::sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        }
        let lock = DirLock::acquire(&dir)?;
        // 2. Topics.
        let topics_file_missing = !dir.join(TOPICS_FILE).exists();
        let mut configs = read_topics(&dir)?;
        // 3. Directories. Before anything is written: a directory that is not ours must
        // find the data directory exactly as it was.
        let deletions = dirs::scan(
            &dir,
            &configs,
            topics_file_missing,
            config.adopt_partition_dirs,
        )?;
        if !deletions.adopt.is_empty() {
            // Adopted topics are listed (durably) before anything of theirs is touched.
            for (name, &partitions) in &deletions.adopt {
                tracing::info!(topic = %name, partitions, "adopting partition directories");
                let cfg = TopicConfig::default()
                    .partitions(partitions)
                    .retention_ms(None)
                    .retention_bytes(None);
                configs.insert(name.clone(), cfg);
            }
            write_topics(&dir, &configs)?;
        }
        // 4. Shutdown state.
        let ctx = read_shutdown_state(&dir, &config)?;
        // 5. Deletions. Before the partitions open: a partition renamed back is opened
        // with its data.
        dirs::finish(&dir, &deletions)?;
        // 6. Partitions.
        let mut topics = BTreeMap::new();
        for (name, cfg) in configs {
            let topic = open_topic(&ctx, &name, cfg, false)?;
            topics.insert(name, topic);
        }
        // 7. Checkpoints. The files now say exactly what this open found: entries of
        // partitions that no longer exist (a delete_topic that crashed) go, and a log start
        // offset that recovery lowered to the recovered log end is written down before
        // anything is appended past it.
        write_checkpoints(&topics, &ctx.checkpoints)?;
        // 8. Threads.
        let topics = Arc::new(RwLock::new(topics));
        let flusher = Background::flusher(
            Arc::clone(&topics),
            Arc::clone(&ctx.checkpoints),
            config.checkpoint_interval,
        )
        .map_err(|e| Error::io("start flusher thread for", &dir, e))?;
        let last_maintenance = Arc::default();
        let maintainer = config
            .maintenance_interval
            .map(|interval| {
                Background::maintainer(Arc::clone(&topics), interval, Arc::clone(&last_maintenance))
            })
            .transpose()
            .map_err(|e| Error::io("start maintenance threads for", &dir, e))?;
        Ok(Store {
            dir,
            config,
            topics,
            ctx,
            flusher: Some(flusher),
            maintainer,
            last_maintenance,
            groups: Arc::new(Coordinator::default()),
            closed: false,
            _lock: lock,
        })
    }
}

/// Opens every partition of topic `name` (step 4; also `create_topic`, with `fresh`).
pub(super) fn open_topic(
    ctx: &OpenContext,
    name: &str,
    cfg: TopicConfig,
    fresh: bool,
) -> Result<Topic> {
    let notify = Arc::new(Notify::default());
    let partitions = (0..cfg.partitions)
        .map(|p| Partition::open(ctx, name, p, cfg.clone(), Arc::clone(&notify), fresh))
        .collect::<Result<Vec<_>>>()?;
    Ok(Topic::new(name.to_string(), cfg, partitions, notify))
}

/// Reads the clean-shutdown marker (removing it: from now on a crash is unclean) and the
/// checkpoints, and removes temporary files an interrupted atomic write left at the root.
fn read_shutdown_state(dir: &Path, config: &StoreConfig) -> Result<OpenContext> {
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    let mut changed = false;
    if clean {
        crate::fs::remove_file(&marker)?;
        changed = true;
    }
    for name in [
        TOPICS_FILE,
        RECOVERY_POINT_FILE,
        LOG_START_FILE,
        CLEANER_FILE,
        CLEAN_SHUTDOWN_FILE,
    ] {
        let tmp = crate::fs::tmp_path(&dir.join(name));
        if tmp.exists() {
            crate::fs::remove_file(&tmp)?;
            changed = true;
        }
    }
    if changed {
        crate::fs::sync_dir(dir)?;
    }
    // Recovery points only say how much need not be checked: a damaged file costs a full
    // recovery, never data. The log start offsets are data (records below them are
    // deleted), so a damaged file is an error.
    let recovery_points = checkpoint::read(dir, RECOVERY_POINT_FILE)
        .ok()
        .flatten()
        .unwrap_or_default();
    let log_starts = checkpoint::read(dir, LOG_START_FILE)?.unwrap_or_default();
    // Compaction progress only saves work too: a damaged file means cleaning again.
    let cleaner = checkpoint::read(dir, CLEANER_FILE)
        .ok()
        .flatten()
        .unwrap_or_default();
    tracing::debug!(dir = %dir.display(), clean, "opening a store");
    let checkpoints = Arc::new(Checkpoints::new(
        dir.to_path_buf(),
        Written {
            recovery_points: recovery_points.clone(),
            log_starts: log_starts.clone(),
            cleaner: cleaner.clone(),
            ..Written::default()
        },
    ));
    Ok(OpenContext {
        root: dir.to_path_buf(),
        clock: config.clock.clone(),
        checkpoints,
        cleaner_buffer_bytes: config.cleaner_buffer_bytes,
        files: crate::files::OpenFiles::new(config.max_open_files),
        clean,
        recovery_points,
        log_starts,
        cleaner,
    })
}
