//! The change feed as applications see it (`GET /api/changes` and the
//! webhooks' batches): a page of the store's changes after a cursor, each
//! as one JSON object. A `create` carries the new user's fields, and its
//! status and direct groups as the store has them when the page is read.

use serde_json::{json, Value};

use crate::store::{Change, Store, StoreError, UserGroups};

/// Up to `limit` changes after `since`, in commit order, as the feed shows
/// them, with the cursor of each.
pub fn page(store: &dyn Store, since: i64, limit: usize) -> Result<Vec<(i64, Value)>, StoreError> {
    let page = store.changes(since, limit)?;
    // A new user's memberships have no entries of their own: its create
    // entry carries its direct groups (one query a page).
    let created: Vec<i64> =
        page.iter().filter(|c| c.record.action == "create").filter_map(|c| c.record.user_id).collect();
    let mut groups = if created.is_empty() { Default::default() } else { store.groups_of_users(&created)? };
    Ok(page.into_iter().map(|c| (c.cursor, change_json(c, &mut groups))).collect())
}

/// One entry of the change feed. `username` names the user of a user's
/// change (`name` also names groups); a `create` adds the new user's
/// `fields`, and its `status` and direct `groups` as the store has them now.
fn change_json(c: Change, groups: &mut std::collections::HashMap<i64, UserGroups>) -> Value {
    let r = c.record;
    let mut v = json!({
        "cursor": c.cursor, "run_id": r.run_id, "at": r.at, "action": r.action,
        "name": r.name, "user_id": r.user_id, "field": r.field, "old": r.old, "new": r.new,
    });
    if r.user_id.is_some() {
        v["username"] = json!(r.name);
    }
    if r.action == "create" {
        let fields: Value = r.new.as_deref().and_then(|n| serde_json::from_str(n).ok()).unwrap_or(json!({}));
        v["fields"] = fields;
        v["status"] = json!(c.status_now.map(|s| s.as_str()));
        v["groups"] = json!(r.user_id.and_then(|id| groups.remove(&id)).map(|g| g.direct).unwrap_or_default());
    }
    v
}
