//! `seglog-topics`: seglog's own topic metadata at the data-dir root (FORMAT.md §1.2). A
//! header line, then per topic a `topic <name>` line and its `key=value` config lines, and a
//! final `crc32c <hex>` line over everything before it; replaced atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::record::crc32c;
use crate::topic::validate_topic_name;

/// seglog's own topic metadata file at the data-dir root.
pub const TOPICS_FILE: &str = "seglog-topics";
pub(crate) const TOPICS_HEADER: &str = "seglog-topics 1";

/// Writes the topic metadata: a header line, `topic <name>` then `key=value` lines per
/// topic, and a final `crc32c <hex>` line over everything before it.
pub(crate) fn write_topics(dir: &Path, topics: &BTreeMap<String, TopicConfig>) -> Result<()> {
    let mut body = format!("{TOPICS_HEADER}\n");
    for (name, cfg) in topics {
        let _ = writeln!(body, "topic {name}");
        body.push_str(&cfg.to_lines());
    }
    let crc = crc32c(body.as_bytes());
    let _ = writeln!(body, "crc32c {crc:08x}");
    crate::fs::write_atomic(&dir.join(TOPICS_FILE), body.as_bytes())
}

/// Reads the topic metadata; an empty map when the file does not exist.
///
/// # Errors
/// [`Error::Corrupt`] (position and reason) when the file fails its checksum or does
/// not parse; I/O errors.
pub(crate) fn read_topics(dir: &Path) -> Result<BTreeMap<String, TopicConfig>> {
    let path = dir.join(TOPICS_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let corrupt = |position: usize, reason: String| Error::Corrupt {
        path: path.clone(),
        position: position as u64,
        reason,
    };
    let text =
        std::str::from_utf8(&text).map_err(|e| corrupt(e.valid_up_to(), "not UTF-8".into()))?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let (body, crc_line) = text.split_at(body_end);
    let stored = crc_line
        .trim_end()
        .strip_prefix("crc32c ")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| corrupt(body_end, "missing crc32c line (file truncated?)".into()))?;
    let computed = crc32c(body.as_bytes());
    if stored != computed {
        return Err(corrupt(
            body_end,
            format!("checksum mismatch: stored {stored:08x}, computed {computed:08x}"),
        ));
    }
    let mut lines = body.lines();
    if lines.next() != Some(TOPICS_HEADER) {
        return Err(corrupt(0, format!("expected header {TOPICS_HEADER:?}")));
    }
    let mut topics = BTreeMap::new();
    let mut current: Option<(String, TopicConfig)> = None;
    let mut pos = TOPICS_HEADER.len() + 1;
    for line in lines {
        if let Some(name) = line.strip_prefix("topic ") {
            validate_topic_name(name).map_err(|e| corrupt(pos, e.to_string()))?;
            if let Some((n, c)) = current.take() {
                topics.insert(n, c);
            }
            current = Some((name.to_string(), TopicConfig::default()));
        } else {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| corrupt(pos, format!("unexpected line {line:?}")))?;
            let (_, cfg) = current
                .as_mut()
                .ok_or_else(|| corrupt(pos, "setting before any topic".into()))?;
            cfg.set(k, v).map_err(|e| corrupt(pos, e))?;
        }
        pos += line.len() + 1;
    }
    if let Some((n, c)) = current {
        topics.insert(n, c);
    }
    for (name, cfg) in &topics {
        cfg.validate()
            .map_err(|e| corrupt(0, format!("topic {name}: {e}")))?;
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicCompression;
    use crate::record::Compression;

    /// Writes `body` with its CRC line, as `write_topics` would.
    fn write_raw(dir: &Path, body: &str) {
        let crc = crc32c(body.as_bytes());
        std::fs::write(dir.join(TOPICS_FILE), format!("{body}crc32c {crc:08x}\n")).unwrap();
    }

    #[test]
    fn compression_settings_survive_a_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut topics = BTreeMap::new();
        let settings = [
            TopicCompression::Producer,
            TopicCompression::Codec(Compression::None),
            Compression::Gzip { level: Some(9) }.into(),
            Compression::GZIP.into(),
            Compression::SNAPPY.into(),
            Compression::Lz4 { level: Some(1) }.into(),
            Compression::Zstd { level: Some(-5) }.into(),
        ];
        for (i, c) in settings.iter().enumerate() {
            let c = *c;
            if let TopicCompression::Codec(codec) = c {
                if !codec.is_available() {
                    continue;
                }
            }
            topics.insert(format!("t{i}"), TopicConfig::default().compression(c));
        }
        write_topics(dir.path(), &topics).unwrap();
        assert_eq!(read_topics(dir.path()).unwrap(), topics);
        let text = std::fs::read_to_string(dir.path().join(TOPICS_FILE)).unwrap();
        assert!(text.contains("compression=producer\n"), "{text}");
        assert!(text.contains("compression=uncompressed\n"), "{text}");
    }

    /// A file written before the key existed reads as Kafka's default, `producer`.
    #[test]
    fn a_file_without_the_compression_key_reads_as_producer() {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), "seglog-topics 1\ntopic old\npartitions=2\n");
        let topics = read_topics(dir.path()).unwrap();
        assert_eq!(topics["old"].compression, TopicCompression::Producer);
        assert_eq!(topics["old"].partitions, 2);
    }

    #[test]
    fn bad_compression_values_are_corrupt() {
        for bad in ["brotli", "gzip:10", "zstd:x", "snappy:1", "lz4:0", ""] {
            let dir = tempfile::tempdir().unwrap();
            write_raw(
                dir.path(),
                &format!("seglog-topics 1\ntopic t\ncompression={bad}\n"),
            );
            match read_topics(dir.path()) {
                Err(Error::Corrupt { reason, .. }) => {
                    assert!(reason.contains("compression"), "{bad}: {reason}")
                }
                other => panic!("{bad}: expected Corrupt, got {other:?}"),
            }
        }
    }
}
