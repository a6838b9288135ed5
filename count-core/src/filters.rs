//! Report filters that arrive as text (a query string, a gRPC request), checked where
//! they enter and resolved to [`Subject`] and [`Path`] handles when the report runs.
//!
//! A text first seen as a filter is interned on a budget of its own
//! ([`Path::MAX_FILTER_BYTES`]), so queries for made-up values never use up what
//! counting needs. Once that budget is spent, a filter still finds what was counted:
//! the report's range is read grouped by the filtered dimension (which brings every
//! stored text of the range into memory, outside any cap, bounded by what is stored),
//! and a text that is not among them matches nothing.

use crate::{
    Counter, Dimension, Endpoint, Error, GroupedTotal, Method, Path, Result, Subject, TotalsQuery,
};

/// A report's subject and endpoint filters as texts: checked by the rules of
/// [`Subject::new`] and [`Path::new`], not interned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TextFilters {
    subject: Option<String>,
    endpoint: Option<(Method, String)>,
}

impl TextFilters {
    /// No filter.
    pub fn new() -> TextFilters {
        TextFilters::default()
    }

    /// Keeps only counts of the subject `text`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Subject::new`].
    pub fn subject(mut self, text: &str) -> Result<TextFilters> {
        Subject::check(text)?;
        self.subject = Some(text.to_owned());
        Ok(self)
    }

    /// Keeps only counts of the endpoint `method` `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `path` breaks a rule of [`Path::new`].
    pub fn endpoint(mut self, method: Method, path: &str) -> Result<TextFilters> {
        Path::check(path)?;
        self.endpoint = Some((method, path.to_owned()));
        Ok(self)
    }

    /// The subject filtered on, if any.
    pub fn subject_text(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The endpoint filtered on, if any.
    pub fn endpoint_text(&self) -> Option<(Method, &str)> {
        self.endpoint
            .as_ref()
            .map(|(method, path)| (*method, path.as_str()))
    }

    /// `query`'s totals from `counter`, with these filters added to its own.
    ///
    /// # Errors
    ///
    /// What [`Counter::totals`] returns.
    pub async fn totals(
        &self,
        counter: &dyn Counter,
        mut query: TotalsQuery,
    ) -> Result<Vec<GroupedTotal>> {
        if let Some(text) = &self.subject {
            let found = resolve(
                counter,
                &query,
                Dimension::Subject,
                Subject::for_filter(text),
                || Subject::lookup(text),
            )
            .await?;
            match found {
                Some(subject) => query = query.subject(subject),
                None => return Ok(Vec::new()),
            }
        }
        if let Some((method, text)) = &self.endpoint {
            let found = resolve(
                counter,
                &query,
                Dimension::Endpoint,
                Path::for_filter(text),
                || Path::lookup(text),
            )
            .await?;
            match found {
                Some(path) => query = query.endpoint(Endpoint::new(*method, path)),
                None => return Ok(Vec::new()),
            }
        }
        counter.totals(&query).await
    }
}

/// The handle a filter text stands for: `interned` when the filter budget allowed it;
/// otherwise found among the texts stored over `query`'s range (`None`: nothing of
/// that text was counted there).
async fn resolve<T>(
    counter: &dyn Counter,
    query: &TotalsQuery,
    dimension: Dimension,
    interned: Result<T>,
    lookup: impl Fn() -> Option<T>,
) -> Result<Option<T>> {
    match interned {
        Ok(handle) => Ok(Some(handle)),
        // Refused only for a text not interned yet (a known one is always found).
        Err(Error::LimitReached(_)) => {
            // Read back what the range holds of this dimension: backends intern what
            // they read from storage outside every cap.
            counter
                .totals(&TotalsQuery::new(query.range, &[dimension])?)
                .await?;
            Ok(lookup())
        }
        Err(error) => Err(error),
    }
}
