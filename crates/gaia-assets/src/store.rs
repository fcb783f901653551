//! Where asset files are kept: a local folder (the embedded default) or any S3-compatible bucket,
//! both through `object_store`. Keys are made by the asset service (`<owner>/<asset>/<random>.<ext>`),
//! never from caller input.

use crate::error::{AssetError, Result};
use bytes::Bytes;
use gaia_core::config::AssetsConfig;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use std::ops::Range;
use std::sync::Arc;

/// The asset file store; cheap to clone. A folder is created on first use, so a server that never
/// makes an asset leaves no folder behind.
#[derive(Clone, Debug)]
pub struct AssetStore {
    inner: Arc<Backing>,
    /// What it is, for logs and health (`folder /var/lib/gaia/assets`, `s3 bucket/prefix`).
    label: String,
    /// A key prefix inside the bucket.
    prefix: String,
}

#[derive(Debug)]
enum Backing {
    Ready(Arc<dyn ObjectStore>),
    Folder(std::path::PathBuf, tokio::sync::OnceCell<Arc<dyn ObjectStore>>),
}

fn store_error(e: object_store::Error) -> AssetError {
    match e {
        object_store::Error::NotFound { .. } => AssetError::NotFound("the asset's file is missing".into()),
        other => AssetError::Store(other.to_string()),
    }
}

impl AssetStore {
    /// The store `[assets].store` names: `s3://bucket/prefix`, or a folder (`file:///path` or a plain
    /// path), created when missing.
    pub fn from_config(cfg: &AssetsConfig) -> Result<AssetStore> {
        let store = cfg.store.trim();
        if let Some(rest) = store.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(AssetError::Invalid("assets.store: name the bucket, s3://bucket/prefix".into()));
            }
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(cfg.s3_region.clone().unwrap_or_else(|| "us-east-1".into()))
                .with_allow_http(cfg.s3_allow_http);
            if let Some(e) = &cfg.s3_endpoint {
                // A compatible server (MinIO, Ceph, moto) answers path-style requests.
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            }
            if let Some(k) = &cfg.s3_access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = &cfg.s3_secret_access_key {
                b = b.with_secret_access_key(k);
            }
            let s3 = b.build().map_err(|e| AssetError::Invalid(format!("assets.store: {e}")))?;
            return Ok(AssetStore {
                inner: Arc::new(Backing::Ready(Arc::new(s3))),
                label: format!("s3 {bucket}/{prefix}"),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        let dir = store.strip_prefix("file://").unwrap_or(store);
        Self::folder(std::path::Path::new(dir))
    }

    /// A store in the folder `dir` (created when first written to).
    pub fn folder(dir: &std::path::Path) -> Result<AssetStore> {
        Ok(AssetStore {
            inner: Arc::new(Backing::Folder(dir.to_path_buf(), tokio::sync::OnceCell::new())),
            label: format!("folder {}", dir.display()),
            prefix: String::new(),
        })
    }

    /// A store over any `object_store` implementation.
    pub fn new(store: Arc<dyn ObjectStore>, label: impl Into<String>) -> AssetStore {
        AssetStore { inner: Arc::new(Backing::Ready(store)), label: label.into(), prefix: String::new() }
    }

    /// A store in memory (tests; files end with the process).
    pub fn memory() -> AssetStore {
        Self::new(Arc::new(object_store::memory::InMemory::new()), "memory")
    }

    async fn backing(&self) -> Result<&Arc<dyn ObjectStore>> {
        match &*self.inner {
            Backing::Ready(s) => Ok(s),
            Backing::Folder(dir, cell) => {
                cell.get_or_try_init(|| async {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| {
                        AssetError::Store(format!("cannot create the asset folder {}: {e}", dir.display()))
                    })?;
                    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| AssetError::Store(e.to_string()))?
                        .with_automatic_cleanup(true);
                    Ok::<Arc<dyn ObjectStore>, AssetError>(Arc::new(fs))
                })
                .await
            }
        }
    }

    /// What it is (`folder …`, `s3 …`).
    pub fn label(&self) -> &str {
        &self.label
    }

    fn path(&self, key: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(key)
        } else {
            StorePath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Writes `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.backing().await?.put(&self.path(key), PutPayload::from_bytes(bytes)).await.map_err(store_error)?;
        Ok(())
    }

    /// The whole file.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        self.backing().await?.get(&self.path(key)).await.map_err(store_error)?.bytes().await.map_err(store_error)
    }

    /// Bytes `range` of the file.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.backing().await?.get_range(&self.path(key), range).await.map_err(store_error)
    }

    /// The file's size.
    pub async fn size(&self, key: &str) -> Result<u64> {
        Ok(self.backing().await?.head(&self.path(key)).await.map_err(store_error)?.size)
    }

    /// Deletes the file (a missing one is not an error).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.backing().await?.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }
}
