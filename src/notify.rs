//! Wakes readers that wait for new data (tailing consumers) when a writer appends or a
//! flush makes data durable. One per topic: a consumer of several partitions waits once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// A change counter with a condition variable. Writers bump the counter and wake waiters
/// only when there are some, so an append with nobody waiting costs two atomic operations.
#[derive(Debug, Default)]
pub(crate) struct Notify {
    seq: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Notify {
    /// Something changed: wake every waiter.
    pub(crate) fn notify(&self) {
        // SeqCst pairs with `wait`: either the waiter sees the new count before it
        // sleeps, or this sees the waiter and wakes it under the lock it sleeps with.
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _locked = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// The change counter: read it before checking for data, then `wait` with it.
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Waits until the counter differs from `seen` or `deadline` passes (`None`: no
    /// deadline); true when it changed.
    pub(crate) fn wait(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut locked = self.lock.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let changed = loop {
            if self.seq() != seen {
                break true;
            }
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut locked, d).timed_out() {
                        break self.seq() != seen;
                    }
                }
                None => self.cv.wait(&mut locked),
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        changed
    }
}
