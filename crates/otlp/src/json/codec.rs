//! The vocabulary the OTLP message declarations in `mapping` are written in:
//! the [`Codec`] trait, one implementation per proto3 scalar kind as OTLP/JSON
//! spells it, and the [`message!`](crate::json::mapping) macro that derives a
//! message's decoder and encoder from its field list.
//!
//! Decoding is lenient as the OTLP specification requires: 64-bit integers
//! as decimal strings or numbers (`1e3` and `5.0` too, when integral), 32-bit
//! integers as numbers or numeric strings, doubles as numbers, numeric
//! strings, `"NaN"`, `"Infinity"` or `"-Infinity"`, enums by number or value
//! name, trace and span ids as hex of any case, `bytes` as standard or
//! URL-safe base64 with or without padding. Encoding is canonical: 64-bit
//! integers as strings, 32-bit integers and enums as numbers, ids as
//! lowercase hex, bytes as standard padded base64.

use std::num::IntErrorKind;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::Failure;
use super::read::Reader;
use super::write::Writer;

/// How one field type is read from and written to OTLP/JSON.
///
/// `depth` counts `AnyValue` nesting on the way down; only `AnyValue`
/// increases it (see [`tf_domain::telemetry::MAX_ANY_VALUE_DEPTH`]).
pub(crate) trait Codec {
    type T;
    /// Decodes the next value. A `null` reaches here only inside lists (a
    /// field set to `null` counts as absent and is never decoded).
    fn decode(r: &mut Reader<'_>, depth: u32) -> Result<Self::T, Failure>;
    /// Whether the encoder leaves the field out (proto3: default values are
    /// not written; presence-tracked fields are written whenever present).
    fn omit(v: &Self::T) -> bool;
    fn encode(v: &Self::T, w: &mut Writer);
}

/// Quoted, length-limited excerpt of client input for error messages.
pub(crate) fn snippet(s: &str) -> String {
    const SNIPPET_CHARS: usize = 40;
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(SNIPPET_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn expected(r: &mut Reader<'_>, what: &str) -> Failure {
    Failure::invalid(format!("expected {what}, got {}", r.next_kind()))
}

// ---------------------------------------------------------------------------
// Strings and booleans
// ---------------------------------------------------------------------------

pub(crate) struct Str;

impl Codec for Str {
    type T = String;
    fn decode(r: &mut Reader<'_>, _: u32) -> Result<String, Failure> {
        if r.peek() != Some(b'"') {
            return Err(expected(r, "a string"));
        }
        Ok(r.string()?.into_owned())
    }
    fn omit(v: &String) -> bool {
        v.is_empty()
    }
    fn encode(v: &String, w: &mut Writer) {
        w.string(v);
    }
}

pub(crate) struct Bool;

impl Codec for Bool {
    type T = bool;
    fn decode(r: &mut Reader<'_>, _: u32) -> Result<bool, Failure> {
        match r.peek() {
            Some(b't' | b'f') => r.boolean(),
            _ => Err(expected(r, "a boolean")),
        }
    }
    fn omit(v: &bool) -> bool {
        !*v
    }
    fn encode(v: &bool, w: &mut Writer) {
        w.raw(if *v { "true" } else { "false" });
    }
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// Only ASCII digits, signs, '.', and exponent markers (and at least one digit).
fn looks_numeric(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
}

/// Integral value of a float, as proto3 JSON allows `1e3` or `5.0` for integers.
fn float_to_int(f: f64, ty: &str) -> Result<i128, Failure> {
    // 2^64: everything at or beyond is out of range for every integer type here.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    if !f.is_finite() || f.abs() >= LIMIT {
        return Err(Failure::invalid(format!(
            "value {f} is out of range for {ty}"
        )));
    }
    if f.fract() != 0.0 {
        return Err(Failure::invalid(format!(
            "expected an integer, got fractional number {f}"
        )));
    }
    Ok(f as i128)
}

/// Plain decimal digits with an optional `-`, at most 19 of them (always in
/// `i64`'s magnitude, so no overflow check): the common case, without the
/// general `i128` parser.
fn plain_int(s: &str) -> Option<i128> {
    let (neg, digits) = match s.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(if neg { -i128::from(n) } else { i128::from(n) })
}

/// An integer from its decimal text (a JSON number or the content of a string).
fn parse_int(s: &str, ty: &str, from_string: bool) -> Result<i128, Failure> {
    if let Some(n) = plain_int(s) {
        return Ok(n);
    }
    match s.parse::<i128>() {
        Ok(n) => Ok(n),
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => Err(Failure::invalid(
                format!("value {} is out of range for {ty}", snippet(s)),
            )),
            _ if !from_string || looks_numeric(s) => match s.parse::<f64>() {
                Ok(f) => float_to_int(f, ty),
                Err(_) => Err(Failure::invalid(format!(
                    "invalid integer string {}",
                    snippet(s)
                ))),
            },
            _ => Err(Failure::invalid(format!(
                "invalid integer string {}",
                snippet(s)
            ))),
        },
    }
}

fn int_value(r: &mut Reader<'_>, ty: &str) -> Result<i128, Failure> {
    match r.peek() {
        Some(b'-' | b'0'..=b'9') => {
            let n = r.number()?;
            if n.integral {
                parse_int(n.text, ty, false)
            } else {
                match n.text.parse::<f64>() {
                    Ok(f) => float_to_int(f, ty),
                    Err(_) => Err(Failure::invalid(format!("invalid number {}", n.text))),
                }
            }
        }
        Some(b'"') => {
            let s = r.string()?;
            parse_int(&s, ty, true)
        }
        _ => Err(expected(r, &format!("{ty} (number or decimal string)"))),
    }
}

fn int<T: TryFrom<i128>>(r: &mut Reader<'_>, ty: &str) -> Result<T, Failure> {
    let n = int_value(r, ty)?;
    T::try_from(n).map_err(|_| Failure::invalid(format!("value {n} is out of range for {ty}")))
}

macro_rules! int_codec {
    ($codec:ident, $t:ty, $name:literal, $write:ident) => {
        #[doc = concat!("`", $name, "`")]
        pub(crate) struct $codec;

        impl Codec for $codec {
            type T = $t;
            fn decode(r: &mut Reader<'_>, _: u32) -> Result<$t, Failure> {
                int(r, $name)
            }
            fn omit(v: &$t) -> bool {
                *v == 0
            }
            fn encode(v: &$t, w: &mut Writer) {
                w.$write(*v);
            }
        }
    };
}

int_codec!(U32, u32, "uint32", int);
int_codec!(I32, i32, "int32", int);
int_codec!(U64, u64, "uint64", int_string);
int_codec!(I64, i64, "int64", int_string);

pub(crate) struct F64;

/// A JSON number's text as a double without the general parser when the
/// result is exact: at most 19 significant digits forming a mantissa below
/// 2^53 and a power of ten within ±22 (both exactly representable, so one
/// multiplication or division rounds correctly; Clinger's fast path).
/// Anything else (`None`) goes to `str::parse`.
fn fast_f64(text: &str) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let b = text.as_bytes();
    let (neg, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        _ => (false, 0),
    };
    let mut m: u64 = 0;
    let mut digits = 0;
    let mut scale: i32 = 0;
    let mut seen_dot = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => {
                if digits == 19 {
                    return None;
                }
                if m != 0 || c != b'0' {
                    digits += 1;
                }
                m = m * 10 + u64::from(c - b'0');
                if seen_dot {
                    scale -= 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        let exp: i32 = text.get(i + 1..)?.parse().ok()?;
        scale = scale.checked_add(exp)?;
    } else if i != b.len() {
        return None;
    }
    if m >= 1 << 53 {
        return None;
    }
    let v = m as f64;
    let pow = *POW10.get(scale.unsigned_abs() as usize)?;
    let v = if scale >= 0 { v * pow } else { v / pow };
    Some(if neg { -v } else { v })
}

impl Codec for F64 {
    type T = f64;
    fn decode(r: &mut Reader<'_>, _: u32) -> Result<f64, Failure> {
        match r.peek() {
            Some(b'-' | b'0'..=b'9') => {
                let n = r.number()?;
                if let Some(f) = fast_f64(n.text) {
                    return Ok(f);
                }
                match n.text.parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(f),
                    _ => Err(Failure::invalid(format!(
                        "value {} is out of range for double",
                        snippet(n.text)
                    ))),
                }
            }
            Some(b'"') => {
                let s = r.string()?;
                match &*s {
                    "NaN" => Ok(f64::NAN),
                    "Infinity" => Ok(f64::INFINITY),
                    "-Infinity" => Ok(f64::NEG_INFINITY),
                    s if looks_numeric(s) => match s.parse::<f64>() {
                        Ok(f) if f.is_finite() => Ok(f),
                        Ok(_) => Err(Failure::invalid(format!(
                            "value {} is out of range for double",
                            snippet(s)
                        ))),
                        Err(_) => Err(Failure::invalid(format!(
                            "invalid number string {}",
                            snippet(s)
                        ))),
                    },
                    s => Err(Failure::invalid(format!(
                        "invalid number string {}",
                        snippet(s)
                    ))),
                }
            }
            _ => Err(expected(r, "a double (number or string)")),
        }
    }
    /// Only `+0.0` is the default: `-0.0` is written, as Go's `protojson` does.
    fn omit(v: &f64) -> bool {
        v.to_bits() == 0
    }
    fn encode(v: &f64, w: &mut Writer) {
        w.double(*v);
    }
}

// ---------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------

/// An enum given as its integer (kept as-is even if unknown: proto3 enums are
/// open), as a numeric string, or as its value name; written as its integer.
pub(crate) fn enumeration(
    r: &mut Reader<'_>,
    from_name: fn(&str) -> Option<i32>,
) -> Result<i32, Failure> {
    match r.peek() {
        Some(b'"') => {
            let s = r.string()?;
            if let Some(n) = from_name(&s) {
                Ok(n)
            } else if looks_numeric(&s) {
                let n = parse_int(&s, "int32", true)?;
                i32::try_from(n)
                    .map_err(|_| Failure::invalid(format!("value {n} is out of range for int32")))
            } else {
                Err(Failure::invalid(format!(
                    "unknown enum value name {}",
                    snippet(&s)
                )))
            }
        }
        Some(b'-' | b'0'..=b'9') => int(r, "int32"),
        _ => Err(expected(r, "an enum (integer or value name)")),
    }
}

macro_rules! enum_codec {
    ($codec:ident, $enum:ty) => {
        #[doc = concat!("The enum `", stringify!($enum), "`.")]
        pub(crate) struct $codec;

        impl Codec for $codec {
            type T = i32;
            fn decode(r: &mut Reader<'_>, _: u32) -> Result<i32, Failure> {
                $crate::json::codec::enumeration(r, |s| <$enum>::from_str_name(s).map(|v| v as i32))
            }
            fn omit(v: &i32) -> bool {
                *v == 0
            }
            fn encode(v: &i32, w: &mut Writer) {
                w.int(*v);
            }
        }
    };
}

pub(crate) use enum_codec;

// ---------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------

/// A trace id (16 bytes) or span id (8 bytes) as hex of any case; the empty
/// string means "no id".
pub(crate) struct HexId<const N: usize>;

pub(crate) type TraceId = HexId<16>;
pub(crate) type SpanId = HexId<8>;

/// Each byte's value as a hex digit of any case; 0xFF for non-digits.
// Evaluated at compile time: an index out of bounds would fail the build.
#[allow(clippy::indexing_slicing)]
const HEX_DIGITS: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_nibble(b: u8) -> u8 {
    HEX_DIGITS.get(usize::from(b)).copied().unwrap_or(0xFF)
}

impl<const N: usize> Codec for HexId<N> {
    type T = Vec<u8>;
    fn decode(r: &mut Reader<'_>, _: u32) -> Result<Vec<u8>, Failure> {
        if r.peek() != Some(b'"') {
            return Err(expected(r, "a hex string"));
        }
        let s = r.string()?;
        if s.is_empty() {
            return Ok(Vec::new());
        }
        let want = N * 2;
        if s.len() != want {
            return Err(Failure::invalid(format!(
                "expected {want} hex characters, got {}",
                s.chars().count()
            )));
        }
        let mut out = Vec::with_capacity(N);
        let mut bad = 0;
        for pair in s.as_bytes().chunks_exact(2) {
            if let [hi, lo] = *pair {
                let (hi, lo) = (hex_nibble(hi), hex_nibble(lo));
                bad |= hi | lo;
                out.push(hi << 4 | (lo & 0x0F));
            }
        }
        if bad & 0xF0 != 0 {
            return Err(Failure::invalid(format!(
                "invalid hex id {}: not a hexadecimal digit",
                snippet(&s)
            )));
        }
        Ok(out)
    }
    fn omit(v: &Vec<u8>) -> bool {
        v.is_empty()
    }
    fn encode(v: &Vec<u8>, w: &mut Writer) {
        w.hex(v);
    }
}

const B64_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, B64_CONFIG);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, B64_CONFIG);

