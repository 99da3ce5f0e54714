//! Opening a SQLite store: a new store is built beside its path and renamed
//! into place (so a file at the store's path is always a whole store, and an
//! existing empty file is never mistaken for a new one); migrations run once
//! when the file is older than this build; what is not a store (a folder, an
//! empty or foreign file, a damaged one) is refused with what is wrong and
//! where. Errors from SQLite are explained here for every store operation.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::schema::{rekey, MIGRATIONS, REKEY_AT};
use super::SqliteStore;
use crate::store::StoreError;

/// A store error for `path`, with SQLite's reason put in words an admin can act on.
pub(super) fn explain(path: &Path, e: rusqlite::Error) -> StoreError {
    let code = e.sqlite_error_code();
    let hint = match code {
        Some(ErrorCode::CannotOpen) => format!(
            "cannot open the database file: check that the folder {} exists and that this user may read and write there (SQLite also writes {}-wal and {}-shm beside the store)",
            folder(path),
            file_name(path),
            file_name(path)
        ),
        Some(ErrorCode::NotADatabase) => {
            "is not a dirsync store (not an SQLite database, or damaged at its start); restore it from a backup or move it away".into()
        }
        Some(ErrorCode::DatabaseCorrupt) => format!(
            "is damaged ({e}); restore it from a backup (`dirsync check` runs an integrity check)"
        ),
        Some(ErrorCode::DiskFull) => format!("the disk is full ({e}); nothing of this operation was written"),
        Some(ErrorCode::ReadOnly) => {
            format!("is read-only ({e}): check the permissions of the file and of its folder {}", folder(path))
        }
        Some(ErrorCode::PermissionDenied) => format!("permission denied ({e})"),
        Some(ErrorCode::SystemIoFailure) => format!("input/output error ({e}): is the disk full or failing?"),
        _ => e.to_string(),
    };
    let path = path.display().to_string();
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { store: path, message: hint },
        Some(ErrorCode::ConstraintViolation) => StoreError::Constraint { store: path, message: hint },
        Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::DiskFull | ErrorCode::ReadOnly) => {
            StoreError::Unavailable { store: path, message: hint }
        }
        _ => StoreError::Backend { store: path, message: hint },
    }
}

fn folder(path: &Path) -> String {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.display().to_string(),
        None => ".".into(),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn fail(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Backend { store: path.display().to_string(), message: message.into() }
}

/// Whether the first sync could create the store at `path`: the nearest
/// folder that exists on its way can be written (a probe file is made and
/// removed there).
pub(in crate::store) fn creatable(path: &Path) -> Result<(), StoreError> {
    let mut dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    while !dir.exists() {
        dir = dir.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("/"));
    }
    let probe = dir.join(format!(".dirsync-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(StoreError::Unavailable {
            store: path.display().to_string(),
            message: format!("the folder {} cannot be written ({e}), so the first sync could not create the store there; fix its rights or set [store] path", dir.display()),
        }),
    }
}

impl SqliteStore {
    /// Opens the store file, creating it when it does not exist, and brings
    /// its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(fail(path, "is a folder, not a store file ([store] path must name a file)"))
            }
            Ok(m) if m.len() == 0 => return Err(fail(
                path,
                "exists but is empty (0 bytes), so it is not a dirsync store (dirsync builds new stores whole); restore it from a backup, or delete it to start afresh",
            )),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(fail(path, format!("cannot read it: {e}"))),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(path, e))?;
        SqliteStore::ready(conn, path, false)
    }

    /// A store for a dry run: the file when it exists, otherwise an empty
    /// store in memory, so that a dry run creates no file and no folder.
    pub fn open_for_dry_run(path: &Path) -> Result<SqliteStore, StoreError> {
        if path.exists() {
            return SqliteStore::open(path);
        }
        SqliteStore::in_memory(path)
    }

    /// An empty store in memory, named `label` in messages.
    pub fn in_memory(label: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| explain(label, e))?;
        SqliteStore::ready(conn, label, true)
    }

    fn ready(mut conn: Connection, path: &Path, memory: bool) -> Result<SqliteStore, StoreError> {
        let err = |e| explain(path, e);
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;")
            .map_err(err)?;
        migrate(&mut conn, path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(SqliteStore::new(conn, path, memory))
    }

    /// SQLite's `PRAGMA quick_check` (every page and index entry is read:
    /// linear in the store's size). Ok, or what is damaged.
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let path = self.path().to_path_buf();
        let conn = self.write();
        let mut st = conn.prepare("PRAGMA quick_check(5)").map_err(|e| explain(&path, e))?;
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(|e| explain(&path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| explain(&path, e))?;
        if rows.len() == 1 && rows[0] == "ok" {
            return Ok(());
        }
        Err(fail(&path, format!("is damaged (integrity check: {}); restore it from a backup", rows.join("; "))))
    }
}

/// A read connection to an existing store (the pool's).
pub(super) fn reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| explain(path, e))?;
    // Readers scan (snapshots) or look up by index: a small page cache each,
    // so the pool does not add the writer's 16 MiB per connection (peak RSS).
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -2048; PRAGMA temp_store = MEMORY;")
        .map_err(|e| explain(path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

/// Prepared statements kept per connection: every statement a service's
/// requests use (rusqlite's default of 16 made them prepare again).
const STATEMENTS: usize = 64;

/// Builds a new store beside `path` and renames it into place.
fn create(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(path, format!("cannot create the folder {}: {e}", dir.display())))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let built = (|| {
        let mut conn = Connection::open(&tmp).map_err(|e| explain(path, e))?;
        conn.execute_batch("PRAGMA journal_mode = WAL;").map_err(|e| explain(path, e))?;
        migrate(&mut conn, path)?;
        conn.close().map_err(|(_, e)| explain(path, e))
    })();
    let done = built.and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| fail(path, format!("cannot move the new store into place: {e}")))
    });
    if done.is_err() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = tmp.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
    done
}

/// `dirsync migrate` on a SQLite file: creates it when missing, applies
/// what it has not had; the schema version before and after.
pub(in crate::store) fn migrate_file(path: &Path) -> Result<(usize, usize), StoreError> {
    let before = match path.exists() {
        true => {
            let conn = reader(path)?;
            let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| explain(path, e))?;
            v.max(0) as usize
        }
        false => 0,
    };
    SqliteStore::open(path)?;
    Ok((before, MIGRATIONS.len()))
}

/// Applies the migrations this file has not had, each in its own transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| explain(path, e);
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
    let version = version.max(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::TooNew { store: path.display().to_string(), found: version, known: MIGRATIONS.len() });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(m).map_err(err)?;
        if i + 1 == REKEY_AT {
            rekey(&tx).map_err(err)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
