//! Writing one `Add` stream's batch (or one part of a feed): retried with backoff
//! until it is written or its deadline comes, and answered by what is known of its
//! outcome.

use std::sync::Arc;
use std::time::Duration;

use count_core::backend::Backoff;
use count_core::{Batch, Counter, Error};
use tokio::time::Instant;

use super::Shared;
use super::part::Part;
use super::stats::{AddOutcome, StatsCells};

/// Why a batch is not known to be written.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    /// Nothing of the batch was written: every attempt failed before writing, or the
    /// counter refused the batch for good (the error says which).
    NotWritten(Error),
    /// An attempt's outcome is unknown and no later attempt succeeded before the
    /// deadline: the batch was written whole or not at all.
    Unknown(Error),
}

impl WriteFailure {
    /// The figure a stream that ends on this failure counts in.
    pub(crate) fn outcome(&self) -> AddOutcome {
        match self {
            WriteFailure::NotWritten(error) if error.is_retryable() => AddOutcome::Unavailable,
            WriteFailure::NotWritten(Error::LimitReached(_)) => AddOutcome::TooLarge,
            WriteFailure::NotWritten(Error::InvalidInput { .. }) => AddOutcome::Invalid,
            WriteFailure::NotWritten(_) => AddOutcome::Failed,
            WriteFailure::Unknown(_) => AddOutcome::Unknown,
        }
    }
}

/// Interns `part`'s texts and writes it as a batch of its own (a new batch id of the
/// handler's), retrying until `deadline`.
pub(crate) async fn write_part(
    shared: &Shared,
    part: Part,
    deadline: Instant,
) -> Result<(), WriteFailure> {
    let id = shared.next_batch_id();
    let written = part.into_batch(id).map_err(WriteFailure::NotWritten)?;
    let (initial, max) = shared.settings.retry;
    let mut backoff = Backoff::new(initial, max);
    let result = write_until(
        &shared.counter,
        written.batch.clone(),
        deadline,
        &mut backoff,
        &shared.stats,
    )
    .await;
    // The part's share of the budget is given back once its write has ended.
    drop(written);
    // The handler's batch ids are its own: no answer shows them.
    let hide = |error| super::scope::hide_id(error, id, "the stream's batch", None);
    result.map_err(|failure| match failure {
        WriteFailure::NotWritten(error) => WriteFailure::NotWritten(hide(error)),
        WriteFailure::Unknown(error) => WriteFailure::Unknown(hide(error)),
    })
}

/// Retry delays: from 20 ms, doubling, at most 1 s.
pub(crate) const RETRY_INITIAL: Duration = Duration::from_millis(20);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(1);

/// Writes `batch` to `counter`, retrying retryable errors until `deadline`.
///
/// Each attempt runs in a task of its own, so a backend that panics fails that
/// attempt (its outcome unknown) instead of the call, and an attempt the deadline
/// cuts short still finishes in the background (its outcome unknown to the client).
pub(crate) async fn write_until(
    counter: &Arc<dyn Counter>,
    batch: Arc<Batch>,
    deadline: Instant,
    backoff: &mut Backoff,
    stats: &Arc<StatsCells>,
) -> Result<(), WriteFailure> {
    // The error of an attempt that may have applied the batch, if one did.
    let mut maybe_written: Option<Error> = None;
    let mut last = Error::unavailable("the call's deadline passed before the first write");
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let attempt = tokio::spawn({
            let (counter, batch, stats) = (counter.clone(), batch.clone(), stats.clone());
            async move {
                let written = counter.write(&batch).await;
                // Counted here, so that an attempt that outlives the deadline (or the
                // call) is counted too when it succeeds.
                match &written {
                    Ok(()) => stats.written(batch.total()),
                    Err(_) => stats.attempt_failed(),
                }
                written
            }
        });
        let error = match tokio::time::timeout(remaining, attempt).await {
            Ok(Ok(Ok(()))) => return Ok(()),
            Ok(Ok(Err(error))) => error,
            Ok(Err(joined)) => {
                stats.attempt_failed();
                Error::ambiguous(format!("the storage failed writing: {joined}"))
            }
            Err(_) => Error::ambiguous(format!(
                "the write of batch {} did not finish before the call's deadline",
                batch.id()
            )),
        };
        if matches!(error, Error::Ambiguous { .. }) {
            maybe_written = Some(error.clone());
        }
        if !error.is_retryable() {
            // Refused for good; still unknown if an earlier attempt may have applied.
            return Err(match maybe_written {
                Some(unknown) => WriteFailure::Unknown(unknown),
                None => WriteFailure::NotWritten(error),
            });
        }
        tracing::debug!(batch = %batch.id(), %error, "count.v1 Add: write failed; retrying");
        last = error;
        let delay = backoff.next_delay();
        if Instant::now() + delay >= deadline {
            break;
        }
        tokio::time::sleep(delay).await;
    }
    Err(match maybe_written {
        Some(unknown) => WriteFailure::Unknown(unknown),
        None => WriteFailure::NotWritten(last),
    })
}
