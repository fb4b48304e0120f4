//! Reading a whole partition back, with `Partition::records_from`.

use seglog::{ConsumerRecord, Partition, Record};

/// A record's headers as (name, value) pairs.
pub fn header_pairs(r: &ConsumerRecord) -> Vec<(String, Option<Vec<u8>>)> {
    r.headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

/// `r` as a [`Record`] (with its timestamp), as `RecordView::to_record` gives it.
pub fn to_record(r: &ConsumerRecord) -> Record {
    Record {
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
        timestamp: Some(r.timestamp),
    }
}

/// Reads `[from, end)` of `p` with `records_from`, `max_bytes` a read (more for one large
/// batch), and returns each record mapped by `map`. A read that fails, or records that
/// stop below `end`, are an error naming the offset.
pub fn try_read_range<T>(
    p: &Partition,
    from: u64,
    end: u64,
    max_bytes: usize,
    map: impl FnMut(&ConsumerRecord) -> T,
) -> Result<Vec<T>, String> {
    reads(p, from, end, max_bytes, map).map(|(out, _)| out)
}

/// [`try_read_range`], also returning where the iterator stopped.
fn reads<T>(
    p: &Partition,
    from: u64,
    end: u64,
    max_bytes: usize,
    mut map: impl FnMut(&ConsumerRecord) -> T,
) -> Result<(Vec<T>, u64), String> {
    let mut out = Vec::new();
    let mut records = p.records_from(from).fetch_bytes(max_bytes);
    while records.position() < end {
        match records.next() {
            Some(Ok(r)) if r.offset >= end => return Ok((out, end)),
            Some(Ok(r)) => out.push(map(&r)),
            Some(Err(e)) => {
                return Err(format!("read at {} of {end}: {e}", records.position()));
            }
            None if records.position() >= end => break,
            None => {
                return Err(format!(
                    "records stop at {} below {end}",
                    records.position()
                ));
            }
        }
    }
    Ok((out, records.position()))
}

/// Every record from the log start to the log end, mapped by `map` (reads as in
/// [`try_read_range`]); panics on a failed read or records that stop short. Offsets may
/// have gaps (compaction leaves them).
pub fn read_all<T>(
    p: &Partition,
    max_bytes: usize,
    map: impl FnMut(&ConsumerRecord) -> T,
) -> Vec<T> {
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    try_read_range(p, start, end, max_bytes, map).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`read_all`], and the offsets read must be exactly the log start to the log end,
/// each once (no gap), and the iterator ends at the log end. `ctx` starts each panic
/// message.
pub fn read_dense<T>(
    p: &Partition,
    max_bytes: usize,
    ctx: &str,
    mut map: impl FnMut(&ConsumerRecord) -> T,
) -> Vec<T> {
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    let (got, next) = reads(p, start, end, max_bytes, |r| (r.offset, map(r)))
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let mut want = start;
    for (o, _) in &got {
        assert_eq!(*o, want, "{ctx}: offsets not dense below the log end {end}");
        want += 1;
    }
    assert_eq!(want, end, "{ctx}: records end below the log end");
    assert_eq!(next, end, "{ctx}: the records do not end at the log end");
    got.into_iter().map(|(_, v)| v).collect()
}