/// `bytes` other than ids: base64, standard or URL-safe alphabet, padding optional.
pub(crate) struct Base64;

impl Codec for Base64 {
    type T = Vec<u8>;
    fn decode(r: &mut Reader<'_>, _: u32) -> Result<Vec<u8>, Failure> {
        if r.peek() != Some(b'"') {
            return Err(expected(r, "a base64 string"));
        }
        let s = r.string()?;
        let engine = if s.contains(['-', '_']) {
            &B64_URL_SAFE
        } else {
            &B64_STANDARD
        };
        engine
            .decode(&*s)
            .map_err(|e| Failure::invalid(format!("invalid base64: {e}")))
    }
    fn omit(v: &Vec<u8>) -> bool {
        v.is_empty()
    }
    fn encode(v: &Vec<u8>, w: &mut Writer) {
        w.base64(v);
    }
}

// ---------------------------------------------------------------------------
// Repetition and presence
// ---------------------------------------------------------------------------

/// A repeated field.
pub(crate) struct List<C>(std::marker::PhantomData<C>);

impl<C: Codec> Codec for List<C> {
    type T = Vec<C::T>;
    fn decode(r: &mut Reader<'_>, depth: u32) -> Result<Vec<C::T>, Failure> {
        if r.peek() != Some(b'[') {
            return Err(expected(r, "an array"));
        }
        let mut out = Vec::new();
        r.array(|r, i| {
            out.push(C::decode(r, depth).map_err(|e| e.at_index(i))?);
            Ok(())
        })?;
        Ok(out)
    }
    fn omit(v: &Vec<C::T>) -> bool {
        v.is_empty()
    }
    fn encode(v: &Vec<C::T>, w: &mut Writer) {
        encode_list::<C>(v, w);
    }
}

