//! Before-images: what a user or a group was, whole, just before a run
//! deleted it or re-linked it, kept as JSON in its audit row so the run can
//! be undone (the user re-created with its same id, fields, codes and
//! memberships).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A user's row and its direct memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserImage {
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub username: String,
    pub dn: String,
    /// `active` or `disabled`.
    pub status: String,
    pub missing_since: Option<Timestamp>,
    /// Every field with a value, core and custom.
    pub fields: BTreeMap<String, String>,
    /// App-owned fields: the directory's values as last read.
    pub dir_values: BTreeMap<String, String>,
    pub created_at: Timestamp,
    /// The groups it is a direct member of (store ids).
    pub groups: Vec<i64>,
}

/// A group's row and its direct relations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupImage {
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub name: String,
    pub dn: String,
    pub created_at: Timestamp,
    /// Direct user members (store ids).
    pub members: Vec<i64>,
    /// Direct member groups.
    pub children: Vec<i64>,
    /// Groups it is a direct member of.
    pub parents: Vec<i64>,
}
