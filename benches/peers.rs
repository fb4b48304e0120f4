//! seglog side by side with its peers, commitlog 0.2 and kafko 0.3, on identical workloads
//! (same payload bytes, fresh temp dir per run), next to the machine's physical limits:
//! raw `write(2)` bandwidth, `memcpy` bandwidth and the raw `fdatasync` rate.
//!
//! `cargo bench --bench peers` runs the full suite (about 1.5 minutes on 2 cores);
//! `SEGLOG_BENCH_QUICK=1 cargo bench --bench peers` a scaled-down one (seconds).
//!
//! Each log implements [`Log`] with its natural API; one function per workload drives all
//! three through it. The notes printed under the table explain every trap and deviation.

mod common;

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    block_on, latency_histogram, median, median_f64, ns, payloads, print_table, probe_fdatasync,
    probe_memcpy, probe_write, si, Cell, Latency, Limits, Line, Rate, Row, Scale, MB, MIB,
    PERCENTILES,
};

/// Distinct payloads per run; a multiple of every batch size, so batches are slices of it.
const POOL: usize = 1000;
/// Read size for sequential reads (seglog and commitlog).
const READ_CHUNK: usize = MIB;
/// Records per append when building the sequential-read logs.
const READ_LOG_BATCH: usize = 100;

// ------------------------------------------------------------------------------------------
// The subjects
// ------------------------------------------------------------------------------------------

/// The three logs, in table column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Seglog,
    Commitlog,
    Kafko,
}

const SUBJECTS: [Subject; 3] = [Subject::Seglog, Subject::Commitlog, Subject::Kafko];

/// What a log is opened for (only kafko's configuration depends on it, see note [4]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Append,
    Read,
    Durable,
}

/// The operations the workloads need, each log with its natural API. The payload pool is
/// converted to the log's own record type when it is opened (untimed); encoding into the
/// on-disk format happens inside the timed calls for all three.
trait Log {
    /// Appends `batches` batches of `batch` records each, cycling through the pool.
    fn append_run(&mut self, batch: usize, batches: usize);
    /// Reads from offset 0 to the end, or until `deadline`, with reads of about
    /// `chunk` bytes, asserting every record's value is `size` bytes long. Returns the
    /// records read.
    fn scan(&mut self, chunk: usize, size: usize, deadline: Instant) -> u64;
    /// Reads the one record at `offset` and returns its value's length.
    fn read_one(&mut self, offset: u64) -> usize;
    /// Appends pool record 0 alone and makes it durable before returning.
    fn durable_append(&mut self);
    /// Closes the log, failing loudly on errors.
    fn close(self: Box<Self>);
}

fn open(subject: Subject, dir: &Path, pool: &[Vec<u8>], purpose: Purpose) -> Box<dyn Log> {
    match subject {
        Subject::Seglog => Box::new(SeglogLog::open(dir, pool)),
        Subject::Commitlog => Box::new(CommitlogLog::open(dir, pool)),
        Subject::Kafko => Box::new(KafkoLog::open(dir, pool, purpose)),
    }
}

// --- seglog -------------------------------------------------------------------------------

struct SeglogLog {
    store: seglog::Store,
    partition: seglog::Partition,
    pool: Vec<seglog::Record>,
}

impl SeglogLog {
    fn open(dir: &Path, pool: &[Vec<u8>]) -> SeglogLog {
        let store = seglog::Store::open(dir).expect("open seglog store");
        // Note [2]: the default max_batch_bytes (1 MiB) rejects 16 KiB x 100 and x 1000.
        let config = seglog::TopicConfig::default().max_batch_bytes(32 << 20);
        let topic = store
            .create_topic("bench", config)
            .expect("create seglog topic");
        let partition = topic.partition(0).expect("seglog partition 0").clone();
        let pool = pool
            .iter()
            .map(|v| seglog::Record::new(v.clone()))
            .collect();
        SeglogLog {
            store,
            partition,
            pool,
        }
    }
}

impl Log for SeglogLog {
    fn append_run(&mut self, batch: usize, batches: usize) {
        for i in 0..batches {
            let at = i * batch % self.pool.len();
            self.partition
                .append(&self.pool[at..at + batch])
                .expect("seglog append");
        }
    }

