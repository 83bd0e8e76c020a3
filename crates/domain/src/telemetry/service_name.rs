//! `ServiceName`: the `service.name` resource attribute, with the OpenTelemetry
//! default when an SDK sends none.

use std::fmt;

/// The logical service that emitted telemetry. Never empty: a resource
/// without `service.name` (or with an empty one) is `unknown_service`, as the
/// OpenTelemetry resource semantic conventions prescribe.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceName<'a>(&'a str);

impl<'a> ServiceName<'a> {
    pub const UNKNOWN: ServiceName<'static> = ServiceName("unknown_service");

    /// Parses the attribute value, if any. Surrounding whitespace is not
    /// significant; an empty or absent value is `unknown_service`.
    pub fn from_attribute(value: Option<&'a str>) -> ServiceName<'a> {
        match value.map(str::trim) {
            Some(v) if !v.is_empty() => ServiceName(v),
            _ => ServiceName::UNKNOWN,
        }
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for ServiceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for ServiceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_unknown_service() {
        assert_eq!(
            ServiceName::from_attribute(None).as_str(),
            "unknown_service"
        );
        assert_eq!(
            ServiceName::from_attribute(Some("  ")).as_str(),
            "unknown_service"
        );
        assert_eq!(
            ServiceName::from_attribute(Some(" checkout ")).as_str(),
            "checkout"
        );
    }
}
