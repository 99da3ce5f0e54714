//! The admin page's Settings: the config file as it is on disk, read-only,
//! every secret-looking value masked; and **Test settings** (PaperCut's
//! button): each source is read in full, mapped and checked, and what it
//! would bring is shown (counts, a sample of users, the first problems);
//! nothing is planned against the store and nothing is changed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::{layout, Admin, Checked};
use crate::service::AppState;

/// The file's text with the value of every secret-looking key masked.
pub fn masked(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once('=') {
            Some((k, _))
                if crate::config::is_secret_key(k)
                    && !k.trim_end().ends_with("_file")
                    && !k.trim_end().ends_with("_env") =>
            {
                format!("{}= \"••••••\"", k)
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let body = html! {
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
        let read = crate::sync::check_source(src).await;
        let took = t0.elapsed().as_secs_f64();
        sections.push(html! {
            h2 { (src.name) " (" (src.kind.type_name()) " " span.mono { (src.kind.place()) } ")" }
            @match &read {
                Err(e) => p.error { "FAILED: " (e.message) },
                Ok((said, b)) => {
                    @if let Some(said) = said { p { "The source says: " (said) } }
                    p { span.badge.ok { "ok" } " " (b.users.len()) " users, " (b.groups.len()) " groups, " (b.errors.len()) " skipped, in " (format!("{took:.1}")) " s" }
                    table {
                        thead { tr { th { "Username" } th { "Full name" } th { "Email" } } }
                        tbody { @for u in b.users.iter().take(10) { tr { td { (u.username.as_str()) } td { (field(u, "full_name")) } td { (field(u, "email")) } } } }
                    }
                    @if !b.errors.is_empty() {
                        h3 { "First problems" }
                        ul { @for e in b.errors.iter().take(10) { li { span.mono { (e.dn) } ": " (e.reason) } } }
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
}
