//! [`GrpcCounter`]: a [`Counter`] whose storage is a remote count server, so a
//! service counts into it through the same [`CountQueue`](count_core::CountQueue) it
//! would use locally.

mod split;

use std::time::Duration;

use async_trait::async_trait;
use count_core::{
    Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, Period, PeriodTotal, Result,
    StoredPolicy, TotalsQuery,
    limits::{LeaseAsk, LeaseGrant, Policy},
};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::convert::codes::{Call, error};
use crate::convert::{self, totals};
use crate::proto::count::v1 as pb;
use crate::proto::count::v1::count_service_client::CountServiceClient;

/// A [`Counter`] on a remote count server: writes are `AddCounts` (exactly once by
/// batch id), reports the report RPCs (`GetTotals` for [`Counter::totals`]), health
/// the gRPC health service. Subjects and statuses travel with the counts.
///
/// # Never stuck behind one batch
///
/// - A batch whose request would pass the message limit
///   ([`GrpcCounterBuilder::max_message_bytes`]) is sent in parts that each fit,
///   each under an id derived from the batch's (the same `seq`; the writer a UUIDv5
///   of the batch's writer, `seq` and the part's index), so a retried batch yields the
///   same parts and the server applies each exactly once. Parts are sent in order;
///   if the server refuses a later part for good, the parts before it stay written
///   while the queue counts the whole batch as lost (so `Stats::lost` may overstate
///   the loss, never understate it).
/// - A server answer that retrying cannot cure (`INVALID_ARGUMENT`, `ALREADY_EXISTS`,
///   `RESOURCE_EXHAUSTED`, `UNAUTHENTICATED`, `INTERNAL`, ...) is a non-retryable
///   error ([`Error::BatchConflict`] for `ALREADY_EXISTS`, [`Error::LimitReached`]
///   for `RESOURCE_EXHAUSTED`, [`Error::Backend`] otherwise), so a
///   [`CountQueue`](count_core::CountQueue) counts that batch as lost, with the
///   error, and goes on with later counts. `UNAVAILABLE` is [`Error::Unavailable`];
///   an unknown outcome of a write (`UNKNOWN`, `DEADLINE_EXCEEDED`, `CANCELLED`,
///   `ABORTED`) is [`Error::Ambiguous`]: both are retried, safely, under the same
///   ids.
#[derive(Debug, Clone)]
pub struct GrpcCounter {
    client: CountServiceClient<Channel>,
    health: HealthClient<Channel>,
    token: Option<MetadataValue<Ascii>>,
    max_message_bytes: usize,
}

/// Builds a [`GrpcCounter`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct GrpcCounterBuilder {
    url: String,
    connect_timeout: Duration,
    timeout: Duration,
    tls: Option<ClientTlsConfig>,
    token: Option<String>,
    max_message_bytes: usize,
    max_receive_bytes: usize,
}

impl GrpcCounter {
    /// Connects to the server at `url` (`http://host:7777`, or `https://...` with
    /// the system's roots) with the default settings.
    ///
    /// # Errors
    ///
    /// As [`GrpcCounterBuilder::connect`].
    pub async fn connect(url: &str) -> Result<GrpcCounter> {
        GrpcCounter::builder(url).connect().await
    }

