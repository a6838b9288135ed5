//! [`CountV1Handler`]: `count.v1.CountService` over any [`Counter`], with the Go
//! server's semantics and status codes for its RPCs, and the additions.

mod deadline;
mod stats;
mod stream;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use count_core::uuid::Uuid;
use count_core::{Backoff, Batch, BatchId, BucketWidth, Counter, DateRange, Error};
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

pub use stats::ServiceStats;

use self::stats::{AddOutcome, StatsCells};
use self::stream::StreamRows;
use self::write::{WriteFailure, write_until};
use crate::convert::{self, codes, totals};
use crate::proto::count::v1 as pb;
use crate::proto::count::v1::count_service_server::{CountService, CountServiceServer};

/// The `count.v1.CountService` handler over a [`Counter`]; serve it with
/// [`into_service`](CountV1Handler::into_service) on a tonic server.
///
/// - `Add` writes each stream as one batch of its own, with retries, before it
///   answers (see the crate docs for its codes); it never goes through a shared
///   queue, so one client's stream cannot delay, coarsen or drop another's counts.
/// - `AddCounts` writes the client's batch under the client's batch id, once.
/// - The reports read the counter, live.
///
/// Clones share the writer id, the batch numbers and the [`ServiceStats`].
///
/// ```
/// use std::sync::Arc;
/// use count_grpc::CountV1Handler;
///
/// # fn serve(counter: Arc<dyn count_core::Counter>) {
/// let handler = CountV1Handler::new(counter);
/// let service = handler.clone().into_service();
/// // tonic::transport::Server::builder().add_service(service).serve(address)...
/// assert_eq!(handler.stats().add_streams_ok, 0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CountV1Handler {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    counter: Arc<dyn Counter>,
    settings: CountV1HandlerBuilder,
    /// This handler's writer id for the batches of `Add` streams.
    writer: Uuid,
    next_seq: AtomicU64,
    stats: Arc<StatsCells>,
}

/// Builds a [`CountV1Handler`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct CountV1HandlerBuilder {
    counter: Arc<dyn Counter>,
    add_timeout: Duration,
    max_stream_rows: usize,
    bucket_width: BucketWidth,
    retry: (Duration, Duration),
}

impl CountV1Handler {
    /// A handler over `counter` with the default settings.
    pub fn new(counter: Arc<dyn Counter>) -> CountV1Handler {
        CountV1Handler::builder(counter).build()
    }

    /// A builder for a handler over `counter`.
    pub fn builder(counter: Arc<dyn Counter>) -> CountV1HandlerBuilder {
        CountV1HandlerBuilder {
            counter,
            add_timeout: Duration::from_secs(30),
            max_stream_rows: 100_000,
            bucket_width: BucketWidth::MINUTE,
            retry: (write::RETRY_INITIAL, write::RETRY_MAX),
        }
    }

    /// The tonic service, to add to a server (set its message size limits there).
    pub fn into_service(self) -> CountServiceServer<CountV1Handler> {
        CountServiceServer::new(self)
    }

    /// What the handler did so far.
    pub fn stats(&self) -> ServiceStats {
        self.shared.stats.snapshot()
    }

