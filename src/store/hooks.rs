//! What the store keeps for webhooks and for work one instance at a time
//! does: each webhook's position in the change feed and the batch it is
//! delivering ([`WebhookState`], [`PendingBatch`]: a batch is fixed once
//! made, so every retry, after a restart too, sends the same body under the
//! same id), and short renewable claims ("this instance holds source corp's
//! live connection") shared by the instances of one store.

use crate::time::Timestamp;

/// One webhook's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookState {
    pub name: String,
    /// The change-feed cursor delivered up to (acknowledged by a 2xx).
    pub cursor: i64,
    /// The batch being delivered, if any.
    pub batch: Option<PendingBatch>,
    /// Failed attempts of the pending batch.
    pub failures: u32,
    pub last_delivery: Option<Timestamp>,
    /// Why the last attempt failed (an HTTP status, a timeout).
    pub last_error: Option<String>,
    /// When the pending batch is tried again.
    pub next_try: Option<Timestamp>,
}

/// A batch made once and sent until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBatch {
    /// The `webhook-id` every attempt carries.
    pub id: String,
    /// The cursor the batch ends at (its `next`).
    pub upto: i64,
    /// The JSON body, as first made.
    pub body: String,
    /// How many changes it holds.
    pub count: u32,
}
