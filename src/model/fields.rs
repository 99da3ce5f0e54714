//! A user's field values, packed: the names come from a shared [`Layout`]
//! (one per source, or one per set of names read from the store) and the
//! values from one shared allocation holding each value's end offset and the
//! values back to back. Cloning is two reference-count bumps, so a plan's new
//! user shares its values with the mapped entry it came from. At 100,000 users
//! a snapshot and a first sync's plan each hold 100,000 of these
//! (BENCHMARKS.md).

use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::Serialize;

/// A field name, shared by every user that has the field (100,000 users do
/// not hold 100,000 copies of "full_name").
pub type FieldName = Arc<str>;

/// The names a set of values is laid out by, in the order the values are
/// stored (a source's field order, or sorted by name), with their sorted order.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    names: Box<[FieldName]>,
    /// Indices into `names`, sorted by name.
    sorted: Box<[u16]>,
}

impl Layout {
    /// A layout of distinct names, in the given order.
    pub fn new(names: Vec<FieldName>) -> Arc<Layout> {
        assert!(names.len() < u16::MAX as usize, "too many fields");
        let mut sorted: Vec<u16> = (0..names.len() as u16).collect();
        sorted.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        debug_assert!(sorted.windows(2).all(|w| names[w[0] as usize] != names[w[1] as usize]), "distinct names");
        Arc::new(Layout { names: names.into_boxed_slice(), sorted: sorted.into_boxed_slice() })
    }

    pub fn names(&self) -> &[FieldName] {
        &self.names
    }

    fn position(&self, name: &str) -> Option<usize> {
        let at = self.sorted.binary_search_by(|&i| (*self.names[i as usize]).cmp(name)).ok()?;
        Some(self.sorted[at] as usize)
    }
}

/// Set on an end offset: no value (the attribute was absent).
const ABSENT: u32 = 1 << 31;

/// Values laid out by `layout`: `data` holds one little-endian `u32` end
/// offset per name ([`ABSENT`] set for none), then the values' UTF-8 text.
#[derive(Clone)]
struct Packed {
    layout: Arc<Layout>,
    data: Arc<[u8]>,
}

impl Packed {
    fn new<S: AsRef<str>>(layout: Arc<Layout>, values: impl ExactSizeIterator<Item = Option<S>>) -> Packed {
        let n = layout.names.len();
        assert_eq!(n, values.len(), "one value per field name");
        let mut data = vec![0u8; 4 * n];
        for (i, v) in values.enumerate() {
            let end = match v {
                Some(v) => {
                    data.extend_from_slice(v.as_ref().as_bytes());
                    offset(data.len() - 4 * n)
                }
                None => offset(data.len() - 4 * n) | ABSENT,
            };
            data[4 * i..4 * i + 4].copy_from_slice(&end.to_le_bytes());
        }
        Packed { layout, data: data.into() }
    }

    fn end(&self, i: usize) -> u32 {
        u32::from_le_bytes(self.data[4 * i..4 * i + 4].try_into().expect("four bytes"))
    }

    fn value(&self, i: usize) -> Option<&str> {
        let end = self.end(i);
        if end & ABSENT != 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.end(i - 1) & !ABSENT };
        let base = 4 * self.layout.names.len();
        let bytes = &self.data[base + start as usize..base + end as usize];
        Some(std::str::from_utf8(bytes).expect("packed from str values"))
    }

    /// Present (name, value) pairs, sorted by name.
    fn sorted(&self) -> impl Iterator<Item = (&FieldName, &str)> {
        self.layout.sorted.iter().filter_map(|&i| Some((&self.layout.names[i as usize], self.value(i as usize)?)))
    }

    /// The same layout with only the values `keep` accepts (a copy unless all are kept).
    fn filtered(&self, keep: impl Fn(usize) -> bool) -> Packed {
        let n = self.layout.names.len();
        if (0..n).all(|i| keep(i) || self.value(i).is_none()) {
            return self.clone();
        }
        Packed::new(self.layout.clone(), (0..n).map(|i| if keep(i) { self.value(i) } else { None }))
    }
}

/// Field values (core and custom) by name, at most one value per name,
/// listed sorted by name. Comparisons and hash are by contents.
#[derive(Clone, Default)]
pub struct Fields(Option<Packed>);

thread_local! {
    /// Recently used sorted layouts, most recent first: users read from the
    /// store mostly have the same set of names, and share one layout.
    static SORTED_LAYOUTS: RefCell<Vec<Arc<Layout>>> = const { RefCell::new(Vec::new()) };
}

