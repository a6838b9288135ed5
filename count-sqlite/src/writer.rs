//! The writer thread: it owns the one write connection and runs what is sent to it
//! in order: batches, rollup steps, and (for an in-memory database) reads.
//!
//! SQLite allows one writer at a time, so one thread loses nothing, and it keeps
//! every blocking call off the async runtime. Batches that wait while it is busy are
//! written together in one transaction (one sync to disk for all of them); each is
//! answered only after that transaction has committed.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use count_core::jiff::Timestamp;
use count_core::{Batch, Error, Result};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::{classify, commit_failed, writer_stopped};
use crate::open::OpenedFiles;
use crate::write::{self, KeyIds};

/// At most this many waiting batches share one transaction...
const MAX_GROUP: usize = 64;
/// ...and at most about this many counts.
const MAX_GROUP_COUNTS: usize = 50_000;

/// The handle of the writer thread; the thread stops once the handle is dropped and
/// what was sent before is done.
#[derive(Debug)]
pub(crate) struct Writer {
    commands: mpsc::Sender<Command>,
}

/// What the writer thread owns.
#[derive(Debug)]
pub(crate) struct Db {
    pub(crate) conn: Connection,
    keys: KeyIds,
    /// `None` for an in-memory database.
    pub(crate) files: Option<OpenedFiles>,
}

type Reply = oneshot::Sender<Result<()>>;

enum Command {
    Write(Batch, Reply),
    Job(Box<dyn FnOnce(&mut Db) + Send>),
}

impl Writer {
    /// Starts the thread, which opens the database with `open`; returns once it is
    /// open. `file` is the database's file, checked before every commit (`None` in
    /// memory).
    ///
    /// # Errors
    ///
    /// `open`'s error; [`Error::Unavailable`] when no thread can be started.
    pub(crate) async fn start(
        open: impl FnOnce() -> Result<Connection> + Send + 'static,
        file: Option<std::path::PathBuf>,
    ) -> Result<Writer> {
        let (commands, received) = mpsc::channel();
        let (opened, opening) = oneshot::channel();
        std::thread::Builder::new()
            .name("count-sqlite-writer".into())
            .spawn(move || match open() {
                Ok(conn) => {
                    let _ = opened.send(Ok(()));
                    Db {
                        conn,
                        keys: KeyIds::default(),
                        files: file.as_deref().map(OpenedFiles::record),
                    }
                    .serve(&received);
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(|e| {
                Error::unavailable(format!("cannot start the SQLite writer thread: {e}"))
            })?;
        opening
            .await
            .map_err(|_| writer_stopped("opening the database"))??;
        Ok(Writer { commands })
    }

    /// Applies `batch` exactly once; returns once it is committed.
    ///
    /// # Errors
    ///
    /// [`Error::BatchConflict`] when its id was applied with other counts; the
    /// database's error otherwise (nothing written, or [`Error::Ambiguous`]).
    pub(crate) async fn write(&self, batch: &Batch) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let doing = || format!("writing batch {}", batch.id());
        self.commands
            .send(Command::Write(batch.clone(), reply))
            .map_err(|_| writer_stopped(&doing()))?;
        answer.await.map_err(|_| writer_stopped(&doing()))?
    }

    /// Runs `job` on the writer thread, after what was sent before it.
    ///
    /// # Errors
    ///
    /// `job`'s; [`Error::Unavailable`] when the thread stopped (or `job` panicked).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Job(Box::new(move |db| {
                let _ = reply.send(job(db));
            })))
            .map_err(|_| writer_stopped("running a job"))?;
        answer.await.map_err(|_| writer_stopped("running a job"))?
    }
}

impl Db {
    /// Checks that the files opened are still the ones at their paths.
    ///
    /// # Errors
    ///
    /// As [`OpenedFiles::check`].
    pub(crate) fn still_opened(&self) -> Result<()> {
        self.files.as_ref().map_or(Ok(()), OpenedFiles::check)
    }

