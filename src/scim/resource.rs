//! SCIM resources as JSON: what a POST or PUT body keeps (read-only
//! attributes dropped, identity providers' spellings made plain), the values
//! an attribute path selects (`emails[primary eq true].value`), PATCH
//! operations applied with and without `path` (RFC 7644 §3.5.2, with the
//! idioms Entra ID and Okta send), and `attributes`/`excludedAttributes`.

use serde_json::{Map, Value};

use super::discovery::{ScimError, ENTERPRISE, GROUP, USER};
pub use super::filter::get_ci;
use super::filter::{AttrPath, Filter, PatchPath};

/// Which resource a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    fn core(self) -> &'static str {
        match self {
            Kind::User => USER,
            Kind::Group => GROUP,
        }
    }

    /// The core schema's attribute names (lower-case).
    fn known(self) -> &'static [&'static str] {
        match self {
            Kind::User => &[
                "username",
                "name",
                "displayname",
                "nickname",
                "profileurl",
                "title",
                "usertype",
                "preferredlanguage",
                "locale",
                "timezone",
                "active",
                "password",
                "emails",
                "phonenumbers",
                "ims",
                "photos",
                "addresses",
                "groups",
                "entitlements",
                "roles",
                "x509certificates",
                "externalid",
                "id",
                "meta",
                "schemas",
            ],
            Kind::Group => &["displayname", "members", "externalid", "id", "meta", "schemas"],
        }
    }
}

/// Attributes a client may send but the service sets (or never keeps):
/// ignored in POST, PUT and PATCH bodies, never an error.
const READ_ONLY: &[&str] = &["id", "meta", "groups", "password"];

/// Attributes whose values are compared with case (RFC 7643: `id`,
/// `externalId`, `meta.version`, references).
pub fn case_exact(a: &AttrPath) -> bool {
    let n = a.name.to_ascii_lowercase();
    matches!(n.as_str(), "id" | "externalid" | "$ref")
        || (n == "members" && a.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("value")))
}

/// Whether a sub-attribute of `parent`'s values compares with case (in a
/// value filter, `members[value eq "…"]`, paths are relative to the values).
fn item_exact(parent: &str) -> impl Fn(&AttrPath) -> bool + '_ {
    move |a: &AttrPath| {
        let within = AttrPath { uri: None, name: parent.to_string(), sub: Some(a.name.clone()) };
        case_exact(a) || case_exact(&within)
    }
}

/// A POST or PUT body as kept: read-only attributes and `schemas` dropped,
/// `"True"`/`"False"` strings of boolean attributes made booleans, dotted
/// and URN-qualified keys put in their place. `Err` names what is wrong.
pub fn clean_body(kind: Kind, body: &Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::new(400, Some("invalidSyntax"), "the body must be a JSON object"));
    };
    let mut out = Value::Object(Map::new());
    for (k, v) in &flatten_core(kind, obj) {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = key_path(kind, k)?;
        if path.as_ref().is_some_and(is_read_only) {
            continue;
        }
        if let Some(p) = path {
            set(&mut out, &p, v.clone(), false)?;
        }
    }
    let Value::Object(mut map) = out else { unreachable!("an object") };
    normalize(&mut map);
    refuse_nul(&Value::Object(map.clone()))?;
    Ok(map)
}

/// A NUL character in any name or value is refused (`invalidValue`): no
/// directory or store keeps one.
pub fn refuse_nul(v: &Value) -> Result<(), ScimError> {
    let bad = match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => return a.iter().try_for_each(refuse_nul),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                true
            } else {
                return o.values().try_for_each(refuse_nul);
            }
        }
        _ => false,
    };
    match bad {
        true => Err(ScimError::new(400, Some("invalidValue"), "a value holds a NUL character")),
        false => Ok(()),
    }
}

