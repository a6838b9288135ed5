//! A call's deadline, from the client's `grpc-timeout` header, less a margin so that
//! the handler's answer arrives before the client (or tonic's own timeout) gives up
//! on the call. An `Add` call with a deadline is one unit; one without is a feed.

use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

/// The margin kept before a deadline: a tenth of the timeout, at most 250 ms.
const MAX_MARGIN: Duration = Duration::from_millis(250);

/// When the handler must have answered a call that started at `started`, if the
/// client set a deadline (a `grpc-timeout` that cannot be read counts as none).
pub(crate) fn client_deadline(metadata: &MetadataMap, started: Instant) -> Option<Instant> {
    let timeout = metadata
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)?;
    let margin = (timeout / 10).min(MAX_MARGIN);
    Some(started + (timeout - margin))
}

/// The gRPC wire form of a timeout (a `grpc-timeout` header's value): 1 to 8 ASCII
/// digits and a unit (`H`ours, `M`inutes, `S`econds, `m`illiseconds,
/// `u`microseconds, `n`anoseconds); `None` for anything else.
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at_checked(text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_refuses_malformed_values() {
        let s = Duration::from_secs;
        assert_eq!(parse_grpc_timeout("2H"), Some(s(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(s(180)));
        assert_eq!(parse_grpc_timeout("30S"), Some(s(30)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_client_timeout_is_the_deadline_less_a_margin() {
        let started = Instant::now();
        let mut metadata = MetadataMap::new();
        assert_eq!(client_deadline(&metadata, started), None);
        metadata.insert("grpc-timeout", "1000m".parse().unwrap());
        assert_eq!(
            client_deadline(&metadata, started),
            Some(started + Duration::from_millis(900))
        );
        metadata.insert("grpc-timeout", "30S".parse().unwrap());
        assert_eq!(
            client_deadline(&metadata, started),
            Some(started + Duration::from_millis(29_750))
        );
        metadata.insert("grpc-timeout", "nonsense".parse().unwrap());
        assert_eq!(client_deadline(&metadata, started), None);
    }
}
