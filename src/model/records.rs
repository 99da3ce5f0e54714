//! The records a run leaves: its status and counts, the run itself and each
//! change it made (the audit trail). Plain data, read and written by the
//! store; what a run counts is decided by the engine (`history`).

use serde::Serialize;

use super::EntryError;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting in the service's queue (`dirsync serve`).
    Queued,
    /// Started and not finished; after a crash it is marked `interrupted`.
    Running,
    Ok,
    Failed,
    Blocked,
    /// Some sources applied; others failed or were blocked (their users untouched).
    Partial,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Blocked => "blocked",
            RunStatus::Partial => "partial",
            RunStatus::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> RunStatus {
        match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "ok" => RunStatus::Ok,
            "blocked" => RunStatus::Blocked,
            "partial" => RunStatus::Partial,
            "interrupted" => RunStatus::Interrupted,
            _ => RunStatus::Failed,
        }
    }
}

/// What a run did (or, when blocked or dry, would have done).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub renamed: u64,
    pub disabled: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub groups_created: u64,
    pub groups_updated: u64,
    pub groups_deleted: u64,
    pub memberships_added: u64,
    pub memberships_removed: u64,
    /// Write-back: values written, failed, in conflict.
    pub pushed: u64,
    pub push_failed: u64,
    pub conflicts: u64,
}

impl Counts {
    /// Changes to users, groups or memberships.
    pub fn changes(&self) -> u64 {
        self.created
            + self.updated
            + self.renamed
            + self.disabled
            + self.deleted
            + self.groups_created
            + self.groups_updated
            + self.groups_deleted
            + self.memberships_added
            + self.memberships_removed
    }
}

/// One run in the history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Source names, comma-separated (one run covers every source it synced).
    pub source: String,
    pub status: RunStatus,
    pub forced: bool,
    #[serde(flatten)]
    pub counts: Counts,
    /// Skipped entries and other per-entry errors.
    pub errors: Vec<EntryError>,
    /// Dropped optional values and other notes that did not skip an entry.
    pub warnings: Vec<EntryError>,
    /// Why the run failed or was blocked.
    pub message: Option<String>,
    /// `full`, `incremental`, or `mixed` (several sources, both kinds).
    pub mode: String,
}

/// One change to a user, group membership or group, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub run_id: Option<i64>,
    pub at: Timestamp,
    pub user_id: Option<i64>,
    /// The user's (or group's) name at the time of the change.
    pub name: String,
    /// create, update, rename, relink, enable, disable, delete, group_add,
    /// group_remove, group_create, group_update, group_delete.
    pub action: String,
    pub field: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
}
