//! The API's route table, [`ROUTES`]: each route's method, path, handler,
//! scope, parameters, body and answers, in one list. The router is built
//! from it ([`router`]) and the OpenAPI 3.1 document (`GET
//! /api/openapi.json`) is written from it, with the schemas of what the API
//! returns.

use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{live, ops, people, runs, undo};
use crate::config::Scope;
use crate::serve::AppState;

/// How a route's handler is mounted for its method.
pub type Mount = fn(MethodFilter) -> MethodRouter<AppState>;

/// A parameter: name, where (`path` or `query`), JSON type, description.
pub type Param = (&'static str, &'static str, &'static str, &'static str);

/// One route: how it is served and documented.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    /// The handler, mounted for `method`.
    pub handler: Mount,
    /// `None`: no token needed.
    pub scope: Option<Scope>,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// The request body's schema (a component name).
    pub body: Option<&'static str>,
    /// The success status and its schema (a component name; `text` for plain text).
    pub ok: (u16, &'static str),
}

/// Every route of [`ROUTES`], each with its handler for its method.
pub fn router() -> Router<AppState> {
    ROUTES.iter().fold(Router::new(), |r, d| r.route(d.path, (d.handler)(method_filter(d.method))))
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "get" => MethodFilter::GET,
        "post" => MethodFilter::POST,
        "patch" => MethodFilter::PATCH,
        "put" => MethodFilter::PUT,
        "delete" => MethodFilter::DELETE,
        other => panic!("route table: no method filter for {other}"),
    }
}

const NAME: Param = ("username", "path", "string", "a username (case-insensitive)");
const GROUP: Param = ("name", "path", "string", "a group name (case-insensitive)");
const ID: Param = ("id", "path", "integer", "a run id");
const LIMIT: Param = ("limit", "query", "integer", "page size, 1 to 1000 (default 100)");
const CURSOR: Param = ("cursor", "query", "string", "the `next` of the previous page");

pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "get",
        path: "/api/users",
        handler: |m| on(m, people::list_users),
        scope: Some(Scope::Read),
        summary: "Users in username order, filtered, a page at a time",
        params: &[
            ("q", "query", "string", "username, full name or email prefix"),
            ("group", "query", "string", "effective members of this group"),
            ("status", "query", "string", "active or disabled"),
            ("source", "query", "string", "one source's users"),
            LIMIT,
            CURSOR,
        ],
        body: None,
        ok: (200, "UserList"),
    },
    RouteDoc {
        method: "get",
        path: "/api/users/{username}",
        handler: |m| on(m, people::get_user),
        scope: Some(Scope::Read),
        summary: "One user",
        params: &[NAME],
        body: None,
        ok: (200, "User"),
    },
    RouteDoc {
        method: "patch",
        path: "/api/users/{username}",
        handler: |m| on(m, people::patch_user),
        scope: Some(Scope::Write),
        summary: "Set fields the application owns or keeps locally (a JSON merge patch)",
        params: &[NAME],
        body: Some("UserPatch"),
        ok: (200, "Patched"),
    },
    RouteDoc {
        method: "get",
        path: "/api/users/{username}/history",
        handler: |m| on(m, people::user_history),
        scope: Some(Scope::Read),
        summary: "A user's audit trail, newest first",
        params: &[NAME, LIMIT],
        body: None,
        ok: (200, "History"),
    },
    RouteDoc {
        method: "post",
        path: "/api/users/{username}/sync",
        handler: |m| on(m, people::sync_user),
        scope: Some(Scope::Sync),
        summary: "Just-in-time provisioning of one user",
        params: &[NAME],
        body: None,
        ok: (200, "SingleSync"),
    },
    RouteDoc {
        method: "get",
        path: "/api/groups",
        handler: |m| on(m, people::list_groups),
        scope: Some(Scope::Read),
        summary: "Groups in name order, a page at a time",
        params: &[LIMIT, CURSOR],
        body: None,
        ok: (200, "GroupList"),
    },
    RouteDoc {
        method: "get",
        path: "/api/groups/{name}",
        handler: |m| on(m, people::get_group),
        scope: Some(Scope::Read),
        summary: "One group",
        params: &[GROUP],
        body: None,
        ok: (200, "Group"),
    },
    RouteDoc {
        method: "get",
        path: "/api/groups/{name}/members",
        handler: |m| on(m, people::group_members),
        scope: Some(Scope::Read),
        summary: "A group's direct (default) or effective members",
        params: &[GROUP, ("effective", "query", "boolean", "nested groups included"), LIMIT, CURSOR],
        body: None,
        ok: (200, "MemberList"),
    },
    RouteDoc {
        method: "post",
        path: "/api/syncs",
        handler: |m| on(m, runs::start_sync),
        scope: Some(Scope::Sync),
        summary: "Queue a sync (a dry run is answered at once)",
        params: &[],
        body: Some("SyncRequest"),
        ok: (202, "SyncQueued"),
    },
    RouteDoc {
        method: "get",
        path: "/api/runs",
        handler: |m| on(m, runs::list_runs),
        scope: Some(Scope::Read),
        summary: "Runs, newest first",
        params: &[LIMIT, ("cursor", "query", "integer", "the `next` of the previous page")],
        body: None,
        ok: (200, "RunList"),
    },
    RouteDoc {
        method: "get",
        path: "/api/runs/{id}",
        handler: |m| on(m, runs::get_run),
        scope: Some(Scope::Read),
        summary: "One run",
        params: &[ID],
        body: None,
        ok: (200, "Run"),
    },
    RouteDoc {
        method: "post",
        path: "/api/runs/{id}/approve",
        handler: |m| on(m, runs::approve_run),
        scope: Some(Scope::Admin),
        summary: "Approve a run blocked by a threshold",
        params: &[ID],
        body: None,
        ok: (202, "Approval"),
    },
    RouteDoc {
        method: "post",
        path: "/api/runs/{id}/undo",
        handler: |m| on(m, undo::undo_run),
        scope: Some(Scope::Admin),
        summary: "Undo a run (dry_run: the preview); queued like a sync",
        params: &[ID],
        body: Some("UndoRequest"),
        ok: (202, "UndoQueued"),
    },
    RouteDoc {
        method: "get",
        path: "/api/changes",
        handler: |m| on(m, runs::changes),
        scope: Some(Scope::Read),
        summary: "The change feed, in commit order",
        params: &[
            ("since", "query", "integer", "the `next` of the previous answer (0: from the start)"),
            LIMIT,
            ("wait", "query", "integer", "seconds to wait for a change when there is none (at most 60)"),
        ],
        body: None,
        ok: (200, "ChangeList"),
    },
    RouteDoc {
        method: "get",
        path: "/api/live",
        handler: |m| on(m, live::live),
        scope: Some(Scope::Read),
        summary: "Each source's live sync: live, reconnecting, polling, held, standby or off",
        params: &[],
        body: None,
        ok: (200, "LiveList"),
    },
    RouteDoc {
        method: "get",
        path: "/api/webhooks",
        handler: |m| on(m, live::webhooks),
        scope: Some(Scope::Read),
        summary: "Each webhook's cursor, last delivery, failures and next try",
        params: &[],
        body: None,
        ok: (200, "WebhookList"),
    },
    RouteDoc {
        method: "get",
        path: "/api/writeback",
        handler: |m| on(m, runs::writeback_status),
        scope: Some(Scope::Read),
        summary: "The write-back queue",
        params: &[],
        body: None,
        ok: (200, "Object"),
    },
    RouteDoc {
        method: "post",
        path: "/api/writeback/push",
        handler: |m| on(m, runs::writeback_push),
        scope: Some(Scope::Write),
        summary: "Push the write-back queue now",
        params: &[],
        body: None,
        ok: (200, "Object"),
    },
    RouteDoc {
        method: "post",
        path: "/api/writeback/{id}/resolve",
        handler: |m| on(m, runs::writeback_resolve),
        scope: Some(Scope::Write),
        summary: "Settle a reported write-back conflict",
        params: &[("id", "path", "integer", "a write-back item id")],
        body: Some("Resolve"),
        ok: (200, "Object"),
    },
    RouteDoc {
        method: "post",
        path: "/api/auth",
        handler: |m| on(m, ops::auth),
        scope: Some(Scope::Auth),
        summary: "Check a user's password against the directory",
        params: &[],
        body: Some("AuthRequest"),
        ok: (200, "Authenticated"),
    },
    RouteDoc {
        method: "get",
        path: "/api/openapi.json",
        handler: |m| on(m, || async { axum::Json(document()) }),
        scope: None,
        summary: "This document",
        params: &[],
        body: None,
        ok: (200, "Object"),
    },
    RouteDoc {
        method: "get",
        path: "/healthz",
        handler: |m| on(m, ops::healthz),
        scope: None,
        summary: "Alive",
        params: &[],
        body: None,
        ok: (200, "text"),
    },
    RouteDoc {
        method: "get",
        path: "/readyz",
        handler: |m| on(m, ops::readyz),
        scope: None,
        summary: "Ready: the store answers and no source failed its last run",
        params: &[],
        body: None,
        ok: (200, "Ready"),
    },
    RouteDoc {
        method: "get",
        path: "/metrics",
        handler: |m| on(m, ops::metrics),
        scope: None,
        summary: "Prometheus metrics",
        params: &[],
        body: None,
        ok: (200, "text"),
    },
];

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn list_of(key: &str, item: &str, next: &str) -> Value {
    json!({
        "type": "object",
        "required": [key, "next"],
        "properties": { key: { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } }, "next": nullable(next) },
    })
}

