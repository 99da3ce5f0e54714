//! Names for display of the users and groups a plan's member changes refer
//! to, and the plan's JSON form (each member change with its two names, as
//! `sync --json` has always shown them). A change holds only references: new
//! users and groups are named by the plan's creations, stored ones by
//! [`Names`], which holds only those the changes name.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use super::UserUpdate;
use super::{GroupRemoval, GroupUpdate, Member, MemberChange, NewGroup, NewUser, Plan, Ref, Removal, SourceSummary};
use crate::model::EntryError;

/// Stored users' and groups' names by id.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub users: HashMap<i64, Arc<str>>,
    pub groups: HashMap<i64, Arc<str>>,
}

impl Plan {
    /// A member change's member, for display ("?" for one the plan does not know).
    pub fn member_name(&self, m: &Member) -> &str {
        match m {
            Member::User(Ref::New(i)) => self.creates.get(*i).map_or("?", |u| &*u.username),
            Member::User(Ref::Existing(id)) => self.names.users.get(id).map_or("?", |n| &**n),
            Member::Group(g) => self.group_name(g),
        }
    }

    /// A member change's group, for display.
    pub fn group_name(&self, g: &Ref) -> &str {
        match g {
            Ref::New(i) => self.group_creates.get(*i).map_or("?", |g| g.name.as_str()),
            Ref::Existing(id) => self.names.groups.get(id).map_or("?", |n| &**n),
        }
    }

    /// (member, group) names of a change.
    pub fn names_of(&self, c: &MemberChange) -> (&str, &str) {
        (self.member_name(&c.member), self.group_name(&c.group))
    }
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            creates: &'a [NewUser],
            updates: &'a [UserUpdate],
            removals: &'a [Removal],
            group_creates: &'a [NewGroup],
            group_updates: &'a [GroupUpdate],
            group_deletes: &'a [GroupRemoval],
            member_adds: Named<'a>,
            member_removes: Named<'a>,
            unchanged: usize,
            errors: &'a [EntryError],
            warnings: &'a [EntryError],
            sources: &'a [SourceSummary],
        }
        Out {
            creates: &self.creates,
            updates: &self.updates,
            removals: &self.removals,
            group_creates: &self.group_creates,
            group_updates: &self.group_updates,
            group_deletes: &self.group_deletes,
            member_adds: Named(self, &self.member_adds),
            member_removes: Named(self, &self.member_removes),
            unchanged: self.unchanged,
            errors: &self.errors,
            warnings: &self.warnings,
            sources: &self.sources,
        }
        .serialize(s)
    }
}

/// Member changes with their names.
struct Named<'a>(&'a Plan, &'a [MemberChange]);

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Change<'a> {
            member: Member,
            group: Ref,
            member_name: &'a str,
            group_name: &'a str,
        }
        let mut seq = s.serialize_seq(Some(self.1.len()))?;
        for c in self.1 {
            let (member_name, group_name) = self.0.names_of(c);
            seq.serialize_element(&Change { member: c.member, group: c.group, member_name, group_name })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_changes_serialize_with_the_names_of_new_and_stored_users_and_groups() {
        let mut plan = Plan::default();
        plan.creates.push(NewUser {
            source: "s".into(),
            external_id: "1".into(),
            dn: "uid=amy".into(),
            username: "amy".into(),
            fields: Default::default(),
            dir_values: Default::default(),
            status: crate::model::Status::Active,
            rules_applied: vec![],
            seq: 0,
        });
        plan.group_creates.push(NewGroup {
            source: "s".into(),
            external_id: "g".into(),
            name: "Staff".into(),
            dn: "cn=staff".into(),
        });
        plan.names.users.insert(7, "bob".into());
        plan.names.groups.insert(9, "Students".into());
        plan.member_adds = vec![
            MemberChange { member: Member::User(Ref::New(0)), group: Ref::New(0) },
            MemberChange { member: Member::Group(Ref::New(0)), group: Ref::Existing(9) },
        ];
        plan.member_removes = vec![MemberChange { member: Member::User(Ref::Existing(7)), group: Ref::Existing(8) }];
        let v = serde_json::to_value(&plan).unwrap();
        let names = |k: &str| -> Vec<(String, String)> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|c| (c["member_name"].as_str().unwrap().into(), c["group_name"].as_str().unwrap().into()))
                .collect()
        };
        assert_eq!(names("member_adds"), [("amy".into(), "Staff".into()), ("Staff".into(), "Students".into())]);
        assert_eq!(names("member_removes"), [("bob".to_string(), "?".to_string())], "an unknown group shows as ?");
        assert_eq!(v["member_adds"][0]["member"], serde_json::json!({"kind": "user", "ref": {"new": 0}}));
        assert!(v.get("names").is_none(), "the name table is not part of the JSON form");
        assert_eq!(v["creates"][0]["username"], "amy");
    }
}
