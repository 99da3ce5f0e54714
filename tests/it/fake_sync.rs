//! An in-process server speaking just enough RFC 4533 to test what slapd
//! would not produce on demand: it answers every refresh *with* a cookie by
//! `e-syncRefreshRequired` (4096), and a refresh without one with every entry
//! and a new cookie. dirsync must then start over with a full read, in the
//! same run, and change nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapMsg, LdapOp, LdapResultCode, LdapSearchResultEntry, LdapSearchScope, SyncStateValue};

use crate::fake_ldap::{result, serve_ldap, text_attr as attr};
use crate::harness::{count, spawn_server, Env};

const UUIDS: [&str; 3] = [
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "33333333-3333-4333-8333-333333333333",
];

/// How the fake answers a refresh that carries a cookie.
#[derive(Clone, Copy)]
enum Answer {
    /// e-syncRefreshRequired.
    RefreshRequired,
    /// Like 389 Directory Server: one changed entry whose sync UUID is not its
    /// entryUUID, then refreshDeletes = FALSE without a present list.
    ForeignUuids,
}

async fn serve(stream: tokio::net::TcpStream, refused: Arc<AtomicUsize>, answer: Answer) {
    serve_ldap(stream, move |msg| {
        let id = msg.msgid;
        let mut out = Vec::new();
        match msg.op {
            LdapOp::SearchRequest(req) if req.scope == LdapSearchScope::Base && req.base.is_empty() => {
                out.push(LdapMsg::new(
                    id,
                    LdapOp::SearchResultEntry(LdapSearchResultEntry {
                        dn: String::new(),
                        attributes: vec![
                            attr("supportedControl", "1.3.6.1.4.1.4203.1.9.1.1"),
                            attr("objectClass", "OpenLDAProotDSE"),
                        ],
                    }),
                ));
                out.push(LdapMsg::new(id, LdapOp::SearchResultDone(result(LdapResultCode::Success))));
            }
            LdapOp::SearchRequest(req) => {
                let cookie = msg.ctrl.iter().find_map(|c| match c {
                    LdapControl::SyncRequest { cookie, .. } => Some(cookie.clone()),
                    _ => None,
                });
                match cookie {
                    Some(Some(_)) if matches!(answer, Answer::ForeignUuids) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                        let f = format!("{:?}", req.filter).to_lowercase();
                        if !f.contains("groupofnames") {
                            out.push(LdapMsg::new_with_ctrls(
                                id,
                                LdapOp::SearchResultEntry(LdapSearchResultEntry {
                                    dn: "uid=user0,ou=people,dc=fake".into(),
                                    attributes: vec![
                                        attr("entryUUID", UUIDS[0]),
                                        attr("uid", "user0"),
                                        attr("cn", "User 0"),
                                    ],
                                }),
                                vec![LdapControl::SyncState {
                                    state: SyncStateValue::Modify,
                                    entry_uuid: "0b7e1f2a-0000-4000-8000-00000000abcd".parse().unwrap(),
                                    cookie: None,
                                }],
                            ));
                        }
                        out.push(LdapMsg::new_with_ctrls(
                            id,
                            LdapOp::SearchResultDone(result(LdapResultCode::Success)),
                            vec![LdapControl::SyncDone {
                                cookie: Some(b"rid=000,csn=2".to_vec()),
                                refresh_deletes: false,
                            }],
                        ));
                    }
                    Some(Some(_)) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                        out.push(LdapMsg::new(
                            id,
                            LdapOp::SearchResultDone(result(LdapResultCode::EsyncRefreshRequired)),
                        ));
                    }
                    _ => {
                        // dirsync's cookie probe filter, (!(objectClass=*)), matches nothing.
                        let f = format!("{:?}", req.filter).to_lowercase();
                        let users = !f.contains("groupofnames") && !f.starts_with("not");
                        if users {
                            for (i, u) in UUIDS.iter().enumerate() {
                                let uid = format!("user{i}");
                                out.push(LdapMsg::new_with_ctrls(
                                    id,
                                    LdapOp::SearchResultEntry(LdapSearchResultEntry {
                                        dn: format!("uid={uid},ou=people,dc=fake"),
                                        attributes: vec![
                                            attr("entryUUID", u),
                                            attr("uid", &uid),
                                            attr("cn", &format!("User {i}")),
                                        ],
                                    }),
                                    vec![LdapControl::SyncState {
                                        state: SyncStateValue::Add,
                                        entry_uuid: u.parse().unwrap(),
                                        cookie: None,
                                    }],
                                ));
                            }
                        }
                        out.push(LdapMsg::new_with_ctrls(
                            id,
                            LdapOp::SearchResultDone(result(LdapResultCode::Success)),
                            vec![LdapControl::SyncDone {
                                cookie: Some(b"rid=000,csn=1".to_vec()),
                                refresh_deletes: false,
                            }],
                        ));
                    }
                }
            }
            _ => {}
        }
        out
    })
    .await
}

#[test]
fn refresh_required_starts_over_with_a_full_read_in_the_same_run() {
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    let port = spawn_server(move |s| serve(s, r.clone(), Answer::RefreshRequired));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x\n").unwrap();
    let env = Env { dir };
    env.write_config(&format!(
        "[[sources]]\nname = \"fake\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:{port}\"\nbind_dn = \"cn=reader\"\nbind_password_file = \"pw\"\nbase_dn = \"dc=fake\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n"
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, out["mode"].as_str(), count(&out, "created")), (0, Some("full"), 3), "{out}");
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(refused.load(Ordering::SeqCst) >= 1, "the saved cookie was offered and refused");
    assert_eq!(out["mode"], "full", "started over: {out}");
    assert_eq!((count(&out, "unchanged"), count(&out, "disabled")), (3, 0), "{out}");
}

#[test]
fn sync_uuids_that_are_not_entry_uuids_never_prove_anybody_absent() {
    // What 389 Directory Server does with a cookie it accepts: the changed
    // entry's sync UUID is its nsUniqueId, and refreshDeletes = FALSE would
    // read as "whatever was not listed is gone".
    let answered = Arc::new(AtomicUsize::new(0));
    let r = answered.clone();
    let port = spawn_server(move |s| serve(s, r.clone(), Answer::ForeignUuids));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x\n").unwrap();
    let env = Env { dir };
    env.write_config(&format!(
        "[[sources]]\nname = \"fake\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:{port}\"\nbind_dn = \"cn=reader\"\nbind_password_file = \"pw\"\nbase_dn = \"dc=fake\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n"
    ));
    assert_eq!(count(&env.sync(&[]).1, "created"), 3);
    let (code, out) = env.sync(&[]);
    assert!(answered.load(Ordering::SeqCst) >= 1, "the incremental answer was given");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["mode"], "full", "distrusted, read in full: {out}");
    assert_eq!((count(&out, "disabled"), count(&out, "unchanged")), (0, 3), "{out}");
}