/// A user as the API shows it (`UserView`).
fn user_schema() -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "type": "object",
        "required": ["id", "username", "external_id", "source", "dn", "status", "fields", "groups", "all_groups", "created_at", "updated_at"],
        "properties": {
            "id": { "type": "integer", "description": "the store's id, stable for the user's life" },
            "username": { "type": "string" }, "external_id": { "type": "string" }, "source": { "type": "string" },
            "dn": { "type": "string" }, "status": { "enum": ["active", "disabled"] },
            "full_name": nullable("string"), "email": nullable("string"), "department": nullable("string"),
            "office": nullable("string"), "card_number": nullable("string"), "card_number2": nullable("string"),
            "fields": { "type": "object", "additionalProperties": { "type": "string" } },
            "groups": strings, "all_groups": strings,
            "created_at": { "type": "string" }, "updated_at": { "type": "string" },
        },
    })
}

/// A PATCH's body, with the value rules it is checked by (422 otherwise):
/// no control characters, at most 1,024 bytes; an email has a local part,
/// an `@` and a domain with a dot inside.
fn patch_schema() -> Value {
    let value = json!({ "anyOf": [
        { "type": "string", "maxLength": 1024, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$" },
        { "type": "number" }, { "type": "null" },
    ] });
    let email = json!({ "anyOf": [
        { "type": "string", "maxLength": 1024, "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+@[^@\\s\\u0000-\\u001f\\u007f-\\u009f.]([^@\\s\\u0000-\\u001f\\u007f-\\u009f]*\\.)+[^@\\s\\u0000-\\u001f\\u007f-\\u009f.]+$" },
        { "type": "null" },
    ] });
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "fields": { "type": "object", "additionalProperties": value },
            "full_name": value, "email": email,
            "department": value, "office": value, "card_number": value, "card_number2": value,
        },
    })
}

/// A run as the API shows it: its counts, status, messages and, when held,
/// its plan and removals.
fn run_schema() -> Value {
    let counts = [
        "created",
        "updated",
        "renamed",
        "disabled",
        "deleted",
        "unchanged",
        "skipped",
        "groups_created",
        "groups_updated",
        "groups_deleted",
        "memberships_added",
        "memberships_removed",
        "pushed",
        "push_failed",
        "conflicts",
    ];
    let mut run_props = Map::new();
    for c in counts {
        run_props.insert(c.into(), json!({ "type": "integer", "minimum": 0 }));
    }
    let entry_error = json!({ "type": "object", "required": ["dn", "reason"], "properties": { "dn": nullable("string"), "reason": { "type": "string" } }, "description": "a skipped entry or dropped value (dn), or a note about a whole read (dn null)" });
    run_props.insert("id".into(), json!({ "type": "integer" }));
    run_props.insert(
        "status".into(),
        json!({ "enum": ["queued", "running", "ok", "partial", "failed", "blocked", "interrupted"] }),
    );
    run_props.insert("mode".into(), nullable("string"));
    run_props.insert("source".into(), json!({ "type": "string" }));
    run_props.insert("started_at".into(), json!({ "type": "string" }));
    run_props.insert("finished_at".into(), nullable("string"));
    run_props.insert("forced".into(), json!({ "type": "boolean" }));
    run_props.insert(
        "trigger".into(),
        json!({ "enum": ["schedule", "api", "cli", "approve", "retry", "single", "scim", null], "description": "who asked for the run (null: recorded before this was kept)" }),
    );
    run_props.insert(
        "slot".into(),
        json!({ "type": ["string", "null"], "description": "a scheduled run's slot on the cron grid (RFC 3339)" }),
    );
    run_props.insert(
        "instance".into(),
        json!({ "type": ["string", "null"], "description": "the instance that ran it: [server] instance, by default host:port; a command's host name" }),
    );
    run_props.insert("message".into(), nullable("string"));
    run_props.insert("errors".into(), json!({ "type": "array", "items": entry_error }));
    run_props.insert("warnings".into(), json!({ "type": "array", "items": entry_error }));
    run_props.insert(
        "plan".into(),
        json!({ "type": "object", "description": "a blocked run's plan: per kind of change, `total` and the `first` hundred" }),
    );
    run_props.insert(
        "removals".into(),
        json!({ "type": "array", "description": "a blocked run's planned removals", "items": { "type": "object", "required": ["kind", "target_id", "name", "action"] } }),
    );
    json!({ "type": "object", "required": ["id", "status", "source"], "properties": run_props })
}

