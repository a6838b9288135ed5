//! [`Count`]: the service [`CountLayer`](super::CountLayer) wraps around an inner
//! service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use super::future::{CountBody, CountFuture};
use super::layer::Config;
use super::subject::{NoSubject, SubjectOf};

/// The service [`CountLayer`](super::CountLayer) wraps around an inner service.
#[derive(Debug, Clone)]
pub struct Count<S, X = NoSubject> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
    pub(super) subject: X,
}

impl<S, X, B, ResBody> tower_service::Service<Request<B>> for Count<S, X>
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
