//! Replays: a source whose API may hand out one object several times in one
//! read (Microsoft Graph's delta rounds say so in their documentation; a
//! Google listing that shifts while it is paged can too) says so with
//! [`Source::replays`](crate::kind::Source::replays). Its entries are then
//! versions of an object keyed by its identity, and the last one of the read
//! wins, whatever it is: a change, an entry that is skipped, or a removal.
//!
//! Other kinds' entries are directory entries: two with one identity are two
//! entries claiming it, and both are skipped (see [`super::Collector`]).

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

/// What the last version of an identity was.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    /// A mapped user, by its place in the batch's users.
    User(u32),
    /// A skipped entry, by its place in the batch's errors.
    Skipped(u32),
    /// A removal.
    Gone,
}

/// The versions seen so far in one read of a replaying source.
#[derive(Default)]
pub(super) struct Versions {
    at: HashMap<Arc<str>, Slot>,
    /// Users and errors that a later version replaced, taken out at the end.
    withdrawn_users: Vec<u32>,
    withdrawn_errors: Vec<u32>,
}

impl Versions {
    /// Records `now` as the last version of `id`; returns the one before.
    pub(super) fn record(&mut self, id: &Arc<str>, now: Slot) -> Option<Slot> {
        self.at.insert(id.clone(), now)
    }

    pub(super) fn withdraw_user(&mut self, i: u32) {
        self.withdrawn_users.push(i);
    }

    pub(super) fn withdraw_error(&mut self, i: u32) {
        self.withdrawn_errors.push(i);
    }

    /// The users and errors to keep: `false` at each withdrawn place.
    pub(super) fn keep(self, users: usize, errors: usize) -> (Vec<bool>, Vec<bool>) {
        let mut u = vec![true; users];
        let mut e = vec![true; errors];
        for i in self.withdrawn_users {
            u[i as usize] = false;
        }
        for i in self.withdrawn_errors {
            e[i as usize] = false;
        }
        (u, e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cfg, user};
    use super::super::Collector;
    use crate::model::{AttrValue, EntryKind, RawEntry};

    fn names(b: &crate::model::SourceBatch) -> Vec<&str> {
        b.users.iter().map(|u| u.username.as_str()).collect()
    }

    /// An entry with this identity that cannot be mapped (no username).
    fn broken(id: &str) -> RawEntry {
        let mut e = RawEntry::new(format!("cn={id},dc=t"));
        e.push("entryUUID", AttrValue::Text(id.into()));
        e
    }

    #[test]
    fn the_last_version_of_a_user_wins_and_counts_once() {
        let c = cfg("member");
        let mut col = Collector::replaying(&c);
        col.add(EntryKind::User, user("amy", "1"));
        col.add(EntryKind::User, user("bob", "2"));
        col.add(EntryKind::User, user("amy.new", "1"));
        let b = col.finish();
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        assert_eq!(names(&b), ["amy.new", "bob"]);
        assert_eq!(b.user_entries, 2, "two objects, not three entries");
        assert!(b.delta.is_none());
    }

    #[test]
    fn a_removal_after_a_version_withdraws_it_and_a_version_after_a_removal_cancels_it() {
        let c = cfg("member");
        let mut col = Collector::replaying(&c);
        col.add(EntryKind::User, user("amy", "1"));
        col.gone(EntryKind::User, "1".into());
        col.gone(EntryKind::User, "2".into());
        col.add(EntryKind::User, user("bob", "2"));
        let b = col.finish();
        assert_eq!(names(&b), ["bob"]);
        let d = b.delta.expect("removals reported");
        assert!(d.deleted_users.contains("1") && !d.deleted_users.contains("2"), "{:?}", d.deleted_users);
        assert_eq!(b.user_entries, 1);
    }

    #[test]
    fn a_skipped_version_replaces_a_good_one_and_a_good_one_clears_the_skip() {
        let c = cfg("member");
        let mut col = Collector::replaying(&c);
        col.add(EntryKind::User, user("amy", "1"));
        col.add(EntryKind::User, broken("1"));
        col.add(EntryKind::User, broken("2"));
        col.add(EntryKind::User, user("bob", "2"));
        let b = col.finish();
        assert_eq!(names(&b), ["bob"], "amy's last version is skipped");
        assert_eq!(b.errors.len(), 1, "only the last version's error stays: {:?}", b.errors);
        assert!(b.skipped_user_ids.contains("1") && !b.skipped_user_ids.contains("2"));
        assert!(b.saw_user("1"), "a skipped user is not a missing one");
    }

    #[test]
    fn without_replays_two_entries_with_one_identity_are_still_both_skipped() {
        let c = cfg("member");
        let mut col = Collector::new(&c);
        col.add(EntryKind::User, user("amy", "1"));
        col.add(EntryKind::User, user("amy.new", "1"));
        let b = col.finish();
        assert!(b.users.is_empty());
        assert_eq!(b.errors.len(), 2);
    }
}
