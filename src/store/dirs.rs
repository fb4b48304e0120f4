//! The subdirectories of the data directory (FORMAT.md §1): partition directories of known
//! topics, directories marked for deletion with Kafka's `-delete` names, and everything else.
//! seglog removes a directory only when it marked it for deletion itself.
//!
//! The deletion protocol (`Store::delete_topic`, finished at open):
//!
//! 1. each partition directory `<topic>-<p>` is renamed to `<topic>-<p>.<id>-delete`
//!    (Kafka's `logDeleteDirName`), then the root is fsynced;
//! 2. `seglog-topics` is rewritten without the topic: the commit point;
//! 3. the renamed directories are removed, then the root is fsynced.
//!
//! At open, a `-delete` directory of a topic that `seglog-topics` lists, whose partition
//! directory is missing, is a deletion that crashed before its commit: it is renamed back
//! (the topic stays whole). Every other `-delete` directory is a committed deletion (or
//! Kafka's own) and is removed. A partition-shaped directory of no listed topic is not
//! seglog's to remove: the open fails before changing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::topic::validate_topic_name;

/// Suffix of a directory marked for deletion (Kafka's `DeleteDirSuffix`).
const DELETE_SUFFIX: &str = "-delete";

/// Longest file name Kafka lets a `-delete` name reach (it truncates the topic).
const MAX_NAME: usize = 255;

/// Kafka's `logDeleteDirName`: `<topic>-<partition>.<32 hex digits>-delete`, the topic cut
/// short so that the name stays within 255 bytes.
pub(super) fn delete_dir_name(topic: &str, partition: u32) -> String {
    let suffix = format!("-{partition}.{}{DELETE_SUFFIX}", unique_id());
    // Topic names are ASCII: any byte count is a char boundary.
    let keep = topic.len().min(MAX_NAME - suffix.len());
    format!("{}{suffix}", &topic[..keep])
}

/// 32 hex digits that no other deletion of this or another process uses: time, process id
/// and a counter, hashed with two of std's randomly keyed hashers (no new dependency).
fn unique_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(n);
        h.write_usize(i);
        *w = h.finish();
    }
    format!("{:016x}{:016x}", words[0], words[1])
}

/// `(topic, partition digits)` of a partition-shaped name, `<valid topic name>-<digits>`.
fn parse_partition_dir(name: &str) -> Option<(&str, &str)> {
    let (topic, part) = name.rsplit_once('-')?;
    let ok = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && validate_topic_name(topic).is_ok();
    ok.then_some((topic, part))
}

/// `(topic or its truncated prefix, partition)` of a `-delete` name as Kafka makes them:
/// `<topic>-<partition>.<32 hex digits>-delete`.
fn parse_delete_dir(name: &str) -> Option<(&str, u32)> {
    let (tp, id) = name.strip_suffix(DELETE_SUFFIX)?.rsplit_once('.')?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (topic, part) = tp.rsplit_once('-')?;
    if topic.is_empty() || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, part.parse().ok()?))
}

/// What the open found at the root, before changing anything.
#[derive(Debug, Default)]
pub(super) struct RootScan {
    /// `-delete` directories of committed deletions: to remove.
    pub(super) remove: Vec<PathBuf>,
    /// `-delete` directories of deletions that did not commit, with the partition
    /// directory each is renamed back to.
    pub(super) restore: Vec<(PathBuf, PathBuf)>,
    /// With adoption on: topics of unknown partition directories, with their partition
    /// counts (the highest partition number found plus one).
    pub(super) adopt: BTreeMap<String, u32>,
}

impl RootScan {
    /// True when nothing needs doing.
    pub(super) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.restore.is_empty()
    }
}

