//! Batch assembly: collects one source's mapped entries into a
//! [`SourceBatch`]: finds duplicate usernames and identities (both entries are
//! skipped, every run, so nothing flip-flops), and resolves group members
//! (DNs or usernames) to direct user and nested-group memberships. A member
//! that points nowhere is ignored.
//!
//! A source whose API replays objects hands over versions instead, the last
//! of which wins (`replay.rs`); removals a read reports travel the same way,
//! so their order against the versions is kept.
//!
//! Memory: member references and users' normalized DNs are interned as they
//! arrive (a DN three groups list is held once, a member costs 8 bytes), and
//! the users are reordered in place, never copied.

pub mod coverage;
mod replay;
mod resolve;

use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::config::SourceConfig;
use crate::engine::mapping::{field_names, map_group, map_user_named, UserOutcome};
use crate::model::{
    name_key, normalize_dn, Delta, EntryError, EntryKind, Layout, MappedGroup, MappedUser, MemberRef, RawEntry,
    SourceBatch,
};

/// Builds a [`SourceBatch`] from raw entries, one at a time.
pub struct Collector<'a> {
    cfg: &'a SourceConfig,
    /// The source's mapped field names, shared by all its users.
    names: Arc<Layout>,
    batch: SourceBatch,
    /// Normalized DNs (users' and members'), username keys and external ids,
    /// each held once.
    dns: Keys,
    usernames: Keys,
    ids: Keys,
    /// Each user's normalized DN in `dns`, parallel to the batch's users.
    user_dns: Vec<u32>,
    /// Each group's members, parallel to the batch's groups.
    members: Vec<Vec<Member>>,
    /// `Some` for a source that replays: the last version of an identity wins.
    versions: Option<replay::Versions>,
    /// Identities the read reported removed (users, groups).
    gone: (HashSet<String>, HashSet<String>),
    /// Which mapped attributes the user entries carry.
    coverage: coverage::Coverage,
}

/// A member reference by its interned key.
#[derive(Clone, Copy)]
enum Member {
    Dn(u32),
    Username(u32),
    Id(u32),
}

/// Interned strings: each gets the next number.
#[derive(Default)]
struct Keys(HashMap<Arc<str>, u32>);

impl Keys {
    fn id(&mut self, key: &str) -> u32 {
        self.intern(key, || key.into())
    }

    /// As [`Keys::id`], holding `shared` itself when the key is its text (a
    /// user's DN that is already normalized is not held twice).
    fn id_shared(&mut self, key: &str, shared: &Arc<str>) -> u32 {
        self.intern(key, || if key == &**shared { shared.clone() } else { key.into() })
    }

    fn intern(&mut self, key: &str, held: impl FnOnce() -> Arc<str>) -> u32 {
        if let Some(&i) = self.0.get(key) {
            return i;
        }
        let i = self.0.len() as u32;
        self.0.insert(held(), i);
        i
    }

    fn get(&self, key: &str) -> Option<u32> {
        self.0.get(key).copied()
    }

    /// The strings by number (the table itself is freed).
    fn into_by_id(self) -> Vec<Arc<str>> {
        let empty: Arc<str> = Arc::from("");
        let mut v = vec![empty; self.0.len()];
        for (k, i) in self.0 {
            v[i as usize] = k;
        }
        v
    }
}

#[derive(Clone, Copy)]
enum Target {
    User(u32),
    Group(u32),
}

impl<'a> Collector<'a> {
    pub fn new(cfg: &'a SourceConfig) -> Self {
        Collector {
            cfg,
            names: field_names(cfg),
            batch: SourceBatch::new(cfg.name.clone()),
            dns: Keys::default(),
            usernames: Keys::default(),
            ids: Keys::default(),
            user_dns: Vec::new(),
            members: Vec::new(),
            versions: None,
            gone: Default::default(),
            coverage: coverage::Coverage::new(cfg),
        }
    }

