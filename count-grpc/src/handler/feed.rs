//! An `Add` stream without a deadline: a feed, as the Go project's client keeps one
//! open for its process's life. What has arrived is written every `feed_flush`, and
//! at the stream's end, each part as a batch of its own (exactly once, retried
//! within the add timeout), one part at a time and in order, so the messages
//! written are always the stream's first ones. While a part is being written, newer
//! messages gather into the next part; when that one holds the most rows a part may,
//! the feed is not read until the write ends (the client waits, under HTTP/2 flow
//! control).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::{Instant, MissedTickBehavior};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status, Streaming};

use super::part::{Part, Refusal};
use super::stats::AddOutcome;
use super::write::{WriteFailure, write_part};
use super::{Shared, refusal};
use crate::convert::codes;
use crate::proto::count::v1 as pb;

/// The trailer of a feed's error answer: how many of the stream's messages, from
/// its first, are durably written.
pub(crate) const WRITTEN_MESSAGES: &str = "count-written-messages";
/// The trailer of a feed's `UNKNOWN` answer: how many messages after the written
/// ones may or may not have been written (all of them or none).
pub(crate) const UNKNOWN_MESSAGES: &str = "count-unknown-messages";

/// Why a feed stopped reading.
#[derive(Debug)]
enum End {
    /// The client ended the stream.
    Finished,
    /// Message `at` was refused.
    Refused { at: u64, refused: Refusal },
    /// The stream broke: the connection was lost or cut. (tonic reads a client's
    /// cancel as the end of the stream: `Finished`.)
    Broken(Status),
}

/// A part being written.
struct Writing {
    write: Pin<Box<dyn Future<Output = Result<(), WriteFailure>> + Send>>,
    messages: u64,
}

struct Feed {
    shared: Arc<Shared>,
    stream: Streaming<pb::AddRequest>,
    /// Messages received and taken into a part.
    received: u64,
    /// The stream's first `written` messages are durably written.
    written: u64,
    writing: Option<Writing>,
    pending: Part,
    /// A `feed_flush` interval has passed since the last part was started.
    due: bool,
    end: Option<End>,
    /// The part that could not be written (and its message count): the feed ends.
    failure: Option<(WriteFailure, u64)>,
}

/// Reads and writes the feed until it ends, then answers it.
pub(crate) async fn feed(
    shared: Arc<Shared>,
    stream: Streaming<pb::AddRequest>,
) -> Result<(), (AddOutcome, Status)> {
    let mut feed = Feed {
        pending: shared.new_part(),
        shared,
        stream,
        received: 0,
        written: 0,
        writing: None,
        due: false,
        end: None,
        failure: None,
    };
    feed.run().await;
    feed.answer()
}

impl Feed {
    async fn run(&mut self) {
        let every = self.shared.settings.feed_flush;
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while self.failure.is_none() {
            self.start_write_if_due();
            if self.end.is_some() && self.writing.is_none() && self.pending.is_empty() {
                return;
            }
            let reading = self.end.is_none() && !self.pending.is_full();
            tokio::select! {
                message = self.stream.message(), if reading => self.received(message),
                _ = ticks.tick(), if !self.due => self.due = true,
                (result, messages) = finished(&mut self.writing) => {
                    self.writing = None;
                    match result {
                        Ok(()) => self.written += messages,
                        Err(failure) => self.failure = Some((failure, messages)),
                    }
                }
            }
        }
    }

    /// Starts writing the pending part when one is due: a `feed_flush` interval has
    /// passed, the part is full, or the stream has ended.
    fn start_write_if_due(&mut self) {
        let due = self.due || self.end.is_some() || self.pending.is_full();
        if self.writing.is_some() || self.pending.is_empty() || !due {
            return;
        }
        let part = std::mem::replace(&mut self.pending, self.shared.new_part());
        let messages = part.messages();
        let shared = self.shared.clone();
        let deadline = Instant::now() + shared.settings.add_timeout;
        self.writing = Some(Writing {
            write: Box::pin(async move { write_part(&shared, part, deadline).await }),
            messages,
        });
        self.due = false;
    }

    fn received(&mut self, message: Result<Option<pb::AddRequest>, Status>) {
        match message {
            Ok(Some(message)) => match self.pending.add(&message) {
                Ok(()) => self.received += 1,
                Err(refused) => {
                    self.end = Some(End::Refused {
                        at: self.received,
                        refused,
                    });
                }
            },
            Ok(None) => self.end = Some(End::Finished),
            Err(status) => self.end = Some(End::Broken(status)),
        }
    }

    fn answer(self) -> Result<(), (AddOutcome, Status)> {
        let written = self.written;
        if let Some((failure, messages)) = self.failure {
            return Err((failure.outcome(), failed(failure, written, messages)));
        }
        match self.end {
            None | Some(End::Finished) => Ok(()),
            Some(End::Refused { at, refused }) => {
                let (outcome, error) = refusal(&self.shared, &self.pending, refused);
                let status = codes::status(error);
                let message = format!(
                    "message {at} of the stream: {}; the {written} messages before it are \
                     written, nothing from it on",
                    status.message()
                );
                Err((outcome, answer(status.code(), message, written, None)))
            }
            Some(End::Broken(status)) => {
                let message = format!(
                    "{}; the stream broke after {} messages, of which the first {written} \
                     are written",
                    status.message(),
                    self.received
                );
                Err((
                    AddOutcome::Failed,
                    answer(status.code(), message, written, None),
                ))
            }
        }
    }
}

/// The outcome of the part being written; never, when none is.
async fn finished(writing: &mut Option<Writing>) -> (Result<(), WriteFailure>, u64) {
    match writing {
        Some(writing) => (writing.write.as_mut().await, writing.messages),
        None => std::future::pending().await,
    }
}

/// The answer to a feed whose part of `messages` messages, after the first
/// `written`, could not be written.
fn failed(failure: WriteFailure, written: u64, messages: u64) -> Status {
    match failure {
        WriteFailure::NotWritten(error) => {
            let status = codes::status(error);
            let message = format!(
                "the first {written} messages of the stream are written; the {messages} \
                 after them could not be written, nor anything later: {}",
                status.message()
            );
            answer(status.code(), message, written, None)
        }
        WriteFailure::Unknown(error) => {
            let message = format!(
                "outcome unknown: the first {written} messages of the stream are written; \
                 the {messages} after them were written all together or not at all, and \
                 the write's deadline passed before the server could tell which ({error}); \
                 nothing later was written. Do not resend those {messages} blindly (they \
                 may count twice)"
            );
            answer(Code::Unknown, message, written, Some(messages))
        }
    }
}

/// An error answer carrying the counts of written (and unknown) messages in its
/// trailers.
fn answer(code: Code, message: String, written: u64, unknown: Option<u64>) -> Status {
    let mut trailers = MetadataMap::new();
    trailers.insert(WRITTEN_MESSAGES, written.into());
    if let Some(unknown) = unknown {
        trailers.insert(UNKNOWN_MESSAGES, unknown.into());
    }
    Status::with_metadata(code, message, trailers)
}
