//! `MetricName`: the seed's metric naming rule, as the OpenTelemetry API
//! defines instrument names (so that every name a real SDK accepts is stored).

use std::fmt;

/// Why a metric name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetricNameError {
    #[error("metric name must not be empty")]
    Empty,
    #[error("metric name must be at most 255 characters")]
    TooLong,
    #[error("metric name must start with a letter")]
    BadStart,
    #[error("metric name may contain only letters, digits, '.', '_', '-' and '/'")]
    BadChar,
}

/// A valid metric name: the OpenTelemetry instrument-name syntax
/// `^[A-Za-z][A-Za-z0-9_./-]{0,254}$` (a letter, then at most 254 letters,
/// digits, `_`, `.`, `-` or `/`). Borrowed, so checking one costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricName<'a>(&'a str);

impl<'a> MetricName<'a> {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &'a str) -> Result<Self, MetricNameError> {
        let bytes = s.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(MetricNameError::Empty);
        };
        if bytes.len() > Self::MAX_LEN {
            return Err(MetricNameError::TooLong);
        }
        if !first.is_ascii_alphabetic() {
            return Err(MetricNameError::BadStart);
        }
        if !bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        {
            return Err(MetricNameError::BadChar);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for MetricName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for MetricName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetricName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_otel_naming_rule() {
        for ok in [
            "http.server.duration",
            "a",
            "cpu_usage-percent",
            "A1.b_c-d",
            "app/requests",
            "a/b/c.d",
        ] {
            assert_eq!(MetricName::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(MetricName::parse(""), Err(MetricNameError::Empty));
        assert_eq!(MetricName::parse("1abc"), Err(MetricNameError::BadStart));
        assert_eq!(MetricName::parse("_abc"), Err(MetricNameError::BadStart));
        assert_eq!(MetricName::parse("a b"), Err(MetricNameError::BadChar));
        assert_eq!(MetricName::parse("/ab"), Err(MetricNameError::BadStart));
        assert_eq!(MetricName::parse("a:b"), Err(MetricNameError::BadChar));
        assert_eq!(MetricName::parse("résumé"), Err(MetricNameError::BadChar));
        let long = "a".repeat(256);
        assert_eq!(MetricName::parse(&long), Err(MetricNameError::TooLong));
        assert!(MetricName::parse(&long[..255]).is_ok());
    }
}
