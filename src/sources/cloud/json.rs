//! JSON objects from a cloud API turned into entry attributes: a mapped
//! field names a property or a dotted path (`onPremisesExtensionAttributes.extensionAttribute1`,
//! `organizations.0.department`), matched without regard to case, as entry
//! attribute names are.

use serde_json::Value;

use crate::model::{AttrValue, Facts, MemberRef, RawEntry};

/// The value at `path` (lower-case, dot-separated; a number indexes an
/// array), or `None`.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)).map(|(_, v)| v)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A value as entry text: strings as they are, numbers and booleans
/// written out; `None` for null, objects and nested arrays.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Adds the value at each of `paths` to `e` (an array gives one value per
/// element; empty strings and nulls give none).
pub fn push_paths<'a>(e: &mut RawEntry, v: &Value, paths: impl IntoIterator<Item = &'a String>) {
    for p in paths {
        match at(v, p) {
            Some(Value::Array(items)) => {
                for t in items.iter().filter_map(text).filter(|t| !t.is_empty()) {
                    e.push(p, AttrValue::Text(t));
                }
            }
            Some(x) => {
                if let Some(t) = text(x).filter(|t| !t.is_empty()) {
                    e.push(p, AttrValue::Text(t));
                }
            }
            None => {}
        }
    }
}

/// A user entry from an API object: its `id` the identity, the mapped
/// `paths` as attributes, `disabled` as the service says; messages name
/// `users/{id}` and the user's `name` (a UPN, an email).
pub fn user_entry(v: &Value, paths: &[String], disabled: Option<bool>, name: Option<&str>) -> Result<RawEntry, String> {
    let id = v["id"].as_str().filter(|s| !s.is_empty()).ok_or("an object without an \"id\"")?;
    let mut e = RawEntry::new(format!("users/{id}"));
    push_paths(&mut e, v, paths);
    let origin = match name {
        Some(n) => format!("users/{id} ({n})"),
        None => format!("users/{id}"),
    };
    e.facts = Facts { id: Some(Ok(id.to_string())), disabled, origin: Some(origin), ..Facts::default() };
    Ok(e)
}

/// A group entry: identity `id`, its name in `name_attribute` (the kind's
/// group name attribute), members by id.
pub fn group_entry(id: &str, name_attribute: &str, name: Option<&str>, members: Vec<MemberRef>) -> RawEntry {
    let mut e = RawEntry::new(format!("groups/{id}"));
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        e.push(name_attribute, AttrValue::Text(n.to_string()));
    }
    e.facts = Facts { id: Some(Ok(id.to_string())), members, origin: Some(format!("groups/{id}")), ..Facts::default() };
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_reach_nested_values_in_any_case() {
        let v: Value = serde_json::json!({
            "displayName": "Amy",
            "onPremisesExtensionAttributes": {"extensionAttribute1": "B-7"},
            "organizations": [{"department": "Maths"}],
            "businessPhones": ["1", "2"],
            "employeeId": null,
            "age": 12,
        });
        let mut e = RawEntry::new("x");
        let paths: Vec<String> = [
            "displayname",
            "onpremisesextensionattributes.extensionattribute1",
            "organizations.0.department",
            "businessphones",
            "employeeid",
            "organizations.1.department",
            "age",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        push_paths(&mut e, &v, &paths);
        let get =
            |n: &str| e.values(n).iter().map(|v| String::from_utf8(v.bytes().to_vec()).unwrap()).collect::<Vec<_>>();
        assert_eq!(get("displayname"), ["Amy"]);
        assert_eq!(get("onpremisesextensionattributes.extensionattribute1"), ["B-7"]);
        assert_eq!(get("organizations.0.department"), ["Maths"]);
        assert_eq!(get("businessphones"), ["1", "2"]);
        assert!(get("employeeid").is_empty());
        assert!(get("organizations.1.department").is_empty());
        assert_eq!(get("age"), ["12"]);
    }
}
