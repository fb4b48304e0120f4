//! commitlog 0.2 behind [`Log`], with its natural API: a reused `MessageBuf` and `append`;
//! reads with `ReadLimit`.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use crate::{before, Log};

pub struct CommitlogLog {
    log: commitlog::CommitLog,
    pool: Vec<Vec<u8>>,
    /// Reused encode buffer, as commitlog's own append benchmark does.
    buf: commitlog::message::MessageBuf,
    /// Our own handle on the active segment file, for the emulated fsync (note [3]).
    segment_file: File,
}

impl CommitlogLog {
    pub fn open(dir: &Path, pool: &[Vec<u8>]) -> CommitlogLog {
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

    fn scan(
        &mut self,
        chunk: usize,
        deadline: Option<Instant>,
        visit: &mut dyn FnMut(&[u8]),
    ) -> u64 {
        use commitlog::message::MessageSet;
        let (mut next, mut n) = (0, 0);
        while before(deadline) {
            let msgs = self
                .log
                .read(next, commitlog::ReadLimit::max_bytes(chunk))
                .expect("commitlog read");
            let mut last = None;
            for m in msgs.iter() {
                visit(m.payload());
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
