//! The Kafka bridge (cargo feature `kafka`): move data between seglog and a Kafka cluster
//! over the Kafka wire protocol, batch by batch, without re-encoding what a broker takes.
//!
//! - [`Mirror`] forwards seglog topics to a cluster (partition to partition, as an
//!   idempotent producer), resuming from a consumer group's commits.
//! - [`Import`] fetches a cluster's topics into seglog topics with the same offsets,
//!   compressed batches kept as they are, resuming from the local log end.
//!
//! Both have a catch-up mode (everything there is now, then return) and a continuous mode
//! (follow new data until told to stop), and [`Mirror::step`] / [`Import::step`] for
//! callers that drive the loop themselves (to report progress, say). Connections are
//! blocking, one per broker, one request in flight on each; the messages are encoded by
//! the `kafka-protocol` crate. Broker failures are retried (metadata refreshed, leaders
//! followed, connections reopened) until they outlast the configured delivery timeout.
//!
//! ```no_run
//! # fn main() -> seglog::Result<()> {
//! use seglog::bridge::{Import, ImportConfig};
//! let store = seglog::Store::open("data")?;
//! let mut import = Import::new(&store, ImportConfig::new("127.0.0.1:9092").topic("orders"))?;
//! let done = import.catch_up()?;
//! println!("imported {} records ({} bytes)", done.records, done.bytes);
//! # Ok(()) }
//! ```

mod cluster;
mod import;
mod mirror;
mod wire;

use std::time::{Duration, Instant};

pub use import::{Import, ImportConfig};
pub use mirror::{Mirror, MirrorConfig};

use crate::error::{Error, Result};

/// What a bridge moved: totals of a call ([`Mirror::step`], [`Mirror::catch_up`], ...)
/// or since it started ([`Mirror::totals`], [`Import::totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Records moved (acknowledged by the broker, or appended locally).
    pub records: u64,
    /// Bytes of the batches moved.
    pub bytes: u64,
    /// Batches moved.
    pub batches: u64,
    /// Of those, batches re-encoded because a broker refuses them as stored (mirror only:
    /// batches thinned by compaction, or cut at a committed offset inside them).
    pub reencoded: u64,
    /// Offsets left to move when the call returned, summed over the partitions.
    pub lag: u64,
}

impl Progress {
    fn add(&mut self, other: &Progress) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.batches += other.batches;
        self.reencoded += other.reencoded;
        self.lag = other.lag;
    }
}

/// The cluster at `bootstrap`, for a bridge of `topics` topics (`what`: "mirror",
/// "import"); no topic is an error.
fn connect(
    topics: usize,
    what: &str,
    bootstrap: &str,
    client_id: &str,
    timeout: Duration,
) -> Result<cluster::Cluster> {
    if topics == 0 {
        return Err(Error::config(
            "topics",
            "none",
            format!("at least one topic to {what}"),
        ));
    }
    cluster::Cluster::connect(bootstrap, client_id, timeout)
}

/// Retries of broker failures: allowed until failures have gone on for `limit` without a
/// success between them, with a growing pause between attempts.
#[derive(Debug)]
struct Retry {
    limit: Duration,
    failing_since: Option<Instant>,
    pause: Duration,
}

impl Retry {
    fn new(limit: Duration) -> Retry {
        Retry {
            limit,
            failing_since: None,
            pause: Duration::from_millis(50),
        }
    }

    fn ok(&mut self) {
        self.failing_since = None;
        self.pause = Duration::from_millis(50);
    }

    /// The outcome of one step or round: its progress; `None` after a broker failure
    /// to retry (having paused); the error when it is not the broker's, when `refused`
    /// says retrying will not change it (the flag is cleared), or once failures outlast
    /// the limit.
    fn outcome(&mut self, step: Result<Progress>, refused: &mut bool) -> Result<Option<Progress>> {
        match step {
            Ok(p) => {
                self.ok();
                Ok(Some(p))
            }
            Err(e @ Error::Kafka { .. }) if !std::mem::take(refused) => {
                self.failed(e)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A failure: `Err(e)` once failures outlast the limit, else a pause.
    fn failed(&mut self, e: Error) -> Result<()> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.limit {
            return Err(e);
        }
        tracing::warn!(error = %e, "kafka bridge: retrying");
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(Duration::from_secs(1));
        Ok(())
    }
}
