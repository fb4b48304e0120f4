//! The consumer's controls beside `poll`: naming partitions across topics
//! ([`TopicPartition`], [`PartitionRef`]), the rebalance listener, and the wakeup handle.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;

use parking_lot::Mutex;

use super::Consumer;
use crate::error::Result;

/// A partition of a topic (Kafka's `TopicPartition`), as a consumer of several topics
/// names its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: Arc<str>,
    /// The partition's number in the topic.
    pub partition: u32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    /// `<topic>-<partition>`, as Kafka prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How a [`Consumer`] call names a partition: a bare number (`u32`) for a consumer of one
/// topic, or with its topic (`(&str, u32)`, [`TopicPartition`]) for any consumer. A bare
/// number on a consumer of several topics is refused with
/// [`Error::AmbiguousPartition`](crate::Error::AmbiguousPartition), never guessed.
pub trait PartitionRef {
    /// The topic, when named, and the partition number.
    fn topic_and_partition(&self) -> (Option<&str>, u32);
}

impl PartitionRef for u32 {
    fn topic_and_partition(&self) -> (Option<&str>, u32) {
        (None, *self)
    }
}

impl PartitionRef for (&str, u32) {
    fn topic_and_partition(&self) -> (Option<&str>, u32) {
        (Some(self.0), self.1)
    }
}

impl PartitionRef for TopicPartition {
    fn topic_and_partition(&self) -> (Option<&str>, u32) {
        (Some(&self.topic), self.partition)
    }
}

impl<T: PartitionRef + ?Sized> PartitionRef for &T {
    fn topic_and_partition(&self) -> (Option<&str>, u32) {
        (**self).topic_and_partition()
    }
}

/// Told when a group member's partitions change (Kafka's `ConsumerRebalanceListener`),
/// set with [`Consumer::set_rebalance_listener`].
///
/// **When it runs.** A group's partitions are reassigned at once when a member joins or
/// leaves; each member's listener is told from that member's own thread, inside its next
/// [`Consumer::poll`] (before that poll reads anything, and before a poll that was waiting
/// reads again), and inside [`Consumer::close`] (or the drop of the consumer). Until then
/// that poll reads neither the partitions newly assigned nor those taken away, while
/// [`Consumer::assignment`] already shows the new assignment. Calls are incremental, as
/// with Kafka's cooperative rebalancing: `on_revoked` with the partitions taken away (only
/// when there are some), then `on_assigned` with those newly given (on the first poll even
/// when none, like Kafka after each rebalance). Closing calls `on_revoked` with every
/// partition the listener was told about. A partition taken away and given back between
/// two polls is reported revoked, then assigned. Standalone consumers never call their listener.
///
/// **What it may do.** Anything with the consumer except `poll` (refused with
/// [`Error::IllegalState`](crate::Error::IllegalState)): in `on_revoked`, commit what
/// was processed of the revoked partitions with [`Consumer::commit_offsets`] (allowed for
/// them there, though another member owns them already: such a commit can move back an
/// offset the new owner committed meanwhile, so records are delivered again, never
/// skipped); in `on_assigned`, [`Consumer::seek`] or [`Consumer::pause`] the new
/// partitions (the poll that called the listener then reads from there). An error
/// returned by either method is returned by that `poll` (both methods are still called;
/// the first error wins), and the rebalance counts as told.
pub trait RebalanceListener: Send {
    /// `partitions` were taken from this member (or it is closing). Default: nothing.
    ///
    /// # Errors
    /// Whatever the listener returns; `poll` or `close` returns it.
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) -> Result<()> {
        let _ = (consumer, partitions);
        Ok(())
    }

    /// `partitions` were given to this member. Default: nothing.
    ///
    /// # Errors
    /// Whatever the listener returns; `poll` returns it.
    fn on_assigned(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let _ = (consumer, partitions);
        Ok(())
    }
}

/// A wakeup asked for, and the waker of the poll blocked now, if any.
#[derive(Debug, Default)]
pub(crate) struct WakeupState {
    requested: AtomicBool,
    /// Set while a poll sleeps (the sleeper's waker; an async poll's task waker).
    waker: Mutex<Option<Waker>>,
}

impl WakeupState {
    /// Takes a pending wakeup: true at most once per [`ConsumerWakeup::wakeup`] (calls
    /// before it is taken count once, as in Kafka).
    pub(crate) fn take(&self) -> bool {
        self.requested.swap(false, Ordering::SeqCst)
    }

    /// True when a wakeup waits to be taken.
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Registers `waker` until the guard drops. Register before the last check of
    /// `requested`: the flag is set before the waker is read, so either that check sees
    /// it or the wakeup wakes this waker.
    pub(crate) fn arm(&self, waker: &Waker) -> Armed<'_> {
        *self.waker.lock() = Some(waker.clone());
        Armed(self)
    }

    fn wake(&self) {
        self.requested.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// A waker registered with a [`WakeupState`], removed on drop.
pub(crate) struct Armed<'a>(&'a WakeupState);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        *self.0.waker.lock() = None;
    }
}

/// Wakes a [`Consumer`] from another thread (Kafka's `KafkaConsumer.wakeup`): made by
/// [`Consumer::wakeup_handle`]; `Send + Sync` and cheap to clone.
#[derive(Debug, Clone)]
pub struct ConsumerWakeup(pub(crate) Arc<WakeupState>);

impl ConsumerWakeup {
    /// Makes the consumer's `poll` blocked now return [`Error::Wakeup`](crate::Error::Wakeup)
    /// at once, or, when none is blocked, its next `poll`. Several calls before a poll
    /// takes the wakeup make one error, as in Kafka.
    pub fn wakeup(&self) {
        self.0.wake();
    }
}