/// Writes a JSON array of `C`s.
pub(crate) fn encode_list<C: Codec>(items: &[C::T], w: &mut Writer) {
    w.byte(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            w.byte(b',');
        }
        C::encode(item, w);
    }
    w.byte(b']');
}

/// A field with presence (a message field, or `optional double`): written
/// whenever it is present, even when its value is the default.
pub(crate) struct Opt<C>(std::marker::PhantomData<C>);

impl<C: Codec> Codec for Opt<C> {
    type T = Option<C::T>;
    fn decode(r: &mut Reader<'_>, depth: u32) -> Result<Option<C::T>, Failure> {
        C::decode(r, depth).map(Some)
    }
    fn omit(v: &Option<C::T>) -> bool {
        v.is_none()
    }
    fn encode(v: &Option<C::T>, w: &mut Writer) {
        if let Some(v) = v {
            C::encode(v, w);
        }
    }
}

/// Starts decoding a message: `{` (fields follow) or `null` (the default
/// message, as an item of a list); anything else is a type error.
pub(crate) fn message_start(r: &mut Reader<'_>) -> Result<bool, Failure> {
    match r.peek() {
        Some(b'{') => Ok(true),
        Some(b'n') => {
            r.null()?;
            Ok(false)
        }
        _ => Err(expected(r, "an object")),
    }
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// How [`json_name`] spells an identifier.
#[derive(Clone, Copy)]
pub(crate) enum Case {
    /// `start_time_unix_nano` → `startTimeUnixNano` (field names).
    SnakeToLowerCamel,
    /// `StringValue` → `stringValue` (oneof members).
    UpperToLowerCamel,
    /// `StringValue` → `string_value` (oneof members' proto names).
    UpperToSnake,
}

/// Length of [`json_name`]'s output.
#[allow(clippy::indexing_slicing)] // compile-time only: an index out of range fails the build
pub(crate) const fn json_name_len(ident: &str, case: Case) -> usize {
    let b = strip_raw(ident.as_bytes());
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        match case {
            Case::SnakeToLowerCamel => {
                if b[i] != b'_' {
                    n += 1;
                }
            }
            Case::UpperToLowerCamel => n += 1,
            Case::UpperToSnake => {
                if i > 0 && b[i].is_ascii_uppercase() {
                    n += 1;
                }
                n += 1;
            }
        }
        i += 1;
    }
    n
}