/// The shared sorted layout of `names` (sorted, distinct).
fn sorted_layout(names: &[&FieldName]) -> Arc<Layout> {
    SORTED_LAYOUTS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let same = |l: &Arc<Layout>| l.names.len() == names.len() && l.names.iter().zip(names).all(|(a, b)| a == *b);
        if let Some(at) = cache.iter().position(same) {
            let l = cache.remove(at);
            cache.insert(0, l.clone());
            return l;
        }
        let l = Layout::new(names.iter().map(|n| (*n).clone()).collect());
        cache.insert(0, l.clone());
        cache.truncate(16);
        l
    })
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
        if keep.is_empty() {
            return Fields::default();
        }
        let layout = sorted_layout(&keep.iter().map(|(k, _)| k).collect::<Vec<_>>());
        Fields(Some(Packed::new(layout, keep.iter().map(|(_, v)| Some(v.as_ref())))))
    }

    /// A mapped entry's values that `keep` accepts (by index in its source's
    /// field order), sharing its allocation when every value is kept.
    pub fn from_mapped(m: &MappedFields, keep: impl Fn(usize) -> bool) -> Fields {
        let p = m.0.filtered(keep);
        match (0..p.layout.names.len()).any(|i| p.value(i).is_some()) {
            true => Fields(Some(p)),
            false => Fields::default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let p = self.0.as_ref()?;
        p.value(p.layout.position(name)?)
    }

    /// Sets a value, replacing any previous one. Repacks: to build a whole
    /// set of values at once, [`Fields::from_pairs`] is cheaper.
    pub fn insert(&mut self, name: FieldName, value: String) {
        let mut pairs: Vec<(FieldName, &str)> = self.iter_shared().collect();
        pairs.push((name, &value));
        *self = Fields::from_pairs(pairs);
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// (name, value) pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|p| p.sorted().map(|(k, v)| (&**k, v)))
    }

    /// The same with the shared names.
    fn iter_shared(&self) -> impl Iterator<Item = (FieldName, &str)> {
        self.0.iter().flat_map(|p| p.sorted().map(|(k, v)| (k.clone(), v)))
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        if let (Some(a), Some(b)) = (&self.0, &other.0) {
            // One layout: equal values are equal bytes.
            if Arc::ptr_eq(&a.layout, &b.layout) {
                return a.data == b.data;
            }
        }
        self.iter().eq(other.iter())
    }
}

impl Eq for Fields {}

impl Hash for Fields {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for (k, v) in self.iter() {
            k.hash(h);
            v.hash(h);
        }
        h.write_u8(0xff);
    }
}

/// A value's end offset; values are bounded far below 2 GiB (a store row).
fn offset(n: usize) -> u32 {
    match u32::try_from(n) {
        Ok(n) if n < ABSENT => n,
        _ => panic!("a user's field values exceed 2 GiB"),
    }
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
/// packed like [`Fields`] and by the source's [`Layout`]; `None` where the
/// attribute is absent (it clears the field on update).
#[derive(Clone)]
pub struct MappedFields(Packed);

impl MappedFields {
    /// One value per name, in the layout's order.
    pub fn new<S: AsRef<str>>(layout: Arc<Layout>, values: &[Option<S>]) -> MappedFields {
        MappedFields(Packed::new(layout, values.iter().map(|v| v.as_ref().map(|s| s.as_ref()))))
    }

    /// (name, value) pairs in the source's field order.
    pub fn iter(&self) -> impl Iterator<Item = (&FieldName, Option<&str>)> {
        self.0.layout.names.iter().enumerate().map(|(i, name)| (name, self.0.value(i)))
    }

    /// The value of field `name`; `None` when absent or not mapped.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.value(self.0.layout.position(name)?)
    }

    pub fn len(&self) -> usize {
        self.0.layout.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for MappedFields {
    fn eq(&self, other: &MappedFields) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for MappedFields {}

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
        let names = Layout::new(vec!["full_name".into(), "email".into(), "office".into(), "card".into()]);
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

    #[test]
    fn a_new_users_values_share_the_mapped_entrys_allocation_when_all_are_kept() {
        let layout = Layout::new(vec!["office".into(), "email".into(), "card".into()]);
        let m = MappedFields::new(layout, &[Some("B 12"), None, Some("42")]);
        let all = Fields::from_mapped(&m, |_| true);
        let (Some(a), Some(b)) = (&all.0, Some(&m.0)) else { panic!("values") };
        assert!(Arc::ptr_eq(&a.data, &b.data), "no copy when every value is kept");
        assert_eq!(pairs(&all), [("card".into(), "42".into()), ("office".into(), "B 12".into())]);
        assert_eq!(all.len(), 2, "an absent value is not a value");
        let some = Fields::from_mapped(&m, |i| i != 2);
        assert_eq!(pairs(&some), [("office".into(), "B 12".into())]);
        assert!(Fields::from_mapped(&m, |i| i == 1).is_empty(), "only an absent value kept");
        assert_eq!(Fields::from_mapped(&m, |i| i == 1), Fields::default());
    }

    #[test]
    fn fields_of_different_layouts_compare_and_hash_by_contents() {
        let layout = Layout::new(vec!["office".into(), "email".into(), "card".into()]);
        let mapped = Fields::from_mapped(&MappedFields::new(layout, &[Some("B 12"), None, Some("42")]), |_| true);
        let read = Fields::from_pairs(vec![("office".into(), "B 12"), ("card".into(), "42")]);
        assert_eq!(mapped, read);
        let hash = |x: &Fields| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(x)
        };
        assert_eq!(hash(&mapped), hash(&read));
        let other = Fields::from_pairs(vec![("office".into(), "B 1"), ("card".into(), "242")]);
        assert_ne!(mapped, other, "the same text split otherwise is another value");
        assert_ne!(hash(&mapped), hash(&other));
        // Values read from the store with the same names share one layout.
        let again = Fields::from_pairs(vec![("card".into(), "7"), ("office".into(), "A")]);
        let (Some(a), Some(b)) = (&read.0, &again.0) else { panic!("values") };
        assert!(Arc::ptr_eq(&a.layout, &b.layout));
    }
}
