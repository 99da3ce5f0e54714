//! The program kind's part of a `[[sources]]` table (`type = "program"`):
//! the user directory program and its authentication program (absolute
//! paths, checked at load: a file, executable, inside `allowed_dirs` when
//! given), the argument order of `is-user-in-group`, time and output limits,
//! and how many `group-member-names` calls run at once.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use super::run::check_program;
use crate::config::{ConfigError, DirectoryQuery, Section, SourceConfig};
use crate::kind::{Kind, PasswordCheck, Registration};
use crate::sources::{tabular, Source};

/// `type = "program"`.
pub const REGISTRATION: Registration = Registration {
    types: &["program"],
    keys: &[
        "program",
        "auth_program",
        "allowed_dirs",
        "is_user_in_group_order",
        "timeout_secs",
        "user_timeout_secs",
        "max_output_mib",
        "concurrency",
    ],
    parse,
};

/// The columns of a user line, in order (the short form has the first five).
pub const COLUMNS: &[&str] = &[
    "username",
    "full_name",
    "email",
    "department",
    "office",
    "card_number",
    "other_emails",
    "card_number2",
    "username_alias",
    "home_directory",
    "pin",
];

/// The columns mapped when `[sources.fields]` is not given (the PIN is
/// offered but never mapped by default: it is a credential).
const DEFAULT_FIELDS: &str = r#"
username = "username"
full_name = { attribute = "full_name", required = false }
email = "email"
department = "department"
office = "office"
card_number = "card_number"
card_number2 = "card_number2"
"#;

#[derive(Debug, Clone)]
pub struct ProgramConfig {
    pub program: PathBuf,
    pub auth_program: Option<PathBuf>,
    pub allowed_dirs: Vec<PathBuf>,
    /// `is-user-in-group GROUP USER` (PaperCut's documented order) or USER GROUP.
    pub group_first: bool,
    /// For `all-users`, `all-groups` and each `group-member-names`.
    pub timeout_secs: u64,
    /// For the per-user calls: `get-user-details`, `is-valid`, authentication.
    pub user_timeout_secs: u64,
    pub max_output_mib: u64,
    /// `group-member-names` calls at once.
    pub concurrency: usize,
    pub query: DirectoryQuery,
}

impl Kind for ProgramConfig {
    fn type_name(&self) -> &'static str {
        "program"
    }

    fn place(&self) -> String {
        self.program.display().to_string()
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn default_fields(&self) -> Option<&'static str> {
        Some(DEFAULT_FIELDS)
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        tabular::check_column(name, COLUMNS, "program")
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::ProgramSource::new(cfg, self))
    }

    fn password_check(&self, cfg: &SourceConfig) -> Option<Arc<dyn PasswordCheck>> {
        let p = self.auth_program.clone()?;
        Some(Arc::new(super::auth::ProgramPasswordCheck::new(&cfg.name, p, self.user_limits())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ProgramConfig {
    pub fn limits(&self) -> super::run::Limits {
        super::run::Limits {
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            max_output: self.max_output_mib << 20,
        }
    }

    pub fn user_limits(&self) -> super::run::Limits {
        super::run::Limits { timeout: std::time::Duration::from_secs(self.user_timeout_secs), ..self.limits() }
    }
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let allowed_dirs: Vec<PathBuf> = s.strings("allowed_dirs")?.unwrap_or_default().iter().map(PathBuf::from).collect();
    for (i, d) in allowed_dirs.iter().enumerate() {
        if !d.is_absolute() || !d.is_dir() {
            return Err(s.err(
                "allowed_dirs",
                format!("entry {i}: expected an existing folder's absolute path, got \"{}\"", d.display()),
            ));
        }
    }
    let program =
        s.string("program")?.ok_or_else(|| s.err("program", "missing (expected the program's absolute path)"))?;
    let program = check_program(&program, &allowed_dirs).map_err(|m| s.err("program", m))?;
    let auth_program = match s.string("auth_program")? {
        None => None,
        Some(p) => Some(check_program(&p, &allowed_dirs).map_err(|m| s.err("auth_program", m))?),
    };
    let group_first = match s.string("is_user_in_group_order")?.as_deref() {
        None | Some("group-user") => true,
        Some("user-group") => false,
        Some(o) => {
            return Err(
                s.err("is_user_in_group_order", format!("expected \"group-user\" or \"user-group\", got \"{o}\""))
            )
        }
    };
    let mut number = |k: &str, default: i64, max: i64| -> Result<i64, ConfigError> {
        match s.integer(k)? {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(s.err(k, format!("expected 1 to {max}, got {n}"))),
        }
    };
    let timeout_secs = number("timeout_secs", 120, 86_400)? as u64;
    let user_timeout_secs = number("user_timeout_secs", 10, 3_600)? as u64;
    let max_output_mib = number("max_output_mib", 512, 65_536)? as u64;
    let concurrency = number("concurrency", 4, 64)? as usize;
    Ok(Box::new(ProgramConfig {
        program,
        auth_program,
        allowed_dirs,
        group_first,
        timeout_secs,
        user_timeout_secs,
        max_output_mib,
        concurrency,
        query: tabular::query(),
    }))
}
