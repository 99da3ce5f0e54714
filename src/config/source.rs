//! One `[[sources]]` table: what every source has (name, `type`, fields,
//! incremental, scope groups, `import_disabled`, write-back), read here;
//! the rest is the kind's, read by the parser its registration in
//! `sources::KINDS` (or the caller's list) names. Errors name the key.

use std::sync::Arc;

use super::*;
use crate::kind::Registration;

/// The keys every source table has, read here.
const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "fields",
    "incremental",
    "import_disabled",
    "scope_groups",
    "writeback",
    "schedule",
    "priority",
    "role",
    "match_on",
    "safety",
    "live",
];

/// Validates one source table: its kind, role, fields, then the rest.
pub(super) fn parse_source(
    s: &mut Section<'_>,
    kinds: &[Registration],
    schedule: &Schedule,
) -> Result<SourceConfig, ConfigError> {
    let name = parse_name(s)?;
    parse_named(s, kinds, schedule, name.clone()).map_err(|e| e.in_source(&name))
}

/// The source's `name`: what its messages call it.
fn parse_name(s: &mut Section<'_>) -> Result<String, ConfigError> {
    let name = s.string("name")?.unwrap_or_default();
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(s.err("name", "expected a non-empty name"));
    }
    if name.contains(',') {
        // A run lists the sources it covers separated by commas.
        return Err(s.err("name", format!("\"{name}\": a source name cannot hold a comma")));
    }
    Ok(name)
}

/// The rest of a source's table, once its name is known.
fn parse_named(
    s: &mut Section<'_>,
    kinds: &[Registration],
    schedule: &Schedule,
    name: String,
) -> Result<SourceConfig, ConfigError> {
    let (type_name, kind) = parse_kind(s, kinds)?;
    let (priority, role) = parse_role(s)?;
    let fields = parse_fields(s, &*kind, &type_name, &role)?;
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
    let incremental = parse_incremental(s)?;
    let safety = parse_source_safety(s)?;
    let live = parse_live(s, &*kind, &type_name)?;
    let schedule = match s.sub("schedule")? {
        None => schedule.clone(),
        Some(mut t) => server::parse_schedule(&mut t, schedule)?,
    };
    let known: Vec<&str> = COMMON_KEYS.iter().chain(kinds.iter().flat_map(|k| k.keys)).copied().collect();
    let what = format!("type = \"{type_name}\"");
    s.finish(&what, &known)?;
    Ok(SourceConfig {
        name,
        kind,
        fields,
        incremental,
        import_disabled,
        scope_groups,
        writeback,
        schedule,
        priority,
        role,
        safety,
        live,
    })
}

/// `[sources.live]`: `enabled`, `debounce_ms`, `poll_secs`. A source that is
/// pushed to (SCIM) is live already and has none.
fn parse_live(s: &mut Section<'_>, kind: &dyn crate::kind::Kind, type_name: &str) -> Result<Live, ConfigError> {
    let Some(mut t) = s.sub("live")? else { return Ok(Live::default()) };
    if kind.capabilities().pushed {
        return Err(t.err(
            "enabled",
            format!("is not used by type = \"{type_name}\": its identity provider pushes every change already"),
        ));
    }
    let mut live = Live { enabled: t.boolean("enabled")?.unwrap_or(true), ..Live::default() };
    if let Some(ms) = t.integer("debounce_ms")? {
        if !(0..=60_000).contains(&ms) {
            return Err(t.err("debounce_ms", format!("expected 0 to 60000 milliseconds, got {ms}")));
        }
        live.debounce = std::time::Duration::from_millis(ms as u64);
    }
    if let Some(p) = t.integer("poll_secs")? {
        if !(1..=86_400).contains(&p) {
            return Err(t.err("poll_secs", format!("expected 1 to 86400 seconds, got {p}")));
        }
        live.poll = std::time::Duration::from_secs(p as u64);
    }
    t.finish("[sources.live] (enabled, debounce_ms, poll_secs)", &[])?;
    Ok(live)
}

/// `[sources.safety]`: `on_missing`, `max_delete_percent`, `max_delete_count`
/// over `[safety]`, for this source only.
fn parse_source_safety(s: &mut Section<'_>) -> Result<SafetyOverride, ConfigError> {
    let Some(mut t) = s.sub("safety")? else { return Ok(SafetyOverride::default()) };
    let on_missing = t.string("on_missing")?;
    let percent = t.number("max_delete_percent")?;
    let count = t.integer("max_delete_count")?;
    let over = crate::kind::settings::parse_safety_values(on_missing.as_deref(), percent, count, &|k, m| t.err(k, m))?;
    t.finish("[sources.safety]", &[])?;
    Ok(over)
}

