//! Mapping & validation: turns one raw directory entry into a [`MappedUser`]
//! or [`MappedGroup`] per the source's field specs (attribute or template,
//! transforms, default), then validates the values. An invalid required value
//! skips the entry with its DN and the reason; an invalid optional value is
//! dropped with a warning.

use std::borrow::Cow;
use std::sync::Arc;

use crate::config::{FieldSource, FieldSpec, SourceConfig, TemplatePart, Transform};
use crate::model::{
    is_invisible, name_key, short_dn, AttrValue, EntryError, Layout, MappedFields, MappedGroup, MappedUser, MemberRef,
    Name, RawEntry, MAX_DN_LEN,
};

/// Longest value accepted for any field.
pub const MAX_VALUE_LEN: usize = 1024;

/// The result of mapping one user entry.
#[derive(Debug)]
pub enum UserOutcome {
    Mapped(MappedUser, Vec<EntryError>),
    /// Skipped; the external id and the username key are kept when they
    /// could be read, so a skipped user is never mistaken for a missing one.
    Skipped(EntryError, Option<String>, Option<String>),
}

/// Reads the stable identity of an entry: what its source computed, else
/// `id_attribute` (binary ids are hex-encoded).
pub fn external_id(entry: &RawEntry, id_attribute: &str) -> Result<String, String> {
    if let Some(id) = &entry.facts.id {
        return id.clone();
    }
    if id_attribute == "dn" {
        return Ok(crate::model::normalize_dn(&entry.dn));
    }
    match entry.first(id_attribute) {
        Some(AttrValue::Text(t)) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Some(AttrValue::Binary(b)) => Ok(b.iter().map(|x| format!("{x:02x}")).collect()),
        _ => Err(format!("missing identity attribute {id_attribute}")),
    }
}

/// Where an entry is, for messages: the source's own words (a file and
/// line) or its DN, shortened.
fn origin(entry: &RawEntry) -> String {
    entry.facts.origin.clone().unwrap_or_else(|| short_dn(&entry.dn))
}

/// The names of a source's mapped fields but username, in its order: what
/// [`MappedUser::fields`] are named by (shared by all of a source's users).
pub fn field_names(cfg: &SourceConfig) -> Arc<Layout> {
    Layout::new(cfg.fields.iter().filter(|s| &*s.name != "username").map(|s| s.name.clone()).collect())
}

/// Maps one user entry.
pub fn map_user(cfg: &SourceConfig, entry: &RawEntry) -> UserOutcome {
    map_user_named(cfg, &field_names(cfg), entry)
}

/// [`map_user`] with the source's [`field_names`] computed once.
pub fn map_user_named(cfg: &SourceConfig, names: &Arc<Layout>, entry: &RawEntry) -> UserOutcome {
    // The name the entry claims, even when it is skipped for another reason.
    let name = || {
        let spec = cfg.fields.iter().find(|s| &*s.name == "username")?;
        evaluate(spec, entry).ok().flatten().map(|u| name_key(&u))
    };
    let id = match external_id(entry, &cfg.query().id_attribute) {
        Ok(id) => id,
        Err(reason) => return UserOutcome::Skipped(EntryError::new(origin(entry), reason), None, name()),
    };
    if entry.dn.len() > MAX_DN_LEN {
        let reason = format!("the DN is longer than {MAX_DN_LEN} bytes");
        return UserOutcome::Skipped(EntryError::new(origin(entry), reason), Some(id), name());
    }
    let mut warnings = Vec::new();
    let mut username = None;
    let mut fields = Vec::with_capacity(cfg.fields.len());
    for spec in &cfg.fields {
        let value = match evaluate(spec, entry).and_then(|v| validate(&spec.name, v)) {
            Ok(v) => v,
            Err(reason) => {
                let reason = format!("field {}{}: {reason}", spec.name, describe_source(spec));
                if spec.required {
                    return UserOutcome::Skipped(EntryError::new(origin(entry), reason), Some(id), name());
                }
                warnings.push(EntryError::new(origin(entry), format!("{reason} (value dropped)")));
                None
            }
        };
        if spec.required && value.is_none() {
            let reason = format!("missing required field {}{}", spec.name, describe_source(spec));
            return UserOutcome::Skipped(EntryError::new(origin(entry), reason), Some(id), name());
        }
        if &*spec.name == "username" {
            username = value;
        } else {
            fields.push(value);
        }
    }
    let Some(username) = username else {
        return UserOutcome::Skipped(EntryError::new(origin(entry), "missing required field username"), Some(id), None);
    };
    UserOutcome::Mapped(
        MappedUser {
            dn: entry.dn.as_str().into(),
            external_id: id.into(),
            username: Name::new(username),
            disabled: entry.facts.disabled.unwrap_or(false),
            member_of: entry.facts.member_of.clone(),
            fields: MappedFields::new(names.clone(), &fields),
            seq: 0,
        },
        warnings,
    )
}

