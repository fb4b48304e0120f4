//! The physical floor behind [`Log`]: the same records, each a 4-byte little-endian length
//! and the value, in one file. An append is one `write(2)` per batch; a scan reads the file
//! in `chunk`-byte `read(2)`s and walks the length prefixes; a lookup is one `pread` at the
//! record's position, kept in memory. No checksums, no index on disk, no recovery.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::{before, Log};

const PREFIX: usize = 4;

pub struct RawLog {
    file: File,
    pool: Vec<Vec<u8>>,
    /// Reused encode buffer of one batch.
    buf: Vec<u8>,
    /// Record i's file position (its length prefix).
    positions: Vec<u64>,
    /// Bytes written so far.
    end: u64,
    /// Reused read buffer (scans and lookups).
    read_buf: Vec<u8>,
}

impl RawLog {
    pub fn open(dir: &Path, pool: &[Vec<u8>]) -> RawLog {
        let file = File::options()
            .read(true)
            .append(true)
            .create_new(true)
            .open(dir.join("raw.log"))
            .expect("create raw log");
        RawLog {
            file,
            pool: pool.to_vec(),
            buf: Vec::new(),
            positions: Vec::new(),
            end: 0,
            read_buf: Vec::new(),
        }
    }
}

impl Log for RawLog {
    fn append_run(&mut self, batch: usize, batches: usize) {
        for i in 0..batches {
            let at = i * batch % self.pool.len();
            self.buf.clear();
            for v in &self.pool[at..at + batch] {
                self.positions.push(self.end + self.buf.len() as u64);
                self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(v);
            }
            self.file.write_all(&self.buf).expect("raw write");
            self.end += self.buf.len() as u64;
        }
    }

    fn scan(
        &mut self,
        chunk: usize,
        deadline: Option<Instant>,
        visit: &mut dyn FnMut(&[u8]),
    ) -> u64 {
        self.file.seek(SeekFrom::Start(0)).expect("raw seek");
        self.read_buf.resize(chunk, 0);
        // buf[start..filled] holds bytes read but not yet walked (a record cut by the
        // chunk boundary is moved to the front before the next read).
        let (mut start, mut filled, mut n) = (0, 0, 0);
        while before(deadline) {
            self.read_buf.copy_within(start..filled, 0);
            filled -= start;
            start = 0;
            if filled == self.read_buf.len() {
                // One record longer than the chunk.
                self.read_buf.resize(2 * filled, 0);
            }
            let got = self
                .file
                .read(&mut self.read_buf[filled..])
                .expect("raw read");
            if got == 0 {
                assert_eq!(filled, 0, "raw log ends in a partial record");
                break;
            }
            filled += got;
            while filled - start >= PREFIX {
                let len = u32::from_le_bytes(
                    self.read_buf[start..start + PREFIX]
                        .try_into()
                        .expect("4 bytes"),
                ) as usize;
                if filled - start < PREFIX + len {
                    break;
                }
                visit(&self.read_buf[start + PREFIX..start + PREFIX + len]);
                start += PREFIX + len;
                n += 1;
            }
        }
        n
    }

    fn read_one(&mut self, offset: u64) -> usize {
        let at = self.positions[offset as usize];
        let end = self
            .positions
            .get(offset as usize + 1)
            .copied()
            .unwrap_or(self.end);
        self.read_buf.resize((end - at) as usize, 0);
        self.file
            .read_exact_at(&mut self.read_buf, at)
            .expect("raw pread");
        let len = u32::from_le_bytes(self.read_buf[..PREFIX].try_into().expect("4 bytes"));
        assert_eq!(
            len as usize + PREFIX,
            self.read_buf.len(),
            "raw record length"
        );
        len as usize
    }

    fn durable_append(&mut self) {
        self.append_run(1, 1);
        self.file.sync_data().expect("raw fdatasync");
    }

    fn close(self: Box<Self>) {}
}
