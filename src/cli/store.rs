//! `dirsync migrate` and `dirsync store copy`: the store's schema brought
//! up to date, and a deployment moved from one store to another.

use std::path::Path;

use dirsync::config::Config;
use dirsync::store::{StoreConfig, StoreError};

use super::Failure;

/// A store error as the CLI reports it: exit 2 for a store newer than this
/// build (nothing to retry), 1 otherwise.
pub fn failure(e: StoreError) -> Failure {
    match e {
        StoreError::TooNew { .. } => Failure::config(e.to_string()),
        e => Failure::failed(e.to_string()),
    }
}

/// `dirsync migrate`: applies the config's store's pending migrations.
pub fn migrate(cfg: &Config) -> Result<u8, Failure> {
    let (before, after) = dirsync::store::migrate(&cfg.store).map_err(failure)?;
    let store = dirsync::store::describe(&cfg.store);
    match before == after {
        true => println!("store {store}: schema version {after}, up to date"),
        false => println!("store {store}: schema version {before} → {after}"),
    }
    Ok(0)
}

/// `dirsync store copy --from A --to B`: every table, ids kept, counts checked.
pub fn copy(config: &Path, from: &str, to: &str) -> Result<u8, Failure> {
    // The config gives a PostgreSQL end's password, CA and pool when its
    // [store] url is that end; without a config file, PGPASSWORD does.
    let cfg = match config.exists() {
        true => Some(Config::load(config).map_err(|e| Failure::config(e.to_string()))?),
        false => None,
    };
    let (from, to) = (endpoint(from, cfg.as_ref(), "--from")?, endpoint(to, cfg.as_ref(), "--to")?);
    let report = dirsync::store::copy::copy(&from, &to).map_err(failure)?;
    for (table, rows) in &report {
        println!("{table:<14} {rows:>10} rows");
    }
    println!("copied {} to {}; row counts match", dirsync::store::describe(&from), dirsync::store::describe(&to));
    Ok(0)
}

/// A store named on the command line: a PostgreSQL URL or a SQLite file.
fn endpoint(arg: &str, cfg: Option<&Config>, flag: &str) -> Result<StoreConfig, Failure> {
    if !(arg.starts_with("postgres://") || arg.starts_with("postgresql://")) {
        if arg.trim().is_empty() {
            return Err(Failure::config(format!("{flag}: expected a SQLite file or a postgres:// URL")));
        }
        return Ok(StoreConfig::sqlite(arg));
    }
    if let Some(StoreConfig::Postgres(pg)) = cfg.map(|c| &c.store) {
        if pg.url == arg {
            return Ok(StoreConfig::Postgres(pg.clone()));
        }
    }
    if url::Url::parse(arg).is_err() {
        let shown = dirsync::store::postgres::describe_url(arg);
        return Err(Failure::config(format!("{flag}: {shown} is not a PostgreSQL URL")));
    }
    Ok(StoreConfig::Postgres(dirsync::store::postgres::PgConfig {
        url: arg.to_string(),
        password: None,
        ca_file: None,
        pool_size: 4,
    }))
}