    fn scan(&mut self, chunk: usize, size: usize, deadline: Instant) -> u64 {
        let end = self.partition.log_end_offset();
        let (mut next, mut n) = (0, 0);
        while next < end && Instant::now() < deadline {
            let fetch = self.partition.read(next, chunk).expect("seglog read");
            for r in fetch.records() {
                let value = r.value().expect("seglog record has a value");
                assert_eq!(value.len(), size, "seglog record {} length", r.offset());
                black_box(value);
                n += 1;
            }
            next = fetch.next_offset();
        }
        n
    }

    fn read_one(&mut self, offset: u64) -> usize {
        let fetch = self.partition.read(offset, 1).expect("seglog read");
        let r = fetch.records().next().expect("seglog record at offset");
        assert_eq!(r.offset(), offset, "seglog read the wrong record");
        r.value().map_or(0, <[u8]>::len)
    }

    fn durable_append(&mut self) {
        self.partition
            .append(&self.pool[..1])
            .expect("seglog append");
        self.partition.flush().expect("seglog flush");
    }

    fn close(self: Box<Self>) {
        self.store.close().expect("close seglog store");
    }
}

// --- commitlog ----------------------------------------------------------------------------

struct CommitlogLog {
    log: commitlog::CommitLog,
    pool: Vec<Vec<u8>>,
    /// Reused encode buffer, as commitlog's own append benchmark does.
    buf: commitlog::message::MessageBuf,
    /// Our own handle on the active segment file, for the emulated fsync (note [3]).
    segment_file: File,
}

impl CommitlogLog {
    fn open(dir: &Path, pool: &[Vec<u8>]) -> CommitlogLog {
        let mut opts = commitlog::LogOptions::new(dir);
        // Note [2]: message_max_bytes caps a whole appended batch (default 1,000,000 B).
        opts.message_max_bytes(64 << 20);
        let log = commitlog::CommitLog::new(opts).expect("open commitlog");
        let segment_file = File::open(dir.join(format!("{:020}.log", 0)))
            .expect("open commitlog's first segment file");
        CommitlogLog {
            log,
            pool: pool.to_vec(),
            buf: commitlog::message::MessageBuf::default(),
            segment_file,
        }
    }
}

impl Log for CommitlogLog {
    fn append_run(&mut self, batch: usize, batches: usize) {
        for i in 0..batches {
            let at = i * batch % self.pool.len();
            self.buf.clear();
            for v in &self.pool[at..at + batch] {
                self.buf.push(v).expect("commitlog encode");
            }
            self.log.append(&mut self.buf).expect("commitlog append");
        }
    }

    fn scan(&mut self, chunk: usize, size: usize, deadline: Instant) -> u64 {
        use commitlog::message::MessageSet;
        let (mut next, mut n) = (0, 0);
        while Instant::now() < deadline {
            let msgs = self
                .log
                .read(next, commitlog::ReadLimit::max_bytes(chunk))
                .expect("commitlog read");
            let mut last = None;
            for m in msgs.iter() {
                assert_eq!(m.payload().len(), size, "commitlog record {}", m.offset());
                black_box(m.payload());
                last = Some(m.offset());
                n += 1;
            }
            match last {
                Some(o) => next = o + 1,
                None => break,
            }
        }
        n
    }

    fn read_one(&mut self, offset: u64) -> usize {
        use commitlog::message::{MessageSet, HEADER_SIZE};
        // One byte more than the record (note [6]): a limit of exactly one message fails
        // with "Message exceeded max byte size" on the last record of a segment.
        let limit = commitlog::ReadLimit::max_bytes(self.pool[0].len() + HEADER_SIZE + 1);
        let msgs = self.log.read(offset, limit).expect("commitlog read");
        let m = msgs.iter().next().expect("commitlog record at offset");
        assert_eq!(m.offset(), offset, "commitlog read the wrong record");
        m.payload().len()
    }

    fn durable_append(&mut self) {
        self.append_run(1, 1);
        // Not an fsync (note [3]) ...
        self.log.flush().expect("commitlog flush");
        // ... so the emulation adds one, on the log file only.
        self.segment_file
            .sync_data()
            .expect("fdatasync commitlog segment");
    }

    fn close(self: Box<Self>) {}
}

// --- kafko --------------------------------------------------------------------------------