    fn next_batch_id(&self) -> BatchId {
        BatchId {
            writer: self.shared.writer,
            seq: self.shared.next_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Reads, checks and aggregates the stream, then writes it as one batch.
    async fn add_stream(
        &self,
        mut stream: Streaming<pb::AddRequest>,
        deadline: Instant,
    ) -> Result<(), (AddOutcome, Status)> {
        let settings = &self.shared.settings;
        let mut rows = StreamRows::new(settings.bucket_width, settings.max_stream_rows);
        while let Some(message) = stream
            .message()
            .await
            .map_err(|s| (AddOutcome::Failed, s))?
        {
            rows.add(&message).map_err(|error| {
                let at = rows.messages();
                let outcome = match error {
                    Error::LimitReached(_) => AddOutcome::TooLarge,
                    _ => AddOutcome::Invalid,
                };
                let status = codes::status(error);
                let message = format!(
                    "message {at} of the stream: {}; nothing of the stream was written",
                    status.message()
                );
                (outcome, Status::new(status.code(), message))
            })?;
        }
        let counts = rows.into_counts();
        if counts.is_empty() {
            return Ok(());
        }
        let batch = Batch::new(self.next_batch_id(), counts).map_err(|error| {
            let status = codes::status(error);
            let message = format!("{}; nothing of the stream was written", status.message());
            (AddOutcome::Invalid, Status::new(status.code(), message))
        })?;
        let (initial, max) = settings.retry;
        let mut backoff = Backoff::new(initial, max);
        let written = write_until(
            &self.shared.counter,
            Arc::new(batch),
            deadline,
            &mut backoff,
            &self.shared.stats,
        )
        .await;
        written.map_err(|failure| match failure {
            WriteFailure::NotWritten(error) => {
                let outcome = if error.is_retryable() {
                    AddOutcome::Unavailable
                } else {
                    AddOutcome::Failed
                };
                let status = codes::status(error);
                let message = format!("nothing of the stream was written: {}", status.message());
                (outcome, Status::new(status.code(), message))
            }
            WriteFailure::Unknown(error) => (
                AddOutcome::Unknown,
                Status::unknown(format!(
                    "outcome unknown: the stream's counts were written whole or not at \
                     all, and the deadline passed before the server could tell which \
                     ({error}); do not resend the stream blindly (it may count twice)"
                )),
            ),
        })
    }
}

impl CountV1HandlerBuilder {
    /// How long an `Add` call may take when the client sends no `grpc-timeout`: its
    /// stream is read and its batch written (with retries) within it. A client's
    /// `grpc-timeout` is used instead when it sends one. The handler answers a little
    /// before the deadline (a tenth of it, at most 250 ms) so that its answer is
    /// not cut off. Default 30 s.
    ///
    /// A tonic server's own timeout (`Server::timeout`), if shorter, ends calls
    /// first, with the outcome unknown to the client: leave it unset or longer.
    pub fn add_timeout(mut self, timeout: Duration) -> Self {
        self.add_timeout = timeout;
        self
    }

    /// The most distinct rows (endpoint, subject, status, time bucket) one `Add`
    /// stream may hold; a stream with more is refused with `RESOURCE_EXHAUSTED` and
    /// nothing of it is written. It bounds the memory one stream can take. Default
    /// 100,000 (at least 1).
    pub fn max_stream_rows(mut self, rows: usize) -> Self {
        self.max_stream_rows = rows.max(1);
        self
    }

    /// The time bucket `Add` counts a request's timestamp into. Default one minute.
    pub fn bucket_width(mut self, width: BucketWidth) -> Self {
        self.bucket_width = width;
        self
    }

    /// The delays between `Add` write attempts: from `initial`, doubling, at most
    /// `max`, each drawn at random from its upper half. Default 20 ms to 1 s.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry = (initial, max);
        self
    }

    /// The handler, with a random writer id of its own for `Add` batches.
    pub fn build(self) -> CountV1Handler {
        CountV1Handler {
            shared: Arc::new(Shared {
                counter: self.counter.clone(),
                settings: self,
                writer: Uuid::new_v4(),
                next_seq: AtomicU64::new(0),
                stats: Arc::default(),
            }),
        }
    }
}

/// Counts one `Add` stream's outcome exactly once: as told, or as failed when the
/// call is dropped before it ends.
struct OutcomeGuard<'a> {
    stats: &'a StatsCells,
    counted: bool,
}

impl<'a> OutcomeGuard<'a> {
    fn new(stats: &'a StatsCells) -> Self {
        OutcomeGuard {
            stats,
            counted: false,
        }
    }

    fn ended(mut self, outcome: AddOutcome) {
        self.stats.add_stream(outcome);
        self.counted = true;
    }
}

impl Drop for OutcomeGuard<'_> {
    fn drop(&mut self) {
        if !self.counted {
            self.stats.add_stream(AddOutcome::Failed);
        }
    }
}

#[tonic::async_trait]
impl CountService for CountV1Handler {
    async fn add(
        &self,
        request: Request<Streaming<pb::AddRequest>>,
    ) -> Result<Response<pb::AddResponse>, Status> {
        let deadline = deadline::deadline(
            request.metadata(),
            Instant::now(),
            self.shared.settings.add_timeout,
        );
        // Counts the stream as failed if the call is dropped (the client went away).
        let outcome = OutcomeGuard::new(&self.shared.stats);
        match self.add_stream(request.into_inner(), deadline).await {
            Ok(()) => {
                outcome.ended(AddOutcome::Ok);
                Ok(Response::new(pb::AddResponse {}))
            }
            Err((end, status)) => {
                outcome.ended(end);
                Err(status)
            }
        }
    }

