//! Which batches of a `.log` file were checked in this process (CRC and records), so that
//! every batch is validated once per process wherever it is read, not on every read.
//!
//! A contiguous prefix covers what this process appended or read in order; batches read
//! out of order are marked one bit each, by start position. A batch takes at least 61
//! bytes, so two batches never start in the same 32-byte slot: one bit per slot names a
//! batch exactly. Bits live in 8 KiB pages (2 MiB of log each), made on first use, so a
//! segment that is only read in order costs nothing, and one read at random costs 1/256
//! of the bytes it read. Lock-free: atomics only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Log bytes per bit (a batch is at least 61 bytes long).
const SLOT: u64 = 32;
/// 64-bit words per page.
const PAGE_WORDS: usize = 1024;
/// Log bytes one page covers.
const PAGE_SPAN: u64 = SLOT * 64 * PAGE_WORDS as u64;
/// Pages covering the largest `.log` file (positions are 32-bit in the offset index).
const PAGES: usize = ((1u64 << 32) / PAGE_SPAN) as usize;

type Page = Box<[AtomicU64]>;

/// The checked batches of one `.log` file.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Every batch below this position is checked.
    prefix: AtomicU64,
    /// Bits by slot, for batches checked out of order.
    pages: OnceLock<Box<[OnceLock<Page>]>>,
}

impl Checked {
    /// True when the batch at `[start, end)` was checked.
    #[inline]
    pub(crate) fn contains(&self, start: u64, end: u64) -> bool {
        if end <= self.prefix.load(Ordering::Acquire) {
            return true;
        }
        let Some(pages) = self.pages.get() else {
            return false;
        };
        let (page, word, bit) = locate(start);
        pages
            .get(page)
            .and_then(OnceLock::get)
            .is_some_and(|p| p[word].load(Ordering::Acquire) & bit != 0)
    }

    /// Records that the batch (or whole batches) at `[start, end)` was checked.
    pub(crate) fn insert(&self, start: u64, end: u64) {
        if self
            .prefix
            .compare_exchange(start, end, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || end <= self.prefix.load(Ordering::Acquire)
        {
            return;
        }
        let (page, word, bit) = locate(start);
        let pages = self
            .pages
            .get_or_init(|| (0..PAGES).map(|_| OnceLock::new()).collect());
        if let Some(p) = pages.get(page) {
            let p = p.get_or_init(|| (0..PAGE_WORDS).map(|_| AtomicU64::new(0)).collect());
            p[word].fetch_or(bit, Ordering::AcqRel);
        }
    }

    /// Forgets everything at or past `len` (the log was cut there).
    pub(crate) fn truncate(&self, len: u64) {
        self.prefix.fetch_min(len, Ordering::AcqRel);
        let Some(pages) = self.pages.get() else {
            return;
        };
        // A batch starting in the slot that holds `len`, before it, ended past it: gone too.
        let first_slot = len / SLOT;
        for (i, page) in pages.iter().enumerate() {
            let Some(page) = page.get() else { continue };
            for (w, word) in page.iter().enumerate() {
                let slot0 = ((i * PAGE_WORDS + w) * 64) as u64;
                if slot0 + 64 <= first_slot {
                    continue;
                }
                let keep = first_slot.saturating_sub(slot0);
                let mask = if keep >= 64 { !0 } else { (1u64 << keep) - 1 };
                word.fetch_and(mask, Ordering::AcqRel);
            }
        }
    }
}

/// The page, word and bit of the batch starting at `start`.
#[inline]
fn locate(start: u64) -> (usize, usize, u64) {
    let slot = start / SLOT;
    let word = (slot / 64) as usize;
    (word / PAGE_WORDS, word % PAGE_WORDS, 1 << (slot % 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The set answers like a plain set of checked batches, whatever the order of
        /// inserts and cuts. Batches 0..20 lie back to back (the prefix grows over them);
        /// later ones are spread over several pages.
        #[test]
        fn agrees_with_a_set(ops in proptest::collection::vec((0u64..40, any::<bool>()), 1..80)) {
            let at = |b: u64| if b < 20 { b * 61 } else { b * 61 + (1 << 21) * (b % 3) };
            let checked = Checked::default();
            let mut model = std::collections::BTreeSet::new();
            for (batch, cut) in ops {
                if cut {
                    checked.truncate(at(batch));
                    model.retain(|&b| at(b) < at(batch));
                } else {
                    checked.insert(at(batch), at(batch) + 61);
                    model.insert(batch);
                }
                for b in 0..44u64 {
                    prop_assert_eq!(checked.contains(at(b), at(b) + 61), model.contains(&b), "batch {}", b);
                }
            }
        }
    }

    #[test]
    fn prefix_and_bits() {
        let c = Checked::default();
        c.insert(0, 100);
        assert!(c.contains(0, 100) && !c.contains(100, 200));
        c.insert(300, 400);
        assert!(c.contains(300, 400) && !c.contains(200, 300));
        c.insert(100, 300);
        assert!(c.contains(100, 300) && c.contains(300, 400));
        c.truncate(300);
        assert!(!c.contains(300, 400) && c.contains(100, 300));
    }
}
