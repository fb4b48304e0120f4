//! Kafka's batch compression codecs (attribute bits 0..=2 of a v2 batch).
//!
//! A compressed batch keeps its 61-byte header in the clear; everything after it (the
//! records section) is one compressed stream, and the CRC covers the compressed bytes.
//! Each codec sits behind its own cargo feature (`gzip`, `snappy`, `lz4`, `zstd`, all on by
//! default); a codec whose feature is off is refused with an error naming both.

use std::fmt;
#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
use std::io::Read;
#[cfg(any(feature = "gzip", feature = "lz4"))]
use std::io::Write;
use std::ops::RangeInclusive;

/// Largest records section a compressed batch may decompress to: 64 MiB. Decoding a batch
/// whose stream would inflate past it fails (a decompression bomb cannot exhaust memory),
/// and encoding refuses records whose uncompressed section is larger, so seglog never
/// writes a batch it cannot read back. Kafka's own default batch limit is 1 MiB.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// A batch compression codec, as Kafka's producer and `compression.type` name them, with
/// the level where Kafka has one (`None` takes Kafka's default level).
///
/// ```
/// use seglog::Compression;
/// let c = Compression::Zstd { level: Some(19) };
/// assert_eq!((c.id(), c.name(), c.level()), (4, "zstd", Some(19)));
/// assert_eq!(Compression::GZIP.level(), Some(6));
/// assert_eq!(Compression::from_id(3), Some(Compression::LZ4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (codec id 0).
    #[default]
    None,
    /// gzip (codec id 1), levels 1..=9; Kafka's default is zlib's default, 6.
    Gzip {
        /// Compression level; `None` for the default.
        level: Option<i32>,
    },
    /// Snappy (codec id 2), written in snappy-java's framed stream as Kafka's Java
    /// producer writes it; no levels.
    Snappy,
    /// LZ4 frame format (codec id 3), levels 1..=17; Kafka's default is 9. The level is
    /// kept and checked but the encoder used here has one speed (LZ4's fast mode); any
    /// level decodes the same.
    Lz4 {
        /// Compression level; `None` for the default.
        level: Option<i32>,
    },
    /// Zstandard (codec id 4), levels -131072..=22; Kafka's default is 3.
    Zstd {
        /// Compression level; `None` for the default.
        level: Option<i32>,
    },
}

impl Compression {
    /// gzip at Kafka's default level.
    pub const GZIP: Compression = Compression::Gzip { level: None };
    /// Snappy.
    pub const SNAPPY: Compression = Compression::Snappy;
    /// LZ4 at Kafka's default level.
    pub const LZ4: Compression = Compression::Lz4 { level: None };
    /// Zstandard at Kafka's default level.
    pub const ZSTD: Compression = Compression::Zstd { level: None };
    /// Every codec, each at its default level, in codec-id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::GZIP,
        Compression::SNAPPY,
        Compression::LZ4,
        Compression::ZSTD,
    ];

    /// Kafka's codec id, the value of attribute bits 0..=2 (0 none, 1 gzip, 2 snappy,
    /// 3 lz4, 4 zstd).
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip { .. } => 1,
            Compression::Snappy => 2,
            Compression::Lz4 { .. } => 3,
            Compression::Zstd { .. } => 4,
        }
    }

    /// The codec with Kafka's codec id `id` at its default level; `None` for ids 5..=7.
    pub fn from_id(id: u8) -> Option<Compression> {
        Compression::ALL.get(id as usize).copied()
    }

    /// Kafka's name of the codec: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        codec_name(self.id())
    }

    /// The level used: the one given, or Kafka's default; `None` for codecs without levels.
    pub fn level(self) -> Option<i32> {
        match self {
            Compression::None | Compression::Snappy => None,
            Compression::Gzip { level } => Some(level.unwrap_or(6)),
            Compression::Lz4 { level } => Some(level.unwrap_or(9)),
            Compression::Zstd { level } => Some(level.unwrap_or(3)),
        }
    }

    /// The levels Kafka accepts for this codec; `None` for codecs without levels.
    pub fn level_range(self) -> Option<RangeInclusive<i32>> {
        match self {
            Compression::None | Compression::Snappy => None,
            Compression::Gzip { .. } => Some(1..=9),
            Compression::Lz4 { .. } => Some(1..=17),
            Compression::Zstd { .. } => Some(-131_072..=22),
        }
    }

    /// The cargo feature that builds this codec in; `None` for no compression.
    pub fn feature(self) -> Option<&'static str> {
        codec_feature(self.id())
    }

    /// True when this build can encode and decode the codec (its cargo feature is on).
    pub fn is_available(self) -> bool {
        codec_available(self.id())
    }

    /// Checks that the level, if given, is in [`Compression::level_range`].
    ///
    /// # Errors
    /// A message naming the codec, the level and the allowed range.
    pub fn check_level(self) -> Result<(), String> {
        match (self.level(), self.level_range()) {
            (Some(l), Some(r)) if !r.contains(&l) => Err(format!(
                "{} level {l} is outside {}..={}",
                self.name(),
                r.start(),
                r.end()
            )),
            _ => Ok(()),
        }
    }
}

