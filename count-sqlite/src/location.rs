//! What a `sqlite:` URL names: a database file, or a private in-memory database.

use std::path::PathBuf;

use count_core::{Error, Result};

/// Where the counts are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A database file. Made absolute when the URL is parsed, so read connections
    /// opened later find the same file whatever the working directory is then.
    File(PathBuf),
    /// A database private to the counter, gone when it is dropped.
    Memory,
}

const FORMS: &str = "expected sqlite:path/to/count.db (relative to the working directory), \
                     sqlite:///absolute/path/count.db or sqlite::memory:";

impl Location {
    /// Parses `sqlite:path`, `sqlite:///absolute/path` or `sqlite::memory:`. The path
    /// is taken literally (no percent-decoding), so any file name works.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the URL and the rule it breaks.
    pub(crate) fn parse(url: &str) -> Result<Location> {
        let bad = |rule: &str| Error::invalid("url", url, rule);
        let rest = url.strip_prefix("sqlite:").ok_or_else(|| bad(FORMS))?;
        if rest == ":memory:" {
            return Ok(Location::Memory);
        }
        let path = match rest.strip_prefix("//") {
            Some(after) if after.starts_with('/') => after,
            Some(_) => {
                return Err(bad(
                    "a host is not supported: write sqlite:///absolute/path (three slashes) \
                     or sqlite:relative/path",
                ));
            }
            None => rest,
        };
        if path.is_empty() {
            return Err(bad(&format!("no file path given; {FORMS}")));
        }
        if path.contains('?') {
            return Err(bad(
                "query parameters are not supported: set options with SqliteCounter::builder",
            ));
        }
        if path.contains('\0') {
            return Err(bad("a file path may not contain a NUL byte"));
        }
        if path.ends_with('/') {
            return Err(bad(
                "names a directory: name the database file, such as .../count.db",
            ));
        }
        let absolute = std::path::absolute(path).map_err(|e| {
            bad(&format!(
                "cannot resolve the path against the working directory: {e}"
            ))
        })?;
        Ok(Location::File(absolute))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            Location::parse("sqlite::memory:").unwrap(),
            Location::Memory
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/count/count.db").unwrap(),
            Location::File("/var/lib/count/count.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:/var/lib/count.db").unwrap(),
            Location::File("/var/lib/count.db".into())
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            Location::parse("sqlite:data/count.db").unwrap(),
            Location::File(cwd.join("data/count.db"))
        );
        assert_eq!(
            Location::parse("sqlite:it's ünï #1.db").unwrap(),
            Location::File(cwd.join("it's ünï #1.db"))
        );
    }

    #[test]
    fn bad_urls_are_refused_naming_the_url_and_the_rule() {
        for (url, rule) in [
            (
                "postgresql://localhost/count",
                "expected sqlite:path/to/count.db",
            ),
            ("count.db", "expected sqlite:path/to/count.db"),
            ("sqlite:", "no file path given"),
            ("sqlite://host/count.db", "a host is not supported"),
            (
                "sqlite:count.db?mode=ro",
                "query parameters are not supported",
            ),
            ("sqlite:data/", "names a directory"),
            ("sqlite:a\0b", "NUL"),
        ] {
            let err = Location::parse(url).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, Error::InvalidInput { field: "url", .. }),
                "{text}"
            );
            assert!(text.contains(rule), "{url}: {text}");
            let shown = format!("{url:?}");
            assert!(text.contains(&shown), "{url}: {text}");
        }
    }
}
