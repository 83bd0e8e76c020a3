//! API keys and tokens: making, listing and revoking keys, and telling who
//! a presented key or token belongs to.
//!
//! A key is `tf_<id>_<secret>`: a 16-hex-digit [`KeyId`] and a 256-bit random
//! secret (64 hex digits). Only the secret's SHA-256 is stored, in the
//! cluster-wide `api_keys` document, so every node on a store shares the
//! keys; a 256-bit random secret needs no slow password hash. A key is
//! looked up by its id and its secret's hash compared in constant time.
//!
//! A token (`tft_<payload>.<signature>`) is a short-lived stand-in for a
//! key, for clients that cannot send headers: its payload names the key,
//! the scopes (at most the key's) and the expiry, signed with HMAC-SHA-256
//! under a secret kept in the `token_signing` document. It is honoured
//! only while its key is.
//!
//! [`KeyRing`] keeps each node's copy of both documents. Deciding a request
//! needs no I/O; [`KeyRing::refresh`] reads newer versions (the server does
//! so every few seconds). When the store is unreachable the copy keeps
//! working; before any copy was read, every key is refused as
//! [`AuthError::Unavailable`] — never let through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::RwLock;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tf_domain::access::{ApiKey, Denied, Grant, GrantError, KeyId, Scopes, Tenants};
use tf_domain::{Principal, WorkspaceId};

use crate::documents::{Cached, CachedDocument, Collection, DocumentStore};
use crate::ports::StoreError;

/// The keys of every tenant.
pub const KEYS: Collection = Collection::from_static("api_keys");
/// The secret that signs tokens.
pub const SIGNING: Collection = Collection::from_static("token_signing");

/// The prefix of a key.
pub const KEY_PREFIX: &str = "tf_";
/// The prefix of a token.
pub const TOKEN_PREFIX: &str = "tft_";
/// The longest a token lives.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);

const SECRET_HEX: usize = 64;

/// Why a presented credential was refused (401, `UNAUTHENTICATED`). The
/// message never holds the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was presented (Authorization: Bearer <key>)")]
    Missing,
    #[error("the credential is not an API key (tf_<id>_<secret>) or token")]
    Malformed,
    #[error("unknown or revoked API key {0}")]
    Unknown(KeyId),
    #[error("wrong secret for API key {0}")]
    WrongSecret(KeyId),
    #[error("API key {0} has expired")]
    Expired(KeyId),
    #[error("the token is invalid: {0}")]
    BadToken(&'static str),
    #[error("the token has expired")]
    TokenExpired,
    /// No copy of the keys was ever read: refused, retryably.
    #[error("API keys are not loaded yet (the store is unreachable); retry shortly")]
    Unavailable,
}

impl AuthError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Unknown(_) => "unknown",
            AuthError::WrongSecret(_) => "wrong_secret",
            AuthError::Expired(_) | AuthError::TokenExpired => "expired",
            AuthError::BadToken(_) => "bad_token",
            AuthError::Unavailable => "unavailable",
        }
    }
}

/// Why a key could not be made, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("no key {0}")]
    NotFound(KeyId),
    #[error("the expiry is in the past")]
    Expired,
    #[error(
        "too many keys (at most {MAX_KEYS_PER_TENANT} per tenant, {MAX_KEYS} in all); revoke unused ones"
    )]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = KeyError> = std::result::Result<T, E>;

/// Who sent a request: the key (or the token standing for it) and what it
/// grants. Without keys ([`Caller::anonymous`]) every request is this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key: Option<KeyId>,
    pub principal: Option<Principal>,
    pub grant: Grant,
    /// When the credential stops working (Unix seconds): the key's expiry,
    /// or a token's.
    pub expires_at: Option<u64>,
    /// It presented a token, not the key itself.
    pub token: bool,
}

impl Caller {
    /// A caller of a server that runs without keys.
    pub fn anonymous() -> Self {
        Self {
            key: None,
            principal: None,
            grant: Grant::unrestricted(),
            expires_at: None,
            token: false,
        }
    }
}

