//! `telemetryflow keys`: make, list and revoke API keys in a store without
//! a server. Whoever can write the store's files or bucket can do this: the
//! file system's or the bucket's permissions are the trust boundary, so the
//! command acts as an operator. Also: the key that client commands
//! (`sql --server`, `replay`) present, from [`API_KEY_ENV`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::application::DocumentStore;
use crate::application::access::{Caller, KeyRing};
use crate::config::{API_KEY_ENV, Config, Overrides};
use crate::domain::access::{Grant, KeyId, Scopes};
use crate::infrastructure::api::keys::{KeyView, new_key};
use crate::infrastructure::storage::ObjectDocumentStore;

/// The key in [`API_KEY_ENV`], if set and not blank.
pub fn api_key_from_env() -> Option<String> {
    std::env::var(API_KEY_ENV)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    /// The data directory whose store holds the keys.
    #[arg(long, global = true, conflicts_with = "storage_url")]
    pub data_dir: Option<PathBuf>,
    /// The store (s3://bucket/prefix or file:///path) that holds the keys;
    /// every node on it shares them.
    #[arg(long, global = true)]
    pub storage_url: Option<String>,
    /// The configuration file (storage settings).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Makes a key and prints it, alone, on stdout: the only time it is
    /// shown.
    Create {
        /// The key's tenant, or '*' for every tenant (relay or operator keys).
        #[arg(long)]
        tenant: String,
        /// Confine the key to one workspace of its tenant.
        #[arg(long)]
        workspace: Option<String>,
        /// Comma-separated: ingest, query, admin, relay.
        #[arg(long)]
        scopes: String,
        /// A name; keys with the same name share a principal (rotate a
        /// relay key by making one with its name, then revoking the old).
        #[arg(long)]
        name: Option<String>,
        /// A lifetime, e.g. 90d, 12h.
        #[arg(long)]
        expires: Option<String>,
    },
    /// One line per key: id, name, tenant, workspace, scopes, expiry.
    List,
    /// Revokes a key: every node refuses it within `auth.refresh_secs`.
    Revoke { id: String },
}

pub fn keys(args: &KeysArgs) -> anyhow::Result<()> {
    if args.data_dir.is_none() && args.storage_url.is_none() {
        anyhow::bail!("name the store: --data-dir DIR or --storage-url URL");
    }
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        storage_url: args.storage_url.clone(),
        ..Default::default()
    };
    let config = Config::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&config, &args.command))
}

async fn run(config: &Config, command: &KeysCommand) -> anyhow::Result<()> {
    let store = config
        .storage_location()
        .build()
        .context("opening storage")?;
    let documents: Arc<dyn DocumentStore> = Arc::new(ObjectDocumentStore::new(store));
    let ring = KeyRing::new(documents);
    ring.refresh().await.context("reading the keys")?;
    let operator = Grant::unrestricted();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match command {
        KeysCommand::Create {
            tenant,
            workspace,
            scopes,
            name,
            expires,
        } => {
            let scopes = Scopes::parse(scopes).context("--scopes")?;
            let spec = new_key(
                &operator,
                Some(tenant),
                workspace.as_deref(),
                scopes,
                name.as_deref(),
                expires.as_deref(),
                now,
            )
            .map_err(anyhow::Error::msg)?;
            let issued = ring.create(&Caller::anonymous(), spec, now).await?;
            eprintln!(
                "made key {} (tenant {}, scopes {}); it is shown once:",
                issued.key.id(),
                issued.key.grant().tenants(),
                issued.key.grant().scopes()
            );
            println!("{}", issued.secret);
        }
        KeysCommand::List => {
            for key in ring.list(&operator).await? {
                let v = KeyView::of(&key);
                let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    v.id,
                    dash(v.name),
                    v.tenant,
                    dash(v.workspace),
                    v.scopes,
                    v.expires_at.unwrap_or_else(|| "never".into())
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id = KeyId::parse(id).with_context(|| format!("{id:?}"))?;
            ring.revoke(&operator, &id).await?;
            eprintln!("revoked key {id}");
        }
    }
    Ok(())
}
