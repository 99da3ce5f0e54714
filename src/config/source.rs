//! One `[[sources]]` table: what every source has (name, `type`, fields,
//! incremental, scope groups, `import_disabled`, write-back), read here;
//! the rest is the kind's, read by the parser its registration in
//! `sources::KINDS` (or the caller's list) names. Errors name the key.

use std::sync::Arc;

use super::*;
use crate::sources::kind::Registration;

/// The keys every source table has, read here.
const COMMON_KEYS: &[&str] =
    &["name", "type", "fields", "incremental", "import_disabled", "scope_groups", "writeback", "schedule"];

/// Validates one source table.
pub(super) fn parse_source(
    s: &mut Section<'_>,
    kinds: &[Registration],
    schedule: &Schedule,
) -> Result<SourceConfig, ConfigError> {
    let name = s.string("name")?.unwrap_or_default();
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(s.err("name", "expected a non-empty name"));
    }
    let type_name =
        s.string("type")?.ok_or_else(|| s.err("type", format!("missing (expected {})", type_list(kinds))))?;
    let Some(reg) = kinds.iter().find(|k| k.types.contains(&type_name.as_str())) else {
        return Err(s.err("type", format!("expected {}, got \"{type_name}\"", type_list(kinds))));
    };
    let kind: Arc<dyn crate::sources::kind::Kind> = Arc::from((reg.parse)(&type_name, s)?);
    let can = kind.capabilities();
    let not_used = |k: &str| s.err(k, format!("is not used by type = \"{type_name}\""));
    for (k, used) in
        [("incremental", can.incremental), ("import_disabled", can.disabled_flag), ("writeback", can.writeback)]
    {
        if s.has(k) && !used {
            return Err(not_used(k));
        }
    }

    let fields_table = match (s.table("fields")?, kind.default_fields()) {
        (Some(t), _) => t,
        (None, Some(d)) => toml::from_str(d).expect("valid default fields"),
        (None, None) => {
            return Err(s.err("fields", "missing: add [sources.fields] with at least username and full_name"))
        }
    };
    let mut fields = Vec::new();
    for (fname, fval) in &fields_table {
        if !fname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || fname.is_empty() {
            return Err(s.err(&format!("fields.{fname}"), "field names use letters, digits and '_'"));
        }
        let ferr = |k: &str, m: String| {
            let full = if k.is_empty() { format!("fields.{fname}") } else { format!("fields.{fname}.{k}") };
            s.err(&full, m)
        };
        let spec = fields::parse_field(fname, fval, &ferr)?;
        if fname == "username" && (!spec.required || !spec.on_update || !spec.on_create) {
            return Err(
                s.err("fields.username", "username is always required and always mapped (drop `required`/`on`)")
            );
        }
        fields.push(spec);
    }
    for needed in ["username", "full_name"] {
        if !fields.iter().any(|f| &*f.name == needed) {
            return Err(s.err(&format!("fields.{needed}"), "missing: every source must map username and full_name"));
        }
    }
    for f in &fields {
        for a in f.attributes() {
            kind.check_field_source(&a).map_err(|m| s.err(&format!("fields.{}", f.name), m))?;
        }
    }
    if let Some(f) = fields.iter().find(|f| f.app_owned) {
        if !can.writeback {
            return Err(s.err(
                &format!("fields.{}.owner", f.name),
                format!(
                    "owner = \"app\" needs a source dirsync can write the value back to; type = \"{type_name}\" has none"
                ),
            ));
        }
    }
    // username first, so mapping can name the user in messages.
    fields.sort_by_key(|f| &*f.name != "username");
    if let Some(f) = fields.iter_mut().find(|f| &*f.name == "full_name") {
        if !fields_table.get("full_name").and_then(|v| v.as_table()).is_some_and(|t| t.contains_key("required")) {
            f.required = true;
        }
    }

    let import_disabled = s.boolean("import_disabled")?.unwrap_or(false);
    let scope_groups = s.strings("scope_groups")?.unwrap_or_default();
    let writeback = match s.sub("writeback")? {
        None => None,
        Some(mut w) => {
            let parsed = writeback::parse_writeback(&mut w)?;
            w.finish("[sources.writeback]", &[])?;
            parsed
        }
    };
    let incremental = match s.sub("incremental")? {
        None => Incremental::default(),
        Some(mut ri) => {
            let inc = Incremental {
                enabled: ri.boolean("enabled")?.unwrap_or(true),
                full_every: match ri.string("full_every")? {
                    None => Incremental::default().full_every,
                    Some(t) => parse_duration(&t).map_err(|m| ri.err("full_every", m))?,
                },
            };
            ri.finish("[sources.incremental]", &[])?;
            inc
        }
    };
    let schedule = match s.sub("schedule")? {
        None => schedule.clone(),
        Some(mut t) => server::parse_schedule(&mut t, schedule)?,
    };
    let known: Vec<&str> = COMMON_KEYS.iter().chain(kinds.iter().flat_map(|k| k.keys)).copied().collect();
    let what = format!("type = \"{type_name}\"");
    s.finish(&what, &known)?;
    Ok(SourceConfig { name, kind, fields, incremental, import_disabled, scope_groups, writeback, schedule })
}

/// `"ldap", "ad" or "ldif"`: every registered type name.
fn type_list(kinds: &[Registration]) -> String {
    quoted_list(kinds.iter().flat_map(|k| k.types.iter().copied()))
}

fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    match v.len() {
        0 => String::new(),
        1 => v[0].clone(),
        n => format!("{} or {}", v[..n - 1].join(", "), v[n - 1]),
    }
}
