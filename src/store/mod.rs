//! The store: where the application's users, groups, memberships, run
//! history and audit trail live. A small trait so backends can differ
//! (SQLite, the default, and PostgreSQL); SQL stays inside each backend.
//! Every write of a run happens inside one [`Store::transaction`] (or one
//! [`WriteSession`]).
//!
//! A store is a shared handle (`Send + Sync`, cheap to clone through
//! [`Store::handle`]). Its methods are synchronous and may block; async code
//! calls them through [`on_store`], which runs them on the runtime's blocking
//! threads, so no executor thread waits for a database (the PostgreSQL
//! backend drives its connection pool on a small runtime of its own and
//! blocks the calling thread on it). One sync at a time
//! holds the store's [`Store::lease`]; errors keep their kind
//! ([`StoreError::Busy`], [`StoreError::Constraint`], [`StoreError::Unavailable`]).
//! `suite/` is the test suite every backend runs; `copy` moves a whole store
//! from one backend to another.

pub mod copy;
pub mod hooks;
pub use hooks::{PendingBatch, WebhookState};
pub mod postgres;
mod row;
pub mod scim;
pub use scim::{PushWindow, ScimKey, ScimRow, PUSH_RUN_SLACK};
mod schema_version;
pub mod sqlite;
#[doc(hidden)]
pub mod suite;

pub use crate::model::queue::{QueueStatus, WritebackItem};
pub use crate::model::records::RunOrigin;
use crate::model::records::{AuditRecord, RunRecord, RunSources};
pub use crate::model::records::{PlannedRemoval, RemovalAction, RemovalTarget};
use crate::model::{NewGroup, NewUser};
use crate::model::{Snapshot, Status, StoredGroup};
use crate::time::Timestamp;

/// Where the store lives (`[store]`): a SQLite file (the default) or a
/// PostgreSQL database.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The SQLite file (relative paths are resolved against the config's folder).
    Sqlite {
        path: std::path::PathBuf,
    },
    Postgres(postgres::PgConfig),
}

impl StoreConfig {
    /// A SQLite store at `path`.
    pub fn sqlite(path: impl Into<std::path::PathBuf>) -> StoreConfig {
        StoreConfig::Sqlite { path: path.into() }
    }

    /// The SQLite file, for a SQLite store.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match self {
            StoreConfig::Sqlite { path } => Some(path),
            StoreConfig::Postgres(_) => None,
        }
    }
}

/// Opens (creating if needed) the store the config names, with the backend
/// it calls for, and brings its schema up to date.
pub fn open(cfg: &StoreConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(path)?)),
        StoreConfig::Postgres(pg) => Ok(std::sync::Arc::new(postgres::PgStore::open(pg)?)),
    }
}

/// Opens the store for a run that writes nothing: an existing one read-only,
/// a missing one as an empty store in memory (nothing is created). A
/// PostgreSQL database without a schema is not migrated: the run plans
/// against an empty store in memory.
pub fn open_for_dry_run(cfg: &StoreConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } => Ok(std::sync::Arc::new(sqlite::SqliteStore::open_for_dry_run(path)?)),
        StoreConfig::Postgres(pg) => match postgres::PgStore::open_existing(pg) {
            Ok(s) => Ok(std::sync::Arc::new(s)),
            Err(StoreError::NotCreated { store }) => {
                Ok(std::sync::Arc::new(sqlite::SqliteStore::in_memory(std::path::Path::new(&store))?))
            }
            Err(e) => Err(e),
        },
    }
}

/// Opens a store that exists, creating nothing: for commands that only read
/// it (`users list`, `runs`); [`StoreError::NotCreated`] when there is none.
pub fn open_existing(cfg: &StoreConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } if !path.exists() => Err(StoreError::NotCreated { store: describe(cfg) }),
        StoreConfig::Sqlite { .. } => open(cfg),
        StoreConfig::Postgres(pg) => Ok(std::sync::Arc::new(postgres::PgStore::open_existing(pg)?)),
    }
}

/// Checks an existing store's integrity (`dirsync check`): `Ok(false)` when
/// it is not created yet and the first sync can create it; an error when
/// it could not (its folder cannot be written, its database cannot be reached).
pub fn check(cfg: &StoreConfig) -> Result<bool, StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } if !path.exists() => {
            sqlite::creatable(path)?;
            Ok(false)
        }
        StoreConfig::Sqlite { path } => {
            sqlite::SqliteStore::open(path)?.quick_check()?;
            Ok(true)
        }
        StoreConfig::Postgres(pg) => postgres::PgStore::check(pg),
    }
}