/// kafko's storage-level `Log` (kafko 0.3.0 src/log.rs), rebuilt from kafko's own public
/// `Segment`, `SparseIndex` and `Record` (note [1]): `Log::create` calls
/// `tokio::fs::create_dir_all`, which panics outside a tokio runtime, and tokio is not a
/// dev-dependency of this crate. Every other step of `Log` is a call on those public types
/// that never waits, so each method below is the `Log` method of the same name with
/// `.await` replaced by [`block_on`].
struct KafkoLog {
    dir: PathBuf,
    segment_size_threshold: u64,
    index_interval: u64,
    segments: Vec<(kafko::Segment, kafko::SparseIndex)>,
    next_offset: u64,
    actual_sizes: Vec<usize>,
    pool: Vec<kafko::Record>,
}

/// A new encode buffer of the type `Record::encode_with` writes into: `bytes::BytesMut`,
/// which this crate cannot name (`bytes` is not a direct dependency), so it is inferred.
fn kafko_encode_buf<B: Default>(
    _encode: fn(kafko::Record, &mut B, kafko::Compression) -> kafko::Result<usize>,
) -> B {
    B::default()
}

impl KafkoLog {
    fn open(dir: &Path, pool: &[Vec<u8>], purpose: Purpose) -> KafkoLog {
        let defaults = kafko::LogConfig::default();
        let segment_size_threshold = match purpose {
            // Note [4]: bounds the quadratic read path.
            Purpose::Read => MIB as u64,
            Purpose::Append | Purpose::Durable => defaults.segment_size_threshold,
        };
        let mut log = KafkoLog::create(dir, segment_size_threshold, defaults.index_interval)
            .expect("create kafko log");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        log.pool = pool
            .iter()
            .map(|v| kafko::Record::new(now_ms, None, v.clone().into()))
            .collect();
        log
    }

    /// `Log::create`, with `std::fs::create_dir_all` for `tokio::fs::create_dir_all`.
    fn create(
        dir: &Path,
        segment_size_threshold: u64,
        index_interval: u64,
    ) -> kafko::Result<KafkoLog> {
        std::fs::create_dir_all(dir)?;
        let segment = block_on(kafko::Segment::create(dir, 0))?;
        let index = block_on(kafko::SparseIndex::create(dir, 0, index_interval))?;
        Ok(KafkoLog {
            dir: dir.to_path_buf(),
            segment_size_threshold,
            index_interval,
            segments: vec![(segment, index)],
            next_offset: 0,
            actual_sizes: Vec::new(),
            pool: Vec::new(),
        })
    }

    fn active(&mut self) -> &mut (kafko::Segment, kafko::SparseIndex) {
        self.segments
            .last_mut()
            .expect("segments invariant: never empty after create")
    }

    /// `Log::append`: one record, in a fresh buffer.
    fn append(&mut self, record: kafko::Record) -> kafko::Result<u64> {
        let wire_size_estimate = record.wire_size();
        let threshold = self.segment_size_threshold;
        if self
            .active()
            .0
            .would_overflow(wire_size_estimate, threshold)
        {
            self.rotate_active_segment()?;
        }
        let mut buf = kafko_encode_buf(kafko::Record::encode_with);
        buf.reserve(wire_size_estimate);
        let actual_size = record.encode_with(&mut buf, kafko::Compression::None)?;
        let offset = self.next_offset;
        let (segment, index) = self.active();
        let file_pos = block_on(segment.append(&buf))?;
        block_on(index.track_append(offset, file_pos, actual_size))?;
        self.next_offset += 1;
        Ok(offset)
    }

    /// `Log::append_batch` for each batch in turn. `Log` keeps its encode buffer in a
    /// field; here it lives across the calls of this loop instead (see
    /// [`kafko_encode_buf`]), which is the same reuse.
    fn append_batches(
        &mut self,
        batches: impl Iterator<Item = Vec<kafko::Record>>,
    ) -> kafko::Result<()> {
        let mut encode_buf = kafko_encode_buf(kafko::Record::encode_with);
        for records in batches {
            if records.is_empty() {
                continue;
            }
            let total_wire_size: usize = records.iter().map(|r| r.wire_size()).sum();
            let threshold = self.segment_size_threshold;
            if self.active().0.would_overflow(total_wire_size, threshold) {
                self.rotate_active_segment()?;
            }
            encode_buf.clear();
            encode_buf.reserve(total_wire_size);
            self.actual_sizes.clear();
            let mut offsets = Vec::with_capacity(records.len());
            let mut current_offset = self.next_offset;
            for record in records {
                offsets.push(current_offset);
                current_offset += 1;
                let actual = record.encode_with(&mut encode_buf, kafko::Compression::None)?;
                self.actual_sizes.push(actual);
            }
            let sizes = std::mem::take(&mut self.actual_sizes);
            let (segment, index) = self.active();
            let mut file_pos = block_on(segment.append(&encode_buf))?;
            for (i, &size) in sizes.iter().enumerate() {
                block_on(index.track_append(offsets[i], file_pos, size))?;
                file_pos += size as u64;
            }
            self.actual_sizes = sizes;
            self.next_offset = current_offset;
            black_box(offsets);
        }
        Ok(())
    }