/// Maps one group entry: its name and raw member values.
pub fn map_group(cfg: &SourceConfig, entry: &RawEntry) -> Result<MappedGroup, EntryError> {
    let err = |r: String| EntryError::new(origin(entry), r);
    let id = external_id(entry, &cfg.query().id_attribute).map_err(err)?;
    if entry.dn.len() > MAX_DN_LEN {
        return Err(err(format!("the DN is longer than {MAX_DN_LEN} bytes")));
    }
    let name = match entry.first(&cfg.query().group_name_attribute) {
        Some(AttrValue::Text(t)) if !t.trim().is_empty() => t.trim().to_string(),
        Some(AttrValue::Binary(_)) => {
            return Err(err(format!("group name ({}) is not valid UTF-8", cfg.query().group_name_attribute)))
        }
        _ => return Err(err(format!("missing group name attribute {}", cfg.query().group_name_attribute))),
    };
    if name.chars().any(char::is_control) {
        return Err(err("group name contains control characters".into()));
    }
    if let Some(c) = name.chars().find(|&c| is_invisible(c)) {
        return Err(err(format!(
            "group name contains an invisible or text-direction character (U+{:04X}), which makes it look like another name",
            c as u32
        )));
    }
    let by_name = cfg.members_are_usernames();
    let mut members: Vec<MemberRef> = entry
        .values(&cfg.query().member_attribute)
        .iter()
        .filter_map(|v| match v {
            AttrValue::Text(t) if !t.trim().is_empty() => {
                let t = t.trim().to_string();
                Some(if by_name { MemberRef::Username(t) } else { MemberRef::Dn(t) })
            }
            _ => None,
        })
        .collect();
    members.extend(entry.facts.members.iter().cloned());
    Ok(MappedGroup {
        dn: entry.dn.clone(),
        external_id: id,
        name: Name::new(name),
        members,
        keys: entry.facts.keys.clone(),
    })
}

fn describe_source(spec: &FieldSpec) -> String {
    match &spec.source {
        FieldSource::Attribute(a) => format!(" (attribute {a})"),
        FieldSource::Template(_) => " (template)".into(),
        FieldSource::Constant => String::new(),
    }
}

fn text<'a>(entry: &'a RawEntry, attr: &str) -> Result<Option<&'a str>, String> {
    match entry.first(attr) {
        None => Ok(None),
        Some(AttrValue::Text(t)) => Ok(Some(t)),
        Some(AttrValue::Binary(_)) => Err(format!("attribute {attr} is not valid UTF-8")),
    }
}

/// A mapped field's value by name (tests and display).
pub fn field<'a>(u: &'a MappedUser, name: &str) -> Option<&'a str> {
    u.fields.get(name)
}

