//! 3D jobs: a provider's task polled in the background until it succeeds (the model downloaded and
//! stored), fails, is cancelled, or runs past `[assets].job_timeout_secs`. A job's state is its
//! asset row, so a server that restarts resumes every job still pending ([`Assets::resume_jobs`]);
//! no request is ever held open while a model is made.

use crate::error::{AssetError, Result};
use crate::service::{Assets, Estimate};
use gaia_chat::Engine;
use gaia_core::storage::{Asset, AssetOutcome, AssetStatus};
use gaia_providers::media::{self, TaskStatus};
use gaia_providers::ProviderError;
use std::time::Duration;

/// Polls in a row that may fail (the provider unreachable) before the job is given up.
const MAX_POLL_FAILURES: u32 = 30;

pub(crate) async fn record_charge(engine: &Engine, id: &str, e: &Estimate) -> Result<()> {
    Ok(engine.storage().set_asset_charge(id, e.units, e.cost_usd, e.sell_usd).await?)
}

impl Assets {
    /// Resumes polling every job not final yet (at start-up: jobs survive a restart). Returns how
    /// many were resumed.
    pub async fn resume_jobs(&self) -> Result<usize> {
        let pending = self.inner.engine.storage().unfinished_assets().await?;
        let n = pending.len();
        for a in pending {
            self.watch(a);
        }
        if n > 0 {
            tracing::info!(jobs = n, "resumed pending 3D jobs");
        }
        Ok(n)
    }