    /// `Log::read_record_at`: reads the rest of the segment from the index entry at or
    /// before `offset`, then decodes forward to it.
    fn read_record_at(&mut self, offset: u64) -> kafko::Result<Option<kafko::Record>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let seg_idx = self.find_segment_index(offset);
        let (segment, index) = &mut self.segments[seg_idx];
        let (file_pos, starting_offset) = index.lookup(offset);
        let remaining = segment.size().saturating_sub(file_pos);
        if remaining == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; remaining as usize];
        let n = block_on(segment.read_at(file_pos, &mut buf))?;
        let mut slice: &[u8] = &buf[..n];
        let mut current_offset = starting_offset;
        while !slice.is_empty() {
            let record = match kafko::Record::decode(&mut slice) {
                Ok(r) => r,
                Err(kafko::KafkoError::Truncated { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if current_offset == offset {
                return Ok(Some(record));
            }
            current_offset += 1;
        }
        Ok(None)
    }

    /// `Log::sync`: fdatasync of the active segment and its index.
    fn sync(&mut self) -> kafko::Result<()> {
        let (segment, index) = self.active();
        block_on(segment.sync())?;
        block_on(index.sync())
    }

    /// `Log::rotate_active_segment`: syncs the old segment, then starts a new one.
    fn rotate_active_segment(&mut self) -> kafko::Result<()> {
        self.sync()?;
        let segment = block_on(kafko::Segment::create(&self.dir, self.next_offset))?;
        let index = block_on(kafko::SparseIndex::create(
            &self.dir,
            self.next_offset,
            self.index_interval,
        ))?;
        self.segments.push((segment, index));
        Ok(())
    }

    fn find_segment_index(&self, offset: u64) -> usize {
        match self
            .segments
            .binary_search_by_key(&offset, |s| s.0.base_offset())
        {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        }
    }
}

impl Log for KafkoLog {
    fn append_run(&mut self, batch: usize, batches: usize) {
        let n = self.pool.len();
        if batch == 1 {
            for i in 0..batches {
                let record = self.pool[i % n].clone();
                self.append(record).expect("kafko append");
            }
        } else {
            let pool = std::mem::take(&mut self.pool);
            let batches = (0..batches).map(|i| {
                let at = i * batch % n;
                pool[at..at + batch].to_vec()
            });
            self.append_batches(batches).expect("kafko append_batch");
            self.pool = pool;
        }
    }

    /// kafko has no ranged read: `chunk` does not apply (note [4]).
    fn scan(&mut self, _chunk: usize, size: usize, deadline: Instant) -> u64 {
        let mut offset = 0;
        while offset < self.next_offset && Instant::now() < deadline {
            let record = self
                .read_record_at(offset)
                .expect("kafko read")
                .expect("kafko record at offset");
            assert_eq!(record.value().len(), size, "kafko record {offset} length");
            black_box(record);
            offset += 1;
        }
        offset
    }

    fn read_one(&mut self, offset: u64) -> usize {
        let record = self
            .read_record_at(offset)
            .expect("kafko read")
            .expect("kafko record at offset");
        record.value().len()
    }

    fn durable_append(&mut self) {
        let record = self.pool[0].clone();
        self.append(record).expect("kafko append");
        self.sync().expect("kafko sync");
    }

    fn close(self: Box<Self>) {}
}

// ------------------------------------------------------------------------------------------
// Running and reporting
// ------------------------------------------------------------------------------------------

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

/// Runs `run(index, subject)` for the three subjects in turn, round after round (rotating
/// who goes first), until each has run for `Scale::min_case_time` in measured time or for
/// `Scale::max_reps` rounds. Interleaving spreads background noise over all three.
/// Returns each subject's median rate.
fn interleaved(
    scale: &Scale,
    mut run: impl FnMut(usize, Subject) -> (Rate, Duration),
) -> [Rate; 3] {
    let mut rates: [Vec<Rate>; 3] = Default::default();
    let mut spent = [Duration::ZERO; 3];
    for round in 0..scale.max_reps() {
        for k in 0..SUBJECTS.len() {
            // Rotate who goes first, so no subject always follows the same one.
            let i = (k + round) % SUBJECTS.len();
            if round == 0 || spent[i] < scale.min_case_time() {
                let (rate, elapsed) = run(i, SUBJECTS[i]);
                rates[i].push(rate);
                spent[i] += elapsed;
            }
        }
        if spent.iter().all(|&s| s >= scale.min_case_time()) {
            break;
        }
    }
    rates.map(median)
}

/// Builds one log per subject in its own temp dir: `records` records of the pool, in
/// appends of `batch`.
fn build_logs(
    pool: &[Vec<u8>],
    records: usize,
    batch: usize,
    purpose: Purpose,
) -> Vec<(tempfile::TempDir, Box<dyn Log>)> {
    SUBJECTS
        .iter()
        .map(|&subject| {
            let dir = temp_dir();
            let mut log = open(subject, dir.path(), pool, purpose);
            log.append_run(batch, records / batch);
            (dir, log)
        })
        .collect()
}

fn close_all(logs: Vec<(tempfile::TempDir, Box<dyn Log>)>) {
    for (dir, log) in logs {
        log.close();
        drop(dir);
    }
}

// ------------------------------------------------------------------------------------------
// Workloads
// ------------------------------------------------------------------------------------------

/// Workload 1: appends of 10 B .. 16 KiB records in batches of 1, 100 and 1000, to the
/// page cache. Each subject appends the same records, on a fresh temp dir per repetition.
fn appends(scale: &Scale, limits: &Limits, out: &mut Vec<Line>) {
    out.push(Line::Section(
        "appends (page cache, no fsync), same records for all; MB/s of payload".into(),
    ));
    for size in [10usize, 100, 1024, 16 * 1024] {
        let pool = payloads(size, POOL);
        for batch in [1usize, 100, 1000] {
            let records = (scale.append_bytes() / size).min(scale.max_appends() * batch);
            let batches = (records / batch).max(1);
            let n = (batches * batch) as u64;
            let rates = interleaved(scale, |_, subject| {
                let dir = temp_dir();
                let mut log = open(subject, dir.path(), &pool, Purpose::Append);
                let start = Instant::now();
                log.append_run(batch, batches);
                let elapsed = start.elapsed();
                log.close();
                (Rate::new(n, n * size as u64, elapsed), elapsed)
            });
            out.push(Line::Row(Row {
                workload: format!("append {} x {batch}", size_name(size)),
                cells: rates.map(|r| Cell::Rate(r, "")),
                vs_limit: Some((rates[0].bytes_per_s / limits.write_bytes_per_s, "write(2)")),
            }));
        }
    }
}

/// Workload 2: sequential read of a whole log, checking every record's length.
fn sequential_reads(scale: &Scale, limits: &Limits, out: &mut Vec<Line>) {
    out.push(Line::Section(format!(
        "sequential read of the whole log (written in appends of {READ_LOG_BATCH}), \
         from the page cache; seglog/commitlog in {} MiB reads",
        READ_CHUNK / MIB
    )));
    for size in [100usize, 1024] {
        let pool = payloads(size, POOL);
        let records = scale.read_log_bytes() / size / READ_LOG_BATCH * READ_LOG_BATCH;
        let mut logs = build_logs(&pool, records, READ_LOG_BATCH, Purpose::Read);
        let mut partial = [false; 3];
        let rates = interleaved(scale, |i, _| {
            let log = &mut logs[i].1;
            let start = Instant::now();
            let n = log.scan(READ_CHUNK, size, start + scale.time_box());
            let elapsed = start.elapsed();
            partial[i] |= n < records as u64;
            (Rate::new(n, n * size as u64, elapsed), elapsed)
        });
        close_all(logs);
        let cells = [0, 1, 2].map(|i| Cell::Rate(rates[i], if partial[i] { "‡" } else { "" }));
        out.push(Line::Row(Row {
            workload: format!("seq read {} ({} recs)", size_name(size), si(records as f64)),
            cells,
            vs_limit: Some((rates[0].bytes_per_s / limits.memcpy_bytes_per_s, "memcpy")),
        }));
    }
}

/// Workload 3: random single-offset reads from the page cache, per-read latency.
fn random_reads(scale: &Scale, out: &mut Vec<Line>) {
    out.push(Line::Section(
        "random single-offset reads of 100 B records from the page cache; latency".into(),
    ));
    let size = 100;
    let pool = payloads(size, POOL);
    let records = scale.random_log_records() / POOL * POOL;
    let offsets: Vec<u64> = {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..scale.random_reads())
            .map(|_| {
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % records as u64
            })
            .collect()
    };
    for batch in [1usize, 100] {
        let mut logs = build_logs(&pool, records, batch, Purpose::Read);
        let mut lat = Vec::new();
        for (_, log) in &mut logs {
            let warmup = offsets.len().min(1000);
            for &o in &offsets[..warmup] {
                black_box(log.read_one(o));
            }
            let mut h = latency_histogram();
            let deadline = Instant::now() + scale.time_box();
            for &o in &offsets {
                let start = Instant::now();
                let len = log.read_one(o);
                let t = start.elapsed();
                assert_eq!(len, size, "random read length");
                h.record(t.as_nanos() as u64).expect("record latency");
                if start > deadline {
                    break;
                }
            }
            lat.push(Latency::of(&h));
        }
        close_all(logs);
        let partial = |l: &Latency| {
            if l.samples < offsets.len() as u64 {
                "‡"
            } else {
                ""
            }
        };
        for (p, (name, _)) in PERCENTILES.iter().enumerate() {
            out.push(Line::Row(Row {
                workload: format!("rand read, log b={batch} {name}"),
                cells: [0, 1, 2].map(|i| Cell::Latency(lat[i].ns[p], partial(&lat[i]))),
                vs_limit: None,
            }));
        }
    }
}

