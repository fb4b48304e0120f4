//! A `kafka-dump-log`-like tool: dumps and verifies segment files.
//!
//! ```text
//! cargo run --example dump -- [--records] [--verify-only] [--index-entries] PATH...
//! ```
//!
//! Each PATH is a segment `.log` file (its `.index` and `.timeindex` are read from beside
//! it) or a partition directory (every segment in it, in offset order, plus the checks
//! across segments). For each batch it prints one line in `kafka-dump-log`'s format; with
//! `--records`, one line per record as well (keys and values as text when they are
//! printable UTF-8, as hex otherwise, cut at 80 characters). Then a summary of the index
//! checks, and `OK` or the problems found. `--verify-only` prints only the summaries and
//! the verdict; `--index-entries` also prints every index entry.
//!
//! The files are read with plain reads (no memory maps, nothing written), so this is safe
//! on a directory a live process is writing. See `seglog::verify` for what is checked.
//!
//! Exit status: 0 when everything verifies, 1 when a problem was found, 2 for a usage
//! error, a path that cannot be read, or a closed standard output.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use seglog::verify::{
    verify_partition, verify_segment, BatchInfo, IndexReport, Options, PartitionReport, Problem,
    RecordInfo, SegmentReport,
};
use seglog::TimestampType;

const USAGE: &str = "usage: dump [--records] [--verify-only] [--index-entries] PATH...
  PATH             a segment .log file or a partition directory
  --records        print every record (key and value as text or hex, cut at 80 chars)
  --verify-only    print only the check summaries and the verdict
  --index-entries  print every .index and .timeindex entry
exit status: 0 all OK, 1 problems found, 2 usage error or unreadable path";

/// How much to print.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    records: bool,
    verify_only: bool,
    index_entries: bool,
}

/// Longest key or value rendering, in characters.
const MAX_SHOWN: usize = 80;

fn main() -> ExitCode {
    let mut flags = Flags::default();
    let mut paths = Vec::new();
    let mut only_paths = false;
    for arg in std::env::args_os().skip(1) {
        if only_paths {
            paths.push(PathBuf::from(arg));
            continue;
        }
        match arg.to_str() {
            Some("--") => only_paths = true,
            Some("--records") => flags.records = true,
            Some("--verify-only") => flags.verify_only = true,
            Some("--index-entries") => flags.index_entries = true,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some(s) if s.starts_with('-') => {
                eprintln!("dump: unknown option {s}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    if paths.is_empty() {
        eprintln!("dump: no PATH given\n{USAGE}");
        return ExitCode::from(2);
    }
    if flags.verify_only && (flags.records || flags.index_entries) {
        eprintln!("dump: --verify-only prints no batches, records or entries\n{USAGE}");
        return ExitCode::from(2);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut status = 0u8;
    for path in &paths {
        let s = match dump_path(&mut out, path, flags) {
            Ok(s) => s,
            // Standard output is gone (e.g. piped into `head`): nothing more to say.
            Err(_) => return ExitCode::from(2),
        };
        status = status.max(s);
    }
    if out.flush().is_err() {
        return ExitCode::from(2);
    }
    ExitCode::from(status)
}

/// Dumps and verifies one PATH; returns its exit status (0, 1 or 2).
fn dump_path(out: &mut impl Write, path: &Path, flags: Flags) -> io::Result<u8> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            out.flush()?;
            eprintln!("dump: {}: {e}", path.display());
            return Ok(2);
        }
    };
    // An index file stands for its segment: dump the `.log` beside it.
    let log_path;
    let path = match path.file_name().and_then(|n| n.to_str()).and_then(|n| {
        n.strip_suffix(".index")
            .or_else(|| n.strip_suffix(".timeindex"))
    }) {
        Some(stem) if !meta.is_dir() => {
            log_path = path.with_file_name(format!("{stem}.log"));
            log_path.as_path()
        }
        _ => path,
    };
    let opts = Options::default()
        .with_batches(!flags.verify_only)
        .with_records(flags.records);
    let problems: Vec<Problem> = if meta.is_dir() {
        let report = match verify_partition(path, &opts) {
            Ok(r) => r,
            Err(e) => {
                out.flush()?;
                eprintln!("dump: {e}");
                return Ok(2);
            }
        };
        print_partition(out, &report, flags)?;
        report.problems().cloned().collect()
    } else {
        let report = match verify_segment(path, &opts) {
            Ok(r) => r,
            Err(e) => {
                out.flush()?;
                eprintln!("dump: {e}");
                return Ok(2);
            }
        };
        print_segment(out, &report, flags)?;
        report.problems().cloned().collect()
    };
    if problems.is_empty() {
        writeln!(out, "OK")?;
        Ok(0)
    } else {
        let n = problems.len();
        writeln!(out, "{n} problem{} found:", if n == 1 { "" } else { "s" })?;
        for p in &problems {
            writeln!(out, "  {p}")?;
        }
        Ok(1)
    }
}

fn print_partition(out: &mut impl Write, r: &PartitionReport, flags: Flags) -> io::Result<()> {
    for seg in &r.segments {
        print_segment(out, seg, flags)?;
    }
    let first = r.segments.iter().find_map(|s| s.log.first_offset);
    let last = r.segments.iter().filter_map(|s| s.log.last_offset).max();
    let records: u64 = r.segments.iter().map(|s| s.log.record_count).sum();
    write!(
        out,
        "Partition {}: {} segment{}, {records} records",
        r.dir.display(),
        r.segments.len(),
        if r.segments.len() == 1 { "" } else { "s" },
    )?;
    match (first, last) {
        (Some(a), Some(b)) => writeln!(out, ", offsets {a}..={b}"),
        _ => writeln!(out),
    }
}

fn print_segment(out: &mut impl Write, r: &SegmentReport, flags: Flags) -> io::Result<()> {
    let log = &r.log;
    writeln!(out, "Dumping {}", log.path.display())?;
    writeln!(out, "Log starting offset: {}", log.base_offset)?;
    if !flags.verify_only {
        for b in &log.batches {
            print_batch(out, b)?;
            if flags.records {
                if b.compression != 0 && b.is_valid() && b.records.is_empty() {
                    writeln!(
                        out,
                        "| records not shown: compressed with {}, not built into this seglog",
                        codec_name(b.compression)
                    )?;
                }
                for rec in &b.records {
                    print_record(out, b, rec)?;
                }
            }
        }
    }
    write!(
        out,
        "Log {}: {} batches, {} records",
        file_of(&log.path),
        log.batch_count,
        log.record_count
    )?;
    if let (Some(a), Some(b)) = (log.first_offset, log.last_offset) {
        write!(out, ", offsets {a}..={b}")?;
    }
    if log.valid_bytes == log.size {
        writeln!(out, ", {} bytes", log.size)?;
    } else {
        writeln!(out, ", {} of {} bytes valid", log.valid_bytes, log.size)?;
    }
    print_index_summary(out, "Index", &r.index)?;
    if flags.index_entries {
        for e in &r.index.entries {
            writeln!(out, "  offset: {} position: {}", e.offset, e.position)?;
        }
    }
    print_index_summary(out, "Time index", &r.time_index)?;
    if flags.index_entries {
        for e in &r.time_index.entries {
            writeln!(out, "  timestamp: {} offset: {}", e.timestamp, e.offset)?;
        }
    }
    Ok(())
}

fn print_index_summary<E>(out: &mut impl Write, what: &str, r: &IndexReport<E>) -> io::Result<()> {
    write!(out, "{what} {}: ", file_of(&r.path))?;
    if !r.present {
        return writeln!(out, "missing (rebuilt from the log when seglog opens it)");
    }
    write!(out, "{} entries, {} bytes", r.entries.len(), r.size)?;
    if r.unused_slots > 0 {
        write!(out, " ({} preallocated slots unused)", r.unused_slots)?;
    }
    if r.unchecked > 0 {
        write!(
            out,
            ", {} entries past the log's first bad batch not checked",
            r.unchecked
        )?;
    }
    match r.problems.len() {
        0 => writeln!(out, ", checked OK"),
        n => writeln!(out, ", {n} problem{}", if n == 1 { "" } else { "s" }),
    }
}

/// One batch in `kafka-dump-log`'s format.
fn print_batch(out: &mut impl Write, b: &BatchInfo) -> io::Result<()> {
    let horizon = if b.has_delete_horizon() {
        format!("OptionalLong[{}]", b.base_timestamp)
    } else {
        "OptionalLong.empty".to_string()
    };
    writeln!(
        out,
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
         producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} deleteHorizonMs: {horizon} position: {} {}: {} size: {} magic: 2 \
         compresscodec: {} crc: {} isValid: {}",
        b.base_offset,
        b.last_offset,
        b.records_count,
        b.base_sequence,
        b.last_sequence(),
        b.producer_id,
        b.producer_epoch,
        b.partition_leader_epoch,
        b.is_transactional(),
        b.is_control(),
        b.position,
        timestamp_type(b.timestamp_type),
        b.max_timestamp,
        b.size,
        codec_name(b.compression),
        b.crc,
        b.is_valid() && b.crc_ok,
    )
}