/// `name` or `name:level` when a level was given (the spelling of `seglog-topics`).
impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip { level: Some(l) }
            | Compression::Lz4 { level: Some(l) }
            | Compression::Zstd { level: Some(l) } => write!(f, "{}:{l}", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// Parses `none`, `gzip`, `snappy`, `lz4`, `zstd`, each with an optional `:level` where
/// the codec has levels. The level's range is not checked here
/// ([`Compression::check_level`]).
impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Compression, String> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (
                n,
                Some(
                    l.parse::<i32>()
                        .map_err(|_| format!("bad compression level {l:?}"))?,
                ),
            ),
            None => (s, None),
        };
        match (name, level) {
            ("none", None) => Ok(Compression::None),
            ("snappy", None) => Ok(Compression::Snappy),
            ("gzip", level) => Ok(Compression::Gzip { level }),
            ("lz4", level) => Ok(Compression::Lz4 { level }),
            ("zstd", level) => Ok(Compression::Zstd { level }),
            _ => Err(format!("unknown compression {s:?}")),
        }
    }
}

/// Kafka's name of codec id `id` (`unknown` for 5..=7).
pub(crate) fn codec_name(id: u8) -> &'static str {
    match id {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

fn codec_feature(id: u8) -> Option<&'static str> {
    match id {
        1 => Some("gzip"),
        2 => Some("snappy"),
        3 => Some("lz4"),
        4 => Some("zstd"),
        _ => None,
    }
}

fn codec_available(id: u8) -> bool {
    let built_in = [
        true,
        cfg!(feature = "gzip"),
        cfg!(feature = "snappy"),
        cfg!(feature = "lz4"),
        cfg!(feature = "zstd"),
    ];
    built_in.get(id as usize).copied().unwrap_or(false)
}

/// Why a codec could not run; the batch layer turns it into a `DecodeError`/`EncodeError`.
#[derive(Debug)]
pub(crate) enum CodecError {
    /// Codec id 5..=7.
    Unknown(u8),
    /// The codec's cargo feature is off.
    Disabled {
        codec: &'static str,
        feature: &'static str,
    },
    /// The stream inflates past the limit.
    TooLarge { codec: &'static str, limit: usize },
    /// The codec refused the bytes (corrupt or cut short) or the level.
    Failed { codec: &'static str, reason: String },
}

fn check_available(id: u8) -> Result<(), CodecError> {
    if id > 4 {
        return Err(CodecError::Unknown(id));
    }
    if !codec_available(id) {
        return Err(CodecError::Disabled {
            codec: codec_name(id),
            feature: codec_feature(id).unwrap_or("none"),
        });
    }
    Ok(())
}

#[allow(dead_code)] // unused when every codec's feature is off
fn failed(id: u8, reason: impl fmt::Display) -> CodecError {
    CodecError::Failed {
        codec: codec_name(id),
        reason: reason.to_string(),
    }
}

/// Reads all of `r` into `out`, refusing more than `limit` bytes in total in `out`.
#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn read_capped(id: u8, r: impl Read, out: &mut Vec<u8>, limit: usize) -> Result<(), CodecError> {
    let room = limit.saturating_sub(out.len()) as u64;
    r.take(room + 1)
        .read_to_end(out)
        .map_err(|e| failed(id, e))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge {
            codec: codec_name(id),
            limit,
        });
    }
    Ok(())
}