/// The source's `type`, and the kind's own settings, read by the
/// registration of that type; the common keys the kind has no use for are
/// refused.
fn parse_kind(
    s: &mut Section<'_>,
    kinds: &[Registration],
) -> Result<(String, Arc<dyn crate::kind::Kind>), ConfigError> {
    let type_name =
        s.string("type")?.ok_or_else(|| s.err("type", format!("missing (expected {})", type_list(kinds))))?;
    let Some(reg) = kinds.iter().find(|k| k.types.contains(&type_name.as_str())) else {
        return Err(s.err("type", format!("expected {}, got \"{type_name}\"", type_list(kinds))));
    };
    let kind: Arc<dyn crate::kind::Kind> = Arc::from((reg.parse)(&type_name, s)?);
    let can = kind.capabilities();
    for (k, used) in
        [("incremental", can.incremental), ("import_disabled", can.disabled_flag), ("writeback", can.writeback)]
    {
        if s.has(k) && !used {
            return Err(s.err(k, format!("is not used by type = \"{type_name}\"")));
        }
    }
    Ok((type_name, kind))
}

/// `priority` and `role` (with `match_on` for an enrich source).
fn parse_role(s: &mut Section<'_>) -> Result<(u32, Role), ConfigError> {
    let priority = match s.integer("priority")? {
        None => 0, // the order in the file, set by `settle_sources`
        Some(p) if (1..=1000).contains(&p) => p as u32,
        Some(p) => return Err(s.err("priority", format!("expected 1 (highest) to 1000, got {p}"))),
    };
    let role = match s.string("role")?.as_deref() {
        None | Some("primary") => {
            if s.has("match_on") {
                return Err(s.err("match_on", "is only used with role = \"enrich\""));
            }
            Role::Primary
        }
        Some("enrich") => {
            let m = s.string("match_on")?.unwrap_or_else(|| "username".into());
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(s.err("match_on", format!("expected a field name such as \"username\", got \"{m}\"")));
            }
            Role::Enrich { match_on: m }
        }
        Some(other) => return Err(s.err("role", format!("expected \"primary\" or \"enrich\", got \"{other}\""))),
    };
    Ok((priority, role))
}

