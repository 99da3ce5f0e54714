//! The plain data that flows between the steps of a sync: raw directory
//! entries, mapped users and groups, what the store holds, and the names that
//! compare case-insensitively by construction.
//!
//! Nothing in here does I/O; every step takes one of these and returns another.

use std::fmt;

use serde::Serialize;

pub mod claims;
mod creation;
mod fields;
pub mod images;
pub mod queue;
pub mod records;
mod seen;
pub use creation::{NewGroup, NewUser};
pub use fields::{FieldName, Fields, Layout, MappedFields};
use seen::UserIndex;

/// One attribute value as the directory sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Text(String),
    /// Bytes that are not valid UTF-8 (a binary attribute or a broken value).
    Binary(Vec<u8>),
}

impl AttrValue {
    /// The raw bytes (binary attributes can happen to be valid UTF-8).
    pub fn bytes(&self) -> &[u8] {
        match self {
            AttrValue::Text(t) => t.as_bytes(),
            AttrValue::Binary(b) => b,
        }
    }
}

/// A directory entry before mapping: its DN and its attributes, with
/// attribute names lower-cased (LDAP attribute names are case-insensitive),
/// and what its source says about it in neutral terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<AttrValue>)>,
    pub facts: Facts,
}

/// What a source interprets for the core, so that the core needs no
/// directory-specific knowledge (AD's objectGUID, userAccountControl and
/// primary groups are read by the AD source and arrive here as these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The stable identity as the source computed it (`Err`: it could not).
    /// `None`: the core reads `id_attribute`.
    pub id: Option<Result<String, String>>,
    /// Disabled in the directory. `None`: not said (active).
    pub disabled: Option<bool>,
    /// Keys this entry (a group) is known by, besides its DN and identity.
    pub keys: Vec<String>,
    /// Groups this entry (a user) belongs to, by such keys (AD: its primary group).
    pub member_of: Vec<String>,
    /// Members beyond the member attribute (sources whose members are ids).
    pub members: Vec<MemberRef>,
    /// Where the entry is, for messages about it (`people.csv:12`), when the
    /// DN says less (sources that are not LDAP).
    pub origin: Option<String>,
}

/// How a group names a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberRef {
    Dn(String),
    Username(String),
    /// A user's or group's external id in the same source.
    ExternalId(String),
}

impl RawEntry {
    pub fn new(dn: impl Into<String>) -> Self {
        RawEntry { dn: dn.into(), attrs: Vec::new(), facts: Facts::default() }
    }

    /// Adds a value; `name` may be in any case.
    pub fn push(&mut self, name: &str, value: AttrValue) {
        let name = name.to_ascii_lowercase();
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, vs)) => vs.push(value),
            None => self.attrs.push((name, vec![value])),
        }
    }

    /// All values of an attribute (`name` lower-case), or an empty slice.
    pub fn values(&self, name: &str) -> &[AttrValue] {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice()).unwrap_or(&[])
    }

    /// The first value of an attribute, if any.
    pub fn first(&self, name: &str) -> Option<&AttrValue> {
        self.values(name).first()
    }
}

/// Which kind of object a source entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    User,
    Group,
}

/// A name that compares case-insensitively: usernames (as PaperCut does) and
/// group names. `key` is its [`name_key`], used for comparison.
#[derive(Debug, Clone)]
pub struct Name {
    /// Shared with the records made from it (a plan's new user).
    display: std::sync::Arc<str>,
    /// `None` when the key is the display form itself (most usernames).
    key: Option<Box<str>>,
}

impl Name {
    pub fn new(s: impl Into<String>) -> Self {
        let display: String = s.into();
        let key = name_key(&display);
        let key = (key != display).then(|| key.into_boxed_str());
        Name { display: display.into(), key }
    }
    pub fn as_str(&self) -> &str {
        &self.display
    }
    /// The display form, shared.
    pub fn shared(&self) -> &std::sync::Arc<str> {
        &self.display
    }
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.display)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Name {}
impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// The comparison key of a username or group name: Unicode canonical
/// caseless matching (NFD, full case folding, NFD), stored composed (NFC).
/// So NFC and NFD `josé` are one name, `Straße` and `STRASSE` are one name,
/// and a Kelvin sign `K` folds to `k`. ASCII (nearly every name) is just
/// lower-cased.
pub fn name_key(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    let folded: String = s.nfd().default_case_fold().nfd().collect();
    folded.nfc().collect()
}