/// Applies the store's pending migrations (`dirsync migrate`, also done at
/// every open); returns the schema version before and after.
pub fn migrate(cfg: &StoreConfig) -> Result<(usize, usize), StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } => sqlite::migrate_file(path),
        StoreConfig::Postgres(pg) => postgres::PgStore::migrate(pg),
    }
}

/// The schema version this build writes (one numbering for every backend).
pub const SCHEMA_VERSION: usize = schema_version::CURRENT;

/// The store's name in messages: its file, or its database's address
/// without a password.
pub fn describe(cfg: &StoreConfig) -> String {
    match cfg {
        StoreConfig::Sqlite { path } => path.display().to_string(),
        StoreConfig::Postgres(pg) => pg.describe(),
    }
}

/// A store failure. The kind is kept (a caller may retry a busy store, a
/// service may answer 503 for an unavailable one) and every message names
/// the store and what to do.
#[derive(Debug, thiserror::Error)]
///
/// `store` names the store for the admin as its backend knows it (a file's
/// path, a database's address without its password).
pub enum StoreError {
    #[error("store {store}: {message}")]
    Backend { store: String, message: String },
    /// Another writer held the store longer than the busy timeout: try again.
    #[error("store {store}: busy ({message}); try again")]
    Busy { store: String, message: String },
    /// A uniqueness or reference rule refused a write (nothing of it landed).
    #[error("store {store}: {message}")]
    Constraint { store: String, message: String },
    /// The store cannot be reached or written: cannot open, I/O error, disk
    /// full, connection lost.
    #[error("store {store}: {message}")]
    Unavailable { store: String, message: String },
    #[error("the store was changed by another run since this run read it (generation {expected} → {found}); run the sync again")]
    Conflict { expected: i64, found: i64 },
    #[error("another sync is running on this store (lock {0} is held)")]
    Locked(String),
    /// The store's schema is newer than this build: a newer dirsync wrote it.
    #[error("store {store}: schema version {found} is newer than this dirsync knows ({known}); upgrade dirsync")]
    TooNew { store: String, found: usize, known: usize },
    /// A command that only reads found no store: nothing was created.
    #[error("no store yet at {store}: run `dirsync sync` first")]
    NotCreated { store: String },
    /// Provisioning could not complete (a code range is exhausted…); nothing was applied.
    #[error("{0}")]
    Provisioning(String),
}

/// Where a source left off: its opaque position (a cookie, a USN) and when
/// it was last read in full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedState {
    pub state: Option<String>,
    pub last_full_at: Option<Timestamp>,
    /// What the source was asked (query and mapping) when the state was saved;
    /// a different one makes the state useless.
    pub fingerprint: Option<String>,
}

/// The store rows a delta can touch: users by identity, by username key (for
/// conflicts and re-links) and by normalized DN (unchanged members of changed
/// groups), the changed groups' memberships, and every group.
#[derive(Debug, Default)]
pub struct SnapshotQuery {
    /// (source, external id) of users, including deleted ones.
    pub user_ids: Vec<(String, String)>,
    /// (source, external id) of the groups whose member lists changed.
    pub group_ids: Vec<(String, String)>,
    pub username_keys: Vec<String>,
    pub dn_keys: Vec<String>,
    /// Leave [`Snapshot::active_by_source`] unset: counting every source's
    /// active users reads an index in full, which one pushed change (whose
    /// guard counts on its own) need not pay for.
    pub skip_active_counts: bool,
}