/// Classifies the directories at the root of `dir` against the topics `seglog-topics`
/// lists (`topics`; `topics_file_missing` when there is no such file). With `adopt`,
/// partition directories of unlisted topics are to be adopted (`RootScan::adopt`). Reads
/// only.
///
/// # Errors
/// [`Error::UnknownDirectories`] naming every partition directory of no listed topic
/// partition (with `adopt`: only those of listed topics, past their partition count);
/// [`Error::InvalidTopicName`] for an internal topic's directory with `adopt`;
/// [`Error::TopicCollision`] when an adopted topic collides with another topic; I/O
/// errors listing the directory.
pub(super) fn scan(
    dir: &Path,
    topics: &BTreeMap<String, TopicConfig>,
    topics_file_missing: bool,
    adopt: bool,
) -> Result<RootScan> {
    let mut unknown = Vec::new();
    let mut adopted: BTreeMap<String, u32> = BTreeMap::new();
    let mut marked = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        // Only real directories matter (not symlinks, not files such as Kafka's
        // meta.properties): other names at the root are left alone.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some((topic, part)) = parse_partition_dir(&name) {
            let p = part.parse::<u32>().ok();
            match topics.get(topic) {
                Some(c) if p.is_some_and(|p| p < c.partitions) => {}
                None if adopt && p.is_some_and(|p| p < crate::config::MAX_PARTITIONS) => {
                    if crate::topic::is_internal(topic) {
                        return Err(Error::InvalidTopicName {
                            name: topic.to_string(),
                            reason: "a Kafka internal topic (the broker's own state) cannot be \
                                     adopted: move its partition directories out of the data \
                                     directory",
                        });
                    }
                    let n = adopted.entry(topic.to_string()).or_default();
                    *n = (*n).max(p.unwrap_or(0) + 1);
                }
                _ => unknown.push(entry.path()),
            }
        } else if let Some((prefix, p)) = parse_delete_dir(&name) {
            marked.push((entry.path(), name.len(), prefix.to_string(), p));
        }
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Err(Error::UnknownDirectories {
            dir: dir.to_path_buf(),
            directories: unknown,
            topics_file_missing,
        });
    }
    // Adopted names must not collide with each other or with the listed topics (their
    // metric names would: `a.b` and `a_b`), as `create_topic` refuses.
    for (i, a) in adopted.keys().enumerate() {
        let others = topics.keys().chain(adopted.keys().take(i));
        if let Some(b) = others.into_iter().find(|b| crate::topic::collides(a, b)) {
            return Err(Error::TopicCollision {
                name: a.to_string(),
                existing: b.to_string(),
            });
        }
    }
    let mut out = RootScan {
        adopt: adopted,
        ..RootScan::default()
    };
    let mut targets: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for (path, len, prefix, p) in marked {
        // The listed topics this name can be of (Kafka cuts long topic names short).
        let owners: Vec<&String> = topics
            .iter()
            .filter(|(t, c)| {
                p < c.partitions
                    && (**t == prefix || (len == MAX_NAME && t.starts_with(prefix.as_str())))
            })
            .map(|(t, _)| t)
            .filter(|t| !dir.join(format!("{t}-{p}")).exists())
            .collect();
        match owners.as_slice() {
            [] => out.remove.push(path),
            [t] => targets
                .entry(dir.join(format!("{t}-{p}")))
                .or_default()
                .push(path),
            _ => {
                return Err(ambiguous(&path, &owners));
            }
        }
    }
    for (target, mut from) in targets {
        if from.len() > 1 {
            from.sort();
            return Err(Error::Corrupt {
                path: target,
                position: 0,
                reason: format!(
                    "missing, and several directories marked for deletion could be it: {}; \
                     move all but the right one out of the data directory",
                    from.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        out.restore.push((from.remove(0), target));
    }
    Ok(out)
}

fn ambiguous(path: &Path, owners: &[&String]) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason: format!(
            "marked for deletion, but could be a partition of any of the topics {owners:?}; \
             move it out of the data directory, or rename it to its partition's name"
        ),
    }
}

/// Finishes what `scan` found: renames uncommitted deletions back and removes committed
/// ones, then fsyncs the root (a rename back must be durable before the partition is
/// used; a removal need not be, as it is redone at the next open).
///
/// # Errors
/// I/O errors.
pub(super) fn finish(dir: &Path, found: &RootScan) -> Result<()> {
    for (from, to) in &found.restore {
        tracing::warn!(
            dir = %from.display(),
            to = %to.display(),
            "a topic deletion did not commit: renaming its partition directory back"
        );
        crate::fs::rename(from, to)?;
    }
    for path in &found.remove {
        tracing::info!(dir = %path.display(), "removing a directory marked for deletion");
        remove_dir(path)?;
    }
    if !found.is_empty() {
        crate::fs::sync_dir(dir)?;
    }
    Ok(())
}

/// Renames the partition directories `dirs` to `-delete` names of `topic` (step 1 of the
/// protocol) and fsyncs the root. Returns `(original, marked)` pairs. On failure, renames
/// back what was renamed and returns the error: nothing is marked.
///
/// # Errors
/// I/O errors.
pub(super) fn mark_for_deletion(
    root: &Path,
    topic: &str,
    dirs: &[(u32, PathBuf)],
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut marked: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(dirs.len());
    let result = (|| {
        for (p, dir) in dirs {
            if !dir.exists() {
                continue;
            }
            let to = root.join(delete_dir_name(topic, *p));
            crate::fs::rename(dir, &to)?;
            marked.push((dir.clone(), to));
        }
        crate::fs::sync_dir(root)
    })();
    match result {
        Ok(()) => Ok(marked),
        Err(e) => {
            unmark(root, &marked);
            Err(e)
        }
    }
}

/// Renames marked directories back (`(original, marked)` pairs) after a failure before the
/// commit, best effort: what stays marked is renamed back by the next open.
pub(super) fn unmark(root: &Path, marked: &[(PathBuf, PathBuf)]) {
    for (original, to) in marked {
        if let Err(e) = crate::fs::rename(to, original) {
            tracing::error!(dir = %to.display(), error = %e, "could not rename a partition directory back; the next open will");
        }
    }
    let _ = crate::fs::sync_dir(root);
}

/// Removes the `-delete` directories named after `topic` (left by a deletion of it whose
/// removal failed after its commit), before a topic of that name is created. The root is
/// fsynced first, so that the commit they belong to is durable before they go.
///
/// # Errors
/// I/O errors.
pub(super) fn remove_marked_of(root: &Path, topic: &str) -> Result<()> {
    let entries = std::fs::read_dir(root).map_err(|e| Error::io("list", root, e))?;
    let mut marked = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", root, e))?;
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(parse_delete_dir)
            .is_some_and(|(prefix, _)| prefix == topic);
        if ours && entry.file_type().is_ok_and(|t| t.is_dir()) {
            marked.push(entry.path());
        }
    }
    if marked.is_empty() {
        return Ok(());
    }
    crate::fs::sync_dir(root)?;
    for path in &marked {
        tracing::info!(dir = %path.display(), "removing a directory of a deleted topic");
        remove_dir(path)?;
    }
    crate::fs::sync_dir(root)
}

