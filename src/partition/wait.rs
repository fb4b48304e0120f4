//! Waiting for durability without blocking a thread (feature `async`): a future that waits
//! for the durable offset to pass a point, and a flush whose fsyncs run on seglog's own
//! flush thread while the caller's task awaits.

use std::sync::{mpsc, Arc, OnceLock};

use super::Partition;
use crate::error::{Error, Result};
use crate::notify::{Completed, Completion};

impl Partition {
    /// Waits until every offset below `end` is durable, without flushing: a flush by the
    /// topic's [`FlushPolicy`](crate::FlushPolicy), the store's flusher,
    /// [`Partition::flush`] or [`Partition::flush_async`] from elsewhere must cover it. The
    /// wait is woken by the flush (no polling, no thread blocked).
    ///
    /// # Errors
    /// [`Error::Poisoned`] when a flush failed, [`Error::Closed`] when the partition closed
    /// first.
    pub async fn wait_durable(&self, end: u64) -> Result<()> {
        let notify = &*self.inner.notify;
        loop {
            let seen = notify.seq();
            if self.durable_offset() >= end {
                return Ok(());
            }
            self.check_open()?;
            notify.changed(seen).await;
        }
    }

    /// Makes every record appended before the call durable, as [`Partition::flush`]; the
    /// fsyncs run on seglog's flush thread (one per process, started on first use), and
    /// the caller awaits them: no runtime thread blocks. Concurrent flushes of one
    /// partition share fsyncs (group commit).
    ///
    /// # Errors
    /// As [`Partition::flush`].
    pub async fn flush_async(&self) -> Result<()> {
        self.check_open()?;
        let target = self.log_end_offset();
        if self.durable_offset() >= target {
            return Ok(());
        }
        let done = Arc::new(Completion::default());
        let job = Job {
            partition: self.clone(),
            target,
            done: Arc::clone(&done),
        };
        flusher()?
            .send(job)
            .map_err(|_| Error::Closed("seglog-async-flush thread".into()))?;
        Completed::new(Arc::clone(&done)).await;
        match done.get() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(e.duplicate()),
            None => unreachable!("Completed is ready once set"),
        }
    }
}

/// A flush for the flush thread to run.
struct Job {
    partition: Partition,
    target: u64,
    done: Arc<Completion<Result<()>>>,
}

/// The flush thread's queue, starting the thread on first use.
fn flusher() -> Result<&'static mpsc::Sender<Job>> {
    static FLUSHER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    if let Some(tx) = FLUSHER.get() {
        return Ok(tx);
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("seglog-async-flush".into())
        .spawn(move || flush_loop(rx))
        .map_err(|e| Error::io("spawn", "seglog-async-flush thread", e))?;
    // Two first uses at once: one thread's sender wins, the other thread ends when its
    // sender (dropped here) is gone.
    Ok(FLUSHER.get_or_init(|| tx))
}

/// Runs queued flushes: each round takes every job queued, and flushes the partitions
/// concurrently, each once, to the furthest target asked.
fn flush_loop(rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let mut targets: Vec<(Partition, u64)> = Vec::new();
        for j in &jobs {
            match targets.iter_mut().find(|(p, _)| p.same(&j.partition)) {
                Some((_, t)) => *t = (*t).max(j.target),
                None => targets.push((j.partition.clone(), j.target)),
            }
        }
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let running: Vec<_> = targets
                .iter()
                .map(|(p, t)| s.spawn(move || p.flush_to(*t)))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Closed("a panicked flush".into())))
                })
                .collect()
        });
        for j in jobs {
            let at = targets
                .iter()
                .position(|(p, _)| p.same(&j.partition))
                .expect("every job's partition is a target");
            j.done.complete(match &results[at] {
                Ok(()) => Ok(()),
                Err(e) => Err(e.duplicate()),
            });
        }
    }
}