/// Runs store work on the runtime's blocking threads through a clone of the
/// store's handle, so no executor thread waits for the store (SQLite blocks;
/// a busy store can make a write wait up to its busy timeout). A panic inside
/// is re-raised here.
pub async fn on_store<R: Send + 'static>(store: &dyn Store, f: impl FnOnce(&dyn Store) -> R + Send + 'static) -> R {
    let h = store.handle();
    match tokio::task::spawn_blocking(move || f(&*h)).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Work done inside a [`WriteSession`]'s transaction.
pub type TxWork = Box<dyn FnOnce(&mut dyn StoreTx) -> Result<(), StoreError> + Send>;

/// One transaction kept open across calls ([`Store::write_session`]): a run
/// can write in batches while its sources are still being read, and decide
/// (guards) before it commits. Dropping it without `commit` rolls back.
pub trait WriteSession: Send {
    /// Runs `work` inside the session's transaction. After an error the
    /// session is still open: the caller drops it (rollback) or goes on.
    fn run(&mut self, work: TxWork) -> Result<(), StoreError>;
    /// Commits everything run so far.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A held [`Store::lease`]; dropping it releases the lease.
pub trait Lease: Send {}

/// A lease that holds nothing (a backend that needs none).
struct NoLease;

impl Lease for NoLease {}

/// Which users [`Store::users_page`] returns.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// The username after which the page starts (exclusive; `None`: the first).
    pub after: Option<String>,
    pub limit: usize,
    pub source: Option<String>,
    pub status: Option<Status>,
    /// Only members of groups with this name: effective members (nested
    /// groups included), or with `direct` only direct ones.
    pub group: Option<String>,
    pub direct: bool,
    /// Only users whose username (folded), full name or email (ASCII case
    /// ignored) starts with this.
    pub prefix: Option<String>,
}

/// Which runs [`Store::runs_page`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only runs with a smaller id (`None`: from the newest).
    pub before: Option<i64>,
    pub limit: usize,
    /// Only runs that covered this source.
    pub source: Option<String>,
    pub status: Option<crate::model::records::RunStatus>,
}

/// A group's member counts and neighbours (names sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRelations {
    /// Users who are direct members.
    pub direct_members: u64,
    /// Users who are members directly or through nested groups.
    pub all_members: u64,
    /// Groups this group is a direct member of.
    pub member_of: Vec<String>,
    /// Groups that are direct members of this group.
    pub subgroups: Vec<String>,
}

/// Users by (source, status), and the number of groups.
pub type StoreCounts = (Vec<((String, Status), u64)>, u64);

/// One entry of the change feed: an audit record and its cursor.
#[derive(Debug, Clone)]
pub struct Change {
    /// Increases in commit order; pass the last one seen to get what follows.
    pub cursor: i64,
    pub record: AuditRecord,
    /// For a `create`: the user's status now (`None` once deleted).
    pub status_now: Option<crate::model::Status>,
}

/// A user's groups by name, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserGroups {
    pub direct: Vec<String>,
    /// Direct and through nested groups.
    pub all: Vec<String>,
}

/// A local change of an app-owned field, to queue.
#[derive(Debug)]
pub struct NewWriteback<'a> {
    pub user_id: i64,
    pub field: &'a str,
    pub attribute: &'a str,
    pub value: Option<&'a str>,
    pub old_value: Option<&'a str>,
    pub base_value: Option<&'a str>,
}

/// How one push ended.
#[derive(Debug)]
pub enum PushOutcome {
    /// The directory has the value (written now, or already there).
    Done,
    /// Refused or failed; retried after `retry_at`.
    Failed { code: Option<u32>, error: String, retry_at: Timestamp },
    /// The directory changed meanwhile; left for an admin (on_conflict = "report").
    Conflict { error: String },
    /// The directory changed meanwhile and its value was taken locally
    /// (on_conflict = "directory").
    TookDirectory { value: Option<String> },
}

/// Changes to one user record; `None` leaves a column as it is.
#[derive(Debug, Default)]
pub struct UserPatch<'a> {
    pub username: Option<&'a str>,
    pub external_id: Option<&'a str>,
    /// A new owning source (a re-link to another source).
    pub source: Option<&'a str>,
    pub dn: Option<&'a str>,
    pub status: Option<Status>,
    /// `Some(Some(t))`: gone from the source since `t`; `Some(None)`: back.
    pub missing_since: Option<Option<Timestamp>>,
    /// Field → new value (`None` clears it).
    pub fields: Vec<(&'a str, Option<&'a str>)>,
    /// App-owned field → the directory's value as last read.
    pub dir_values: Vec<(&'a str, Option<&'a str>)>,
}

