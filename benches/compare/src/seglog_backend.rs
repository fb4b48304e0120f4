//! seglog behind [`Log`]: every seglog call of the comparison is in this file. Appends borrow
//! the payloads (`RecordRef`), reads borrow the mapped segment (`read_in_place`), lookups
//! are point lookups (`read_record`).

use std::path::Path;
use std::time::Instant;

use crate::{before, Log};

/// A topic codec (seglog's defaults for its level).
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    Lz4,
    Zstd,
}

pub struct SeglogLog {
    store: seglog::Store,
    partition: seglog::Partition,
    /// The payloads, owned here as commitlog's pool is: appends borrow them
    /// (`seglog::RecordRef`), so encoding them into the batch is the only copy.
    pool: Vec<Vec<u8>>,
}

impl SeglogLog {
    pub fn open(dir: &Path, pool: &[Vec<u8>], codec: Option<Codec>) -> SeglogLog {
        let store = seglog::Store::open(dir).expect("open seglog store");
        // Note [2]: the default max_batch_bytes (1 MiB) rejects 16 KiB x 100 and x 1000.
        let mut config = seglog::TopicConfig::default().max_batch_bytes(32 << 20);
        if let Some(codec) = codec {
            config = config.compression(match codec {
                Codec::Lz4 => seglog::Compression::Lz4 { level: None },
                Codec::Zstd => seglog::Compression::Zstd { level: None },
            });
        }
        let topic = store
            .create_topic("bench", config)
            .expect("create seglog topic");
        let partition = topic.partition(0).expect("seglog partition 0").clone();
        let pool = pool.to_vec();
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
            let values = &self.pool[at..at + batch];
            let result = if let [one] = values {
                self.partition.append(&[seglog::RecordRef::new(one)])
            } else {
                let records: Vec<seglog::RecordRef<'_>> =
                    values.iter().map(|v| seglog::RecordRef::new(v)).collect();
                self.partition.append(&records)
            };
            result.expect("seglog append");
        }
    }

    fn scan(
        &mut self,
        chunk: usize,
        deadline: Option<Instant>,
        visit: &mut dyn FnMut(&[u8]),
    ) -> u64 {
        // Batches borrowed from the mapped segment: no copy into a buffer.
        let end = self.partition.log_end_offset();
        let (mut next, mut n) = (0, 0);
        while next < end && before(deadline) {
            next = self
                .partition
                .read_in_place(next, chunk, |fetch| {
                    for r in fetch.records() {
                        visit(r.value().expect("seglog record has a value"));
                        n += 1;
                    }
                    fetch.next_offset()
                })
                .expect("seglog read");
        }
        n
    }

    fn read_one(&mut self, offset: u64) -> usize {
        // The point lookup: the record borrowed from the mapped segment.
        self.partition
            .read_record(offset, |r| r.value().map_or(0, <[u8]>::len))
            .expect("seglog read")
            .expect("seglog record at offset")
    }

    fn durable_append(&mut self) {
        self.partition
            .append(&[seglog::RecordRef::new(&self.pool[0])])
            .expect("seglog append");
        self.partition.flush().expect("seglog flush");
    }

    fn close(self: Box<Self>) {
        self.store.close().expect("close seglog store");
    }
}