/// An object's members, those under the core schema's URN (`{"urn:…:core:2.0:User":
/// {"userName": …}}`) taken out to the top.
fn flatten_core(kind: Kind, obj: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        match v {
            Value::Object(inner) if k.eq_ignore_ascii_case(kind.core()) => {
                out.extend(inner.iter().map(|(k, v)| (k.clone(), v.clone())))
            }
            v => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// A top-level key of a body or a path-less PATCH value as a path:
/// `name.givenName`, `urn:…:User:department`, or a whole extension (`None`
/// path parts under an unknown URN are kept as they are).
fn key_path(kind: Kind, key: &str) -> Result<Option<PatchPath>, ScimError> {
    if key.to_ascii_lowercase().starts_with("urn:") && is_schema_urn(key) {
        // A whole extension object: kept under its URN.
        return Ok(Some(PatchPath {
            attr: AttrPath { uri: None, name: key.to_string(), sub: None },
            filter: None,
            sub: None,
        }));
    }
    let p = PatchPath::parse(key).map_err(|e| ScimError::new(400, Some("invalidPath"), format!("\"{key}\": {e}")))?;
    check_known(kind, &p)?;
    Ok(Some(p))
}

/// Whether `urn` names a schema (an extension) rather than an attribute in one.
fn is_schema_urn(urn: &str) -> bool {
    let l = urn.to_ascii_lowercase();
    let core = l == USER.to_ascii_lowercase() || l == GROUP.to_ascii_lowercase();
    !core && (l == ENTERPRISE.to_ascii_lowercase() || l.ends_with(":user") || l.ends_with(":group"))
}

/// An attribute of the core schema must be one it defines (`invalidPath`);
/// attributes of extensions are kept whatever their names.
fn check_known(kind: Kind, p: &PatchPath) -> Result<(), ScimError> {
    let core = match &p.attr.uri {
        None => true,
        Some(u) => u.eq_ignore_ascii_case(kind.core()),
    };
    if core && !kind.known().contains(&p.attr.name.to_ascii_lowercase().as_str()) {
        return Err(ScimError::new(
            400,
            Some("invalidPath"),
            format!("\"{}\" is not an attribute of a {}", p.attr.name, kind.as_str()),
        ));
    }
    Ok(())
}

/// A read-only attribute, named plainly or under the core schema's URN
/// (`urn:…:core:2.0:User:password`).
fn is_read_only(p: &PatchPath) -> bool {
    let core = match &p.attr.uri {
        None => true,
        Some(u) => u.eq_ignore_ascii_case(USER) || u.eq_ignore_ascii_case(GROUP),
    };
    core && READ_ONLY.iter().any(|r| p.attr.name.eq_ignore_ascii_case(r))
}

/// The values `path` selects in `resource`: `userName`, `name.formatted`,
/// `emails[primary eq true].value`, `urn:…:User:department`.
pub fn select<'a>(resource: &'a Value, path: &PatchPath) -> Vec<&'a Value> {
    let Some(top) = scope(resource, &path.attr).and_then(|s| get_ci(s, &path.attr.name)) else { return Vec::new() };
    let mut vals: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    if let Some(f) = &path.filter {
        vals.retain(|v| f.matches(v, &item_exact(&path.attr.name)));
    }
    match path.sub.as_deref().or(path.attr.sub.as_deref()) {
        Some(sub) => vals.into_iter().filter_map(|v| get_ci(v, sub)).collect(),
        None => vals,
    }
}

/// The text of what `path` selects: strings as they are, numbers and
/// booleans written out; empty strings and nulls give nothing.
pub fn texts(resource: &Value, path: &PatchPath) -> Vec<String> {
    select(resource, path)
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        })
        .filter_map(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect()
}

/// The object an attribute lives in: the resource, or its extension's object.
fn scope<'a>(resource: &'a Value, attr: &AttrPath) -> Option<&'a Value> {
    match &attr.uri {
        None => Some(resource),
        Some(u) if u.eq_ignore_ascii_case(USER) || u.eq_ignore_ascii_case(GROUP) => Some(resource),
        Some(u) => get_ci(resource, u),
    }
}