/// Workload 4: durable appends, one 100 B record then flush/fsync per op, one thread,
/// next to the raw fdatasync rate measured in the same rounds (the device's flush rate
/// drifts, so the limit is measured alongside rather than at start-up).
fn durable_appends(scale: &Scale, limits: &mut Limits, out: &mut Vec<Line>) {
    out.push(Line::Section(
        "durable appends: one 100 B record + flush/fsync per op, one thread".into(),
    ));
    let size = 100;
    let pool = payloads(size, POOL);
    let rounds = 3;
    let slot = scale.time_box() / rounds;
    let (mut raw_4k, mut raw_100) = (Vec::new(), Vec::new());
    let mut rates: [Vec<Rate>; 3] = Default::default();
    for _ in 0..rounds {
        let dir = temp_dir();
        raw_4k.push(probe_fdatasync(dir.path(), slot, 4096));
        raw_100.push(probe_fdatasync(dir.path(), slot, size));
        for (i, &subject) in SUBJECTS.iter().enumerate() {
            let dir = temp_dir();
            let mut log = open(subject, dir.path(), &pool, Purpose::Durable);
            for _ in 0..5 {
                log.durable_append(); // warm-up: first segment and index pages, journal
            }
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < slot || n < 10 {
                log.durable_append();
                n += 1;
            }
            rates[i].push(Rate::new(n, n * size as u64, start.elapsed()));
            log.close();
        }
    }
    limits.fdatasync_per_s = median_f64(raw_4k);
    limits.small_fdatasync_per_s = median_f64(raw_100);
    let rates = rates.map(median);
    out.push(Line::Row(Row {
        workload: "durable append 100B x 1".into(),
        cells: [
            Cell::Rate(rates[0], ""),
            Cell::Rate(rates[1], "†"),
            Cell::Rate(rates[2], ""),
        ],
        vs_limit: Some((rates[0].records_per_s / limits.fdatasync_per_s, "fdatasync")),
    }));
}