/// Characters that render as nothing or reorder text: zero-width and other
/// default-ignorable format characters, bidi controls, variation selectors,
/// tags. A username holding one looks like another user's name.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// Normalizes a DN for comparison: lower-case, no blanks around `,` and `=`.
/// Escaped characters are decoded so `\2c` and `\,` compare equal, and the
/// parts of a multi-valued RDN are sorted (`uid=a+cn=b` equals `cn=b+uid=a`).
pub fn normalize_dn(dn: &str) -> String {
    let out = normalize_dn_text(dn);
    if out.contains('+') {
        sort_rdn_parts(&out)
    } else {
        out
    }
}

/// In a normalized DN every special character inside a value is a `\xx`
/// escape, so a literal `,` or `+` is a separator.
fn sort_rdn_parts(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            if !rdn.contains('+') {
                return rdn.to_string();
            }
            let mut parts: Vec<&str> = rdn.split('+').collect();
            parts.sort_unstable();
            parts.join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn normalize_dn_text(dn: &str) -> String {
    let dn = dn.trim();
    if dn.is_ascii() && !dn.contains('\\') {
        // Fast path (nearly every DN): bytes, no escapes to decode.
        let b = dn.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        for (i, &c) in b.iter().enumerate() {
            if c == b' ' {
                let prev = out.last().copied();
                let next = b[i + 1..].iter().find(|&&x| x != b' ').copied();
                if matches!(prev, Some(b',' | b'=' | b'+')) || matches!(next, Some(b',' | b'=' | b'+')) {
                    continue;
                }
            }
            out.push(c.to_ascii_lowercase());
        }
        return String::from_utf8(out).expect("ASCII in, ASCII out");
    }
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let a = chars.next();
                let b = chars.peek().copied();
                match (a, b) {
                    (Some(h1), Some(h2)) if h1.is_ascii_hexdigit() && h2.is_ascii_hexdigit() => {
                        chars.next();
                        let byte = u8::from_str_radix(&format!("{h1}{h2}"), 16).unwrap_or(b'?');
                        out.push('\\');
                        out.push_str(&format!("{byte:02x}"));
                    }
                    (Some(ch), _) => {
                        if ch.is_ascii() && !ch.is_ascii_alphanumeric() {
                            out.push_str(&format!("\\{:02x}", ch as u8));
                        } else {
                            out.extend(ch.to_lowercase());
                        }
                    }
                    (None, _) => out.push('\\'),
                }
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push(c);
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Whether a user may log in to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }
}

/// The application fields with their own column; any other field name is a
/// custom field.
pub const CORE_FIELDS: [&str; 6] = ["full_name", "email", "department", "office", "card_number", "card_number2"];

/// A user entry after mapping and validation: what the source says the user
/// should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedUser {
    /// Shared with a plan's new user made from it, as are the external id,
    /// the username and the field values.
    pub dn: std::sync::Arc<str>,
    pub external_id: std::sync::Arc<str>,
    pub username: Name,
    /// Disabled in the directory (the source's [`Facts::disabled`]).
    pub disabled: bool,
    /// Groups it belongs to by their keys (the source's [`Facts::member_of`]).
    pub member_of: Vec<String>,
    /// Every mapped field but username, in the source's field order; a field
    /// whose attribute is absent maps to `None` (it clears the field on update).
    pub fields: MappedFields,
    /// Its place among the source's mapped entries in the order they came
    /// (set by the batch): what early rows are found by.
    pub seq: u32,
}

/// A group entry after mapping: members are references (DNs, usernames or
/// external ids) until the batch resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedGroup {
    pub dn: String,
    pub external_id: String,
    pub name: Name,
    pub members: Vec<MemberRef>,
    /// Keys users name it by in [`MappedUser::member_of`] (the source's [`Facts::keys`]).
    pub keys: Vec<String>,
}

