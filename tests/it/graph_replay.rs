//! Graph delta rounds that replay: the documentation says one object can
//! come several times in a round, in one page or across its pages, and that
//! applications must be prepared for it. The fake tenant replays every
//! change in order (`Tenant::replay`); the store must end as each user's last
//! version says, with no error in the run.

use serde_json::{json, Value};

use crate::fake_graph::*;
use crate::graph::{graph_env, tenant, FIELDS};
use crate::harness::*;

/// A tenant synced once, replaying from then on, `page_size` objects a page.
fn replaying(page_size: usize) -> (FakeGraph, Env) {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    assert_eq!(env.sync(&[]).0, 0);
    g.with(|t| {
        t.replay = true;
        t.page_size = page_size;
    });
    g.clear_requests();
    (g, env)
}

/// The run was incremental and reported no error.
fn clean(out: &Value, env: &Env) {
    assert_eq!(out["errors"], json!([]), "a replay is no duplicate: {out}");
    assert_eq!(env.runs()[0]["mode"], "incremental", "{out}");
}

/// bob changed twice (the second time disabled), hal created then changed.
fn bob_disabled_hal_created(g: &FakeGraph) {
    g.with(|t| {
        t.update_user("u1", json!({"displayName": "Bob Interim"}));
        t.update_user("u1", json!({"displayName": "Bob Final", "accountEnabled": false}));
        t.add_user("u7", "hal@contoso.com", "Hal Interim", json!({}));
        t.update_user("u7", json!({"displayName": "Hal Final"}));
    });
}

fn last_versions_won(env: &Env) {
    let bob = env.user("bob@contoso.com");
    assert_eq!(bob["status"], "disabled", "the last version disables bob: {bob}");
    assert_eq!(bob["full_name"], "Bob Final");
    let hal = env.user("hal@contoso.com");
    assert_eq!(hal["status"], "active");
    assert_eq!(hal["full_name"], "Hal Final", "{hal}");
}

#[test]
fn a_user_replayed_in_one_page_ends_as_its_last_version() {
    let (g, env) = replaying(999);
    bob_disabled_hal_created(&g);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    clean(&out, &env);
    assert_eq!(g.requests("GET", "/v1.0/users/delta").len(), 1, "one page");
    assert_eq!(count(&out, "created"), 1, "{out}");
    assert_eq!(count(&out, "disabled"), 1, "{out}");
    last_versions_won(&env);
}

#[test]
fn a_user_replayed_across_pages_ends_as_its_last_version() {
    let (g, env) = replaying(1);
    bob_disabled_hal_created(&g);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    clean(&out, &env);
    assert_eq!(g.requests("GET", "/v1.0/users/delta").len(), 4, "each version on its own page");
    last_versions_won(&env);
}

#[test]
fn a_change_then_removed_in_one_round_removes_the_user() {
    let (g, env) = replaying(1);
    g.with(|t| {
        t.update_user("u2", json!({"displayName": "Cat Changed"}));
        t.remove_user("u2", "deleted");
    });
    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 0, "{out}");
    clean(&out, &env);
    assert_ne!(env.user("cat@contoso.com")["status"], "active", "the removal came last");
    assert_eq!(count(&out, "updated"), 0, "the change before the removal is not applied: {out}");
}

#[test]
fn removed_then_a_change_in_one_round_keeps_the_user() {
    let (g, env) = replaying(1);
    g.with(|t| {
        // Entra's soft delete, then the user restored and changed.
        t.remove_user("u3", "changed");
        t.add_user("u3", "dan@contoso.com", "Dan Restored", json!({"employeeId": "E3"}));
    });
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    clean(&out, &env);
    let dan = env.user("dan@contoso.com");
    assert_eq!(dan["status"], "active", "the change came last: {dan}");
    assert_eq!(dan["full_name"], "Dan Restored");
    assert_eq!(count(&out, "disabled") + count(&out, "deleted"), 0, "{out}");
}