    /// A collector for a source whose API may hand out one object several
    /// times in a read: the last version of each identity wins.
    pub fn replaying(cfg: &'a SourceConfig) -> Self {
        Collector { versions: Some(replay::Versions::default()), ..Collector::new(cfg) }
    }

    /// The read reports the object with this identity removed. For a
    /// replaying source, a removal replaces an earlier version and a later
    /// version replaces the removal.
    pub fn gone(&mut self, kind: EntryKind, id: String) {
        match kind {
            EntryKind::User => {
                let shared: Arc<str> = id.as_str().into();
                self.supersede(&shared, replay::Slot::Gone);
                self.gone.0.insert(id);
            }
            EntryKind::Group => {
                self.gone.1.insert(id);
            }
        }
    }

    /// Records `now` as the last version of the user `id` and withdraws the
    /// version before it; returns the place of a mapped version before it,
    /// which the caller overwrites (a mapped version that follows one).
    fn supersede(&mut self, id: &Arc<str>, now: replay::Slot) -> Option<u32> {
        use replay::Slot;
        let v = self.versions.as_mut()?;
        let before = v.record(id, now)?;
        let b = &mut self.batch;
        match before {
            Slot::User(i) if matches!(now, Slot::User(_)) => {
                b.user_entries -= 1;
                return Some(i);
            }
            Slot::User(i) => v.withdraw_user(i),
            Slot::Skipped(e) => {
                v.withdraw_error(e);
                b.skipped_user_ids.remove(id);
            }
            Slot::Gone => {
                self.gone.0.remove(&**id);
                return None;
            }
        }
        b.user_entries -= 1;
        None
    }

    fn add_user(&mut self, entry: RawEntry) {
        use replay::Slot;
        self.batch.user_entries += 1;
        self.coverage.count(&entry);
        match map_user_named(self.cfg, &self.names, &entry) {
            UserOutcome::Mapped(mut u, warnings) => {
                self.batch.warnings.extend(warnings);
                let at = u32::try_from(self.batch.users.len()).expect("fewer than 4 billion users");
                let dn = self.dns.id_shared(&normalize_dn(&u.dn), &u.dn);
                let id = u.external_id.clone();
                match self.supersede(&id, Slot::User(at)) {
                    Some(i) => {
                        // The newer version takes the older one's place.
                        let v = self.versions.as_mut().expect("only replays supersede");
                        v.record(&id, Slot::User(i));
                        u.seq = i;
                        self.user_dns[i as usize] = dn;
                        self.batch.users[i as usize] = u;
                    }
                    None => {
                        u.seq = at;
                        self.user_dns.push(dn);
                        self.batch.users.push(u);
                    }
                }
            }
            UserOutcome::Skipped(err, id, name) => {
                if let Some(id) = id {
                    let id: Arc<str> = id.into();
                    self.supersede(&id, Slot::Skipped(self.batch.errors.len() as u32));
                    self.batch.skipped_user_ids.insert(id);
                }
                if let Some(name) = name {
                    self.batch.skipped_names.insert(name);
                }
                self.batch.skipped_dns.insert(normalize_dn(&entry.dn));
                self.batch.errors.push(err);
            }
        }
    }

    pub fn add(&mut self, kind: EntryKind, entry: RawEntry) {
        match kind {
            EntryKind::User => self.add_user(entry),
            EntryKind::Group => {
                self.batch.group_entries += 1;
                if let Ok(id) = crate::engine::mapping::external_id(&entry, &self.cfg.query().id_attribute) {
                    self.batch.seen_group_ids.insert(id);
                }
                match map_group(self.cfg, &entry) {
                    Ok(mut g) => {
                        let members = std::mem::take(&mut g.members)
                            .iter()
                            .map(|m| match m {
                                MemberRef::Dn(dn) => Member::Dn(self.dns.id(&normalize_dn(dn))),
                                MemberRef::Username(n) => Member::Username(self.usernames.id(&name_key(n))),
                                MemberRef::ExternalId(id) => Member::Id(self.ids.id(id)),
                            })
                            .collect();
                        self.members.push(members);
                        self.batch.groups.push(g);
                    }
                    Err(e) => {
                        self.batch.skipped_group_dns.insert(normalize_dn(&entry.dn));
                        self.batch.errors.push(e);
                    }
                }
            }
        }
    }

