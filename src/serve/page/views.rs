//! What the admin page shows: the dashboard (sources, last and next runs,
//! users, the write-back queue, "Preview" and "Sync now"), runs with their
//! errors, plans and "Approve", and users. Each reads through the same
//! library functions the API uses.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::{layout, page_error, page_failure, Admin, Checked};
use crate::engine::history::{RunRecord, RunStatus};
use crate::engine::views::UserView;
use crate::serve::runner::{RunRequest, Trigger};
use crate::serve::AppState;
use crate::store::{on_store, UserQuery};

fn store_error(e: crate::store::StoreError) -> Response {
    tracing::error!("admin page: {e}");
    page_error(StatusCode::SERVICE_UNAVAILABLE, "The store could not be read; see the service's log.")
}

fn status_badge(s: RunStatus) -> Markup {
    html! { span class=(format!("badge {}", s.as_str())) { (s.as_str()) } }
}

fn duration(r: &RunRecord) -> String {
    match r.finished_at {
        Some(f) => format!("{:.1} s", f.since(r.started_at).as_secs_f64()),
        None => "–".into(),
    }
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

pub async fn dashboard(State(st): State<AppState>, Admin(s): Admin) -> Response {
    let cfg = st.config();
    let read = on_store(&*st.store, |s| -> Result<_, crate::store::StoreError> {
        Ok((s.runs(200)?, s.counts()?, s.writeback_counts()?))
    })
    .await;
    let (runs, (users, groups), queue) = match read {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let now = chrono::Local::now();
    let health = st.runner.health();
    let live = st.live.list();
    let hooks = st.hooks.list();
    let body = html! {
        section {
            h2 { "Sources" }
            table {
                thead { tr { th { "Source" } th { "Kind" } th { "Reads" } th { "Last run" } th { "Next" } th { "Users" } th {} } }
                tbody {
                    @for src in &cfg.sources {
                        @let last = runs.iter().find(|r| r.sources.contains(&src.name) && r.status != RunStatus::Queued);
                        @let active: u64 = users.iter().filter(|((so, st2), _)| *so == src.name && *st2 == crate::model::Status::Active).map(|(_, n)| n).sum();
                        @let disabled: u64 = users.iter().filter(|((so, st2), _)| *so == src.name && *st2 == crate::model::Status::Disabled).map(|(_, n)| n).sum();
                        tr {
                            td { strong { (src.name) } }
                            td { (src.kind.type_name()) }
                            td.mono { (src.kind.place()) }
                            td {
                                @if let Some(r) = last {
                                    a href=(format!("/ui/runs/{}", r.id)) { (status_badge(r.status)) }
                                    " " (r.started_at.to_string()) " · " (duration(r)) " · " (outcome_of(r))
                                } @else { "never" }
                                @if let Some(h) = health.get(&src.name).filter(|h| h.failures > 0) {
                                    br; span.error { (h.failures) " failed in a row" }
                                }
                            }
                            td {
                                (super::live::live_cell(live.iter().find(|l| l.name == src.name)))
                                @if let Some(t) = src.schedule.full.as_ref().and_then(|p| p.next_after(now)) { "full " (t.format("%Y-%m-%d %H:%M")) br; }
                                @if let Some(t) = src.schedule.incremental.as_ref().and_then(|p| p.next_after(now)) { "incremental " (t.format("%H:%M")) }
                            }
                            td { (active) " active, " (disabled) " disabled" }
                            td.actions {
                                form method="post" action="/ui/preview" { (csrf_field(&s.csrf)) input type="hidden" name="source" value=(src.name); button type="submit" { "Preview" } }
                                form method="post" action="/ui/sync" { (csrf_field(&s.csrf)) input type="hidden" name="source" value=(src.name); button type="submit" { "Sync now" } }
                            }
                        }
                    }
                }
            }
            div.actions {
                form method="post" action="/ui/preview" { (csrf_field(&s.csrf)) button type="submit" { "Preview all" } }
                form method="post" action="/ui/sync" { (csrf_field(&s.csrf)) button type="submit" { "Sync all now" } }
                form method="post" action="/ui/backfill" { (csrf_field(&s.csrf)) button type="submit" { "Fill in missing values" } }
            }
        }
        (super::live::webhooks_section(&hooks))
        section.cards {
            div.card { h3 { "Groups" } p.big { (groups) } }
            div.card { h3 { "Write-back" } p.big { (queue[0]) } p { "pending · " (queue[1]) " failed · " (queue[2]) " conflicts" } }
        }
        section {
            h2 { "Recent runs" }
            (chart(&runs))
            (run_table(&runs[..runs.len().min(10)]))
            p { a href="/ui/runs" { "All runs" } }
        }
    };
    layout("Dashboard", Some(&s), body).into_response()
}

/// What a run did, in a few words: its changes, or, for a run that failed
/// or was held back, why (nothing of it was applied).
fn outcome_of(r: &RunRecord) -> Markup {
    let why = r.message.as_deref().unwrap_or("");
    let short: String = why.chars().take(160).collect();
    let more = if why.chars().count() > 160 { "…" } else { "" };
    match r.status {
        RunStatus::Failed | RunStatus::Blocked | RunStatus::Interrupted => {
            html! { span.error title=(why) { (short) (more) } }
        }
        RunStatus::Partial => html! { (r.counts.changes()) " changes; " span.error title=(why) { (short) (more) } },
        _ => html! { (r.counts.changes()) " changes" },
    }
}

/// Who asked for a run, its slot and where it ran: "schedule 10:15:00Z on print1:8080".
fn origin_of(r: &RunRecord) -> String {
    let o = &r.origin;
    let mut out = o.trigger.map(|t| t.as_str().to_string()).unwrap_or_default();
    if let Some(slot) = o.slot {
        out.push_str(&format!(" for {slot}"));
    }
    if let Some(i) = &o.instance {
        out.push_str(&format!(" on {i}"));
    }
    out
}

fn run_table(runs: &[RunRecord]) -> Markup {
    html! {
        table {
            thead { tr { th { "Run" } th { "Status" } th { "Source" } th { "Mode" } th { "Started" } th { "Took" } th { "Changes" } th { "Skipped" } th { "By" } } }
            tbody {
                @for r in runs {
                    tr {
                        td { a href=(format!("/ui/runs/{}", r.id)) { "#" (r.id) } }
                        td { (status_badge(r.status)) }
                        td { (r.sources) }
                        td { (r.mode) }
                        td { (r.started_at.to_string()) }
                        td { (duration(r)) }
                        td { (outcome_of(r)) }
                        td { (r.counts.skipped) }
                        td { (origin_of(r)) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SourceForm {
    csrf: String,
    source: Option<String>,
    /// Preview: list every change, not the first hundred of each kind.
    all: Option<String>,
}

pub async fn sync_now(State(st): State<AppState>, Checked(s, f): Checked<SourceForm>) -> Response {
    let req = RunRequest::new(f.source.into_iter().collect(), false, Trigger::Api);
    match st.runner.submit(req).await {
        Ok((id, _)) => {
            tracing::info!(user = %s.user, run = id, "admin page: sync asked for");
            Redirect::to(&format!("/ui/runs/{id}")).into_response()
        }
        Err(e) => page_failure(e),
    }
}

pub async fn preview(State(st): State<AppState>, Checked(s, f): Checked<SourceForm>) -> Response {
    let cfg = st.config();
    let all = f.all.is_some();
    let source = f.source.clone();
    let opts = crate::engine::sync::SyncOptions {
        dry_run: true,
        sources: f.source.into_iter().collect(),
        ..Default::default()
    };
    let outcome = match crate::engine::sync::run(&cfg, &*st.store, &opts, Default::default()).await {
        Ok(o) => o,
        Err(e) => return page_failure(e),
    };
    let compared = match outcome.mode {
        crate::engine::history::RunMode::Incremental => {
            "what changed in the directory since the last read, against the store"
        }
        crate::engine::history::RunMode::Mixed => {
            "some sources' changes since their last read, the others' every entry, against the store"
        }
        _ => "every entry of the directory against the store",
    };
    let body = html! {
        p { strong { "Preview: nothing has been changed yet." } " " (status_badge(outcome.status)) " " (outcome.mode) " read of " (outcome.selected) ": it compared " (compared) "." }
        @if let Some(m) = &outcome.message { p.error { (m) } }
        @if outcome.counts.changes() > 0 && outcome.status != RunStatus::Failed {
            form method="post" action="/ui/sync" {
                (csrf_field(&s.csrf))
                @if let Some(src) = &source { input type="hidden" name="source" value=(src); }
                button type="submit" { "Sync now" }
                " applies " @if let Some(src) = &source { "source " strong { (src) } } @else { "every source" } " (read again: what changed since this preview is included)"
            }
        }
        @if !outcome.warnings.is_empty() {
            h3 { "Warnings" }
            ul { @for g in crate::model::ReasonGroup::of(&outcome.warnings).iter().take(20) { li { (g.line()) } } }
        }
        (counts(&outcome.counts))
        @if let Some(plan) = &outcome.plan {
            @let summary = crate::engine::plan::summary::PlanSummary::first(plan, if all { usize::MAX } else { crate::engine::plan::summary::FIRST });
            @if summary.cut() { (preview_form(&s.csrf, source.as_deref(), true, "See every change")) }
            (plan_view(&summary))
        }
        (errors(&outcome.errors))
    };
    layout("Preview", Some(&s), body).into_response()
}

/// Who a run changed, by kind of change (as the audit trail has it): the
/// first hundred of each, and a link to every one.
fn run_changes(id: i64, changes: &[crate::model::records::AuditRecord], all: bool) -> Markup {
    let mut kinds: Vec<(&str, Vec<&crate::model::records::AuditRecord>)> = Vec::new();
    for c in changes {
        match kinds.iter_mut().find(|(k, _)| *k == c.action) {
            Some((_, v)) => v.push(c),
            None => kinds.push((&c.action, vec![c])),
        }
    }
    let shown = if all { usize::MAX } else { 100 };
    let cut = !all && (changes.len() >= RUN_ROWS || kinds.iter().any(|(_, v)| v.len() > shown));
    html! {
        @if !kinds.is_empty() {
            h2 { "Changes" }
            @if cut { p.hint { "The first hundred of each kind. " a href=(format!("/ui/runs/{id}?all=1")) { "See every change" } } }
            @for (kind, rows) in &kinds {
                h3 { (kind) " (" (rows.len()) @if cut && changes.len() >= RUN_ROWS { "+" } ")" }
                table {
                    thead { tr { th { "Name" } th { "Field" } th { "Before" } th { "After" } } }
                    tbody { @for c in rows.iter().take(shown) { tr {
                        td { (c.name) } td { (c.field.clone().unwrap_or_default()) }
                        td { (c.old.clone().unwrap_or_default()) } td { (c.new.clone().unwrap_or_default()) }
                    } } }
                }
            }
        }
    }
}

/// A Preview button (of one source, or all; `all`: every change listed).
fn preview_form(csrf: &str, source: Option<&str>, all: bool, label: &str) -> Markup {
    html! {
        form method="post" action="/ui/preview" {
            (csrf_field(csrf))
            @if let Some(src) = source { input type="hidden" name="source" value=(src); }
            @if all { input type="hidden" name="all" value="1"; }
            button type="submit" { (label) }
        }
    }
}

fn counts(c: &crate::engine::history::Counts) -> Markup {
    let rows = [
        ("created", c.created),
        ("updated", c.updated),
        ("renamed", c.renamed),
        ("disabled", c.disabled),
        ("deleted", c.deleted),
        ("unchanged", c.unchanged),
        ("skipped", c.skipped),
        ("groups created", c.groups_created),
        ("groups deleted", c.groups_deleted),
        ("memberships added", c.memberships_added),
        ("memberships removed", c.memberships_removed),
    ];
    html! { dl.counts { @for (k, v) in rows { div { dt { (k) } dd { (v) } } } } }
}

/// A plan as people read it (previews, blocked runs).
fn plan_view(p: &crate::engine::plan::summary::PlanSummary) -> Markup {
    use crate::engine::plan::summary::Listed;
    fn more<T>(l: &Listed<T>) -> Markup {
        html! { @if l.cut() { p.hint { "… and " (l.total - l.first.len()) " more (" (l.total) " in all)." } } }
    }
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    html! {
        @if p.creates.total > 0 {
            h2 { "Creates (" (p.creates.total) ")" }
            ul { @for u in &p.creates.first { li { (u) } } }
            (more(&p.creates))
        }
        @if p.updates.total > 0 {
            h2 { "Updates, renames, re-links (" (p.updates.total) ")" }
            ul {
                @for u in &p.updates.first {
                    li {
                        strong { (u.username) }
                        @if let Some(n) = &u.rename_to { " renamed to " strong { (n) } }
                        @if let Some(id) = &u.relink_to { " re-linked to identity " span.mono { (id) } }
                        @if u.enable { " enabled" }
                        @if u.disable { " disabled in the directory" }
                        @for (f, old, new) in &u.changes { br; (f) ": " (shown(old)) " → " (shown(new)) }
                    }
                }
            }
            (more(&p.updates))
        }
        @if p.removals.total > 0 {
            h2 { "Disables and deletes (" (p.removals.total) ")" }
            ul { @for (u, action) in &p.removals.first { li { (u) " — " (action) } } }
            (more(&p.removals))
        }
        @if p.group_creates.total > 0 {
            h2 { "Group creates (" (p.group_creates.total) ")" }
            ul { @for g in &p.group_creates.first { li { (g) } } }
            (more(&p.group_creates))
        }
        @if p.group_updates.total > 0 {
            h2 { "Group renames (" (p.group_updates.total) ")" }
            ul { @for (old, new) in &p.group_updates.first { li { (old) " → " (new) } } }
            (more(&p.group_updates))
        }
        @if p.group_deletes.total > 0 {
            h2 { "Group deletes (" (p.group_deletes.total) ")" }
            ul { @for g in &p.group_deletes.first { li { (g) } } }
            (more(&p.group_deletes))
        }
        @if p.member_adds.total > 0 {
            h2 { "Memberships added (" (p.member_adds.total) ")" }
            ul { @for (m, g) in &p.member_adds.first { li { (m) " → " (g) } } }
            (more(&p.member_adds))
        }
        @if p.member_removes.total > 0 {
            h2 { "Memberships removed (" (p.member_removes.total) ")" }
            ul { @for (m, g) in &p.member_removes.first { li { (m) " ✕ " (g) } } }
            (more(&p.member_removes))
        }
    }
}

fn errors(errors: &[crate::model::EntryError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            h2 { "Skipped entries and errors (" (errors.len()) ")" }
            // One row per reason, with its count and the first entries.
            table {
                thead { tr { th { "Reason" } th { "Entries" } th { "First of them" } } }
                tbody { @for g in crate::model::ReasonGroup::of(errors).iter().take(200) {
                    tr { td { (g.reason) } td { (g.count) } td.mono { (g.dns.join("; ")) } }
                } }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RunsQuery {
    source: Option<String>,
    status: Option<String>,
}

pub async fn runs(State(st): State<AppState>, Admin(s): Admin, Query(q): Query<RunsQuery>) -> Response {
    let source = q.source.filter(|v| !v.is_empty());
    let status = q.status.filter(|v| !v.is_empty());
    // A status that names none shows no run.
    let named = status.as_deref().map(RunStatus::named);
    let rq =
        crate::store::RunQuery { limit: 200, source: source.clone(), status: named.flatten(), ..Default::default() };
    let shown: Vec<RunRecord> = match named {
        Some(None) => Vec::new(),
        _ => match on_store(&*st.store, move |s| s.runs_page(&rq)).await {
            Ok(r) => r,
            Err(e) => return store_error(e),
        },
    };
    let cfg = st.config();
    let body = html! {
        form.search method="get" action="/ui/runs" {
            select name="source" {
                option value="" { "every source" }
                @for src in &cfg.sources { option value=(src.name) selected[source.as_deref() == Some(src.name.as_str())] { (src.name) } }
            }
            select name="status" {
                option value="" { "every status" }
                @for v in ["ok", "partial", "failed", "blocked", "running", "queued", "interrupted"] { option value=(v) selected[status.as_deref() == Some(v)] { (v) } }
            }
            button type="submit" { "Filter" }
        }
        (chart(&shown))
        (run_table(&shown))
    };
    layout("Runs", Some(&s), body).into_response()
}

/// Recent runs as bars (duration, coloured by status) with their change
/// counts: a small server-rendered SVG.
pub fn chart(runs: &[RunRecord]) -> Markup {
    let recent: Vec<&RunRecord> = runs.iter().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    if recent.is_empty() {
        return html! {};
    }
    let secs = |r: &RunRecord| r.finished_at.map(|f| f.since(r.started_at).as_secs_f64()).unwrap_or(0.0);
    let max = recent.iter().map(|r| secs(r)).fold(0.001, f64::max);
    let (w, h, bar) = (600.0, 120.0, 600.0 / 30.0);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label="Duration of the recent runs" {
                @for (i, r) in recent.iter().enumerate() {
                    @let bh = (secs(r) / max * (h - 20.0)).max(2.0);
                    rect class=(format!("bar {}", r.status.as_str())) x=(format!("{:.1}", i as f64 * bar + 2.0)) y=(format!("{:.1}", h - bh)) width=(format!("{:.1}", bar - 4.0)) height=(format!("{bh:.1}")) {
                        title { "#" (r.id) " " (r.status.as_str()) ": " (format!("{:.1}", secs(r))) " s, " (r.counts.changes()) " changes" }
                    }
                }
            }
            figcaption { "The last " (recent.len()) " runs: height is duration (longest " (format!("{max:.1}")) " s); hover for changes." }
        }
    }
}

#[derive(Deserialize)]
pub struct RunQuery {
    all: Option<String>,
}

/// Audit rows read for a run's page (every one with `?all=1`).
const RUN_ROWS: usize = 2_000;

pub async fn run(
    State(st): State<AppState>,
    Admin(s): Admin,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Query(q): Query<RunQuery>,
) -> Response {
    let Ok(Path(id)) = path else { return page_error(StatusCode::NOT_FOUND, "No such run.") };
    let all = q.all.is_some();
    let read = on_store(&*st.store, move |s| -> Result<_, crate::store::StoreError> {
        let run = s.run_by_id(id)?;
        let plan =
            s.plan_of(id)?.and_then(|j| serde_json::from_str::<crate::engine::plan::summary::PlanSummary>(&j).ok());
        let changes = s.run_changes(id, if all { usize::MAX >> 1 } else { RUN_ROWS })?;
        Ok((run, s.removals_of(id)?, plan, changes))
    })
    .await;
    let (run, removals, plan, changes) = match read {
        Ok((Some(r), rem, plan, changes)) => (r, rem, plan, changes),
        Ok((None, _, _, _)) => return page_error(StatusCode::NOT_FOUND, "No such run."),
        Err(e) => return store_error(e),
    };
    let running = matches!(run.status, RunStatus::Queued | RunStatus::Running);
    let body = html! {
        p { (status_badge(run.status)) " " (run.mode) " · " (run.sources) " · started " (run.started_at.to_string()) " · " (duration(&run)) @if run.forced { " · forced" } " · " (origin_of(&run)) }
        @if running {
            p #progress data-run=(id) { "This run is not finished: " a href=(format!("/ui/runs/{id}")) { "reload" } " to see its result." }
            script src="/static/progress.js" defer {}
        }
        @if let Some(m) = &run.message { p.error { (m) } }
        (counts(&run.counts))
        @if run.status == RunStatus::Blocked {
            @match &plan {
                Some(p) => {
                    @if p.cut() {
                        p.hint { "The first hundred of each kind were kept with this run. To see every change now, preview again:" }
                        (preview_form(&s.csrf, None, true, "Preview with every change"))
                    }
                    (plan_view(p))
                }
                None => {
                    h2 { "Would disable or delete (" (removals.len()) ")" }
                    ul { @for r in &removals { li { (r.kind.as_str()) " " strong { (r.name) } " — " (r.action.as_str()) } } }
                }
            }
            form method="post" action=(format!("/ui/runs/{id}/approve")) {
                (csrf_field(&s.csrf))
                button.danger type="submit" { "Approve" }
                @if run.mode == crate::model::records::RunMode::Push {
                    span.hint { " Lets the identity provider's retries of these removals through (within the hour); other removals stay held." }
                } @else {
                    span.hint { " Plans again and applies only if nobody else would be removed." }
                }
            }
        }
        @if matches!(run.status, RunStatus::Ok | RunStatus::Partial) && !changes.is_empty() && run.mode != crate::model::records::RunMode::Push {
            p { a.button href=(format!("/ui/runs/{id}/undo")) { "Undo this run…" } span.hint { " Shows what would come back first." } }
        }
        (run_changes(id, &changes, all))
        (errors(&run.errors))
        @if !run.warnings.is_empty() {
            h2 { "Warnings (" (run.warnings.len()) ")" }
            table {
                thead { tr { th { "Warning" } th { "Entries" } th { "First of them" } } }
                tbody { @for g in crate::model::ReasonGroup::of(&run.warnings).iter().take(200) {
                    tr { td { (g.reason) } td { (g.count) } td.mono { (g.dns.join("; ")) } }
                } }
            }
        }
    };
    layout(&format!("Run #{id}"), Some(&s), body).into_response()
}

pub async fn approve(
    State(st): State<AppState>,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Checked(s, _): Checked<super::CsrfForm>,
) -> Response {
    let Ok(Path(id)) = path else { return page_error(StatusCode::NOT_FOUND, "No such run.") };
    match crate::serve::api::runs::approve(&st, id).await {
        Ok((new_id, _)) => {
            tracing::info!(user = %s.user, blocked = id, run = new_id, "admin page: blocked run approved");
            Redirect::to(&format!("/ui/runs/{new_id}")).into_response()
        }
        Err(e) => page_error(e.status, &e.message),
    }
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    after: Option<String>,
    group: Option<String>,
    status: Option<String>,
    source: Option<String>,
}

pub async fn users(State(st): State<AppState>, Admin(s): Admin, Query(p): Query<UsersQuery>) -> Response {
    let nonempty = |v: &Option<String>| v.clone().filter(|x| !x.is_empty());
    let status = match nonempty(&p.status).as_deref() {
        Some("active") => Some(crate::model::Status::Active),
        Some("disabled") => Some(crate::model::Status::Disabled),
        _ => None,
    };
    let q = UserQuery {
        limit: 50,
        after: p.after.clone(),
        prefix: nonempty(&p.q),
        group: nonempty(&p.group),
        source: nonempty(&p.source),
        status,
        ..UserQuery::default()
    };
    let cfg = st.config();
    let users = match on_store(&*st.store, move |s| s.users_page(&q)).await {
        Ok(u) => u,
        Err(e) => return store_error(e),
    };
    let body = html! {
        form.search method="get" action="/ui/users" {
            input name="q" type="search" placeholder="username, name or email" value=(p.q.clone().unwrap_or_default());
            input name="group" placeholder="member of group" value=(p.group.clone().unwrap_or_default());
            select name="status" {
                option value="" { "any status" }
                @for v in ["active", "disabled"] { option value=(v) selected[p.status.as_deref() == Some(v)] { (v) } }
            }
            select name="source" {
                option value="" { "every source" }
                @for src in &cfg.sources { option value=(src.name) selected[p.source.as_deref() == Some(src.name.as_str())] { (src.name) } }
            }
            button type="submit" { "Search" }
        }
        table {
            thead { tr { th { "Username" } th { "Full name" } th { "Email" } th { "Source" } th { "Status" } } }
            tbody {
                @for u in &users {
                    tr {
                        td { a href=(format!("/ui/users/{}", urlencode(&u.username))) { (u.username) } }
                        td { (u.fields.get("full_name").unwrap_or("")) }
                        td { (u.fields.get("email").unwrap_or("")) }
                        td { (u.source) }
                        td { (u.status.as_str()) }
                    }
                }
            }
        }
        @if let Some(last) = users.last().filter(|_| users.len() == 50) {
            p { a href=(format!("/ui/users?q={}&group={}&status={}&source={}&after={}", urlencode(&p.q.clone().unwrap_or_default()), urlencode(&p.group.clone().unwrap_or_default()), urlencode(&p.status.clone().unwrap_or_default()), urlencode(&p.source.clone().unwrap_or_default()), urlencode(&last.username))) { "Next page" } }
        }
    };
    layout("Users", Some(&s), body).into_response()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn user(
    State(st): State<AppState>,
    Admin(s): Admin,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(name)) = path else { return page_error(StatusCode::NOT_FOUND, "No such user.") };
    let read = on_store(&*st.store, move |s| -> Result<_, crate::store::StoreError> {
        let Some(u) = s.user_by_name(&name)? else { return Ok(None) };
        let view = UserView::of(&u, s.groups_of_user(u.id)?);
        let queue = s.writeback_items(&[
            crate::store::QueueStatus::Pending,
            crate::store::QueueStatus::Failed,
            crate::store::QueueStatus::Conflict,
        ])?;
        let mine: Vec<_> = queue.into_iter().filter(|i| i.user_id == u.id).collect();
        Ok(Some((view, s.audit_of(u.id, 50)?, mine)))
    })
    .await;
    let (u, history, queue) = match read {
        Ok(Some(x)) => x,
        Ok(None) => return page_error(StatusCode::NOT_FOUND, "No such user."),
        Err(e) => return store_error(e),
    };
    let cfg = st.config();
    let owned_by_app = |f: &str| {
        cfg.sources.iter().any(|src| src.name == u.source && src.fields.iter().any(|x| &*x.name == f && x.app_owned))
    };
    let body = html! {
        dl.fields {
            div { dt { "Status" } dd { (u.status.as_str()) } }
            div { dt { "Source" } dd { (u.source) } }
            div { dt { "DN" } dd.mono { (u.dn) } }
            div { dt { "Full name" } dd { (u.full_name.clone().unwrap_or_default()) } }
            div { dt { "Email" } dd { (u.email.clone().unwrap_or_default()) } }
            // Every mapped field with a value, each labelled apart from it.
            @for (label, key, v) in [("Department", "department", &u.department), ("Office", "office", &u.office), ("Card number", "card_number", &u.card_number), ("Second card number", "card_number2", &u.card_number2)] {
                @if let Some(v) = v { div { dt { (label) @if owned_by_app(key) { " (application)" } } dd { (v) } } }
            }
            @for (k, v) in &u.fields {
                div { dt { (k) @if owned_by_app(k) { " (application)" } } dd { (v) } }
            }
        }
        @let owned: Vec<String> = cfg.sources.iter().filter(|src| src.name == u.source).flat_map(|src| src.fields.iter().filter(|f| f.app_owned).map(|f| f.name.to_string())).collect();
        @if !owned.is_empty() {
            h2 { "Fields the application owns" }
            @for f in &owned {
                form.field method="post" action=(format!("/ui/users/{}/field", urlencode(&u.username))) {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="field" value=(f);
                    label { (f) " " input name="value" value=(u.fields.get(f).cloned().unwrap_or_default()); }
                    button type="submit" { "Save" }
                    @if cfg.codes.contains_key(f.as_str()) { button type="submit" name="generate" value="1" { "Generate" } }
                }
            }
            p.hint { "Saved values are queued for write-back to the directory." }
        }
        form method="post" action=(format!("/ui/users/{}/sync", urlencode(&u.username))) {
            input type="hidden" name="csrf" value=(s.csrf);
            button type="submit" { "Sync this user now" }
        }
        @if !queue.is_empty() {
            h2 { "Write-back" }
            ul { @for i in &queue { li { (i.field) " → " (i.value.clone().unwrap_or_else(|| "(none)".into())) ": " (i.status.as_str()) @if let Some(e) = &i.last_error { " — " (e) } } } }
        }
        h2 { "Groups" }
        p { "Direct: " (u.groups.join(", ")) }
        p { "Effective: " (u.all_groups.join(", ")) }
        h2 { "History" }
        table {
            thead { tr { th { "When" } th { "What" } th { "Field" } th { "Old" } th { "New" } } }
            tbody { @for h in &history { tr { td { (h.at.to_string()) } td { (h.action) } td { (h.field.clone().unwrap_or_default()) } td { (h.old.clone().unwrap_or_default()) } td { (h.new.clone().unwrap_or_default()) } } } }
        }
    };
    layout(&u.username, Some(&s), body).into_response()
}

/// `GET /ui/runs/{id}/progress`: the run's status and, while it runs, the
/// entries read so far (the page's script polls it).
pub async fn progress(
    State(st): State<AppState>,
    _admin: Admin,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(id)) = path else { return StatusCode::NOT_FOUND.into_response() };
    let run = match on_store(&*st.store, move |s| s.run_by_id(id)).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let Some(run) = run else { return StatusCode::NOT_FOUND.into_response() };
    let running = st.runner.queued().1 == Some(id);
    let read = if running { st.runner.progress.load(std::sync::atomic::Ordering::Relaxed) } else { 0 };
    let secs = crate::time::Timestamp::now().since(run.started_at).as_secs_f64();
    axum::Json(serde_json::json!({ "status": run.status.as_str(), "read": read, "seconds": secs })).into_response()
}

impl super::WithCsrf for SourceForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
