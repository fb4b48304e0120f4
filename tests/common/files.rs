//! Files of a data directory, for tests that copy or damage them.

use std::collections::BTreeMap;
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

/// Every file and directory under `root` (relative path → contents, `None` for a
/// directory), without the `.lock` file an open creates (as a broker does).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".lock") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, Some(std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}
