//! Files of a data directory, for tests that copy or damage them.

use std::path::{Path, PathBuf};

/// Copies directory `from` into `to` (created if missing), subdirectories included.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The directory of partition `n` of `topic` in data directory `dir`.
pub fn partition_dir(dir: &Path, topic: &str, n: u32) -> PathBuf {
    dir.join(format!("{topic}-{n}"))
}

/// The `.log` files of a partition directory, oldest first.
pub fn log_files(pdir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Flips the bits of `mask` in the byte of `path` at `pos`.
pub fn flip(path: &Path, pos: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[pos] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// Removes every file of `dir` (a partition directory to fill by hand).
pub fn remove_files(dir: &Path) {
    for f in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
}
