//! The worker: one run at a time, taken from the trigger queue, until the
//! queue closes. Each run has a thread of its own ([`super::run_on_own_thread`]),
//! so the daemon's loop never waits for one.

use super::SyncError;
use crate::mirror::{Mirror, RunRecord, RunStatus};
use crate::reconcile::RunOptions;
use crate::settings::Config;
use crate::telemetry::m;
use crate::trigger::TriggerQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::error;

/// What the worker needs, passed in (the daemon builds it; tests can too).
#[derive(Debug)]
pub struct Worker {
    pub queue: Arc<TriggerQueue>,
    /// The config in force when each run starts (reloads swap it).
    pub config: watch::Receiver<Arc<Config>>,
    pub mirror: Arc<Mirror>,
    /// Shutdown: no new operations; the run in flight is recorded.
    pub stop: CancellationToken,
    /// Failed runs in a row (0 after any run that did not fail).
    pub consecutive_failures: Arc<AtomicU64>,
    /// Each recorded run, as it is recorded.
    pub done: watch::Sender<Option<RunRecord>>,
}

impl Worker {
    pub async fn run(self) {
        while let Some(t) = self.queue.next().await {
            let config = self.config.borrow().clone();
            metrics::gauge!(m::RUN_IN_PROGRESS).set(1.0);
            let options = RunOptions { allow_deletes: t.allow_deletes, approved: t.approved, ..RunOptions::default() };
            // A run of some objects says nothing of the sync's health: only whole runs count.
            let whole = t.only.is_none();
            let result = super::run_on_own_thread(
                config.clone(),
                self.mirror.clone(),
                t.kind.as_str(),
                t.events,
                options,
                t.only,
                self.stop.clone(),
            )
            .await;
            metrics::gauge!(m::RUN_IN_PROGRESS).set(0.0);
            self.queue.done();
            if whole {
                self.count(&result);
            }
            match result {
                Ok(record) => {
                    // Announced from a task of its own: it never delays the next run.
                    // (Without channels it only ends a rejection the run made stale.)
                    let (config, mirror, recorded) = (config.clone(), self.mirror.clone(), record.clone());
                    tokio::spawn(async move {
                        let instance = config.daemon.instance();
                        let origin = crate::notify::Origin::of(&config, &instance, true);
                        crate::notify::after_run(&config.notify, &mirror, &recorded, origin, &crate::clock::SystemClock).await;
                    });
                    self.done.send_replace(Some(record));
                }
                Err(e) => error!(error = %e, "Sync run could not be recorded"),
            }
        }
    }

    /// A run that failed, or could not even be recorded, is a failure; a
    /// run stopped by shutdown is `partial`, not one.
    fn count(&self, result: &Result<RunRecord, SyncError>) {
        let failed = result.as_ref().map_or(true, |r| r.status == RunStatus::Failed);
        let failures = if failed {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            0
        };
        metrics::gauge!(m::CONSECUTIVE_FAILURES).set(failures as f64);
    }
}
