//! The store's cap on open segment files ([`StoreConfig::max_open_files`](crate::StoreConfig)),
//! shared by all its partitions.
//!
//! Each segment has two parts that hold descriptors and maps, opened on demand and closed
//! least-recently-used:
//!
//! - the **log**: the `.log` descriptor and its read mapping (counted 1: one descriptor,
//!   at most one map);
//! - the **indexes**: `.index` and `.timeindex`, mapped (counted 2). A sealed segment's
//!   index files are closed right after they are mapped (a map stays valid after its
//!   descriptor is closed), so they cost two maps and no descriptor; the active segment
//!   keeps both descriptors (appends write and extend the files).
//!
//! A part counts the larger of its descriptors and its maps, so the sum of the counts
//! bounds both the store's segment descriptors and its segment maps.
//!
//! A segment in use is *pinned* and never closed: the active segment always (it counts
//! against the cap), and any segment while an operation (a read, a lookup, a flush, a
//! truncation, recovery) runs on it. A reader also holds its own reference (`Arc`) to the
//! open `.log`, so closing only drops the cache's reference and the file stays valid until
//! the reader is done. When every open part is pinned, opening one more exceeds the cap:
//! with more partitions than about a third of the cap (their active segments alone), or
//! transiently with many concurrent readers.
//!
//! Recency is a tick stored by each use without a lock; the victim search (under the cache
//! lock, only when the cap is reached) scans the open parts for the oldest unpinned ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// A part of a segment that the cache opens and closes as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// The `.log` file (descriptor and read mapping).
    Log = 0,
    /// The `.index` and `.timeindex` files.
    Indexes = 1,
}

impl Part {
    /// What the part counts against the cap: the larger of its descriptors and maps.
    pub(crate) fn charge(self) -> usize {
        match self {
            Part::Log => 1,
            Part::Indexes => 2,
        }
    }
}

/// Something whose parts the cache can close.
pub(crate) trait Evict: Send + Sync {
    /// The tick of the last use of `part`.
    fn last_use(&self, part: Part) -> u64;
    /// Closes `part` unless it is pinned; true when it was closed. Called with the cache
    /// lock held: must not block on anything that may wait for the cache.
    fn evict(&self, part: Part) -> bool;
}

struct Entry {
    owner: Weak<dyn Evict>,
    charge: usize,
}

#[derive(Default)]
struct State {
    /// Sum of the charges of the open parts.
    used: usize,
    /// The largest `used` seen (for tests and tuning).
    peak: usize,
    entries: HashMap<(u64, Part), Entry>,
}

/// The open parts of a store's segments, with their least-recently-used order. See the
/// module docs.
pub(crate) struct OpenFiles {
    cap: usize,
    tick: AtomicU64,
    next_id: AtomicU64,
    state: Mutex<State>,
}

impl std::fmt::Debug for OpenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("OpenFiles")
            .field("cap", &self.cap)
            .field("used", &st.used)
            .field("peak", &st.peak)
            .finish()
    }
}