fn schemas() -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "Error": {
            "type": "object", "required": ["error", "message"],
            "properties": { "error": { "type": "string" }, "message": { "type": "string" } },
        },
        "Object": { "type": "object" },
        "User": user_schema(),
        "Patched": { "anyOf": [
            { "$ref": "#/components/schemas/User" },
            { "type": "object", "required": ["updated"], "properties": { "updated": strings }, "description": "to a client without the read scope: the fields set" },
        ] },
        "UserList": list_of("users", "User", "string"),
        "MemberList": list_of("members", "User", "string"),
        "UserPatch": patch_schema(),
        "History": { "type": "object", "required": ["username", "history"], "properties": { "username": { "type": "string" }, "history": { "type": "array", "items": { "type": "object" } } } },
        "SingleSync": { "type": "object", "required": ["run_id", "created", "user"], "properties": { "run_id": nullable("integer"), "created": { "type": "boolean" }, "user": { "$ref": "#/components/schemas/User" } } },
        "Group": {
            "type": "object",
            "required": ["name", "source", "external_id", "dn", "members", "all_members", "member_of", "subgroups"],
            "properties": {
                "name": { "type": "string" }, "source": { "type": "string" }, "external_id": { "type": "string" }, "dn": { "type": "string" },
                "members": { "type": "integer" }, "all_members": { "type": "integer" }, "member_of": strings, "subgroups": strings,
            },
        },
        "GroupList": list_of("groups", "Group", "string"),
        "SyncRequest": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "sources": { "type": ["array", "null"], "items": { "type": "string" } },
                "dry_run": { "type": ["boolean", "null"] },
                "full": { "type": ["boolean", "null"] },
            },
        },
        "SyncQueued": { "type": "object", "required": ["run_id", "queued"], "properties": { "run_id": { "type": "integer" }, "queued": { "type": "boolean" } } },
        "Run": run_schema(),
        "RunList": list_of("runs", "Run", "integer"),
        "Approval": { "type": "object", "required": ["run_id", "approves", "removals"], "properties": { "run_id": { "type": "integer" }, "approves": { "type": "integer" }, "removals": { "type": "array", "items": { "type": "object" } } } },
        "Change": {
            "type": "object", "required": ["cursor", "at", "action", "name"],
            "properties": {
                "cursor": { "type": "integer" }, "run_id": nullable("integer"), "at": { "type": "string" }, "action": { "type": "string" },
                "name": { "type": "string" }, "user_id": nullable("integer"), "field": nullable("string"), "old": nullable("string"), "new": nullable("string"),
                "username": { "type": "string", "description": "on a user's change: the user's name (as `name`)" },
                "fields": { "type": "object", "description": "on a create: the new user's fields" },
                "status": nullable("string"),
                "groups": { "type": "array", "items": { "type": "string" }, "description": "on a create: the user's direct groups now" },
            },
        },
        "ChangeList": list_of("changes", "Change", "integer"),
        "LiveList": live_list(),
        "UndoPreview": { "type": "object", "required": ["undoes", "dry_run", "status", "mode", "changes", "conflicts", "warnings"], "properties": { "run_id": { "type": ["integer", "null"] }, "undoes": { "type": "integer" }, "dry_run": { "type": "boolean" }, "status": { "type": "string" }, "mode": { "const": "undo" }, "changes": { "type": "array", "items": { "type": "object" } }, "conflicts": { "type": "array", "items": { "type": "object", "required": ["username", "field", "kept", "run_value"] } }, "warnings": { "type": "array", "items": { "type": "string" } } } },
        "UndoRequest": { "type": "object", "additionalProperties": false, "properties": { "dry_run": { "type": "boolean" }, "force": { "type": "boolean" }, "force_over_later": { "type": "boolean" } } },
        "UndoQueued": { "type": "object", "description": "202: the queued undo; a dry run answers 200 with the preview (sync --json's fields, changes, conflicts)", "properties": { "run_id": { "type": ["integer", "null"] }, "undoes": { "type": "integer" } } },
        "WebhookList": webhook_list(),
        "Resolve": { "type": "object", "required": ["keep"], "additionalProperties": false, "properties": { "keep": { "enum": ["app", "directory"] } } },
        "AuthRequest": {
            "type": "object", "required": ["username", "password"],
            "properties": { "username": { "type": "string" }, "password": { "type": "string", "format": "password" } },
        },
        "Authenticated": { "type": "object", "required": ["username", "groups"], "properties": { "username": { "type": "string" }, "groups": strings } },
        "Ready": {
            "type": "object", "required": ["ready", "store", "failing_sources"],
            "properties": { "ready": { "type": "boolean" }, "store": { "type": "boolean" }, "failing_sources": strings },
        },
    })
}

