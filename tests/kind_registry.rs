//! A source kind added from outside the crate: its settings, its source and
//! one registration line, nothing else. The config reads its section (and
//! refuses what it has no use for), and a real sync into SQLite runs through
//! it with the pipeline's default opener.

use std::any::Any;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use dirsync::config::{Config, ConfigError, DirectoryQuery, Section, SourceConfig};
use dirsync::history::RunStatus;
use dirsync::model::{AttrValue, EntryKind, RawEntry};
use dirsync::sources::kind::{Kind, Registration};
use dirsync::sources::{EntrySink, FetchCounts, Fetched, Source, SourceError, KINDS};
use dirsync::store::sqlite::SqliteStore;
use dirsync::store::Store;
use dirsync::sync::SyncOptions;

/// `type = "roster"`: users listed in the config itself, with columns named
/// like a spreadsheet's headers.
#[derive(Debug)]
struct Roster {
    users: Vec<String>,
    query: DirectoryQuery,
}

const ROSTER: Registration = Registration { types: &["roster"], keys: &["users"], parse: parse_roster };

fn parse_roster(_type: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let users = s.strings("users")?.ok_or_else(|| s.err("users", "missing (expected a list of names)"))?;
    let query = DirectoryQuery {
        // Lower-case, as entries' attribute names are.
        id_attribute: "employee id".into(),
        group_name_attribute: "group name".into(),
        member_attribute: "members".into(),
        ..DirectoryQuery::default()
    };
    Ok(Box::new(Roster { users, query }))
}

impl Kind for Roster {
    fn type_name(&self) -> &'static str {
        "roster"
    }
    fn place(&self) -> String {
        format!("{} names in the config", self.users.len())
    }
    fn query(&self) -> &DirectoryQuery {
        &self.query
    }
    fn check_field_source(&self, name: &str) -> Result<(), String> {
        // Names arrive lower-cased: columns match without regard to case.
        match name {
            "login" | "full name" => Ok(()),
            other => Err(format!("\"{other}\" is not a roster column (expected \"Login\" or \"Full Name\")")),
        }
    }
    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(RosterSource { name: cfg.name.clone(), users: self.users.clone() })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct RosterSource {
    name: String,
    users: Vec<String>,
}

#[async_trait]
impl Source for RosterSource {
    fn name(&self) -> &str {
        &self.name
    }
    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let mut b = sink.batcher();
        for u in &self.users {
            let mut e = RawEntry::new(format!("roster:{u}"));
            e.push("Login", AttrValue::Text(u.clone()));
            e.push("Full Name", AttrValue::Text(format!("{u} from the roster")));
            e.push("Employee ID", AttrValue::Text(format!("r-{u}")));
            b.push(EntryKind::User, e).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        let counts = FetchCounts { users: self.users.len() as u64, groups: 0 };
        Ok(Fetched { counts, ..Fetched::default() })
    }
}

const TEXT: &str = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"staff\"\ntype = \"roster\"\nusers = [\"amy\", \"bob\"]\n[sources.fields]\nusername = \"Login\"\nfull_name = \"Full Name\"\n";

fn parse(text: &str, dir: &Path) -> Result<Config, ConfigError> {
    Config::parse_with(text, &dir.join("dirsync.toml"), &[KINDS, &[ROSTER]].concat())
}

#[tokio::test]
async fn a_kind_registered_outside_the_crate_is_parsed_opened_and_synced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = parse(TEXT, dir.path()).unwrap();
    assert_eq!(cfg.sources[0].kind.type_name(), "roster");
    assert_eq!(cfg.sources[0].settings::<Roster>().unwrap().users, ["amy", "bob"]);
    let store = SqliteStore::open(&cfg.store.path).unwrap();
    let out = dirsync::sync::run(&cfg, &store, &SyncOptions::default(), Arc::new(AtomicU64::new(0))).await.unwrap();
    assert_eq!((out.status, out.counts.created), (RunStatus::Ok, 2), "{out:?}");
    let snap = store.snapshot().unwrap();
    let amy = snap.users.iter().find(|u| u.username == "amy").unwrap();
    assert_eq!((amy.external_id.as_str(), amy.fields.get("full_name")), ("r-amy", Some("amy from the roster")));
}

#[test]
fn without_its_registration_the_type_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::parse(TEXT, &dir.path().join("dirsync.toml")).unwrap_err().to_string();
    assert!(e.contains("sources[0].type: expected \"ldap\", \"ad\" or \"ldif\", got \"roster\""), "{e}");
    let e = parse(&TEXT.replace("type = \"roster\"", "type = \"nope\""), dir.path()).unwrap_err().to_string();
    assert!(e.contains("expected \"ldap\", \"ad\", \"ldif\" or \"roster\", got \"nope\""), "{e}");
}

#[test]
fn the_kind_decides_which_keys_and_fields_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    // Another kind's key, a typo, and what the kind cannot do.
    let cases = [
        ("users = [", "url = \"ldap://h\"\nusers = [", "sources[0].url: is not used by type = \"roster\""),
        ("users = [", "userz = 1\nusers = [", "sources[0].userz: unknown key"),
        ("users = [", "import_disabled = true\nusers = [", "sources[0].import_disabled: is not used by type = \"roster\""),
        ("[sources.fields]", "[sources.incremental]\n[sources.fields]", "sources[0].incremental: is not used by type = \"roster\""),
        ("full_name = \"Full Name\"", "full_name = \"cn\"", "sources[0].fields.full_name: \"cn\" is not a roster column"),
        (
            "full_name = \"Full Name\"",
            "full_name = \"Full Name\"\ncode = { attribute = \"Login\", owner = \"app\" }",
            "sources[0].fields.code.owner: owner = \"app\" needs a source dirsync can write the value back to; type = \"roster\" has none",
        ),
        ("users = [\"amy\", \"bob\"]", "users = \"amy\"", "sources[0].users: expected a list of strings"),
    ];
    for (from, to, want) in cases {
        let e = parse(&TEXT.replace(from, to), dir.path()).unwrap_err().to_string();
        assert!(e.contains(want), "{to} → {e}");
    }
}
