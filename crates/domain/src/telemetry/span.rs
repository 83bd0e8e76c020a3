//! The span kinds and status codes of OTLP, with the one spelling the
//! traces table stores and the read side filters on.

/// `Span.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub const ALL: [SpanKind; 6] = [
        SpanKind::Unspecified,
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ];

    /// The OTLP enum value; an unknown value is `Unspecified`.
    pub fn from_otlp(value: i32) -> SpanKind {
        usize::try_from(value)
            .ok()
            .and_then(|i| SpanKind::ALL.get(i).copied())
            .unwrap_or(SpanKind::Unspecified)
    }

    pub fn otlp(self) -> i32 {
        self as i32
    }

    /// As stored in `otel_traces.span_kind`.
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "Unspecified",
            SpanKind::Internal => "Internal",
            SpanKind::Server => "Server",
            SpanKind::Client => "Client",
            SpanKind::Producer => "Producer",
            SpanKind::Consumer => "Consumer",
        }
    }

    pub fn from_name(name: &str) -> Option<SpanKind> {
        SpanKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// `Status.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub const ALL: [StatusCode; 3] = [StatusCode::Unset, StatusCode::Ok, StatusCode::Error];

    /// The OTLP enum value; an unknown value is `Unset`.
    pub fn from_otlp(value: i32) -> StatusCode {
        usize::try_from(value)
            .ok()
            .and_then(|i| StatusCode::ALL.get(i).copied())
            .unwrap_or(StatusCode::Unset)
    }

    pub fn otlp(self) -> i32 {
        self as i32
    }

    /// As stored in `otel_traces.status_code`.
    pub fn name(self) -> &'static str {
        match self {
            StatusCode::Unset => "Unset",
            StatusCode::Ok => "Ok",
            StatusCode::Error => "Error",
        }
    }

    pub fn from_name(name: &str) -> Option<StatusCode> {
        StatusCode::ALL.into_iter().find(|c| c.name() == name)
    }

    /// A name in any case (`error`, `OK`), as query parameters give it.
    pub fn parse_any_case(name: &str) -> Option<StatusCode> {
        StatusCode::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_values_and_names_round_trip() {
        for k in SpanKind::ALL {
            assert_eq!(SpanKind::from_otlp(k.otlp()), k);
            assert_eq!(SpanKind::from_name(k.name()), Some(k));
        }
        for c in StatusCode::ALL {
            assert_eq!(StatusCode::from_otlp(c.otlp()), c);
            assert_eq!(StatusCode::from_name(c.name()), Some(c));
        }
        assert_eq!(SpanKind::from_otlp(2), SpanKind::Server);
        assert_eq!(SpanKind::from_otlp(9), SpanKind::Unspecified);
        assert_eq!(StatusCode::from_otlp(2), StatusCode::Error);
        assert_eq!(StatusCode::from_otlp(-1), StatusCode::Unset);
        assert_eq!(
            StatusCode::parse_any_case(" error "),
            Some(StatusCode::Error)
        );
        assert_eq!(SpanKind::from_name("server"), None);
    }
}
