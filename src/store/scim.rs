//! What the store keeps of SCIM: each resource an identity provider pushed
//! ([`ScimRow`]: its JSON as kept, the keys it is found by, its times and
//! version; a deleted one stays, marked, so its id is never reused), the
//! keys a lookup goes by ([`ScimKey`]), and what the push guard asks of a
//! source's last hour ([`PushWindow`]).

use crate::time::Timestamp;

/// One SCIM resource of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimRow {
    /// The SCIM id dirsync gave it (also the dirsync user's or group's
    /// external id).
    pub id: String,
    pub source: String,
    /// `User` or `Group`.
    pub kind: String,
    /// A user's `userName` as dirsync compares names; a group's
    /// `displayName`, lower-case.
    pub name_key: String,
    /// The client's `externalId`, compared with case.
    pub external_id: Option<String>,
    /// The resource's JSON as kept (no `id`, `meta` or secrets).
    pub body: String,
    pub created: Timestamp,
    pub modified: Timestamp,
    pub version: i64,
}

/// What an indexed lookup compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimKey {
    Id,
    /// `userName` (users) or `displayName` (groups), by [`ScimRow::name_key`].
    Name,
    ExternalId,
}

/// A source's removals by push since a time, and its active users now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushWindow {
    pub removed: u64,
    pub active: u64,
}

/// How long after its start a push run may still gather pushes (its
/// window), with room for the last apply: the push guard's count looks at
/// runs started this much before its window.
pub const PUSH_RUN_SLACK: std::time::Duration = std::time::Duration::from_secs(300);