    /// The users mapped so far, in the order they came.
    pub fn users(&self) -> &[MappedUser] {
        &self.batch.users
    }

    /// Resolves duplicates and memberships.
    pub fn finish(self) -> SourceBatch {
        let Collector { cfg, mut batch, dns, usernames, ids, mut user_dns, members, versions, gone, coverage, .. } =
            self;
        coverage.finish(&mut batch);
        let b = &mut batch;
        if let Some(v) = versions {
            let (users, errors) = v.keep(b.users.len(), b.errors.len());
            retain_by(&mut b.users, &users);
            retain_by(&mut user_dns, &users);
            retain_by(&mut b.errors, &errors);
        }
        if !gone.0.is_empty() || !gone.1.is_empty() {
            b.delta = Some(Delta { deleted_users: gone.0, deleted_groups: gone.1, ..Delta::default() });
        }
        // Groups find their own DNs' numbers first; then the table of DNs is
        // given up for a plain list (at a million users the table is 50 MB,
        // and this is when the batch is whole beside the store's snapshot).
        let groups: Vec<Pending> = std::mem::take(&mut b.groups)
            .into_iter()
            .zip(members)
            .map(|(g, m)| {
                let dn = normalize_dn(&g.dn);
                let id = dns.get(&dn);
                (dn, id, g, m)
            })
            .collect();
        let dn_of = dns.into_by_id();
        settle_users(b, &mut user_dns, &dn_of);
        b.users_mapped = b.users.len();
        let groups = settle_groups(b, groups);
        let refs = resolve::Refs { dn_of, usernames, ids, by_username: cfg.members_are_usernames() };
        resolve::members(b, groups, &user_dns, refs);
        if !cfg.scope_groups.is_empty() {
            restrict_to_scope(b, &cfg.scope_groups);
        }
        b.index_users();
        batch
    }
}

/// A group on its way into the batch: its normalized DN, the DN's number
/// (when a member names it), the group, its members.
type Pending = (String, Option<u32>, MappedGroup, Vec<Member>);

/// Users: every claimant of a duplicate identity or DN is skipped and
/// protects what it could be; the rest are sorted by username (two entries
/// with one username are left to the planner, which knows which of them
/// holds the name), then identity. By index, reordered in place.
fn settle_users(b: &mut SourceBatch, user_dns: &mut Vec<u32>, dn_of: &[Arc<str>]) {
    let mut users = std::mem::take(&mut b.users);
    let mut keep = vec![true; users.len()];
    let ext = |i: usize| &*users[i].external_id;
    let dn = |i: usize| &*users[i].dn;
    mark_duplicates(&mut keep, &mut b.errors, ext, dn, "identity");
    mark_duplicates(&mut keep, &mut b.errors, |i| &*dn_of[user_dns[i] as usize], dn, "DN");
    for i in (0..users.len()).filter(|&i| !keep[i]) {
        b.skipped_user_ids.insert(users[i].external_id.clone());
        b.skipped_names.insert(users[i].username.key().to_string());
        b.skipped_dns.insert(dn_of[user_dns[i] as usize].to_string());
    }
    retain_by(&mut users, &keep);
    retain_by(user_dns, &keep);
    let mut order: Vec<u32> = (0..users.len() as u32).collect();
    order.sort_unstable_by(|&a, &c| {
        let (a, c) = (&users[a as usize], &users[c as usize]);
        a.username.key().cmp(c.username.key()).then_with(|| a.external_id.cmp(&c.external_id))
    });
    permute(user_dns, order.clone());
    permute(&mut users, order);
    users.shrink_to_fit(); // the plan is made while this is held
    b.users = users;
}

