//! Access: what an API key lets its holder do, and who may make keys.
//!
//! A key grants [`Scopes`] over a [`Tenants`] (one tenant, optionally one of
//! its workspaces, or `*`, every tenant) — its [`Grant`]. Each entry point
//! declares the [`Need`] it serves, and [`Grant::permits`] and
//! [`Grant::context`] decide, as pure functions, whether a request may
//! pass and which tenant and workspace it acts for: a key's tenant is the
//! request's, never a header's choice. [`Grant::may_mint`] is the rule for
//! making keys: nobody makes a key broader than their own, and only an
//! operator makes keys for every tenant or keys that relay.

use std::fmt;

use crate::tenancy::{IdError, Principal, TenantContext, TenantId, WorkspaceId};

/// One permission of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send telemetry (OTLP export).
    Ingest,
    /// Read: the query API and SQL.
    Query,
    /// Manage keys of its tenant; with `*`, run maintenance over every
    /// tenant (an operator).
    Admin,
    /// Send batches forwarded by another node (`x-telemetryflow-batch`),
    /// whose high-water marks the upstream keeps.
    Relay,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Query, Scope::Admin, Scope::Relay];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Query => "query",
            Scope::Admin => "admin",
            Scope::Relay => "relay",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Why a grant was refused as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("unknown scope {0:?}: scopes are ingest, query, admin and relay")]
    UnknownScope(String),
    #[error("a key needs at least one scope")]
    NoScope,
    #[error("tenant: {0}")]
    Tenant(IdError),
    #[error("workspace: {0}")]
    Workspace(IdError),
    #[error("a key for every tenant ('*') cannot be confined to a workspace")]
    WorkspaceOfAll,
    #[error(
        "a key for every tenant ('*') relays (relay, ingest) or operates (admin); it queries only as an operator"
    )]
    AllTenantsQuery,
    #[error("a key for every tenant ('*') needs the relay or admin scope")]
    AllTenantsPurpose,
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Comma-separated names: `ingest,query`.
    pub fn parse(s: &str) -> Result<Self, GrantError> {
        let mut bits = 0;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|sc| sc.name() == name)
                .ok_or_else(|| GrantError::UnknownScope(name.chars().take(40).collect()))?;
            bits |= scope.bit();
        }
        if bits == 0 {
            return Err(GrantError::NoScope);
        }
        Ok(Self(bits))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(s.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// The tenants a key acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tenants {
    One(TenantId),
    /// `*`: any tenant the request names.
    All,
}

impl Tenants {
    pub fn parse(s: &str) -> Result<Self, GrantError> {
        match s.trim() {
            "*" => Ok(Self::All),
            t => TenantId::parse(t)
                .map(Self::One)
                .map_err(GrantError::Tenant),
        }
    }
}

impl fmt::Display for Tenants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tenants::One(t) => t.fmt(f),
            Tenants::All => f.write_str("*"),
        }
    }
}

/// Why a key id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is {len} lowercase hex digits", len = KeyId::LEN)]
pub struct KeyIdError;

/// The public half of an API key: names it in listings, logs and
/// revocations. Never secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub const LEN: usize = 16;

    pub fn parse(s: &str) -> Result<Self, KeyIdError> {
        if s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// An API key as stored: its grant and lifetime, and the SHA-256 of its
/// secret (the secret itself is shown once, when the key is made, and
/// kept nowhere).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    id: KeyId,
    name: Option<Principal>,
    grant: Grant,
    created_at: u64,
    expires_at: Option<u64>,
    secret_sha256: [u8; 32],
}