/// Appends the decompression of `input` (a batch's records section compressed with codec
/// `id`) to `out`, which may grow to at most `limit` bytes.
#[allow(unused_variables)] // with a codec's feature off its arm ignores the input
pub(crate) fn decompress(
    id: u8,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CodecError> {
    check_available(id)?;
    match id {
        0 => {
            if out.len() + input.len() > limit {
                return Err(CodecError::TooLarge {
                    codec: codec_name(id),
                    limit,
                });
            }
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        1 => read_capped(id, flate2::read::MultiGzDecoder::new(input), out, limit),
        #[cfg(feature = "snappy")]
        2 => snappy::decompress(input, out, limit),
        #[cfg(feature = "lz4")]
        3 => {
            lz4_frame_is_whole(input).map_err(|reason| failed(id, reason))?;
            read_capped(id, lz4_flex::frame::FrameDecoder::new(input), out, limit)
        }
        #[cfg(feature = "zstd")]
        4 => {
            let d = zstd::stream::read::Decoder::with_buffer(input).map_err(|e| failed(id, e))?;
            read_capped(id, d, out, limit)
        }
        _ => unreachable!("check_available refused codec {id}"),
    }
}

/// Checks that `input` is exactly one LZ4 frame whose block chain ends with the end mark
/// (and content checksum, when flagged): the decoder alone takes a stream cut inside the
/// end mark as whole, where Kafka's reader fails on it.
#[cfg(feature = "lz4")]
fn lz4_frame_is_whole(input: &[u8]) -> Result<(), String> {
    const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    if input.len() < 7 || input[..4] != MAGIC {
        return Err("not an LZ4 frame (bad magic or too short)".into());
    }
    let flg = input[4];
    let (block_checksum, content_size, content_checksum, dict_id) = (
        flg & 0x10 != 0,
        flg & 0x08 != 0,
        flg & 0x04 != 0,
        flg & 0x01 != 0,
    );
    let mut pos = 6 + 8 * content_size as usize + 4 * dict_id as usize + 1;
    loop {
        let Some(word) = input.get(pos..pos + 4) else {
            return Err("LZ4 frame cut short before its end mark".into());
        };
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        pos += 4;
        if word == 0 {
            break;
        }
        pos += (word & 0x7fff_ffff) as usize + 4 * block_checksum as usize;
    }
    let end = pos + 4 * content_checksum as usize;
    match end.cmp(&input.len()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err("LZ4 frame cut short in its content checksum".into()),
        std::cmp::Ordering::Less => Err(format!(
            "{} bytes after the LZ4 frame's end",
            input.len() - end
        )),
    }
}

/// Appends `input` compressed with `c` (what Kafka's Java producer writes) to `out`.
#[allow(unused_variables)] // with a codec's feature off its arm ignores the input
pub(crate) fn compress(c: Compression, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let id = c.id();
    check_available(id)?;
    c.check_level().map_err(|reason| CodecError::Failed {
        codec: c.name(),
        reason,
    })?;
    let level = c.level().unwrap_or(0);
    match c {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip { .. } => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(level as u32));
            e.write_all(input).map_err(|e| failed(id, e))?;
            e.finish().map(drop).map_err(|e| failed(id, e))
        }
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::compress(input, out),
        #[cfg(feature = "lz4")]
        Compression::Lz4 { .. } => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            // KafkaLZ4BlockOutputStream's frame: 64 KiB independent blocks, no checksums
            // besides the header's, no content size.
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut e = FrameEncoder::with_frame_info(info, out);
            e.write_all(input).map_err(|e| failed(id, e))?;
            e.finish().map(drop).map_err(|e| failed(id, e))
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd { .. } => zstd_compress(level, input, out),
        #[allow(unreachable_patterns)]
        _ => unreachable!("check_available refused codec {id}"),
    }
}

