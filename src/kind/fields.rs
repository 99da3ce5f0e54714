//! Field mappings: how one application field is computed from a directory
//! entry (an attribute or a template, transforms, a default, when it applies).
//! Parsed once from `[sources.fields]`; the mapping step only evaluates them.

use regex::Regex;

use super::error::ConfigError;

/// Where a field's value comes from.
#[derive(Debug, Clone)]
pub enum FieldSource {
    /// The first value of one attribute (lower-case name).
    Attribute(String),
    /// A template such as `"{l} {roomNumber}"`.
    Template(Vec<TemplatePart>),
    /// No directory value: only `default` (useful with `on = ["create"]`).
    Constant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Attribute(String),
}

#[derive(Debug, Clone)]
pub enum Transform {
    Lower,
    Upper,
    Trim,
    Digits,
    Replace { regex: Regex, with: String },
}

/// One application field's mapping.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: crate::model::FieldName,
    pub source: FieldSource,
    pub on_create: bool,
    pub on_update: bool,
    pub required: bool,
    pub default: Option<String>,
    pub transforms: Vec<Transform>,
    /// `owner = "app"`: the application owns the value; the directory gets a
    /// copy by write-back and never overwrites it (except to fill it in).
    pub app_owned: bool,
}

impl FieldSpec {
    /// The attributes this field reads (lower-case), so a source fetches only those.
    pub fn attributes(&self) -> Vec<String> {
        match &self.source {
            FieldSource::Attribute(a) => vec![a.clone()],
            FieldSource::Template(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    TemplatePart::Attribute(a) => Some(a.clone()),
                    TemplatePart::Literal(_) => None,
                })
                .collect(),
            FieldSource::Constant => vec![],
        }
    }
}

/// Parses a template: `{attr}` inserts an attribute's first value, `{{` and
/// `}}` are literal braces.
pub fn parse_template(s: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') => return Err("unexpected '{' inside {...}".into()),
                        Some(c) if c.is_control() => return Err("a control character inside {...}".into()),
                        Some(c) => name.push(c),
                        None => return Err("unclosed '{'".into()),
                    }
                }
                check_source_name(&name)?;
                if !lit.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
                }
                parts.push(TemplatePart::Attribute(name.to_ascii_lowercase()));
            }
            '}' => return Err("single '}' (write '}}' for a literal brace)".into()),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Attribute(_))) {
        return Err("names no attribute (expected e.g. \"{l} {roomNumber}\")".into());
    }
    Ok(parts)
}

fn parse_transform(name: &str) -> Option<Transform> {
    Some(match name {
        "lower" => Transform::Lower,
        "upper" => Transform::Upper,
        "trim" => Transform::Trim,
        "digits" => Transform::Digits,
        _ => return None,
    })
}

const TRANSFORMS: &str = "\"lower\", \"upper\", \"trim\" or \"digits\"";