/// Removes a directory tree; one already gone is fine.
pub(super) fn remove_dir(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    crate::fs::remove_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_names_are_kafkas() {
        let name = delete_dir_name("orders", 3);
        let (tp, rest) = name.split_once('.').unwrap();
        assert_eq!(tp, "orders-3");
        let id = rest.strip_suffix("-delete").unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parse_delete_dir(&name), Some(("orders", 3)));
        assert_ne!(delete_dir_name("orders", 3), name, "ids repeat");
        // A dotted, dashed topic name.
        let name = delete_dir_name("a.b-c", 12);
        assert_eq!(parse_delete_dir(&name), Some(("a.b-c", 12)));
    }

    #[test]
    fn long_topic_names_are_cut_to_255_bytes() {
        let topic = "t".repeat(249);
        let name = delete_dir_name(&topic, 7);
        assert_eq!(name.len(), 255);
        let (prefix, p) = parse_delete_dir(&name).unwrap();
        assert!(topic.starts_with(prefix));
        assert_eq!(p, 7);
    }

    #[test]
    fn other_names_are_not_deletions() {
        for name in [
            "orders-0",
            "orders-0-delete",
            "orders-0.xyz-delete",
            "orders-x.0123456789abcdef0123456789abcdef-delete",
            "orders-0.0123456789abcdef0123456789abcdef-future",
            "-0.0123456789abcdef0123456789abcdef-delete",
        ] {
            assert_eq!(parse_delete_dir(name), None, "{name}");
        }
    }
}
