//! Connection settings from a URL as the Go server's users write them (libpq's
//! `sslmode` and `sslrootcert` included), and the schema name's rules.

use std::time::Duration;

use count_core::{Error, Result};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`: how hard to insist on TLS, and what to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is not verified (unless `sslrootcert` is given,
    /// as with libpq: then it is verified as `verify-ca`).
    Require,
    /// TLS or fail; the certificate chain is verified, not the host name.
    VerifyCa,
    /// TLS or fail; the chain and the host name are verified.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::invalid(
                    "sslmode",
                    value,
                    "expected disable, allow, prefer, require, verify-ca or verify-full",
                ));
            }
        })
    }
}

/// A parsed URL: the tokio-postgres config and what it cannot hold itself.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) ssl_mode: SslMode,
    pub(crate) ssl_root_cert: Option<String>,
    /// `user@host:port/db`, for messages: never the password.
    pub(crate) display: String,
}

impl Target {
    pub(crate) fn parse(url: &str, connect_timeout: Duration) -> Result<Target> {
        let refuse = |rule: String| Error::invalid("database URL", redact(url), rule);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut ssl_mode = SslMode::Prefer;
        let mut ssl_root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => ssl_mode = SslMode::parse(&percent_decode(value))?,
                "sslrootcert" => ssl_root_cert = Some(percent_decode(value)),
                _ => rest.push(pair),
            }
        }
        let rebuilt = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config =
            rebuilt.parse().map_err(|e| refuse(format!("{e}")))?;
        if config.get_hosts().is_empty() {
            return Err(refuse("it names no host".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Prefer => WireSslMode::Prefer,
            _ => WireSslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("count");
        }
        let display = describe(&config);
        Ok(Target {
            config,
            ssl_mode,
            ssl_root_cert,
            display,
        })
    }

    /// The TLS connector for the mode: verification as libpq does it.
    pub(crate) fn tls(&self) -> Result<MakeRustlsConnect> {
        let root_pem = match &self.ssl_root_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::invalid("sslrootcert", path, format!("cannot read it: {e}"))
            })?),
            None => None,
        };
        crate::tls::connector(self.ssl_mode, root_pem.as_deref()).map_err(|rule| {
            let value = self.ssl_root_cert.as_deref().unwrap_or("");
            Error::invalid("sslrootcert", value, rule)
        })
    }
}

/// `user@host:port/db` (no `user@` when the URL names none).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map_or(String::new(), |user| format!("{user}@"));
    format!("{user}{host}:{port}/{}", config.get_dbname().unwrap_or("?"))
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _password)) => format!(
                "{}{user}:***{}{}",
                &url[..scheme_end],
                &authority[at..],
                &url[authority_end..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

/// A schema name must be a plain identifier: it is spliced into SQL (always quoted,
/// so reserved words such as `user` or `order` work).
pub(crate) fn check_schema(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(Error::invalid(
            "schema",
            name,
            "must be 1 to 63 of a-z, 0-9 and _, not starting with a digit",
        ));
    }
    Ok(())
}

/// `name` as a quoted SQL identifier: `user` → `"user"`.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);

    #[test]
    fn reads_the_go_servers_url_form() {
        let t = Target::parse(
            "postgresql://app:s3cret@db.example.com:26257/counts?sslmode=verify-full&options=--cluster%3Dmy-cluster",
            T,
        )
        .unwrap();
        assert_eq!(t.ssl_mode, SslMode::VerifyFull);
        assert_eq!(t.config.get_options(), Some("--cluster=my-cluster"));
        assert_eq!(t.config.get_dbname(), Some("counts"));
        assert_eq!(t.display, "app@db.example.com:26257/counts");
        assert_eq!(t.config.get_connect_timeout(), Some(&T));
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_every_mode_parses() {
        let t = Target::parse("postgresql://u@h/db", T).unwrap();
        assert_eq!(t.ssl_mode, SslMode::Prefer);
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let t = Target::parse(&format!("postgresql://u@h/db?sslmode={text}"), T).unwrap();
            assert_eq!(t.ssl_mode, mode);
            t.tls().unwrap();
        }
    }

    #[test]
    fn bad_urls_are_refused_naming_the_url_without_its_password() {
        let err = Target::parse("postgresql://u:hunter2@h/db?sslmode=sometimes", T)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode") && err.contains("sometimes"),
            "{err}"
        );
        let err = Target::parse("postgresql://u:hunter2@h/db?bogus=1", T)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus") && !err.contains("hunter2"), "{err}");
        assert!(err.contains("u:***@h/db"), "{err}");
        let Err(err) = Target::parse(
            "postgresql://u@h/db?sslrootcert=/no/such.pem&sslmode=verify-full",
            T,
        )
        .unwrap()
        .tls() else {
            panic!("an unreadable sslrootcert must be refused");
        };
        let err = err.to_string();
        assert!(
            err.contains("/no/such.pem") && err.contains("cannot read"),
            "{err}"
        );
    }

    #[test]
    fn schema_names_are_identifiers() {
        for ok in ["count", "_x", "a1_b", "user", "order"] {
            check_schema(ok).unwrap();
        }
        assert_eq!(quote_ident("user"), "\"user\"");
        for bad in [
            "",
            "1a",
            "Count",
            "a-b",
            "a;drop table x",
            "a\"b",
            &"x".repeat(64),
        ] {
            let err = check_schema(bad).unwrap_err().to_string();
            assert!(err.contains("schema"), "{err}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgresql://u:p@h:1/d?x=y"),
            "postgresql://u:***@h:1/d?x=y"
        );
        assert_eq!(redact("postgresql://u@h/d"), "postgresql://u@h/d");
        assert_eq!(redact("postgresql://h/d"), "postgresql://h/d");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("%2Fetc%2Fca.pem"), "/etc/ca.pem");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
