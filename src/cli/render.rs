//! Human-readable output: the plan, a run's outcome, users, groups, history.

use dirsync::engine::history::{AuditRecord, RunRecord, RunStatus};
use dirsync::engine::plan::{Plan, RemovalKind};
use dirsync::engine::sync::SyncOutcome;
use dirsync::engine::views::{GroupView, UserView};
use dirsync::model::{EntryError, ReasonGroup};

/// At most this many lines per kind of change; `--json` has them all.
const MAX_LINES: usize = 200;

fn capped<T>(items: &[T], mut line: impl FnMut(&T)) {
    for it in items.iter().take(MAX_LINES) {
        line(it);
    }
    if items.len() > MAX_LINES {
        println!("  … and {} more (sync --dry-run --json lists all)", items.len() - MAX_LINES);
    }
}

fn show(v: &Option<String>) -> String {
    v.as_deref().map(|s| format!("{s:?}")).unwrap_or_else(|| "∅".into())
}

pub fn print_plan(plan: &Plan) {
    capped(&plan.creates, |u| {
        let rules = if u.rules_applied.is_empty() {
            String::new()
        } else {
            format!(" [rules: {}]", u.rules_applied.join(", "))
        };
        // The mapped values, as `--json` has them: what the user will hold.
        let values: Vec<String> = u.fields.iter().map(|(k, v)| format!("{k} {v:?}")).collect();
        let values = if values.is_empty() { String::new() } else { format!(": {}", values.join(", ")) };
        println!("  + create   {} ({}){values}{rules}", u.username, u.dn);
    });
    capped(&plan.updates, |u| {
        let mut parts = Vec::new();
        if let Some(to) = &u.rename_to {
            parts.push(format!("rename → {to}"));
        }
        if let Some(ext) = &u.relink_to {
            parts.push(format!("new identity {ext}"));
        }
        if u.enable {
            parts.push("enable".into());
        }
        if u.disable {
            parts.push("disabled in the directory".into());
        }
        for c in &u.changes {
            parts.push(format!("{}: {} → {}", c.field, show(&c.old), show(&c.new)));
        }
        let verb = if u.rename_to.is_some() {
            "rename"
        } else if u.disable {
            "disable"
        } else {
            "update"
        };
        println!("  ~ {verb:<8} {}: {}", u.username, parts.join("; "));
    });
    capped(&plan.removals, |r| {
        let verb = match r.kind {
            RemovalKind::Disable => "disable",
            RemovalKind::Delete => "delete",
        };
        println!("  - {verb:<8} {} (gone from source {})", r.username, r.source);
    });
    capped(&plan.group_creates, |g| println!("  + group    {} ({})", g.name, g.dn));
    capped(&plan.group_updates, |g| println!("  ~ group    {} → {} ({})", g.name, g.new_name, g.new_dn));
    capped(&plan.group_deletes, |g| println!("  - group    {}", g.name));
    capped(&plan.member_adds, |m| {
        let (member, group) = plan.names_of(m);
        println!("  + member   {member} → {group}")
    });
    capped(&plan.member_removes, |m| {
        let (member, group) = plan.names_of(m);
        println!("  - member   {member} ✕ {group}")
    });
}

pub fn print_outcome(o: &SyncOutcome) {
    let c = &o.counts;
    if let Some(plan) = &o.plan {
        if o.dry_run || o.status == RunStatus::Blocked {
            if plan.is_empty() {
                println!("plan: no changes");
            } else {
                println!("plan:");
                print_plan(plan);
            }
        }
    }
    let what = if o.dry_run {
        "dry run (nothing changed)".to_string()
    } else {
        format!("run {}", o.run_id.unwrap_or_default())
    };
    println!(
        "{what}: {} — created {}, updated {}, renamed {}, disabled {}, deleted {}, unchanged {}, skipped {}; groups +{} ~{} -{}; memberships +{} -{}",
        o.status.as_str(),
        c.created,
        c.updated,
        c.renamed,
        c.disabled,
        c.deleted,
        c.unchanged,
        c.skipped,
        c.groups_created,
        c.groups_updated,
        c.groups_deleted,
        c.memberships_added,
        c.memberships_removed
    );
    print_entry_notes(&o.errors, &o.warnings);
    if let Some(m) = &o.message {
        println!("{m}");
    }
    if o.status == RunStatus::Blocked && o.blocked_by.iter().all(|b| b.forceable) {
        println!("review the plan above; `dirsync sync --force` applies it anyway");
    }
}

pub fn print_users(users: &[UserView]) {
    println!("{:<20} {:<8} {:<28} {:<30} GROUPS", "USERNAME", "STATUS", "FULL NAME", "EMAIL");
    for u in users {
        println!(
            "{:<20} {:<8} {:<28} {:<30} {}",
            u.username,
            u.status.as_str(),
            u.full_name.as_deref().unwrap_or(""),
            u.email.as_deref().unwrap_or(""),
            u.all_groups.join(",")
        );
    }
    println!("{} user(s)", users.len());
}

