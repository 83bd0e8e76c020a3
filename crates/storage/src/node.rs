//! The node's identity: a durable id, created on first start in the data
//! directory (`node_id`) and kept for the directory's life. Sequence numbers
//! of a write-ahead log mean something only together with the node that
//! wrote it, so every committed file records its writer and every watermark
//! in a manifest belongs to one node; several nodes can then share a bucket
//! without one's commits hiding another's uncommitted rows.

use std::io;
use std::path::Path;

use crate::storage::durable::sync_dir;

const FILE: &str = "node_id";

/// A valid id: 1–64 ASCII letters, digits, `-` or `_`.
fn valid(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates `dir` (and missing parents) readable by this user only: the data
/// directory's permissions are what guards it from other local users.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The id stored in `data_dir`, or a new one stored there durably (written
/// to a temporary file, fsync'd, renamed, the directory fsync'd).
pub fn load_or_create(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            return if valid(id) {
                Ok(id.to_owned())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} does not hold a node id (1-64 of A-Z a-z 0-9 - _)",
                        path.display()
                    ),
                ))
            };
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_private_dir(data_dir)?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    sync_dir(data_dir)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        assert!(valid(&a), "{a}");
        assert_eq!(load_or_create(dir.path()).unwrap(), a);
        std::fs::write(dir.path().join(FILE), "not/valid\n").unwrap();
        let e = load_or_create(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        std::fs::write(dir.path().join(FILE), "edge-1\n").unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), "edge-1");
    }
}