/// A directory entry that was skipped or a value that was dropped, with the
/// reason; or, without a DN, something about the whole read (a mapped
/// attribute no entry has). Recorded in the run's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryError {
    /// Empty for a note about the whole read (shown as `null`).
    #[serde(serialize_with = "dn_or_null")]
    pub dn: String,
    pub reason: String,
}

fn dn_or_null<S: serde::Serializer>(dn: &str, s: S) -> Result<S::Ok, S::Error> {
    match dn.is_empty() {
        true => s.serialize_none(),
        false => s.serialize_str(dn),
    }
}

impl EntryError {
    pub fn new(dn: impl Into<String>, reason: impl Into<String>) -> Self {
        EntryError { dn: dn.into(), reason: reason.into() }
    }

    /// A note about the whole read, not one entry.
    pub fn run_level(reason: impl Into<String>) -> Self {
        EntryError { dn: String::new(), reason: reason.into() }
    }

    pub fn is_run_level(&self) -> bool {
        self.dn.is_empty()
    }
}

/// Entries skipped (or values dropped) for one reason: how many, and the
/// first few DNs. Outputs show these instead of one line per entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonGroup {
    pub reason: String,
    pub count: usize,
    /// The first DNs with this reason (at most [`ReasonGroup::SHOWN`]).
    pub dns: Vec<String>,
}

impl ReasonGroup {
    pub const SHOWN: usize = 3;

    /// `errors` grouped by reason, the most frequent first (then in order
    /// of first appearance).
    pub fn of(errors: &[EntryError]) -> Vec<ReasonGroup> {
        let mut groups: Vec<ReasonGroup> = Vec::new();
        let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for e in errors {
            let i = *at.entry(e.reason.as_str()).or_insert_with(|| {
                groups.push(ReasonGroup { reason: e.reason.clone(), count: 0, dns: Vec::new() });
                groups.len() - 1
            });
            let g = &mut groups[i];
            g.count += 1;
            if g.dns.len() < Self::SHOWN && !e.dn.is_empty() {
                g.dns.push(e.dn.clone());
            }
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        groups
    }

    /// One line: `64 entries: reason (e.g. uid=a,…; uid=b,…)`, or the DN
    /// itself for a reason only one entry has.
    pub fn line(&self) -> String {
        match (self.count, self.dns.as_slice()) {
            (_, []) => match self.count {
                1 => self.reason.clone(),
                n => format!("{n} times: {}", self.reason),
            },
            (1, [dn]) => format!("{dn}: {}", self.reason),
            (n, dns) => {
                let more = if n > dns.len() { ", …" } else { "" };
                format!("{n} entries: {} (e.g. {}{more})", self.reason, dns.join("; "))
            }
        }
    }
}

/// What an incremental read says beyond its entries. Without it a batch is
/// complete: whatever is not in it is gone from the source.
#[derive(Debug, Default, Clone)]
pub struct Delta {
    /// Identities the source reported deleted (or moved out of scope).
    pub deleted_users: rustc_hash::FxHashSet<String>,
    pub deleted_groups: rustc_hash::FxHashSet<String>,
    /// Set when the source answered with a present phase (RFC 4533): the
    /// identities still there; stored ones neither present nor in the batch
    /// are deleted.
    pub present_users: Option<rustc_hash::FxHashSet<String>>,
    pub present_groups: Option<rustc_hash::FxHashSet<String>>,
}

/// Everything one source delivered in one run, mapped and with memberships
/// resolved to indices.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub source: String,
    pub users: Vec<MappedUser>,
    pub groups: Vec<MappedGroup>,
    /// (index into `users`, index into `groups`): direct memberships.
    pub user_groups: Vec<(u32, u32)>,
    /// (child index, parent index) into `groups`: nested groups.
    pub group_groups: Vec<(u32, u32)>,
    /// Members not found in this batch: (group index, normalized DN, or the
    /// lower-cased username for memberUid). A full batch ignores them; a delta
    /// resolves them against the store.
    pub unresolved: Vec<(u32, String)>,
    /// Members named by an external id not in this batch: (group index, id).
    /// A delta resolves them against the store.
    pub unresolved_ids: Vec<(u32, String)>,
    /// `Some` for an incremental read.
    pub delta: Option<Delta>,
    /// The source's position after this read, saved with the applied run.
    pub next_state: Option<String>,
    /// Set when the read cannot be used as it is (a scope group is missing).
    pub scope_error: Option<String>,
    /// External ids of the user entries the source returned that are not in
    /// `users` (skipped ones): a skipped user is not a missing user. With
    /// `users` itself, what [`SourceBatch::saw_user`] answers from.
    pub skipped_user_ids: seen::SkippedIds,
    /// `users` by external id, made by [`SourceBatch::index_users`] once they
    /// are in their final order (derived: only the methods below touch it).
    user_index: UserIndex,
    /// The same for groups: a skipped group is not deleted.
    pub seen_group_ids: rustc_hash::FxHashSet<String>,
    /// Normalized DNs and username keys of skipped user entries (even those
    /// without a readable identity): a stored user with one of them is the
    /// user the entry could be, and stays as it is.
    pub skipped_dns: rustc_hash::FxHashSet<String>,
    pub skipped_names: rustc_hash::FxHashSet<String>,
    /// Normalized DNs of skipped group entries.
    pub skipped_group_dns: rustc_hash::FxHashSet<String>,
    pub errors: Vec<EntryError>,
    pub warnings: Vec<EntryError>,
    /// How many user entries the source returned (before skipping).
    pub user_entries: usize,
    pub group_entries: usize,
    /// Users mapped and not skipped as duplicates (before a scope limits
    /// them): none of `user_entries` means every entry was skipped.
    pub users_mapped: usize,
    /// Mapped attributes no user entry of the read carried, with the fields
    /// that read them (meaningful only for a full read).
    pub unseen_attributes: Vec<(String, Vec<String>)>,
    /// Attribute names user entries had (a sample, lower-case), for
    /// suggesting what an unseen attribute was meant to be.
    pub attribute_names: std::collections::BTreeSet<String>,
}

