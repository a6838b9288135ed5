//! [`CountV1Handler`]: `count.v1.CountService` over any [`Counter`], with the Go
//! server's semantics and status codes for its RPCs, and the additions.

mod budget;
mod deadline;
mod feed;
mod limits;
mod part;
mod scope;
mod stats;
mod unit;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use count_core::uuid::Uuid;
use count_core::{Batch, BatchId, BucketCount, BucketWidth, Counter, DateRange, Error};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

pub use deadline::parse_grpc_timeout;
pub use scope::ClientScope;
pub use stats::ServiceStats;

use self::budget::Budget;
use self::part::{Part, Refusal};
use self::stats::{AddOutcome, StatsCells};
use crate::convert::{self, codes, totals};
use crate::proto::count::v1 as pb;
use crate::proto::count::v1::count_service_server::{CountService, CountServiceServer};

/// The `count.v1.CountService` handler over a [`Counter`]; serve it with
/// [`into_service`](CountV1Handler::into_service) on a tonic server.
///
/// - `Add` writes a stream with a deadline as one batch of its own, with retries,
///   before it answers; a stream without a deadline is a feed, written part by part
///   as it goes (see the crate docs for both and their codes). Neither goes through
///   a shared queue, so one client's stream cannot delay, coarsen or drop another's
///   counts.
/// - `AddCounts` writes the client's batch under the client's batch id, once.
/// - The reports read the counter, live.
///
/// Clones share the writer id, the batch numbers, the budget of pending rows and
/// the [`ServiceStats`].
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
    budget: Arc<Budget>,
    /// How many feeds are open.
    feeds_open: watch::Sender<u64>,
    /// The policy of limits, for leases.
    policy: limits::PolicyCache,
}

/// Builds a [`CountV1Handler`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct CountV1HandlerBuilder {
    counter: Arc<dyn Counter>,
    add_timeout: Duration,
    feed_flush: Duration,
    max_stream_rows: usize,
    max_pending_rows: u64,
    max_pending_text_bytes: u64,
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
            feed_flush: Duration::from_secs(1),
            max_stream_rows: 100_000,
            max_pending_rows: 2_000_000,
            max_pending_text_bytes: 256 << 20,
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
        let shared = &self.shared;
        let feeds_open = *shared.feeds_open.borrow();
        shared.stats.snapshot(shared.budget.usage(), feeds_open)
    }

    /// Waits until no feed is open: each has ended, its last part written or given
    /// up (within the add timeout). A feed whose call was cut (its client gone, or the
    /// server closing its connections) still writes what it had received; a server
    /// that shuts down awaits this after its connections are closed and before it
    /// exits, so that those counts are not lost.
    pub async fn wait_for_feeds(&self) {
        let mut open = self.shared.feeds_open.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = open.wait_for(|&open| open == 0).await;
    }

    /// Runs the feed in a task of its own, so that it outlives its call: when the
    /// call is dropped (the client went away, the server cut the connection), the
    /// feed still writes what it received.
    async fn add_feed(&self, stream: Streaming<pb::AddRequest>) -> Result<(), Status> {
        let shared = self.shared.clone();
        shared.stats.feed();
        let open = OpenFeed::new(shared.clone());
        let task = tokio::spawn(async move {
            let outcome = OutcomeGuard::new(shared.stats.clone());
            let answer = outcome.answer(feed::feed(shared, stream).await);
            // Counted before the feed is no longer open.
            drop(open);
            answer
        });
        task.await
            .unwrap_or_else(|failed| Err(Status::internal(format!("the feed failed: {failed}"))))
    }
}

