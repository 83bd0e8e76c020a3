//! `DeliveryFiles`: the `DeliveryStore` port in the data directory.
//!
//! - `forward/<name>.cursor`: a forwarder's cursor, as JSON
//!   `{"delivered": N, "in_flight": [first, last] | null}`.
//! - `sources.json`: the per-stream high-water marks of batches other nodes
//!   forwarded here.
//!
//! Every save is durable before it returns: written to a temporary file,
//! fsync'd, renamed over the old one, and the directory fsync'd. A crash
//! leaves the old version or the new one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::storage::durable::sync_dir;
use tf_application::ports::{DeliveryStore, ForwardCursor, SourceStream, StoreError};
use tf_domain::telemetry::Signal;
use tf_domain::{NodeId, Principal, TenantId, WorkspaceId};

pub struct DeliveryFiles {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    delivered: u64,
    in_flight: Option<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct MarkFile {
    /// The relay key's principal that sent the stream (absent when
    /// requests were not authenticated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    relay: Option<String>,
    node: String,
    tenant: String,
    workspace: String,
    signal: String,
    through: u64,
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        format!("reading {}", path.display()),
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    )
}

/// Writes `bytes` to `path` durably (see the module docs).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::new(format!("reading {}", path.display()), e)),
    }
}

impl DeliveryFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.to_owned(),
        }
    }

    fn cursor_path(&self, forwarder: &str) -> PathBuf {
        self.dir.join("forward").join(format!("{forwarder}.cursor"))
    }

    fn marks_path(&self) -> PathBuf {
        self.dir.join("sources.json")
    }
}

#[async_trait]
impl DeliveryStore for DeliveryFiles {
    async fn load_cursor(&self, forwarder: &str) -> Result<Option<ForwardCursor>, StoreError> {
        let path = self.cursor_path(forwarder);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let c: CursorFile = serde_json::from_slice(&bytes).map_err(|e| invalid(&path, e))?;
        Ok(Some(ForwardCursor {
            delivered: c.delivered,
            in_flight: c.in_flight,
        }))
    }

    async fn save_cursor(&self, forwarder: &str, cursor: ForwardCursor) -> Result<(), StoreError> {
        if cursor.in_flight.is_none() {
            crate::failpoint::crash_point("after_forward_ack");
        }
        let path = self.cursor_path(forwarder);
        let bytes = serde_json::to_vec(&CursorFile {
            delivered: cursor.delivered,
            in_flight: cursor.in_flight,
        })
        .map_err(|e| StoreError::new("encoding a forward cursor", e))?;
        let context = format!("saving {}", path.display());
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes))
            .await
            .map_err(|e| StoreError::new(context.clone(), e))?
            .map_err(|e| StoreError::new(context, e))
    }

    fn load_marks(&self) -> Result<Vec<(SourceStream, u64)>, StoreError> {
        let path = self.marks_path();
        let Some(bytes) = read_optional(&path)? else {
            return Ok(Vec::new());
        };
        let marks: Vec<MarkFile> = serde_json::from_slice(&bytes).map_err(|e| invalid(&path, e))?;
        marks
            .into_iter()
            .map(|m| {
                let signal = Signal::parse(&m.signal).map_err(|e| invalid(&path, e))?;
                let relay = m
                    .relay
                    .as_deref()
                    .map(Principal::parse)
                    .transpose()
                    .map_err(|e| invalid(&path, e))?;
                let stream = SourceStream {
                    relay,
                    node: NodeId::parse(&m.node).map_err(|e| invalid(&path, e))?,
                    tenant: TenantId::parse(&m.tenant).map_err(|e| invalid(&path, e))?,
                    workspace: WorkspaceId::parse(&m.workspace).map_err(|e| invalid(&path, e))?,
                    signal,
                };
                Ok((stream, m.through))
            })
            .collect()
    }

    fn save_marks(&self, marks: &[(SourceStream, u64)]) -> Result<(), StoreError> {
        let path = self.marks_path();
        let file: Vec<MarkFile> = marks
            .iter()
            .map(|(s, through)| MarkFile {
                relay: s.relay.as_ref().map(ToString::to_string),
                node: s.node.to_string(),
                tenant: s.tenant.to_string(),
                workspace: s.workspace.to_string(),
                signal: s.signal.name().to_owned(),
                through: *through,
            })
            .collect();
        let bytes =
            serde_json::to_vec(&file).map_err(|e| StoreError::new("encoding source marks", e))?;
        write_durably(&path, &bytes)
            .map_err(|e| StoreError::new(format!("saving {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cursors_and_marks_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = DeliveryFiles::new(dir.path());
        assert_eq!(files.load_cursor("central").await.expect("read"), None);
        assert!(files.load_marks().expect("read").is_empty());
        let cursor = ForwardCursor {
            delivered: 41,
            in_flight: Some((42, 57)),
        };
        files.save_cursor("central", cursor).await.expect("saved");
        let stream = SourceStream {
            relay: Some(Principal::parse("edge-relay").expect("id")),
            node: NodeId::parse("edge").expect("id"),
            tenant: TenantId::parse("acme").expect("id"),
            workspace: WorkspaceId::default_id(),
            signal: Signal::Metrics,
        };
        files.save_marks(&[(stream.clone(), 99)]).expect("saved");

        let again = DeliveryFiles::new(dir.path());
        assert_eq!(
            again.load_cursor("central").await.expect("read"),
            Some(cursor)
        );
        assert_eq!(again.load_cursor("other").await.expect("read"), None);
        assert_eq!(again.load_marks().expect("read"), vec![(stream, 99)]);

        std::fs::write(dir.path().join("sources.json"), "[{\"node\":\"a/b\"}]").expect("write");
        let e = again.load_marks().expect_err("refused");
        assert!(e.to_string().contains("sources.json"), "{e}");
    }
}