fn scope_mut<'a>(resource: &'a mut Value, attr: &AttrPath) -> &'a mut Value {
    match &attr.uri {
        None => resource,
        Some(u) if u.eq_ignore_ascii_case(USER) || u.eq_ignore_ascii_case(GROUP) => resource,
        Some(u) => entry_ci(resource, u),
    }
}

/// The member `name` of object `v` (made an object if it is not), created
/// as `{}` when absent; an existing member keeps its spelling.
fn entry_ci<'a>(v: &'a mut Value, name: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let obj = v.as_object_mut().expect("an object");
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned().unwrap_or_else(|| name.to_string());
    obj.entry(key).or_insert_with(|| Value::Object(Map::new()))
}

fn remove_ci(v: &mut Value, name: &str) {
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| !k.eq_ignore_ascii_case(name));
    }
}

/// Applies a PATCH request's body (`PatchOp`) to `resource`.
pub fn apply_patch(kind: Kind, resource: &mut Value, body: &Value) -> Result<(), ScimError> {
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::new(400, Some("invalidSyntax"), "a PATCH body must have \"Operations\", an array"))?;
    for op in ops {
        apply_op(kind, resource, op)?;
    }
    if let Value::Object(map) = resource {
        normalize(map);
    }
    refuse_nul(resource)
}

fn apply_op(kind: Kind, resource: &mut Value, op: &Value) -> Result<(), ScimError> {
    let name = get_ci(op, "op").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let value = get_ci(op, "value").cloned();
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err(ScimError::new(400, Some("invalidPath"), "\"path\" must be a string")),
    };
    let bad_op = || {
        ScimError::new(400, Some("invalidSyntax"), format!("unknown op \"{name}\" (expected add, replace or remove)"))
    };
    if !matches!(name.as_str(), "add" | "replace" | "remove") {
        return Err(bad_op());
    }
    let Some(path) = path else {
        if name == "remove" {
            return Err(ScimError::new(400, Some("noTarget"), "a remove needs a \"path\""));
        }
        let Some(Value::Object(obj)) = value else {
            return Err(ScimError::new(
                400,
                Some("invalidValue"),
                "an operation without \"path\" needs an object value",
            ));
        };
        for (k, v) in &flatten_core(kind, &obj) {
            if k.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if let Some(p) = key_path(kind, k)? {
                if !is_read_only(&p) {
                    set(resource, &p, v.clone(), name == "add")?;
                }
            }
        }
        return Ok(());
    };
    let Some(p) = key_path(kind, path)? else { return Ok(()) };
    if is_read_only(&p) {
        return Ok(());
    }
    match name.as_str() {
        "remove" => {
            remove(resource, &p, value.as_ref());
            Ok(())
        }
        _ => {
            let v =
                value.ok_or_else(|| ScimError::new(400, Some("invalidValue"), format!("\"{path}\": no \"value\"")))?;
            set(resource, &p, v, name == "add")
        }
    }
}

