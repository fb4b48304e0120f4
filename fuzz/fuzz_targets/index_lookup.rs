//! Arbitrary bytes as `.index` / `.timeindex` contents: lookups never panic, always return
//! a real entry at or below the target, and agree with a linear scan when the entries are
//! strictly increasing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seglog::segment::{lookup_index, lookup_timeindex};

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

fn offset_entries(bytes: &[u8]) -> Vec<(u32, u32)> {
    bytes
        .chunks_exact(OFFSET_ENTRY)
        .map(|e| {
            (
                u32::from_be_bytes(e[..4].try_into().unwrap()),
                u32::from_be_bytes(e[4..].try_into().unwrap()),
            )
        })
        .collect()
}

fn time_entries(bytes: &[u8]) -> Vec<(i64, u32)> {
    bytes
        .chunks_exact(TIME_ENTRY)
        .map(|e| {
            (
                i64::from_be_bytes(e[..8].try_into().unwrap()),
                u32::from_be_bytes(e[8..].try_into().unwrap()),
            )
        })
        .collect()
}

fn check_offset(bytes: &[u8], target: u32) {
    let entries = offset_entries(bytes);
    let got = lookup_index(bytes, target);
    // Whatever the entries, an answer is a real entry at or below the target.
    if let Some(e) = got {
        assert!(entries.contains(&e));
        assert!(e.0 <= target);
    }
    if entries.windows(2).all(|w| w[0].0 < w[1].0) {
        let linear = entries.iter().rev().find(|e| e.0 <= target).copied();
        assert_eq!(got, linear, "offset lookup of {target}");
    }
}

fn check_time(bytes: &[u8], target: i64) {
    let entries = time_entries(bytes);
    let got = lookup_timeindex(bytes, target);
    if let Some(e) = got {
        assert!(entries.contains(&e));
        assert!(e.0 < target);
    }
    if entries.windows(2).all(|w| w[0].0 < w[1].0) {
        let linear = entries.iter().rev().find(|e| e.0 < target).copied();
        assert_eq!(got, linear, "time lookup of {target}");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let target_offset = u32::from_be_bytes(data[..4].try_into().unwrap());
    let target_time = i64::from_be_bytes(data[4..12].try_into().unwrap());
    let rest = &data[12..];

    // The bytes as they are (rarely sorted), including a partial trailing entry.
    check_offset(rest, target_offset);
    check_time(rest, target_time);

    // The same bytes read as gaps between entries, so the index is strictly increasing and
    // spans the target.
    let n = rest.len() as u64;
    let mut sorted_offsets = Vec::new();
    let mut off = u64::from(target_offset).saturating_sub(n * 64);
    for (i, &g) in rest.iter().enumerate() {
        let Ok(rel) = u32::try_from(off) else { break };
        sorted_offsets.extend_from_slice(&rel.to_be_bytes());
        sorted_offsets.extend_from_slice(&(i as u32).to_be_bytes());
        off += u64::from(g) + 1;
    }
    check_offset(&sorted_offsets, target_offset);

    let mut sorted_times = Vec::new();
    let mut ts = Some(target_time.saturating_sub(n as i64 * 64));
    for (i, &g) in rest.iter().enumerate() {
        let Some(t) = ts else { break };
        sorted_times.extend_from_slice(&t.to_be_bytes());
        sorted_times.extend_from_slice(&(i as u32).to_be_bytes());
        ts = t.checked_add(i64::from(g) + 1);
    }
    check_time(&sorted_times, target_time);
});
