//! A write session: one SQLite transaction kept open across many calls, for
//! a run that writes in batches while its sources are still being read.
//! The writer connection lives on one thread for the session's life (a
//! SQLite transaction belongs to its connection); work is sent to that
//! thread, and `commit` or dropping the session (a rollback) ends it.

use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::TransactionBehavior;

use super::{backend, Inner, SqliteTx};
use crate::store::{StoreError, StoreTx, TxWork, WriteSession};

enum Msg {
    Run(TxWork, mpsc::Sender<Result<(), StoreError>>),
    Commit(mpsc::Sender<Result<(), StoreError>>),
}

pub(super) struct SqliteSession {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SqliteSession {
    /// Starts the session's thread; it takes the writer and begins the
    /// transaction before this returns.
    pub(super) fn start(inner: Arc<Inner>) -> Result<SqliteSession, StoreError> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready) = mpsc::channel::<Result<(), StoreError>>();
        let thread = std::thread::Builder::new()
            .name("dirsync-write-session".into())
            .spawn(move || {
                let path = inner.path.clone();
                let err = backend(&path);
                let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
                let t = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = ready_tx.send(Err(err(e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut stx = SqliteTx { tx: t, path: &path };
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Run(work, reply) => {
                            let _ = reply.send(work(&mut stx as &mut dyn StoreTx));
                        }
                        Msg::Commit(reply) => {
                            let _ = reply.send(stx.tx.commit().map_err(&err));
                            return;
                        }
                    }
                }
                // The session was dropped without a commit: `stx` rolls back.
            })
            .map_err(|e| StoreError::Backend {
                store: String::new(),
                message: format!("cannot start the write session's thread: {e}"),
            })?;
        ready.recv().unwrap_or_else(|_| {
            Err(StoreError::Backend { store: String::new(), message: "the write session stopped".into() })
        })?;
        Ok(SqliteSession { tx: Some(tx), thread: Some(thread) })
    }

    fn ask(&self, make: impl FnOnce(mpsc::Sender<Result<(), StoreError>>) -> Msg) -> Result<(), StoreError> {
        let stopped = || StoreError::Backend { store: String::new(), message: "the write session stopped".into() };
        let (reply, answer) = mpsc::channel();
        self.tx.as_ref().ok_or_else(stopped)?.send(make(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

impl WriteSession for SqliteSession {
    fn run(&mut self, work: TxWork) -> Result<(), StoreError> {
        self.ask(|reply| Msg::Run(work, reply))
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let r = self.ask(Msg::Commit);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        r
    }
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        self.tx = None; // the thread sees the channel close and rolls back
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
