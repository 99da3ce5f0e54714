//! `sync --backfill`: what a create would have set, filled in on users who
//! already exist and lack it. A create-only mapping fixed too late
//! (`card_number = { attribute = "employeeNumbr", on = ["create"] }`), a
//! rule whose group was misspelled, a `[codes]` field added later: the users
//! created meanwhile never get those values from a normal sync, which never
//! re-applies what is create-only. A backfill only fills: a field with any
//! value (from the directory, a rule, `users set`) is never overwritten.
//! It is previewed with `--dry-run`, recorded as a run of mode `backfill`,
//! and each value is audited.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::engine::history::{now, Counts, RunMode, RunRecord, RunSources, RunStatus};
use crate::model::records::{AuditRecord, RunOrigin};
use crate::model::{name_key, Snapshot, SourceBatch, StoredUser};
use crate::store::{on_store, NewWriteback, Store, StoreError, UserPatch};

/// One value a backfill sets.
#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    pub username: String,
    pub field: String,
    /// `None` for a generated code: drawn when the backfill is applied.
    pub value: Option<String>,
    /// `mapping`, `rule` or `code`.
    pub from: &'static str,
    #[serde(skip)]
    user_id: i64,
    #[serde(skip)]
    source: String,
}

/// What a backfill did (or, dry, would do).
#[derive(Debug, Serialize)]
pub struct BackfillOutcome {
    pub run_id: Option<i64>,
    pub dry_run: bool,
    pub mode: RunMode,
    /// Users given at least one value.
    pub users: usize,
    pub fills: Vec<Fill>,
}

/// Why a backfill changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("no source named \"{0}\" in the config")]
    UnknownSource(String),
    #[error("{0}; nothing was filled")]
    Source(#[from] crate::kind::source::SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the `sources` (all when empty) in full, and fills what existing
/// users lack; with `dry_run`, says what it would fill.
pub async fn backfill(
    cfg: &Config,
    store: &dyn Store,
    sources: &[String],
    dry_run: bool,
    origin: &RunOrigin,
) -> Result<BackfillOutcome, BackfillError> {
    let selected: Vec<&crate::config::SourceConfig> = match sources.is_empty() {
        true => cfg.sources.iter().filter(|s| !s.is_enrich()).collect(),
        false => sources
            .iter()
            .map(|n| cfg.sources.iter().find(|s| &s.name == n).ok_or_else(|| BackfillError::UnknownSource(n.clone())))
            .collect::<Result<_, _>>()?,
    };
    let _lease = match dry_run {
        true => None,
        false => Some(on_store(store, |s| s.lease()).await?),
    };
    let mut batches = Vec::new();
    for s in &selected {
        batches.push(crate::engine::sync::fetch_source(s, Arc::new(AtomicU64::new(0)), None).await?);
    }
    let snap = on_store(store, |s| s.snapshot()).await?;
    let fills = fills_of(cfg, &snap, &batches);
    let users = fills.iter().map(|f| f.user_id).collect::<HashSet<_>>().len();
    if dry_run {
        return Ok(BackfillOutcome { run_id: None, dry_run, mode: RunMode::Backfill, users, fills });
    }
    let names = RunSources::new(selected.iter().map(|s| s.name.as_str()));
    let cfg = cfg.clone();
    let generation = snap.generation;
    drop(snap);
    let origin = origin.clone();
    let (run_id, fills) = on_store(store, move |s| apply(&cfg, s, (&names, &origin), generation, fills)).await?;
    Ok(BackfillOutcome { run_id: Some(run_id), dry_run, mode: RunMode::Backfill, users, fills })
}

/// Every value existing users lack: create-only mappings from the read,
/// then rules on their effective groups, then `[codes]`.
fn fills_of(cfg: &Config, snap: &Snapshot, batches: &[SourceBatch]) -> Vec<Fill> {
    let mut fills = Vec::new();
    let mut planned: HashSet<(i64, String)> = HashSet::new();
    let mut add = |u: &StoredUser, field: &str, value: Option<String>, from: &'static str, fills: &mut Vec<Fill>| {
        if u.fields.get(field).is_some() || !planned.insert((u.id, field.to_string())) {
            return;
        }
        let (username, source) = (u.username.to_string(), u.source.to_string());
        fills.push(Fill { username, field: field.to_string(), value, from, user_id: u.id, source });
    };
    for b in batches {
        let Some(scfg) = cfg.sources.iter().find(|s| s.name == b.source) else { continue };
        let stored: HashMap<&str, &StoredUser> =
            snap.users.iter().filter(|u| *u.source == *b.source).map(|u| (&*u.external_id, u)).collect();
        for m in &b.users {
            let Some(u) = stored.get(&*m.external_id) else { continue };
            let specs = scfg.fields.iter().skip(1);
            for ((name, value), spec) in m.fields.iter().zip(specs) {
                if spec.on_create && !spec.on_update && !spec.app_owned {
                    if let Some(v) = value {
                        add(u, name, Some(v.to_string()), "mapping", &mut fills);
                    }
                }
            }
        }
    }
    // Effective memberships as the views compute them, nested groups included.
    let dir = crate::engine::views::Directory::new(snap);
    let key_of: HashMap<i64, String> = snap.groups.iter().map(|g| (g.id, name_key(&g.name))).collect();
    for u in snap.users.iter().filter(|_| !cfg.rules.is_empty()) {
        let mine: HashSet<&str> =
            dir.effective(u.id).iter().filter_map(|g| key_of.get(g).map(String::as_str)).collect();
        for r in cfg.rules.iter().filter(|r| r.source.as_deref().is_none_or(|s| s == &*u.source)) {
            let member = match &r.when_member_of {
                None => true,
                Some(g) => mine.contains(g.key()),
            };
            if member {
                for (k, v) in &r.set {
                    add(u, k, Some(v.clone()), "rule", &mut fills);
                }
            }
        }
    }
    for field in cfg.codes.keys() {
        for u in &snap.users {
            add(u, field, None, "code", &mut fills);
        }
    }
    fills
}

