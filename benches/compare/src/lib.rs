//! seglog side by side with its peers (commitlog 0.2, kafko 0.3) and the raw-file floor.
//!
//! Every backend implements [`Log`] with its natural public API; both the timed bench
//! (`benches/peers.rs`) and the instruction counter (`src/bin/instr.rs`) drive them through
//! it. Every seglog call is in `seglog_backend.rs`.

use std::path::Path;
use std::time::Instant;

pub mod common;

mod commitlog_backend;
mod kafko_backend;
mod raw_backend;
mod seglog_backend;

/// Distinct payloads per run; a multiple of every batch size, so batches are slices of it.
pub const POOL: usize = 1000;

/// The logs compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// seglog, uncompressed topic.
    Seglog,
    /// seglog, topic compressed with lz4.
    SeglogLz4,
    /// seglog, topic compressed with zstd (its default level).
    SeglogZstd,
    Commitlog,
    Kafko,
    /// The physical floor: length-prefixed records in one file with `write(2)`/`read(2)`.
    Raw,
}

impl Subject {
    /// Every subject, in table column order.
    pub const ALL: [Subject; 6] = [
        Subject::Seglog,
        Subject::SeglogLz4,
        Subject::SeglogZstd,
        Subject::Commitlog,
        Subject::Kafko,
        Subject::Raw,
    ];

    /// The name on the command line and in table headers.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Seglog => "seglog",
            Subject::SeglogLz4 => "seglog-lz4",
            Subject::SeglogZstd => "seglog-zstd",
            Subject::Commitlog => "commitlog",
            Subject::Kafko => "kafko",
            Subject::Raw => "raw",
        }
    }

    /// The subject named `name` ([`Subject::name`]).
    pub fn parse(name: &str) -> Option<Subject> {
        Subject::ALL.into_iter().find(|s| s.name() == name)
    }

    /// seglog with or without a codec (the subjects compared with the peers).
    pub fn is_seglog(self) -> bool {
        matches!(
            self,
            Subject::Seglog | Subject::SeglogLz4 | Subject::SeglogZstd
        )
    }
}

/// What a log is opened for (only kafko's configuration depends on it, see note 4 of the
/// peers bench).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Append,
    Read,
    Durable,
}

/// The operations the workloads need, each log with its natural API. The payload pool is
/// converted to the log's own record type when it is opened (untimed); encoding into the
/// on-disk format happens inside the timed calls for all.
pub trait Log {
    /// Appends `batches` batches of `batch` records each, cycling through the pool.
    fn append_run(&mut self, batch: usize, batches: usize);
    /// Reads from offset 0 to the end (or until `deadline`), with reads of about `chunk`
    /// bytes, passing every record's value to `visit`. Returns the records read.
    fn scan(
        &mut self,
        chunk: usize,
        deadline: Option<Instant>,
        visit: &mut dyn FnMut(&[u8]),
    ) -> u64;
    /// Reads the one record at `offset` and returns its value's length.
    fn read_one(&mut self, offset: u64) -> usize;
    /// Appends pool record 0 alone and makes it durable before returning.
    fn durable_append(&mut self);
    /// Closes the log, failing loudly on errors.
    fn close(self: Box<Self>);
}

/// Opens `subject`'s log in the empty directory `dir`.
pub fn open(subject: Subject, dir: &Path, pool: &[Vec<u8>], purpose: Purpose) -> Box<dyn Log> {
    match subject {
        Subject::Seglog => Box::new(seglog_backend::SeglogLog::open(dir, pool, None)),
        Subject::SeglogLz4 => Box::new(seglog_backend::SeglogLog::open(
            dir,
            pool,
            Some(seglog_backend::Codec::Lz4),
        )),
        Subject::SeglogZstd => Box::new(seglog_backend::SeglogLog::open(
            dir,
            pool,
            Some(seglog_backend::Codec::Zstd),
        )),
        Subject::Commitlog => Box::new(commitlog_backend::CommitlogLog::open(dir, pool)),
        Subject::Kafko => Box::new(kafko_backend::KafkoLog::open(dir, pool, purpose)),
        Subject::Raw => Box::new(raw_backend::RawLog::open(dir, pool)),
    }
}

/// `n` offsets below `records` from a fixed-seed xorshift64*, the same for every run.
pub fn random_offsets(n: usize, records: u64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % records
        })
        .collect()
}

/// The deadline check of a scan: none means read to the end.
pub(crate) fn before(deadline: Option<Instant>) -> bool {
    deadline.is_none_or(|d| Instant::now() < d)
}