/// The 1, 5 and 15 minute load averages (other processes skew the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("?".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

fn size_name(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

// ------------------------------------------------------------------------------------------
// Goals
// ------------------------------------------------------------------------------------------

fn find<'a>(lines: &'a [Line], workload: &str) -> &'a Row {
    lines
        .iter()
        .find_map(|l| match l {
            Line::Row(r) if r.workload == workload => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no row {workload:?}"))
}

fn rate(row: &Row, i: usize) -> f64 {
    match &row.cells[i] {
        Cell::Rate(r, _) => r.records_per_s,
        _ => f64::NAN,
    }
}

fn print_goals(lines: &[Line], limits: &Limits) {
    let verdict = |ok: bool| if ok { "MET " } else { "MISS" };
    let ratio = |w: &str| find(lines, w).ratio().unwrap_or(f64::NAN);
    println!("\nGoals");
    let r = ratio("append 100B x 1000");
    println!(
        "  {} 100 B x 1000 appends >= 2x faster peer: {r:.2}x",
        verdict(r >= 2.0)
    );
    let row = find(lines, "append 1KiB x 100");
    let f = row.vs_limit.map_or(f64::NAN, |v| v.0);
    println!(
        "  {} 1 KiB x 100 appends >= 90% of write(2): {:.0}%",
        verdict(f >= 0.9),
        f * 100.0
    );
    let singles: Vec<(String, f64)> = ["10B", "100B", "1KiB", "16KiB"]
        .iter()
        .map(|s| (s.to_string(), ratio(&format!("append {s} x 1"))))
        .collect();
    let worst = singles.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let list: Vec<String> = singles
        .iter()
        .map(|(s, r)| format!("{s} {r:.2}x"))
        .collect();
    println!(
        "  {} single-record appends >= 2x faster peer: {}",
        verdict(worst >= 2.0),
        list.join(", ")
    );
    let seq: Vec<&Row> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Row(r) if r.workload.starts_with("seq read") => Some(r),
            _ => None,
        })
        .collect();
    let seq_worst = seq
        .iter()
        .map(|r| r.ratio().unwrap_or(f64::NAN))
        .fold(f64::INFINITY, f64::min);
    let seq_1k = seq
        .iter()
        .find(|r| r.workload.starts_with("seq read 1KiB"))
        .and_then(|r| r.vs_limit)
        .map_or(f64::NAN, |v| v.0);
    println!(
        "  {} sequential reads >= 2x faster peer: worst {seq_worst:.2}x",
        verdict(seq_worst >= 2.0)
    );
    println!(
        "  {} sequential 1 KiB reads >= 50% of memcpy: {:.0}%",
        verdict(seq_1k >= 0.5),
        seq_1k * 100.0
    );
    let p99 = match find(lines, "rand read, log b=1 p99").cells[0] {
        Cell::Latency(v, _) => v,
        _ => u64::MAX,
    };
    let p99_b100 = match find(lines, "rand read, log b=100 p99").cells[0] {
        Cell::Latency(v, _) => v,
        _ => u64::MAX,
    };
    println!(
        "  {} random single-offset read p99 < 2 µs: {} (log of single-record batches; {} \
         when batches hold 100 records)",
        verdict(p99 < 2000),
        ns(p99),
        ns(p99_b100)
    );
    let durable = rate(find(lines, "durable append 100B x 1"), 0);
    println!(
        "  {} durable appends within 10% of raw fdatasync: {} ops/s vs {} ops/s ({:.0}%; \
         {:.0}% of 100 B append + fdatasync)",
        verdict(durable >= 0.9 * limits.fdatasync_per_s),
        si(durable),
        si(limits.fdatasync_per_s),
        durable / limits.fdatasync_per_s * 100.0,
        durable / limits.small_fdatasync_per_s * 100.0
    );
}