/// Computes a field's value: source, transforms, then the default for an
/// empty result. A plain attribute's value is borrowed from the entry.
pub fn evaluate<'a>(spec: &'a FieldSpec, entry: &'a RawEntry) -> Result<Option<Cow<'a, str>>, String> {
    let raw: Option<Cow<'a, str>> = match &spec.source {
        FieldSource::Attribute(a) => text(entry, a)?.map(Cow::Borrowed),
        FieldSource::Template(parts) => {
            let mut out = String::new();
            let mut any = false;
            for p in parts {
                match p {
                    TemplatePart::Literal(l) => out.push_str(l),
                    TemplatePart::Attribute(a) => {
                        if let Some(v) = text(entry, a)? {
                            any = true;
                            out.push_str(v);
                        }
                    }
                }
            }
            any.then(|| Cow::Owned(out.trim().to_string()))
        }
        FieldSource::Constant => None,
    };
    let mut value = raw;
    if let Some(v) = value.as_mut() {
        for t in &spec.transforms {
            *v = Cow::Owned(apply_transform(t, v));
        }
    }
    let value = value.filter(|v| !v.is_empty());
    Ok(value.or_else(|| spec.default.as_deref().map(Cow::Borrowed)))
}

fn apply_transform(t: &Transform, v: &str) -> String {
    match t {
        Transform::Lower => v.to_lowercase(),
        Transform::Upper => v.to_uppercase(),
        Transform::Trim => v.trim().to_string(),
        Transform::Digits => v.chars().filter(char::is_ascii_digit).collect(),
        Transform::Replace { regex, with } => regex.replace_all(v, with.as_str()).into_owned(),
    }
}

