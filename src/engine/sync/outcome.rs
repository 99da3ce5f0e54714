//! What a run reports: [`SyncOutcome`] (also the `sync --json` document)
//! and each source's part in it ([`SourceOutcome`]).

use serde::Serialize;

use crate::engine::guards::Block;
use crate::engine::history::{Counts, RunMode, RunSources, RunStatus};
use crate::engine::plan::Plan;
use crate::model::EntryError;

/// What a sync did; also the `sync --json` output.
#[derive(Debug, Serialize)]
pub struct SyncOutcome {
    pub run_id: Option<i64>,
    pub status: RunStatus,
    pub dry_run: bool,
    /// The selected sources (shown as one comma-separated `source`).
    #[serde(rename = "source")]
    pub selected: RunSources,
    pub mode: RunMode,
    #[serde(flatten)]
    pub counts: Counts,
    pub errors: Vec<EntryError>,
    pub warnings: Vec<EntryError>,
    /// Why the run failed or was blocked.
    pub message: Option<String>,
    pub blocked_by: Vec<Block>,
    /// Write-back at the end of the run (sources with write-back only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writeback: Option<crate::engine::writeback::PushReport>,
    /// The plan (dry runs and blocked runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Each selected source's outcome: applied, failed or held back by the
    /// guards (a `partial` run applied some of them).
    pub sources: Vec<SourceOutcome>,
    /// The run failed only because the store changed under it (a field set
    /// meanwhile) or was busy: running it again at once may well succeed.
    #[serde(skip)]
    pub retryable: bool,
    /// The run was refused because another sync holds the store's lock:
    /// nothing was read or changed.
    #[serde(skip)]
    pub lock_held: bool,
    /// A scheduled run whose slot another instance ran meanwhile: nothing
    /// was read, changed or recorded.
    #[serde(skip)]
    pub slot_taken: bool,
    /// Who asked, for which slot, on which instance (kept in the record).
    #[serde(skip)]
    pub origin: crate::model::records::RunOrigin,
}

impl SyncOutcome {
    /// An outcome with nothing done yet (status ok, mode full).
    pub fn new(run_id: Option<i64>, dry_run: bool, sources: &RunSources) -> SyncOutcome {
        SyncOutcome {
            run_id,
            status: RunStatus::Ok,
            dry_run,
            selected: sources.clone(),
            mode: RunMode::Full,
            counts: Counts::default(),
            errors: vec![],
            warnings: vec![],
            message: None,
            blocked_by: vec![],
            writeback: None,
            plan: None,
            sources: Vec::new(),
            retryable: false,
            lock_held: false,
            slot_taken: false,
            origin: Default::default(),
        }
    }
}

/// One source's part in a run.
#[derive(Debug, Clone, Serialize)]
pub struct SourceOutcome {
    pub name: String,
    pub status: SourceStatus,
    pub message: Option<String>,
}

/// How one source fared in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    /// Read, and applied unless the run was not.
    Ok,
    /// Could not be read: its users untouched.
    Failed,
    /// Held back by the guards.
    Blocked,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Ok => "ok",
            SourceStatus::Failed => "failed",
            SourceStatus::Blocked => "blocked",
        }
    }
}

impl SourceOutcome {
    pub(super) fn new(name: &str, status: SourceStatus, message: Option<String>) -> Self {
        SourceOutcome { name: name.to_string(), status, message }
    }
}
