//! Trace and span identifiers.

use std::fmt;

use super::rejection::Rejection;

/// A 16-byte W3C trace id; never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// An 8-byte span id; never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// Parses the raw OTLP bytes: exactly 16 bytes, not all zero.
    pub fn from_bytes(b: &[u8]) -> Result<Self, Rejection> {
        let arr: [u8; 16] = b.try_into().map_err(|_| Rejection::InvalidTraceId)?;
        if arr == [0; 16] {
            return Err(Rejection::InvalidTraceId);
        }
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl SpanId {
    /// Parses the raw OTLP bytes: exactly 8 bytes, not all zero.
    pub fn from_bytes(b: &[u8]) -> Result<Self, Rejection> {
        let arr: [u8; 8] = b.try_into().map_err(|_| Rejection::InvalidSpanId)?;
        if arr == [0; 8] {
            return Err(Rejection::InvalidSpanId);
        }
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

/// An optional id reference (a parent span, or the trace context of a log
/// record): empty means "none"; otherwise it must be a valid id of `len` bytes.
pub(crate) fn check_optional_id(b: &[u8], len: usize) -> bool {
    b.is_empty() || (b.len() == len && b.iter().any(|&x| x != 0))
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_zero_and_wrong_length() {
        assert_eq!(
            TraceId::from_bytes(&[0; 16]),
            Err(Rejection::InvalidTraceId)
        );
        assert_eq!(
            TraceId::from_bytes(&[1; 15]),
            Err(Rejection::InvalidTraceId)
        );
        assert_eq!(SpanId::from_bytes(&[0; 8]), Err(Rejection::InvalidSpanId));
        assert_eq!(SpanId::from_bytes(&[]), Err(Rejection::InvalidSpanId));
        let t = TraceId::from_bytes(&[0xab; 16]).unwrap();
        assert_eq!(t.to_string(), "ab".repeat(16));
        assert_eq!(
            SpanId::from_bytes(&[1, 2, 3, 4, 5, 6, 7, 8])
                .unwrap()
                .to_string(),
            "0102030405060708"
        );
        assert!(check_optional_id(&[], 8));
        assert!(check_optional_id(&[1; 8], 8));
        assert!(!check_optional_id(&[0; 8], 8));
        assert!(!check_optional_id(&[1; 7], 8));
    }
}