/// Sets (replace) or adds to (add: multi-valued attributes gain values) what
/// `p` names.
fn set(resource: &mut Value, p: &PatchPath, v: Value, add: bool) -> Result<(), ScimError> {
    let scope = scope_mut(resource, &p.attr);
    let sub = p.sub.as_deref().or(p.attr.sub.as_deref());
    let Some(filter) = &p.filter else {
        if v.is_null() {
            match sub {
                Some(s) => remove_ci(entry_ci(scope, &p.attr.name), s),
                None => remove_ci(scope, &p.attr.name),
            }
            return Ok(());
        }
        let slot = entry_ci(scope, &p.attr.name);
        match sub {
            Some(s) => match slot {
                Value::Array(items) => items.iter_mut().for_each(|i| *entry_ci(i, s) = v.clone()),
                _ => *entry_ci(slot, s) = v,
            },
            None => merge_into(slot, v, add),
        }
        return Ok(());
    };
    let slot = entry_ci(scope, &p.attr.name);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let items = slot.as_array_mut().expect("an array");
    let mut hit = false;
    for item in items.iter_mut().filter(|i| filter.matches(i, &item_exact(&p.attr.name))) {
        hit = true;
        match sub {
            Some(s) => *entry_ci(item, s) = v.clone(),
            None => merge_into(item, v.clone(), false),
        }
    }
    if !hit {
        // `emails[type eq "work"].value` with no work email yet: one is made
        // from the filter's equality (Entra ID's way of adding it).
        let Some((attr, lit)) = filter.simple_eq() else {
            return Err(ScimError::new(
                400,
                Some("noTarget"),
                format!("no value of \"{}\" matches the filter", p.attr.name),
            ));
        };
        let mut item = Value::Object(Map::new());
        *entry_ci(&mut item, &attr.name) = Value::String(lit.to_string());
        match sub {
            Some(s) => *entry_ci(&mut item, s) = v,
            None => merge_into(&mut item, v, false),
        }
        items.push(item);
    }
    Ok(())
}

