//! The output half of the OTLP/JSON codec: appends JSON tokens to a byte
//! buffer. Field order and which fields are written are decided by the
//! message declarations in `mapping`; this only spells values.

use base64::Engine as _;

pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    /// Bytes the output may take: once a string (or bytes) value would go
    /// past it, `over` is set and no further values are written (the fields
    /// around them are a few bytes each).
    limit: usize,
    pub(crate) over: bool,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self::new(Vec::with_capacity(n), usize::MAX)
    }

    pub(crate) fn new(buf: Vec<u8>, limit: usize) -> Self {
        Self {
            buf,
            limit,
            over: false,
        }
    }

    /// Whether `more` bytes may still be written (sets `over` if not).
    fn room(&mut self, more: usize) -> bool {
        if self.over || self.buf.len().saturating_add(more) > self.limit {
            self.over = true;
        }
        !self.over
    }

    /// Writes `"key":`, preceded by a comma unless it is the object's first.
    pub(crate) fn key(&mut self, first: &mut bool, key: &str) {
        if !*first {
            self.buf.push(b',');
        }
        *first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    pub(crate) fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// A JSON string literal, escaped as RFC 8259 requires.
    pub(crate) fn string(&mut self, s: &str) {
        if !self.room(s.len() + 2) {
            return;
        }
        self.buf.push(b'"');
        let bytes = s.as_bytes();
        let mut run = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => continue,
            };
            self.buf
                .extend_from_slice(bytes.get(run..i).unwrap_or_default());
            if escape.is_empty() {
                self.buf.extend_from_slice(b"\\u00");
                self.buf.push(hex_digit(b >> 4));
                self.buf.push(hex_digit(b & 0xf));
            } else {
                self.buf.extend_from_slice(escape);
            }
            run = i + 1;
        }
        self.buf
            .extend_from_slice(bytes.get(run..).unwrap_or_default());
        self.buf.push(b'"');
    }

    pub(crate) fn int(&mut self, v: impl itoa::Integer) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// A 64-bit integer: a decimal string, as proto3 JSON requires.
    pub(crate) fn int_string(&mut self, v: impl itoa::Integer) {
        self.buf.push(b'"');
        self.int(v);
        self.buf.push(b'"');
    }

    /// A double: a JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub(crate) fn double(&mut self, v: f64) {
        if v.is_nan() {
            self.raw("\"NaN\"");
        } else if v.is_infinite() {
            self.raw(if v > 0.0 {
                "\"Infinity\""
            } else {
                "\"-Infinity\""
            });
        } else {
            self.buf
                .extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        }
    }

    /// Lowercase hex of an id.
    pub(crate) fn hex(&mut self, bytes: &[u8]) {
        if !self.room(bytes.len() * 2 + 2) {
            return;
        }
        self.buf.push(b'"');
        for &b in bytes {
            self.buf.push(hex_digit(b >> 4));
            self.buf.push(hex_digit(b & 0xf));
        }
        self.buf.push(b'"');
    }

    /// Standard, padded base64.
    pub(crate) fn base64(&mut self, bytes: &[u8]) {
        if !self.room(bytes.len().div_ceil(3) * 4 + 2) {
            return;
        }
        self.buf.push(b'"');
        let mut s = String::new();
        base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut s);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'"');
    }
}

/// The lowercase hex digit of a nibble (`n` < 16).
fn hex_digit(n: u8) -> u8 {
    if n < 10 { b'0' + n } else { b'a' + (n - 10) }
}
