//! Views: users and groups as the CLI (and later the HTTP API) show them,
//! computed from a store snapshot: direct groups, effective groups (nested
//! groups followed to any depth, cycles tolerated), custom fields.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::Serialize;

use crate::model::{name_key, Snapshot, Status, StoredUser, CORE_FIELDS};
use crate::store::UserGroups;

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    /// The store's id: stable for the user's life (an undo re-creates a
    /// deleted user with it).
    pub id: i64,
    pub username: String,
    pub external_id: String,
    pub source: String,
    pub dn: String,
    pub status: Status,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub card_number: Option<String>,
    pub card_number2: Option<String>,
    /// Custom fields.
    pub fields: BTreeMap<String, String>,
    /// Direct group memberships, sorted.
    pub groups: Vec<String>,
    /// Effective memberships (nested groups included), sorted.
    pub all_groups: Vec<String>,
    pub created_at: crate::time::Timestamp,
    pub updated_at: crate::time::Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub name: String,
    pub source: String,
    pub external_id: String,
    pub dn: String,
    /// Users who are direct members.
    pub members: usize,
    /// Users who are members directly or through nested groups.
    pub all_members: usize,
    /// Groups this group is a direct member of.
    pub member_of: Vec<String>,
    /// Groups that are direct members of this group.
    pub subgroups: Vec<String>,
}

impl UserView {
    /// A stored user with its groups (from a snapshot's [`Directory`], or
    /// from the store's indexed reads).
    pub fn of(u: &StoredUser, groups: UserGroups) -> UserView {
        let core = |name: &str| u.fields.get(name).map(str::to_string);
        UserView {
            id: u.id,
            username: u.username.to_string(),
            external_id: u.external_id.to_string(),
            source: u.source.to_string(),
            dn: u.dn.to_string(),
            status: u.status,
            full_name: core("full_name"),
            email: core("email"),
            department: core("department"),
            office: core("office"),
            card_number: core("card_number"),
            card_number2: core("card_number2"),
            fields: u
                .fields
                .iter()
                .filter(|(k, _)| !CORE_FIELDS.contains(k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            groups: groups.direct,
            all_groups: groups.all,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Precomputed membership closure over a snapshot.
pub struct Directory<'a> {
    snap: &'a Snapshot,
    group_name: HashMap<i64, &'a str>,
    /// group id → itself and every group it is nested in.
    ancestors: HashMap<i64, HashSet<i64>>,
    direct: HashMap<i64, Vec<i64>>,
}

impl<'a> Directory<'a> {
    pub fn new(snap: &'a Snapshot) -> Self {
        let group_name = snap.groups.iter().map(|g| (g.id, g.name.as_str())).collect();
        let mut parents: HashMap<i64, Vec<i64>> = HashMap::default();
        for (c, p) in &snap.group_groups {
            parents.entry(*c).or_default().push(*p);
        }
        let mut ancestors = HashMap::default();
        for g in &snap.groups {
            let mut seen = HashSet::default();
            let mut stack = vec![g.id];
            while let Some(x) = stack.pop() {
                if seen.insert(x) {
                    stack.extend(parents.get(&x).into_iter().flatten());
                }
            }
            ancestors.insert(g.id, seen);
        }
        let mut direct: HashMap<i64, Vec<i64>> = HashMap::default();
        for (u, g) in &snap.user_groups {
            direct.entry(*u).or_default().push(*g);
        }
        Directory { snap, group_name, ancestors, direct }
    }

    fn names(&self, ids: impl Iterator<Item = i64>) -> Vec<String> {
        let set: BTreeSet<String> = ids.filter_map(|g| self.group_name.get(&g)).map(|s| s.to_string()).collect();
        set.into_iter().collect()
    }

    /// Effective group ids of a user.
    pub fn effective(&self, user_id: i64) -> HashSet<i64> {
        let mut all = HashSet::default();
        for g in self.direct.get(&user_id).into_iter().flatten() {
            if let Some(a) = self.ancestors.get(g) {
                all.extend(a.iter().copied());
            }
        }
        all
    }

    pub fn user(&self, u: &StoredUser) -> UserView {
        let groups = UserGroups {
            direct: self.names(self.direct.get(&u.id).into_iter().flatten().copied()),
            all: self.names(self.effective(u.id).into_iter()),
        };
        UserView::of(u, groups)
    }

    /// Users sorted by username; with `group`, only its effective members.
    pub fn users(&self, group: Option<&str>) -> Vec<UserView> {
        let wanted: Option<HashSet<i64>> =
            group.map(|n| self.snap.groups.iter().filter(|g| name_key(&g.name) == name_key(n)).map(|g| g.id).collect());
        let mut v: Vec<UserView> = self
            .snap
            .users
            .iter()
            .filter(|u| match &wanted {
                None => true,
                Some(w) => self.effective(u.id).iter().any(|g| w.contains(g)),
            })
            .map(|u| self.user(u))
            .collect();
        v.sort_by_key(|u| u.username.to_lowercase());
        v
    }

    pub fn groups(&self) -> Vec<GroupView> {
        let mut direct_count: HashMap<i64, usize> = HashMap::default();
        for (_, g) in &self.snap.user_groups {
            *direct_count.entry(*g).or_default() += 1;
        }
        let mut all_count: HashMap<i64, usize> = HashMap::default();
        for u in &self.snap.users {
            for g in self.effective(u.id) {
                *all_count.entry(g).or_default() += 1;
            }
        }
        let mut v: Vec<GroupView> = self
            .snap
            .groups
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                source: g.source.clone(),
                external_id: g.external_id.clone(),
                dn: g.dn.clone(),
                members: direct_count.get(&g.id).copied().unwrap_or(0),
                all_members: all_count.get(&g.id).copied().unwrap_or(0),
                member_of: self.names(self.snap.group_groups.iter().filter(|(c, _)| *c == g.id).map(|(_, p)| *p)),
                subgroups: self.names(self.snap.group_groups.iter().filter(|(_, p)| *p == g.id).map(|(c, _)| *c)),
            })
            .collect();
        v.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.source.cmp(&b.source)));
        v
    }
}
