//! What the table-shaped kinds (program, Unix accounts, CSV) share: user
//! entries built from named columns, groups as a name and member usernames,
//! and the query the core reads them with. Their entries carry no DN: a user
//! is `user:<identity>`, a group `group:<name>`, and messages name the file
//! and line (or program and line) through [`Facts::origin`].

use crate::config::{DirectoryQuery, MemberSyntax};
use crate::model::{AttrValue, Facts, RawEntry};

/// The attribute a group entry's name is in.
pub const GROUP_NAME: &str = "name";
/// Members are usernames (the core resolves `memberuid` values by username).
pub const MEMBERS: &str = "memberuid";

/// How the core reads a table-shaped kind's entries: the identity comes from
/// the source ([`Facts::id`]), groups by name, members by username.
pub fn query() -> DirectoryQuery {
    DirectoryQuery {
        user_filter: String::new(),
        group_filter: None,
        group_name_attribute: GROUP_NAME.into(),
        member_attribute: MEMBERS.into(),
        member_syntax: MemberSyntax::Username,
        id_attribute: "id".into(),
    }
}

/// A user entry: identity `id`, the non-empty `columns` as attributes (names
/// lower-cased), `origin` for messages, `member_of` group keys (a Unix
/// account's primary group).
pub fn user<'a>(
    id: &str,
    origin: String,
    columns: impl IntoIterator<Item = (&'a str, &'a str)>,
    member_of: Vec<String>,
) -> RawEntry {
    let mut e = RawEntry::new(format!("user:{id}"));
    for (name, value) in columns {
        if !value.is_empty() {
            e.push(name, AttrValue::Text(value.to_string()));
        }
    }
    e.facts = Facts { id: Some(Ok(id.to_string())), origin: Some(origin), member_of, ..Facts::default() };
    e
}

/// A group entry: its name (also its identity), the usernames of its
/// members, and `keys` users may name it by (a Unix gid).
pub fn group(name: &str, members: impl IntoIterator<Item = String>, keys: Vec<String>, origin: String) -> RawEntry {
    let mut e = RawEntry::new(format!("group:{name}"));
    e.push(GROUP_NAME, AttrValue::Text(name.to_string()));
    for m in members {
        e.push(MEMBERS, AttrValue::Text(m));
    }
    e.facts = Facts { id: Some(Ok(format!("group:{name}"))), keys, origin: Some(origin), ..Facts::default() };
    e
}

/// Checks a field's column name against the columns a kind offers.
pub fn check_column(name: &str, columns: &[&str], kind: &str) -> Result<(), String> {
    if columns.contains(&name) {
        Ok(())
    } else {
        Err(format!("\"{name}\" is not a column of type = \"{kind}\" (expected one of: {})", columns.join(", ")))
    }
}

/// A user or group entry the mapping skips with `reason` at `origin`
/// ([`EntryKind`](crate::model::EntryKind) says which); `name`, when one
/// could be read, still protects the user (or group) it names: a skipped
/// entry is never a missing one.
pub fn skipped(kind: crate::model::EntryKind, name: Option<&str>, origin: String, reason: String) -> RawEntry {
    let (prefix, attr) = match kind {
        crate::model::EntryKind::User => ("user", "username"),
        crate::model::EntryKind::Group => ("group", GROUP_NAME),
    };
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let mut e = RawEntry::new(format!("{prefix}:{}", name.unwrap_or(&origin)));
    if let Some(n) = name {
        e.push(attr, AttrValue::Text(n.to_string()));
    }
    e.facts.id = Some(Err(reason));
    e.facts.origin = Some(origin);
    e
}