    /// Polls `asset`'s task in the background (once per instance).
    pub(crate) fn watch(&self, asset: Asset) {
        {
            let mut polling = self.inner.polling.lock().unwrap_or_else(|e| e.into_inner());
            if !polling.insert(asset.id.clone()) {
                return;
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            let id = asset.id.clone();
            if let Err(e) = me.run_job(asset).await {
                tracing::warn!(asset = %id, error = %e, "3D job ended with an error");
            }
            me.inner.polling.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }

    async fn fail(&self, asset: &Asset, status: AssetStatus, why: String) -> Result<()> {
        let o = AssetOutcome {
            error: Some(why),
            units: asset.units,
            cost_usd: asset.cost_usd,
            revenue_usd: asset.revenue_usd,
            ..Default::default()
        };
        self.inner.engine.storage().finish_asset(&asset.id, status, &o).await?;
        Ok(())
    }

    async fn run_job(&self, asset: Asset) -> Result<()> {
        let storage = self.inner.engine.storage().clone();
        let Some(task) = asset.task_id.clone() else {
            return self.fail(&asset, AssetStatus::Failed, "the job has no provider task".into()).await;
        };
        let interval = Duration::from_millis(self.inner.cfg.poll_interval_ms);
        // At start-up the provider may not be registered yet (providers added at runtime are loaded
        // from the database in the background): wait for it a while.
        let mut waited = 0u32;
        let provider = loop {
            if let Some(p) = self.inner.engine.providers().get(&asset.provider) {
                break p;
            }
            waited += 1;
            if waited > MAX_POLL_FAILURES {
                let why = format!("provider `{}` is no longer configured", asset.provider);
                return self.fail(&asset, AssetStatus::Failed, why).await;
            }
            tokio::time::sleep(interval.saturating_mul(waited.min(8)).min(Duration::from_secs(10))).await;
        };
        let deadline = asset.created_at + chrono::Duration::seconds(self.inner.cfg.job_timeout_secs as i64);
        let mut failures = 0u32;
        loop {
            // Cancelled or deleted meanwhile (by this instance or another): nothing more to do.
            let Some(current) = storage.asset(&asset.id).await? else { return Ok(()) };
            if current.status.is_final() {
                return Ok(());
            }
            if chrono::Utc::now() > deadline {
                let _ = provider.cancel_model_3d(&task).await;
                let why = format!("the job ran longer than {} s", self.inner.cfg.job_timeout_secs);
                return self.fail(&current, AssetStatus::Canceled, why).await;
            }
            let t = match provider.poll_model_3d(&task).await {
                Ok(t) => {
                    failures = 0;
                    t
                }
                Err(ProviderError::Upstream { status: 404, .. }) => {
                    return self
                        .fail(&current, AssetStatus::Failed, "the provider no longer has the task".into())
                        .await;
                }
                Err(e) if failures < MAX_POLL_FAILURES && (e.is_retryable() || e.http_status() >= 500) => {
                    failures += 1;
                    tracing::debug!(asset = %asset.id, error = %e, failures, "cannot poll a 3D task; retrying");
                    tokio::time::sleep(interval.saturating_mul(failures.min(8)).min(Duration::from_secs(60))).await;
                    continue;
                }
                Err(e) => return self.fail(&current, AssetStatus::Failed, e.to_string()).await,
            };
            match t.status {
                TaskStatus::Pending | TaskStatus::InProgress => {
                    let status =
                        if t.status == TaskStatus::Pending { AssetStatus::Pending } else { AssetStatus::Running };
                    if !storage.set_asset_progress(&asset.id, status, t.progress).await? {
                        return Ok(());
                    }
                }
                TaskStatus::Failed => {
                    let why = t.error.unwrap_or_else(|| "the provider failed the task".into());
                    return self.fail(&current, AssetStatus::Failed, why).await;
                }
                TaskStatus::Canceled => {
                    return self.fail(&current, AssetStatus::Canceled, "cancelled at the provider".into()).await;
                }
                TaskStatus::Succeeded => return self.store_model(&current, provider.as_ref(), &t).await,
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn store_model(
        &self,
        asset: &Asset,
        provider: &dyn gaia_providers::Provider,
        t: &media::Model3dTask,
    ) -> Result<()> {
        let Some(url) = &t.model_url else {
            return self.fail(asset, AssetStatus::Failed, "the task succeeded without a model file".into()).await;
        };
        let model = match provider.download(url, media::MAX_MODEL_BYTES).await {
            Ok(m) => m,
            Err(e) => return self.fail(asset, AssetStatus::Failed, format!("cannot download the model: {e}")).await,
        };
        if !model.starts_with(b"glTF") {
            return self.fail(asset, AssetStatus::Failed, "the model is not binary glTF".into()).await;
        }
        let key = format!("{}/{}/{}.glb", asset.owner_id, asset.id, uuid::Uuid::new_v4().simple());
        self.inner.store.put(&key, model.clone()).await?;
        let mut thumb_key = None;
        if let Some(turl) = &t.thumbnail_url {
            // A preview is a nicety: a missing or broken one leaves the model without it.
            if let Ok(bytes) = provider.download(turl, media::MAX_MEDIA_BYTES).await {
                let side = self.inner.cfg.thumbnail_side;
                let prepared = tokio::task::spawn_blocking(move || crate::picture::prepare(bytes, side, side)).await;
                if let Ok(Ok(p)) = prepared {
                    let k = format!("{}/{}/{}.png", asset.owner_id, asset.id, uuid::Uuid::new_v4().simple());
                    self.inner.store.put(&k, p.thumbnail).await?;
                    thumb_key = Some(k);
                }
            }
        }
        let o = AssetOutcome {
            media_type: Some("model/gltf-binary".into()),
            size: model.len() as u64,
            object_key: Some(key.clone()),
            thumbnail_key: thumb_key.clone(),
            units: asset.units,
            cost_usd: asset.cost_usd,
            revenue_usd: asset.revenue_usd,
            ..Default::default()
        };
        if !self.inner.engine.storage().finish_asset(&asset.id, AssetStatus::Succeeded, &o).await? {
            // Cancelled (or finished by another instance) meanwhile: these files are nobody's.
            for k in std::iter::once(key).chain(thumb_key) {
                self.inner.store.delete(&k).await?;
            }
        }
        Ok(())
    }

    /// Cancels a job: at the provider (best effort), then here; the asset stays, `canceled`, with
    /// its cost (the provider billed the task when it was created).
    pub async fn cancel(&self, id: &str) -> Result<gaia_core::storage::Asset> {
        let a = self.get(id).await?;
        if a.status.is_final() {
            return Err(AssetError::Conflict(format!("asset {id} is already {}", a.status.as_str())));
        }
        if let (Some(task), Some(p)) = (&a.task_id, self.inner.engine.providers().get(&a.provider)) {
            if let Err(e) = p.cancel_model_3d(task).await {
                tracing::warn!(asset = %id, error = %e, "cannot cancel the task at the provider");
            }
        }
        self.fail(&a, AssetStatus::Canceled, "cancelled by its owner".into()).await?;
        self.get(id).await
    }
}
