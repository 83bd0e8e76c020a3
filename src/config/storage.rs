//! `[storage]` and `[storage.s3]`: where state and Parquet files go.

use std::fmt;
use std::num::{NonZero, NonZeroUsize};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Config;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub url: StorageUrl,
    pub gc_grace_secs: u64,
    /// 0: never (this node is the store's only writer).
    pub manifest_refresh_secs: u64,
    /// Write accepted rows to Parquet; false makes a pure forwarding
    /// sidecar (the log is only the forwarders' queue).
    pub persist: bool,
    pub row_group_rows: NonZeroUsize,
    pub page_rows: NonZeroUsize,
    pub s3: S3Settings,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            url: StorageUrl::DataDir,
            gc_grace_secs: 900,
            manifest_refresh_secs: 5,
            persist: true,
            row_group_rows: NonZero::new(131_072).unwrap(),
            page_rows: NonZero::new(20_000).unwrap(),
            s3: S3Settings::default(),
        }
    }
}

/// `storage.url`: where Parquet files go.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StorageUrl {
    /// Empty: `<data_dir>/parquet`.
    #[default]
    DataDir,
    /// `file:///abs/path`.
    File(PathBuf),
    /// `s3://bucket/prefix`, with the settings of `[storage.s3]`.
    S3 { bucket: String, prefix: String },
}

impl FromStr for StorageUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if url.is_empty() {
            Ok(Self::DataDir)
        } else if let Some(path) = url.strip_prefix("file://") {
            Ok(Self::File(PathBuf::from(path)))
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{url:?} names no bucket"));
            }
            Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            })
        } else {
            Err(format!(
                "{url:?}: use s3://bucket/prefix, file:///path, or leave empty"
            ))
        }
    }
}

super::try_from_string!(StorageUrl);

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataDir => Ok(()),
            Self::File(path) => write!(f, "file://{}", path.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl From<StorageUrl> for String {
    fn from(url: StorageUrl) -> String {
        url.to_string()
    }
}

/// `[storage.s3]`: S3 (or S3-compatible) settings of an `s3://` URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Empty: AWS.
    pub endpoint: String,
    pub region: String,
    /// Empty: from the standard AWS environment variables.
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
        }
    }
}

impl Config {
    /// Where Parquet files go.
    pub fn storage_location(&self) -> crate::infrastructure::storage::StorageLocation {
        use crate::infrastructure::storage::StorageLocation;
        match &self.storage.url {
            StorageUrl::S3 { bucket, prefix } => {
                let s3 = &self.storage.s3;
                let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
                StorageLocation::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    endpoint: opt(&s3.endpoint),
                    region: s3.region.clone(),
                    access_key_id: opt(&s3.access_key_id),
                    secret_access_key: opt(&s3.secret_access_key),
                    allow_http: s3.allow_http,
                }
            }
            StorageUrl::File(path) => StorageLocation::Local(path.clone()),
            StorageUrl::DataDir => StorageLocation::Local(self.storage.data_dir.join("parquet")),
        }
    }

    pub fn wal_config(&self) -> crate::infrastructure::wal::WalConfig {
        crate::infrastructure::wal::WalConfig {
            dir: self.storage.data_dir.join("wal"),
            segment_bytes: self.wal.segment_bytes.get(),
            fsync: self.wal.fsync,
            max_bytes: self.wal.max_bytes.get(),
            queue_capacity: self.wal.queue_capacity.get(),
        }
    }
}