/// A key to make.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub grant: Grant,
    pub name: Option<Principal>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

/// A key just made, and its one showing.
pub struct Issued {
    pub key: ApiKey,
    /// The whole key, `tf_<id>_<secret>`.
    pub secret: String,
}

/// The stored form of a key. Unknown fields are ignored, so that a node
/// keeps reading the keys a newer version wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// A tenant id, or `*`.
    tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workspace: Option<String>,
    scopes: String,
    /// Unix seconds.
    created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    /// Hex SHA-256 of the secret.
    secret_sha256: String,
}

impl StoredKey {
    fn of(key: &ApiKey) -> Self {
        let grant = key.grant();
        Self {
            id: key.id().to_string(),
            name: key.name().map(ToString::to_string),
            tenant: grant.tenants().to_string(),
            workspace: grant.workspace().map(ToString::to_string),
            scopes: grant.scopes().to_string(),
            created_at: key.created_at(),
            expires_at: key.expires_at(),
            secret_sha256: hex::encode(key.secret_sha256()),
        }
    }

    fn decode(&self) -> std::result::Result<ApiKey, String> {
        let id = KeyId::parse(&self.id).map_err(|e| e.to_string())?;
        let name = self
            .name
            .as_deref()
            .map(Principal::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        let workspace = self
            .workspace
            .as_deref()
            .map(WorkspaceId::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        let grant = Grant::new(
            Tenants::parse(&self.tenant).map_err(|e| e.to_string())?,
            workspace,
            Scopes::parse(&self.scopes).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&self.secret_sha256, &mut hash).map_err(|e| e.to_string())?;
        Ok(ApiKey::new(
            id,
            name,
            grant,
            self.created_at,
            self.expires_at,
            hash,
        ))
    }
}

/// The `api_keys` document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeySet {
    keys: Vec<StoredKey>,
}

/// The `token_signing` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SigningSecret {
    /// Hex, 256 bits.
    hmac_sha256: String,
}

/// A token's payload.
#[derive(Debug, Serialize, Deserialize)]
struct TokenClaims {
    /// The key id.
    k: String,
    /// Scopes.
    s: String,
    /// Expiry, Unix seconds.
    e: u64,
}

/// The keys decoded from one version of the document.
#[derive(Default)]
struct Index {
    version: u64,
    keys: HashMap<KeyId, ApiKey>,
}

/// Keys one tenant may have at most.
pub const MAX_KEYS_PER_TENANT: usize = 1_000;
/// Keys the store may hold at most (the document is read whole by every
/// node).
pub const MAX_KEYS: usize = 10_000;

