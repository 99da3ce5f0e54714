//! A write session on PostgreSQL: one transaction kept open across calls,
//! each call under a savepoint so a refused write fails only that call.

use super::tx::PgTx;
use crate::store::{StoreError, TxWork, WriteSession};

/// A write session: a [`PgTx`] kept open across calls.
pub(super) struct PgSession {
    tx: PgTx,
}

impl PgSession {
    pub(super) fn new(tx: PgTx) -> PgSession {
        PgSession { tx }
    }
}

impl WriteSession for PgSession {
    /// Runs `work` under a savepoint and sends its writes before returning,
    /// so a refused write is this call's error and the session goes on
    /// without it (as a failed statement leaves a SQLite transaction).
    fn run(&mut self, work: TxWork) -> Result<(), StoreError> {
        let mark = self.tx.savepoint()?;
        match work(&mut self.tx).and_then(|()| self.tx.flush()) {
            Ok(()) => self.tx.release(),
            Err(e) => {
                self.tx.back_to(mark)?;
                Err(e)
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit()
    }
}
