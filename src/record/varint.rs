//! Kafka's zig-zag variable-length integers (protobuf style), as used inside v2 records.

use super::DecodeError;

/// Largest encoding of a 32-bit varint.
pub(crate) const MAX_VARINT_LEN: usize = 5;
/// Largest encoding of a 64-bit varlong.
pub(crate) const MAX_VARLONG_LEN: usize = 10;

#[inline(always)]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Number of bytes `write_varlong(v)` produces.
#[inline(always)]
pub(crate) fn varlong_len(v: i64) -> usize {
    let z = zigzag(v);
    // Most record fields fit one or two bytes: answer those without arithmetic.
    if z < 1 << 7 {
        1
    } else if z < 1 << 14 {
        2
    } else {
        // bits needed, 7 bits per byte
        (64 - z.leading_zeros() as usize).div_ceil(7)
    }
}

/// Number of bytes `write_varint(v)` produces.
#[inline(always)]
pub(crate) fn varint_len(v: i32) -> usize {
    varlong_len(v as i64)
}

/// Appends the zig-zag varlong encoding of `v`.
#[inline(always)]
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = zigzag(v);
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends the zig-zag varint encoding of `v`.
#[inline(always)]
pub(crate) fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_varlong(out, v as i64)
}

/// Reads a zig-zag varlong at `*pos`, advancing it. At most `max_len` bytes are consumed.
#[inline(always)]
fn read_zigzag(buf: &[u8], pos: &mut usize, max_len: usize) -> Result<i64, DecodeError> {
    // Fast paths: most lengths and deltas fit one or two bytes.
    match buf.get(*pos..) {
        Some(&[b0, ..]) if b0 < 0x80 => {
            *pos += 1;
            Ok(unzigzag(b0 as u64))
        }
        Some(&[b0, b1, ..]) if b1 < 0x80 => {
            *pos += 2;
            Ok(unzigzag((b0 & 0x7f) as u64 | (b1 as u64) << 7))
        }
        _ => read_zigzag_slow(buf, pos, max_len),
    }
}

#[inline(always)]
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn read_zigzag_slow(buf: &[u8], pos: &mut usize, max_len: usize) -> Result<i64, DecodeError> {
    let mut z: u64 = 0;
    for i in 0..max_len {
        let Some(&b) = buf.get(*pos + i) else {
            return Err(DecodeError::Truncated { position: *pos + i });
        };
        z |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            *pos += i + 1;
            return Ok(unzigzag(z));
        }
    }
    Err(DecodeError::BadVarint { position: *pos })
}

/// Reads a 64-bit zig-zag varlong.
#[inline(always)]
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, DecodeError> {
    read_zigzag(buf, pos, MAX_VARLONG_LEN)
}

/// Reads a 32-bit zig-zag varint; values outside `i32` are rejected.
#[inline(always)]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, DecodeError> {
    let start = *pos;
    let v = read_zigzag(buf, pos, MAX_VARINT_LEN)?;
    i32::try_from(v).map_err(|_| DecodeError::BadVarint { position: start })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Kafka's ByteUtilsTest vectors: zig-zag maps 0,-1,1,-2 to 0,1,2,3.
        for (v, bytes) in [
            (0i64, vec![0x00u8]),
            (-1, vec![0x01]),
            (1, vec![0x02]),
            (-2, vec![0x03]),
            (63, vec![0x7e]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
            (i32::MAX as i64, vec![0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN as i64, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(out, bytes, "encoding of {v}");
            assert_eq!(varlong_len(v), bytes.len());
        }
    }

    #[test]
    fn overlong_and_truncated_are_errors() {
        let mut pos = 0;
        assert!(matches!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut pos),
            Err(DecodeError::BadVarint { .. })
        ));
        let mut pos = 0;
        assert!(matches!(
            read_varint(&[0x80], &mut pos),
            Err(DecodeError::Truncated { .. })
        ));
        // 2^31 zig-zagged fits in 5 bytes but not in i32
        let mut out = Vec::new();
        write_varlong(&mut out, i32::MAX as i64 + 1);
        let mut pos = 0;
        assert!(read_varint(&out, &mut pos).is_err());
    }

    proptest! {
        #[test]
        fn varlong_roundtrip(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos).unwrap(), v);
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varint_roundtrip(v in any::<i32>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos).unwrap(), v);
        }
    }
}
