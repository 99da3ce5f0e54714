//! The plan's two look-ups over every user, kept small: a hash table of
//! 4-byte positions, hashed by the text they point at, which stays where it
//! is (in the snapshot or the batch). At a million users a map keyed by
//! borrowed strings took 80 MB for each, built while the store's snapshot and
//! the source's batch are both whole (BENCHMARKS.md).

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap as HashMap};

use crate::model::Snapshot;

fn hash<T: std::hash::Hash>(key: T) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// Stored users by (source, external id).
pub(super) struct ByIdentity<'a> {
    snap: &'a Snapshot,
    table: HashTable<u32>,
}

impl<'a> ByIdentity<'a> {
    pub(super) fn new(snap: &'a Snapshot) -> Self {
        let n = u32::try_from(snap.users.len()).expect("fewer than 4 billion stored users");
        let key = |i: u32| identity(snap, i);
        let mut table = HashTable::with_capacity(snap.users.len());
        for i in 0..n {
            let k = key(i);
            match table.entry(hash(k), |&j| key(j) == k, |&j| hash(key(j))) {
                Entry::Occupied(mut e) => *e.get_mut() = i, // as a map's insert: the last one wins
                Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        ByIdentity { snap, table }
    }

    /// The stored user's index in the snapshot.
    pub(super) fn get(&self, source: &str, external_id: &str) -> Option<usize> {
        let k = (source, external_id);
        self.table.find(hash(k), |&j| identity(self.snap, j) == k).map(|&j| j as usize)
    }
}

/// A stored user's (source, external id).
fn identity(snap: &Snapshot, i: u32) -> (&str, &str) {
    let u = &snap.users[i as usize];
    (&u.source, &u.external_id)
}

/// A name's claims: who first named it (an index into the kept stored
/// users, or past them into the claimants), how many claimants, and the
/// stored user that keeps it ([`NONE`] for none).
struct Claim {
    at: u32,
    n: u32,
    stored: u32,
}

const NONE: u32 = u32::MAX;

/// Username keys claimed more than once: by two claimants, or by a claimant
/// and a stored user that keeps its name. Each maps to that stored user (its
/// snapshot index). `kept` are (snapshot index, name key); `claimant(i)` for
/// `i` in `0..n` is the name key claimant `i` wants, `None` to pass it over.
/// As before, a stored user counts once, and the last of two with one key
/// is the holder.
pub(super) fn contested<'k>(
    kept: &'k [(usize, String)],
    n: usize,
    claimant: impl Fn(usize) -> Option<&'k str>,
) -> HashMap<&'k str, Option<usize>> {
    assert!(n + kept.len() < NONE as usize, "fewer than 4 billion claims");
    let text = |at: u32| -> &'k str {
        match kept.get(at as usize) {
            Some((_, k)) => k,
            None => claimant(at as usize - kept.len()).expect("a counted claimant names a key"),
        }
    };
    let mut table: HashTable<Claim> = HashTable::with_capacity(n + kept.len());
    let names = kept.iter().map(|(i, k)| (Some(*i), k.as_str()));
    let claims = (0..n).map(|ci| (None, claimant(ci)));
    for (at, (stored, k)) in names.map(|(s, k)| (s, Some(k))).chain(claims).enumerate() {
        let Some(k) = k else { continue };
        let c = match table.entry(hash(k), |c| text(c.at) == k, |c| hash(text(c.at))) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Claim { at: at as u32, n: 0, stored: NONE }).into_mut(),
        };
        match stored {
            Some(i) => c.stored = i as u32,
            None => c.n += 1,
        }
    }
    table
        .into_iter()
        .filter(|c| c.n as usize + usize::from(c.stored != NONE) > 1)
        .map(|c| (text(c.at), (c.stored != NONE).then_some(c.stored as usize)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_contested_by_two_claimants_or_a_claimant_and_a_kept_stored_user() {
        let kept = vec![(7, "held".to_string()), (8, "quiet".to_string())];
        let wants = ["new", "held", "twice", "twice", "skipped", "alone"];
        let got = contested(&kept, wants.len(), |i| (wants[i] != "skipped").then_some(wants[i]));
        let mut got: Vec<_> = got.into_iter().collect();
        got.sort();
        assert_eq!(got, [("held", Some(7)), ("twice", None)]);
    }

    #[test]
    fn a_claimant_skipped_does_not_count() {
        let wants = ["a", "a"];
        let got = contested(&[], 2, |i| (i == 0).then_some(wants[i]));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn stored_users_are_found_by_source_and_identity() {
        let mut snap = Snapshot::default();
        for (i, (s, e)) in [("a", "1"), ("b", "1"), ("a", "2")].into_iter().enumerate() {
            snap.users.push(crate::model::StoredUser {
                id: i as i64,
                source: s.into(),
                external_id: e.into(),
                username: format!("u{i}").into(),
                dn: "".into(),
                status: crate::model::Status::Active,
                missing_since: None,
                fields: Default::default(),
                dir_values: Default::default(),
                created_at: Default::default(),
                updated_at: Default::default(),
            });
        }
        let by = ByIdentity::new(&snap);
        assert_eq!([by.get("a", "1"), by.get("b", "1"), by.get("a", "2")], [Some(0), Some(1), Some(2)]);
        assert_eq!([by.get("b", "2"), by.get("a", "3"), by.get("", "a1")], [None, None, None]);
    }
}
