//! A pull reader over one JSON document: the syntax half of the OTLP/JSON
//! decoder. It hands out keys, strings and number tokens straight from the
//! input (borrowed when they hold no escapes) and never builds a tree.
//!
//! The input is validated as UTF-8 once, up front. Grammar is RFC 8259's,
//! strictly (no trailing commas, no leading zeros, no single quotes, no
//! unescaped control characters, no lone surrogates). Containers nest at most
//! [`MAX_JSON_NESTING`] levels, known or skipped, so neither the reader nor
//! the decoders above it can exhaust the stack.

use std::borrow::Cow;

use super::Failure;
use tf_domain::telemetry::MAX_ANY_VALUE_DEPTH;

/// Deepest nesting of JSON arrays and objects accepted anywhere in a body:
/// enough for [`MAX_ANY_VALUE_DEPTH`] kvlists (4 JSON levels each: the
/// `AnyValue`, the `KeyValueList`, its `values` and the `KeyValue`) below
/// the deepest place a value starts (an exemplar's attribute, 15 levels down).
pub(crate) const MAX_JSON_NESTING: u32 = 4 * MAX_ANY_VALUE_DEPTH + 32;

/// Kind of the next JSON value, for error messages.
pub(crate) fn kind_name(b: Option<u8>) -> &'static str {
    match b {
        Some(b'n') => "null",
        Some(b't' | b'f') => "boolean",
        Some(b'"') => "string",
        Some(b'[') => "array",
        Some(b'{') => "object",
        Some(b'-' | b'0'..=b'9') => "number",
        _ => "invalid JSON",
    }
}

/// A JSON number token: its text and whether it has a fraction or exponent.
pub(crate) struct NumberToken<'a> {
    pub(crate) text: &'a str,
    pub(crate) integral: bool,
}

pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    nesting: u32,
}

