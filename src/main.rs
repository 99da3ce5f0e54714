//! The `dirsync` command: a thin CLI over the library. It parses arguments,
//! loads the config, calls the library and renders results; `main` maps
//! errors to the documented exit codes (0 ok, 1 run failed, 2 usage or
//! config error, 3 blocked by a safety guard).

mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use dirsync::config::Config;
use dirsync::engine::history::RunStatus;
use dirsync::engine::sync::{self, SyncOptions};
use dirsync::engine::views::Directory;
use dirsync::store::Store;

use cli::Failure;

#[cfg(not(feature = "system-allocator"))]
mod alloc;

#[derive(Parser)]
#[command(name = "dirsync", version, about = "Keep an application's users and groups in step with a directory")]
struct Args {
    /// The config file.
    #[arg(long, short = 'c', global = true, env = "DIRSYNC_CONFIG", default_value = "dirsync.toml")]
    config: PathBuf,
    /// More log output on stderr (-v info, -vv debug); DIRSYNC_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as text (default) or one JSON object each, for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run as a service: scheduled syncs, the HTTP API, directory
    /// authentication, metrics. Stops on SIGTERM/SIGINT; SIGHUP reloads the config.
    Serve,
    /// Check a user's password against the directory (the password is read
    /// from stdin); exit 0 accepted, 1 refused, 4 directory unavailable.
    Auth { username: String },
    /// Write the admin page's local `admin` password (read from stdin) as an
    /// Argon2id hash to FILE (`[server.admin] password_file`).
    AdminPassword { file: PathBuf },
    /// Write a commented example config file.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate the config, connect to each source and count what it returns.
    Check,
    /// Plan, check the guards, apply in one transaction and record the run.
    Sync {
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Lift the max_delete_percent / max_delete_count thresholds for this run.
        #[arg(long)]
        force: bool,
        /// One JSON object on stdout (logs go to stderr).
        #[arg(long)]
        json: bool,
        /// Read every source in full (a full comparison), even where an
        /// incremental read is possible.
        #[arg(long)]
        full: bool,
        /// Sync only this source (repeatable).
        #[arg(long = "source", value_name = "NAME")]
        sources: Vec<String>,
        /// With --dry-run: exit 5 when the run would change something, 0
        /// when nothing (a blocked or failed outcome keeps its own code).
        #[arg(long, requires = "dry_run")]
        exit_code: bool,
        /// Only fill what existing users lack and a create would have set:
        /// create-only mappings, rules, [codes]; never overwrites a value.
        #[arg(long, conflicts_with_all = ["force", "full", "exit_code"])]
        backfill: bool,
    },
    /// Users in the store.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Groups in the store.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Write-back of application-owned fields to the directory.
    Writeback {
        #[command(subcommand)]
        command: WritebackCommand,
    },
    /// Apply the store's pending schema migrations (every command also
    /// does at start); a store newer than this build is refused (exit 2).
    Migrate,
    /// The store itself.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run history, newest first; `runs undo ID` puts back what a run changed.
    #[command(args_conflicts_with_subcommands = true)]
    Runs {
        #[command(subcommand)]
        command: Option<RunsCommand>,
        #[arg(long)]
        json: bool,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Undo run ID: put back every user, field, membership and group it
    /// changed, as a new run of mode "undo" (exit 0 applied, 1 cannot be
    /// undone, 2 unknown run, 3 blocked by a guard).
    Undo {
        id: i64,
        /// Show what the undo would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        /// Lift the removal thresholds (as for sync).
        #[arg(long)]
        force: bool,
        /// Put the run's values back over later changes too (audited).
        #[arg(long)]
        force_over_later: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a whole store into an empty one (SQLite ⇄ PostgreSQL), history
    /// and audit included, ids kept, row counts checked; stop the service first.
    Copy {
        /// A SQLite file or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// A SQLite file or a postgres:// URL (its password, CA and pool from
        /// the config whose [store] url it is, or PGPASSWORD).
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// List users (sorted by username).
    List {
        #[arg(long)]
        json: bool,
        /// Only effective members of this group (nested groups included).
        #[arg(long)]
        group: Option<String>,
    },
    /// One user, with recent changes.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a field locally; an app-owned field is queued for write-back.
    Set {
        name: String,
        field: String,
        /// The new value (omit with --generate or --clear).
        value: Option<String>,
        /// A new value from the field's [codes] entry.
        #[arg(long, conflicts_with_all = ["value", "clear"])]
        generate: bool,
        /// Remove the value.
        #[arg(long, conflicts_with = "value")]
        clear: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WritebackCommand {
    /// Pending, failed (with the reason) and conflicting items; the last success.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Push the queue now (failed items too, without waiting for their backoff).
    Push {
        #[arg(long)]
        json: bool,
    },
    /// Settle a reported conflict: keep the application's value (written over
    /// the directory's) or the directory's (taken locally).
    Resolve {
        /// The item's id (`writeback status` lists conflicts with their ids).
        id: i64,
        #[arg(long, value_parser = ["app", "directory"])]
        keep: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GroupsCommand {
    /// List groups.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    #[cfg(not(feature = "system-allocator"))]
    alloc::tune();
    quiet_on_closed_pipe();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let serving = matches!(args.command, Command::Serve);
    init_logging(args.verbose, args.log_format, serving);
    // What a directory program leaves running comes to dirsync, not init,
    // and is killed when the program ends.
    if !dirsync::sources::program::reap::become_subreaper() {
        tracing::debug!("not a child subreaper: processes a program moves to a session of their own are not found");
    }
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("dirsync: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `dirsync users list | head`: once the reader has gone, printing fails;
/// the command ends there quietly with status 0, as `ls | head` does,
/// instead of a panic (exit 101). (SIGPIPE stays ignored: a program dirsync
/// writes to must not kill it by exiting early.)
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if text.is_some_and(|t| t.starts_with("failed printing to stdout") && t.contains("Broken pipe")) {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn init_logging(verbose: u8, format: LogFormat, serving: bool) {
    // A service logs its runs and its start at info by default.
    let default = match (verbose, serving) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIRSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => fmt.json().init(),
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn load(path: &std::path::Path) -> Result<Config, Failure> {
    let cfg = Config::load(path).map_err(|e| Failure::config(e.to_string()))?;
    for w in &cfg.warnings {
        tracing::warn!("{}: {w}", cfg.file.display());
    }
    Ok(cfg)
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

fn open_store(cfg: &Config) -> Result<Arc<dyn Store>, Failure> {
    dirsync::store::open(&cfg.store).map_err(store_failure)
}

use cli::store::failure as store_failure;

/// A command's runs: asked for on the command line, on this host.
fn cli_origin() -> dirsync::model::records::RunOrigin {
    let host = dirsync::model::records::host_name();
    dirsync::model::records::RunOrigin::new(dirsync::model::records::Trigger::Cli, &host)
}

/// The store for a command that reads or changes what a sync wrote: an
/// existing one (exit 1, nothing created, when there is none yet).
fn read_store(cfg: &Config) -> Result<Arc<dyn Store>, Failure> {
    dirsync::store::open_existing(&cfg.store).map_err(store_failure)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))
}

/// `sync --json` prints one object, also when the store cannot be opened or fails.
fn print_failed_json(dry_run: bool, message: &str) {
    let failed = serde_json::json!({
        "run_id": null, "status": "failed", "dry_run": dry_run, "message": message,
        "errors": [], "warnings": [],
    });
    println!("{failed:#}");
}

fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Ok => 0,
        RunStatus::Blocked => 3,
        _ => 1,
    }
}

/// `dirsync admin-password FILE`: the local admin's password (stdin) as an Argon2id hash.
fn admin_password(file: std::path::PathBuf) -> Result<u8, Failure> {
    let password = cli::read_password("the admin page's password (12 characters or more): ", true)?;
    let password = password.as_str();
    if password.trim().chars().count() < 12 {
        return Err(Failure::config("the admin password must have at least 12 characters"));
    }
    let hash = dirsync::serve::page::session::hash_password(password).map_err(Failure::failed)?;
    write_private(&file, &format!("{hash}\n"))
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", file.display())))?;
    println!("wrote the admin password's hash to {} (set [server.admin] password_file to it)", file.display());
    Ok(0)
}

/// `dirsync auth NAME`: the password (stdin) checked against the directory.
fn auth(config: &std::path::Path, username: String) -> Result<u8, Failure> {
    let cfg = load(config)?;
    let store = read_store(&cfg)?;
    let password = cli::read_password(&format!("{username}'s password: "), false)?;
    let password = password.as_str();
    let handle = Arc::new(std::sync::RwLock::new(Arc::new(cfg)));
    let auth = dirsync::serve::dirauth::Authenticator::new(handle, store);
    let rt = runtime()?;
    // The admin asking is told why, where an API caller only hears "invalid".
    if let Some(source) = rt.block_on(auth.uncheckable_source(&username)).map_err(|e| Failure::failed(e.to_string()))? {
        return Err(Failure::failed(auth.cannot_check(&source)));
    }
    match rt.block_on(auth.authenticate(&username, password, dirsync::serve::dirauth::Origin::Cli)) {
        Ok(a) => {
            println!("{}", serde_json::json!({ "username": a.username, "groups": a.groups }));
            Ok(0)
        }
        Err(dirsync::serve::dirauth::AuthError::Unavailable(m)) => Err(Failure { code: 4, message: m }),
        Err(e) => Err(Failure::failed(e.to_string())),
    }
}

/// `dirsync sync`.
/// `dirsync sync`'s switches.
struct SyncFlags {
    dry_run: bool,
    force: bool,
    json: bool,
    full: bool,
    /// `--exit-code`: 5 when a dry run would change something.
    exit_code: bool,
}

fn sync_command(config: &std::path::Path, flags: SyncFlags, sources: Vec<String>) -> Result<u8, Failure> {
    let SyncFlags { dry_run, force, json, full, exit_code: pending_code } = flags;
    let cfg = load(config)?;
    // A dry run creates nothing: without a store file it plans against an empty one.
    let opened = match dry_run {
        true => dirsync::store::open_for_dry_run(&cfg.store),
        false => dirsync::store::open(&cfg.store),
    };
    let store = match opened {
        Ok(s) => s,
        Err(e) => {
            if json {
                print_failed_json(dry_run, &e.to_string());
            }
            return Err(store_failure(e));
        }
    };
    let origin = cli_origin();
    let opts = SyncOptions { dry_run, force, sources, full, early_writes: true, origin, ..SyncOptions::default() };
    let progress = Arc::new(AtomicU64::new(0));
    let rt = runtime()?;
    let bar = cli::Progress::start(&rt, progress.clone());
    let result = rt.block_on(sync::run(&cfg, &*store, &opts, progress));
    bar.finish();
    let outcome = match result {
        Ok(o) => o,
        Err(e @ (sync::SyncError::UnknownSource(_) | sync::SyncError::Pushed(_))) => {
            return Err(Failure::config(e.to_string()))
        }
        Err(e) => {
            if json {
                print_failed_json(dry_run, &e.to_string());
            }
            return Err(Failure::failed(e.to_string()));
        }
    };
    if json {
        let mut outcome = outcome;
        if !dry_run && outcome.status != RunStatus::Blocked {
            outcome.plan = None; // applied: the history has it
        }
        println!("{}", serde_json::to_string_pretty(&outcome).expect("serializable"));
        return Ok(sync_exit(&outcome, pending_code));
    }
    cli::print_outcome(&outcome);
    Ok(sync_exit(&outcome, pending_code))
}

/// `dirsync sync --backfill`: fills what existing users lack (0), or says
/// why nothing was filled (1; 2 for an unknown source).
fn backfill_command(config: &std::path::Path, dry_run: bool, json: bool, sources: Vec<String>) -> Result<u8, Failure> {
    use dirsync::engine::backfill::{backfill, BackfillError};
    let cfg = load(config)?;
    let store = match dry_run {
        true => dirsync::store::open_for_dry_run(&cfg.store),
        false => dirsync::store::open_existing(&cfg.store),
    }
    .map_err(store_failure)?;
    let outcome = match runtime()?.block_on(backfill(&cfg, &*store, &sources, dry_run, &cli_origin())) {
        Ok(o) => o,
        Err(e @ BackfillError::UnknownSource(_)) => return Err(Failure::config(e.to_string())),
        Err(e) => return Err(Failure::failed(e.to_string())),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome).expect("serializable"));
    } else {
        cli::print_backfill(&outcome);
    }
    Ok(0)
}

/// A sync's exit code: 0 ok, 1 failed or partial, 3 blocked; with
/// `--exit-code`, 5 for a dry run that would change something.
fn sync_exit(outcome: &sync::SyncOutcome, pending_code: bool) -> u8 {
    match exit_code(outcome.status) {
        0 if pending_code && outcome.counts.changes() > 0 => 5,
        code => code,
    }
}

/// `dirsync users set`.
fn users_set(
    config: &std::path::Path,
    name: String,
    field: String,
    value: Option<String>,
    flags: (bool, bool),
    json: bool,
) -> Result<u8, Failure> {
    let (generate, clear) = flags;
    let cfg = load(config)?;
    let store = read_store(&cfg)?;
    let v = match (value, generate, clear) {
        (Some(v), false, false) => dirsync::engine::writeback::SetValue::Value(v),
        (None, true, false) => dirsync::engine::writeback::SetValue::Generate,
        (None, false, true) => dirsync::engine::writeback::SetValue::Clear,
        _ => return Err(Failure::config("give a value, --generate or --clear")),
    };
    let out = dirsync::engine::writeback::set_field(&cfg, &*store, &name, &field, v).map_err(|e| match e {
        e @ (dirsync::engine::writeback::WritebackError::Refused(_)
        | dirsync::engine::writeback::WritebackError::Invalid { .. }) => Failure::config(e.to_string()),
        other => Failure::failed(other.to_string()),
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out).expect("serializable"));
    } else {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let queued = out.queued_for.as_ref().map(|a| format!("; queued for write-back to {a}")).unwrap_or_default();
        println!("{} {}: {} → {}{queued}", out.username, out.field, show(&out.old), show(&out.new));
    }
    Ok(0)
}

/// `dirsync users show`.
fn users_show(config: &std::path::Path, name: String, json: bool) -> Result<u8, Failure> {
    let cfg = load(config)?;
    let store = read_store(&cfg)?;
    let failed = |e: dirsync::store::StoreError| Failure::failed(e.to_string());
    // Indexed reads: one user, its groups, its history; not the whole store.
    let stored = store
        .user_by_name(&name)
        .map_err(failed)?
        .ok_or_else(|| Failure::failed(format!("no user named \"{name}\"")))?;
    let user = dirsync::engine::views::UserView::of(&stored, store.groups_of_user(stored.id).map_err(failed)?);
    let history = store.audit_of(user.id, 50).map_err(failed)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&user).expect("serializable"));
    } else {
        cli::print_user(&user, &history);
    }
    Ok(0)
}

/// `dirsync writeback status|push|resolve`.
fn writeback(config: &std::path::Path, command: WritebackCommand) -> Result<u8, Failure> {
    let cfg = load(config)?;
    let store = read_store(&cfg)?;
    match command {
        WritebackCommand::Status { json } => {
            let st = dirsync::engine::writeback::status(&*store).map_err(|e| Failure::failed(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st).expect("serializable"));
            } else {
                cli::print_writeback_status(&st);
            }
            Ok(0)
        }
        WritebackCommand::Push { json } => {
            let (_, report) = runtime()?
                .block_on(dirsync::engine::writeback::push_as_run(&cfg, &*store, &cli_origin()))
                .map_err(|e| Failure::failed(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
            } else {
                println!(
                    "write-back: {} written, {} already there, {} failed, {} conflicts",
                    report.pushed, report.already, report.failed, report.conflicts
                );
                for e in &report.errors {
                    println!("  {}: {}", e.dn, e.reason);
                }
            }
            Ok(0)
        }
        WritebackCommand::Resolve { id, keep, json } => {
            let keep = dirsync::engine::writeback::keep_of(&keep).map_err(Failure::config)?;
            let (settled, report) = runtime()?
                .block_on(dirsync::engine::writeback::resolve(&cfg, &*store, id, keep))
                .map_err(|e| Failure::failed(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
            } else {
                for e in &report.errors {
                    println!("  {}: {}", e.dn, e.reason);
                }
            }
            if !json {
                println!("write-back item {id}: {}", if settled { "resolved" } else { "not resolved (see above)" });
            }
            Ok(if settled { 0 } else { 1 })
        }
    }
}

fn run(args: Args) -> Result<u8, Failure> {
    match args.command {
        Command::Init { force } => cli::init(&args.config, force),
        Command::Serve => {
            let cfg = load(&args.config)?;
            let store = open_store(&cfg)?;
            runtime()?
                .block_on(dirsync::serve::serve(args.config.clone(), cfg, store))
                .map_err(|e| Failure::failed(e.to_string()))?;
            Ok(0)
        }
        Command::AdminPassword { file } => admin_password(file),
        Command::Migrate => cli::store::migrate(&load(&args.config)?),
        Command::Store { command: StoreCommand::Copy { from, to } } => cli::store::copy(&args.config, &from, &to),
        Command::Auth { username } => auth(&args.config, username),
        Command::Check => {
            let cfg = load(&args.config)?;
            runtime()?.block_on(cli::check(&cfg))
        }
        Command::Sync { dry_run, json, sources, backfill: true, .. } => {
            backfill_command(&args.config, dry_run, json, sources)
        }
        Command::Sync { dry_run, force, json, full, sources, exit_code, backfill: false } => {
            let flags = SyncFlags { dry_run, force, json, full, exit_code };
            sync_command(&args.config, flags, sources)
        }
        Command::Users { command: UsersCommand::Set { name, field, value, generate, clear, json } } => {
            users_set(&args.config, name, field, value, (generate, clear), json)
        }
        Command::Users { command: UsersCommand::List { json, group } } => {
            let cfg = load(&args.config)?;
            let snap = read_store(&cfg)?.snapshot().map_err(|e| Failure::failed(e.to_string()))?;
            let users = Directory::new(&snap).users(group.as_deref());
            if json {
                println!("{}", serde_json::to_string_pretty(&users).expect("serializable"));
            } else {
                cli::print_users(&users);
            }
            Ok(0)
        }
        Command::Users { command: UsersCommand::Show { name, json } } => users_show(&args.config, name, json),
        Command::Writeback { command } => writeback(&args.config, command),
        Command::Groups { command: GroupsCommand::List { json } } => {
            let cfg = load(&args.config)?;
            let snap = read_store(&cfg)?.snapshot().map_err(|e| Failure::failed(e.to_string()))?;
            let groups = Directory::new(&snap).groups();
            if json {
                println!("{}", serde_json::to_string_pretty(&groups).expect("serializable"));
            } else {
                cli::print_groups(&groups);
            }
            Ok(0)
        }
        Command::Runs { command: Some(RunsCommand::Undo { id, dry_run, json, force, force_over_later }), .. } => {
            let cfg = load(&args.config)?;
            let store = read_store(&cfg)?;
            let opts = dirsync::engine::undo::UndoOptions {
                dry_run,
                force,
                force_over_later,
                origin: cli_origin(),
                queued: None,
                approved: None,
            };
            cli::undo::run(&cfg, &*store, id, &opts, json)
        }
        Command::Runs { command: None, json, limit } => {
            let cfg = load(&args.config)?;
            let runs = read_store(&cfg)?.runs(limit).map_err(|e| Failure::failed(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs).expect("serializable"));
            } else {
                cli::print_runs(&runs);
            }
            Ok(0)
        }
    }
}