    /// Copies every commit in the write-ahead log into the database file and empties
    /// the log (SQLite's `wal_checkpoint(TRUNCATE)`): the file alone then holds every
    /// count, so a plain copy of it does too.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when another connection's read or write kept part of
    /// the log from being copied (it stays in the log, nothing is lost); the
    /// database's error otherwise.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let doing = "checkpointing the write-ahead log";
        // (busy, pages in the log, pages copied); -1 when not in WAL mode.
        let (busy, log, copied): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(|e| classify(doing, e))?;
        if busy != 0 {
            return Err(Error::unavailable(format!(
                "{doing}: another connection was reading or writing; {copied} of {log} \
                 pages were copied into the database file, the rest stay in the log"
            )));
        }
        Ok(())
    }

    fn serve(mut self, commands: &mpsc::Receiver<Command>) {
        let mut held = None;
        while let Some(command) = held.take().or_else(|| commands.recv().ok()) {
            match command {
                Command::Job(job) => self.guarded(job),
                Command::Write(batch, reply) => {
                    let mut counts = batch.counts().len();
                    let mut group = vec![(batch, reply)];
                    while group.len() < MAX_GROUP && counts < MAX_GROUP_COUNTS {
                        match commands.try_recv() {
                            Ok(Command::Write(batch, reply)) => {
                                counts += batch.counts().len();
                                group.push((batch, reply));
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.guarded(|db| db.write_group(group));
                }
            }
        }
        // The last clone is gone: leave the counts in the database file, not in the
        // log (a read connection closing last cannot checkpoint, so SQLite would
        // leave them there).
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "count: stopping the SQLite writer");
        }
    }

    /// Runs `work`; a panic in it drops its replies (their callers get an error) and
    /// leaves the thread serving. An open transaction is rolled back as it unwinds.
    fn guarded(&mut self, work: impl FnOnce(&mut Db)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| work(self))).is_err() {
            self.keys.rolled_back();
            tracing::error!(
                "count: a job on the SQLite writer thread panicked; it was rolled back"
            );
        }
    }

    /// Writes `group` in one transaction. If that fails for a reason retrying will
    /// not cure, each batch is tried in a transaction of its own, so one batch that
    /// cannot be written does not fail the others.
    fn write_group(&mut self, group: Vec<(Batch, Reply)>) {
        let batches: Vec<&Batch> = group.iter().map(|(batch, _)| batch).collect();
        match self.transaction(&batches) {
            Ok(results) => {
                for ((_, reply), result) in group.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) if group.len() == 1 || e.is_retryable() => {
                for (_, reply) in group {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = group.len(), "count: a group of batches failed; writing them one by one");
                for (batch, reply) in group {
                    let result = self
                        .transaction(&[&batch])
                        .and_then(|mut results| results.pop().unwrap_or(Ok(())));
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Applies `batches` in one write transaction. `Ok` holds each batch's outcome
    /// (applied, or a conflict that wrote nothing) once the transaction committed;
    /// `Err` means it did not commit (or, if ambiguous, may have).
    fn transaction(&mut self, batches: &[&Batch]) -> Result<Vec<Result<()>>> {
        let applied_at = Timestamp::now().as_second();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify("starting a write", e))?;
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            match write::apply(&tx, &mut self.keys, batch, applied_at) {
                Ok(_) => results.push(Ok(())),
                Err(conflict @ Error::BatchConflict { .. }) => results.push(Err(conflict)),
                Err(e) => {
                    drop(tx);
                    self.keys.rolled_back();
                    return Err(e);
                }
            }
        }
        // The field, not `still_opened`: the transaction borrows the connection.
        if let Some(Err(e)) = self.files.as_ref().map(OpenedFiles::check) {
            drop(tx);
            self.keys.rolled_back();
            return Err(e);
        }
        match tx.commit() {
            Ok(()) => {
                self.keys.committed();
                Ok(results)
            }
            Err(e) => {
                self.keys.rolled_back();
                Err(commit_failed(
                    &format!("committing {} batches", batches.len()),
                    e,
                ))
            }
        }
    }
}
