//! An `Add` stream with a deadline: one unit, aggregated whole and written at its
//! end, within the deadline, or not at all.

use count_core::Error;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status, Streaming};

use super::feed::WRITTEN_MESSAGES;
use super::stats::AddOutcome;
use super::write::{WriteFailure, write_part};
use super::{Shared, refusal};
use crate::convert::codes;
use crate::proto::count::v1 as pb;

/// Reads, checks and aggregates the stream, then writes it as one batch before
/// `client_deadline` (and within the add timeout from the stream's end).
pub(crate) async fn unit(
    shared: &Shared,
    mut stream: Streaming<pb::AddRequest>,
    client_deadline: Instant,
) -> Result<(), (AddOutcome, Status)> {
    let mut part = shared.new_part();
    while let Some(message) = stream
        .message()
        .await
        .map_err(|s| (AddOutcome::Failed, s))?
    {
        part.add(&message).map_err(|refused| {
            let at = part.messages();
            let (outcome, error) = refusal(shared, &part, refused);
            (outcome, with_nothing_written(at, error))
        })?;
    }
    // tonic reads a client's cancel (RST_STREAM) as the end of the request stream.
    // Hyper checks for a reset whenever the handler is pending: yielding once lets
    // it drop a cancelled call here, before anything of it is written.
    tokio::task::yield_now().await;
    if part.is_empty() {
        return Ok(());
    }
    let deadline = client_deadline.min(Instant::now() + shared.settings.add_timeout);
    write_part(shared, part, deadline)
        .await
        .map_err(|failure| (failure.outcome(), failed(failure)))
}

fn with_nothing_written(at: u64, error: Error) -> Status {
    let status = codes::status(error);
    let message = format!(
        "message {at} of the stream: {}; nothing of the stream was written",
        status.message()
    );
    nothing_written(status.code(), message)
}

/// An error the server answers after writing nothing of the stream: its trailer
/// `count-written-messages: 0` tells it from the same code a client's library
/// reports for a lost connection (whose outcome is unknown).
fn nothing_written(code: Code, message: String) -> Status {
    let mut trailers = MetadataMap::new();
    trailers.insert(WRITTEN_MESSAGES, 0.into());
    Status::with_metadata(code, message, trailers)
}

fn failed(failure: WriteFailure) -> Status {
    match failure {
        WriteFailure::NotWritten(error) => {
            let status = codes::status(error);
            let message = format!("nothing of the stream was written: {}", status.message());
            nothing_written(status.code(), message)
        }
        WriteFailure::Unknown(error) => Status::unknown(format!(
            "outcome unknown: the stream's counts were written whole or not at all, and \
             the deadline passed before the server could tell which ({error}); do not \
             resend the stream blindly (it may count twice)"
        )),
    }
}
