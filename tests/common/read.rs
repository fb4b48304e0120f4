//! Reading a whole partition back.

use seglog::{Partition, RecordView};

/// A record's headers as (name, value) pairs, names as UTF-8 text.
pub fn header_pairs(r: &RecordView<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    r.headers()
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                v.map(<[u8]>::to_vec),
            )
        })
        .collect()
}

/// Reads `[from, end)` of `p`, at most `max_bytes` a read (more for one large batch), and
/// returns each record mapped by `map`. A read that fails or does not move past its offset
/// is an error naming the offset.
pub fn try_read_range<T>(
    p: &Partition,
    from: u64,
    end: u64,
    max_bytes: usize,
    map: impl FnMut(&RecordView<'_>) -> T,
) -> Result<Vec<T>, String> {
    reads(p, from, end, max_bytes, map).map(|(out, _)| out)
}

/// [`try_read_range`], also returning the `next_offset` of the last read.
fn reads<T>(
    p: &Partition,
    from: u64,
    end: u64,
    max_bytes: usize,
    mut map: impl FnMut(&RecordView<'_>) -> T,
) -> Result<(Vec<T>, u64), String> {
    let mut out = Vec::new();
    let mut next = from;
    while next < end {
        let f = p
            .read(next, max_bytes)
            .map_err(|e| format!("read at {next} of {end}: {e}"))?;
        if f.next_offset() <= next {
            return Err(format!("read at {next} of {end} made no progress"));
        }
        out.extend(f.records().map(|r| map(&r)));
        next = f.next_offset();
    }
    Ok((out, next))
}

/// Every record from the log start to the log end, mapped by `map` (reads as in
/// [`try_read_range`]); panics on a failed read or one that makes no progress. Offsets may
/// have gaps (compaction leaves them).
pub fn read_all<T>(
    p: &Partition,
    max_bytes: usize,
    map: impl FnMut(&RecordView<'_>) -> T,
) -> Vec<T> {
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    try_read_range(p, start, end, max_bytes, map).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`read_all`], and the offsets read must be exactly the log start to the log end,
/// each once (no gap, no empty read below the log end), and the last read's next offset
/// is the log end. `ctx` starts each panic message.
pub fn read_dense<T>(
    p: &Partition,
    max_bytes: usize,
    ctx: &str,
    mut map: impl FnMut(&RecordView<'_>) -> T,
) -> Vec<T> {
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    let (got, next) = reads(p, start, end, max_bytes, |r| (r.offset(), map(r)))
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let mut want = start;
    for (o, _) in &got {
        assert_eq!(*o, want, "{ctx}: offsets not dense below the log end {end}");
        want += 1;
    }
    assert_eq!(want, end, "{ctx}: records end below the log end");
    assert_eq!(
        next, end,
        "{ctx}: the last read's next offset is not the log end"
    );
    got.into_iter().map(|(_, v)| v).collect()
}
