//! The change feed carries every change an application needs to mirror
//! dirsync from it alone: users created (with their fields, status and
//! direct groups), changed, renamed, disabled and deleted; groups created,
//! renamed and deleted; memberships of users and of nested groups. A mirror
//! built by replaying the whole feed from the start must equal `users list`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::harness::*;
use crate::serve::{school, server_section, Service, READER, WRITER};

const CORE: [&str; 6] = ["full_name", "email", "department", "office", "card_number", "card_number2"];

#[derive(Default, Debug)]
struct User {
    username: String,
    status: String,
    values: BTreeMap<String, String>,
    groups: BTreeSet<String>,
}

#[derive(Default, Debug)]
struct Mirror {
    users: HashMap<i64, User>,
    /// Group → the groups it is a member of.
    parents: BTreeMap<String, BTreeSet<String>>,
}

impl Mirror {
    fn apply(&mut self, c: &Value) {
        let s = |k: &str| c[k].as_str().map(str::to_string);
        let (action, name) = (s("action").unwrap(), s("name").unwrap());
        let user = c["user_id"].as_i64();
        match action.as_str() {
            "create" => {
                let values = c["fields"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())));
                let groups = c["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string());
                let u = User {
                    username: name,
                    status: s("status").unwrap_or_default(),
                    values: values.collect(),
                    groups: groups.collect(),
                };
                self.users.insert(user.unwrap(), u);
            }
            "update" | "set" | "generate" => {
                let u = self.users.get_mut(&user.unwrap()).unwrap();
                let field = s("field").unwrap();
                if field == "dn" {
                    return; // the entry's DN, which users list shows apart (not compared)
                }
                match s("new") {
                    Some(v) => u.values.insert(field, v),
                    None => u.values.remove(&field),
                };
            }
            "rename" => self.users.get_mut(&user.unwrap()).unwrap().username = s("new").unwrap(),
            "enable" | "disable" => self.users.get_mut(&user.unwrap()).unwrap().status = s("new").unwrap(),
            "delete" => {
                self.users.remove(&user.unwrap());
            }
            "group_add" => {
                self.users.get_mut(&user.unwrap()).unwrap().groups.insert(s("new").unwrap());
            }
            "group_remove" => {
                self.users.get_mut(&user.unwrap()).unwrap().groups.remove(&s("old").unwrap());
            }
            "group_create" => {
                self.parents.entry(name).or_default();
            }
            "subgroup_add" => {
                self.parents.entry(name).or_default().insert(s("new").unwrap());
            }
            "subgroup_remove" => {
                self.parents.entry(name).or_default().remove(&s("old").unwrap());
            }
            "group_update" => {
                let (from, to) = (s("old").unwrap(), s("new").unwrap());
                let swap = |set: &mut BTreeSet<String>| {
                    if set.remove(&from) {
                        set.insert(to.clone());
                    }
                };
                self.users.values_mut().for_each(|u| swap(&mut u.groups));
                self.parents.values_mut().for_each(swap);
                if let Some(p) = self.parents.remove(&from) {
                    self.parents.insert(to, p);
                }
            }
            "group_delete" => {
                self.users.values_mut().for_each(|u| {
                    u.groups.remove(&name);
                });
                self.parents.values_mut().for_each(|p| {
                    p.remove(&name);
                });
                self.parents.remove(&name);
            }
            "relink" => {}
            other => panic!("an action the mirror does not know: {other} in {c}"),
        }
    }

    /// The users as `users list --json` shows them (the compared keys).
    fn listed(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                let mut all = BTreeSet::new();
                let mut todo: Vec<String> = u.groups.iter().cloned().collect();
                while let Some(g) = todo.pop() {
                    if all.insert(g.clone()) {
                        todo.extend(self.parents.get(&g).into_iter().flatten().cloned());
                    }
                }
                let mut v = json!({"username": u.username, "status": u.status, "groups": u.groups, "all_groups": all});
                let custom: BTreeMap<&String, &String> =
                    u.values.iter().filter(|(k, _)| !CORE.contains(&k.as_str())).collect();
                v["fields"] = json!(custom);
                for k in CORE {
                    v[k] = json!(u.values.get(k));
                }
                v
            })
            .collect();
        out.sort_by(|a, b| a["username"].as_str().cmp(&b["username"].as_str()));
        out
    }
}

