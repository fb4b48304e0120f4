//! seglog behind [`Log`]: every seglog call of the comparison is in this file, so a switch to
//! new seglog APIs (a borrowed-record append, a read into a reused buffer, a point lookup)
//! happens here alone.

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
    pool: Vec<seglog::Record>,
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

    fn scan(
        &mut self,
        chunk: usize,
        deadline: Option<Instant>,
        visit: &mut dyn FnMut(&[u8]),
    ) -> u64 {
        let end = self.partition.log_end_offset();
        let (mut next, mut n) = (0, 0);
        while next < end && before(deadline) {
            let fetch = self.partition.read(next, chunk).expect("seglog read");
            for r in fetch.records() {
                visit(r.value().expect("seglog record has a value"));
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
