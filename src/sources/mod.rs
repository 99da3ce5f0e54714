//! Sources: where users and groups come from. Each source is one module behind
//! the [`Source`] trait; it streams raw entries into an [`EntrySink`] and
//! either finishes cleanly or returns an error (never "fewer entries"). What
//! a source kind knows about its directory it hands over as neutral
//! [`Facts`](crate::model::Facts), through its sink's interpretation.
//!
//! Adding a source kind means: its module here (the [`Source`], and its
//! settings implementing [`kind::Kind`], parsed from its part of the
//! `[[sources]]` table), and one line in [`KINDS`]. Nothing else names a kind:
//! the config, the pipeline and write-back reach it through the trait.

pub mod cloud;
pub mod csv;
pub mod google;
pub mod graph;
pub mod ldap;
pub mod ldif;
pub mod program;
pub mod scim;
pub mod tabular;
pub mod unix;

/// Every source kind, one line each: the `type` names it answers to and how
/// its config section is read.
pub const KINDS: &[kind::Registration] = &[
    ldap::config::REGISTRATION,
    ldif::config::REGISTRATION,
    program::config::REGISTRATION,
    unix::config::REGISTRATION,
    csv::config::REGISTRATION,
    graph::config::REGISTRATION,
    google::config::REGISTRATION,
    scim::config::REGISTRATION,
];

use std::path::Path;

use crate::config::{Config, ConfigError};
pub use crate::kind::source::*;

/// Reading a config with dirsync's own kinds. (The config module parses
/// with the registry it is given, `Config::parse_with`; these are the
/// calls with [`KINDS`].)
impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, KINDS)
    }

    /// Validates config text as if read from `path` (relative paths resolve
    /// against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, path, KINDS)
    }
}
/// The kind contract, where a kind's settings and traits are declared.
pub use crate::kind;