impl SourceBatch {
    /// An empty batch of `source`.
    pub fn new(source: String) -> SourceBatch {
        SourceBatch { source, ..SourceBatch::default() }
    }

    /// Whether the source returned a user entry with this external id
    /// (perhaps skipped).
    pub fn saw_user(&self, id: &str) -> bool {
        self.skipped_user_ids.contains(id) || self.user_index.contains(&self.users, id)
    }

    /// Indexes `users` by external id; call again after they change.
    pub fn index_users(&mut self) {
        self.user_index = UserIndex::new(&self.users);
    }

    /// Frees the mapped entries once the plan holds what the apply needs
    /// (peak RSS); what was seen is not asked any more.
    pub fn drop_entries(&mut self) {
        self.users = Vec::new();
        self.user_index = UserIndex::default();
        self.groups = Vec::new();
        self.user_groups = Vec::new();
        self.unresolved = Vec::new();
        self.unresolved_ids = Vec::new();
    }

    /// Whether a stored user of this source is protected by this read: its
    /// entry was returned (perhaps skipped), or a skipped entry has its DN or
    /// its username.
    pub fn protects(&self, u: &StoredUser) -> bool {
        self.saw_user(&u.external_id)
            || (!self.skipped_dns.is_empty() && self.skipped_dns.contains(&normalize_dn(&u.dn)))
            || (!self.skipped_names.is_empty() && self.skipped_names.contains(&name_key(&u.username)))
    }
}

/// Longest DN accepted (longer entries are skipped with a shortened DN).
pub const MAX_DN_LEN: usize = 4096;

/// A DN for messages: at most 200 bytes.
pub fn short_dn(dn: &str) -> String {
    if dn.len() <= 200 {
        return dn.to_string();
    }
    let mut end = 200;
    while !dn.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &dn[..end], dn.len())
}