const fn strip_raw(b: &[u8]) -> &[u8] {
    match b {
        [b'r', b'#', rest @ ..] => rest,
        _ => b,
    }
}

/// The JSON name of a Rust identifier (see [`json_name!`]), computed at compile time so that a
/// message's declaration names each field once (`r#type` → `type`).
#[allow(clippy::indexing_slicing)] // compile-time only: an index out of range fails the build
pub(crate) const fn json_name_bytes<const N: usize>(ident: &str, case: Case) -> [u8; N] {
    let b = strip_raw(ident.as_bytes());
    let mut out = [0u8; N];
    let (mut i, mut o) = (0, 0);
    let mut upper_next = false;
    while i < b.len() {
        let c = b[i];
        match case {
            Case::SnakeToLowerCamel => {
                if c == b'_' {
                    upper_next = true;
                } else {
                    out[o] = if upper_next {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    };
                    upper_next = false;
                    o += 1;
                }
            }
            Case::UpperToLowerCamel => {
                out[o] = if i == 0 { c.to_ascii_lowercase() } else { c };
                o += 1;
            }
            Case::UpperToSnake => {
                if i > 0 && c.is_ascii_uppercase() {
                    out[o] = b'_';
                    o += 1;
                }
                out[o] = c.to_ascii_lowercase();
                o += 1;
            }
        }
        i += 1;
    }
    out
}

