//! Key management over HTTP: `GET`/`POST /api/v2/admin/keys`,
//! `DELETE /api/v2/admin/keys/{id}` (a tenant's admin key for its own
//! tenant's keys, an operator key for all), and
//! `POST /api/v2/auth/token` (a short-lived token for the key presented).
//! The rules are the domain's (`Grant::may_mint`, `Grant::may_manage`);
//! these are thin adapters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;
use crate::application::access::{Caller, KeyError, NewKey, parse_ttl};
use crate::domain::Principal;
use crate::domain::WorkspaceId;
use crate::domain::access::{ApiKey, Grant, KeyId, Scopes, Tenants};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(json!({"error": message.to_string(), "error_type": kind})),
    )
        .into_response()
}

fn key_error(e: KeyError) -> Response {
    match &e {
        KeyError::Grant(_) | KeyError::Expired => error(StatusCode::BAD_REQUEST, "bad_request", e),
        KeyError::Denied(_) => error(StatusCode::FORBIDDEN, "forbidden", e),
        KeyError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", e),
        KeyError::TooMany => error(StatusCode::CONFLICT, "too_many", e),
        KeyError::Store(_) => {
            // The store's error names objects of the bucket: logged, not
            // answered.
            tracing::warn!(error = %e, "the key store failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the key store is unavailable; retry shortly",
            )
        }
    }
}

/// Keys are managed over HTTP only when requests are authenticated: a
/// server without keys would let anyone on it mint an operator key for
/// every node on the store.
fn without_keys(state: &ApiState) -> Option<Response> {
    state.access.keys().is_none().then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "this server runs without keys (auth.mode = \"none\"): manage keys with `telemetryflow keys`",
        )
    })
}

/// A key as listings show it: never its secret.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: Option<String>,
    pub principal: String,
    pub tenant: String,
    pub workspace: Option<String>,
    pub scopes: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl KeyView {
    pub fn of(key: &ApiKey) -> Self {
        Self {
            id: key.id().to_string(),
            name: key.name().map(ToString::to_string),
            principal: key.principal().to_string(),
            tenant: key.grant().tenants().to_string(),
            workspace: key.grant().workspace().map(ToString::to_string),
            scopes: key.grant().scopes().to_string(),
            created_at: rfc3339(key.created_at()),
            expires_at: key.expires_at().map(rfc3339),
        }
    }
}

/// Scopes as `"ingest,query"` or `["ingest", "query"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeList {
    Text(String),
    List(Vec<String>),
}

impl ScopeList {
    fn parse(&self) -> Result<Scopes, KeyError> {
        let text = match self {
            ScopeList::Text(t) => t.clone(),
            ScopeList::List(l) => l.join(","),
        };
        Ok(Scopes::parse(&text)?)
    }
}

/// The body of `POST /api/v2/admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// A tenant id or `*`; a tenant's admin may leave it out (its own).
    tenant: Option<String>,
    workspace: Option<String>,
    scopes: ScopeList,
    name: Option<String>,
    /// A lifetime such as `90d`.
    expires: Option<String>,
}

/// What a key request asks for, checked: the grant, name and expiry.
pub fn new_key(
    by: &Grant,
    tenant: Option<&str>,
    workspace: Option<&str>,
    scopes: Scopes,
    name: Option<&str>,
    expires: Option<&str>,
    now: u64,
) -> Result<NewKey, String> {
    let tenants = match (tenant, by.tenants()) {
        (Some(t), _) => Tenants::parse(t).map_err(|e| e.to_string())?,
        (None, Tenants::One(own)) => Tenants::One(own.clone()),
        (None, Tenants::All) => return Err("name the key's tenant (a tenant id, or '*')".into()),
    };
    let workspace = workspace
        .map(WorkspaceId::parse)
        .transpose()
        .map_err(|e| format!("workspace: {e}"))?;
    let grant = Grant::new(tenants, workspace, scopes).map_err(|e| e.to_string())?;
    let name = name
        .map(Principal::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    // An unnamed key's principal is its id: a name that looks like one
    // could share another key's principal.
    if let Some(n) = &name
        && KeyId::parse(n.as_str()).is_ok()
    {
        return Err(format!(
            "the name {n:?} looks like a key id; pick another (a key without a name is known by its id)"
        ));
    }
    let expires_at = expires
        .map(parse_ttl)
        .transpose()?
        .map(|ttl| now.saturating_add(ttl.as_secs()));
    Ok(NewKey {
        grant,
        name,
        expires_at,
    })
}

/// `POST /api/v2/admin/keys`: makes a key; answers it once (201).
pub(super) async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    if let Some(refused) = without_keys(&state) {
        return refused;
    }
    let req: CreateKey = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", format!("body: {e}")),
    };
    let now = now_secs();
    let scopes = match req.scopes.parse() {
        Ok(s) => s,
        Err(e) => return key_error(e),
    };
    let spec = match new_key(
        &caller.grant,
        req.tenant.as_deref(),
        req.workspace.as_deref(),
        scopes,
        req.name.as_deref(),
        req.expires.as_deref(),
        now,
    ) {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    match state.keys.create(&caller, spec, now).await {
        Ok(issued) => {
            tracing::info!(id = %issued.key.id(), by = ?caller.key, "made an API key");
            let view = KeyView::of(&issued.key);
            let mut body = serde_json::to_value(view).unwrap_or_default();
            body["key"] = json!(issued.secret);
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(e) => key_error(e),
    }
}

/// `GET /api/v2/admin/keys`: the keys the caller manages.
pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(refused) = without_keys(&state) {
        return refused;
    }
    match state.keys.list(&caller.grant).await {
        Ok(keys) => {
            let keys: Vec<KeyView> = keys.iter().map(KeyView::of).collect();
            (StatusCode::OK, axum::Json(json!({ "keys": keys }))).into_response()
        }
        Err(e) => key_error(e),
    }
}

/// `DELETE /api/v2/admin/keys/{id}`: revokes a key (204).
pub(super) async fn revoke(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = without_keys(&state) {
        return refused;
    }
    let Ok(id) = KeyId::parse(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no key {id:?}"));
    };
    match state.keys.revoke(&caller.grant, &id).await {
        Ok(()) => {
            tracing::info!(%id, by = ?caller.key, "revoked an API key");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => key_error(e),
    }
}

/// The optional body of `POST /api/v2/auth/token`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    scopes: Option<ScopeList>,
    ttl_secs: Option<u64>,
}

/// How long a token lives unless asked otherwise.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);

/// `POST /api/v2/auth/token`: a short-lived token standing for the key
/// presented, with its scopes or fewer.
pub(super) async fn token(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let req: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", format!("body: {e}")),
        }
    };
    if caller.key.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "tokens stand for API keys, and this server runs without keys (auth.mode = \"none\")",
        );
    }
    let scopes = match req.scopes.as_ref().map(ScopeList::parse).transpose() {
        Ok(s) => s,
        Err(e) => return key_error(e),
    };
    let ttl = req
        .ttl_secs
        .map_or(DEFAULT_TOKEN_TTL, Duration::from_secs)
        .max(Duration::from_secs(1));
    let now = now_secs();
    match state.keys.issue_token(&caller, scopes, ttl, now).await {
        Ok((token, expires)) => (
            StatusCode::OK,
            axum::Json(json!({
                "token": token,
                "token_type": "Bearer",
                "expires_at": rfc3339(expires),
                "expires_in": expires.saturating_sub(now),
            })),
        )
            .into_response(),
        Err(e) => key_error(e),
    }
}
