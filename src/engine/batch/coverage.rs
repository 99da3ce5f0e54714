//! Which mapped attributes the entries of one read actually carry. A field
//! mapped to an attribute no entry has (`email = "mial"`) fails nobody, so
//! it would stay silent forever: the read counts, per attribute, the user
//! entries that have it, and one warning per such attribute names the field,
//! the count and the closest attribute names the entries do have.

use std::collections::BTreeSet;

use crate::config::SourceConfig;
use crate::model::{EntryError, RawEntry, SourceBatch};

/// Attribute names kept for suggestions, at most (from the first entries).
const NAMES_KEPT: usize = 2_000;
/// Entries whose attribute names are kept for suggestions.
const ENTRIES_SAMPLED: u64 = 1_000;

/// Which mapped attributes some user entry carries. Only "none" matters,
/// so an attribute is no longer looked for once one entry had it, and an
/// entry costs nothing once every attribute was seen.
#[derive(Debug, Default)]
pub struct Coverage {
    /// (attribute, the fields that read it, seen on an entry).
    attrs: Vec<(String, Vec<String>, bool)>,
    /// How many attributes no entry has had yet.
    unseen: usize,
    entries: u64,
    /// Attribute names seen on the first entries (lower-case).
    seen: BTreeSet<String>,
}

impl Coverage {
    /// The attributes `cfg`'s fields read (templates' included).
    pub fn new(cfg: &SourceConfig) -> Coverage {
        let mut attrs: Vec<(String, Vec<String>, bool)> = Vec::new();
        for f in &cfg.fields {
            for a in f.attributes() {
                match attrs.iter_mut().find(|(x, _, _)| *x == a) {
                    Some((_, fields, _)) => fields.push(f.name.to_string()),
                    None => attrs.push((a, vec![f.name.to_string()], false)),
                }
            }
        }
        Coverage { unseen: attrs.len(), attrs, ..Coverage::default() }
    }

    /// One user entry, as the source returned it (before mapping).
    pub fn count(&mut self, entry: &RawEntry) {
        self.entries += 1;
        if self.unseen > 0 {
            for (a, _, seen) in self.attrs.iter_mut().filter(|(_, _, seen)| !*seen) {
                if entry.attrs.iter().any(|(name, values)| name == a && !values.is_empty()) {
                    *seen = true;
                    self.unseen -= 1;
                }
            }
        }
        if self.entries <= ENTRIES_SAMPLED && self.seen.len() < NAMES_KEPT {
            self.seen.extend(entry.attrs.iter().map(|(name, _)| name.clone()));
        }
    }

    /// Hands what was found over to the batch: the mapped attributes no
    /// user entry carried, and the names the first entries had.
    pub fn finish(self, batch: &mut SourceBatch) {
        if self.entries == 0 {
            return;
        }
        batch.unseen_attributes =
            self.attrs.into_iter().filter(|(_, _, seen)| !*seen).map(|(a, fields, _)| (a, fields)).collect();
        batch.attribute_names = self.seen;
    }
}

/// One warning per mapped attribute no user entry of a full read carried,
/// with the closest names the entries have.
pub fn notes(batch: &SourceBatch) -> Vec<EntryError> {
    let total = batch.user_entries;
    let plural = if total == 1 { "entry" } else { "entries" };
    batch
        .unseen_attributes
        .iter()
        .map(|(a, fields)| {
            let near = closest(a, &batch.attribute_names);
            let hint = match near.is_empty() {
                true => String::new(),
                false => format!("; the entries have {}", near.join(", ")),
            };
            EntryError::run_level(format!(
                "attribute {a} (field {}) was found on 0 of {total} user {plural}{hint}",
                fields.join(", ")
            ))
        })
        .collect()
}

/// The names in `seen` closest to `name` (edit distance at most a third of
/// its length, at least 1), best first, at most three.
pub fn closest<'a>(name: &str, seen: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1);
    let mut near: Vec<(usize, &String)> = seen
        .into_iter()
        .filter(|s| s.as_str() != name)
        .map(|s| (distance(&name.to_lowercase(), &s.to_lowercase()), s))
        .filter(|(d, _)| *d <= limit)
        .collect();
    near.sort();
    near.into_iter().take(3).map(|(_, s)| s.clone()).collect()
}

/// Edit distance by characters, a swap of two neighbours counting as one
/// edit (`mial` is one from `mail`); names are short.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_found_and_far_ones_are_not() {
        let seen: Vec<String> = ["mail", "cn", "employeenumber", "telephonenumber", "uid"].map(String::from).to_vec();
        assert_eq!(closest("mial", &seen), ["mail"]);
        assert_eq!(closest("employeenumbr", &seen), ["employeenumber"]);
        assert_eq!(closest("uidd", &seen), ["uid"]);
        assert!(closest("department", &seen).is_empty());
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
