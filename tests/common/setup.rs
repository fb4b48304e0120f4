//! Stores and topics as the tests set them up.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{Partition, Store, StoreConfig, TopicConfig};

use super::ManualClock;

/// A store on `clock` without background maintenance: retention and compaction run only
/// when the test asks.
pub fn store_config(clock: &Arc<ManualClock>) -> StoreConfig {
    StoreConfig::default()
        .clock(clock.clone())
        .maintenance_interval(None)
}

/// Opens `dir` with [`store_config`].
pub fn open(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::open_with(dir, store_config(clock)).unwrap()
}

/// Creates `topic` with `cfg` and returns its partition 0.
pub fn create(store: &Store, topic: &str, cfg: TopicConfig) -> Partition {
    store
        .create_topic(topic, cfg)
        .unwrap()
        .partition(0)
        .unwrap()
        .clone()
}

/// Partition 0 of `topic`.
pub fn partition(store: &Store, topic: &str) -> Partition {
    nth_partition(store, topic, 0)
}

/// Partition `n` of `topic`.
pub fn nth_partition(store: &Store, topic: &str, n: u32) -> Partition {
    store.topic(topic).unwrap().partition(n).unwrap().clone()
}

/// Opens `dir` on `clock` with the background maintenance thread running every 10 ms.
pub fn open_maintained(dir: &Path, clock: &Arc<ManualClock>) -> Store {
    let cfg = store_config(clock).maintenance_interval(Some(Duration::from_millis(10)));
    Store::open_with(dir, cfg).unwrap()
}

/// Waits until `cond` holds, polling; panics naming `what` after `limit` (a hang guard,
/// never a timing assertion: `limit` is far above the expected wait).
pub fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
