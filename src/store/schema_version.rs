//! The schema version this build writes. Both backends number their
//! migrations alike: version N is the same tables and columns on SQLite and
//! on PostgreSQL, so a store of either kind says how far it is in one number.

/// The newest schema version; each backend's migration list is this long.
pub const CURRENT: usize = 11;