/// One zstd frame of `input`, appended to `out`, through a compression context kept per
/// thread: making a context costs far more than compressing a small batch (its tables are
/// set up anew), so each appending thread keeps one (about a megabyte at the default level).
#[cfg(feature = "zstd")]
fn zstd_compress(level: i32, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    use std::cell::RefCell;
    thread_local! {
        static CONTEXT: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { RefCell::new(None) };
    }
    let id = Compression::Zstd { level: None }.id();
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        let compressor = match &mut *context {
            Some((l, c)) if *l == level => c,
            slot => {
                let c = zstd::bulk::Compressor::new(level).map_err(|e| failed(id, e))?;
                &mut slot.insert((level, c)).1
            }
        };
        let start = out.len();
        out.resize(start + zstd::zstd_safe::compress_bound(input.len()), 0);
        match compressor.compress_to_buffer(input, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(failed(id, e))
            }
        }
    })
}

/// snappy-java's framed stream (what Kafka's Java producer writes) and plain raw blocks.
#[cfg(feature = "snappy")]
pub(crate) mod snappy {
    use super::{failed, CodecError};

    /// snappy-java's stream header: magic, then version 1 and compatible version 1
    /// (big-endian int32s).
    pub(crate) const XERIAL_HEADER: [u8; 16] = [
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    /// The magic alone: what a reader matches before choosing the framed path.
    const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    /// snappy-java's default block size: input is cut into blocks of this many bytes.
    const BLOCK: usize = 32 * 1024;
    const ID: u8 = 2;

    pub(crate) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&XERIAL_HEADER);
        let mut enc = snap::raw::Encoder::new();
        let mut block = vec![0; snap::raw::max_compress_len(BLOCK)];
        for chunk in input.chunks(BLOCK) {
            let n = enc.compress(chunk, &mut block).map_err(|e| failed(ID, e))?;
            out.extend_from_slice(&(n as u32).to_be_bytes());
            out.extend_from_slice(&block[..n]);
        }
        Ok(())
    }

    pub(crate) fn decompress(
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), CodecError> {
        if !input.starts_with(&XERIAL_MAGIC) {
            // Not framed: snappy-java reads the whole stream as one raw block.
            return raw_block(input, out, limit);
        }
        if input.len() < XERIAL_HEADER.len() {
            return Err(failed(ID, "snappy stream header cut short"));
        }
        let mut rest = &input[XERIAL_HEADER.len()..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(failed(ID, "snappy block length cut short"));
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if len > rest.len() {
                return Err(failed(
                    ID,
                    format!(
                        "snappy block of {len} bytes, only {} left (cut short?)",
                        rest.len()
                    ),
                ));
            }
            raw_block(&rest[..len], out, limit)?;
            rest = &rest[len..];
        }
        Ok(())
    }

    /// Appends one raw snappy block, refusing to grow `out` past `limit`.
    fn raw_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), CodecError> {
        let n = snap::raw::decompress_len(block).map_err(|e| failed(ID, e))?;
        if n > limit.saturating_sub(out.len()) {
            return Err(CodecError::TooLarge {
                codec: "snappy",
                limit,
            });
        }
        let at = out.len();
        out.resize(at + n, 0);
        let written = snap::raw::Decoder::new()
            .decompress(block, &mut out[at..])
            .map_err(|e| failed(ID, e));
        match written {
            Ok(w) if w == n => Ok(()),
            Ok(w) => {
                out.truncate(at);
                Err(failed(
                    ID,
                    format!("snappy block gave {w} bytes, header said {n}"),
                ))
            }
            Err(e) => {
                out.truncate(at);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| format!("{{\"user\":{},\"n\":{}}}", i % 97, i).into_bytes())
            .collect()
    }

    /// Every built-in codec inflates at most to the limit: a stream that would go past it
    /// is refused, whatever the codec's own framing says.
    #[test]
    fn decompression_stops_at_the_limit() {
        let input = sample();
        for c in Compression::ALL.into_iter().filter(|c| c.is_available()) {
            let mut z = Vec::new();
            compress(c, &input, &mut z).unwrap();
            let mut out = Vec::new();
            decompress(c.id(), &z, &mut out, input.len()).unwrap();
            assert_eq!(out, input, "{c}");
            let mut out = Vec::new();
            match decompress(c.id(), &z, &mut out, input.len() - 1) {
                Err(CodecError::TooLarge { limit, .. }) => assert_eq!(limit, input.len() - 1),
                other => panic!("{c}: expected TooLarge, got {other:?}"),
            }
            assert!(out.len() <= input.len(), "{c}: wrote {} bytes", out.len());
        }
    }

    /// Levels are checked against Kafka's ranges before any codec runs.
    #[test]
    fn levels_outside_kafkas_ranges_are_refused() {
        for bad in [
            Compression::Gzip { level: Some(0) },
            Compression::Gzip { level: Some(10) },
            Compression::Lz4 { level: Some(18) },
            Compression::Zstd { level: Some(23) },
            Compression::Zstd {
                level: Some(-131_073),
            },
        ] {
            assert!(bad.check_level().is_err(), "{bad}");
        }
        for good in [
            Compression::Gzip { level: Some(9) },
            Compression::Lz4 { level: Some(1) },
            Compression::Zstd {
                level: Some(-131_072),
            },
            Compression::ZSTD,
        ] {
            assert!(good.check_level().is_ok(), "{good}");
        }
    }

    #[test]
    fn names_and_levels_round_trip_through_their_spelling() {
        for c in [
            Compression::None,
            Compression::GZIP,
            Compression::Gzip { level: Some(4) },
            Compression::SNAPPY,
            Compression::Lz4 { level: Some(12) },
            Compression::Zstd { level: Some(-7) },
        ] {
            assert_eq!(c.to_string().parse::<Compression>(), Ok(c));
        }
        assert!("snappy:3".parse::<Compression>().is_err());
        assert!("brotli".parse::<Compression>().is_err());
    }

    #[cfg(feature = "snappy")]
    #[test]
    fn snappy_accepts_a_plain_raw_block() {
        let input = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let mut out = Vec::new();
        decompress(2, &raw, &mut out, usize::MAX).unwrap();
        assert_eq!(out, input);
        // A raw block that claims a huge length is refused before any allocation.
        let mut out = Vec::new();
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            decompress(2, &bomb, &mut out, 1 << 20),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[cfg(not(feature = "gzip"))]
    #[test]
    fn gzip_off_names_the_codec_and_feature() {
        let e = compress(Compression::GZIP, b"x", &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                e,
                CodecError::Disabled {
                    codec: "gzip",
                    feature: "gzip"
                }
            ),
            "{e:?}"
        );
        assert!(!Compression::GZIP.is_available());
    }

    #[cfg(not(feature = "snappy"))]
    #[test]
    fn snappy_off_names_the_codec_and_feature() {
        let e = decompress(2, b"x", &mut Vec::new(), 10).unwrap_err();
        assert!(
            matches!(
                e,
                CodecError::Disabled {
                    codec: "snappy",
                    feature: "snappy"
                }
            ),
            "{e:?}"
        );
    }

    #[cfg(not(feature = "lz4"))]
    #[test]
    fn lz4_off_names_the_codec_and_feature() {
        let e = decompress(3, b"x", &mut Vec::new(), 10).unwrap_err();
        assert!(
            matches!(
                e,
                CodecError::Disabled {
                    codec: "lz4",
                    feature: "lz4"
                }
            ),
            "{e:?}"
        );
    }

    /// With zstd left out, a Kafka zstd batch decodes to an error naming codec and feature.
    #[cfg(not(feature = "zstd"))]
    #[test]
    fn zstd_off_names_the_codec_and_feature() {
        let bin = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kafka-java/codec-zstd.bin"
        ))
        .unwrap();
        let b = crate::record::Batch::parse(&bin).unwrap();
        let e = b.records_with(&mut Vec::new()).unwrap_err();
        assert_eq!(
            e,
            crate::record::DecodeError::CodecDisabled {
                position: 0,
                codec: "zstd",
                feature: "zstd"
            }
        );
        assert!(e.to_string().contains("`zstd` cargo feature"), "{e}");
        assert!(b.validate_all().is_err());
        let mut spec = crate::record::BatchSpec::new(0, 0);
        spec.compression = Compression::ZSTD;
        let e = crate::record::encode_batch(&mut Vec::new(), &spec, &[crate::Record::new("x")])
            .unwrap_err();
        assert_eq!(
            e,
            crate::record::EncodeError::CodecDisabled {
                codec: "zstd",
                feature: "zstd"
            }
        );
    }
}
