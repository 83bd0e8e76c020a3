//! Tenant and workspace context: who owns a piece of telemetry.

use std::fmt;
use std::sync::Arc;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters, got {len}")]
    TooLong {
        what: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{what} may contain only ASCII letters, digits, '-' and '_' (got {value:?})")]
    InvalidChar { what: &'static str, value: String },
    #[error(
        "{what} must not start with '_': such names are reserved for the store (got {value:?})"
    )]
    Reserved { what: &'static str, value: String },
}

const MAX_ID_LEN: usize = 64;

fn parse_id(what: &'static str, s: &str) -> Result<Arc<str>, IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            what,
            max: MAX_ID_LEN,
            len: s.len(),
        });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::InvalidChar {
            what,
            value: s.chars().take(80).collect(),
        });
    }
    Ok(Arc::from(s))
}

/// The first character of the store's own top-level names (`_system/`, the
/// cluster-wide state): a tenant id never starts with it, so a tenant's data
/// never shares a prefix with them.
pub const RESERVED_TENANT_PREFIX: char = '_';

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal $(, reserved: $reserved:expr)?) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses an identifier: 1–64 ASCII letters, digits, `-` or `_`.
            /// The restriction makes it safe as a storage path segment.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let id = parse_id($what, s)?;
                $(
                    if id.starts_with($reserved) {
                        return Err(IdError::Reserved {
                            what: $what,
                            value: s.to_owned(),
                        });
                    }
                )?
                Ok(Self(id))
            }

            /// The identifier every request gets when it names none.
            pub fn default_id() -> Self {
                Self(Arc::from("default"))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

id_type!(
    /// The tenant owning data; the unit of isolation. A query only ever sees
    /// its caller's tenant. Its id is the first segment of its data's paths
    /// in the store, so it never starts with [`RESERVED_TENANT_PREFIX`]:
    /// those top-level names are the store's own.
    TenantId,
    "tenant id",
    reserved: RESERVED_TENANT_PREFIX
);
id_type!(
    /// A workspace (project grouping) inside a tenant; stored as a column.
    WorkspaceId,
    "workspace id"
);

id_type!(
    /// A TelemetryFlow node: the writer of one write-ahead log, whose
    /// sequence numbers mean something only together with this id.
    NodeId,
    "node id"
);

id_type!(
    /// Who an API key speaks for: its name, or its id when it has none.
    /// Keys made with the same name share it, so a rotated relay key keeps
    /// the high-water marks of the batches it forwarded.
    Principal,
    "key name"
);

/// Who is writing or reading: tenant plus workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantContext {
    tenant: TenantId,
    workspace: WorkspaceId,
}

impl TenantContext {
    pub fn new(tenant: TenantId, workspace: WorkspaceId) -> Self {
        Self { tenant, workspace }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

impl Default for TenantContext {
    fn default() -> Self {
        Self::new(TenantId::default_id(), WorkspaceId::default_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_parse_safe_path_segments() {
        assert_eq!(
            TenantId::parse("acme-prod_1").unwrap().as_str(),
            "acme-prod_1"
        );
        assert!(matches!(TenantId::parse(""), Err(IdError::Empty { .. })));
        assert!(matches!(
            TenantId::parse("../etc"),
            Err(IdError::InvalidChar { .. })
        ));
        assert!(matches!(
            TenantId::parse("a/b"),
            Err(IdError::InvalidChar { .. })
        ));
        assert!(matches!(
            TenantId::parse(&"x".repeat(65)),
            Err(IdError::TooLong { len: 65, .. })
        ));
        let err = WorkspaceId::parse("a b").unwrap_err().to_string();
        assert!(err.starts_with("workspace id may contain only"), "{err}");
    }

    /// A leading `_` is the store's (`_system/`): no tenant can take it,
    /// while workspaces and nodes, which name no top-level prefix, may.
    #[test]
    fn tenant_ids_never_start_with_an_underscore() {
        for reserved in ["_system", "_", "_acme"] {
            assert!(
                matches!(TenantId::parse(reserved), Err(IdError::Reserved { .. })),
                "{reserved}"
            );
        }
        assert!(TenantId::parse("acme_").is_ok());
        assert!(WorkspaceId::parse("_ws").is_ok());
        assert!(NodeId::parse("_node").is_ok());
        let err = TenantId::parse("_system").unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }
}
