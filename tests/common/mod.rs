//! Helpers shared by the test binaries (each includes this module with `mod common;`):
//! a manual clock and the fault lock (here), store and topic setup ([`setup`]), reading a
//! partition back ([`read`]), deterministic generators ([`rng`]), re-running the test
//! binary as a child process ([`child`]), the record model of the model-based tests
//! ([`model`]), data-directory files ([`files`]) and a Kafka broker and client ([`kafka`]).
#![allow(dead_code, unused_imports)] // each test binary uses its own part of these

pub mod child;
pub mod files;
pub mod fixtures;
pub mod kafka;
pub mod model;
pub mod read;
pub mod rng;
pub mod setup;

pub use files::{copy_dir, flip, log_files, partition_dir, remove_files};
pub use read::{read_all, read_dense, try_read_range};
pub use rng::{Rng, XorShift};
pub use setup::{create, nth_partition, open, open_maintained, partition, store_config, wait_for};

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use seglog::Clock;

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(pub AtomicI64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn at(ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }

    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time on by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Serializes tests against planned faults, which are process-wide.
static FAULTS: RwLock<()> = RwLock::new(());

/// For tests that plan no fault: they may run together, never alongside one that does.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    FAULTS.read().unwrap_or_else(|e| e.into_inner())
}

/// For tests that plan faults: alone in the process, starting with no plan.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    let guard = FAULTS.write().unwrap_or_else(|e| e.into_inner());
    seglog::faults::clear();
    guard
}