/// Groups: duplicates skipped as users' are, the rest sorted by name, then identity.
fn settle_groups(b: &mut SourceBatch, mut groups: Vec<Pending>) -> Vec<Pending> {
    let mut keep = vec![true; groups.len()];
    let ext = |i: usize| groups[i].2.external_id.as_str();
    let dn = |i: usize| groups[i].2.dn.as_str();
    mark_duplicates(&mut keep, &mut b.errors, ext, dn, "identity");
    mark_duplicates(&mut keep, &mut b.errors, |i| groups[i].0.as_str(), dn, "DN");
    b.skipped_group_dns.extend((0..groups.len()).filter(|&i| !keep[i]).map(|i| groups[i].0.clone()));
    retain_by(&mut groups, &keep);
    groups.sort_by(|(_, _, a, _), (_, _, c, _)| a.name.key().cmp(c.name.key()).then(a.external_id.cmp(&c.external_id)));
    groups
}

/// Keeps the items whose flag is set, in order, in place.
fn retain_by<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Reorders `v` in place so that item k is the one at `order[k]` before.
fn permute<T>(v: &mut [T], mut order: Vec<u32>) {
    const DONE: u32 = u32::MAX;
    for start in 0..v.len() {
        let mut cur = start;
        while order[cur] != DONE {
            let next = order[cur] as usize;
            order[cur] = DONE;
            if next == start {
                break;
            }
            v.swap(cur, next);
            cur = next;
        }
    }
}

/// Keeps only the effective members (nested groups included) of the scope
/// groups, named by name or DN. Users outside are not seen: they count as
/// gone. A scope group that does not exist is an error for the whole read.
fn restrict_to_scope(b: &mut SourceBatch, scope: &[String]) {
    let mut wanted: Vec<u32> = Vec::new();
    for s in scope {
        let key = name_key(s);
        let dn = normalize_dn(s);
        let found: Vec<u32> = (0..b.groups.len() as u32)
            .filter(|&i| {
                let g = &b.groups[i as usize];
                g.name.key() == key || normalize_dn(&g.dn) == dn
            })
            .collect();
        if found.is_empty() {
            b.scope_error = Some(format!("scope group \"{s}\" was not found among the source's groups"));
            return;
        }
        wanted.extend(found);
    }
    // The scope groups and every group nested in them.
    let mut children: HashMap<u32, Vec<u32>> = HashMap::default();
    for &(c, p) in &b.group_groups {
        children.entry(p).or_default().push(c);
    }
    let mut in_scope = vec![false; b.groups.len()];
    while let Some(g) = wanted.pop() {
        if !std::mem::replace(&mut in_scope[g as usize], true) {
            wanted.extend(children.get(&g).into_iter().flatten().copied());
        }
    }
    let mut keep = vec![false; b.users.len()];
    for &(u, g) in &b.user_groups {
        if in_scope[g as usize] {
            keep[u as usize] = true;
        }
    }
    let mut new_index = vec![u32::MAX; b.users.len()];
    let mut next = 0u32;
    for (i, k) in keep.iter().enumerate() {
        if *k {
            new_index[i] = next;
            next += 1;
        }
    }
    let mut i = 0;
    b.users.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    b.user_groups.retain_mut(|(u, _)| {
        *u = new_index[*u as usize];
        *u != u32::MAX
    });
}

