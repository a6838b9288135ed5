//! The backend's health, watched: a background task asks [`Counter::health`] every
//! few seconds and sets the gRPC health service (SERVING / NOT_SERVING) and the
//! `count_backend_up` figure from the answer. `/readyz` asks the backend itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use count_core::{Counter, Error};
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The last health check's outcome, shared with `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct BackendHealth {
    up: AtomicBool,
    checks_failed: AtomicU64,
}

/// A copy of [`BackendHealth`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthSnapshot {
    pub(crate) up: bool,
    pub(crate) checks_failed: u64,
}

impl BackendHealth {
    pub(crate) fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            up: self.up.load(Relaxed),
            checks_failed: self.checks_failed.load(Relaxed),
        }
    }
}

/// Asks `counter` whether it is healthy, within `timeout`.
///
/// # Errors
///
/// The backend's error, or [`Error::Unavailable`] when it did not answer in time.
pub(crate) async fn check(counter: &dyn Counter, timeout: Duration) -> count_core::Result<()> {
    match tokio::time::timeout(timeout, counter.health()).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::unavailable(format!(
            "the backend did not answer a health check within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// The services whose gRPC health follows the backend's.
const SERVICES: [&str; 2] = ["", count_grpc::SERVICE_NAME];

/// A running health watch; [`HealthWatch::stop`] ends it.
#[derive(Debug)]
pub(crate) struct HealthWatch {
    task: JoinHandle<()>,
}

impl HealthWatch {
    /// Checks once now (so the first answers are right), then every `every` in the
    /// background.
    pub(crate) async fn start(
        counter: Arc<dyn Counter>,
        reporter: HealthReporter,
        state: Arc<BackendHealth>,
        every: Duration,
        timeout: Duration,
    ) -> HealthWatch {
        let checker = Checker {
            counter,
            reporter,
            state,
            timeout,
        };
        checker.run_once(None).await;
        let task = tokio::spawn(async move {
            let mut was_up = Some(checker.state.up.load(Relaxed));
            loop {
                tokio::time::sleep(every).await;
                was_up = Some(checker.run_once(was_up).await);
            }
        });
        HealthWatch { task }
    }

    /// Stops checking (a check in progress is given up), then marks every service
    /// NOT_SERVING (the server is stopping).
    pub(crate) async fn stop(self, reporter: &HealthReporter) {
        self.task.abort();
        let _ = self.task.await;
        for service in SERVICES {
            reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}

struct Checker {
    counter: Arc<dyn Counter>,
    reporter: HealthReporter,
    state: Arc<BackendHealth>,
    timeout: Duration,
}

impl Checker {
    /// One check; logs a change from `was_up`. Returns whether the backend is up.
    async fn run_once(&self, was_up: Option<bool>) -> bool {
        let outcome = check(&*self.counter, self.timeout).await;
        let up = outcome.is_ok();
        self.state.up.store(up, Relaxed);
        let status = match &outcome {
            Ok(()) => ServingStatus::Serving,
            Err(error) => {
                self.state.checks_failed.fetch_add(1, Relaxed);
                if was_up != Some(false) {
                    tracing::warn!(%error, "count-server: the backend is down: NOT_SERVING");
                }
                ServingStatus::NotServing
            }
        };
        if up && was_up == Some(false) {
            tracing::info!("count-server: the backend is back: SERVING");
        }
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
        up
    }
}
