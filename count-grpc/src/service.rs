//! `count.v1.CountService` over any [`Counter`], with the Go server's semantics and
//! status codes.

use std::sync::Arc;

use count_core::{Batch, CountQueue, Counter, DateRange, Path};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, status};
use crate::proto::count::v1 as pb;
use crate::proto::count::v1::count_service_server::CountService;

/// The service: reports and `AddCounts` go to the counter; `Add` streams go through a
/// [`CountQueue`] on it (aggregated, written in batches).
#[derive(Debug, Clone)]
pub struct CountServer {
    counter: Arc<dyn Counter>,
    queue: CountQueue,
}

impl CountServer {
    /// A service over `counter`, recording `Add` streams into `queue` (which must
    /// write to the same counter).
    pub fn new(counter: Arc<dyn Counter>, queue: CountQueue) -> CountServer {
        CountServer { counter, queue }
    }

    /// The tonic service, to add to a router.
    pub fn into_service(self) -> pb::count_service_server::CountServiceServer<CountServer> {
        pb::count_service_server::CountServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl CountService for CountServer {
    async fn add(
        &self,
        request: Request<Streaming<pb::AddRequest>>,
    ) -> Result<Response<pb::AddResponse>, Status> {
        let mut stream = request.into_inner();
        while let Some(message) = stream.message().await? {
            let method = convert::method(message.method).map_err(status)?;
            let path = Path::new(&message.path).map_err(status)?;
            let at = convert::timestamp("request_timestamp", message.request_timestamp)
                .map_err(status)?;
            // Waits while the queue is full: backpressure to this stream only.
            self.queue
                .record_at_wait(method, path, at)
                .await
                .map_err(status)?;
        }
        // Answer only once this stream's counts are written: a client that got
        // AddResponse knows they are safe. (On a refused message the counts before
        // it stay queued and are written by the next flush.)
        self.queue.flush().await.map_err(status)?;
        Ok(Response::new(pb::AddResponse {}))
    }

    async fn count_daily_totals(
        &self,
        request: Request<pb::CountDailyTotalsRequest>,
    ) -> Result<Response<pb::CountDailyTotalsResponse>, Status> {
        let day = convert::day("date", request.into_inner().date).map_err(status)?;
        let totals = self.counter.rollup(day).await.map_err(status)?;
        Ok(Response::new(pb::CountDailyTotalsResponse {
            method_counts: totals.iter().map(convert::daily_count).collect(),
        }))
    }

    async fn list_daily_totals(
        &self,
        request: Request<pb::ListDailyTotalsRequest>,
    ) -> Result<Response<pb::ListDailyTotalsResponse>, Status> {
        let request = request.into_inner();
        let start = convert::day("start_date", request.start_date).map_err(status)?;
        let end = convert::day("end_date", request.end_date).map_err(status)?;
        let range = DateRange::new(start, end).map_err(status)?;
        let totals = self.counter.daily_totals(range).await.map_err(status)?;
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
        let period = convert::period(request.into_inner().period).map_err(status)?;
        let totals = self.counter.period_totals(period).await.map_err(status)?;
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
        let request = request.into_inner();
        let id = convert::batch_id(request.batch_id).map_err(status)?;
        let counts = request
            .counts
            .into_iter()
            .map(convert::bucket_count)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        // Straight to the counter, under the client's batch id: a retry of this
        // request is recognised by the database and applied once.
        let batch = Batch::new(id, counts).map_err(status)?;
        self.counter.write(&batch).await.map_err(status)?;
        Ok(Response::new(pb::AddCountsResponse {}))
    }

    async fn list_unrolled_days(
        &self,
        request: Request<pb::ListUnrolledDaysRequest>,
    ) -> Result<Response<pb::ListUnrolledDaysResponse>, Status> {
        let before = convert::day("before", request.into_inner().before).map_err(status)?;
        let days = self.counter.unrolled_days(before).await.map_err(status)?;
        Ok(Response::new(pb::ListUnrolledDaysResponse {
            days: days.into_iter().map(convert::date).collect(),
        }))
    }
}
