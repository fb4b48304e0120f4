//! kafko 0.3 behind [`Log`] (note [1] of the peers bench: its storage `Log` rebuilt from its
//! public `Segment`, `SparseIndex` and `Record`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::common::{block_on, MIB};
use crate::{before, Log, Purpose};

/// kafko's storage-level `Log` (kafko 0.3.0 src/log.rs), rebuilt from kafko's own public
/// `Segment`, `SparseIndex` and `Record` (note [1]): `Log::create` calls
/// `tokio::fs::create_dir_all`, which panics outside a tokio runtime, and tokio is not a
/// dev-dependency of this crate. Every other step of `Log` is a call on those public types
/// that never waits, so each method below is the `Log` method of the same name with
/// `.await` replaced by [`block_on`].
pub struct KafkoLog {
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
    pub fn open(dir: &Path, pool: &[Vec<u8>], purpose: Purpose) -> KafkoLog {
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
    fn scan(
        &mut self,
        _chunk: usize,
        deadline: Option<Instant>,
        visit: &mut dyn FnMut(&[u8]),
    ) -> u64 {
        let mut offset = 0;
        while offset < self.next_offset && before(deadline) {
            let record = self
                .read_record_at(offset)
                .expect("kafko read")
                .expect("kafko record at offset");
            visit(record.value());
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