/// `v` into `slot`: arrays gain the values they lack (add) or are replaced;
/// objects are merged member by member; anything else is replaced.
fn merge_into(slot: &mut Value, v: Value, add: bool) {
    match (slot, v) {
        (Value::Array(items), Value::Array(new)) if add => {
            for n in new {
                if !items.iter().any(|i| same_value(i, &n)) {
                    items.push(n);
                }
            }
        }
        (Value::Array(items), n @ Value::Object(_)) if add => {
            if !items.iter().any(|i| same_value(i, &n)) {
                items.push(n);
            }
        }
        (slot @ Value::Object(_), Value::Object(new)) => {
            for (k, v) in new {
                let e = entry_ci(slot, &k);
                *e = v;
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Two values of a multi-valued attribute are one when their `value`s are
/// equal (members, emails), or when they are equal as a whole.
fn same_value(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Removes what `p` names; a `value` with a path to a multi-valued
/// attribute removes those values (Entra ID removes members this way).
fn remove(resource: &mut Value, p: &PatchPath, value: Option<&Value>) {
    let scope = scope_mut(resource, &p.attr);
    let sub = p.sub.as_deref().or(p.attr.sub.as_deref());
    match (&p.filter, sub) {
        (None, None) => match value.filter(|v| !v.is_null()) {
            Some(v) => {
                if let Some(Value::Array(items)) = get_mut_ci(scope, &p.attr.name) {
                    let gone: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        v => vec![v],
                    };
                    items.retain(|i| !gone.iter().any(|g| same_value(i, g)));
                }
            }
            None => remove_ci(scope, &p.attr.name),
        },
        (None, Some(s)) => match get_mut_ci(scope, &p.attr.name) {
            Some(Value::Array(items)) => items.iter_mut().for_each(|i| remove_ci(i, s)),
            Some(slot) => remove_ci(slot, s),
            None => {}
        },
        (Some(f), sub) => {
            if let Some(Value::Array(items)) = get_mut_ci(scope, &p.attr.name) {
                match sub {
                    Some(s) => items
                        .iter_mut()
                        .filter(|i| f.matches(i, &item_exact(&p.attr.name)))
                        .for_each(|i| remove_ci(i, s)),
                    None => items.retain(|i| !f.matches(i, &item_exact(&p.attr.name))),
                }
            }
        }
    }
}

fn get_mut_ci<'a>(v: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    v.as_object_mut()?.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// `"True"`/`"False"` (Entra ID's strings) made booleans where the schema
/// has a boolean: `active`, and `primary` of multi-valued attributes.
fn normalize(map: &mut Map<String, Value>) {
    let as_bool = |v: &mut Value| {
        if let Value::String(s) = v {
            if s.eq_ignore_ascii_case("true") {
                *v = Value::Bool(true);
            } else if s.eq_ignore_ascii_case("false") {
                *v = Value::Bool(false);
            }
        }
    };
    for (k, v) in map.iter_mut() {
        if k.eq_ignore_ascii_case("active") {
            as_bool(v);
        }
        if let Value::Array(items) = v {
            for i in items.iter_mut().filter_map(Value::as_object_mut) {
                for (sk, sv) in i.iter_mut() {
                    if sk.eq_ignore_ascii_case("primary") {
                        as_bool(sv);
                    }
                }
            }
        }
    }
}

/// Whether the resource is active: `active` absent counts as true.
pub fn is_active(resource: &Value) -> bool {
    !matches!(get_ci(resource, "active"), Some(Value::Bool(false)))
}

/// `attributes` / `excludedAttributes` (comma-separated paths) applied to a
/// resource about to be returned; `id`, `schemas` and `meta` always stay.
pub fn project(resource: &mut Value, attributes: Option<&str>, excluded: Option<&str>) {
    let names = |s: &str| -> Vec<AttrPath> {
        s.split(',').filter_map(|p| PatchPath::parse(p.trim()).ok()).map(|p| p.attr).collect()
    };
    let Value::Object(obj) = resource else { return };
    let keep_always = |k: &str| ["id", "schemas", "meta"].iter().any(|a| a.eq_ignore_ascii_case(k));
    if let Some(a) = attributes.filter(|a| !a.trim().is_empty()) {
        let wanted = names(a);
        obj.retain(|k, v| {
            if keep_always(k) {
                return true;
            }
            let mine: Vec<&AttrPath> = wanted
                .iter()
                .filter(|w| match &w.uri {
                    None => w.name.eq_ignore_ascii_case(k),
                    Some(u) => u.eq_ignore_ascii_case(k) || (w.name.eq_ignore_ascii_case(k) && !is_schema_urn(u)),
                })
                .collect();
            if mine.is_empty() {
                return false;
            }
            if mine.iter().all(|w| w.sub.is_some() && w.uri.is_none()) {
                if let Value::Object(inner) = v {
                    inner.retain(|sk, _| {
                        mine.iter().any(|w| w.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(sk)))
                    });
                }
            }
            true
        });
    }
    if let Some(e) = excluded {
        for w in names(e) {
            if keep_always(&w.name) {
                continue;
            }
            let scope = match &w.uri {
                Some(u) if !u.eq_ignore_ascii_case(USER) && !u.eq_ignore_ascii_case(GROUP) => {
                    obj.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(u)).and_then(|(_, v)| v.as_object_mut())
                }
                _ => Some(&mut *obj),
            };
            if let Some(scope) = scope {
                match &w.sub {
                    None => scope.retain(|k, _| !k.eq_ignore_ascii_case(&w.name)),
                    Some(s) => {
                        if let Some(Value::Object(inner)) =
                            scope.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&w.name)).map(|(_, v)| v)
                        {
                            inner.retain(|k, _| !k.eq_ignore_ascii_case(s));
                        }
                    }
                }
            }
        }
    }
}

/// The literal of a filter's `attr eq "value"` on a known attribute, for
/// the store's indexed lookups.
pub fn indexed_eq(f: &Filter) -> Option<(&'static str, &str)> {
    let (a, v) = f.simple_eq()?;
    if a.sub.is_some()
        || a.uri.as_deref().is_some_and(|u| !u.eq_ignore_ascii_case(USER) && !u.eq_ignore_ascii_case(GROUP))
    {
        return None;
    }
    let key = match a.name.to_ascii_lowercase().as_str() {
        "id" => "id",
        "username" => "userName",
        "externalid" => "externalId",
        "displayname" => "displayName",
        _ => return None,
    };
    Some((key, v))
}
