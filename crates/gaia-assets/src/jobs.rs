//! 3D jobs: a provider's task polled in the background until it succeeds (the model downloaded and
//! stored), fails, is cancelled, or runs past `[assets].job_timeout_secs`. A job's state is its
//! asset row, so a server that restarts resumes every job still pending ([`Assets::resume_jobs`]);
//! no request is ever held open while a model is made.

use crate::error::{AssetError, Result};
use crate::service::Assets;
use gaia_core::storage::{Asset, AssetOutcome, AssetStatus};
use gaia_providers::media::{self, TaskStatus};
use gaia_providers::ProviderError;
use std::time::Duration;

/// Polls in a row that may fail (the provider unreachable) before the job is given up.
const MAX_POLL_FAILURES: u32 = 30;

/// What a poll found.
enum Poll {
    /// The job goes on: poll again.
    Again,
    /// The job is over (or no longer this poller's).
    Done,
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

    /// Makes a job final without a file; whether this call did (it was not final already).
    async fn fail(&self, asset: &Asset, status: AssetStatus, why: String) -> Result<bool> {
        let o = AssetOutcome {
            error: Some(why),
            units: asset.units,
            cost_usd: asset.cost_usd,
            revenue_usd: asset.revenue_usd,
            ..Default::default()
        };
        Ok(self.inner.engine.storage().finish_asset(&asset.id, status, &o).await?)
    }

    async fn run_job(&self, asset: Asset) -> Result<()> {
        let Some(task) = asset.task_id.clone() else {
            return self.fail(&asset, AssetStatus::Failed, "the job has no provider task".into()).await.map(drop);
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
                return self.fail(&asset, AssetStatus::Failed, why).await.map(drop);
            }
            tokio::time::sleep(interval.saturating_mul(waited.min(8)).min(Duration::from_secs(10))).await;
        };
        let deadline = asset.created_at + chrono::Duration::seconds(self.inner.cfg.job_timeout_secs as i64);
        let mut failures = 0u32;
        loop {
            let wait = match self.poll_once(&asset, provider.as_ref(), &task, deadline).await {
                Ok(Poll::Done) => return Ok(()),
                Ok(Poll::Again) => {
                    failures = 0;
                    interval
                }
                // The provider, the database or the store failing for a while: try again, later and
                // later; a job is not abandoned for a blip.
                Err(e) if failures < MAX_POLL_FAILURES => {
                    failures += 1;
                    tracing::debug!(asset = %asset.id, error = %e, failures, "a 3D job's poll failed; retrying");
                    interval.saturating_mul(failures.min(8)).min(Duration::from_secs(60))
                }
                Err(e) => {
                    let why = format!("the job could not be followed: {e}");
                    return self.fail(&asset, AssetStatus::Failed, why).await.map(drop);
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One look at a job: its row, then its task at the provider.
    async fn poll_once(
        &self,
        asset: &Asset,
        provider: &dyn gaia_providers::Provider,
        task: &str,
        deadline: chrono::DateTime<chrono::Utc>,
    ) -> Result<Poll> {
        let storage = self.inner.engine.storage();
        // Cancelled or deleted meanwhile (by this instance or another): nothing more to do.
        let Some(current) = storage.asset(&asset.id).await? else { return Ok(Poll::Done) };
        if current.status.is_final() {
            return Ok(Poll::Done);
        }
        if chrono::Utc::now() > deadline {
            let _ = provider.cancel_model_3d(task).await;
            let why = format!("the job ran longer than {} s", self.inner.cfg.job_timeout_secs);
            self.fail(&current, AssetStatus::Canceled, why).await?;
            return Ok(Poll::Done);
        }
        let t = match provider.poll_model_3d(task).await {
            Ok(t) => t,
            Err(ProviderError::Upstream { status: 404, .. }) => {
                self.fail(&current, AssetStatus::Failed, "the provider no longer has the task".into()).await?;
                return Ok(Poll::Done);
            }
            Err(e) if e.is_retryable() || e.http_status() >= 500 => return Err(e.into()),
            Err(e) => {
                self.fail(&current, AssetStatus::Failed, e.to_string()).await?;
                return Ok(Poll::Done);
            }
        };
        match t.status {
            TaskStatus::Pending | TaskStatus::InProgress => {
                let status = if t.status == TaskStatus::Pending { AssetStatus::Pending } else { AssetStatus::Running };
                if storage.set_asset_progress(&asset.id, status, t.progress).await? {
                    Ok(Poll::Again)
                } else {
                    Ok(Poll::Done)
                }
            }
            TaskStatus::Failed => {
                let why = t.error.unwrap_or_else(|| "the provider failed the task".into());
                self.fail(&current, AssetStatus::Failed, why).await?;
                Ok(Poll::Done)
            }
            TaskStatus::Canceled => {
                self.fail(&current, AssetStatus::Canceled, "cancelled at the provider".into()).await?;
                Ok(Poll::Done)
            }
            TaskStatus::Succeeded => {
                self.store_model(&current, provider, &t).await?;
                Ok(Poll::Done)
            }
        }
    }

    async fn store_model(
        &self,
        asset: &Asset,
        provider: &dyn gaia_providers::Provider,
        t: &media::Model3dTask,
    ) -> Result<()> {
        let Some(url) = &t.model_url else {
            return self
                .fail(asset, AssetStatus::Failed, "the task succeeded without a model file".into())
                .await
                .map(drop);
        };
        let model = match provider.download(url, media::MAX_MODEL_BYTES).await {
            Ok(m) => m,
            Err(e) => {
                let why = format!("cannot download the model: {e}");
                return self.fail(asset, AssetStatus::Failed, why).await.map(drop);
            }
        };
        if !model.starts_with(b"glTF") {
            return self.fail(asset, AssetStatus::Failed, "the model is not binary glTF".into()).await.map(drop);
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

    /// Cancels a job: here first (so that a poll cannot finish it meanwhile: 409 when it already
    /// ended), then at the provider (best effort); the asset stays, `canceled`, with its cost (the
    /// provider billed the task when it was created).
    pub async fn cancel(&self, id: &str) -> Result<gaia_core::storage::Asset> {
        let a = self.get(id).await?;
        let conflict = |a: &Asset| AssetError::Conflict(format!("asset {id} is already {}", a.status.as_str()));
        if a.status.is_final() {
            return Err(conflict(&a));
        }
        if !self.fail(&a, AssetStatus::Canceled, "cancelled by its owner".into()).await? {
            return Err(conflict(&self.get(id).await?));
        }
        if let (Some(task), Some(p)) = (&a.task_id, self.inner.engine.providers().get(&a.provider)) {
            if let Err(e) = p.cancel_model_3d(task).await {
                tracing::warn!(asset = %id, error = %e, "cannot cancel the task at the provider");
            }
        }
        self.get(id).await
    }
}