/// Validates a field value; `Ok(None)` passes an absent value through.
pub fn validate<S: AsRef<str>>(field: &str, value: Option<S>) -> Result<Option<S>, String> {
    let Some(value) = value else { return Ok(None) };
    let v = value.as_ref();
    if v.len() > MAX_VALUE_LEN {
        return Err(format!("value is longer than {MAX_VALUE_LEN} bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err("value contains control characters".into());
    }
    match field {
        "username" => {
            let t = v.trim();
            if t.is_empty() {
                return Err("username is empty".into());
            }
            if t.len() != v.len() {
                return Err(format!("username {v:?} has leading or trailing blanks (add transform = \"trim\")"));
            }
            if let Some(c) = v.chars().find(|&c| is_invisible(c)) {
                return Err(format!(
                    "username contains an invisible or text-direction character (U+{:04X}), which makes it look like another name",
                    c as u32
                ));
            }
        }
        "email" if !is_email(v) => return Err(format!("{v:?} is not an email address")),
        _ => {}
    }
    Ok(Some(value))
}

fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else { return false };
    !local.is_empty()
        && !v.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn cfg(fields: &str) -> SourceConfig {
        let text = format!("[[sources]]\nname = \"s\"\ntype = \"ldif\"\npath = \"x\"\n[sources.fields]\n{fields}\n");
        Config::parse(&text, Path::new("/t.toml")).unwrap().sources.remove(0)
    }

    fn entry(attrs: &[(&str, &str)]) -> RawEntry {
        let mut e = RawEntry::new("uid=x,dc=t");
        e.push("entryUUID", AttrValue::Text("id-1".into()));
        for (a, v) in attrs {
            e.push(a, AttrValue::Text(v.to_string()));
        }
        e
    }

    #[test]
    fn maps_attributes_templates_transforms_and_defaults() {
        let c = cfg(
            "username = { attribute = \"uid\", transform = \"lower\" }\nfull_name = \"cn\"\noffice = { template = \"{l} {roomNumber}\" }\nextension = { attribute = \"telephoneNumber\", transform = \"digits\" }\ndepartment = { attribute = \"ou\", default = \"General\" }\ncode = { attribute = \"employeeNumber\", regex = \"^E(\\\\d+)$\", replace = \"$1\" }",
        );
        let e = entry(&[
            ("uid", "JSmith"),
            ("cn", "J Smith"),
            ("l", "Paris"),
            ("telephoneNumber", "+33 (1) 234"),
            ("employeeNumber", "E042"),
        ]);
        let UserOutcome::Mapped(u, w) = map_user(&c, &e) else { panic!() };
        assert!(w.is_empty());
        assert_eq!(u.username.as_str(), "jsmith");
        assert_eq!(&*u.external_id, "id-1");
        assert_eq!(field(&u, "office"), Some("Paris"));
        assert_eq!(field(&u, "extension"), Some("331234"));
        assert_eq!(field(&u, "department"), Some("General"));
        assert_eq!(field(&u, "code"), Some("042"));
    }

    #[test]
    fn invalid_required_skips_and_invalid_optional_warns() {
        let c = cfg("username = \"uid\"\nfull_name = \"cn\"\nemail = \"mail\"");
        match map_user(&c, &entry(&[("cn", "No Uid")])) {
            UserOutcome::Skipped(e, Some(id), _) => {
                assert!(e.reason.contains("missing required field username (attribute uid)"), "{}", e.reason);
                assert_eq!(id, "id-1");
            }
            other => panic!("{other:?}"),
        }
        match map_user(&c, &entry(&[("uid", "a\u{7}b"), ("cn", "x")])) {
            UserOutcome::Skipped(e, ..) => assert!(e.reason.contains("control characters")),
            other => panic!("{other:?}"),
        }
        let UserOutcome::Mapped(u, w) = map_user(&c, &entry(&[("uid", "a"), ("cn", "A"), ("mail", "not-an-email")]))
        else {
            panic!()
        };
        assert_eq!(field(&u, "email"), None);
        assert!(u.fields.iter().any(|(k, v)| &**k == "email" && v.is_none()));
        assert_eq!(w.len(), 1);
        assert!(w[0].reason.contains("not an email address"));
    }

    #[test]
    fn binary_values_and_missing_ids_are_reported() {
        let c = cfg("username = \"uid\"\nfull_name = \"cn\"");
        let mut e = entry(&[("cn", "x")]);
        e.push("uid", AttrValue::Binary(vec![0xff, 0xfe]));
        match map_user(&c, &e) {
            UserOutcome::Skipped(err, ..) => assert!(err.reason.contains("not valid UTF-8"), "{}", err.reason),
            other => panic!("{other:?}"),
        }
        let mut e = RawEntry::new("uid=y");
        e.push("uid", AttrValue::Text("y".into()));
        assert!(matches!(map_user(&c, &e), UserOutcome::Skipped(_, None, Some(ref k)) if k == "y"));
    }

    #[test]
    fn usernames_with_invisible_or_bidi_characters_are_invalid() {
        let c = cfg("username = \"uid\"\nfull_name = \"cn\"");
        for name in ["alice\u{200b}", "\u{202e}ecila", "al\u{feff}ice", "a\u{2066}b"] {
            match map_user(&c, &entry(&[("uid", name), ("cn", "x")])) {
                UserOutcome::Skipped(e, Some(_), _) => assert!(e.reason.contains("invisible"), "{}", e.reason),
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_huge_dn_is_skipped_with_a_shortened_dn() {
        let c = cfg("username = \"uid\"\nfull_name = \"cn\"");
        let mut e = entry(&[("uid", "a"), ("cn", "A")]);
        e.dn = format!("uid=a,{}", "ou=x,".repeat(1000));
        match map_user(&c, &e) {
            UserOutcome::Skipped(err, Some(_), Some(k)) => {
                assert!(err.reason.contains("longer than 4096"), "{}", err.reason);
                assert!(err.dn.len() < 300 && k == "a", "{}", err.dn);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn email_shapes() {
        assert!(is_email("a@b.co"));
        for bad in ["a@b", "@b.co", "a b@c.d", "a@.b", "ab.co"] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
