//! How a user row is laid out in every backend: the six core fields in
//! columns of their own, other fields and the directory's values as JSON
//! objects of strings, and names shared across a snapshot's rows; a user's
//! groups as both backends answer them, and LIKE patterns.

use std::collections::HashMap;

use crate::model::{name_key, FieldName, Fields, NewUser, CORE_FIELDS};
use crate::store::UserGroups;

/// The columns a backend reads a user with, in this order (the core fields
/// are columns 6 to 11).
pub(crate) const USER_COLUMNS: &str = "id, source, external_id, username, dn, status, full_name, email, department, office, card_number, card_number2, fields, created_at, updated_at, missing_since, dir_values";

/// Shares field names and source names between the users of one snapshot.
#[derive(Default)]
pub(crate) struct Interner(HashMap<String, FieldName>);

impl Interner {
    pub(crate) fn get(&mut self, name: &str) -> FieldName {
        if let Some(n) = self.0.get(name) {
            return n.clone();
        }
        let n: FieldName = name.into();
        self.0.insert(name.to_string(), n.clone());
        n
    }
}

/// A JSON object of strings (custom fields, directory values); anything
/// else in it is ignored.
pub(crate) fn json_object(text: &str, names: &mut Interner) -> Vec<(FieldName, String)> {
    if text == "{}" {
        return Vec::new();
    }
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str(text) else { return Vec::new() };
    m.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((names.get(&k), s)),
            _ => None,
        })
        .collect()
}

/// The core fields' values (in [`CORE_FIELDS`] order) and the others as a
/// JSON object.
pub(crate) fn split_fields(fields: &Fields) -> ([Option<&str>; 6], String) {
    let mut core = [None; 6];
    let mut custom = serde_json::Map::new();
    for (k, v) in fields.iter() {
        match CORE_FIELDS.iter().position(|c| *c == k) {
            Some(i) => core[i] = Some(v),
            None => {
                custom.insert(k.to_string(), serde_json::Value::String(v.to_string()));
            }
        }
    }
    (core, serde_json::Value::Object(custom).to_string())
}

/// What a `create` audit row says: the created fields, as JSON.
pub(crate) fn created_summary(u: &NewUser) -> String {
    serde_json::to_string(&u.fields).unwrap_or_default()
}

/// Adds one group a user is in, directly or through nesting.
pub(crate) fn add_group(g: &mut UserGroups, name: String, direct: bool) {
    if direct {
        g.direct.push(name.clone());
    }
    g.all.push(name);
}

/// Sorts a user's groups as names compare, without repeats.
pub(crate) fn tidy(g: &mut UserGroups) {
    for v in [&mut g.direct, &mut g.all] {
        v.sort_by_key(|n| name_key(n));
        v.dedup();
    }
}

/// `p` with LIKE's wildcards escaped (`!` is the escape character).
pub(crate) fn like_escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// A before-image's fields from a row's core columns and its JSON of others.
pub(crate) fn image_fields(core: [Option<String>; 6], custom: &str) -> std::collections::BTreeMap<String, String> {
    let mut out: std::collections::BTreeMap<String, String> =
        CORE_FIELDS.iter().zip(core).filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect();
    out.extend(json_map(custom));
    out
}

/// A JSON object of strings as a map.
pub(crate) fn json_map(text: &str) -> std::collections::BTreeMap<String, String> {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str(text) else { return Default::default() };
    m.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

/// A before-image's fields as a row stores them: the core columns' values,
/// the other fields' JSON, the directory values' JSON.
pub(crate) fn image_columns(u: &crate::model::images::UserImage) -> ([Option<&str>; 6], String, String) {
    let mut core = [None; 6];
    let mut custom = serde_json::Map::new();
    for (k, v) in &u.fields {
        match CORE_FIELDS.iter().position(|c| c == k) {
            Some(i) => core[i] = Some(v.as_str()),
            None => {
                custom.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
        }
    }
    let dir = serde_json::to_string(&u.dir_values).unwrap_or_else(|_| "{}".into());
    (core, serde_json::Value::Object(custom).to_string(), dir)
}
