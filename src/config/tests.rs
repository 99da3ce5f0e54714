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
    assert_eq!(c.store.sqlite_path().unwrap(), Path::new("/etc/dirsync/dirsync.db"));
    let s = &c.sources[0];
    assert_eq!(s.query().id_attribute, "entryuuid");
    assert_eq!(s.query().member_attribute, "member");
    assert_eq!(&*s.fields[0].name, "username");
    assert!(s.fields.iter().find(|f| &*f.name == "full_name").unwrap().required);
    let l = s.settings::<crate::sources::ldif::LdifConfig>().expect("an ldif source");
    assert_eq!(l.path, Path::new("/etc/dirsync/d.ldif"));
    assert!(s.settings::<crate::sources::ldap::LdapConfig>().is_none());
    assert_eq!(c.safety.on_missing, OnMissing::Disable);
}

#[test]
fn errors_name_file_key_and_expectation() {
    let e = parse(&MIN.replace("type = \"ldif\"", "type = \"ldiff\"")).unwrap_err().to_string();
    assert!(e.starts_with("/etc/dirsync/dirsync.toml: source \"corp\": sources[0].type: expected"), "{e}");
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
    let l = c.sources[0].settings::<crate::sources::ldap::LdapConfig>().unwrap();
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), "s3cret");
    assert!(!format!("{c:?}").contains("s3cret"));
    let e = parse(&base.replace("ldap://", "http://")).unwrap_err().to_string();
    assert!(e.contains("sources[0].url: expected ldap://"), "{e}");
    let lit = base.replace("bind_password_env = \"DIRSYNC_TEST_PW_XYZ\"", "bind_password = \"pw\"");
    assert_eq!(parse(&lit).unwrap().warnings.len(), 1);
}

const LDAP: &str = r#"
[[sources]]
name = "corp"
type = "ldap"
url = "URL"
base_dn = "dc=x"
[sources.fields]
username = "uid"
full_name = "cn"
"#;

#[test]
fn toml_errors_never_quote_a_password() {
    for line in [
        "bind_password = Sup3r-S3cret-PW!",
        "bind_password = \"Sup3r-S3cret-PW!",
        "bind_password = 123456789",
        "bind_password = [\"Sup3r-S3cret-PW!\"]",
        "bind_password = { x = \"Sup3r-S3cret-PW!\" }",
    ] {
        let text = LDAP.replace("url = \"URL\"", &format!("url = \"ldap://h:389\"\nbind_dn = \"cn=a\"\n{line}"));
        let e = parse(&text).unwrap_err().to_string();
        assert!(!e.contains("Sup3r") && !e.contains("123456789"), "{line} → {e}");
        // Syntax errors name the line, type errors the key.
        assert!(
            e.contains("line ") || e.contains("sources[0].bind_password: expected a quoted string"),
            "{line} → {e}"
        );
        assert!(e.contains("bind_password"), "{line} → {e}");
    }
    // The same under [sources.writeback].
    let text = format!("{MIN}\n[sources.writeback]\nenabled = true\nbind_password = 987654321\n");
    let e = parse(&text).unwrap_err().to_string();
    assert!(!e.contains("987654321"), "{e}");
}

#[test]
fn a_password_file_given_as_the_config_is_not_printed() {
    for content in ["Sup3r-S3cret-PW!\n", "Sup3r S3cret PW\n", "[Sup3r-S3cret\n", "\"Sup3r-S3cret\"\n"] {
        let e = parse(content).unwrap_err().to_string();
        assert!(!e.contains("Sup3r") && !e.contains("S3cret"), "{content:?} → {e}");
        assert!(e.starts_with("/etc/dirsync/dirsync.toml: line 1"), "{e}");
    }
}

#[test]
fn an_empty_literal_password_is_refused() {
    let text = LDAP.replace("url = \"URL\"", "url = \"ldap://h:389\"\nbind_dn = \"cn=a\"\nbind_password = \"\"");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("sources[0].bind_password: is empty"), "{e}");
    let text = format!(
        "{}\n[sources.writeback]\nenabled = true\nbind_dn = \"cn=w\"\nbind_password = \"\"\n",
        LDAP.replace("URL", "ldap://h:389")
    );
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("writeback.bind_password: is empty"), "{e}");
}