    /// A builder for the server at `url`.
    pub fn builder(url: &str) -> GrpcCounterBuilder {
        GrpcCounterBuilder {
            url: url.to_owned(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            tls: None,
            token: None,
            max_message_bytes: 4 << 20,
            max_receive_bytes: GrpcCounterBuilder::DEFAULT_MAX_RECEIVE_BYTES,
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }
}

impl GrpcCounterBuilder {
    /// The default of [`max_receive_bytes`](Self::max_receive_bytes): 64 MiB, a
    /// report of about half a million rows (a year of 1,000 endpoints by day and
    /// endpoint, with paths of up to ~100 bytes).
    pub const DEFAULT_MAX_RECEIVE_BYTES: usize = 64 << 20;

    /// How long connecting may take. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one call may take. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// TLS settings (roots, client identity, domain). Default: TLS with the system's
    /// roots for `https://` URLs, none for `http://`.
    pub fn tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// TLS trusting these PEM roots besides the system's (a private CA's).
    pub fn ca_cert_pem(self, pem: impl AsRef<[u8]>) -> Self {
        let roots = ClientTlsConfig::new().with_native_roots();
        self.tls(roots.ca_certificate(tonic::transport::Certificate::from_pem(pem)))
    }

    /// A bearer token sent with every call (`authorization: Bearer <token>`).
    /// Default none.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The largest message sent: larger batches are sent in parts (see
    /// [`GrpcCounter`]). Set it to the server's receive limit. Default 4 MiB (the
    /// server's default); at least 64 KiB.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes.max(64 << 10);
        self
    }

    /// The largest answer received (a report answers in one message, so this bounds
    /// the largest report, and the memory one answer may take). The server must be
    /// allowed to send that much too (its send limit). Default
    /// [`DEFAULT_MAX_RECEIVE_BYTES`](Self::DEFAULT_MAX_RECEIVE_BYTES), 64 MiB; at
    /// least 64 KiB.
    pub fn max_receive_bytes(mut self, bytes: usize) -> Self {
        self.max_receive_bytes = bytes.max(64 << 10);
        self
    }

    /// Connects (failing after the connect timeout) and returns the counter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a URL, TLS setting or token that cannot be used;
    /// [`Error::Unavailable`] when the server cannot be reached.
    pub async fn connect(self) -> Result<GrpcCounter> {
        let refuse = |rule: String| Error::invalid("server URL", &self.url, rule);
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| refuse(e.to_string()))?
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .tcp_nodelay(true);
        let tls = match self.tls.clone() {
            Some(tls) => Some(tls),
            None if self.url.starts_with("https://") => {
                Some(ClientTlsConfig::new().with_native_roots())
            }
            None => None,
        };
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| refuse(format!("TLS: {e}")))?;
        }
        let token = self
            .token
            .as_deref()
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| Error::invalid("token", "(hidden)", "must be visible ASCII"))
            })
            .transpose()?;
        let channel = endpoint.connect().await.map_err(|e| Error::Unavailable {
            message: format!("connecting to the count server at {}: {e}", self.url),
            source: Some(std::sync::Arc::new(e)),
        })?;
        let client = CountServiceClient::new(channel.clone())
            .max_decoding_message_size(self.max_receive_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        Ok(GrpcCounter {
            client,
            health: HealthClient::new(channel),
            token,
            max_message_bytes: self.max_message_bytes,
        })
    }
}

