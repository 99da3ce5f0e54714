//! Fuzz entry points: one function per fuzz target (`fuzz/fuzz_targets/`),
//! shared with `tests/fuzz_corpus.rs`, which replays the corpus kept in
//! `fuzz/corpus/` on every `cargo test`. Each takes arbitrary bytes and
//! panics only when a promise breaks (a panic, a round trip that changes an
//! entry, an error that quotes a secret).

use std::path::Path;

use crate::config::Config;
use crate::engine::batch::Collector;
use crate::filter::Filter;
use crate::model::{AttrValue, EntryKind, RawEntry};
use crate::sources::ldif::reader::read_all;
use crate::sources::ldif::writer::write_entry;

/// The LDIF reader: never panics; what it reads, written back, reads the same.
pub fn ldif(data: &[u8]) {
    let Ok(entries) = read_all(data) else { return };
    let mut text = String::new();
    for e in &entries {
        write_entry(&mut text, e);
    }
    let back = read_all(text.as_bytes()).unwrap_or_else(|m| panic!("written LDIF does not read back: {m}\n{text}"));
    assert_eq!(back, entries, "round trip changed the entries");
}

/// The filter parser: never panics (a deep filter is an error, not a stack
/// overflow); a parsed filter evaluates against any entry.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(f) = Filter::parse(text) {
        let mut e = RawEntry::new("uid=a,dc=t");
        for (a, v) in [("objectclass", "inetOrgPerson"), ("uid", "a"), ("cn", "A (x) *"), ("uidnumber", "1000")] {
            e.push(a, AttrValue::Text(v.into()));
        }
        let _ = f.matches(&e);
    }
}

/// The SCIM filter and PATCH-path parsers: never panic (deep or long input
/// is an error); a parsed filter prints back to text that parses to the
/// same filter, and evaluates against a user without panicking.
pub fn scim_filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(f) = crate::scim::filter::Filter::parse(text) {
        let printed = f.to_string();
        let back = crate::scim::filter::Filter::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
        assert_eq!(back, f, "{text:?} printed as {printed:?} parses to another filter");
        let user = serde_json::json!({"userName": "a", "emails": [{"type": "work", "value": "a@x"}], "active": true});
        let _ = f.matches(&user, &|_| false);
    }
    let _ = crate::scim::filter::PatchPath::parse(text);
}

/// The config loader: never panics, and an error never quotes the value of
/// a secret key.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Err(e) = Config::parse(text, Path::new("/fuzz/dirsync.toml")) else { return };
    let msg = e.to_string();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        if key.trim().trim_matches('"') != "bind_password" {
            continue;
        }
        let value = value.trim().trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
        // Short values could appear in any message by chance.
        if value.len() >= 8 && value.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&*+-.@^_~".contains(c)) {
            assert!(!msg.contains(value), "the error quotes a password value: {msg}");
        }
    }
}

/// Mapping one entry, then a batch: never panics. The input is an LDIF
/// record; users and groups are mapped with a config that uses templates,
/// transforms and a regex.
pub fn mapping(data: &[u8]) {
    let Ok(entries) = read_all(data) else { return };
    let cfg = mapping_config();
    let mut c = Collector::new(&cfg.sources[0]);
    for (i, e) in entries.into_iter().enumerate() {
        c.add(if i % 3 == 2 { EntryKind::Group } else { EntryKind::User }, e);
    }
    let b = c.finish();
    let _ = crate::engine::plan::build(&cfg, &crate::model::Snapshot::default(), &[b]);
}

fn mapping_config() -> Config {
    let text = r#"
[[sources]]
name = "f"
type = "ldif"
path = "x.ldif"
member_attribute = "member"
[sources.fields]
username = { attribute = "uid", transform = ["trim", "lower"] }
full_name = { template = "{givenName} {sn}", required = false }
email = "mail"
office = { attribute = "roomNumber", regex = "^R(\\d+)$", replace = "Room $1" }
extension = { attribute = "telephoneNumber", transform = "digits" }
"#;
    Config::parse(text, Path::new("/fuzz/dirsync.toml")).expect("the fuzz mapping config is valid")
}

