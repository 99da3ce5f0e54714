//! Batch assembly: collects one source's mapped entries into a
//! [`SourceBatch`]: finds duplicate usernames and identities (both entries are
//! skipped, every run, so nothing flip-flops), and resolves group members
//! (DNs or usernames) to direct user and nested-group memberships. A member
//! that points nowhere is ignored.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::config::SourceConfig;
use crate::mapping::{field_names, map_group, map_user_named, UserOutcome};
use crate::model::{
    name_key, normalize_dn, EntryError, EntryKind, FieldName, MappedGroup, MappedUser, MemberRef, RawEntry, SourceBatch,
};

/// Builds a [`SourceBatch`] from raw entries, one at a time.
pub struct Collector<'a> {
    cfg: &'a SourceConfig,
    /// The source's mapped field names, shared by all its users.
    names: Arc<[FieldName]>,
    batch: SourceBatch,
}

impl<'a> Collector<'a> {
    pub fn new(cfg: &'a SourceConfig) -> Self {
        let names = field_names(cfg);
        Collector { cfg, names, batch: SourceBatch { source: cfg.name.clone(), ..SourceBatch::default() } }
    }

    pub fn add(&mut self, kind: EntryKind, entry: RawEntry) {
        match kind {
            EntryKind::User => {
                self.batch.user_entries += 1;
                match map_user_named(self.cfg, &self.names, &entry) {
                    UserOutcome::Mapped(u, warnings) => {
                        self.batch.seen_user_ids.insert(u.external_id.clone());
                        self.batch.warnings.extend(warnings);
                        self.batch.users.push(u);
                    }
                    UserOutcome::Skipped(err, id, name) => {
                        if let Some(id) = id {
                            self.batch.seen_user_ids.insert(id);
                        }
                        if let Some(name) = name {
                            self.batch.skipped_names.insert(name);
                        }
                        self.batch.skipped_dns.insert(normalize_dn(&entry.dn));
                        self.batch.errors.push(err);
                    }
                }
            }
            EntryKind::Group => {
                self.batch.group_entries += 1;
                if let Ok(id) = crate::mapping::external_id(&entry, &self.cfg.query().id_attribute) {
                    self.batch.seen_group_ids.insert(id);
                }
                match map_group(self.cfg, &entry) {
                    Ok(g) => self.batch.groups.push(g),
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
    pub fn finish(mut self) -> SourceBatch {
        let b = &mut self.batch;
        // Every claimant of a duplicate is skipped, and protects what it
        // could be. Normalized DNs are computed once, kept for member resolution.
        let mut users: Vec<(String, MappedUser)> =
            std::mem::take(&mut b.users).into_iter().map(|u| (normalize_dn(&u.dn), u)).collect();
        // Two entries with one username are left to the planner, which knows
        // which of them (if any) already holds the name.
        let mut dropped =
            drop_duplicates(&mut users, &mut b.errors, |(_, u)| u.external_id.as_str(), |(_, u)| &u.dn, "identity");
        dropped.extend(drop_duplicates(&mut users, &mut b.errors, |(k, _)| k.as_str(), |(_, u)| &u.dn, "DN"));
        for (dn, u) in dropped {
            b.skipped_names.insert(u.username.key().to_string());
            b.skipped_dns.insert(dn);
        }
        let mut groups: Vec<(String, MappedGroup)> =
            std::mem::take(&mut b.groups).into_iter().map(|g| (normalize_dn(&g.dn), g)).collect();
        let mut dropped =
            drop_duplicates(&mut groups, &mut b.errors, |(_, g)| g.external_id.as_str(), |(_, g)| &g.dn, "identity");
        dropped.extend(drop_duplicates(&mut groups, &mut b.errors, |(k, _)| k.as_str(), |(_, g)| &g.dn, "DN"));
        b.skipped_group_dns.extend(dropped.into_iter().map(|(k, _)| k));
        users.sort_by(|(_, a), (_, c)| a.username.key().cmp(c.username.key()));
        groups.sort_by(|(_, a), (_, c)| a.name.key().cmp(c.name.key()).then(a.external_id.cmp(&c.external_id)));
        let (user_dns, users): (Vec<String>, Vec<MappedUser>) = users.into_iter().unzip();
        let (group_dns, groups): (Vec<String>, Vec<MappedGroup>) = groups.into_iter().unzip();
        (b.users, b.groups) = (users, groups);

        #[derive(Clone, Copy)]
        enum Target {
            User(u32),
            Group(u32),
        }
        let usernames = self.cfg.members_are_usernames();
        let mut by_dn: HashMap<String, Target> =
            HashMap::with_capacity_and_hasher(b.users.len() + b.groups.len(), Default::default());
        // A name two entries claim resolves to both: the planner keeps at most one.
        let mut by_username: HashMap<&str, Vec<u32>> = HashMap::default();
        for (i, (u, dn)) in b.users.iter().zip(user_dns).enumerate() {
            if usernames {
                by_username.entry(u.username.key()).or_default().push(i as u32);
            } else {
                by_dn.insert(dn, Target::User(i as u32));
            }
        }
        for (i, dn) in group_dns.into_iter().enumerate() {
            by_dn.insert(dn, Target::Group(i as u32));
        }
        // Members named by external id, and groups named by a source's keys.
        let by_ext: HashMap<&str, Target> =
            if b.groups.iter().any(|g| g.members.iter().any(|m| matches!(m, MemberRef::ExternalId(_)))) {
                let users = b.users.iter().enumerate().map(|(i, u)| (u.external_id.as_str(), Target::User(i as u32)));
                users
                    .chain(b.groups.iter().enumerate().map(|(i, g)| (g.external_id.as_str(), Target::Group(i as u32))))
                    .collect()
            } else {
                HashMap::default()
            };
        let mut user_groups = Vec::new();
        let mut group_groups = Vec::new();
        let mut unresolved = Vec::new();
        let mut unresolved_ids = Vec::new();
        for (gi, g) in b.groups.iter().enumerate() {
            let gi = gi as u32;
            for m in &g.members {
                let (target, key) = match m {
                    MemberRef::Username(n) => {
                        let key = name_key(n);
                        match by_username.get(key.as_str()) {
                            Some(us) => user_groups.extend(us.iter().map(|&u| (u, gi))),
                            None => unresolved.push((gi, key)),
                        }
                        continue;
                    }
                    MemberRef::Dn(dn) => {
                        let key = normalize_dn(dn);
                        (by_dn.get(&key).copied(), Some(key))
                    }
                    MemberRef::ExternalId(id) => match by_ext.get(id.as_str()) {
                        Some(t) => (Some(*t), None),
                        None => {
                            unresolved_ids.push((gi, id.clone()));
                            continue;
                        }
                    },
                };
                match target {
                    Some(Target::User(u)) => user_groups.push((u, gi)),
                    Some(Target::Group(child)) if child != gi => group_groups.push((child, gi)),
                    Some(Target::Group(_)) => {} // itself: ignored
                    None => unresolved.extend(key.map(|k| (gi, k))),
                }
            }
        }
        // A user's groups named by key (AD: its primary group, not in `member`).
        let by_key: HashMap<&str, u32> =
            b.groups.iter().enumerate().flat_map(|(i, g)| g.keys.iter().map(move |k| (k.as_str(), i as u32))).collect();
        if !by_key.is_empty() {
            for (ui, u) in b.users.iter().enumerate() {
                user_groups
                    .extend(u.member_of.iter().filter_map(|k| by_key.get(k.as_str())).map(|&gi| (ui as u32, gi)));
            }
        }
        user_groups.sort_unstable();
        user_groups.dedup();
        group_groups.sort_unstable();
        group_groups.dedup();
        drop(by_username);
        b.user_groups = user_groups;
        b.group_groups = group_groups;
        b.unresolved = unresolved;
        b.unresolved_ids = unresolved_ids;
        for g in &mut b.groups {
            g.members = Vec::new(); // resolved; free the memory
        }
        if !self.cfg.scope_groups.is_empty() {
            restrict_to_scope(b, &self.cfg.scope_groups);
        }
        self.batch
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
        } else {
            b.seen_user_ids.remove(&b.users[i].external_id);
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

/// Removes every item whose key is shared with another, reporting each with
/// the DNs of the others, and returns them. Deterministic: all claimants are
/// skipped.
fn drop_duplicates<T>(
    items: &mut Vec<T>,
    errors: &mut Vec<EntryError>,
    key: impl Fn(&T) -> &str,
    dn: impl Fn(&T) -> &String,
    what: &str,
) -> Vec<T> {
    let mut dups: Vec<(String, Vec<usize>)> = {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::with_capacity_and_hasher(items.len(), Default::default());
        for (i, it) in items.iter().enumerate() {
            by_key.entry(key(it)).or_default().push(i);
        }
        if by_key.len() == items.len() {
            return Vec::new();
        }
        by_key.into_iter().filter(|(_, v)| v.len() > 1).map(|(k, v)| (k.to_string(), v)).collect()
    };
    let mut drop = vec![false; items.len()];
    dups.sort();
    for (k, idxs) in dups {
        for &i in &idxs {
            drop[i] = true;
            let others: Vec<&str> = idxs.iter().filter(|&&j| j != i).map(|&j| dn(&items[j]).as_str()).collect();
            errors.push(EntryError::new(
                dn(&items[i]),
                format!(
                    "duplicate {what} \"{k}\": also claimed by {}; both skipped until one is fixed",
                    others.join("; ")
                ),
            ));
        }
    }
    let mut removed = Vec::new();
    for (i, it) in std::mem::take(items).into_iter().enumerate() {
        if drop[i] {
            removed.push(it);
        } else {
            items.push(it);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::AttrValue;
    use std::path::Path;

    fn cfg(member_attr: &str) -> SourceConfig {
        let text = format!(
            "[[sources]]\nname = \"s\"\ntype = \"ldif\"\npath = \"x\"\nmember_attribute = \"{member_attr}\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n"
        );
        Config::parse(&text, Path::new("/t.toml")).unwrap().sources.remove(0)
    }

    fn user(uid: &str, id: &str) -> RawEntry {
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
        assert!(b.seen_user_ids.contains("1") && b.skipped_names.contains("amy") && b.skipped_names.contains("bob"));
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
        let ids =
            |u: u32, g: u32| (b.users[u as usize].external_id.as_str(), b.groups[g as usize].external_id.as_str());
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
        assert_eq!(b.users[0].external_id, "u1");
    }
}