impl ApiKey {
    /// Times are Unix seconds.
    pub fn new(
        id: KeyId,
        name: Option<Principal>,
        grant: Grant,
        created_at: u64,
        expires_at: Option<u64>,
        secret_sha256: [u8; 32],
    ) -> Self {
        Self {
            id,
            name,
            grant,
            created_at,
            expires_at,
            secret_sha256,
        }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn name(&self) -> Option<&Principal> {
        self.name.as_ref()
    }

    /// Who the key speaks for: its name, else its id.
    pub fn principal(&self) -> Principal {
        match &self.name {
            Some(n) => n.clone(),
            // A key id is 16 hex digits: always a valid principal.
            None => Principal::parse(self.id.as_str()).unwrap_or_else(|_| unreachable!()),
        }
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    pub fn secret_sha256(&self) -> &[u8; 32] {
        &self.secret_sha256
    }

    /// Whether the key has expired at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("grant", &self.grant)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What an entry point needs of the key presented to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// Health checks: no key.
    Open,
    /// OTLP export.
    Ingest,
    /// The query API and SQL.
    Query,
    /// Any valid key, whatever its scopes (exchanging a key for a token).
    Key,
    /// Key management: an admin of the tenant, or an operator.
    Admin,
    /// Work across every tenant (compaction, retention, `/metrics`): an
    /// admin key for `*`.
    Operator,
}

/// Why a request with a valid key was refused (403, `PERMISSION_DENIED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the key lacks the {0} scope")]
    Scope(&'static str),
    #[error("this needs an operator key (admin scope for every tenant)")]
    NotOperator,
    #[error("the key is for tenant {key}, not {asked}")]
    OtherTenant { key: TenantId, asked: TenantId },
    #[error("the key is for workspace {key}, not {asked}")]
    OtherWorkspace {
        key: WorkspaceId,
        asked: WorkspaceId,
    },
    #[error("only a relay key may send forwarded batches (x-telemetryflow-batch)")]
    NotRelay,
    #[error("a key for every tenant queries only as an operator")]
    RelayQuery,
    #[error("a key cannot make a key broader than itself: {0}")]
    Broader(&'static str),
    #[error("the key manages only keys of tenant {0}")]
    OtherTenantsKey(TenantId),
    #[error("the key manages only keys of workspace {0}")]
    OtherWorkspacesKey(WorkspaceId),
    #[error("a token only sends and queries telemetry; present the key itself")]
    Token,
    #[error("a key that expires cannot make a key that outlives it")]
    Outlives,
}

/// What a key lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    tenants: Tenants,
    workspace: Option<WorkspaceId>,
    scopes: Scopes,
}

impl Grant {
    /// A grant as written; refuses combinations that mean nothing or too
    /// much (a `*` key confined to a workspace, or one that would query
    /// every tenant without being an operator).
    pub fn new(
        tenants: Tenants,
        workspace: Option<WorkspaceId>,
        scopes: Scopes,
    ) -> Result<Self, GrantError> {
        if scopes.is_empty() {
            return Err(GrantError::NoScope);
        }
        if tenants == Tenants::All {
            if workspace.is_some() {
                return Err(GrantError::WorkspaceOfAll);
            }
            let admin = scopes.contains(Scope::Admin);
            if !admin && !scopes.contains(Scope::Relay) {
                return Err(GrantError::AllTenantsPurpose);
            }
            if scopes.contains(Scope::Query) && !admin {
                return Err(GrantError::AllTenantsQuery);
            }
        }
        Ok(Self {
            tenants,
            workspace,
            scopes,
        })
    }

    /// What requests carry when the server runs without keys: everything.
    pub fn unrestricted() -> Self {
        Self {
            tenants: Tenants::All,
            workspace: None,
            scopes: Scopes::of(&Scope::ALL),
        }
    }

    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    pub fn workspace(&self) -> Option<&WorkspaceId> {
        self.workspace.as_ref()
    }

    pub fn scopes(&self) -> Scopes {
        self.scopes
    }

    /// An admin key for every tenant.
    pub fn is_operator(&self) -> bool {
        self.tenants == Tenants::All && self.scopes.contains(Scope::Admin)
    }

    /// Whether the key may use an entry point that needs `need`, and may
    /// send a forwarded batch when `batch` is set.
    pub fn permits(&self, need: Need, batch: bool) -> Result<(), Denied> {
        let has = |s: Scope| {
            if self.scopes.contains(s) {
                Ok(())
            } else {
                Err(Denied::Scope(s.name()))
            }
        };
        match need {
            Need::Open | Need::Key => {}
            Need::Ingest => has(Scope::Ingest)?,
            Need::Query => {
                has(Scope::Query)?;
                if self.tenants == Tenants::All && !self.is_operator() {
                    return Err(Denied::RelayQuery);
                }
            }
            Need::Admin => has(Scope::Admin)?,
            Need::Operator => {
                if !self.is_operator() {
                    return Err(Denied::NotOperator);
                }
            }
        }
        if batch && !self.scopes.contains(Scope::Relay) {
            return Err(Denied::NotRelay);
        }
        Ok(())
    }

    /// The tenant and workspace a request acts for, from what its headers
    /// name (`None`: not named). A key for one tenant acts for it whatever
    /// is named, and refuses another; a workspace key likewise. A `*` key
    /// acts for the named tenant (`default` when none is named).
    pub fn context(
        &self,
        tenant: Option<TenantId>,
        workspace: Option<WorkspaceId>,
    ) -> Result<TenantContext, Denied> {
        let tenant = match (&self.tenants, tenant) {
            (Tenants::One(key), Some(asked)) if *key != asked => {
                return Err(Denied::OtherTenant {
                    key: key.clone(),
                    asked,
                });
            }
            (Tenants::One(key), _) => key.clone(),
            (Tenants::All, asked) => asked.unwrap_or_else(TenantId::default_id),
        };
        let workspace = match (&self.workspace, workspace) {
            (Some(key), Some(asked)) if *key != asked => {
                return Err(Denied::OtherWorkspace {
                    key: key.clone(),
                    asked,
                });
            }
            (Some(key), _) => key.clone(),
            (None, asked) => asked.unwrap_or_else(WorkspaceId::default_id),
        };
        Ok(TenantContext::new(tenant, workspace))
    }

    /// The same grant with only those of `scopes` it has (a token's). A
    /// narrowed grant never permits more than its own; `permits` keeps
    /// applying the rules of `*` (a `*` grant without admin does not query).
    pub fn narrowed(&self, scopes: Scopes) -> Result<Grant, GrantError> {
        let scopes = Scopes(scopes.0 & self.scopes.0);
        if scopes.is_empty() {
            return Err(GrantError::NoScope);
        }
        Ok(Grant {
            tenants: self.tenants.clone(),
            workspace: self.workspace.clone(),
            scopes,
        })
    }

    /// Whether this key may manage (list, revoke) a key granting `other`:
    /// an operator manages every key, a tenant's admin its tenant's.
    pub fn may_manage(&self, other: &Grant) -> Result<(), Denied> {
        self.permits(Need::Admin, false)?;
        match (&self.tenants, &other.tenants) {
            (Tenants::All, _) => Ok(()),
            (Tenants::One(mine), Tenants::One(theirs)) if mine == theirs => match &self.workspace {
                Some(ws) if other.workspace.as_ref() != Some(ws) => {
                    Err(Denied::OtherWorkspacesKey(ws.clone()))
                }
                _ => Ok(()),
            },
            (Tenants::One(mine), _) => Err(Denied::OtherTenantsKey(mine.clone())),
        }
    }

    /// Whether this key may make a key granting `new`: an operator may make
    /// any; a tenant's admin only keys it may manage (its tenant's, and its
    /// workspace's if confined to one), with scopes it has itself, and
    /// never a relay key.
    pub fn may_mint(&self, new: &Grant) -> Result<(), Denied> {
        self.may_manage(new)?;
        if self.is_operator() {
            return Ok(());
        }
        if new.scopes.contains(Scope::Relay) {
            return Err(Denied::Broader("only an operator makes relay keys"));
        }
        if !new.scopes.is_subset_of(self.scopes) {
            return Err(Denied::Broader("it would have scopes this key lacks"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tenants: &str, ws: Option<&str>, scopes: &str) -> Grant {
        Grant::new(
            Tenants::parse(tenants).unwrap(),
            ws.map(|w| WorkspaceId::parse(w).unwrap()),
            Scopes::parse(scopes).unwrap(),
        )
        .unwrap()
    }

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn scopes_parse_and_print() {
        let s = Scopes::parse("query, ingest,ingest").unwrap();
        assert_eq!(s.to_string(), "ingest,query");
        assert!(s.contains(Scope::Query) && !s.contains(Scope::Admin));
        assert_eq!(Scopes::parse(""), Err(GrantError::NoScope));
        assert!(matches!(
            Scopes::parse("ingest,root"),
            Err(GrantError::UnknownScope(n)) if n == "root"
        ));
    }

    #[test]
    fn a_grant_for_every_tenant_must_relay_or_operate() {
        let all = |ws: Option<&str>, scopes: &str| {
            Grant::new(
                Tenants::All,
                ws.map(|w| WorkspaceId::parse(w).unwrap()),
                Scopes::parse(scopes).unwrap(),
            )
        };
        assert_eq!(all(None, "ingest"), Err(GrantError::AllTenantsPurpose));
        assert_eq!(
            all(None, "relay,ingest,query"),
            Err(GrantError::AllTenantsQuery)
        );
        assert_eq!(all(Some("w"), "admin"), Err(GrantError::WorkspaceOfAll));
        assert!(all(None, "relay,ingest").is_ok());
        assert!(all(None, "admin,query").unwrap().is_operator());
    }

    #[test]
    fn a_key_acts_for_its_own_tenant_and_workspace_only() {
        let g = grant("acme", Some("web"), "ingest,query");
        let ctx = g.context(None, None).unwrap();
        assert_eq!(
            (ctx.tenant().as_str(), ctx.workspace().as_str()),
            ("acme", "web")
        );
        assert!(g.context(Some(t("acme")), None).is_ok());
        assert!(matches!(
            g.context(Some(t("globex")), None),
            Err(Denied::OtherTenant { .. })
        ));
        assert!(matches!(
            g.context(None, Some(WorkspaceId::parse("api").unwrap())),
            Err(Denied::OtherWorkspace { .. })
        ));
        let relay = grant("*", None, "relay,ingest");
        assert_eq!(
            relay
                .context(Some(t("globex")), None)
                .unwrap()
                .tenant()
                .as_str(),
            "globex"
        );
        assert_eq!(
            relay.context(None, None).unwrap().tenant().as_str(),
            "default"
        );
    }

    #[test]
    fn each_need_has_its_scope() {
        let ingest = grant("acme", None, "ingest");
        assert!(ingest.permits(Need::Ingest, false).is_ok());
        assert_eq!(
            ingest.permits(Need::Query, false),
            Err(Denied::Scope("query"))
        );
        assert_eq!(ingest.permits(Need::Ingest, true), Err(Denied::NotRelay));
        let admin = grant("acme", None, "admin");
        assert!(admin.permits(Need::Admin, false).is_ok());
        assert_eq!(
            admin.permits(Need::Operator, false),
            Err(Denied::NotOperator)
        );
        let relay = grant("*", None, "relay,ingest");
        assert!(relay.permits(Need::Ingest, true).is_ok());
        assert_eq!(
            relay.permits(Need::Query, false),
            Err(Denied::Scope("query"))
        );
        let operator = grant("*", None, "admin,query");
        assert!(operator.permits(Need::Operator, false).is_ok());
        assert!(operator.permits(Need::Query, false).is_ok());
        for need in [
            Need::Open,
            Need::Key,
            Need::Ingest,
            Need::Query,
            Need::Admin,
            Need::Operator,
        ] {
            assert!(
                Grant::unrestricted().permits(need, true).is_ok(),
                "{need:?}"
            );
        }
    }

    #[test]
    fn narrowing_keeps_the_rules_of_every_tenant() {
        let operator = grant("*", None, "admin,query");
        let query_only = operator.narrowed(Scopes::parse("query").unwrap()).unwrap();
        assert_eq!(
            query_only.permits(Need::Query, false),
            Err(Denied::RelayQuery)
        );
        let relay = grant("*", None, "relay,ingest");
        let ingest = relay
            .narrowed(Scopes::parse("ingest,query").unwrap())
            .unwrap();
        assert_eq!(ingest.scopes().to_string(), "ingest");
        assert!(ingest.permits(Need::Ingest, false).is_ok());
        assert_eq!(ingest.permits(Need::Ingest, true), Err(Denied::NotRelay));
        assert_eq!(
            relay.narrowed(Scopes::parse("admin").unwrap()),
            Err(GrantError::NoScope)
        );
    }

    #[test]
    fn nobody_mints_a_key_broader_than_their_own() {
        let admin = grant("acme", None, "admin,ingest");
        assert!(admin.may_mint(&grant("acme", None, "ingest")).is_ok());
        assert!(admin.may_mint(&grant("acme", Some("web"), "admin")).is_ok());
        assert!(matches!(
            admin.may_mint(&grant("acme", None, "query")),
            Err(Denied::Broader(_))
        ));
        assert!(matches!(
            admin.may_mint(&grant("acme", None, "relay,ingest")),
            Err(Denied::Broader(_))
        ));
        assert!(matches!(
            admin.may_mint(&grant("globex", None, "ingest")),
            Err(Denied::OtherTenantsKey(_))
        ));
        assert!(matches!(
            admin.may_mint(&grant("*", None, "relay,ingest")),
            Err(Denied::OtherTenantsKey(_))
        ));
        let confined = grant("acme", Some("web"), "admin,ingest");
        assert!(
            confined
                .may_mint(&grant("acme", Some("web"), "ingest"))
                .is_ok()
        );
        assert!(matches!(
            confined.may_mint(&grant("acme", None, "ingest")),
            Err(Denied::OtherWorkspacesKey(_))
        ));
        // A workspace's admin manages that workspace's keys only.
        assert!(
            confined
                .may_manage(&grant("acme", Some("web"), "query"))
                .is_ok()
        );
        for other in [
            grant("acme", None, "admin"),
            grant("acme", Some("api"), "ingest"),
        ] {
            assert!(matches!(
                confined.may_manage(&other),
                Err(Denied::OtherWorkspacesKey(_))
            ));
        }
        assert_eq!(
            grant("acme", None, "ingest").may_mint(&grant("acme", None, "ingest")),
            Err(Denied::Scope("admin"))
        );
        let operator = grant("*", None, "admin");
        assert!(operator.may_mint(&grant("*", None, "relay,ingest")).is_ok());
        assert!(
            operator
                .may_mint(&grant("globex", None, "query,admin"))
                .is_ok()
        );
    }
}
