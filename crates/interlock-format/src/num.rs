//! Small, checked number parsers shared by the format modules.
//!
//! `str::parse` accepts a leading `+` and works only on `&str`; the files parsed here are
//! bytes, and each format has its own idea of what a number looks like (canonical `%d`
//! output, `%lu` with leading zeros tolerated, octal, hexadecimal). These helpers say
//! exactly what they accept, never allocate and never overflow.

/// Parses a non-empty run of ASCII digits in `radix` (2..=16, lowercase or uppercase
/// letters), with leading zeros allowed. `None` on anything else or on overflow.
pub(crate) fn parse_unsigned(bytes: &[u8], radix: u32) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in bytes {
        let digit = char::from(b).to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// Decimal digits with leading zeros allowed (`sscanf("%lu")` style, without sign).
pub(crate) fn dec_u64(bytes: &[u8]) -> Option<u64> {
    parse_unsigned(bytes, 10)
}

/// True if `digits` is how `printf("%d")` writes a number: no leading zero unless the
/// number is zero itself.
fn is_canonical(digits: &[u8]) -> bool {
    !(digits.len() > 1 && digits.first() == Some(&b'0'))
}

/// Decimal as `printf("%lu")` writes it: digits only, no leading zeros.
pub(crate) fn canonical_u64(bytes: &[u8]) -> Option<u64> {
    if !is_canonical(bytes) {
        return None;
    }
    dec_u64(bytes)
}

/// Decimal as `printf("%ld")` writes it: optional `-`, digits, no leading zeros, no `-0`.
pub(crate) fn canonical_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let magnitude = canonical_u64(digits)?;
    if negative {
        if magnitude == 0 {
            return None;
        }
        // -(2^63) is representable; 0 - magnitude is checked.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Decimal `int` as `%d` writes it (optional `-`, no leading zeros).
pub(crate) fn canonical_i32(bytes: &[u8]) -> Option<i32> {
    canonical_i64(bytes).and_then(|v| i32::try_from(v).ok())
}

/// Decimal with an optional `-` and leading zeros allowed (kernel `%d` output is canonical,
/// but tolerating zeros costs nothing for tables whose columns are only whitespace-separated).
pub(crate) fn dec_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let magnitude = dec_u64(digits)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// [`dec_i64`] narrowed to `i32`.
pub(crate) fn dec_i32(bytes: &[u8]) -> Option<i32> {
    dec_i64(bytes).and_then(|v| i32::try_from(v).ok())
}

/// [`dec_u64`] narrowed to `u32`.
pub(crate) fn dec_u32(bytes: &[u8]) -> Option<u32> {
    dec_u64(bytes).and_then(|v| u32::try_from(v).ok())
}

/// Splits on runs of ASCII spaces and tabs, skipping empty pieces.
pub(crate) fn fields(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|piece| !piece.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned() {
        assert_eq!(dec_u64(b"0"), Some(0));
        assert_eq!(dec_u64(b"007"), Some(7));
        assert_eq!(dec_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(dec_u64(b"18446744073709551616"), None);
        assert_eq!(dec_u64(b""), None);
        assert_eq!(dec_u64(b"+1"), None);
        assert_eq!(dec_u64(b"1 "), None);
        assert_eq!(parse_unsigned(b"7f2b", 16), Some(0x7f2b));
        assert_eq!(parse_unsigned(b"1600", 8), Some(0o1600));
        assert_eq!(parse_unsigned(b"8", 8), None);
    }

    #[test]
    fn canonical() {
        assert_eq!(canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(canonical_i64(b"9223372036854775808"), None);
        assert_eq!(canonical_i64(b"-0"), None);
        assert_eq!(canonical_i64(b"01"), None);
        assert_eq!(canonical_i64(b"-"), None);
        assert_eq!(canonical_i64(b"0"), Some(0));
        assert_eq!(canonical_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(canonical_i32(b"2147483648"), None);
    }

    #[test]
    fn signed_lenient() {
        assert_eq!(dec_i32(b"-2147483647"), Some(-2_147_483_647));
        assert_eq!(dec_i32(b"-0"), Some(0));
        assert_eq!(dec_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn split_fields() {
        let v: Vec<&[u8]> = fields(b"  a \tb  c ").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"c"]);
    }
}
