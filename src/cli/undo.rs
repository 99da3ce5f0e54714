//! `dirsync runs undo ID`: the undo's outcome as text or `sync --json`'s
//! object (mode `undo`, with `conflicts`), and its exit code.

use super::Failure;
use dirsync::config::Config;
use dirsync::engine::history::RunStatus;
use dirsync::engine::undo::{self, UndoError, UndoOptions, UndoOutcome};
use dirsync::store::Store;

/// Runs the undo; exit 0 applied (or previewed), 3 blocked.
pub fn run(cfg: &Config, store: &dyn Store, id: i64, opts: &UndoOptions, json: bool) -> Result<u8, Failure> {
    let outcome = match undo::undo(cfg, store, id, opts) {
        Ok(o) => o,
        Err(e @ UndoError::UnknownRun(_)) => return Err(Failure::config(e.to_string())),
        Err(e) => return Err(Failure::failed(e.to_string())),
    };
    if outcome.status == RunStatus::Ok && !opts.dry_run && cfg.sources.iter().any(|s| s.writeback.is_some()) {
        push(cfg, store);
    }
    match json {
        true => println!("{}", serde_json::to_string_pretty(&outcome).expect("serializable")),
        false => print(&outcome),
    }
    Ok(match outcome.status {
        RunStatus::Blocked => 3,
        RunStatus::Ok => 0,
        _ => 1,
    })
}

/// Pushes the write-back items the undo queued, as a sync does after it applies.
fn push(cfg: &Config, store: &dyn Store) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    if let Err(e) = rt.block_on(dirsync::engine::writeback::push(cfg, store, false)) {
        eprintln!("the undo was applied; the write-back push failed: {e} (`dirsync writeback push` retries)");
    }
}

fn print(o: &UndoOutcome) {
    let what = if o.dry_run { "would put back" } else { "put back" };
    match o.run_id {
        Some(id) => println!("run {id} (undo of run {}): {}", o.undoes, o.status.as_str()),
        None => println!(
            "undo of run {} ({})",
            o.undoes,
            if o.dry_run { "dry run, nothing changed" } else { "not applied" }
        ),
    }
    for c in &o.changes {
        let field = c.field.as_deref().map(|f| format!(" {f}")).unwrap_or_default();
        let from = c.from.as_deref().unwrap_or("∅");
        let to = c.to.as_deref().unwrap_or("∅");
        let next = if c.next_sync_overwrites { "  (the next sync sets it again)" } else { "" };
        println!("  {what}: {} {}{field}: {from} → {to}{next}", c.name, c.action);
    }
    for c in &o.conflicts {
        let kept = c.kept.as_deref().unwrap_or("∅");
        println!("  kept (changed later): {} {}: {kept}", c.username, c.field);
    }
    for w in &o.warnings {
        println!("  note: {w}");
    }
    if let Some(m) = &o.message {
        println!("{m}");
    }
}