pub fn print_user(u: &UserView, history: &[AuditRecord]) {
    let row = |k: &str, v: &str| println!("{k:<14} {v}");
    row("username", &u.username);
    row("status", u.status.as_str());
    row("source", &u.source);
    row("external_id", &u.external_id);
    row("dn", &u.dn);
    for (k, v) in [
        ("full_name", &u.full_name),
        ("email", &u.email),
        ("department", &u.department),
        ("office", &u.office),
        ("card_number", &u.card_number),
        ("card_number2", &u.card_number2),
    ] {
        row(k, v.as_deref().unwrap_or(""));
    }
    for (k, v) in &u.fields {
        row(k, v);
    }
    row("groups", &u.groups.join(", "));
    row("all_groups", &u.all_groups.join(", "));
    row("created_at", &u.created_at.to_string());
    row("updated_at", &u.updated_at.to_string());
    if !history.is_empty() {
        println!("history (newest first):");
        for a in history {
            let detail = match (&a.field, &a.old, &a.new) {
                (Some(f), o, n) => format!("{f}: {} → {}", show(o), show(n)),
                (None, _, Some(n)) => n.clone(),
                _ => String::new(),
            };
            println!(
                "  {} run {} {:<12} {detail}",
                a.at,
                a.run_id.map(|r| r.to_string()).unwrap_or_default(),
                a.action
            );
        }
    }
}

pub fn print_groups(groups: &[GroupView]) {
    println!("{:<28} {:<10} {:>8} {:>8}  MEMBER OF", "GROUP", "SOURCE", "DIRECT", "ALL");
    for g in groups {
        println!("{:<28} {:<10} {:>8} {:>8}  {}", g.name, g.source, g.members, g.all_members, g.member_of.join(","));
    }
    println!("{} group(s)", groups.len());
}

pub fn print_runs(runs: &[RunRecord]) {
    println!(
        "CHANGES: +created ~updated >renamed -disabled xdeleted; times in UTC (as the API and the page show them)"
    );
    println!("{:>5} {:<24} {:<24} {:<12} {:<12} CHANGES", "RUN", "STARTED", "FINISHED", "SOURCE", "STATUS");
    for r in runs {
        let c = &r.counts;
        println!(
            "{:>5} {:<24} {:<24} {:<12} {:<12} +{} ~{} >{} -{} x{} skipped {}{}",
            r.id,
            r.started_at,
            r.finished_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            r.sources,
            r.status.as_str(),
            c.created,
            c.updated,
            c.renamed,
            c.disabled,
            c.deleted,
            c.skipped,
            r.message.as_deref().map(|m| format!("  ({m})")).unwrap_or_default()
        );
    }
}

pub fn print_writeback_status(st: &dirsync::engine::writeback::Status) {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    for (title, items) in [("pending", &st.pending), ("failed", &st.failed), ("conflicts", &st.conflicts)] {
        println!("{title}: {}", items.len());
        for i in items.iter().take(MAX_LINES) {
            let why = i.last_error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default();
            let retry = i.next_attempt_at.map(|t| format!(" (retry after {t})")).unwrap_or_default();
            println!("  {} {} → {} = {}{why}{retry}", i.username, i.field, i.attribute, show(&i.value));
        }
    }
    println!("last success: {}", st.last_success.map(|t| t.to_string()).unwrap_or_else(|| "never".into()));
}

/// Skipped entries and warnings, one line per reason with its count and the
/// first DNs (never one line per entry, never cut off silently).
pub fn print_entry_notes(errors: &[EntryError], warnings: &[EntryError]) {
    for g in ReasonGroup::of(errors) {
        println!("  skipped {}", g.line());
    }
    for g in ReasonGroup::of(warnings) {
        println!("  warning {}", g.line());
    }
}

/// What a backfill filled (or would fill), capped like the plan.
pub fn print_backfill(o: &dirsync::engine::backfill::BackfillOutcome) {
    capped(&o.fills, |f| {
        let value = f.value.as_deref().map_or_else(|| "(a generated code)".to_string(), |v| format!("{v:?}"));
        println!("  + fill     {}: {} = {value} ({})", f.username, f.field, f.from);
    });
    let what = match (o.dry_run, o.run_id) {
        (true, _) => "backfill, dry run (nothing changed)".to_string(),
        (false, Some(id)) => format!("run {id}: backfill"),
        (false, None) => "backfill".to_string(),
    };
    println!("{what}: {} values for {} users; nothing set before was overwritten", o.fills.len(), o.users);
}

/// What `dirsync check` says of a SCIM source: where `dirsync serve`
/// takes its pushes, and whether the token would cross the network in clear.
pub fn pushed_source_note(cfg: &dirsync::config::Config) -> String {
    let server = cfg.server.clone().unwrap_or_default();
    let scheme = if server.tls.is_some() { "https" } else { "http" };
    let mut note =
        format!("pushed by its identity provider; `dirsync serve` accepts it at {scheme}://{}/scim/v2", server.listen);
    if server.tls.is_none() && !server.listen.ip().is_loopback() {
        note.push_str(
            " (warning: without [server] tls the bearer token crosses the network in clear; put HTTPS in front)",
        );
    } else if server.tls.is_none() {
        note.push_str(" (loopback only: an identity provider reaches it through a reverse proxy with HTTPS)");
    }
    note
}
