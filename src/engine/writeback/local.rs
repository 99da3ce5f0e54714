//! Local changes to a user's fields (`users set`, `PATCH /api/users/{name}`,
//! the page's edit): checked whole first — each field settable here (not
//! owned by the directory) and each value valid — then written in one
//! transaction with one generation bump, an audit row per field and the
//! write-back items of app-owned fields, or not at all.

use super::{SetOutcome, SetValue, WritebackError};
use crate::config::Config;
use crate::engine::apply::Provisioning;
use crate::engine::codes::Generator;
use crate::engine::history::{now, AuditRecord};
use crate::model::{name_key, StoredUser};
use crate::store::{NewWriteback, SnapshotQuery, Store, StoreError, StoreTx, UserPatch};

/// How often a change is tried again when a write slipped in between its
/// read and its transaction (another change to the store). Between tries
/// it waits a little, longer each time and by a random part, so writers
/// that collided do not collide again in step (on a database several
/// instances write at once, and a round trip widens the window).
const ATTEMPTS: usize = 16;

/// Whether `field` may be set locally for a user of `source` (`None`: only
/// the name is checked): not the username, and not a field the directory
/// owns (the next sync would overwrite it). `Err` says why.
pub fn settable(cfg: &Config, source: Option<&str>, field: &str) -> Result<(), String> {
    if field == "username" || field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("\"{field}\" is not a field that can be set (letters, digits and '_'; not username)"));
    }
    let owner = source.and_then(|n| cfg.sources.iter().enumerate().find(|(_, s)| s.name == n));
    if let Some((si, s)) = owner {
        if directory_owned(s, field) {
            return Err(format!(
                "field {field} of source \"{}\" is owned by the directory (sources[{si}].fields.{field}): the next sync would overwrite a local value; set owner = \"app\" there to own it here",
                s.name
            ));
        }
    }
    Ok(())
}

/// Whether a source's sync sets `field` on every update (a local value
/// would be overwritten by the next sync).
pub fn directory_owned(source: &crate::config::SourceConfig, field: &str) -> bool {
    source.fields.iter().any(|f| &*f.name == field && !f.app_owned && f.on_update)
}

/// Changes one field of one user locally (see [`set_fields`]).
pub fn set_field(
    cfg: &Config,
    store: &dyn Store,
    username: &str,
    field: &str,
    value: SetValue,
) -> Result<SetOutcome, WritebackError> {
    let mut out = set_fields(cfg, store, username, vec![(field.to_string(), value)])?;
    Ok(out.remove(0))
}

/// Changes fields of one user locally, all or none: every field is checked
/// (settable, then a valid value) before anything is written, then all are
/// written in one transaction; an app-owned field of a source with
/// write-back is queued in it. A store change between the read and the
/// write (another local change, a sync) is met by reading again.
pub fn set_fields(
    cfg: &Config,
    store: &dyn Store,
    username: &str,
    changes: Vec<(String, SetValue)>,
) -> Result<Vec<SetOutcome>, WritebackError> {
    for (field, value) in &changes {
        settable(cfg, None, field).map_err(WritebackError::Refused)?;
        if let SetValue::Value(v) = value {
            crate::engine::mapping::validate(field, Some(v.as_str()))
                .map_err(|message| WritebackError::Invalid { field: field.clone(), message })?;
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write_once(cfg, store, username, &changes) {
            Err(WritebackError::Store(StoreError::Conflict { .. })) if attempt < ATTEMPTS => backoff(attempt),
            other => return other,
        }
    }
}

/// Waits before try `attempt + 1`: up to 2 ms times the attempt, at random.
pub(crate) fn backoff(attempt: usize) {
    let mut b = [0u8; 2];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u16::from_le_bytes(b) as u64 % 2000,
        Err(_) => 1000,
    };
    std::thread::sleep(std::time::Duration::from_micros(jitter * attempt as u64));
}

/// One try of [`set_fields`]: read the user, check ownership, write.
fn write_once(
    cfg: &Config,
    store: &dyn Store,
    username: &str,
    changes: &[(String, SetValue)],
) -> Result<Vec<SetOutcome>, WritebackError> {
    let q = SnapshotQuery { username_keys: vec![name_key(username)], ..SnapshotQuery::default() };
    let snap = store.partial_snapshot(&q)?;
    let user = snap
        .users
        .iter()
        .find(|u| name_key(&u.username) == name_key(username))
        .ok_or_else(|| WritebackError::NoUser(username.to_string()))?;
    for (field, _) in changes {
        settable(cfg, Some(&user.source), field).map_err(WritebackError::Refused)?;
    }
    let generation = snap.generation;
    let mut failure: Option<WritebackError> = None;
    let mut outcomes = Vec::new();
    store
        .transaction(&mut |tx| {
            // The optimistic check, as a sync's apply does: the user read
            // above is still as it was, and a sync planned before this change
            // cannot apply over it.
            let found = tx.generation()?;
            if found != generation {
                return Err(StoreError::Conflict { expected: generation, found });
            }
            tx.set_generation(generation + 1)?;
            outcomes.clear();
            for (field, value) in changes {
                outcomes.push(write_field(cfg, tx, user, field, value, &mut failure)?);
            }
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or(WritebackError::Store(e)))?;
    Ok(outcomes)
}

/// One field's write, audit row and write-back item, inside the transaction.
fn write_field(
    cfg: &Config,
    tx: &mut dyn StoreTx,
    user: &StoredUser,
    field: &str,
    value: &SetValue,
    failure: &mut Option<WritebackError>,
) -> Result<SetOutcome, StoreError> {
    let at = now();
    let prov = Provisioning::from_config(cfg);
    let attribute = prov.writeback_attribute(&user.source, field);
    let old = user.fields.get(field).map(str::to_string);
    let base = user.dir_values.get(field).map(str::to_string);
    let v = match value {
        SetValue::Value(v) => Some(v.clone()),
        SetValue::Clear => None,
        SetValue::Generate => {
            let Some(spec) = cfg.codes.get(field) else {
                *failure = Some(WritebackError::Refused(format!(
                    "--generate needs a [codes] entry for {field} (e.g. {field} = {{ length = 6, charset = \"digits\" }})"
                )));
                return Err(StoreError::Provisioning("no code spec".into()));
            };
            let mut generator =
                Generator::load(tx, field, spec).map_err(|e| StoreError::Provisioning(e.to_string()))?;
            Some(generator.next_value().map_err(|e| StoreError::Provisioning(e.to_string()))?)
        }
    };
    tx.update_user(user.id, &UserPatch { fields: vec![(field, v.as_deref())], ..UserPatch::default() }, at)?;
    tx.audit(&AuditRecord {
        run_id: None,
        at,
        user_id: Some(user.id),
        name: user.username.to_string(),
        action: "set".into(),
        field: Some(field.to_string()),
        old: old.clone(),
        new: v.clone(),
        image: None,
    })?;
    if let Some(attribute) = attribute {
        let item = NewWriteback {
            user_id: user.id,
            field,
            attribute,
            value: v.as_deref(),
            old_value: old.as_deref(),
            base_value: base.as_deref(),
        };
        tx.enqueue_writeback(&item, at)?;
    }
    Ok(SetOutcome {
        username: user.username.to_string(),
        field: field.to_string(),
        old,
        new: v,
        queued_for: attribute.map(str::to_string),
    })
}