const NOTES: &str = "\
Notes
  MB = 10^6 bytes of record payload (value bytes; each format's framing is not counted).
  Throughput cells are medians of interleaved repetitions; each repetition runs on a fresh
  temp dir. Limits are the best of their runs. \"seglog ÷ faster peer\" divides seglog's
  records/s by the faster peer's (for latency rows: the faster peer's latency by seglog's),
  so > 1 always means seglog is ahead. \"seglog ÷ limit\": appends vs raw write(2) bandwidth,
  sequential reads vs memcpy bandwidth, durable appends vs the raw fdatasync rate.
  Records have no key; seglog and kafko add a timestamp, commitlog has none.
  [1] kafko: its storage-level Log is the comparison for appends and reads, but
      kafko::Log::create needs a tokio runtime (tokio::fs::create_dir_all -> spawn_blocking
      panics without one) and tokio is not a dev-dependency here. The kafko column is
      therefore kafko's Log rebuilt from kafko's public Segment, SparseIndex and Record:
      Log::append (batches of 1), Log::append_batch, Log::read_record_at and Log::sync,
      body for body (KafkoLog in benches/peers.rs); all I/O and encoding is kafko's code.
  [2] Batch limits raised so that 16 KiB x 1000 fits everywhere: commitlog caps a whole
      appended batch at LogOptions::message_max_bytes (default 1,000,000 B, which rejects
      1 KiB x 1000 and 16 KiB x 100/1000) -> raised to 64 MiB; seglog's
      TopicConfig::max_batch_bytes (default 1 MiB, which rejects
      16 KiB x 100 and x 1000) -> 32 MiB; segment_bytes stays at its 1 GiB default.
      kafko's Log has no batch limit. No case is skipped.
  [3] commitlog's flush() is NOT an fsync: Segment::flush_sync is File::flush, a no-op for
      std::fs::File, and the index is msync'ed only up to its last full page. Its native
      durable rate is therefore n/a; † = emulated: append + flush() + fdatasync of the
      active .log through a separately opened fd (its index is still not made durable).
  [4] kafko's read_record_at reads the whole rest of the segment after the sparse-index
      entry into a freshly zeroed buffer for every single record, so reading slows
      quadratically with segment size. To keep its read sizes modest (<= 1 MiB, like the
      1 MiB reads of the others), kafko's read logs use 1 MiB segments
      (LogConfig::segment_size_threshold); it has no ranged read, so sequential reads are
      read_record_at per offset. ‡ = time-boxed: the rate is over the part read in time.
  [5] seglog's read(offset, 1) returns the whole batch that holds the offset (Kafka fetch
      semantics), so on the b=100 log a single-offset read reads and CRC-checks a batch of
      100 records; commitlog and kafko store records one by one, so layout does not matter
      to them. Sequential reads: seglog read(next, 1 MiB), commitlog read(next,
      ReadLimit::max_bytes(1 MiB)); every record's value length is checked.
  [6] commitlog trap: read(offset, ReadLimit::max_bytes(exactly one message)) fails with
      \"Message exceeded max byte size\" for the last record of a segment (its end-of-segment
      shortcut needs remaining < max_bytes), so single-offset reads ask for one byte more.
  The raw fdatasync rates are measured in rounds interleaved with the durable workload,
  as the device's flush rate drifts over minutes. seglog's close (untimed) fsyncs its
  log; the others' drops do not.";

