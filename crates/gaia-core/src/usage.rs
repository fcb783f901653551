//! Recording usage off the request path: records go through a bounded channel to a background task
//! that writes them in batches (one transaction and one multi-row `INSERT` per batch, gathered for
//! up to 5 ms).

use crate::storage::{NewUsage, Storage};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most records written in one transaction.
const BATCH: usize = 256;
/// How long the first record of a batch waits for others: long enough that a busy gateway writes
/// tens of records a transaction, short enough that no write is a long burst on the cores the
/// requests share.
const LINGER: Duration = Duration::from_millis(5);
/// Records waiting before `record` writes directly instead of queueing.
const QUEUE: usize = 16_384;

// Nearly every message is a record: boxing it would cost an allocation per call to shrink the rare flush.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(NewUsage),
    Flush(oneshot::Sender<()>),
}

/// Handle to the background usage writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UsageRecorder {
    tx: mpsc::Sender<Msg>,
    storage: Storage,
}

impl UsageRecorder {
    /// Starts the writer task on the current tokio runtime.
    pub fn spawn(storage: Storage) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(storage.clone(), rx));
        UsageRecorder { tx, storage }
    }

    /// Queues a record. When the queue is full the record is written by a task of its own, so a
    /// burst slows nothing down and loses nothing.
    pub fn record(&self, usage: NewUsage) {
        if let Err(e) = self.tx.try_send(Msg::Record(usage)) {
            let usage = match e {
                mpsc::error::TrySendError::Full(Msg::Record(u)) | mpsc::error::TrySendError::Closed(Msg::Record(u)) => {
                    u
                }
                _ => return,
            };
            let storage = self.storage.clone();
            tokio::spawn(async move { write(&storage, &[usage]).await });
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn write(storage: &Storage, batch: &[NewUsage]) {
    for attempt in 1..=3u64 {
        match storage.insert_usage(batch).await {
            Ok(()) => return,
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e, attempt, "cannot write usage records; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => tracing::error!(error = %e, records = batch.len(), "usage records lost after 3 attempts"),
        }
    }
}

async fn run(storage: Storage, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        // The first record waits up to `LINGER` for others, so that a steady load is written a
        // transaction per many records instead of one or two; a flush (or a full batch) ends the
        // wait at once.
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(u) => batch.push(u),
                Msg::Flush(w) => waiters.push(w),
            }
            if batch.len() >= BATCH || !waiters.is_empty() {
                break;
            }
            next = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten()
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        if !batch.is_empty() {
            write(&storage, &batch).await;
            batch.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
