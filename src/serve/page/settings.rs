//! The admin page's Settings: the config file as parsed, read-only, every
//! secret-looking value masked wherever it stands; and **Test settings** (PaperCut's
//! button): each source is read in full, mapped and checked, and what it
//! would bring is shown (counts, a sample of users, the first problems);
//! nothing is planned against the store and nothing is changed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::{layout, Admin, Checked};
use crate::serve::AppState;

/// The config file as parsed (TOML), shown again with the value of every
/// secret-looking key masked wherever it stands: in a table, an inline
/// table (`clients = [{ token = "…" }]`), an array, a multi-line string.
/// The file's lines are never shown as they are; a file that does not
/// parse (changed since it was loaded) is named, not shown.
pub fn masked(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut t) => {
            mask_table(&mut t);
            toml::to_string_pretty(&t).unwrap_or_else(|_| "(the configuration cannot be shown)".into())
        }
        Err(e) => format!(
            "(the file no longer parses{}; the configuration in use is the one loaded before)",
            e.span().map(|s| format!(" near byte {}", s.start)).unwrap_or_default()
        ),
    }
}

fn mask_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        let secret = crate::config::is_secret_key(k) && !k.ends_with("_file") && !k.ends_with("_env");
        if secret {
            *v = toml::Value::String("••••••".into());
        } else {
            mask_value(v);
        }
    }
}

fn mask_value(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => mask_table(t),
        toml::Value::Array(a) => a.iter_mut().for_each(mask_value),
        _ => {}
    }
}

fn field<'a>(u: &'a crate::model::MappedUser, name: &str) -> &'a str {
    u.fields.get(name).unwrap_or("")
}

fn form(csrf: &str) -> Markup {
    html! {
        form method="post" action="/ui/settings/test" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Test settings" }
            span.hint { " Reads every source and shows what it finds; changes nothing." }
        }
    }
}

pub async fn settings(State(st): State<AppState>, Admin(s): Admin) -> Response {
    let cfg = st.config();
    let text =
        std::fs::read_to_string(&cfg.file).unwrap_or_else(|e| format!("(cannot read {}: {e})", cfg.file.display()));
    let refused = st.refused_reload.read().expect("reload lock").clone();
    let body = html! {
        @if let Some(why) = refused {
            p.error role="alert" { "The running configuration differs from the file below: its last reload was refused, and the configuration loaded before it is in force. " span.mono { (why) } }
        }
        (form(&s.csrf))
        h2 { (cfg.file.display()) }
        pre.config { (masked(&text)) }
    };
    layout("Settings", Some(&s), body).into_response()
}

pub async fn test(State(st): State<AppState>, Checked(s, _): Checked<super::CsrfForm>) -> Response {
    let cfg = st.config();
    let mut sections = Vec::new();
    for src in &cfg.sources {
        let t0 = std::time::Instant::now();
        let read = crate::engine::sync::check_source(src).await;
        let took = t0.elapsed().as_secs_f64();
        sections.push(html! {
            h2 { (src.name) " (" (src.kind.type_name()) " " span.mono { (src.kind.place()) } ")" }
            @match &read {
                Err(e) => p.error { "FAILED: " (e.message) },
                Ok((said, b)) => {
                    @if let Some(said) = said { p { "The source says: " (said) } }
                    p { span.badge.ok { "ok" } " " (b.users.len()) " users, " (b.groups.len()) " groups, " (b.errors.len()) " skipped, in " (format!("{took:.1}")) " s" }
                    // Every mapped field of the sample, as the store would hold it.
                    @let names: Vec<&str> = src.fields.iter().skip(1).map(|f| &*f.name).collect();
                    table {
                        thead { tr { th { "Username" } @for n in &names { th { (n) } } } }
                        tbody { @for u in b.users.iter().take(10) { tr { td { (u.username.as_str()) } @for n in &names { td { (field(u, n)) } } } } }
                    }
                    @if !b.warnings.is_empty() {
                        h3 { "Warnings" }
                        ul { @for g in crate::model::ReasonGroup::of(&b.warnings).iter().take(10) { li { (g.line()) } } }
                    }
                    @if !b.errors.is_empty() {
                        h3 { "Skipped entries, by reason" }
                        ul { @for g in crate::model::ReasonGroup::of(&b.errors).iter().take(10) { li { (g.line()) } } }
                    }
                }
            }
        });
    }
    tracing::info!(user = %s.user, "admin page: settings tested");
    let body = html! { p { "Nothing was changed." } @for sec in sections { (sec) } (form(&s.csrf)) };
    layout("Test settings", Some(&s), body).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_values_are_masked_and_file_names_are_not() {
        let text = "url = \"ldap://h\"\nbind_password = \"hunter2\"\nbind_password_file = \"pw.txt\"\ntoken = \"abc\"\n  client_secret=\"s3\"";
        let m = super::masked(text);
        assert!(!m.contains("hunter2") && !m.contains("abc") && !m.contains("s3\""), "{m}");
        assert!(m.contains("bind_password_file = \"pw.txt\"") && m.contains("url = \"ldap://h\""), "{m}");
    }

    #[test]
    fn inline_tables_and_multi_line_strings_are_masked_too() {
        let text = "[server]\nclients = [{ name = \"app\", token = \"tok-inline-123\", scopes = [\"read\"] }]\n\
                    [[sources]]\nname = \"corp\"\nbind_password = \"\"\"\nmulti-line-secret\n\"\"\"\n\
                    [sources.writeback]\nbind_password = \'literal-secret\'\n";
        let m = super::masked(text);
        for secret in ["tok-inline-123", "multi-line-secret", "literal-secret"] {
            assert!(!m.contains(secret), "{secret} shown: {m}");
        }
        assert!(m.contains("name = \"app\"") && m.contains("name = \"corp\""), "{m}");
    }

    #[test]
    fn a_file_that_no_longer_parses_is_not_shown() {
        let m = super::masked("bind_password = \"unterminated-secret\nx = 1");
        assert!(!m.contains("unterminated-secret") && m.contains("no longer parses"), "{m}");
    }
}