/// One record in `kafka-dump-log --print-data-log`'s format.
fn print_record(out: &mut impl Write, b: &BatchInfo, r: &RecordInfo) -> io::Result<()> {
    let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(-1, |v| v.len() as i64);
    let header_keys: Vec<String> = r
        .headers
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    write!(
        out,
        "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}]",
        r.offset,
        timestamp_type(b.timestamp_type),
        r.timestamp,
        size(&r.key),
        size(&r.value),
        r.sequence,
        header_keys.join(","),
    )?;
    if b.is_control() {
        // A transaction marker, as kafka-dump-log shows it (never as a record).
        match seglog::record::ControlRecord::parse(r.key.as_deref(), r.value.as_deref()) {
            Ok(c) => match c.coordinator_epoch {
                Some(epoch) => write!(
                    out,
                    " endTxnMarker: {:?} coordinatorEpoch: {epoch}",
                    c.control_type
                )?,
                None => write!(out, " controlType: {:?}", c.control_type)?,
            },
            Err(e) => write!(out, " control record: {e}")?,
        }
        return writeln!(out);
    }
    if let Some(k) = &r.key {
        write!(out, " key: {}", show(k))?;
    }
    if let Some(v) = &r.value {
        write!(out, " payload: {}", show(v))?;
    }
    writeln!(out)
}

/// Printable UTF-8 as text, anything else as hex; at most 80 characters, then `...`.
fn show(bytes: &[u8]) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => {
            let mut hex = String::from("0x");
            for b in bytes.iter().take(MAX_SHOWN / 2) {
                hex.push_str(&format!("{b:02x}"));
            }
            hex
        }
    };
    if text.chars().count() > MAX_SHOWN {
        let cut: String = text.chars().take(MAX_SHOWN).collect();
        format!("{cut}... ({} bytes)", bytes.len())
    } else {
        text
    }
}

fn timestamp_type(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

fn codec_name(codec: u8) -> String {
    match codec {
        0 => "none".into(),
        1 => "gzip".into(),
        2 => "snappy".into(),
        3 => "lz4".into(),
        4 => "zstd".into(),
        n => format!("unknown({n})"),
    }
}

fn file_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
