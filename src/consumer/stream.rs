//! A consumer's async surface (feature `async`): [`Consumer::poll_async`],
//! [`Consumer::commit_async`] and [`Consumer::stream`]. They wait on the same change
//! counters as the blocking `poll`, with the task's waker instead of a parked thread, and
//! the offsets topic's fsync runs on seglog's flush thread: no runtime thread blocks on a
//! condition variable or an fsync.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::controls::{Armed, WakeupState};
use super::{Consumer, ConsumerRecord, Flush};
use crate::error::Result;
use crate::notify::AnyChanged;
use crate::partition::Partition;

/// Records a [`RecordStream`] asks for per poll (Kafka's `max.poll.records` default).
const STREAM_POLL_RECORDS: usize = 500;

impl Consumer {
    /// As [`Consumer::poll`], awaiting records instead of blocking: ready once any are
    /// available (appends, and flushes for durable reads, wake the task). No timeout: wrap
    /// it in your runtime's (`tokio::time::timeout`); dropping the future loses nothing
    /// (positions move only when records are returned). An auto-commit that falls due is
    /// written here and its flush awaited.
    ///
    /// # Errors
    /// As [`Consumer::poll`].
    pub async fn poll_async(&mut self, max_records: usize) -> Result<Vec<ConsumerRecord>> {
        self.check_not_in_listener("poll_async")?;
        loop {
            let seqs = self.seqs();
            if self.prepare(Flush::Later)? {
                if let Some(offsets) = self.offsets_partition()? {
                    offsets.flush_async().await?;
                }
            }
            let (records, moved) = self.fetch(max_records.max(1))?;
            if !records.is_empty() {
                self.dirty = true;
                return Ok(records);
            }
            if !moved {
                self.changed(&seqs).await;
            }
        }
    }

    /// As [`Consumer::commit`], awaiting the offsets topic's flush instead of blocking on
    /// it: durable when the future completes.
    ///
    /// # Errors
    /// As [`Consumer::commit`].
    pub async fn commit_async(&mut self) -> Result<()> {
        self.commit_positions(&BTreeMap::new(), Flush::Later)?;
        match self.offsets_partition()? {
            Some(offsets) => offsets.flush_async().await,
            None => Ok(()),
        }
    }

    /// The records of the assigned partitions as a [`futures_core::Stream`], one at a time,
    /// as [`Consumer::poll_async`] returns them (it polls up to 500 at a time; dropping
    /// the stream gives back those not handed out yet, which the consumer reads next).
    /// The stream tails: it never ends, and waits without blocking while there is nothing
    /// new. An error is an item; the stream goes on after it.
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream {
            state: State::Idle(Some(self)),
            ready: VecDeque::new(),
        }
    }

    /// The partition of `__consumer_offsets` a member commits to.
    fn offsets_partition(&self) -> Result<Option<Partition>> {
        let Some(m) = &self.member else {
            return Ok(None);
        };
        let offsets = m.coordinator.loaded()?.topic.partition(0)?.clone();
        Ok(Some(offsets))
    }

    /// Ready once a topic's counter differs from `seqs`, or on a wakeup.
    fn changed<'a>(&'a self, seqs: &[u64]) -> Changed<'a> {
        let wakeup = &*self.wakeup;
        let watched = self.sources.iter().zip(seqs);
        Changed {
            any: AnyChanged::new(
                watched.map(|(s, &seen)| (s.topic.notify(), seen)),
                Requested(wakeup),
            ),
            wakeup,
            armed: None,
        }
    }
}

/// The stop test of a consumer's wait: a wakeup was requested.
struct Requested<'a>(&'a WakeupState);

impl crate::notify::Stop for Requested<'_> {
    fn stop(&self) -> bool {
        self.0.requested()
    }
}

/// The wait of [`Consumer::poll_async`]: the topics' counters, and the consumer's wakeup
/// (armed with the task's waker before each look, so a wakeup is never missed).
struct Changed<'a> {
    any: AnyChanged<'a, Requested<'a>>,
    wakeup: &'a WakeupState,
    armed: Option<Armed<'a>>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.armed = None;
        this.armed = Some(this.wakeup.arm(cx.waker()));
        Pin::new(&mut this.any).poll(cx)
    }
}

/// A poll under way, owning the consumer until it gives it back with the records.
type Polling<'a> =
    Pin<Box<dyn Future<Output = (&'a mut Consumer, Result<Vec<ConsumerRecord>>)> + Send + 'a>>;

enum State<'a> {
    Idle(Option<&'a mut Consumer>),
    Polling(Polling<'a>),
}

/// The records of a consumer as a [`futures_core::Stream`] (feature `async`): made by
/// [`Consumer::stream`], which it borrows.
pub struct RecordStream<'a> {
    state: State<'a>,
    /// Records polled and not handed out yet.
    ready: VecDeque<ConsumerRecord>,
}

impl std::fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("polling", &matches!(self.state, State::Polling(_)))
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl Drop for RecordStream<'_> {
    /// Records polled but not handed out go back: each partition's position returns to
    /// the first of them, so the consumer reads them next and a commit does not pass them.
    /// (A member's partition that a rebalance took away meanwhile cannot be sought: the
    /// next owner goes on from where this member's poll left it.)
    fn drop(&mut self) {
        let State::Idle(Some(c)) = &mut self.state else {
            return;
        };
        let mut first: Vec<(&str, u32, u64)> = Vec::new();
        // In offset order per partition: the first seen is the earliest.
        for r in &self.ready {
            if !first
                .iter()
                .any(|&(t, p, _)| t == &*r.topic && p == r.partition)
            {
                first.push((&r.topic, r.partition, r.offset));
            }
        }
        for (topic, partition, offset) in first {
            let _ = c.seek((topic, partition), offset);
        }
    }
}

impl futures_core::Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(r) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            match &mut this.state {
                State::Idle(consumer) => {
                    let c = consumer.take().expect("an idle stream holds its consumer");
                    this.state = State::Polling(Box::pin(async move {
                        let polled = c.poll_async(STREAM_POLL_RECORDS).await;
                        (c, polled)
                    }));
                }
                State::Polling(polling) => {
                    let (c, polled) = match polling.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(done) => done,
                    };
                    this.state = State::Idle(Some(c));
                    match polled {
                        Ok(records) => this.ready.extend(records),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}
