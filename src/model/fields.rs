//! A user's field values, packed: one sorted index of (shared field name,
//! end offset) and one string holding every value back to back. Two
//! allocations a user instead of one per value, and no spare capacity: at
//! 100,000 users a snapshot and a first sync's plan each hold 100,000 of
//! these (BENCHMARKS.md, issue 13).

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::Serialize;

/// A field name, shared by every user that has the field (100,000 users do
/// not hold 100,000 copies of "full_name").
pub type FieldName = Arc<str>;

/// Field values (core and custom), sorted by field name; at most one value
/// per name. Equal contents have equal representations, so the derived
/// comparisons and hash are by contents.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Fields {
    /// (name, end of its value in `text`), sorted by name.
    index: Box<[(FieldName, u32)]>,
    text: Box<str>,
}

impl Fields {
    /// Packs name/value pairs; for a name given twice the last value wins.
    pub fn from_pairs<S: AsRef<str>>(mut pairs: Vec<(FieldName, S)>) -> Fields {
        // A stable sort keeps the given order among equal names: the last wins.
        pairs.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut keep: Vec<(FieldName, S)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match keep.last_mut() {
                Some((last, lv)) if *last == k => *lv = v,
                _ => keep.push((k, v)),
            }
        }
        let mut text = String::with_capacity(keep.iter().map(|(_, v)| v.as_ref().len()).sum());
        let mut index = Vec::with_capacity(keep.len());
        for (k, v) in keep {
            text.push_str(v.as_ref());
            index.push((k, offset(text.len())));
        }
        Fields { index: index.into_boxed_slice(), text: text.into_boxed_str() }
    }

    fn span(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 { 0 } else { self.index[i - 1].1 as usize };
        (start, self.index[i].1 as usize)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let (s, e) = self.span(find(&self.index, name).ok()?);
        Some(&self.text[s..e])
    }

    /// Sets a value, replacing any previous one. Repacks: to build a whole
    /// set of values at once, [`Fields::from_pairs`] is cheaper.
    pub fn insert(&mut self, name: FieldName, value: String) {
        let mut index = std::mem::take(&mut self.index).into_vec();
        let mut text = String::from(std::mem::take(&mut self.text));
        let (at, old_len) = match find(&index, &name) {
            Ok(i) => {
                let start = if i == 0 { 0 } else { index[i - 1].1 as usize };
                let end = index[i].1 as usize;
                text.replace_range(start..end, &value);
                (i, end - start)
            }
            Err(i) => {
                let start = if i == 0 { 0 } else { index[i - 1].1 as usize };
                text.insert_str(start, &value);
                index.insert(i, (name, offset(start)));
                (i, 0)
            }
        };
        for (_, end) in &mut index[at..] {
            *end = offset(*end as usize + value.len() - old_len);
        }
        self.index = index.into_boxed_slice();
        self.text = text.into_boxed_str();
    }

    pub fn contains_key(&self, name: &str) -> bool {
        find(&self.index, name).is_ok()
    }

    /// (name, value) pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.index.len()).map(|i| {
            let (s, e) = self.span(i);
            (&*self.index[i].0, &self.text[s..e])
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

fn find(index: &[(FieldName, u32)], name: &str) -> Result<usize, usize> {
    index.binary_search_by(|(k, _)| (**k).cmp(name))
}

/// A value's end offset; values are bounded far below 4 GiB (a store row).
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a user's field values exceed 4 GiB")
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A mapped user's values in its source's field order (username left out),
/// packed like [`Fields`]; `None` where the attribute is absent (it clears
/// the field on update). The names are shared by every user of the source.
#[derive(Clone, PartialEq, Eq)]
pub struct MappedFields {
    names: Arc<[FieldName]>,
    /// End of each value in `text`; [`ABSENT`] set for `None`.
    ends: Box<[u32]>,
    text: Box<str>,
}

const ABSENT: u32 = 1 << 31;