/// The index of the first byte at or after `i` that ends a run of plain
/// string content — `"`, `\\` or a control character — or `bytes.len()`.
/// Eight bytes at a time: a word holds such a byte exactly when one of the
/// classic zero-byte / less-than tests is non-zero (a borrow only starts at a
/// byte that matches), so only the word that has one is walked bytewise.
fn plain_run(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |w: u64| {
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
    };
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([b'"'; 8]));
        if special(w) != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Result<Self, Failure> {
        match std::str::from_utf8(body) {
            Ok(text) => Ok(Self {
                text,
                pos: 0,
                nesting: 0,
            }),
            Err(e) => Err(Failure::syntax(
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                body,
                e.valid_up_to(),
            )),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    pub(crate) fn syntax(&self, message: impl Into<String>) -> Failure {
        Failure::syntax(message.into(), self.bytes(), self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.at(self.pos) {
            self.pos += 1;
        }
    }

    /// The first byte of the next value (after whitespace), not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.at(self.pos)
    }

    /// Name of the next value's kind, for "expected X, got Y" messages.
    pub(crate) fn next_kind(&mut self) -> &'static str {
        kind_name(self.peek())
    }

    /// Consumes a `null` if one comes next.
    pub(crate) fn null(&mut self) -> Result<bool, Failure> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), Failure> {
        let end = self.pos + word.len();
        if self.bytes().get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(())
        } else {
            Err(self.syntax(format!("expected `{word}`")))
        }
    }

    /// Ends the document: only whitespace may follow.
    pub(crate) fn finish(&mut self) -> Result<(), Failure> {
        if self.peek().is_some() {
            return Err(self.syntax("trailing characters after the JSON value"));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Failure> {
        self.nesting += 1;
        if self.nesting > MAX_JSON_NESTING {
            return Err(self.syntax(format!("JSON nesting exceeds {MAX_JSON_NESTING} levels")));
        }
        Ok(())
    }

    /// Reads an object (the caller has checked that `{` comes next), calling
    /// `field` with each key; `field` must consume the key's value.
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &str) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        self.pos += 1; // `{`
        self.enter()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.nesting -= 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let key = self.string()?;
            if self.peek() != Some(b':') {
                return Err(self.syntax("expected `:` after a key"));
            }
            self.pos += 1;
            if self.peek().is_none() {
                return Err(self.syntax("unexpected end of input"));
            }
            field(self, &key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.nesting -= 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("expected `,` or `}` in an object")),
            }
        }
    }

    /// Reads an array (the caller has checked that `[` comes next), calling
    /// `item` with each index; `item` must consume the item.
    pub(crate) fn array(
        &mut self,
        mut item: impl FnMut(&mut Self, usize) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        self.pos += 1; // `[`
        self.enter()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.nesting -= 1;
            return Ok(());
        }
        let mut i = 0;
        loop {
            if self.peek().is_none() {
                return Err(self.syntax("unexpected end of input"));
            }
            item(self, i)?;
            i += 1;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.nesting -= 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("expected `,` or `]` in an array")),
            }
        }
    }

    /// Reads a string (the caller has checked that `"` comes next).
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, Failure> {
        let start = self.pos + 1;
        let bytes = self.bytes();
        let mut i = plain_run(bytes, start);
        loop {
            match bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return match self.text.get(start..i) {
                        Some(s) => Ok(Cow::Borrowed(s)),
                        None => Err(self.syntax("invalid string")),
                    };
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => {
                    self.pos = i;
                    return Err(self.syntax("control character in a string"));
                }
                Some(_) => i += 1,
                None => {
                    self.pos = i;
                    return Err(self.syntax("unterminated string"));
                }
            }
        }
        // Escapes: copy what came before, then decode the rest.
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(self.text.get(start..i).unwrap_or_default());
        self.pos = i;
        loop {
            let run = self.pos;
            let j = plain_run(bytes, run);
            out.push_str(self.text.get(run..j).unwrap_or_default());
            self.pos = j;
            match bytes.get(j) {
                Some(b'"') => {
                    self.pos = j + 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos = j + 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.syntax("control character in a string")),
                None => return Err(self.syntax("unterminated string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), Failure> {
        let c = self.at(self.pos);
        self.pos += 1;
        let ch = match c {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if self.bytes().get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.syntax("lone leading surrogate in a \\u escape"));
                    }
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(self.syntax("invalid low surrogate in a \\u escape"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                match char::from_u32(code) {
                    Some(ch) => ch,
                    None => return Err(self.syntax("lone trailing surrogate in a \\u escape")),
                }
            }
            _ => return Err(self.syntax("invalid escape in a string")),
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Failure> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.at(self.pos) {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.syntax("invalid \\u escape")),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    /// Reads a number token (the caller has checked that `-` or a digit comes
    /// next), validating its grammar.
    pub(crate) fn number(&mut self) -> Result<NumberToken<'a>, Failure> {
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize, bytes: &[u8]| {
            let from = *i;
            while let Some(b'0'..=b'9') = bytes.get(*i) {
                *i += 1;
            }
            *i - from
        };
        let bytes = self.bytes();
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i, bytes);
        if n == 0 || (n > 1 && bytes.get(int_start) == Some(&b'0')) {
            self.pos = i;
            return Err(self.syntax("invalid number"));
        }
        let mut integral = true;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            integral = false;
            if digits(&mut i, bytes) == 0 {
                self.pos = i;
                return Err(self.syntax("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            integral = false;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if digits(&mut i, bytes) == 0 {
                self.pos = i;
                return Err(self.syntax("invalid number"));
            }
        }
        self.pos = i;
        Ok(NumberToken {
            text: self.text.get(start..i).unwrap_or("0"),
            integral,
        })
    }

    /// Reads `true` or `false` (the caller has checked the first byte).
    pub(crate) fn boolean(&mut self) -> Result<bool, Failure> {
        if self.at(self.pos) == Some(b't') {
            self.literal("true")?;
            Ok(true)
        } else {
            self.literal("false")?;
            Ok(false)
        }
    }

    /// Skips one value of any kind, checking its syntax.
    pub(crate) fn skip(&mut self) -> Result<(), Failure> {
        match self.peek() {
            Some(b'{') => self.object(|r, _| r.skip()),
            Some(b'[') => self.array(|r, _| r.skip()),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b't' | b'f') => self.boolean().map(drop),
            Some(b'n') => self.literal("null"),
            Some(_) => Err(self.syntax("expected a JSON value")),
            None => Err(self.syntax("unexpected end of input")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plain_run;
    use crate::synth::Rng;

    #[test]
    fn plain_run_stops_where_the_bytewise_scan_does() {
        let mut rng = Rng::new(3);
        // Mostly plain text with, now and then, a byte that ends the run.
        let alphabet: &[u8] = b"abcXYZ019 {}:,\xc3\xa9\x7f\xff\"\\\x00\x1f\x20\x21";
        for _ in 0..20_000 {
            let len = rng.below(40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(6) == 0 {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    } else {
                        b'a' + rng.below(26) as u8
                    }
                })
                .collect();
            let from = rng.below(len as u64 + 1) as usize;
            let want = (from..len)
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(len);
            assert_eq!(plain_run(&bytes, from), want, "{bytes:?} from {from}");
        }
    }
}
