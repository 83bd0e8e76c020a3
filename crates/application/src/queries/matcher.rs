//! Label matchers: the `filter` of the time-series, trace and log searches,
//! and the semantics every query language on top of them shares (PromQL's
//! `{k="v"}`, LogQL's stream selectors, TraceQL's attribute comparisons).
//!
//! A matcher is `key=value`, `key!=value`, `key=~regex` or `key!~regex`.
//! The key is everything before the first operator; a key that itself holds
//! `=`, `!=`, `=~` or `!~` is written in double quotes (`"a=b"=v`, with `\"`
//! and `\\` escapes inside). The value is everything after the operator and
//! may be empty.
//!
//! As in PromQL, a label that is absent has the empty value: `k=""` matches
//! items without `k`, `k!="x"` matches items without `k`, and a regex is
//! fully anchored (`k=~"a|b"` means `^(?:a|b)$`). Regexes use the `regex`
//! crate's syntax, run in linear time, and are refused past
//! [`MAX_PATTERN_BYTES`] or when their compiled program would exceed
//! [`REGEX_SIZE_LIMIT`].
//!
//! Which value a key names is the store's rule, shared by all three
//! searches: the item's own attribute (point, span or log record), else the
//! resource's attribute; `service.name` is the service.

use std::fmt;
use std::hash::{Hash, Hasher};

use regex::{Regex, RegexBuilder};

use super::params::invalid;
use crate::ports::QueryError;

/// The longest pattern or value a matcher takes, in bytes.
pub const MAX_PATTERN_BYTES: usize = 4096;
/// The compiled size a regex may reach (the `regex` crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Matchers one query takes.
pub const MAX_MATCHERS: usize = 16;

/// How a matcher compares the label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, fully anchored
    Regex,
    /// `!~`, fully anchored
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    /// The operator at the start of `s`, with its length.
    fn at(s: &str) -> Option<(MatchOp, usize)> {
        let b = s.as_bytes();
        match (b.first(), b.get(1)) {
            (Some(b'='), Some(b'~')) => Some((MatchOp::Regex, 2)),
            (Some(b'='), _) => Some((MatchOp::Equal, 1)),
            (Some(b'!'), Some(b'=')) => Some((MatchOp::NotEqual, 2)),
            (Some(b'!'), Some(b'~')) => Some((MatchOp::NotRegex, 2)),
            _ => None,
        }
    }
}

/// One `key op value` condition on an item's labels.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    key: String,
    op: MatchOp,
    value: String,
    /// The anchored regex, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl LabelMatcher {
    /// A matcher from its parts; a regex that does not compile (or is too
    /// large) is refused, naming the pattern.
    pub fn new(
        key: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let key = key.into();
        let value = value.into();
        if key.is_empty() {
            return Err(MatcherError::EmptyKey);
        }
        if key.len() > MAX_PATTERN_BYTES || value.len() > MAX_PATTERN_BYTES {
            return Err(MatcherError::TooLong {
                max: MAX_PATTERN_BYTES,
            });
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                RegexBuilder::new(&anchored(&value))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| MatcherError::BadRegex {
                        pattern: value.clone(),
                        reason: e.to_string(),
                    })?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            key,
            op,
            value,
            regex,
        })
    }

    /// Parses `key=value`, `key!=value`, `key=~regex`, `key!~regex` or
    /// `"quoted key"<op>value`.
    pub fn parse(s: &str) -> Result<Self, MatcherError> {
        let (key, rest) = if let Some(quoted) = s.strip_prefix('"') {
            let (key, len) = unquote(quoted).ok_or(MatcherError::UnterminatedKey)?;
            (key, &quoted[len..])
        } else {
            let at = s
                .char_indices()
                .find(|&(i, _)| MatchOp::at(&s[i..]).is_some())
                .map(|(i, _)| i)
                .ok_or(MatcherError::NoOperator)?;
            (s[..at].to_owned(), &s[at..])
        };
        let (op, len) = MatchOp::at(rest).ok_or(MatcherError::NoOperator)?;
        Self::new(key, op, &rest[len..])
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or the regex as given (not anchored).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `^(?:value)$` for a regex matcher: what a regex engine must run for
    /// this matcher's semantics.
    pub fn anchored_pattern(&self) -> Option<String> {
        self.regex.as_ref().map(|r| r.as_str().to_owned())
    }

    /// Whether a label with value `v` (`None`: absent, which is the empty
    /// value) satisfies the matcher.
    pub fn matches(&self, v: Option<&str>) -> bool {
        let v = v.unwrap_or("");
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(r)) => r.is_match(v),
            (MatchOp::NotRegex, Some(r)) => !r.is_match(v),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether this matcher is satisfied by an absent label: then it cannot
    /// narrow a search to items that carry the key.
    pub fn matches_absent(&self) -> bool {
        self.matches(None)
    }
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// The key of `rest` (after its opening quote) up to the closing quote,
/// unescaped, and the bytes it took including that quote.
fn unquote(rest: &str) -> Option<(String, usize)> {
    let mut key = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((key, i + 1)),
            '\\' => key.push(chars.next()?.1),
            c => key.push(c),
        }
    }
    None
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.op == other.op && self.value == other.value
    }
}

impl Eq for LabelMatcher {}

