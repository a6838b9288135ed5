//! Who a request is for: [`SubjectOf`], and [`NoSubject`].

use http::Request;

use crate::Subject;

/// Gives the [`Subject`] of a request: implemented by closures
/// `Fn(&Request<B>) -> Option<Subject>`, and by [`NoSubject`].
pub trait SubjectOf<B>: Clone + Send + Sync + 'static {
    /// The subject to count `request` for, if any.
    fn subject_of(&self, request: &Request<B>) -> Option<Subject>;
}

/// No subject: every request is counted without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSubject;

impl<B> SubjectOf<B> for NoSubject {
    #[inline]
    fn subject_of(&self, _: &Request<B>) -> Option<Subject> {
        None
    }
}

impl<B, F> SubjectOf<B> for F
where
    F: Fn(&Request<B>) -> Option<Subject> + Clone + Send + Sync + 'static,
{
    #[inline]
    fn subject_of(&self, request: &Request<B>) -> Option<Subject> {
        self(request)
    }
}