/// `json_name!(ident, Case)`: a `&'static str` computed at compile time.
macro_rules! json_name {
    ($ident:expr, $case:expr) => {
        const {
            const LEN: usize = $crate::json::codec::json_name_len($ident, $case);
            const BYTES: [u8; LEN] = $crate::json::codec::json_name_bytes::<LEN>($ident, $case);
            match ::std::str::from_utf8(&BYTES) {
                Ok(s) => s,
                Err(_) => panic!("identifiers are ASCII"),
            }
        }
    };
}

pub(crate) use json_name;

#[cfg(test)]
mod tests {
    use super::{fast_f64, plain_int};
    use crate::synth::Rng;

    /// A JSON number's text: sign, digits with leading zeros, a fraction,
    /// an exponent — each by chance.
    fn number(rng: &mut Rng) -> String {
        let mut s = String::new();
        if rng.below(2) == 0 {
            s.push('-');
        }
        let int_digits = 1 + rng.below(22);
        for i in 0..int_digits {
            let d = if i == 0 && int_digits > 1 {
                1 + rng.below(9)
            } else {
                rng.below(10)
            };
            s.push(char::from(b'0' + d as u8));
        }
        if rng.below(2) == 0 {
            s.push('.');
            for _ in 0..1 + rng.below(20) {
                s.push(char::from(b'0' + rng.below(10) as u8));
            }
        }
        if rng.below(3) == 0 {
            s.push(['e', 'E'][rng.below(2) as usize]);
            match rng.below(3) {
                0 => s.push('-'),
                1 => s.push('+'),
                _ => {}
            }
            s.push_str(&rng.below(40).to_string());
        }
        s
    }

    #[test]
    fn fast_paths_agree_with_the_standard_parsers() {
        let mut rng = Rng::new(7);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..200_000 {
            let s = number(&mut rng);
            let want = s.parse::<f64>().unwrap();
            if let Some(got) = fast_f64(&s) {
                assert_eq!(got.to_bits(), want.to_bits(), "{s}");
                fast += 1;
            }
            if let Some(n) = plain_int(&s) {
                assert_eq!(n, s.parse::<i128>().unwrap(), "{s}");
            }
            total += 1;
        }
        // The fast paths must actually be taken for ordinary numbers.
        assert!(fast * 4 > total, "{fast} of {total} took the fast path");
        for s in [
            "0",
            "-0",
            "-0.0",
            "0.1",
            "1e22",
            "9007199254740991",
            "123.456e-7",
        ] {
            assert_eq!(
                fast_f64(s).map(f64::to_bits),
                Some(s.parse::<f64>().unwrap().to_bits()),
                "{s}"
            );
        }
        assert_eq!(fast_f64("9007199254740993"), None);
        assert_eq!(plain_int("-9223372036854775808"), Some(i64::MIN.into()));
        assert_eq!(plain_int("18446744073709551615"), None);
    }
}