/// A user as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredUser {
    pub id: i64,
    /// Shared by every user of the source the snapshot holds.
    pub source: std::sync::Arc<str>,
    pub external_id: Box<str>,
    pub username: Box<str>,
    pub dn: Box<str>,
    pub status: Status,
    /// Set (to when) while the user is gone from its source and was disabled
    /// for it; a user disabled in the directory itself is not missing.
    pub missing_since: Option<crate::time::Timestamp>,
    /// Core and custom field values (non-empty only).
    pub fields: Fields,
    /// App-owned fields: the directory's value as last read.
    pub dir_values: Fields,
    pub created_at: crate::time::Timestamp,
    pub updated_at: crate::time::Timestamp,
}

/// A group as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredGroup {
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub name: String,
    pub dn: String,
}

/// The whole store, read in one transaction, for planning and for listing.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Bumped by every applied run; the apply checks it is unchanged since
    /// this snapshot was read (optimistic concurrency).
    pub generation: i64,
    pub users: Vec<StoredUser>,
    pub groups: Vec<StoredGroup>,
    /// (user id, group id)
    pub user_groups: Vec<(i64, i64)>,
    /// (child group id, parent group id)
    pub group_groups: Vec<(i64, i64)>,
    /// For a partial snapshot: active users per source (the guards' base),
    /// since `users` then holds only some of them.
    pub active_by_source: Option<std::collections::HashMap<String, usize>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_case_insensitively() {
        assert_eq!(Name::new("JSmith"), Name::new("jsmith"));
        assert_ne!(Name::new("jsmith"), Name::new("jsmith2"));
        assert_eq!(Name::new("JSmith").as_str(), "JSmith");
    }

    #[test]
    fn name_keys_fold_unicode_forms_and_case() {
        // NFC é and NFD e + combining acute are one name.
        assert_eq!(name_key("jos\u{e9}"), name_key("jose\u{301}"));
        assert_eq!(name_key("JOS\u{c9}"), name_key("jose\u{301}"));
        // Full case folding, not just lower-casing.
        assert_eq!(name_key("Stra\u{df}e"), name_key("STRASSE"));
        // The Kelvin sign folds to k.
        assert_eq!(name_key("\u{212a}ate"), "kate");
        assert_ne!(name_key("alice"), name_key("alice\u{200b}"), "invisible characters are refused elsewhere");
    }

    #[test]
    fn invisible_characters_are_recognised() {
        for c in ['\u{200b}', '\u{200d}', '\u{202e}', '\u{feff}', '\u{2066}', '\u{ad}'] {
            assert!(is_invisible(c), "{:x}", c as u32);
        }
        for c in ['a', '\u{e9}', '\u{212a}', ' '] {
            assert!(!is_invisible(c));
        }
    }

    #[test]
    fn multi_valued_rdns_compare_in_any_order() {
        assert_eq!(normalize_dn("uid=mv+cn=M V,ou=People,dc=t"), normalize_dn("CN=M V + UID=mv,ou=people,dc=t"));
        assert_ne!(
            normalize_dn("uid=a\\+cn=b,dc=t"),
            normalize_dn("cn=b+uid=a,dc=t"),
            "an escaped + is not a separator"
        );
    }

    #[test]
    fn dn_normalization_folds_case_blanks_and_escapes() {
        assert_eq!(
            normalize_dn("CN=Smith\\, John , OU=People,DC=Example"),
            normalize_dn("cn=smith\\2C john,ou=people,dc=example")
        );
        assert_eq!(normalize_dn("uid=a, ou=x"), "uid=a,ou=x");
        assert_ne!(normalize_dn("uid=a,ou=x"), normalize_dn("uid=b,ou=x"));
        assert_eq!(normalize_dn(" UID = a b , OU=X "), "uid=a b,ou=x");
        assert_eq!(normalize_dn("cn=Zoë , ou=X"), "cn=zoë,ou=x", "the slow path agrees");
    }

    #[test]
    fn raw_entry_lowercases_attribute_names() {
        let mut e = RawEntry::new("uid=a");
        e.push("entryUUID", AttrValue::Text("1".into()));
        e.push("ENTRYUUID", AttrValue::Text("2".into()));
        assert_eq!(e.values("entryuuid").len(), 2);
        assert!(e.first("missing").is_none());
    }
}