impl Hash for LabelMatcher {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
        self.op.hash(state);
        self.value.hash(state);
    }
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.contains(['=', '!', '"', '\\']) {
            write!(f, "\"")?;
            for c in self.key.chars() {
                if c == '"' || c == '\\' {
                    write!(f, "\\")?;
                }
                write!(f, "{c}")?;
            }
            write!(f, "\"")?;
        } else {
            write!(f, "{}", self.key)?;
        }
        write!(f, "{}{}", self.op.as_str(), self.value)
    }
}

/// Why a matcher was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("no operator: use key=value, key!=value, key=~regex or key!~regex")]
    NoOperator,
    #[error("the key is empty")]
    EmptyKey,
    #[error("the quoted key has no closing quote")]
    UnterminatedKey,
    #[error("longer than {max} bytes")]
    TooLong { max: usize },
    #[error("invalid regex {pattern:?}: {reason}")]
    BadRegex { pattern: String, reason: String },
}

/// The repeated `param` of a request as matchers; a bad one is a
/// [`QueryError::Invalid`] naming the parameter and the matcher.
pub fn parse_matchers(param: &str, values: &[String]) -> Result<Vec<LabelMatcher>, QueryError> {
    if values.len() > MAX_MATCHERS {
        return Err(invalid(
            param,
            format!("at most {MAX_MATCHERS} matchers per query"),
        ));
    }
    values
        .iter()
        .map(|v| LabelMatcher::parse(v).map_err(|e| invalid(param, format!("{v:?}: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> LabelMatcher {
        LabelMatcher::parse(s).unwrap()
    }

    #[test]
    fn the_key_ends_at_the_first_operator() {
        let x = m("http.route=/a=b");
        assert_eq!(
            (x.key(), x.op(), x.value()),
            ("http.route", MatchOp::Equal, "/a=b")
        );
        let x = m("k!=v");
        assert_eq!((x.key(), x.op(), x.value()), ("k", MatchOp::NotEqual, "v"));
        let x = m("k=~a|b");
        assert_eq!((x.key(), x.op(), x.value()), ("k", MatchOp::Regex, "a|b"));
        let x = m("k!~a.*");
        assert_eq!(
            (x.key(), x.op(), x.value()),
            ("k", MatchOp::NotRegex, "a.*")
        );
        // `!` alone is part of the key; an empty value is allowed.
        let x = m("a!b=");
        assert_eq!((x.key(), x.op(), x.value()), ("a!b", MatchOp::Equal, ""));
        // The value may hold operators.
        let x = m("k=~=~!=");
        assert_eq!((x.key(), x.op(), x.value()), ("k", MatchOp::Regex, "=~!="));
    }

    #[test]
    fn a_quoted_key_may_hold_operators() {
        let x = m(r#""a=b"=c"#);
        assert_eq!((x.key(), x.op(), x.value()), ("a=b", MatchOp::Equal, "c"));
        let x = m(r#""q\"uo\\te"!~x"#);
        assert_eq!(x.key(), "q\"uo\\te");
        assert_eq!(x.to_string(), r#""q\"uo\\te"!~x"#);
        assert_eq!(
            LabelMatcher::parse(r#""open=v"#).unwrap_err(),
            MatcherError::UnterminatedKey
        );
        assert_eq!(
            LabelMatcher::parse(r#""k"v"#).unwrap_err(),
            MatcherError::NoOperator
        );
    }

    #[test]
    fn bad_matchers_say_why() {
        assert_eq!(
            LabelMatcher::parse("novalue").unwrap_err(),
            MatcherError::NoOperator
        );
        assert_eq!(
            LabelMatcher::parse("=v").unwrap_err(),
            MatcherError::EmptyKey
        );
        let e = LabelMatcher::parse("k=~(unclosed").unwrap_err();
        assert!(matches!(&e, MatcherError::BadRegex { pattern, .. } if pattern == "(unclosed"));
        // A pattern whose compiled program is huge is refused, not built.
        let e = LabelMatcher::parse("k=~\\w{1000}\\w{1000}").unwrap_err();
        assert!(matches!(e, MatcherError::BadRegex { .. }), "{e}");
        let long = format!("k={}", "x".repeat(MAX_PATTERN_BYTES + 1));
        assert!(matches!(
            LabelMatcher::parse(&long).unwrap_err(),
            MatcherError::TooLong { .. }
        ));
        let e = parse_matchers("filter", &["k=~[".to_owned()]).unwrap_err();
        assert!(e.to_string().contains("parameter `filter`"), "{e}");
        assert!(e.to_string().contains("k=~["), "{e}");
    }

    #[test]
    fn regexes_are_anchored_and_absent_is_empty() {
        let x = m("k=~ab|cd");
        assert!(x.matches(Some("ab")) && x.matches(Some("cd")));
        assert!(!x.matches(Some("abc")) && !x.matches(Some("xab")));
        assert_eq!(x.anchored_pattern().as_deref(), Some("^(?:ab|cd)$"));
        assert!(m("k!~ab|cd").matches(Some("abc")));
        assert!(m("k=").matches(None) && m("k=").matches_absent());
        assert!(m("k!=x").matches(None));
        assert!(!m("k=x").matches(None));
        assert!(m("k=~.*").matches(None));
        assert!(!m("k=~.+").matches(None));
    }

    #[test]
    fn equality_ignores_the_compiled_regex() {
        assert_eq!(m("k=~a"), m("k=~a"));
        assert_ne!(m("k=~a"), m("k!~a"));
    }
}