fn main() {
    let scale = Scale::from_env();
    let started = Instant::now();
    let probe_dir = temp_dir();
    println!(
        "seglog vs commitlog 0.2 vs kafko 0.3 — {} mode, temp dir {}, {} CPUs, load average {}",
        if scale.quick { "QUICK" } else { "full" },
        probe_dir
            .path()
            .parent()
            .map_or("?".into(), |p| p.display().to_string()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    let mut limits = Limits {
        write_bytes_per_s: probe_write(probe_dir.path(), scale.raw_write_bytes(), MIB),
        memcpy_bytes_per_s: probe_memcpy(scale.memcpy_reps()),
        // Measured alongside the durable workload.
        fdatasync_per_s: f64::NAN,
        small_fdatasync_per_s: f64::NAN,
    };
    drop(probe_dir);

    let mut lines = Vec::new();
    appends(&scale, &limits, &mut lines);
    sequential_reads(&scale, &limits, &mut lines);
    random_reads(&scale, &mut lines);
    durable_appends(&scale, &mut limits, &mut lines);

    println!(
        "Physical limits, same temp dir: write(2) of 1 MiB buffers to a new file (page cache, \
         no fsync) {:.0} MB/s;\n  memcpy of a 64 MiB buffer {:.0} MB/s; 4 KiB append + \
         fdatasync {:.0} ops/s (100 B append + fdatasync {:.0} ops/s)\n",
        limits.write_bytes_per_s / MB,
        limits.memcpy_bytes_per_s / MB,
        limits.fdatasync_per_s,
        limits.small_fdatasync_per_s,
    );
    println!("load average at the end: {}", load_average());
    print_table(&lines);
    println!("{NOTES}");
    print_goals(&lines, &limits);
    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
}
