//! An in-process LDAP server that ends a paged search with
//! timeLimitExceeded (rc 3) after some entries, as a server with a time limit
//! does: the read is incomplete, so the run fails and nobody is removed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{LdapMsg, LdapOp, LdapResultCode, LdapSearchResultEntry, LdapSearchScope};

use crate::fake_ldap::{result, serve_ldap, text_attr as attr};
use crate::harness::{count, spawn_server, Env};

async fn serve(stream: tokio::net::TcpStream, limited: Arc<AtomicBool>) {
    serve_ldap(stream, move |msg| {
        let id = msg.msgid;
        let mut out = Vec::new();
        match msg.op {
            // A root DSE without RFC 4533: paged full reads.
            LdapOp::SearchRequest(req) if req.scope == LdapSearchScope::Base && req.base.is_empty() => {
                let dse = LdapSearchResultEntry { dn: String::new(), attributes: vec![attr("objectClass", "top")] };
                out.push(LdapMsg::new(id, LdapOp::SearchResultEntry(dse)));
                out.push(LdapMsg::new(id, LdapOp::SearchResultDone(result(LdapResultCode::Success))));
            }
            LdapOp::SearchRequest(req) => {
                let users = !format!("{:?}", req.filter).to_lowercase().contains("groupofnames");
                let limited = limited.load(Ordering::SeqCst);
                let n = if !users {
                    0
                } else if limited {
                    2
                } else {
                    3
                };
                for i in 0..n {
                    let uid = format!("user{i}");
                    let entry = LdapSearchResultEntry {
                        dn: format!("uid={uid},ou=people,dc=fake"),
                        attributes: vec![
                            attr("entryUUID", &format!("0000000{i}-0000-4000-8000-000000000000")),
                            attr("uid", &uid),
                            attr("cn", &format!("User {i}")),
                        ],
                    };
                    out.push(LdapMsg::new(id, LdapOp::SearchResultEntry(entry)));
                }
                let code = if limited && users { LdapResultCode::TimeLimitExceeded } else { LdapResultCode::Success };
                out.push(LdapMsg::new_with_ctrls(
                    id,
                    LdapOp::SearchResultDone(result(code)),
                    vec![LdapControl::SimplePagedResults { size: 0, cookie: vec![] }],
                ));
            }
            _ => {}
        }
        out
    })
    .await
}

#[test]
fn a_time_limit_mid_search_fails_the_run_and_removes_nobody() {
    let limited = Arc::new(AtomicBool::new(false));
    let l = limited.clone();
    let port = spawn_server(move |s| serve(s, l.clone()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x\n").unwrap();
    let env = Env { dir };
    env.write_config(&format!(
        "[[sources]]\nname = \"fake\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:{port}\"\nbind_dn = \"cn=reader\"\nbind_password_file = \"pw\"\nbase_dn = \"dc=fake\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[safety]\nmax_delete_percent = 100\n"
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "created")), (0, 3), "{out}");
    limited.store(true, Ordering::SeqCst);
    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 1, "{out}");
    let msg = out["message"].as_str().unwrap();
    assert!(msg.contains("timeLimitExceeded") && msg.contains("nothing was changed"), "{msg}");
    let active = env.users().iter().filter(|u| u["status"] == "active").count();
    assert_eq!(active, 3, "an incomplete read removes nobody");
}
