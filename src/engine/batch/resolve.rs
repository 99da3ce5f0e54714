//! Member resolution, the batch's last step: each group's member references
//! (interned DNs, usernames, external ids) become direct user and nested
//! group memberships by index; references to nothing in the batch are kept
//! for a delta to resolve against the store; a user's groups named by key
//! (AD's primary group) are added.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::{Keys, Member, Pending, Target};
use crate::model::SourceBatch;

/// The interned references, and how the source's members name users.
pub(super) struct Refs {
    pub dn_of: Vec<Arc<str>>,
    pub usernames: Keys,
    pub ids: Keys,
    pub by_username: bool,
}

/// What each interned key points at in the batch.
struct Targets {
    at_dn: Vec<Option<Target>>,
    at_name: Vec<Vec<u32>>,
    at_id: Vec<Option<Target>>,
}

fn targets(b: &SourceBatch, groups: &[Pending], user_dns: &[u32], k: &Refs) -> Targets {
    let mut t = Targets {
        at_dn: vec![None; k.dn_of.len()],
        at_name: vec![Vec::new(); k.usernames.0.len()],
        at_id: vec![None; k.ids.0.len()],
    };
    for (i, u) in b.users.iter().enumerate() {
        if k.by_username {
            // A name two entries claim resolves to both: the planner keeps at most one.
            if let Some(n) = k.usernames.get(u.username.key()) {
                t.at_name[n as usize].push(i as u32);
            }
        } else {
            t.at_dn[user_dns[i] as usize] = Some(Target::User(i as u32));
        }
        if let Some(n) = k.ids.get(&u.external_id) {
            t.at_id[n as usize] = Some(Target::User(i as u32));
        }
    }
    for (i, (_, dn_id, g, _)) in groups.iter().enumerate() {
        if let Some(n) = *dn_id {
            t.at_dn[n as usize] = Some(Target::Group(i as u32));
        }
        if let Some(n) = k.ids.get(&g.external_id) {
            t.at_id[n as usize] = Some(Target::Group(i as u32));
        }
    }
    t
}

/// Resolves every group's members into the batch (its groups, memberships
/// and unresolved references).
pub(super) fn members(b: &mut SourceBatch, groups: Vec<Pending>, user_dns: &[u32], k: Refs) {
    let t = targets(b, &groups, user_dns, &k);
    let name_of = k.usernames.into_by_id();
    let id_of = k.ids.into_by_id();
    // Sized once: at its peak the batch is whole and the snapshot is held.
    let mut user_groups = Vec::with_capacity(groups.iter().map(|(_, _, _, ms)| ms.len()).sum());
    let mut group_groups = Vec::new();
    let mut unresolved = Vec::new();
    let mut unresolved_ids = Vec::new();
    for (gi, (_, _, _, ms)) in groups.iter().enumerate() {
        let gi = gi as u32;
        for &m in ms {
            let target = match m {
                Member::Username(n) => {
                    match &t.at_name[n as usize] {
                        us if us.is_empty() => unresolved.push((gi, name_of[n as usize].to_string())),
                        us => user_groups.extend(us.iter().map(|&u| (u, gi))),
                    }
                    continue;
                }
                Member::Dn(n) => match t.at_dn[n as usize] {
                    Some(x) => x,
                    None => {
                        unresolved.push((gi, k.dn_of[n as usize].to_string()));
                        continue;
                    }
                },
                Member::Id(n) => match t.at_id[n as usize] {
                    Some(x) => x,
                    None => {
                        unresolved_ids.push((gi, id_of[n as usize].to_string()));
                        continue;
                    }
                },
            };
            match target {
                Target::User(u) => user_groups.push((u, gi)),
                Target::Group(child) if child != gi => group_groups.push((child, gi)),
                Target::Group(_) => {} // itself: ignored
            }
        }
    }
    b.groups = groups.into_iter().map(|(_, _, g, _)| g).collect();
    by_key(b, &mut user_groups);
    user_groups.sort_unstable();
    user_groups.dedup();
    group_groups.sort_unstable();
    group_groups.dedup();
    b.user_groups = user_groups;
    b.group_groups = group_groups;
    b.unresolved = unresolved;
    b.unresolved_ids = unresolved_ids;
}

/// A user's groups named by key (AD: its primary group, not in `member`).
fn by_key(b: &SourceBatch, user_groups: &mut Vec<(u32, u32)>) {
    let by_key: HashMap<&str, u32> =
        b.groups.iter().enumerate().flat_map(|(i, g)| g.keys.iter().map(move |k| (k.as_str(), i as u32))).collect();
    if by_key.is_empty() {
        return;
    }
    for (ui, u) in b.users.iter().enumerate() {
        user_groups.extend(u.member_of.iter().filter_map(|k| by_key.get(k.as_str())).map(|&gi| (ui as u32, gi)));
    }
}
