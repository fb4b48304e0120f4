//! The `.timeindex` file: 12-byte entries `(timestamp: i64, relative offset: u32)`,
//! big-endian, timestamps strictly increasing.

use crate::record::{read_i64, read_u32, write_i64, write_u32};

use super::index::{floor_search, IndexFile};

/// Bytes per time-index entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// Kafka's capacity rule for the time index (`TimeIndex.isFull`): full at
/// `capacity − 1` entries, the last slot being kept for the entry written when the segment
/// is sealed or closed. (The offset index is full at `capacity`: [`IndexFile::is_full`].)
/// A segment that filled every slot during appends could not be rebuilt by Kafka, whose
/// recovery appends with this check ("Attempt to append to a full time index").
pub(crate) fn is_full(idx: &IndexFile) -> bool {
    idx.len() + 1 >= idx.capacity()
}

/// Decodes a time-index entry into `(timestamp, relative offset)`.
pub fn decode_time_entry(e: &[u8]) -> (i64, u32) {
    (read_i64(e, 0), read_u32(e, 8))
}

/// Encodes a time-index entry.
pub fn encode_time_entry(e: &mut [u8], timestamp: i64, relative_offset: u32) {
    write_i64(e, 0, timestamp);
    write_u32(e, 8, relative_offset);
}

/// The entry with the largest timestamp strictly below `target` in a time index held in
/// `bytes`: every record up to its offset has a timestamp below `target`, so the first
/// record at or after `target` lies after it. `None` when no entry is below `target`.
pub fn lookup_before(bytes: &[u8], target: i64) -> Option<(i64, u32)> {
    let n = bytes.len() / TIME_ENTRY_SIZE;
    let entry = |i: usize| decode_time_entry(&bytes[i * TIME_ENTRY_SIZE..]);
    // floor of (target - 1), computed without overflow: keys <= target - 1 <=> key < target
    floor_search(n, false, |i| entry(i).0 >= target).map(entry)
}
