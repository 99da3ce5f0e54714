//! Config tests: defaults, relative paths, error messages, secrets, rules, durations.

use super::*;

const MIN: &str = r#"
[[sources]]
name = "corp"
type = "ldif"
path = "d.ldif"
[sources.fields]
username = "uid"
full_name = "cn"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/dirsync/dirsync.toml"))
}

#[test]
fn minimal_config_gets_defaults_and_relative_paths() {
    let c = parse(MIN).unwrap();
    assert_eq!(c.store.path, Path::new("/etc/dirsync/dirsync.db"));
    let s = &c.sources[0];
    assert_eq!(s.id_attribute, "entryuuid");
    assert_eq!(s.member_attribute, "member");
    assert_eq!(&*s.fields[0].name, "username");
    assert!(s.fields.iter().find(|f| &*f.name == "full_name").unwrap().required);
    match &s.kind {
        SourceKind::Ldif(l) => assert_eq!(l.path, Path::new("/etc/dirsync/d.ldif")),
        _ => panic!("expected ldif"),
    }
    assert_eq!(c.safety.on_missing, OnMissing::Disable);
}

#[test]
fn errors_name_file_key_and_expectation() {
    let e = parse(&MIN.replace("type = \"ldif\"", "type = \"ldiff\"")).unwrap_err().to_string();
    assert!(e.starts_with("/etc/dirsync/dirsync.toml: sources[0].type: expected"), "{e}");
    let e = parse(&format!("{MIN}\n[safety]\non_missing = \"nuke\"\n")).unwrap_err().to_string();
    assert!(e.contains("safety.on_missing") && e.contains("\"disable\""), "{e}");
    let e = parse(&MIN.replace("full_name = \"cn\"", "")).unwrap_err().to_string();
    assert!(e.contains("sources[0].fields.full_name: missing"), "{e}");
    let e = parse(&format!("{MIN}\nbogus = 1\n")).unwrap_err().to_string();
    assert!(e.contains("dirsync.toml") && e.contains("bogus"), "{e}");
    let e = parse(&MIN.replace("path = \"d.ldif\"", "path = \"d.ldif\"\nurl = \"ldap://x\"")).unwrap_err().to_string();
    assert!(e.contains("sources[0].url: is not used by type = \"ldif\""), "{e}");
}

#[test]
fn durations_and_incremental_settings() {
    assert_eq!(parse_duration("24h").unwrap(), Some(std::time::Duration::from_secs(86400)));
    assert_eq!(parse_duration("1h30m").unwrap(), Some(std::time::Duration::from_secs(5400)));
    assert_eq!(parse_duration("never").unwrap(), None);
    for bad in ["24", "h", "1y", ""] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    let c = parse(MIN).unwrap();
    assert!(c.sources[0].incremental.enabled);
    let ldap = "[[sources]]\nname = \"l\"\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase_dn = \"dc=x\"\n[sources.incremental]\nfull_every = \"2d\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n";
    let c = parse(ldap).unwrap();
    assert_eq!(c.sources[0].incremental.full_every, Some(std::time::Duration::from_secs(172800)));
    let e = parse(&ldap.replace("\"2d\"", "\"soon\"")).unwrap_err().to_string();
    assert!(e.contains("sources[0].incremental.full_every: expected a duration"), "{e}");
}

#[test]
fn rules_cannot_set_fields_the_directory_updates() {
    let e =
        parse(&format!("{MIN}email = \"mail\"\n[[rules]]\nset = {{ email = \"x@y.z\" }}\n")).unwrap_err().to_string();
    assert!(e.contains("rules[0].set.email") && e.contains("on update"), "{e}");
    let ok = format!("{MIN}card_number = {{ attribute = \"employeeNumber\", on = [\"create\"] }}\n[[rules]]\nwhen_member_of = \"Students\"\nset = {{ card_number = \"0\", credit = 10.0 }}\n");
    let c = parse(&ok).unwrap();
    assert_eq!(c.rules[0].set["credit"], "10");
    assert_eq!(c.rules[0].when_member_of.as_ref().unwrap().key(), "students");
}

#[test]
fn ldap_source_requires_its_keys_and_reads_password_from_env() {
    let base = r#"
[[sources]]
name = "corp"
type = "ldap"
url = "ldap://127.0.0.1:389"
base_dn = "dc=example,dc=com"
bind_dn = "cn=admin,dc=example,dc=com"
bind_password_env = "DIRSYNC_TEST_PW_XYZ"
[sources.fields]
username = "uid"
full_name = "cn"
"#;
    std::env::remove_var("DIRSYNC_TEST_PW_XYZ");
    let e = parse(base).unwrap_err().to_string();
    assert!(e.contains("bind_password_env: the environment variable DIRSYNC_TEST_PW_XYZ is not set"), "{e}");
    std::env::set_var("DIRSYNC_TEST_PW_XYZ", "s3cret");
    let c = parse(base).unwrap();
    let SourceKind::Ldap(l) = &c.sources[0].kind else { panic!() };
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), "s3cret");
    assert!(!format!("{c:?}").contains("s3cret"));
    let e = parse(&base.replace("ldap://", "http://")).unwrap_err().to_string();
    assert!(e.contains("sources[0].url: expected ldap://"), "{e}");
    let lit = base.replace("bind_password_env = \"DIRSYNC_TEST_PW_XYZ\"", "bind_password = \"pw\"");
    assert_eq!(parse(&lit).unwrap().warnings.len(), 1);
}