/// A node's copy of the keys and the token-signing secret.
pub struct KeyRing {
    keys: CachedDocument<KeySet>,
    signing: CachedDocument<SigningSecret>,
    index: RwLock<Option<Arc<Index>>>,
    hmac: RwLock<Option<ring::hmac::Key>>,
    /// The signing secret is configured, not kept in the store.
    fixed_signing: bool,
    /// When both documents were last read (or found unchanged).
    refreshed: RwLock<Option<std::time::Instant>>,
    rng: SystemRandom,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl KeyRing {
    /// Nothing is read until [`Self::refresh`].
    pub fn new(store: Arc<dyn DocumentStore>) -> Self {
        Self {
            keys: CachedDocument::new(Arc::clone(&store), KEYS),
            signing: CachedDocument::new(store, SIGNING),
            index: RwLock::new(None),
            hmac: RwLock::new(None),
            fixed_signing: false,
            refreshed: RwLock::new(None),
            rng: SystemRandom::new(),
        }
    }

    /// Tokens are signed with `secret` (at least 32 bytes) rather than a
    /// secret kept in the store: then reading the store is not enough to
    /// forge a token. Every node needs the same secret.
    pub fn with_signing_secret(mut self, secret: &[u8]) -> Self {
        *self.hmac.get_mut() = Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret));
        self.fixed_signing = true;
        self
    }

    /// How long ago the copy was last confirmed current; `None` before the
    /// first read.
    pub fn copy_age(&self) -> Option<Duration> {
        self.refreshed.read().map(|t| t.elapsed())
    }

    /// Reads newer versions of the keys and the signing secret, if any.
    /// On error the copy is kept.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let keys = self.keys.refresh().await;
        self.reindex();
        if !self.fixed_signing {
            self.signing.refresh().await?;
            self.load_signing();
        }
        keys?;
        *self.refreshed.write() = Some(std::time::Instant::now());
        Ok(())
    }

    /// Whether a copy of the keys was read (until then every key is
    /// refused as unavailable).
    pub fn loaded(&self) -> bool {
        self.index.read().is_some()
    }

    fn reindex(&self) {
        let (version, body) = match self.keys.get() {
            Cached::NotLoaded => return,
            Cached::Absent => (0, None),
            Cached::Present(v) => (v.version, Some(v)),
        };
        // A slower caller holding an older version never replaces a newer
        // index (a revocation would come back until the next refresh).
        if self
            .index
            .read()
            .as_ref()
            .is_some_and(|i| i.version >= version)
        {
            return;
        }
        let mut keys = HashMap::new();
        for stored in body.iter().flat_map(|b| b.body.keys.iter()) {
            match stored.decode() {
                Ok(key) => {
                    keys.insert(key.id().clone(), key);
                }
                Err(e) => {
                    tracing::warn!(id = %stored.id, error = %e, "ignoring an API key that does not decode")
                }
            }
        }
        let mut index = self.index.write();
        if index.as_ref().is_none_or(|i| i.version < version) {
            *index = Some(Arc::new(Index { version, keys }));
        }
    }

    fn load_signing(&self) {
        if let Cached::Present(v) = self.signing.get() {
            let mut secret = [0u8; 32];
            if hex::decode_to_slice(&v.body.hmac_sha256, &mut secret).is_ok() {
                *self.hmac.write() = Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret));
            } else {
                tracing::warn!("the token signing secret does not decode; tokens are refused");
            }
        }
    }

    fn index(&self) -> std::result::Result<Arc<Index>, AuthError> {
        self.index.read().clone().ok_or(AuthError::Unavailable)
    }

    /// Who `presented` (a key or a token) belongs to, at `now` (Unix
    /// seconds). No I/O.
    pub fn authenticate(
        &self,
        presented: &str,
        now: u64,
    ) -> std::result::Result<Caller, AuthError> {
        if let Some(token) = presented.strip_prefix(TOKEN_PREFIX) {
            return self.authenticate_token(token, now);
        }
        let (id, secret) = split_key(presented).ok_or(AuthError::Malformed)?;
        let key = self.live_key(&id, now)?;
        if !bool::from(sha256(secret.as_bytes()).ct_eq(key.secret_sha256())) {
            return Err(AuthError::WrongSecret(id));
        }
        Ok(Caller {
            key: Some(id),
            principal: Some(key.principal()),
            grant: key.grant().clone(),
            expires_at: key.expires_at(),
            token: false,
        })
    }

    fn live_key(&self, id: &KeyId, now: u64) -> std::result::Result<ApiKey, AuthError> {
        let index = self.index()?;
        let key = index
            .keys
            .get(id)
            .ok_or_else(|| AuthError::Unknown(id.clone()))?;
        if key.expired(now) {
            return Err(AuthError::Expired(id.clone()));
        }
        Ok(key.clone())
    }

    fn authenticate_token(&self, token: &str, now: u64) -> std::result::Result<Caller, AuthError> {
        let (payload, signature) = token
            .split_once('.')
            .ok_or(AuthError::BadToken("not <payload>.<signature>"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::BadToken("the signature is not base64url"))?;
        {
            let hmac = self.hmac.read();
            let key = hmac
                .as_ref()
                .ok_or(AuthError::BadToken("no token was issued here"))?;
            ring::hmac::verify(key, payload.as_bytes(), &signature)
                .map_err(|_| AuthError::BadToken("bad signature"))?;
        }
        let claims: TokenClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(AuthError::BadToken("the payload does not decode"))?;
        if now >= claims.e {
            return Err(AuthError::TokenExpired);
        }
        let id = KeyId::parse(&claims.k).map_err(|_| AuthError::BadToken("bad key id"))?;
        let key = self.live_key(&id, now)?;
        let scopes = Scopes::parse(&claims.s).map_err(|_| AuthError::BadToken("bad scopes"))?;
        let grant = key
            .grant()
            .narrowed(scopes)
            .map_err(|_| AuthError::BadToken("scopes its key no longer has"))?;
        Ok(Caller {
            key: Some(id),
            principal: Some(key.principal()),
            grant,
            expires_at: Some(key.expires_at().map_or(claims.e, |k| k.min(claims.e))),
            token: true,
        })
    }

    /// A token standing for `caller`'s key with `scopes` (all of the key's
    /// when `None`) for `ttl` (at most [`MAX_TOKEN_TTL`]). Makes the
    /// signing secret on first use.
    pub async fn issue_token(
        &self,
        caller: &Caller,
        scopes: Option<Scopes>,
        ttl: Duration,
        now: u64,
    ) -> Result<(String, u64)> {
        let key = caller.key.as_ref().ok_or(Denied::Scope("key"))?;
        if caller.token {
            return Err(Denied::Token.into());
        }
        let grant = match scopes {
            Some(s) => caller.grant.narrowed(s)?,
            None => caller.grant.clone(),
        };
        if self.hmac.read().is_none() {
            self.make_signing_secret().await?;
        }
        let mut expires = now + ttl.min(MAX_TOKEN_TTL).as_secs().max(1);
        if let Some(key_expiry) = caller.expires_at {
            expires = expires.min(key_expiry);
        }
        let claims = TokenClaims {
            k: key.to_string(),
            s: grant.scopes().to_string(),
            e: expires,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let hmac = self.hmac.read();
        let signing = hmac.as_ref().ok_or_else(|| {
            StoreError::new(
                "signing a token",
                std::io::Error::other("no signing secret"),
            )
        })?;
        let signature = ring::hmac::sign(signing, payload.as_bytes());
        let token = format!(
            "{TOKEN_PREFIX}{payload}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        );
        Ok((token, expires))
    }

    async fn make_signing_secret(&self) -> Result<(), StoreError> {
        let mut fresh = [0u8; 32];
        self.rng.fill(&mut fresh).map_err(|_| {
            StoreError::new(
                "making a signing secret",
                std::io::Error::other("no randomness"),
            )
        })?;
        let fresh = hex::encode(fresh);
        self.signing
            .update(|current| match current {
                Some(existing) => existing.clone(),
                None => SigningSecret {
                    hmac_sha256: fresh.clone(),
                },
            })
            .await?;
        self.load_signing();
        Ok(())
    }

    /// Makes a key as `by` may (see [`Grant::may_mint`]; a key that expires
    /// makes only keys that expire no later; a token makes none); `now` in
    /// Unix seconds.
    pub async fn create(&self, by: &Caller, new: NewKey, now: u64) -> Result<Issued> {
        if by.token {
            return Err(Denied::Token.into());
        }
        by.grant.may_mint(&new.grant)?;
        if new.expires_at.is_some_and(|e| e <= now) {
            return Err(KeyError::Expired);
        }
        if let Some(limit) = by.expires_at
            && new.expires_at.is_none_or(|e| e > limit)
        {
            return Err(Denied::Outlives.into());
        }
        self.keys.refresh().await?;
        self.reindex();
        if let Ok(index) = self.index() {
            let tenant = new.grant.tenants().to_string();
            let of_tenant = index
                .keys
                .values()
                .filter(|k| k.grant().tenants().to_string() == tenant)
                .count();
            if of_tenant >= MAX_KEYS_PER_TENANT || index.keys.len() >= MAX_KEYS {
                return Err(KeyError::TooMany);
            }
        }
        let mut id = [0u8; KeyId::LEN / 2];
        let mut secret = [0u8; SECRET_HEX / 2];
        let no_randomness =
            |_| StoreError::new("making a key", std::io::Error::other("no randomness"));
        self.rng.fill(&mut id).map_err(no_randomness)?;
        self.rng.fill(&mut secret).map_err(no_randomness)?;
        let id = KeyId::parse(&hex::encode(id))
            .map_err(|e| StoreError::new("making a key", std::io::Error::other(e)))?;
        let secret = hex::encode(secret);
        let key = ApiKey::new(
            id,
            new.name,
            new.grant,
            now,
            new.expires_at,
            sha256(secret.as_bytes()),
        );
        let stored = StoredKey::of(&key);
        self.keys
            .update(|current| {
                let mut set = current.cloned().unwrap_or_default();
                set.keys.push(stored.clone());
                set
            })
            .await?;
        self.reindex();
        let secret = format!("{KEY_PREFIX}{}_{secret}", key.id());
        Ok(Issued { key, secret })
    }

    /// The keys `by` may manage, as of a fresh read (the copy if the store
    /// is unreachable), ordered by id.
    pub async fn list(&self, by: &Grant) -> Result<Vec<ApiKey>> {
        by.permits(tf_domain::access::Need::Admin, false)?;
        if let Err(e) = self.keys.refresh().await {
            if !self.loaded() {
                return Err(e.into());
            }
            tracing::warn!(error = %e, "listing the cached API keys: the store is unreachable");
        }
        self.reindex();
        let index = self.index().map_err(|_| {
            StoreError::new("listing keys", std::io::Error::other("keys not loaded"))
        })?;
        let mut keys: Vec<ApiKey> = index
            .keys
            .values()
            .filter(|k| by.may_manage(k.grant()).is_ok())
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(keys)
    }

    /// Revokes key `id` if `by` may manage it. Every node refuses it once
    /// its copy is refreshed.
    pub async fn revoke(&self, by: &Grant, id: &KeyId) -> Result<()> {
        by.permits(tf_domain::access::Need::Admin, false)?;
        self.keys.refresh().await?;
        self.reindex();
        let index = self.index().map_err(|_| KeyError::NotFound(id.clone()))?;
        // A key the caller may not manage is answered as absent: its
        // existence is no business of another tenant.
        index
            .keys
            .get(id)
            .filter(|k| by.may_manage(k.grant()).is_ok())
            .ok_or_else(|| KeyError::NotFound(id.clone()))?;
        let target = id.to_string();
        self.keys
            .update(|current| {
                let mut set = current.cloned().unwrap_or_default();
                set.keys.retain(|k| k.id != target);
                set
            })
            .await?;
        self.reindex();
        Ok(())
    }
}

/// Splits `tf_<id>_<secret>`.
fn split_key(presented: &str) -> Option<(KeyId, &str)> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id = KeyId::parse(id).ok()?;
    (secret.len() == SECRET_HEX && secret.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((id, secret))
}

/// A lifetime such as `90d`, `12h`, `30m` or `3600s`.
pub fn parse_ttl(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("a lifetime is a number and a unit (s, m, h, d), such as 90d; got {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::MemoryDocuments;
    use tf_domain::access::Need;

    fn grant(tenant: &str, scopes: &str) -> Grant {
        Grant::new(
            Tenants::parse(tenant).unwrap(),
            None,
            Scopes::parse(scopes).unwrap(),
        )
        .unwrap()
    }

    fn new(tenant: &str, scopes: &str) -> NewKey {
        NewKey {
            grant: grant(tenant, scopes),
            name: None,
            expires_at: None,
        }
    }

    async fn ring(store: &Arc<MemoryDocuments>) -> KeyRing {
        let ring = KeyRing::new(Arc::clone(store) as Arc<dyn DocumentStore>);
        ring.refresh().await.unwrap();
        ring
    }

    #[tokio::test]
    async fn a_key_authenticates_until_revoked_and_only_its_hash_is_stored() {
        let store = Arc::new(MemoryDocuments::default());
        let ring = ring(&store).await;
        let issued = ring
            .create(&Caller::anonymous(), new("acme", "ingest"), 100)
            .await
            .unwrap();
        assert!(issued.secret.starts_with("tf_"));
        assert_eq!(issued.secret.len(), 3 + 16 + 1 + 64);
        let caller = ring.authenticate(&issued.secret, 101).unwrap();
        assert_eq!(caller.key.as_ref(), Some(issued.key.id()));
        assert!(caller.grant.permits(Need::Ingest, false).is_ok());
        let secret_part = &issued.secret[20..];
        let stored = store.load(&KEYS).await.unwrap().unwrap().body;
        let stored = String::from_utf8(stored).unwrap();
        assert!(!stored.contains(secret_part), "{stored}");

        // A second node sees the key after a refresh, and its revocation.
        let other = ring_of(&store).await;
        assert!(other.authenticate(&issued.secret, 101).is_ok());
        ring.revoke(&Grant::unrestricted(), issued.key.id())
            .await
            .unwrap();
        other.refresh().await.unwrap();
        assert_eq!(
            other.authenticate(&issued.secret, 101),
            Err(AuthError::Unknown(issued.key.id().clone()))
        );
    }

    async fn ring_of(store: &Arc<MemoryDocuments>) -> KeyRing {
        ring(store).await
    }

    #[tokio::test]
    async fn wrong_secrets_expiry_and_garbage_are_refused() {
        let store = Arc::new(MemoryDocuments::default());
        let ring = ring(&store).await;
        let mut spec = new("acme", "query");
        spec.expires_at = Some(200);
        let issued = ring.create(&Caller::anonymous(), spec, 100).await.unwrap();
        let mut wrong = issued.secret.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert!(matches!(
            ring.authenticate(&wrong, 150),
            Err(AuthError::WrongSecret(_))
        ));
        assert!(matches!(
            ring.authenticate(&issued.secret, 200),
            Err(AuthError::Expired(_))
        ));
        for garbage in [
            "",
            "tf_",
            "Bearer x",
            "tf_0123456789abcdef_short",
            "tft_x.y",
        ] {
            assert!(ring.authenticate(garbage, 150).is_err(), "{garbage}");
        }
        let unloaded = KeyRing::new(store as Arc<dyn DocumentStore>);
        assert_eq!(
            unloaded.authenticate(&issued.secret, 150),
            Err(AuthError::Unavailable)
        );
    }

    #[tokio::test]
    async fn tokens_stand_for_their_key_narrowed_and_briefly() {
        let store = Arc::new(MemoryDocuments::default());
        let ring = ring(&store).await;
        let issued = ring
            .create(&Caller::anonymous(), new("acme", "ingest,query"), 100)
            .await
            .unwrap();
        let caller = ring.authenticate(&issued.secret, 100).unwrap();
        let (token, expires) = ring
            .issue_token(
                &caller,
                Some(Scopes::parse("query").unwrap()),
                Duration::from_secs(60),
                100,
            )
            .await
            .unwrap();
        assert_eq!(expires, 160);
        let other = ring_of(&store).await;
        let by_token = other.authenticate(&token, 120).unwrap();
        assert_eq!(by_token.grant.scopes().to_string(), "query");
        assert_eq!(
            other.authenticate(&token, 160),
            Err(AuthError::TokenExpired)
        );
        let mut forged = token.clone();
        forged.insert(6, 'x');
        assert!(matches!(
            other.authenticate(&forged, 120),
            Err(AuthError::BadToken(_))
        ));
        ring.revoke(&Grant::unrestricted(), issued.key.id())
            .await
            .unwrap();
        other.refresh().await.unwrap();
        assert!(matches!(
            other.authenticate(&token, 120),
            Err(AuthError::Unknown(_))
        ));
    }

    #[tokio::test]
    async fn a_tenant_admin_manages_only_its_tenant() {
        let store = Arc::new(MemoryDocuments::default());
        let ring = ring(&store).await;
        let op = Caller::anonymous();
        let acme_admin = ring
            .create(&op, new("acme", "admin,ingest"), 1)
            .await
            .unwrap();
        let globex = ring.create(&op, new("globex", "ingest"), 1).await.unwrap();
        let admin = ring.authenticate(&acme_admin.secret, 2).unwrap();
        assert!(matches!(
            ring.create(&admin, new("acme", "query"), 2).await,
            Err(KeyError::Denied(Denied::Broader(_)))
        ));
        assert!(matches!(
            ring.create(&admin, new("*", "relay,ingest"), 2).await,
            Err(KeyError::Denied(_))
        ));
        let mine = ring.create(&admin, new("acme", "ingest"), 2).await.unwrap();
        let listed: Vec<_> = ring
            .list(&admin.grant)
            .await
            .unwrap()
            .iter()
            .map(|k| k.id().clone())
            .collect();
        let mut want = vec![acme_admin.key.id().clone(), mine.key.id().clone()];
        want.sort();
        assert_eq!(listed, want);
        // Another tenant's key is not found, as if it did not exist.
        assert!(matches!(
            ring.revoke(&admin.grant, globex.key.id()).await,
            Err(KeyError::NotFound(_))
        ));
        assert_eq!(ring.list(&op.grant).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn credentials_that_expire_or_stand_in_make_nothing_that_outlives_them() {
        let store = Arc::new(MemoryDocuments::default());
        let ring = ring(&store).await;
        let mut spec = new("acme", "admin,ingest,query");
        spec.expires_at = Some(1_000);
        let admin = ring.create(&Caller::anonymous(), spec, 1).await.unwrap();
        let caller = ring.authenticate(&admin.secret, 2).unwrap();
        assert_eq!(caller.expires_at, Some(1_000));
        assert!(matches!(
            ring.create(&caller, new("acme", "ingest"), 2).await,
            Err(KeyError::Denied(Denied::Outlives))
        ));
        let mut shorter = new("acme", "ingest");
        shorter.expires_at = Some(500);
        assert!(ring.create(&caller, shorter, 2).await.is_ok());
        // A token lives no longer than its key, and makes neither tokens
        // nor keys.
        let (token, expires) = ring
            .issue_token(&caller, None, MAX_TOKEN_TTL, 990)
            .await
            .unwrap();
        assert_eq!(expires, 1_000);
        let by_token = ring.authenticate(&token, 995).unwrap();
        assert!(by_token.token);
        assert!(matches!(
            ring.issue_token(&by_token, None, MAX_TOKEN_TTL, 995).await,
            Err(KeyError::Denied(Denied::Token))
        ));
        let mut brief = new("acme", "ingest");
        brief.expires_at = Some(999);
        assert!(matches!(
            ring.create(&by_token, brief, 995).await,
            Err(KeyError::Denied(Denied::Token))
        ));
    }

    #[tokio::test]
    async fn a_configured_signing_secret_is_not_stored() {
        let store = Arc::new(MemoryDocuments::default());
        let ring = KeyRing::new(Arc::clone(&store) as Arc<dyn DocumentStore>)
            .with_signing_secret(&[7; 32]);
        ring.refresh().await.unwrap();
        let issued = ring
            .create(&Caller::anonymous(), new("acme", "query"), 1)
            .await
            .unwrap();
        let caller = ring.authenticate(&issued.secret, 2).unwrap();
        let (token, _) = ring
            .issue_token(&caller, None, Duration::from_secs(60), 2)
            .await
            .unwrap();
        assert!(ring.authenticate(&token, 3).is_ok());
        assert!(store.load(&SIGNING).await.unwrap().is_none());
        // A node with another secret (or none) refuses the token.
        let other = KeyRing::new(Arc::clone(&store) as Arc<dyn DocumentStore>)
            .with_signing_secret(&[8; 32]);
        other.refresh().await.unwrap();
        assert!(matches!(
            other.authenticate(&token, 3),
            Err(AuthError::BadToken(_))
        ));
    }

    #[test]
    fn lifetimes_parse() {
        assert_eq!(parse_ttl("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        for bad in ["", "d", "10", "10w", "0s", "-1d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