/// `[sources.fields]` (over the kind's defaults, if it has any), checked
/// against the role and the kind; username first, so mapping can name the
/// user in messages.
fn parse_fields(
    s: &mut Section<'_>,
    kind: &dyn crate::kind::Kind,
    type_name: &str,
    role: &Role,
) -> Result<Vec<FieldSpec>, ConfigError> {
    let fields_table = match (s.table("fields")?, kind.default_fields()) {
        (given, Some(d)) => over_defaults(s, toml::from_str(d).expect("valid default fields"), given)?,
        (Some(t), None) => {
            if let Some((k, _)) = t.iter().find(|(_, v)| v.as_bool() == Some(false)) {
                return Err(s.err(&format!("fields.{k}"), "`false` turns a default field off, and this kind has none"));
            }
            t
        }
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
    fields_for_role(s, role, &mut fields)?;
    for f in &fields {
        for a in f.attributes() {
            kind.check_field_source(&a).map_err(|m| s.err(&format!("fields.{}", f.name), m))?;
        }
    }
    if let Some(f) = fields.iter().find(|f| f.app_owned) {
        if !kind.capabilities().writeback {
            return Err(s.err(
                &format!("fields.{}.owner", f.name),
                format!(
                    "owner = \"app\" needs a source dirsync can write the value back to; type = \"{type_name}\" has none"
                ),
            ));
        }
    }
    fields.sort_by_key(|f| &*f.name != "username");
    if let Some(f) = fields.iter_mut().find(|f| &*f.name == "full_name") {
        if !fields_table.get("full_name").and_then(|v| v.as_table()).is_some_and(|t| t.contains_key("required")) {
            f.required = true;
        }
    }
    Ok(fields)
}

/// What a role needs of the fields: a primary source maps username and
/// full_name; an enrich source maps the field it matches on (read where a
/// username would be) and at least one more.
fn fields_for_role(s: &Section<'_>, role: &Role, fields: &mut Vec<FieldSpec>) -> Result<(), ConfigError> {
    match role {
        Role::Primary => {
            for needed in ["username", "full_name"] {
                if !fields.iter().any(|f| &*f.name == needed) {
                    return Err(
                        s.err(&format!("fields.{needed}"), "missing: every source must map username and full_name")
                    );
                }
            }
        }
        Role::Enrich { match_on } => {
            let Some(key) = fields.iter().find(|f| &*f.name == match_on.as_str()).cloned() else {
                return Err(s.err(
                    &format!("fields.{match_on}"),
                    format!("missing: an enrich source must map the field it matches on (match_on = \"{match_on}\")"),
                ));
            };
            if match_on != "username" {
                if fields.iter().any(|f| &*f.name == "username") {
                    return Err(s.err(
                        "fields.username",
                        format!("an enrich source matching on \"{match_on}\" cannot set usernames; drop it"),
                    ));
                }
                let mut k = key;
                k.name = "username".into();
                (k.required, k.on_create, k.on_update) = (true, true, true);
                fields.push(k);
            }
            if fields.len() < 2 {
                return Err(
                    s.err("fields", "an enrich source must map at least one field besides the one it matches on")
                );
            }
        }
    }
    Ok(())
}

/// `[sources.incremental]`: on by default where the kind can, and how often
/// to read in full anyway.
fn parse_incremental(s: &mut Section<'_>) -> Result<Incremental, ConfigError> {
    let Some(mut ri) = s.sub("incremental")? else { return Ok(Incremental::default()) };
    let inc = Incremental {
        enabled: ri.boolean("enabled")?.unwrap_or(true),
        full_every: match ri.string("full_every")? {
            None => Incremental::default().full_every,
            Some(t) => parse_duration(&t).map_err(|m| ri.err("full_every", m))?,
        },
    };
    ri.finish("[sources.incremental]", &[])?;
    Ok(inc)
}

/// Checks the sources against each other once all are read: priorities
/// (unset ones follow the order in the file, after the explicit ones they do
/// not collide with) are unique among the primary sources, and each field has
/// one writer: a field an enrich source sets is mapped by no other source.
pub(super) fn settle_sources(sources: &mut [SourceConfig], path: &std::path::Path) -> Result<(), ConfigError> {
    let err = |i: usize, key: &str, msg: String| ConfigError::new(path, format!("sources[{i}].{key}"), msg);
    let mut taken: std::collections::BTreeMap<u32, usize> = Default::default();
    for (i, s) in sources.iter().enumerate().filter(|(_, s)| s.priority != 0 && !s.is_enrich()) {
        if let Some(&j) = taken.get(&s.priority) {
            return Err(err(
                i,
                "priority",
                format!(
                    "{} is also the priority of source \"{}\"; two sources cannot share one (1 is the highest)",
                    s.priority, sources[j].name
                ),
            ));
        }
        taken.insert(s.priority, i);
    }
    let mut next = 1;
    for s in sources.iter_mut().filter(|s| s.priority == 0) {
        while taken.contains_key(&next) {
            next += 1;
        }
        s.priority = next;
        taken.insert(next, usize::MAX);
    }
    for (i, e) in sources.iter().enumerate() {
        let Role::Enrich { match_on } = &e.role else { continue };
        for f in e.fields.iter().filter(|f| &*f.name != "username" && *f.name != **match_on) {
            if let Some(o) = sources
                .iter()
                .enumerate()
                .find(|&(j, o)| j != i && o.fields.iter().any(|g| g.name == f.name && written_by(o, &g.name)))
            {
                return Err(err(
                    i,
                    &format!("fields.{}", f.name),
                    format!(
                        "\"{}\" is also set by source \"{}\"; a field has one writer (drop it from one of them)",
                        f.name, o.1.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether source `s` writes field `name` (an enrich source does not write
/// the field it matches on).
fn written_by(s: &SourceConfig, name: &str) -> bool {
    match &s.role {
        Role::Primary => true,
        Role::Enrich { match_on } => name != "username" && name != match_on,
    }
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

/// A kind's default fields with the given `[sources.fields]` table merged
/// over them: an entry given wins, a default not given still applies, and
/// `name = false` turns a default off.
fn over_defaults(
    s: &Section,
    mut defaults: toml::Table,
    given: Option<toml::Table>,
) -> Result<toml::Table, ConfigError> {
    for (name, value) in given.unwrap_or_default() {
        match value {
            toml::Value::Boolean(false) if name == "username" => {
                return Err(s.err("fields.username", "username is always mapped; it cannot be turned off"));
            }
            toml::Value::Boolean(false) => {
                if defaults.remove(&name).is_none() {
                    return Err(s.err(
                        &format!("fields.{name}"),
                        "`false` turns a default field off, and this kind has no default by that name",
                    ));
                }
            }
            v => {
                defaults.insert(name, v);
            }
        }
    }
    Ok(defaults)
}