#[async_trait]
impl Counter for GrpcCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        // Parts in order: a retry after a failed part re-sends the parts before it,
        // which the server recognises by their ids and applies once.
        for part in split::requests(batch, self.max_message_bytes) {
            self.client
                .clone()
                .add_counts(self.request(part))
                .await
                .map_err(|s| error(s, Call::Write(batch.id())))?;
        }
        Ok(())
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        let request = self.request(pb::CountDailyTotalsRequest {
            date: Some(convert::date(day)),
        });
        let response = self
            .client
            .clone()
            .count_daily_totals(request)
            .await
            .map_err(|s| error(s, Call::Read))?;
        sorted(response.into_inner().method_counts, convert::daily_total)
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        let request = self.request(pb::ListDailyTotalsRequest {
            start_date: Some(convert::date(range.start())),
            end_date: Some(convert::date(range.end())),
        });
        let counts = self.client.clone().list_daily_totals(request).await;
        sorted(
            none_if_not_found(counts.map(|r| r.into_inner().method_counts))?,
            convert::daily_total,
        )
    }

    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        let Some(date) = convert::period_date(period) else {
            let daily = self.daily_totals(period.range()).await?;
            return Ok(count_core::backend::sum_by_endpoint(daily));
        };
        let request = self.request(pb::GetPeriodTotalsRequest { period: Some(date) });
        let counts = self.client.clone().get_period_totals(request).await;
        sorted(
            none_if_not_found(counts.map(|r| r.into_inner().method_counts))?,
            convert::period_total,
        )
    }

    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        let request = self.request(totals::request(query));
        let response = self
            .client
            .clone()
            .get_totals(request)
            .await
            .map_err(|s| error(s, Call::Read))?;
        let response = response.into_inner();
        let answered = response.time_zone.as_deref().unwrap_or("UTC");
        if answered != query.zone.name() && !(query.zone.is_utc() && answered == "UTC") {
            return Err(Error::invalid(
                "time zone",
                query.zone.name(),
                format!(
                    "the count server answered in {answered}: it predates time zones (or \
                     names the zone otherwise); ask in UTC, or upgrade the server"
                ),
            ));
        }
        let mut rows = response
            .rows
            .into_iter()
            .map(|row| totals::row(query, row))
            .collect::<Result<Vec<_>>>()?;
        rows.sort_unstable();
        Ok(rows)
    }

    async fn kept(&self) -> Result<count_core::Kept> {
        let request = self.request(pb::GetKeptRequest {});
        let response = self
            .client
            .clone()
            .get_kept(request)
            .await
            .map_err(|s| error(s, Call::Read))?
            .into_inner();
        let mut kept = count_core::Kept::default();
        kept.quarters_from = response
            .quarters_from
            .map(|d| convert::day("quarters_from", Some(d)))
            .transpose()?;
        for zone in response.zones {
            let from = convert::day("kept_from", zone.kept_from)?;
            kept.zone_days
                .push((count_core::Zone::new(&zone.time_zone)?, from));
        }
        Ok(kept)
    }

    async fn forget_quarters_before(&self, day: Day) -> Result<()> {
        let request = self.request(pb::ForgetQuartersBeforeRequest {
            before: Some(convert::date(day)),
        });
        self.client
            .clone()
            .forget_quarters_before(request)
            .await
            .map_err(|s| error(s, Call::Read))?;
        Ok(())
    }

    async fn keep_zone_days(&self, zone: &count_core::Zone) -> Result<Day> {
        let request = self.request(pb::KeepZoneDaysRequest {
            time_zone: zone.name().to_owned(),
        });
        let response = self
            .client
            .clone()
            .keep_zone_days(request)
            .await
            .map_err(|s| error(s, Call::Read))?
            .into_inner();
        convert::day("kept_from", response.kept_from)
    }

    async fn policy_since(&self, version: u64) -> Result<Option<StoredPolicy>> {
        let request = self.request(pb::GetPolicyRequest {
            known_version: version,
        });
        let response = self
            .client
            .clone()
            .get_policy(request)
            .await
            .map_err(|s| error(s, Call::Read))?
            .into_inner();
        response
            .policy_json
            .map(|json| {
                Ok(StoredPolicy {
                    version: response.version,
                    policy: Policy::from_json(&json)?,
                })
            })
            .transpose()
    }

    async fn replace_policy(&self, expected: u64, policy: &Policy) -> Result<u64> {
        policy.check()?;
        let request = self.request(pb::ReplacePolicyRequest {
            expected_version: expected,
            policy_json: policy.to_json(),
        });
        let response = self
            .client
            .clone()
            .replace_policy(request)
            .await
            .map_err(|s| error(s, Call::Change))?
            .into_inner();
        Ok(response.version)
    }

    /// Leases through the server, which applies its own policy's amount.
    async fn lease(&self, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
        let request = self.request(pb::LeaseRequest {
            subject: ask.subject.to_owned(),
            limit: ask.limit.to_owned(),
            window_start: ask.window.start,
            window_end: ask.window.end,
            want: ask.want,
            give_back: ask.give_back,
            seed: ask.seed,
        });
        let response = self
            .client
            .clone()
            .lease(request)
            .await
            .map_err(|s| error(s, Call::Change))?
            .into_inner();
        Ok(LeaseGrant {
            granted: response.granted.min(ask.want),
            taken: response.taken,
        })
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        let request = self.request(pb::ListUnrolledDaysRequest {
            before: Some(convert::date(before)),
        });
        let response = self
            .client
            .clone()
            .list_unrolled_days(request)
            .await
            .map_err(|s| error(s, Call::Read))?;
        response
            .into_inner()
            .days
            .into_iter()
            .map(|d| convert::day("day", Some(d)))
            .collect()
    }

    async fn health(&self) -> Result<()> {
        let request = self.request(HealthCheckRequest {
            service: crate::SERVICE_NAME.to_owned(),
        });
        let response = self
            .health
            .clone()
            .check(request)
            .await
            .map_err(|s| error(s, Call::Read))?;
        match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(Error::unavailable(format!(
                "the count server is {}",
                other.as_str_name()
            ))),
        }
    }
}

/// The Go server's NOT_FOUND for a report is "no counts": an empty list here.
fn none_if_not_found(
    counts: std::result::Result<Vec<pb::MethodCount>, tonic::Status>,
) -> Result<Vec<pb::MethodCount>> {
    match counts {
        Ok(counts) => Ok(counts),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(Vec::new()),
        Err(s) => Err(error(s, Call::Read)),
    }
}

/// Wire counts checked and converted, in the contract's order.
fn sorted<T: Ord>(
    counts: Vec<pb::MethodCount>,
    convert: fn(pb::MethodCount) -> Result<T>,
) -> Result<Vec<T>> {
    let mut totals = counts
        .into_iter()
        .map(convert)
        .collect::<Result<Vec<_>>>()?;
    totals.sort_unstable();
    Ok(totals)
}
