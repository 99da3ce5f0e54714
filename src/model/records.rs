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
    /// The status of this name, if it is one.
    pub fn named(s: &str) -> Option<RunStatus> {
        use RunStatus::*;
        [Queued, Running, Ok, Failed, Blocked, Partial, Interrupted].into_iter().find(|r| r.as_str() == s)
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
    /// The sources the run covers (shown as one comma-separated `source`).
    #[serde(rename = "source")]
    pub sources: RunSources,
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
    pub mode: RunMode,
    /// Who asked for it, the slot it was scheduled for, the instance that ran it.
    #[serde(flatten)]
    pub origin: RunOrigin,
}

/// Who or what started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A slot of the source's schedule.
    Schedule,
    /// `POST /api/runs` or the admin page.
    Api,
    /// `dirsync sync` (and its other commands that run).
    Cli,
    /// The approval of a blocked run.
    Approve,
    /// Run again after a failure or a store change during the run.
    Retry,
    /// One user provisioned just in time (directory authentication).
    Single,
    /// An identity provider's SCIM request.
    Scim,
    /// A live source's change channel (or its poll).
    Live,
}

impl Trigger {
    const ALL: [Trigger; 8] = [
        Trigger::Schedule,
        Trigger::Api,
        Trigger::Cli,
        Trigger::Approve,
        Trigger::Retry,
        Trigger::Single,
        Trigger::Scim,
        Trigger::Live,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
            Trigger::Approve => "approve",
            Trigger::Retry => "retry",
            Trigger::Single => "single",
            Trigger::Scim => "scim",
            Trigger::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a run came from (all `None` on runs recorded before this was kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunOrigin {
    pub trigger: Option<Trigger>,
    /// The schedule slot (a time on the cron grid) a scheduled run is for.
    pub slot: Option<Timestamp>,
    /// `[server] instance`, by default `host:port` of the service; the host
    /// name for a command.
    pub instance: Option<String>,
}

impl RunOrigin {
    pub fn new(trigger: Trigger, instance: &str) -> RunOrigin {
        RunOrigin { trigger: Some(trigger), slot: None, instance: Some(instance.to_string()) }
    }
}

/// This machine's host name (a command's instance).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match ok {
        true => String::from_utf8_lossy(&buf[..end]).into_owned(),
        false => "localhost".into(),
    }
}

/// How a run read its sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Every source read in full.
    #[default]
    Full,
    /// Every source read from where it left off.
    Incremental,
    /// Several sources, read both ways.
    Mixed,
    /// One user looked up (just-in-time provisioning).
    Single,
    /// A write-back push on its own (no read).
    Writeback,
    /// Values a create would have set, filled in on existing users.
    Backfill,
    /// Changes an identity provider pushed (SCIM), grouped by source and
    /// time window.
    Push,
    /// Changes a live source told of, read from where it left off and
    /// grouped by debounce window.
    Live,
    /// The changes of an earlier run put back.
    Undo,
}

impl RunMode {
    const ALL: [RunMode; 9] = [
        RunMode::Full,
        RunMode::Incremental,
        RunMode::Mixed,
        RunMode::Single,
        RunMode::Writeback,
        RunMode::Backfill,
        RunMode::Push,
        RunMode::Live,
        RunMode::Undo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Full => "full",
            RunMode::Incremental => "incremental",
            RunMode::Mixed => "mixed",
            RunMode::Single => "single",
            RunMode::Writeback => "writeback",
            RunMode::Backfill => "backfill",
            RunMode::Push => "push",
            RunMode::Live => "live",
            RunMode::Undo => "undo",
        }
    }

    pub fn parse(s: &str) -> Option<RunMode> {
        RunMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for RunMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sources one run covers, in the order given. A source name holds no
/// comma (the config refuses one), so the list is kept and shown
/// comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSources(Vec<String>);

impl RunSources {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> RunSources {
        RunSources(names.into_iter().map(Into::into).collect())
    }

    /// The list as kept: names separated by commas.
    pub fn parse(joined: &str) -> RunSources {
        RunSources::new(joined.split(',').filter(|n| !n.is_empty()))
    }

    pub fn joined(&self) -> String {
        self.0.join(",")
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
}

impl std::fmt::Display for RunSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.joined())
    }
}

impl Serialize for RunSources {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
    /// group_remove, group_create, group_update, group_delete, subgroup_add,
    /// subgroup_remove, set, generate.
    pub action: String,
    pub field: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
    /// What a deleted or re-linked user, or a deleted group, was just
    /// before the change (JSON of a [`crate::model::images::UserImage`] or
    /// [`crate::model::images::GroupImage`]); on membership rows of groups,
    /// `{"group": id}` (and `"child"` for nested groups). Read back only to
    /// undo the run.
    #[serde(skip)]
    pub image: Option<String>,
}

/// One removal a blocked run planned: a user disabled or deleted, or a
/// group deleted (kept for an approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRemoval {
    pub kind: RemovalTarget,
    /// The store's id of the user or group.
    pub target_id: i64,
    pub name: String,
    pub action: RemovalAction,
}

/// What a planned removal removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalTarget {
    User,
    Group,
}

/// What a planned removal does: a user is disabled or deleted, a group deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalAction {
    Disable,
    Delete,
}

impl RemovalTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalTarget::User => "user",
            RemovalTarget::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<RemovalTarget> {
        [RemovalTarget::User, RemovalTarget::Group].into_iter().find(|t| t.as_str() == s)
    }
}

impl RemovalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalAction::Disable => "disable",
            RemovalAction::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<RemovalAction> {
        [RemovalAction::Disable, RemovalAction::Delete].into_iter().find(|a| a.as_str() == s)
    }
}