#[test]
fn an_empty_or_folder_store_path_is_refused() {
    let e = parse(&format!("[store]\npath = \"\"\n{MIN}")).unwrap_err().to_string();
    assert!(e.contains("store.path: expected the store file's path"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[store]\npath = \"{}\"\n{MIN}", dir.path().display());
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("store.path") && e.contains("is a folder"), "{e}");
}

#[test]
fn bad_urls_are_config_errors_not_panics() {
    for (url, why) in [
        ("ldap://", "no host"),
        ("ldaps://", "no host"),
        ("ldap:///dc=x", "no host"),
        ("ldap://[::1", "expected ldap://"),
        ("ldap://h:99999", "expected ldap://"),
        ("ldap://h:0", "port 0"),
        ("ldap://h:389/dc=x", "base_dn"),
        ("http://h", "expected ldap://"),
    ] {
        let e = parse(&LDAP.replace("URL", url)).unwrap_err().to_string();
        assert!(e.contains("sources[0].url") && e.contains(why), "{url} → {e}");
    }
    let e = parse(&LDAP.replace("URL", "ldap://admin:Sup3r@h:389")).unwrap_err().to_string();
    assert!(!e.contains("Sup3r") && e.contains("credentials"), "{e}");
    for ok in ["ldap://127.0.0.1:389", "ldaps://dc1.example.com", "ldap://[::1]:389/"] {
        parse(&LDAP.replace("URL", ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let text = LDAP.replace("url = \"URL\"", &format!("url = \"ldaps://h\"\nca_file = \"{}\"", ca.display()));
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("sources[0].ca_file") && e.contains("no usable PEM certificate"), "{e}");
}

#[test]
fn bad_filters_and_durations_are_config_errors() {
    let e = parse(&MIN.replace("path = \"d.ldif\"", "path = \"d.ldif\"\nuser_filter = \"(cn=a(b)\"")).unwrap_err();
    assert!(e.to_string().contains("sources[0].user_filter"), "{e}");
    let deep = format!("{}(uid=a){}", "(!".repeat(10_000), ")".repeat(10_000));
    let e =
        parse(&MIN.replace("path = \"d.ldif\"", &format!("path = \"d.ldif\"\ngroup_filter = \"{deep}\""))).unwrap_err();
    assert!(e.to_string().contains("nested more than"), "{e}");
    let text = LDAP.replace("URL", "ldap://h") + "[sources.incremental]\nfull_every = \"18446744073709551615s2s\"\n";
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("incremental.full_every") && e.contains("too long"), "{e}");
}

#[test]
fn app_owned_fields_need_a_source_that_can_be_written_back() {
    let text = MIN
        .replace("full_name = \"cn\"", "full_name = \"cn\"\nprint_code = { attribute = \"pager\", owner = \"app\" }");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("sources[0].fields.print_code.owner") && e.contains("type = \"ldif\" has none"), "{e}");
    let ldap = LDAP
        .replace("URL", "ldap://h")
        .replace("full_name = \"cn\"", "full_name = \"cn\"\nprint_code = { attribute = \"pager\", owner = \"app\" }");
    parse(&ldap).unwrap();
}

#[test]
fn ldap_shaped_sources_refuse_names_that_are_not_ldap_attributes() {
    let text = MIN.replace("full_name = \"cn\"", "full_name = \"name.fullName\"");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("sources[0].fields.full_name") && e.contains("not an LDAP attribute name"), "{e}");
    let text = MIN.replace("full_name = \"cn\"", "full_name = { template = \"{First Name}\" }");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("sources[0].fields.full_name") && e.contains("\"first name\""), "{e}");
}

