//! [`Count`]: the service [`CountLayer`](super::CountLayer) wraps around an inner
//! service.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use super::future::{CountBody, CountFuture};
use super::layer::Config;
use super::limits::{LimitedFuture, NoLimits, WithLimits, refused};
use super::subject::{NoSubject, SubjectOf};
use crate::limits::Admission;

/// The service [`CountLayer`](super::CountLayer) wraps around an inner service.
#[derive(Debug, Clone)]
pub struct Count<S, X = NoSubject, L = NoLimits> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
    pub(super) subject: X,
    pub(super) limits: PhantomData<L>,
}

impl<S, X, B, ResBody> tower_service::Service<Request<B>> for Count<S, X, NoLimits>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    X: SubjectOf<B>,
{
    type Response = Response<CountBody<ResBody>>;
    type Error = S::Error;
    type Future = CountFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let subject = self.subject.subject_of(&request);
        let recording = self.config.start(&request, subject);
        CountFuture::new(self.inner.call(request), recording)
    }
}

impl<S, X, B, ResBody> tower_service::Service<Request<B>> for Count<S, X, WithLimits>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    X: SubjectOf<B>,
    ResBody: Default,
{
    type Response = Response<CountBody<ResBody>>;
    type Error = S::Error;
    type Future = LimitedFuture<S::Future, S, B, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let subject = self.subject.subject_of(&request);
        let mut recording = self.config.start(&request, subject);
        let limiter = self.config.limiter.as_ref().expect("set with WithLimits");
        let (method, path) = recording.limit_target();
        match limiter.admit_now(subject, method, path) {
            Admission::Untouched => LimitedFuture::running(self.inner.call(request), recording),
            Admission::Admitted(ticket) => {
                recording.ticket = Some(ticket);
                LimitedFuture::running(self.inner.call(request), recording)
            }
            Admission::Refused(refusal) => LimitedFuture::refused(refused(recording, &refusal)),
            Admission::Wait => {
                // Cold: the subject's first request in a window (here), or a burst
                // that outran its refill. The ready service goes with the request.
                let limiter = limiter.clone();
                let path = path.to_owned();
                let admit = Box::pin(async move { limiter.admit(subject, method, &path).await });
                let fresh = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, fresh);
                LimitedFuture::admitting(admit, ready, request, recording)
            }
        }
    }
}
