//! What a sync creates: a new user (its values shared with the mapped
//! entry it came from) and a new group. Plain data the plan makes and the
//! store writes.

use std::sync::Arc;

use serde::Serialize;

use super::{Fields, Status};

#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    /// Shared: with the source's other new users, and with the mapped entry
    /// (the external id, DN, username and values).
    pub source: Arc<str>,
    pub external_id: Arc<str>,
    pub dn: Arc<str>,
    pub username: Arc<str>,
    pub fields: Fields,
    /// App-owned fields: the directory's values as read.
    pub dir_values: Fields,
    /// `Disabled` for an AD user disabled in the directory (with import_disabled).
    pub status: Status,
    /// Names of the rules' groups that matched (for the plan display).
    pub rules_applied: Vec<String>,
    /// The mapped entry's [`MappedUser::seq`](super::MappedUser::seq).
    #[serde(skip)]
    pub seq: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewGroup {
    pub source: String,
    pub external_id: String,
    pub name: String,
    pub dn: String,
}
