//! The write-back queue's items: an application-owned value on its way to
//! the directory, as the store keeps it and a transport writes it.

use crate::time::Timestamp;

/// Where a write-back item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueStatus {
    /// Not pushed yet.
    Pending,
    /// Refused or failed; retried after a backoff.
    Failed,
    /// The directory changed meanwhile (on_conflict = "report"): left for an admin.
    Conflict,
    Done,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Pending => "pending",
            QueueStatus::Failed => "failed",
            QueueStatus::Conflict => "conflict",
            QueueStatus::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<QueueStatus> {
        [QueueStatus::Pending, QueueStatus::Failed, QueueStatus::Conflict, QueueStatus::Done]
            .into_iter()
            .find(|q| q.as_str() == s)
    }
}

/// One queued write-back of an application-owned field.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WritebackItem {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    /// The item is addressed by (source, external id); `dn` is the user's DN
    /// as last read (what an LDAP transport writes to).
    pub source: String,
    pub external_id: String,
    pub dn: String,
    pub field: String,
    pub attribute: String,
    /// The application's value to write (`None`: clear the attribute).
    pub value: Option<String>,
    /// The application's value before the change.
    pub old_value: Option<String>,
    /// The directory's value when the change was made (for conflicts).
    pub base_value: Option<String>,
    pub status: QueueStatus,
    pub attempts: i64,
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub done_at: Option<Timestamp>,
}