fn live_list() -> Value {
    json!({
        "type": "object", "required": ["sources"],
        "properties": { "sources": { "type": "array", "items": {
            "type": "object", "required": ["name", "state", "reason", "next_try", "last_change", "channel"],
            "properties": {
                "name": { "type": "string" },
                "state": { "enum": ["live", "reconnecting", "polling", "held", "standby", "off"] },
                "reason": nullable("string"), "next_try": nullable("string"), "last_change": nullable("string"), "channel": nullable("string"),
            },
        } } },
    })
}

fn webhook_list() -> Value {
    json!({
        "type": "object", "required": ["webhooks"],
        "properties": { "webhooks": { "type": "array", "items": {
            "type": "object", "required": ["name", "url", "cursor", "last_delivery", "failures", "last_error", "next_try", "lag", "state"],
            "properties": {
                "name": { "type": "string" }, "url": { "type": "string" }, "cursor": { "type": "integer" },
                "last_delivery": nullable("string"), "failures": { "type": "integer" }, "last_error": nullable("string"),
                "next_try": nullable("string"), "lag": { "type": "integer" }, "state": { "enum": ["delivering", "standby"] },
            },
        } } },
    })
}

/// The whole document.
pub fn document() -> Value {
    let error = json!({ "description": "an error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut paths = Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|(name, place, ty, desc)| {
                let mut schema = json!({ "type": ty });
                if *ty == "integer" {
                    schema["format"] = json!("int64");
                }
                match *name {
                    "limit" => schema = json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
                    "since" => schema = json!({ "type": "integer", "format": "int64", "minimum": 0 }),
                    "wait" => schema = json!({ "type": "integer", "minimum": 0, "maximum": 60 }),
                    "status" => schema = json!({ "enum": ["active", "disabled"] }),
                    _ => {}
                }
                json!({ "name": name, "in": place, "required": *place == "path", "description": desc, "schema": schema })
            })
            .collect();
        let ok_content = if r.ok.1 == "text" {
            json!({ "text/plain": { "schema": { "type": "string" } } })
        } else {
            json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{}", r.ok.1) } } })
        };
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}_{}", r.method, r.path.trim_start_matches('/').replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": { r.ok.0.to_string(): { "description": "success", "content": ok_content }, "default": error },
        });
        if r.path == "/api/syncs" {
            op["responses"]["200"] = json!({ "description": "a dry run's outcome and plan (the fields of `sync --json`)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Object" } } } });
        }
        if r.path == "/api/runs/{id}/undo" {
            op["responses"]["200"] = json!({ "description": "a dry run's preview: the fields of `sync --json` (mode `undo`), `changes`, `conflicts`, `warnings`", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/UndoPreview" } } } });
        }
        if r.path == "/readyz" {
            op["responses"]["503"] = json!({ "description": "not ready", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ready" } } } });
        }
        if let Some(body) = r.body {
            op["requestBody"] = json!({
                "required": r.path != "/api/syncs",
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } },
            });
        }
        match r.scope {
            Some(s) => {
                op["security"] = json!([{ "bearer": [] }]);
                op["description"] = json!(format!("Needs a client with the `{s}` scope (or `admin`)."));
            }
            None => op["security"] = json!([]),
        }
        paths.entry(r.path.to_string()).or_insert_with(|| json!({}))[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "dirsync", "version": env!("CARGO_PKG_VERSION"), "description": "Users and groups synced from the directory, for applications." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}
