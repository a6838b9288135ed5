//! Report filters once their interning budget is spent: a stored text is still found,
//! a made-up one matches nothing, and neither fails the report. Alone in its binary:
//! it spends the process-wide filter budget.

use std::sync::Mutex;

use async_trait::async_trait;
use count_core::{
    Batch, DailyTotal, DateRange, Day, Dimension, Endpoint, Error, GroupedTotal, Method, Path,
    Result, Subject, TextFilters, TotalsQuery,
};

/// A backend holding counts of texts this process has never interned: its reports
/// read them back with `from_storage`, as the SQL backends do.
#[derive(Debug, Default)]
struct Stored {
    queries: Mutex<Vec<TotalsQuery>>,
}

const STORED_SUBJECT: &str = "stored-subject-never-interned-here";
const STORED_PATH: &str = "/stored/path/never/interned/here";

#[async_trait]
impl count_core::Counter for Stored {
    async fn write(&self, _: &Batch) -> Result<()> {
        Ok(())
    }
    async fn rollup(&self, _: Day) -> Result<Vec<DailyTotal>> {
        Ok(Vec::new())
    }
    async fn daily_totals(&self, _: DateRange) -> Result<Vec<DailyTotal>> {
        Ok(Vec::new())
    }
    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        self.queries.lock().unwrap().push(*query);
        // Filters are compared by text, as SQL compares them; texts are read back
        // (and so interned) only by reports that group by their dimension.
        if query.subject.is_some_and(|s| s.as_str() != STORED_SUBJECT)
            || query
                .endpoint
                .is_some_and(|e| e.path.as_str() != STORED_PATH)
        {
            return Ok(Vec::new());
        }
        let mut row = GroupedTotal::new(7);
        if query.groups(Dimension::Subject) {
            row = row.with_subject(Some(Subject::from_storage(STORED_SUBJECT)?));
        }
        if query.groups(Dimension::Endpoint) {
            let path = Path::from_storage(STORED_PATH)?;
            row = row.with_endpoint(Endpoint::new(Method::Get, path));
        }
        Ok(vec![row])
    }
    async fn unrolled_days(&self, _: Day) -> Result<Vec<Day>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn filters_past_their_budget_find_what_is_stored_and_nothing_else() {
    let range = DateRange::day(Day::new(2026, 1, 2).unwrap());
    let query = TotalsQuery::new(range, &[Dimension::Day]).unwrap();
    let backend = Stored::default();

    // Within the budget, a filter is interned and passed on as it is.
    let rows = TextFilters::new()
        .subject("made-up-within-budget")
        .unwrap()
        .totals(&backend, query)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert_eq!(backend.queries.lock().unwrap().len(), 1);

    // Spend the filter budget on made-up subjects and paths (short ones, so no
    // longer text fits in what is left).
    let mut spent = [false, false];
    for i in 0.. {
        spent[0] |= matches!(
            Subject::for_filter(&format!("{i}")),
            Err(Error::LimitReached(_))
        );
        spent[1] |= matches!(
            Path::for_filter(&format!("/{i}")),
            Err(Error::LimitReached(_))
        );
        if spent == [true, true] {
            break;
        }
    }

    // A stored subject and path are still found (after one read of the range).
    backend.queries.lock().unwrap().clear();
    let rows = TextFilters::new()
        .subject(STORED_SUBJECT)
        .unwrap()
        .endpoint(Method::Get, STORED_PATH)
        .unwrap()
        .totals(&backend, query)
        .await
        .unwrap();
    assert_eq!(rows, [GroupedTotal::new(7)]);
    // One read of the range per spent filter, then the report itself.
    let queries = backend.queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 3, "{queries:?}");
    assert!(queries[0].groups(Dimension::Subject) && queries[0].subject.is_none());
    assert!(queries[1].groups(Dimension::Endpoint) && queries[1].endpoint.is_none());
    let report = queries[2];
    assert_eq!(report.subject.map(Subject::as_str), Some(STORED_SUBJECT));
    assert_eq!(report.endpoint.map(|e| e.path.as_str()), Some(STORED_PATH));

    // A made-up one matches nothing, and is not interned.
    let rows = TextFilters::new()
        .subject("made-up-past-the-budget")
        .unwrap()
        .totals(&backend, query)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert!(matches!(
        Subject::for_filter("made-up-past-the-budget"),
        Err(Error::LimitReached(_))
    ));

    // Bad texts are refused where they enter.
    assert!(TextFilters::new().subject("").is_err());
    assert!(TextFilters::new().endpoint(Method::Get, "/a\0").is_err());
}