/// Parses one entry of `[sources.fields]`: a plain attribute name, or a table
/// with `attribute` or `template` and optional `on`, `required`, `default`,
/// `transform`, `regex` + `replace`.
pub fn parse_field(
    name: &str,
    value: &toml::Value,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<FieldSpec, ConfigError> {
    let mut spec = FieldSpec {
        name: name.into(),
        source: FieldSource::Constant,
        on_create: true,
        on_update: true,
        required: name == "username",
        default: None,
        transforms: Vec::new(),
        app_owned: false,
    };
    let table = match value {
        toml::Value::String(attr) => {
            check_source_name(attr).map_err(|m| err("", m))?;
            spec.source = FieldSource::Attribute(attr.to_ascii_lowercase());
            return Ok(spec);
        }
        toml::Value::Table(t) => t,
        other => {
            return Err(err(
                "",
                format!(
                    "expected an attribute name (string) or a table like {{ attribute = \"mail\" }}, got {}",
                    other.type_str()
                ),
            ))
        }
    };
    let mut regex = None;
    let mut replace = None;
    for (key, v) in table {
        let want_str = |v: &toml::Value| -> Result<String, ConfigError> {
            v.as_str().map(str::to_string).ok_or_else(|| err(key, format!("expected a string, got {}", v.type_str())))
        };
        match key.as_str() {
            "attribute" => {
                let a = want_str(v)?;
                check_source_name(&a).map_err(|m| err(key, m))?;
                spec.source = FieldSource::Attribute(a.to_ascii_lowercase());
            }
            "template" => {
                let t = want_str(v)?;
                spec.source = FieldSource::Template(parse_template(&t).map_err(|m| err(key, m))?);
            }
            "required" => {
                spec.required =
                    v.as_bool().ok_or_else(|| err(key, format!("expected true or false, got {}", v.type_str())))?
            }
            "default" => spec.default = Some(want_str(v)?),
            "on" => (spec.on_create, spec.on_update) = parse_on(v, &|m| err(key, m))?,
            "transform" => spec.transforms.extend(parse_transforms(v, &|m| err(key, m))?),
            "regex" => {
                let r = want_str(v)?;
                regex = Some(Regex::new(&r).map_err(|e| err(key, format!("invalid regular expression: {e}")))?);
            }
            "replace" => replace = Some(want_str(v)?),
            "owner" => match want_str(v)?.as_str() {
                "app" => spec.app_owned = true,
                "directory" => spec.app_owned = false,
                other => return Err(err(key, format!("expected \"app\" or \"directory\", got \"{other}\""))),
            },
            other => return Err(err(
                other,
                "unknown key (expected attribute, template, on, required, default, transform, regex, replace, owner)"
                    .into(),
            )),
        }
    }
    finish_field(spec, table, regex, replace, err)
}

/// `on = ["create", "update"]`: (on create, on update), at least one.
fn parse_on(v: &toml::Value, err: &dyn Fn(String) -> ConfigError) -> Result<(bool, bool), ConfigError> {
    let list =
        v.as_array().ok_or_else(|| err("expected a list such as [\"create\"] or [\"create\", \"update\"]".into()))?;
    let (mut on_create, mut on_update) = (false, false);
    for item in list {
        match item.as_str() {
            Some("create") => on_create = true,
            Some("update") => on_update = true,
            _ => return Err(err(format!("expected \"create\" or \"update\", got {item}"))),
        }
    }
    if !on_create && !on_update {
        return Err(err("is empty: the field would never be set".into()));
    }
    Ok((on_create, on_update))
}

/// `transform = "lower"` or a list of them, in order.
fn parse_transforms(v: &toml::Value, err: &dyn Fn(String) -> ConfigError) -> Result<Vec<Transform>, ConfigError> {
    let names: Vec<&toml::Value> = match v {
        toml::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    names
        .into_iter()
        .map(|n| {
            n.as_str()
                .and_then(parse_transform)
                .ok_or_else(|| err(format!("expected {TRANSFORMS} (or a list of them), got {n}")))
        })
        .collect()
}

/// The checks across a field's keys: `regex` with `replace`, `attribute` or
/// `template`, `owner = "app"` with an attribute, and something to read.
fn finish_field(
    mut spec: FieldSpec,
    table: &toml::Table,
    regex: Option<Regex>,
    replace: Option<String>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<FieldSpec, ConfigError> {
    match (regex, replace) {
        (Some(regex), Some(with)) => spec.transforms.push(Transform::Replace { regex, with }),
        (Some(_), None) => {
            return Err(err("replace", "missing: `regex` needs `replace` (e.g. replace = \"$1\")".into()))
        }
        (None, Some(_)) => return Err(err("regex", "missing: `replace` needs `regex`".into())),
        (None, None) => {}
    }
    if table.contains_key("attribute") && table.contains_key("template") {
        return Err(err("template", "give either `attribute` or `template`, not both".into()));
    }
    if spec.app_owned && !matches!(spec.source, FieldSource::Attribute(_)) {
        return Err(err(
            "owner",
            "owner = \"app\" needs `attribute`: the attribute the value is written back to".into(),
        ));
    }
    if matches!(spec.source, FieldSource::Constant) && spec.default.is_none() {
        return Err(err("attribute", "missing: give `attribute`, `template` or `default`".into()));
    }
    Ok(spec)
}

/// A name a field is read from, whatever the source kind: an LDAP attribute,
/// a dotted JSON path (`name.fullName`), a CSV header (`First Name`). Each
/// source kind checks its own names further (LDAP's: [`check_attr_name`]).
/// Names compare case-insensitively (ASCII), as LDAP attribute names do.
fn check_source_name(a: &str) -> Result<(), String> {
    if a.trim().is_empty() {
        return Err("empty name (expected an attribute, a path like \"name.fullName\" or a column header)".into());
    }
    if a.trim() != a || a.chars().any(char::is_control) || a.len() > 256 {
        return Err(format!(
            "{a:?} is not a usable name (no leading or trailing blanks, no control characters, at most 256 bytes)"
        ));
    }
    Ok(())
}

/// LDAP's rule for attribute names (LDAP, AD and LDIF sources).
pub fn check_attr_name(a: &str) -> Result<(), String> {
    let ok = !a.is_empty()
        && a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    if ok {
        Ok(())
    } else {
        Err(format!("\"{a}\" is not an LDAP attribute name (letters, digits and '-', starting with a letter)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: &str, m: String) -> ConfigError {
        ConfigError::new("t.toml", format!("fields.x.{key}"), m)
    }

    fn parse(v: &str) -> Result<FieldSpec, ConfigError> {
        let t: toml::Table = toml::from_str(&format!("x = {v}")).unwrap();
        parse_field("x", &t["x"], &e)
    }

    #[test]
    fn field_sources_may_be_json_paths_or_csv_headers() {
        let e = |_: &str, m: String| ConfigError::new("/t", "k", m);
        let f = parse_field("full_name", &toml::Value::String("name.fullName".into()), &e).unwrap();
        assert_eq!(f.attributes(), ["name.fullname"]);
        let t: toml::Value = toml::from_str("x = { template = \"{First Name} {name.familyName}\" }").unwrap();
        let f = parse_field("full_name", &t["x"], &e).unwrap();
        assert_eq!(f.attributes(), ["first name", "name.familyname"]);
        for bad in [" lead", "", "a\u{7}b"] {
            assert!(parse_field("x", &toml::Value::String(bad.into()), &e).is_err(), "{bad:?}");
        }
        assert!(check_attr_name("name.fullName").is_err(), "not an LDAP attribute");
    }

    #[test]
    fn template_parts() {
        assert_eq!(
            parse_template("{l} {roomNumber}").unwrap(),
            vec![
                TemplatePart::Attribute("l".into()),
                TemplatePart::Literal(" ".into()),
                TemplatePart::Attribute("roomnumber".into())
            ]
        );
        assert!(parse_template("{l").is_err());
        assert!(parse_template("no attrs").is_err());
        assert_eq!(
            parse_template("{{{a}}}").unwrap(),
            vec![
                TemplatePart::Literal("{".into()),
                TemplatePart::Attribute("a".into()),
                TemplatePart::Literal("}".into())
            ]
        );
    }

    #[test]
    fn plain_and_table_fields() {
        let f = parse("\"mail\"").unwrap();
        assert!(matches!(f.source, FieldSource::Attribute(ref a) if a == "mail"));
        assert!(f.on_create && f.on_update && !f.required);
        let f = parse("{ attribute = \"employeeNumber\", on = [\"create\"] }").unwrap();
        assert!(f.on_create && !f.on_update);
        let f = parse("{ attribute = \"t\", transform = [\"trim\", \"digits\"] }").unwrap();
        assert_eq!(f.transforms.len(), 2);
    }

    #[test]
    fn errors_name_the_key_and_what_is_expected() {
        let err = parse("{ attribute = \"t\", transform = \"shout\" }").unwrap_err().to_string();
        assert!(err.contains("fields.x.transform"), "{err}");
        assert!(err.contains("\"lower\""), "{err}");
        let err = parse("{ attribute = \"t\", on = [\"never\"] }").unwrap_err().to_string();
        assert!(err.contains("fields.x.on"), "{err}");
        let err = parse("{ attribute = \"t\", regex = \"(\" , replace = \"\"}").unwrap_err().to_string();
        assert!(err.contains("invalid regular expression"), "{err}");
        let err = parse("{ attribut = \"t\" }").unwrap_err().to_string();
        assert!(err.contains("unknown key"), "{err}");
        assert!(parse("42").is_err());
        assert!(parse("\" bad name\"").is_err(), "leading blank");
    }
}