/// The write operations of one transaction.
pub trait StoreTx {
    fn generation(&mut self) -> Result<i64, StoreError>;
    fn set_generation(&mut self, generation: i64) -> Result<(), StoreError>;
    fn insert_user(&mut self, user: &NewUser, now: Timestamp) -> Result<i64, StoreError>;
    fn update_user(&mut self, id: i64, patch: &UserPatch, now: Timestamp) -> Result<(), StoreError>;
    fn delete_user(&mut self, id: i64) -> Result<(), StoreError>;
    fn insert_group(&mut self, group: &NewGroup, now: Timestamp) -> Result<i64, StoreError>;
    fn update_group(&mut self, id: i64, name: &str, dn: &str, now: Timestamp) -> Result<(), StoreError>;
    fn delete_group(&mut self, id: i64) -> Result<(), StoreError>;
    fn add_user_member(&mut self, user_id: i64, group_id: i64) -> Result<(), StoreError>;
    fn remove_user_member(&mut self, user_id: i64, group_id: i64) -> Result<(), StoreError>;
    fn add_group_member(&mut self, child_id: i64, parent_id: i64) -> Result<(), StoreError>;
    fn remove_group_member(&mut self, child_id: i64, parent_id: i64) -> Result<(), StoreError>;
    fn audit(&mut self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Writes new users and their `create` audit rows (what `new` says: the
    /// created fields as JSON) in one go; returns (user id, audit id) each.
    fn insert_created(
        &mut self,
        users: &[NewUser],
        run_id: Option<i64>,
        now: Timestamp,
    ) -> Result<Vec<(i64, i64)>, StoreError>;
    /// Takes back a user [`insert_created`](Self::insert_created) wrote in
    /// this transaction, with its audit row.
    fn remove_created(&mut self, user_id: i64, audit_id: i64) -> Result<(), StoreError>;
    /// Rewrites a user written in this transaction (and its audit row) as `user`.
    fn replace_created(
        &mut self,
        user_id: i64,
        audit_id: i64,
        user: &NewUser,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Saves where a source left off (`full`: this read was a full one).
    fn set_sync_state(
        &mut self,
        source: &str,
        saved: &SavedState,
        full: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Queues a write-back (replacing any earlier item for the same field).
    fn enqueue_writeback(&mut self, w: &NewWriteback, now: Timestamp) -> Result<(), StoreError>;
    /// Every value users have in `field` (for unique codes and allocation).
    fn field_values(&mut self, field: &str) -> Result<Vec<String>, StoreError>;
    /// Writes the run's final record (status, counts, errors) and, for a
    /// scheduled run, that its slot was run (see [`Store::slot_done`]).
    fn finish_run(&mut self, run: &RunRecord) -> Result<(), StoreError>;
    /// Records what a blocked run would have removed (for an approval).
    fn record_removals(&mut self, run_id: i64, removals: &[PlannedRemoval]) -> Result<(), StoreError>;
    /// Records a blocked run's plan summary (JSON of `plan::summary::PlanSummary`).
    fn record_plan(&mut self, run_id: i64, summary: &str) -> Result<(), StoreError>;
    /// Adds one push's counts and errors to its run (a push run gathers a
    /// source's pushes of a time window) and moves its end to `at`.
    fn add_to_run(
        &mut self,
        run_id: i64,
        counts: &crate::model::records::Counts,
        errors: &[crate::model::EntryError],
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Writes a SCIM resource (new, or a new version of one).
    fn scim_put(&mut self, row: &ScimRow) -> Result<(), StoreError>;
    /// Marks a SCIM resource deleted: gone from lookups, its id kept.
    fn scim_delete(&mut self, source: &str, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// What user `id` is now, whole, with its direct groups (`None`: none).
    fn user_image(&mut self, id: i64) -> Result<Option<crate::model::images::UserImage>, StoreError>;
    /// What group `id` is now, whole, with its direct relations.
    fn group_image(&mut self, id: i64) -> Result<Option<crate::model::images::GroupImage>, StoreError>;
    /// Puts a user back as its image says, with its id; memberships of
    /// groups that are gone are left out.
    fn restore_user(&mut self, u: &crate::model::images::UserImage, now: Timestamp) -> Result<(), StoreError>;
    /// Puts a group back as its image says, with its id and the relations
    /// whose other end still exists.
    fn restore_group(&mut self, g: &crate::model::images::GroupImage, now: Timestamp) -> Result<(), StoreError>;
}

pub trait Store: Send + Sync {
    /// Everything, read consistently (for planning and listing).
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// A live SCIM resource of `source` by a key (`kind`: `User` or `Group`).
    fn scim_find(&self, source: &str, kind: &str, key: ScimKey, value: &str) -> Result<Vec<ScimRow>, StoreError>;
    /// Live SCIM resources of `source` in id order, after `after`.
    fn scim_scan(
        &self,
        source: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScimRow>, StoreError>;
    /// How many live SCIM resources `source` has.
    fn scim_count(&self, source: &str, kind: &str) -> Result<u64, StoreError>;

    /// A webhook's delivery state (`None`: never delivered).
    fn webhook(&self, name: &str) -> Result<Option<WebhookState>, StoreError>;

    /// Saves a webhook's delivery state whole.
    fn save_webhook(&self, w: &WebhookState) -> Result<(), StoreError>;

    /// The change feed's last cursor (0 when empty).
    fn change_head(&self) -> Result<i64, StoreError>;

    /// Takes or renews the claim `name` for `owner` until `until`; `false`
    /// when another owner holds it and its claim has not run out at `now`.
    fn claim(&self, name: &str, owner: &str, now: Timestamp, until: Timestamp) -> Result<bool, StoreError>;

    /// Lets go of a claim `owner` holds (nothing if it holds none).
    fn release(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    /// Drops the record of run `id`, asked for by a live source, when it
    /// changed nothing (a poll that found no change leaves no trace in the
    /// history).
    fn forget_quiet_run(&self, id: i64) -> Result<(), StoreError>;

    /// Users disabled or deleted by `source`'s pushes and live runs since
    /// `since`, and its active users now (the hourly guard's window).
    fn push_window(&self, source: &str, since: Timestamp) -> Result<PushWindow, StoreError>;
    /// The push run of `source` and this instance started since `since`
    /// (still open), or a new one started at `at`; `held`: the blocked one
    /// that gathers the removals the push guard holds.
    fn push_run(
        &self,
        source: &str,
        since: Timestamp,
        origin: &RunOrigin,
        at: Timestamp,
        held: bool,
    ) -> Result<i64, StoreError>;
    /// Users whose removal an admin approved (a blocked push run of
    /// `source` started since `since`, approved).
    fn approved_push_removals(&self, source: &str, since: Timestamp) -> Result<Vec<i64>, StoreError>;
    /// Only what a delta can touch (see [`SnapshotQuery`]), with
    /// [`Snapshot::active_by_source`] set: the cost follows the changes.
    fn partial_snapshot(&self, q: &SnapshotQuery) -> Result<Snapshot, StoreError>;
    /// Records a run as queued (the service's queue) and returns its id.
    fn queue_run(
        &self,
        sources: &RunSources,
        at: Timestamp,
        forced: bool,
        origin: &RunOrigin,
    ) -> Result<i64, StoreError>;
    /// Queues a run, unless another [present](Store::presence) instance has
    /// one of the same sources queued or running: then that run's id and
    /// `false`. Atomic across instances. A store one machine uses (SQLite)
    /// always queues: its service coalesces in memory.
    fn queue_or_join(
        &self,
        sources: &RunSources,
        at: Timestamp,
        origin: &RunOrigin,
    ) -> Result<(i64, bool), StoreError> {
        Ok((self.queue_run(sources, at, false, origin)?, true))
    }
    /// Removes a queued run that will not run (its schedule slot was run by
    /// another instance meanwhile); a run that began is kept.
    fn discard_queued(&self, id: i64) -> Result<(), StoreError>;
    /// Whether a run for this schedule slot of this source has finished
    /// (its record is written in the run's own transaction).
    fn slot_done(&self, source: &str, slot: Timestamp) -> Result<bool, StoreError>;
    /// Marks a queued run as started.
    fn begin_run(&self, id: i64, at: Timestamp) -> Result<(), StoreError>;
    /// Marks runs still `queued` by `instance` (a service that stops) as
    /// interrupted; with `None`, those of every instance that is not
    /// [present](Store::presence) (services that died).
    fn abandon_queued(&self, at: Timestamp, instance: Option<&str>) -> Result<usize, StoreError>;
    /// Says that `instance` is alive while the returned value is held (a
    /// store several instances share sees it; SQLite's, on one machine,
    /// needs no such mark).
    fn presence(&self, instance: &str) -> Result<Box<dyn Lease>, StoreError> {
        let _ = instance;
        Ok(Box::new(NoLease))
    }
    /// Records a run as started and returns its id.
    fn start_run(
        &self,
        sources: &RunSources,
        started_at: Timestamp,
        forced: bool,
        origin: &RunOrigin,
    ) -> Result<i64, StoreError>;
    /// Opens a write session (one transaction across calls). While it is
    /// open, other writes through this store wait for it.
    fn write_session(&self) -> Result<Box<dyn WriteSession>, StoreError>;
    /// Runs `f` in one transaction: all of its writes land, or none.
    fn transaction(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>) -> Result<(), StoreError>;
    /// Run history, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_page(&RunQuery { limit, ..RunQuery::default() })
    }
    /// Runs older than `before` (a run id; `None`: the newest), newest first.
    fn runs_page(&self, q: &RunQuery) -> Result<Vec<RunRecord>, StoreError>;
    /// One run by id.
    fn run_by_id(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let q = RunQuery { before: id.checked_add(1), limit: 1, ..RunQuery::default() };
        Ok(self.runs_page(&q)?.into_iter().find(|r| r.id == id))
    }
    /// One user by username (case and Unicode forms folded).
    fn user_by_name(&self, name: &str) -> Result<Option<crate::model::StoredUser>, StoreError>;
    /// A user's direct and effective groups.
    fn groups_of_user(&self, user_id: i64) -> Result<UserGroups, StoreError>;
    /// Whether the user is an effective member of the group (nested groups
    /// followed), by ids: an indexed walk up from the user's groups.
    fn is_member(&self, user_id: i64, group_id: i64) -> Result<bool, StoreError>;
    /// [`Store::groups_of_user`] for a page of users at once (one query in
    /// the SQL backends), by user id; a user without groups has none.
    fn groups_of_users(&self, user_ids: &[i64]) -> Result<std::collections::HashMap<i64, UserGroups>, StoreError> {
        user_ids.iter().map(|&id| Ok((id, self.groups_of_user(id)?))).collect()
    }
    /// A page of users in username order.
    fn users_page(&self, q: &UserQuery) -> Result<Vec<crate::model::StoredUser>, StoreError>;
    /// Audit trail of one user (by id), newest first.
    fn audit_of(&self, user_id: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// What one run changed, in the order it was written, at most `limit`.
    fn run_changes(&self, run_id: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// Every audit row of a run, in id order, with ids and before-images
    /// (what an undo reads).
    fn run_audit(&self, run_id: i64) -> Result<Vec<Change>, StoreError>;
    /// What a blocked run would have removed.
    fn removals_of(&self, run_id: i64) -> Result<Vec<PlannedRemoval>, StoreError>;
    /// A blocked run's plan summary (JSON), if it has one.
    fn plan_of(&self, run_id: i64) -> Result<Option<String>, StoreError>;
    /// A page of groups in name order after `after` (the last page's final
    /// group: its name and id).
    fn groups_page(&self, after: Option<(&str, i64)>, limit: usize) -> Result<Vec<StoredGroup>, StoreError>;
    /// The groups with this name (several sources may have one each), oldest first.
    fn groups_by_name(&self, name: &str) -> Result<Vec<StoredGroup>, StoreError>;
    /// A group's member counts, parents and subgroups.
    fn group_relations(&self, group_id: i64) -> Result<GroupRelations, StoreError>;
    /// Users by (source, status) and the number of groups (for metrics).
    fn counts(&self) -> Result<StoreCounts, StoreError>;
    /// The change feed: audit records after `cursor` (0: from the start), in
    /// commit order.
    fn changes(&self, cursor: i64, limit: usize) -> Result<Vec<Change>, StoreError>;
    /// How many write-back items are pending, failed and in conflict (a
    /// count, without reading the items).
    fn writeback_counts(&self) -> Result<[u64; 3], StoreError>;
    /// Write-back items with one of `statuses`, oldest first.
    fn writeback_items(&self, statuses: &[QueueStatus]) -> Result<Vec<WritebackItem>, StoreError>;
    /// Records how pushes ended (and, when done, the directory's value; when
    /// the directory's value was taken, the user's field), in one transaction.
    fn finish_writebacks(&self, done: &[(&WritebackItem, PushOutcome)], now: Timestamp) -> Result<(), StoreError>;
    /// When a push last succeeded.
    fn last_push_success(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Adds a push's counts and per-user errors to a run's record.
    fn record_push(&self, run_id: i64, counts: [u64; 3], errors: &[crate::model::EntryError])
        -> Result<(), StoreError>;
    /// Where a source left off, if it was ever synced.
    fn sync_state(&self, source: &str) -> Result<Option<SavedState>, StoreError>;
    /// A cheap clone of this handle, to move store work onto a blocking
    /// thread (the pipeline never makes an executor thread wait for the store).
    fn handle(&self) -> std::sync::Arc<dyn Store>;
    /// Takes the store's lease: one sync (or push) at a time, across
    /// processes; released when the returned value is dropped.
    /// [`StoreError::Locked`] while another holder has it.
    fn lease(&self) -> Result<Box<dyn Lease>, StoreError>;
    /// Checks the store's integrity (linear in its size): `Ok`, or what is damaged.
    fn integrity_check(&self) -> Result<(), StoreError>;
    /// Marks runs left `running` by a crashed process as `interrupted`; call
    /// only while holding the sync lock.
    fn mark_interrupted(&self, now: Timestamp) -> Result<usize, StoreError>;
}