#[test]
fn server_settings_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.token"), "0123456789abcdef0123\n").unwrap();
    std::fs::write(dir.path().join("short.token"), "short\n").unwrap();
    let with = |server: &str| {
        let text = format!("{MIN}\n[server]\n{server}\n");
        Config::parse(&text, &dir.path().join("dirsync.toml")).map(|c| c.server.unwrap())
    };
    let client = |token: &str, scopes: &str| {
        format!("[[server.clients]]\nname = \"app\"\ntoken_file = \"{token}\"\nscopes = {scopes}\n")
    };
    let s = with(&format!("listen = \"127.0.0.1:0\"\n{}", client("ok.token", "[\"read\", \"auth\"]"))).unwrap();
    assert_eq!(s.listen.port(), 0);
    assert!(s.clients[0].may(crate::config::Scope::Auth) && !s.clients[0].may(crate::config::Scope::Write));
    assert!(!format!("{s:?}").contains("0123456789abcdef0123"), "the token is not in Debug output");
    let cases = [
        ("listen = \"0.0.0.0:8080\"", "server.listen: 0.0.0.0:8080 is not a loopback address"),
        ("listen = \"localhost\"", "server.listen: expected an address and port"),
        ("tls_cert_file = \"ok.token\"\ntls_key_file = \"ok.token\"", "server.tls_cert_file: "),
        ("tls_cert_file = \"ok.token\"", "server.tls_key_file: missing"),
        (&client("short.token", "[\"read\"]"), "server.clients[0].token_file: the token is shorter than 16"),
        (&client("ok.token", "[\"root\"]"), "server.clients[0].scopes: expected \"read\""),
        (&format!("{}colour = \"red\"\n", client("ok.token", "[\"read\"]")), "server.clients[0].colour: unknown key"),
        ("[server.auth]\nfailures_per_user = 0", "server.auth.failures_per_user: expected 1 to 100000"),
    ];
    for (text, want) in cases {
        let e = with(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text} → {e}");
    }
    assert!(with("listen = \"0.0.0.0:8080\"\nallow_plaintext = true").is_ok());
    // A token file is not a certificate: the file is named, its content is not shown.
    let e = with("tls_cert_file = \"ok.token\"\ntls_key_file = \"ok.token\"").unwrap_err().to_string();
    assert!(e.contains("ok.token") && !e.contains("0123456789abcdef0123"), "{e}");
    // Two clients with one token.
    let two =
        format!("{}{}", client("ok.token", "[\"read\"]"), client("ok.token", "[\"read\"]").replace("\"app\"", "\"b\""));
    assert!(with(&two).unwrap_err().to_string().contains("same token"));
    // Schedules: a bad pattern names the key.
    let text = format!("[schedule]\nfull = \"61 * * * *\"\n{MIN}");
    let e = Config::parse(&text, &dir.path().join("dirsync.toml")).unwrap_err().to_string();
    assert!(e.contains("schedule.full: \"61 * * * *\" is not a valid cron pattern"), "{e}");
}

#[test]
fn writeback_in_flight_defaults_to_eight_and_is_bounded() {
    let wb =
        |extra: &str| format!("{}\n[sources.writeback]\nenabled = true\n{extra}", LDAP.replace("URL", "ldap://h:389"));
    let cfg = parse(&wb("")).unwrap();
    assert_eq!(cfg.sources[0].writeback.as_ref().unwrap().in_flight, 8);
    let cfg = parse(&wb("in_flight = 1\n")).unwrap();
    assert_eq!(cfg.sources[0].writeback.as_ref().unwrap().in_flight, 1);
    for bad in ["0", "65", "-3"] {
        let e = parse(&wb(&format!("in_flight = {bad}\n"))).unwrap_err().to_string();
        assert!(e.contains("writeback.in_flight: expected a number of items from 1 to 64"), "{bad} → {e}");
    }
}