impl MappedFields {
    /// One value per name, in the names' order.
    pub fn new<S: AsRef<str>>(names: Arc<[FieldName]>, values: &[Option<S>]) -> MappedFields {
        assert_eq!(names.len(), values.len(), "one value per field name");
        let mut text = String::with_capacity(values.iter().flatten().map(|v| v.as_ref().len()).sum());
        let mut ends = Vec::with_capacity(values.len());
        for v in values {
            match v {
                Some(v) => {
                    text.push_str(v.as_ref());
                    ends.push(offset(text.len()));
                }
                None => ends.push(offset(text.len()) | ABSENT),
            }
        }
        assert!(text.len() < ABSENT as usize, "a user's mapped values exceed 2 GiB");
        MappedFields { names, ends: ends.into_boxed_slice(), text: text.into_boxed_str() }
    }

    /// (name, value) pairs in the source's field order.
    pub fn iter(&self) -> impl Iterator<Item = (&FieldName, Option<&str>)> {
        self.names.iter().enumerate().map(|(i, name)| (name, self.value(i)))
    }

    fn value(&self, i: usize) -> Option<&str> {
        let end = self.ends[i];
        if end & ABSENT != 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { (self.ends[i - 1] & !ABSENT) as usize };
        Some(&self.text[start..end as usize])
    }

    /// The value of field `name`; `None` when absent or not mapped.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.names.iter().position(|n| &**n == name).and_then(|i| self.value(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl fmt::Debug for MappedFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (&**k, v))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(f: &Fields) -> Vec<(String, String)> {
        f.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn packed_values_read_back_sorted_by_name_and_the_last_of_a_name_wins() {
        let f = Fields::from_pairs(vec![
            ("office".into(), "B 12"),
            ("email".into(), "a@x"),
            ("full_name".into(), ""),
            ("email".into(), "b@x"),
        ]);
        assert_eq!(
            pairs(&f),
            [("email".into(), "b@x".into()), ("full_name".into(), String::new()), ("office".into(), "B 12".into())]
        );
        assert_eq!(f.get("office"), Some("B 12"));
        assert_eq!(f.get("full_name"), Some(""), "an empty value is a value");
        assert_eq!(f.get("card"), None);
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn mapped_values_keep_their_order_and_tell_absent_from_empty() {
        let names: Arc<[FieldName]> = vec!["full_name".into(), "email".into(), "office".into(), "card".into()].into();
        let f = MappedFields::new(names, &[Some("Zoë Doe"), None, Some(""), Some("42")]);
        let got: Vec<(&str, Option<&str>)> = f.iter().map(|(k, v)| (&**k, v)).collect();
        assert_eq!(got, [("full_name", Some("Zoë Doe")), ("email", None), ("office", Some("")), ("card", Some("42"))]);
        assert_eq!(f.get("card"), Some("42"));
        assert_eq!(f.get("email"), None);
        assert_eq!(f.get("nope"), None);
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn insert_replaces_or_adds_in_place_and_equals_the_same_values_packed_at_once() {
        let mut f = Fields::default();
        f.insert("m".into(), "middle".into());
        f.insert("a".into(), "first".into());
        f.insert("z".into(), "last".into());
        f.insert("m".into(), "é".into()); // shorter, multi-byte
        f.insert("a".into(), "a longer first value".into());
        assert_eq!(f.get("a"), Some("a longer first value"));
        assert_eq!(f.get("m"), Some("é"));
        assert_eq!(f.get("z"), Some("last"));
        let same =
            Fields::from_pairs(vec![("z".into(), "last"), ("a".into(), "a longer first value"), ("m".into(), "é")]);
        assert_eq!(f, same);
        let hash = |x: &Fields| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(x)
        };
        assert_eq!(hash(&f), hash(&same));
        assert_ne!(f, Fields::from_pairs(vec![("a".into(), "a longer first value"), ("m".into(), "é")]));
        assert_eq!(format!("{f:?}"), r#"{"a": "a longer first value", "m": "é", "z": "last"}"#);
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"a":"a longer first value","m":"é","z":"last"}"#);
    }
}