/// The table-shaped kinds: each line as a program user line and as passwd
/// and group lines, and the whole input as a CSV file; the entries mapped,
/// collected and planned. Never panics; every skipped entry says where it was.
pub fn tables(data: &[u8]) {
    use crate::sources::{csv, program, unix};
    let cfg = tables_config();
    let mut c = Collector::new(&cfg.sources[0]);
    for (n, line) in data.split(|&b| b == b'\n').enumerate() {
        let e = program::user_entry(line, &format!("fuzz line {}", n + 1));
        if let Some(Err(_)) = &e.facts.id {
            assert!(e.facts.origin.is_some(), "a skipped line names where it was");
        }
        c.add(EntryKind::User, e);
        if let Ok(text) = std::str::from_utf8(line) {
            let _ = unix::parse_passwd(text);
            let _ = unix::parse_group(text);
        }
    }
    let b = c.finish();
    let _ = crate::engine::plan::build(&cfg, &crate::model::Snapshot::default(), &[b]);
    let csv_cfg = tables_config_csv();
    let kind = csv_cfg.sources[0].settings::<csv::CsvConfig>().expect("a csv source");
    if let Ok(entries) = csv::entries_of(data, kind, "login") {
        let mut c = Collector::new(&csv_cfg.sources[0]);
        for (k, e) in entries {
            c.add(k, e);
        }
        let b = c.finish();
        let _ = crate::engine::plan::build(&csv_cfg, &crate::model::Snapshot::default(), &[b]);
    }
}

fn tables_config() -> Config {
    // A program source needs an executable file at load: this process is one.
    let me = std::env::current_exe().expect("the running executable");
    let text = format!("[[sources]]\nname = \"p\"\ntype = \"program\"\nprogram = \"{}\"\n", me.display());
    Config::parse(&text, Path::new("/fuzz/dirsync.toml")).expect("the fuzz program config is valid")
}

fn tables_config_csv() -> Config {
    let text = "[[sources]]\nname = \"c\"\ntype = \"csv\"\npath = \"/nonexistent/fuzz.csv\"\n[sources.fields]\nusername = \"login\"\nfull_name = { attribute = \"name\", required = false }\n";
    Config::parse(text, Path::new("/fuzz/dirsync.toml")).expect("the fuzz csv config is valid")
}

/// SCIM bodies and PATCH requests: the input is a JSON document, kept as a
/// POST body and applied as a PATCH (`{"Operations": …}`) to a user. Never
/// panics; what is kept is a JSON object without `id`, `meta`, `groups` or
/// `password` at its top, keeping it again changes nothing, and a patched
/// user keeps none of them either.
pub fn scim_patch(data: &[u8]) {
    use crate::scim::resource::{apply_patch, clean_body, Kind};
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let read_only = |m: &serde_json::Map<String, serde_json::Value>| {
        m.keys().any(|k| ["id", "meta", "groups", "password"].iter().any(|r| k.eq_ignore_ascii_case(r)))
    };
    for kind in [Kind::User, Kind::Group] {
        if let Ok(kept) = clean_body(kind, &body) {
            assert!(!read_only(&kept), "kept a read-only attribute: {kept:?}");
            let again = clean_body(kind, &serde_json::Value::Object(kept.clone())).expect("kept once, kept again");
            assert_eq!(again, kept, "keeping a kept body changed it");
        }
        let mut user = serde_json::json!({"userName": "a", "emails": [{"type": "work", "value": "a@x"}],
            "members": [{"value": "1"}], "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "d"}});
        if apply_patch(kind, &mut user, &body).is_ok() {
            let obj = user.as_object().expect("a patched resource stays an object");
            assert!(!read_only(obj), "a PATCH set a read-only attribute: {user}");
        }
    }
}