impl Shared {
    fn next_batch_id(&self) -> BatchId {
        BatchId {
            writer: self.writer,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn new_part(&self) -> Part {
        let settings = &self.settings;
        Part::new(
            settings.bucket_width,
            settings.max_stream_rows,
            self.budget.clone(),
        )
    }
}

/// The figure and error of a message `part` refused.
fn refusal(shared: &Shared, part: &Part, refused: Refusal) -> (AddOutcome, Error) {
    match refused {
        Refusal::Invalid(error) => (AddOutcome::Invalid, error),
        Refusal::Full => (
            AddOutcome::TooLarge,
            Error::LimitReached(format!(
                "a stream with a deadline may hold at most {} distinct rows (endpoint, \
                 subject, status, {} s time bucket), and this one has more: send it as \
                 smaller streams, or without a deadline (a feed, written part by part)",
                part.max_rows(),
                part.bucket_seconds()
            )),
        ),
        Refusal::OverBudget(error) => {
            shared.stats.over_budget();
            (AddOutcome::TooLarge, error)
        }
    }
}

impl CountV1HandlerBuilder {
    /// How long writing one batch of `Add` counts may take, retries included: the
    /// whole of a stream with a deadline, from the stream's end (within the client's
    /// deadline too), or one part of a feed, from the start of its write. It never
    /// runs from the call's start: a feed may stay open for as long as its client
    /// likes. Default 30 s.
    pub fn add_timeout(mut self, timeout: Duration) -> Self {
        self.add_timeout = timeout;
        self
    }

    /// How often a feed (an `Add` stream without a deadline) writes what it has
    /// received: one part per interval at most (besides a part that reaches
    /// [`max_stream_rows`](Self::max_stream_rows), written at once), and the last at
    /// the stream's end. Default 1 s (at least 1 ms).
    ///
    /// Each part is a batch of its own, whose id the storage keeps for its batch
    /// retention: a feed that always has something to write adds one such row per
    /// interval.
    pub fn feed_flush(mut self, every: Duration) -> Self {
        self.feed_flush = every.max(Duration::from_millis(1));
        self
    }

    /// The most distinct rows (endpoint, subject, status, time bucket) an `Add`
    /// stream with a deadline may hold, and one part of a feed. A stream with a
    /// deadline that has more is refused with `RESOURCE_EXHAUSTED` and nothing of it
    /// is written; a feed's part that reaches it is written at once (and the feed is
    /// not read while the part before it is still being written). Default 100,000
    /// (at least 1).
    pub fn max_stream_rows(mut self, rows: usize) -> Self {
        self.max_stream_rows = rows.max(1);
        self
    }

    /// The most rows all `Add` streams together may hold in memory before they are
    /// written. A stream whose next row would pass it is refused with
    /// `RESOURCE_EXHAUSTED`: nothing of a stream with a deadline is written; a feed
    /// writes what it received before that message and ends. A row costs about
    /// 100 bytes besides its texts. Default 2,000,000.
    pub fn max_pending_rows(mut self, rows: u64) -> Self {
        self.max_pending_rows = rows;
        self
    }

    /// The most bytes of path and subject text all `Add` streams together may hold
    /// before they are written (each distinct text of a stream, or of a feed's part,
    /// counted once), refused as [`max_pending_rows`](Self::max_pending_rows) says.
    /// Default 256 MiB.
    pub fn max_pending_text_bytes(mut self, bytes: u64) -> Self {
        self.max_pending_text_bytes = bytes;
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
                budget: Arc::new(Budget::new(
                    self.max_pending_rows,
                    self.max_pending_text_bytes,
                )),
                settings: self,
                writer: Uuid::new_v4(),
                next_seq: AtomicU64::new(0),
                stats: Arc::default(),
                feeds_open: watch::Sender::new(0),
                policy: limits::PolicyCache::default(),
            }),
        }
    }
}

/// Counts one `Add` stream's outcome exactly once: as told, or as failed when the
/// call is dropped before it ends.
struct OutcomeGuard {
    stats: Arc<StatsCells>,
    counted: bool,
}

impl OutcomeGuard {
    fn new(stats: Arc<StatsCells>) -> Self {
        OutcomeGuard {
            stats,
            counted: false,
        }
    }

    /// Counts the stream's end and makes its answer.
    fn answer(mut self, ended: Result<(), (AddOutcome, Status)>) -> Result<(), Status> {
        self.counted = true;
        match ended {
            Ok(()) => {
                self.stats.add_stream(AddOutcome::Ok);
                Ok(())
            }
            Err((outcome, status)) => {
                self.stats.add_stream(outcome);
                Err(status)
            }
        }
    }
}

impl Drop for OutcomeGuard {
    fn drop(&mut self) {
        if !self.counted {
            self.stats.add_stream(AddOutcome::Failed);
        }
    }
}

/// One open feed, in the `feeds_open` gauge while it lives.
struct OpenFeed(Arc<Shared>);

impl OpenFeed {
    fn new(shared: Arc<Shared>) -> OpenFeed {
        shared.feeds_open.send_modify(|open| *open += 1);
        OpenFeed(shared)
    }
}

impl Drop for OpenFeed {
    fn drop(&mut self) {
        self.0.feeds_open.send_modify(|open| *open -= 1);
    }
}