    async fn count_daily_totals(
        &self,
        request: Request<pb::CountDailyTotalsRequest>,
    ) -> Result<Response<pb::CountDailyTotalsResponse>, Status> {
        let day = convert::day("date", request.into_inner().date).map_err(codes::status)?;
        let totals = self
            .shared
            .counter
            .rollup(day)
            .await
            .map_err(codes::status)?;
        Ok(Response::new(pb::CountDailyTotalsResponse {
            method_counts: totals.iter().map(convert::daily_count).collect(),
        }))
    }

    async fn list_daily_totals(
        &self,
        request: Request<pb::ListDailyTotalsRequest>,
    ) -> Result<Response<pb::ListDailyTotalsResponse>, Status> {
        let request = request.into_inner();
        let start = convert::day("start_date", request.start_date).map_err(codes::status)?;
        let end = convert::day("end_date", request.end_date).map_err(codes::status)?;
        let range = DateRange::new(start, end).map_err(codes::status)?;
        let totals = self
            .shared
            .counter
            .daily_totals(range)
            .await
            .map_err(codes::status)?;
        if totals.is_empty() {
            return Err(Status::not_found(format!(
                "no counts from {start} to {end}"
            )));
        }
        Ok(Response::new(pb::ListDailyTotalsResponse {
            method_counts: totals.iter().map(convert::daily_count).collect(),
        }))
    }

    async fn get_period_totals(
        &self,
        request: Request<pb::GetPeriodTotalsRequest>,
    ) -> Result<Response<pb::GetPeriodTotalsResponse>, Status> {
        let period =
            convert::period("period", request.into_inner().period).map_err(codes::status)?;
        let totals = self
            .shared
            .counter
            .period_totals(period)
            .await
            .map_err(codes::status)?;
        if totals.is_empty() {
            return Err(Status::not_found(format!("no counts in {period}")));
        }
        Ok(Response::new(pb::GetPeriodTotalsResponse {
            method_counts: totals.iter().map(convert::period_count).collect(),
        }))
    }

    async fn add_counts(
        &self,
        request: Request<pb::AddCountsRequest>,
    ) -> Result<Response<pb::AddCountsResponse>, Status> {
        let stats = &self.shared.stats;
        stats.add_counts_call();
        let request = request.into_inner();
        let id = convert::batch_id(request.batch_id).map_err(codes::status)?;
        let counts = request
            .counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| {
                convert::bucket_count(count).map_err(|error| {
                    let status = codes::status(error);
                    Status::new(status.code(), format!("counts[{i}]: {}", status.message()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = Batch::new(id, counts).map_err(codes::status)?;
        // Straight to the counter, under the client's batch id: a resent batch is
        // recognised by the storage and applied once.
        match self.shared.counter.write(&batch).await {
            Ok(()) => {
                stats.written(batch.total());
                Ok(Response::new(pb::AddCountsResponse {}))
            }
            Err(error) => {
                stats.attempt_failed();
                if matches!(error, Error::BatchConflict { .. }) {
                    stats.add_counts_conflict();
                }
                Err(codes::status(error))
            }
        }
    }

    async fn list_unrolled_days(
        &self,
        request: Request<pb::ListUnrolledDaysRequest>,
    ) -> Result<Response<pb::ListUnrolledDaysResponse>, Status> {
        let before = convert::day("before", request.into_inner().before).map_err(codes::status)?;
        let days = self
            .shared
            .counter
            .unrolled_days(before)
            .await
            .map_err(codes::status)?;
        Ok(Response::new(pb::ListUnrolledDaysResponse {
            days: days.into_iter().map(convert::date).collect(),
        }))
    }

    async fn get_totals(
        &self,
        request: Request<pb::GetTotalsRequest>,
    ) -> Result<Response<pb::GetTotalsResponse>, Status> {
        let query = totals::query(request.into_inner()).map_err(codes::status)?;
        let rows = self
            .shared
            .counter
            .totals(&query)
            .await
            .map_err(codes::status)?;
        Ok(Response::new(pb::GetTotalsResponse {
            rows: rows
                .iter()
                .map(|row| totals::wire_row(&query, row))
                .collect(),
        }))
    }
}
