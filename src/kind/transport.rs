//! The write-back transport: how one source kind reads and writes the
//! directory's copy of an application-owned value. The queue logic (read,
//! compare, conflicts, backoff, recording) is shared in [`super`]; each
//! source kind that can be written to implements this trait in its own module
//! (LDAP and AD: `sources::ldap::writeback`) and says so in its
//! [`Kind`](super::Kind) (capabilities and `open_writeback`).

use async_trait::async_trait;

use super::settings::SourceConfig;
use crate::model::queue::WritebackItem;

/// A read or write that failed, explained for an admin.
#[derive(Debug, Clone)]
pub struct TransportError {
    /// The protocol's own result code, when there is one (LDAP's rc).
    pub code: Option<u32>,
    /// What went wrong and what to fix.
    pub message: String,
}

/// One connection to one source's directory, for one push.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The directory's current value of the item's attribute (`None`: absent).
    async fn read(&self, item: &WritebackItem) -> Result<Option<String>, TransportError>;
    /// Writes the item's value (`None` clears the attribute).
    async fn write(&self, item: &WritebackItem) -> Result<(), TransportError>;
    /// Ends the connection politely.
    async fn close(self: Box<Self>);
}

/// Connects to the source's write-back target. `Ok(None)`: this kind cannot
/// be written to. `Err`: the connection failed (nothing reached the directory).
pub async fn open(cfg: &SourceConfig) -> Result<Option<Box<dyn Transport>>, TransportError> {
    match cfg.kind.open_writeback(cfg) {
        Some(connect) => connect.await.map(Some),
        None => Ok(None),
    }
}