#[tonic::async_trait]
impl CountService for CountV1Handler {
    async fn add(
        &self,
        request: Request<Streaming<pb::AddRequest>>,
    ) -> Result<Response<pb::AddResponse>, Status> {
        let deadline = deadline::client_deadline(request.metadata(), Instant::now());
        let stream = request.into_inner();
        let answer = match deadline {
            Some(deadline) => {
                // Counts the stream as failed if the call is dropped (the client went
                // away).
                let outcome = OutcomeGuard::new(self.shared.stats.clone());
                outcome.answer(unit::unit(&self.shared, stream, deadline).await)
            }
            None => self.add_feed(stream).await,
        };
        answer.map(|()| Response::new(pb::AddResponse {}))
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
        let scope = request.extensions().get::<ClientScope>().copied();
        let request = request.into_inner();
        let client_id = convert::batch_id(request.batch_id).map_err(codes::status)?;
        let id = ClientScope::stored_id(scope.as_ref(), client_id);
        // Every count is checked before any text is interned: a refused batch leaves
        // nothing in the process-wide interners.
        let checked = request
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                convert::checked_bucket_count(count).map_err(|error| {
                    let status = codes::status(error);
                    Status::new(status.code(), format!("counts[{i}]: {}", status.message()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let counts = checked
            .into_iter()
            .map(|(key, bucket, n)| Ok(BucketCount::new(key.interned()?, bucket, n)))
            .collect::<Result<Vec<_>, Error>>()
            .map_err(codes::status)?;
        let batch = Batch::new(id, counts).map_err(codes::status)?;
        // Straight to the counter, under the client's batch id (in the client's
        // namespace): a resent batch is recognised by the storage and applied once.
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
                let shown = client_id.to_string();
                Err(codes::status(scope::hide_id(
                    error,
                    id,
                    &shown,
                    Some(client_id),
                )))
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

    async fn get_kept(
        &self,
        _: Request<pb::GetKeptRequest>,
    ) -> Result<Response<pb::GetKeptResponse>, Status> {
        let kept = self.shared.counter.kept().await.map_err(codes::status)?;
        Ok(Response::new(pb::GetKeptResponse {
            quarters_from: kept.quarters_from.map(convert::date),
            zones: kept
                .zone_days
                .iter()
                .map(|(zone, from)| pb::KeptZone {
                    time_zone: zone.name().to_owned(),
                    kept_from: Some(convert::date(*from)),
                })
                .collect(),
        }))
    }

    async fn forget_quarters_before(
        &self,
        request: Request<pb::ForgetQuartersBeforeRequest>,
    ) -> Result<Response<pb::ForgetQuartersBeforeResponse>, Status> {
        let before = convert::day("before", request.into_inner().before).map_err(codes::status)?;
        (self.shared.counter.forget_quarters_before(before).await).map_err(codes::status)?;
        Ok(Response::new(pb::ForgetQuartersBeforeResponse {}))
    }

    async fn keep_zone_days(
        &self,
        request: Request<pb::KeepZoneDaysRequest>,
    ) -> Result<Response<pb::KeepZoneDaysResponse>, Status> {
        let name = request.into_inner().time_zone;
        let zone = count_core::Zone::new(&name)
            .map_err(|e| convert::renamed_keeping_value(e, "time_zone"))
            .map_err(codes::status)?;
        let from = (self.shared.counter.keep_zone_days(&zone).await).map_err(codes::status)?;
        Ok(Response::new(pb::KeepZoneDaysResponse {
            kept_from: Some(convert::date(from)),
        }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let answer = limits::get_policy(&*self.shared.counter, request.into_inner()).await;
        answer.map(Response::new).map_err(codes::status)
    }

    async fn replace_policy(
        &self,
        request: Request<pb::ReplacePolicyRequest>,
    ) -> Result<Response<pb::ReplacePolicyResponse>, Status> {
        let answer = limits::replace_policy(&*self.shared.counter, request.into_inner()).await;
        answer.map(Response::new).map_err(codes::status)
    }

    async fn lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseResponse>, Status> {
        let shared = &*self.shared;
        let answer = limits::lease(&*shared.counter, &shared.policy, request.into_inner()).await;
        answer.map(Response::new).map_err(codes::status)
    }

    async fn get_totals(
        &self,
        request: Request<pb::GetTotalsRequest>,
    ) -> Result<Response<pb::GetTotalsResponse>, Status> {
        let query = totals::query(request.into_inner()).map_err(codes::status)?;
        let rows = (self.shared.counter.totals(&query).await).map_err(codes::status)?;
        Ok(Response::new(pb::GetTotalsResponse {
            rows: rows
                .iter()
                .map(|row| totals::wire_row(&query, row))
                .collect(),
            time_zone: Some(query.zone.name().to_owned()),
        }))
    }
}