#[test]
fn a_partial_fields_table_merges_over_the_kinds_defaults() {
    let text = "[[sources]]\nname = \"u\"\ntype = \"unix\"\npasswd_file = \"p\"\ngroup_file = \"g\"\n\
                [sources.fields]\noffice = false\nfull_name = \"gecos\"\nshell = \"shell\"\n";
    let c = parse(text).unwrap();
    let names: Vec<&str> = c.sources[0].fields.iter().map(|f| &*f.name).collect();
    assert!(names.contains(&"username") && names.contains(&"shell"), "{names:?}");
    assert!(!names.contains(&"office"), "turned off: {names:?}");
    let full = c.sources[0].fields.iter().find(|f| &*f.name == "full_name").unwrap();
    assert_eq!(full.attributes(), ["gecos"], "the given entry wins");
    let e = parse(&MIN.replace("full_name = \"cn\"", "full_name = \"cn\"\nemail = false")).unwrap_err().to_string();
    assert!(e.contains("sources[0].fields.email") && e.contains("has none"), "a kind without defaults: {e}");
}

#[test]
fn a_source_name_with_a_comma_is_refused_as_runs_list_sources_with_commas() {
    let e = parse(&MIN.replace("name = \"corp\"", "name = \"corp,hr\"")).unwrap_err();
    assert_eq!(e.key, "sources[0].name", "{e}");
    assert!(e.message.contains("comma"), "{e}");
    assert!(parse(&MIN.replace("name = \"corp\"", "name = \"corp hr (2026)\"")).is_ok());
}

#[test]
fn a_base_dn_that_is_not_a_dn_is_refused_and_an_escaped_comma_is_not_a_mistake() {
    let ldap = |base: &str| {
        format!("[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1\"\nbase_dn = \"{base}\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n")
    };
    for bad in ["example.com", "dc=", "dc=example,,dc=com", "=x"] {
        let e = parse(&ldap(bad)).unwrap_err();
        assert_eq!(e.key, "sources[0].base_dn", "{bad}: {e}");
        assert!(e.message.contains("expected a DN such as"), "{bad}: {e}");
    }
    assert!(parse(&ldap("ou=Doe\\\\, John,dc=example,dc=com")).is_ok());
    assert!(parse(&ldap("DC=samdom,DC=example,DC=com")).is_ok());
}

#[test]
fn a_missing_config_or_admin_hash_says_which_command_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(&dir.path().join("absent.toml")).unwrap_err();
    assert!(e.message.contains("`dirsync init`"), "{e}");
    let text = format!("{MIN}[server]\n[server.admin]\npassword_file = \"admin.hash\"\n");
    let e = Config::parse(&text, &dir.path().join("c.toml")).unwrap_err();
    assert_eq!(e.key, "server.admin.password_file", "{e}");
    assert!(e.message.contains("`dirsync admin-password"), "{e}");
}

#[test]
fn a_six_field_cron_that_reads_like_five_fields_is_a_warning_saying_what_it_does() {
    let c = parse(&format!("{MIN}[schedule]\nfull = \"55 0 * * * *\"\n")).unwrap();
    let w = c.warnings.iter().find(|w| w.contains("schedule.full")).expect("a warning");
    assert!(w.contains("every hour at :00:55") && w.contains("\"55 0 * * *\""), "{w}");
    // Five fields, or seconds that are meant: no warning.
    for fine in ["55 0 * * *", "0 55 0 * * *", "*/10 * * * * *"] {
        let c = parse(&format!("{MIN}[schedule]\nfull = \"{fine}\"\n")).unwrap();
        assert!(!c.warnings.iter().any(|w| w.contains("6 fields")), "{fine}: {:?}", c.warnings);
    }
}

#[test]
fn a_toml_mistake_names_its_line_and_column() {
    let e = parse(&MIN.replace("type = \"ldif\"", "type = ldif")).unwrap_err();
    assert!(e.message.contains("line 4, column 8"), "{e}");
}

