//! What a source's read saw of its users, for telling a missing user from
//! one that is only skipped: the mapped users by external id (a hash table
//! of 4-byte positions into the batch's users, hashed by the id, which stays
//! in the user) and the ids of the entries that were skipped. At a million
//! users a set of every id took 35 MB, and doubled while the read was
//! ending (BENCHMARKS.md).

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashSet as HashSet};

use super::MappedUser;

/// Positions in a slice of users, by external id.
#[derive(Debug, Default)]
pub struct UserIndex(HashTable<u32>);

impl UserIndex {
    /// Indexes `users` (the first of two with one id wins; the batch has
    /// skipped both already).
    pub fn new(users: &[MappedUser]) -> UserIndex {
        assert!(users.len() < u32::MAX as usize, "fewer than 4 billion users");
        let mut t = HashTable::with_capacity(users.len());
        let id = |i: u32| &*users[i as usize].external_id;
        for i in 0..users.len() as u32 {
            let k = id(i);
            if let hashbrown::hash_table::Entry::Vacant(e) = t.entry(hash(k), |&j| id(j) == k, |&j| hash(id(j))) {
                e.insert(i);
            }
        }
        UserIndex(t)
    }

    /// Whether a user of `users` (the slice it was made from) has this id.
    pub fn contains(&self, users: &[MappedUser], id: &str) -> bool {
        self.0.find(hash(id), |&j| users.get(j as usize).is_some_and(|u| &*u.external_id == id)).is_some()
    }
}

fn hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

/// External ids of user entries that were returned but are not among the
/// batch's users (skipped: unreadable, duplicated).
pub type SkippedIds = HashSet<Arc<str>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Layout, MappedFields, Name};

    fn user(id: &str) -> MappedUser {
        MappedUser {
            dn: format!("uid={id},dc=t").into(),
            external_id: id.into(),
            username: Name::new(id),
            disabled: false,
            member_of: Vec::new(),
            fields: MappedFields::new(Layout::new(Vec::new()), &[] as &[Option<&str>]),
            seq: 0,
        }
    }

    #[test]
    fn users_are_found_by_their_external_id_and_nothing_else() {
        let users: Vec<MappedUser> = (0..1000).map(|i| user(&format!("id-{i}"))).collect();
        let index = UserIndex::new(&users);
        assert!((0..1000).all(|i| index.contains(&users, &format!("id-{i}"))));
        assert!(!index.contains(&users, "id-1000") && !index.contains(&users, "ID-1") && !index.contains(&users, ""));
        // Read against fewer users than it was made from (they were dropped): no panic, not seen.
        assert!(!index.contains(&users[..10], "id-999"));
    }

    #[test]
    fn a_batch_saw_its_users_and_its_skipped_ids_once_indexed() {
        let mut b = crate::model::SourceBatch { users: vec![user("a")], ..Default::default() };
        b.skipped_user_ids.insert("s".into());
        assert!(!b.saw_user("a"), "not indexed yet");
        b.index_users();
        assert!(b.saw_user("a") && b.saw_user("s") && !b.saw_user("b"));
    }
}