impl OpenFiles {
    /// A cache allowing `cap` open files (see the module docs for what counts).
    pub(crate) fn new(cap: usize) -> Arc<OpenFiles> {
        Arc::new(OpenFiles {
            cap,
            tick: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A fresh owner id.
    pub(crate) fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The current tick (a use stores it as the part's last use).
    pub(crate) fn tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// The part `(id, part)` of `owner` was opened: it is counted, and the least recently
    /// used unpinned parts of others are closed while the count exceeds the cap.
    pub(crate) fn opened(&self, id: u64, part: Part, owner: Weak<dyn Evict>) {
        // Owners upgraded during the search are dropped after the lock is released: a last
        // reference dropped here would call `closed` and wait for the lock we hold.
        let mut upgraded = Vec::new();
        {
            let mut st = self.state.lock();
            let charge = part.charge();
            let old = st
                .entries
                .insert((id, part), Entry { owner, charge })
                .map_or(0, |e| e.charge);
            st.used = st.used + charge - old;
            if st.used > self.cap {
                self.evict_lru(&mut st, (id, part), &mut upgraded);
            }
            st.peak = st.peak.max(st.used);
        }
        drop(upgraded);
    }

    /// The part `(id, part)` was closed by its owner (deleted, or dropped).
    pub(crate) fn closed(&self, id: u64, part: Part) {
        let mut st = self.state.lock();
        if let Some(e) = st.entries.remove(&(id, part)) {
            st.used -= e.charge;
        }
    }

    fn evict_lru(&self, st: &mut State, keep: (u64, Part), upgraded: &mut Vec<Arc<dyn Evict>>) {
        let mut candidates = Vec::with_capacity(st.entries.len());
        let mut gone = Vec::new();
        for (&key, e) in &st.entries {
            if key == keep {
                continue;
            }
            match e.owner.upgrade() {
                Some(owner) => {
                    candidates.push((owner.last_use(key.1), key, upgraded.len()));
                    upgraded.push(owner);
                }
                None => gone.push(key),
            }
        }
        for key in gone {
            if let Some(e) = st.entries.remove(&key) {
                st.used -= e.charge;
            }
        }
        candidates.sort_unstable_by_key(|&(tick, _, _)| tick);
        for (_, key, owner) in candidates {
            if st.used <= self.cap {
                break;
            }
            if upgraded[owner].evict(key.1) {
                if let Some(e) = st.entries.remove(&key) {
                    st.used -= e.charge;
                }
            }
        }
        if st.used > self.cap {
            tracing::debug!(
                used = st.used,
                cap = self.cap,
                "every open segment file is in use: the cap is exceeded until some are released"
            );
        }
    }

    /// The count of open files now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.state.lock().used
    }
}

/// Descriptors kept out of the default cap for the store's other files (the lock file,
/// checkpoint and metadata writes, directory fsyncs, compaction output, transient opens).
const RESERVE: u64 = 32;
/// The smallest cap accepted, and the default's floor.
pub(crate) const MIN_OPEN_FILES: usize = 16;
/// The default's ceiling: a map counts as much as a descriptor, and Linux allows 65,530
/// maps per process by default (`vm.max_map_count`).
const MAX_DEFAULT: u64 = 32_768;

/// The default [`StoreConfig::max_open_files`](crate::StoreConfig): half of the process's
/// soft `RLIMIT_NOFILE` (the rest is the host program's) less a reserve for the store's
/// other files, at least [`MIN_OPEN_FILES`], at most 32,768.
pub(crate) fn default_max_open_files() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    (soft / 2)
        .saturating_sub(RESERVE)
        .clamp(MIN_OPEN_FILES as u64, MAX_DEFAULT) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// An owner with both parts, counting its closes.
    struct Fake {
        last: [AtomicU64; 2],
        pinned: std::sync::atomic::AtomicBool,
        closes: AtomicUsize,
    }

    impl Evict for Fake {
        fn last_use(&self, part: Part) -> u64 {
            self.last[part as usize].load(Ordering::Relaxed)
        }
        fn evict(&self, _: Part) -> bool {
            if self.pinned.load(Ordering::Relaxed) {
                return false;
            }
            self.closes.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    fn fake(files: &OpenFiles) -> Arc<Fake> {
        let t = files.tick();
        Arc::new(Fake {
            last: [AtomicU64::new(t), AtomicU64::new(t)],
            pinned: Default::default(),
            closes: AtomicUsize::new(0),
        })
    }

    #[test]
    fn least_recently_used_unpinned_parts_are_closed_at_the_cap() {
        let files = OpenFiles::new(6);
        let owners: Vec<Arc<Fake>> = (0..3).map(|_| fake(&files)).collect();
        owners[0].pinned.store(true, Ordering::Relaxed);
        for (i, o) in owners.iter().enumerate() {
            let weak: Weak<dyn Evict> = Arc::downgrade(o) as Weak<dyn Evict>;
            files.opened(i as u64, Part::Log, weak.clone());
            files.opened(i as u64, Part::Indexes, weak);
        }
        // 3 × 3 > 6: the oldest unpinned owner (1) goes, the pinned one (0) stays.
        assert_eq!(files.used(), 6);
        assert_eq!(owners[0].closes.load(Ordering::Relaxed), 0);
        assert_eq!(owners[1].closes.load(Ordering::Relaxed), 2);
        assert_eq!(owners[2].closes.load(Ordering::Relaxed), 0);
        // Everything pinned: the cap is exceeded rather than a file closed under a user.
        owners[2].pinned.store(true, Ordering::Relaxed);
        let extra = fake(&files);
        files.opened(9, Part::Indexes, Arc::downgrade(&extra) as Weak<dyn Evict>);
        assert_eq!(files.used(), 8);
        files.closed(9, Part::Indexes);
        assert_eq!(files.used(), 6);
        // Owners that are gone stop counting at the next search.
        drop(owners);
        files.opened(10, Part::Indexes, Arc::downgrade(&extra) as Weak<dyn Evict>);
        assert_eq!(files.used(), 2);
    }

    #[test]
    fn the_default_follows_the_descriptor_limit() {
        let cap = default_max_open_files();
        assert!((MIN_OPEN_FILES..=MAX_DEFAULT as usize).contains(&cap));
        if let Some(soft) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
            assert!(cap as u64 <= (soft / 2).max(MIN_OPEN_FILES as u64));
        }
    }
}