/// Clears `keep` for every kept item whose key another kept item shares,
/// reporting each with the DNs of the others. Deterministic: all claimants
/// are skipped.
fn mark_duplicates<'k>(
    keep: &mut [bool],
    errors: &mut Vec<EntryError>,
    key: impl Fn(usize) -> &'k str,
    dn: impl Fn(usize) -> &'k str,
    what: &str,
) {
    let alive = keep.iter().filter(|&&k| k).count();
    // First pass: one slot per key, the duplicated keys on the side (a Vec
    // per key cost 8.6 MB at 100,000 users for nothing: duplicates are rare).
    let mut dup_keys: Vec<&str> = {
        let mut seen: HashSet<&str> = HashSet::with_capacity_and_hasher(alive, Default::default());
        (0..keep.len()).filter(|&i| keep[i]).filter(|&i| !seen.insert(key(i))).map(&key).collect()
    };
    if dup_keys.is_empty() {
        return;
    }
    dup_keys.sort_unstable();
    dup_keys.dedup();
    // Second pass: every claimant of each duplicated key, in order.
    let mut dups: Vec<(&str, Vec<usize>)> = dup_keys.into_iter().map(|k| (k, Vec::new())).collect();
    for i in (0..keep.len()).filter(|&i| keep[i]) {
        if let Ok(at) = dups.binary_search_by(|(k, _)| (*k).cmp(key(i))) {
            dups[at].1.push(i);
        }
    }
    for (k, idxs) in dups {
        for &i in &idxs {
            keep[i] = false;
            let others = idxs.iter().filter(|&&j| j != i).map(|&j| dn(j).to_string());
            let claimed = crate::model::claims::also_claimed_by(idxs.len(), others);
            errors.push(EntryError::new(
                dn(i),
                format!("duplicate {what} \"{k}\": {claimed}; all skipped until one is fixed"),
            ));
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::AttrValue;
    use std::path::Path;

    #[test]
    fn a_normalized_user_dn_is_interned_by_sharing_the_users_own_text() {
        let mut keys = Keys::default();
        let plain: Arc<str> = "uid=a,ou=people,dc=t".into();
        let mixed: Arc<str> = "UID=B, OU=People,DC=t".into();
        let a = keys.id_shared(&normalize_dn(&plain), &plain);
        let b = keys.id_shared(&normalize_dn(&mixed), &mixed);
        assert_eq!(Arc::strong_count(&plain), 2, "the key is the user's own DN");
        assert_eq!(Arc::strong_count(&mixed), 1, "a DN that normalizes differently is held as its normal form");
        assert_eq!((keys.get("uid=a,ou=people,dc=t"), keys.get("uid=b,ou=people,dc=t")), (Some(a), Some(b)));
        assert_eq!(keys.id("uid=a,ou=people,dc=t"), a, "a member naming it finds the same number");
    }

    #[test]
    fn permute_puts_each_item_where_the_order_says_in_place() {
        let order = vec![3u32, 0, 4, 1, 2, 5];
        let mut v = vec!["a", "b", "c", "d", "e", "f"];
        permute(&mut v, order.clone());
        assert_eq!(v, ["d", "a", "e", "b", "c", "f"]);
        let mut w: Vec<u32> = (0..1000).collect();
        let mut rev: Vec<u32> = (0..1000).rev().collect();
        rev.swap(10, 500);
        permute(&mut w, rev.clone());
        assert_eq!(w, rev);
    }

    pub(super) fn cfg(member_attr: &str) -> SourceConfig {
        let text = format!(
            "[[sources]]\nname = \"s\"\ntype = \"ldif\"\npath = \"x\"\nmember_attribute = \"{member_attr}\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n"
        );
        Config::parse(&text, Path::new("/t.toml")).unwrap().sources.remove(0)
    }

    pub(super) fn user(uid: &str, id: &str) -> RawEntry {
        let mut e = RawEntry::new(format!("uid={uid},ou=People,dc=t"));
        e.push("uid", AttrValue::Text(uid.into()));
        e.push("cn", AttrValue::Text(uid.into()));
        e.push("entryUUID", AttrValue::Text(id.into()));
        e
    }

    fn group(cn: &str, id: &str, attr: &str, members: &[&str]) -> RawEntry {
        let mut e = RawEntry::new(format!("cn={cn},ou=groups,dc=t"));
        e.push("cn", AttrValue::Text(cn.into()));
        e.push("entryUUID", AttrValue::Text(id.into()));
        for m in members {
            e.push(attr, AttrValue::Text(m.to_string()));
        }
        e
    }

    #[test]
    fn duplicate_identities_are_all_skipped_and_reported() {
        let c = cfg("member");
        let mut col = Collector::new(&c);
        col.add(EntryKind::User, user("amy", "1"));
        col.add(EntryKind::User, user("bob", "1"));
        col.add(EntryKind::User, user("other", "3"));
        let b = col.finish();
        assert_eq!(b.users.len(), 1);
        assert_eq!(b.errors.len(), 2);
        assert!(b.errors[0].reason.contains("duplicate identity \"1\""));
        assert!(b.saw_user("1") && b.skipped_names.contains("amy") && b.skipped_names.contains("bob"));
    }

    #[test]
    fn two_entries_with_one_dn_are_both_skipped_and_protect_their_user() {
        let c = cfg("member");
        let mut col = Collector::new(&c);
        col.add(EntryKind::User, user("a", "1"));
        let mut twin = user("b", "2");
        twin.dn = "UID=a, ou=people,dc=t".into();
        col.add(EntryKind::User, twin);
        col.add(EntryKind::User, user("c", "3"));
        let b = col.finish();
        assert_eq!(b.users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["c"]);
        assert!(b.errors.iter().all(|e| e.reason.contains("duplicate DN")), "{:?}", b.errors);
        assert_eq!(b.errors.len(), 2);
        assert!(b.skipped_dns.contains("uid=a,ou=people,dc=t") && b.skipped_names.contains("b"));
    }

    #[test]
    fn resolves_dn_members_nested_groups_and_ignores_dangling() {
        let c = cfg("member");
        let mut col = Collector::new(&c);
        col.add(EntryKind::User, user("a", "u1"));
        col.add(
            EntryKind::Group,
            group("Staff", "g1", "member", &["UID=a, ou=people,dc=t", "uid=ghost,dc=t", "cn=Teachers,ou=groups,dc=t"]),
        );
        col.add(EntryKind::Group, group("Teachers", "g2", "member", &["cn=Teachers,ou=groups,dc=t"]));
        let b = col.finish();
        let ids = |u: u32, g: u32| (&*b.users[u as usize].external_id, b.groups[g as usize].external_id.as_str());
        assert_eq!(b.user_groups.iter().map(|&(u, g)| ids(u, g)).collect::<Vec<_>>(), [("u1", "g1")]);
        let gids =
            |c: u32, p: u32| (b.groups[c as usize].external_id.as_str(), b.groups[p as usize].external_id.as_str());
        assert_eq!(b.group_groups.iter().map(|&(c, p)| gids(c, p)).collect::<Vec<_>>(), [("g2", "g1")]);
    }

    #[test]
    fn resolves_members_by_external_id_and_groups_by_key() {
        let c = cfg("member");
        let mut col = Collector::new(&c);
        let mut amy = user("amy", "u1");
        amy.facts.member_of.push("rid:513".into());
        col.add(EntryKind::User, amy);
        col.add(EntryKind::User, user("bob", "u2"));
        let mut domain = group("Domain Users", "g1", "member", &[]);
        domain.facts.keys.push("rid:513".into());
        col.add(EntryKind::Group, domain);
        let mut by_id = group("Ids", "g2", "member", &[]);
        by_id.facts.members.extend([MemberRef::ExternalId("u2".into()), MemberRef::ExternalId("g1".into())]);
        col.add(EntryKind::Group, by_id);
        let b = col.finish();
        let name = |u: u32| b.users[u as usize].username.as_str();
        let gname = |g: u32| b.groups[g as usize].name.as_str();
        let users: Vec<_> = b.user_groups.iter().map(|&(u, g)| (name(u), gname(g))).collect();
        assert_eq!(users, [("amy", "Domain Users"), ("bob", "Ids")]);
        let nested: Vec<_> = b.group_groups.iter().map(|&(c, p)| (gname(c), gname(p))).collect();
        assert_eq!(nested, [("Domain Users", "Ids")]);
    }

    #[test]
    fn resolves_memberuid_by_username() {
        let c = cfg("memberUid");
        let mut col = Collector::new(&c);
        col.add(EntryKind::User, user("Alice", "u1"));
        col.add(EntryKind::Group, group("g", "g1", "memberUid", &["alice", "nobody"]));
        let b = col.finish();
        assert_eq!(b.user_groups, [(0, 0)]);
        assert_eq!(&*b.users[0].external_id, "u1");
    }
}