/// The fills in one transaction, recorded as a run: refused when the store
/// changed since it was read (a value set meanwhile is never overwritten).
fn apply(
    cfg: &Config,
    store: &dyn Store,
    (names, origin): (&RunSources, &RunOrigin),
    generation: i64,
    mut fills: Vec<Fill>,
) -> Result<(i64, Vec<Fill>), StoreError> {
    let started = now();
    let run_id = store.start_run(names, started, false, origin)?;
    let prov = crate::engine::apply::Provisioning::from_config(cfg);
    store.transaction(&mut |tx| {
        let found = tx.generation()?;
        if found != generation {
            return Err(StoreError::Conflict { expected: generation, found });
        }
        tx.set_generation(generation + 1)?;
        let mut generators = BTreeMap::new();
        for f in fills.iter_mut() {
            let action = match f.value {
                Some(_) => "update",
                None => {
                    let spec = &cfg.codes[&f.field];
                    let g = match generators.entry(f.field.clone()) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => e.insert(
                            crate::engine::codes::Generator::load(tx, &f.field, spec)
                                .map_err(|e| StoreError::Provisioning(e.to_string()))?,
                        ),
                    };
                    f.value = Some(g.next_value().map_err(|e| StoreError::Provisioning(e.to_string()))?);
                    "generate"
                }
            };
            let value = f.value.as_deref();
            tx.update_user(f.user_id, &UserPatch { fields: vec![(&f.field, value)], ..UserPatch::default() }, started)?;
            tx.audit(&AuditRecord {
                run_id: Some(run_id),
                at: started,
                user_id: Some(f.user_id),
                name: f.username.clone(),
                action: action.into(),
                field: Some(f.field.clone()),
                old: None,
                new: f.value.clone(),
                image: None,
            })?;
            if let Some(attribute) = prov.writeback_attribute(&f.source, &f.field) {
                let w = NewWriteback {
                    user_id: f.user_id,
                    field: &f.field,
                    attribute,
                    value,
                    old_value: None,
                    base_value: None,
                };
                tx.enqueue_writeback(&w, started)?;
            }
        }
        let users = fills.iter().map(|f| f.user_id).collect::<HashSet<_>>().len() as u64;
        tx.finish_run(&RunRecord {
            id: run_id,
            started_at: started,
            finished_at: Some(now()),
            sources: names.clone(),
            status: RunStatus::Ok,
            forced: false,
            counts: Counts { updated: users, ..Counts::default() },
            errors: vec![],
            warnings: vec![],
            message: None,
            mode: RunMode::Backfill,
            origin: origin.clone(),
        })
    })?;
    Ok((run_id, fills))
}