#[test]
fn a_mistake_in_a_source_names_the_source() {
    let e = parse(&MIN.replace("full_name = \"cn\"", "full_name = 5")).unwrap_err();
    assert_eq!(e.key, "sources[0].fields.full_name", "the key stays a path: {e}");
    assert!(e.to_string().contains("source \"corp\": sources[0].fields.full_name: "), "{e}");
    // Outside a source's table, no source is named.
    let e = parse(&format!("{MIN}[safety]\non_missing = \"wipe\"\n")).unwrap_err();
    assert!(!e.to_string().contains("(source"), "{e}");
}

#[test]
fn a_filter_mistake_is_quoted_with_a_caret_under_its_position() {
    let text = MIN.replace("path = \"d.ldif\"", "path = \"d.ldif\"\nuser_filter = \"(&(uid=*)(cn=x)\"");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "sources[0].user_filter", "{e}");
    let lines: Vec<&str> = e.message.lines().collect();
    assert_eq!(lines.len(), 3, "{}", e.message);
    assert_eq!(lines[1].trim(), "(&(uid=*)(cn=x)");
    let caret = lines[2].find('^').unwrap() - lines[1].find('(').unwrap();
    assert_eq!(caret, 15, "under the end, where ')' is missing: {}", e.message);
}

#[test]
fn a_sources_safety_table_sets_its_own_thresholds_and_names_a_wrong_key() {
    let src = |extra: &str| {
        format!("[store]\npath = \"x.db\"\n[[sources]]\nname = \"d\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[sources.safety]\n{extra}")
    };
    let c = parse(&src("max_delete_percent = 5\non_missing = \"delete\"\n")).unwrap();
    let own = c.safety.with(&c.sources[0].safety);
    assert_eq!((own.max_delete_percent, own.max_delete_count, own.on_missing), (5.0, 500, OnMissing::Delete));
    let e = parse(&src("max_delete_percent = 150\n")).unwrap_err().to_string();
    assert!(e.contains("sources[0].safety.max_delete_percent") && e.contains("0 to 100"), "{e}");
    let e = parse(&src("max_delete = 1\n")).unwrap_err().to_string();
    assert!(e.contains("max_delete"), "{e}");
}

#[test]
fn webhook_mistakes_name_the_key_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let hook = |extra: &str| {
        format!("{MIN}\n[server]\n[[server.webhooks]]\nname = \"print\"\nurl = \"https://print.example/h\"\nsecret_file = \"s.whsec\"\n{extra}\n")
    };
    let at = dir.path().join("dirsync.toml");
    let load = |text: String| Config::parse(&text, &at);
    // A secret that is not one: the file is named, its content is not.
    std::fs::write(dir.path().join("s.whsec"), "whsec_not*base64-hunter2\n").unwrap();
    let e = load(hook("")).unwrap_err().to_string();
    assert!(e.contains("server.webhooks[0].secret_file") && e.contains("s.whsec"), "{e}");
    assert!(!e.contains("hunter2"), "the secret is never quoted: {e}");
    std::fs::write(dir.path().join("s.whsec"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let c = load(hook("")).unwrap();
    let w = &c.server.as_ref().unwrap().webhooks[0];
    assert_eq!((w.events, w.start, w.timeout.as_secs(), w.max_retry.as_secs()), (Events::ALL, Start::Now, 10, 3600));
    assert!(!format!("{w:?}").contains("MfKQ9r8"), "Debug hides the secret");
    let e = load(hook("").replace("https://print.example/h", "http://print.example/h")).unwrap_err().to_string();
    assert!(e.contains("server.webhooks[0].url") && e.contains("https"), "{e}");
    let e = load(hook("events = [\"users\"]")).unwrap_err().to_string();
    assert!(e.contains("server.webhooks[0].events"), "{e}");
    let e = load(hook("start = \"yesterday\"")).unwrap_err().to_string();
    assert!(e.contains("server.webhooks[0].start"), "{e}");
    let two = format!(
        "{}[[server.webhooks]]\nname = \"print\"\nurl = \"https://b.example/\"\nsecret_file = \"s.whsec\"\n",
        hook("")
    );
    assert!(load(two).unwrap_err().to_string().contains("names two webhooks"));
}