/// `users list --json` reduced to what the mirror compares.
fn listed(env: &Env) -> Vec<Value> {
    env.users()
        .into_iter()
        .map(|u| {
            let mut v = json!({});
            for k in ["username", "status", "groups", "all_groups", "fields"].into_iter().chain(CORE) {
                v[k] = u[k].clone();
            }
            v
        })
        .collect()
}

fn replay(svc: &Service) -> Mirror {
    let mut m = Mirror::default();
    let mut since = 0;
    loop {
        let (s, page) = svc.get(&format!("/api/changes?since={since}&limit=7"), READER);
        assert_eq!(s, 200, "{page}");
        let changes = page["changes"].as_array().unwrap();
        if changes.is_empty() {
            return m;
        }
        for c in changes {
            if c["user_id"].is_i64() {
                assert_eq!(c["username"], c["name"], "a user's change names its user: {c}");
            }
            m.apply(c);
        }
        since = page["next"].as_i64().unwrap();
    }
}

#[test]
fn replaying_the_whole_feed_into_an_empty_mirror_gives_the_users_list() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "[safety]\nmax_delete_percent = 100\n");
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["status"], "ok");
    let (s, _, _) = svc.call("PATCH", "/api/users/alice", Some(WRITER), Some(json!({"fields": {"credit": "5"}})));
    assert_eq!(s, 200);
    // A second round of every kind of change.
    let g = |cn: &str| format!("cn={cn},ou=groups,{SUFFIX}");
    let p = |uid: &str| format!("uid={uid},ou=people,{SUFFIX}");
    slapd.modify(&person("erin", "Erin Evans", ""));
    slapd.modify(&group("Clubs", &["uid=erin", "uid=alice"]));
    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\n\
         dn: {}\nchangetype: modify\nreplace: member\nmember: {}\n\n\
         dn: {}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n\n\
         dn: {}\nchangetype: modrdn\nnewrdn: cn=Faculty\ndeleteoldrdn: 1\n\n\
         dn: {}\nchangetype: modify\nreplace: cn\ncn: Alice Archer-Smith\n\n\
         dn: {}\nchangetype: delete\n\n",
        g("Staff"),
        g("Clubs"),
        g("Students"),
        p("erin"),
        p("bob"),
        g("Teachers"),
        p("alice"),
        p("carol"),
    ));
    assert_eq!(svc.sync()["status"], "ok");
    let (s, _, _) = svc.call("PATCH", "/api/users/erin", Some(WRITER), Some(json!({"fields": {"credit": "1"}})));
    assert_eq!(s, 200);
    // The Students group goes.
    slapd.modify(&format!("dn: {}\nchangetype: delete\n\n", g("Students")));
    assert_eq!(svc.sync()["status"], "ok");

    let mirror = replay(&svc);
    let want = listed(&env);
    assert!(want.iter().any(|u| u["username"] == "robert"), "the rename happened: {want:?}");
    assert!(want.iter().any(|u| u["all_groups"].to_string().contains("Staff") && u["username"] == "erin"), "{want:?}");
    assert_eq!(mirror.listed(), want, "the mirror from the feed alone");
    let (_, f) = svc.get("/api/changes?limit=1000", READER);
    let actions: BTreeSet<&str> =
        f["changes"].as_array().unwrap().iter().map(|c| c["action"].as_str().unwrap()).collect();
    for a in ["create", "group_create", "subgroup_add", "group_update", "group_delete", "rename", "disable", "set"] {
        assert!(actions.contains(a), "{a} in {actions:?}");
    }
    assert_eq!(svc.stop(10), 0);
}
