//! An in-process LDAP server that answers the way MS-ADTS describes range
//! retrieval, which Samba does not enforce: a group's members come as
//! `member;range=0-999` with no plain `member`, and the rest only to
//! base-scope requests for `member;range=N-*`. It counts those requests, so a
//! client that ignores ranges fails the test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ldap3_proto::proto::{
    LdapMsg, LdapOp, LdapPartialAttribute, LdapResultCode, LdapSearchResultEntry, LdapSearchScope,
};

use crate::fake_ldap::{result, serve_ldap};
use crate::harness::{count, spawn_server, Env};

const BASE: &str = "OU=fake,DC=example,DC=com";
const CHUNK: usize = 1000;

pub struct FakeAd {
    pub port: u16,
    pub range_requests: Arc<AtomicUsize>,
}

fn guid(i: usize) -> Vec<u8> {
    let mut g = vec![0u8; 16];
    g[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    g[15] = 0xad;
    g
}

fn attr(name: &str, vals: Vec<Vec<u8>>) -> LdapPartialAttribute {
    LdapPartialAttribute { atype: name.to_string(), vals }
}

fn done(msgid: i32) -> LdapMsg {
    LdapMsg::new(msgid, LdapOp::SearchResultDone(result(LdapResultCode::Success)))
}

impl FakeAd {
    /// `users` users, all members of one group "Everyone".
    pub fn start(users: usize) -> FakeAd {
        let range_requests = Arc::new(AtomicUsize::new(0));
        let counter = range_requests.clone();
        let port = spawn_server(move |stream| serve(stream, users, counter.clone()));
        FakeAd { port, range_requests }
    }
}

async fn serve(stream: tokio::net::TcpStream, users: usize, ranges: Arc<AtomicUsize>) {
    let member_dn = |i: usize| format!("CN=u{i:05},{BASE}").into_bytes();
    let group_dn = format!("CN=Everyone,{BASE}");
    serve_ldap(stream, move |msg| {
        let id = msg.msgid;
        match msg.op {
            LdapOp::SearchRequest(req) => {
                let mut out = Vec::new();
                let wanted = req.attrs.iter().find(|a| a.to_lowercase().starts_with("member;range="));
                if req.scope == LdapSearchScope::Base && req.base.eq_ignore_ascii_case(&group_dn) {
                    if let Some(w) = wanted {
                        // member;range=START-*
                        ranges.fetch_add(1, Ordering::SeqCst);
                        let start: usize = w["member;range=".len()..].split('-').next().unwrap().parse().unwrap();
                        let end = (start + CHUNK).min(users);
                        let name = if end == users {
                            format!("member;range={start}-*")
                        } else {
                            format!("member;range={start}-{}", end - 1)
                        };
                        out.push(LdapMsg::new(
                            id,
                            LdapOp::SearchResultEntry(LdapSearchResultEntry {
                                dn: group_dn.clone(),
                                attributes: vec![attr(&name, (start..end).map(member_dn).collect())],
                            }),
                        ));
                    }
                } else if format!("{:?}", req.filter).to_lowercase().contains("\"group\"") {
                    out.push(LdapMsg::new(
                        id,
                        LdapOp::SearchResultEntry(LdapSearchResultEntry {
                            dn: group_dn.clone(),
                            attributes: vec![
                                attr("objectGUID", vec![guid(999_999)]),
                                attr("cn", vec![b"Everyone".to_vec()]),
                                attr("member;range=0-999", (0..CHUNK.min(users)).map(member_dn).collect()),
                            ],
                        }),
                    ));
                } else {
                    for i in 0..users {
                        out.push(LdapMsg::new(
                            id,
                            LdapOp::SearchResultEntry(LdapSearchResultEntry {
                                dn: String::from_utf8(member_dn(i)).unwrap(),
                                attributes: vec![
                                    attr("objectGUID", vec![guid(i)]),
                                    attr("sAMAccountName", vec![format!("u{i:05}").into_bytes()]),
                                    attr("cn", vec![format!("u{i:05}").into_bytes()]),
                                    attr("userAccountControl", vec![b"512".to_vec()]),
                                ],
                            }),
                        ));
                    }
                }
                out.push(done(id));
                out
            }
            _ => vec![],
        }
    })
    .await
}

#[test]
fn a_group_whose_members_come_in_ranges_is_read_whole() {
    let fake = FakeAd::start(2500);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x\n").unwrap();
    let env = Env { dir };
    env.write_config(&format!(
        "[[sources]]\nname = \"fake\"\ntype = \"ad\"\nurl = \"ldap://127.0.0.1:{}\"\nbind_dn = \"CN=reader,{BASE}\"\nbind_password_file = \"pw\"\nbase_dn = \"{BASE}\"\n[sources.incremental]\nenabled = false\n",
        fake.port
    ));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "created"), 2500);
    let groups = env.run(&["groups", "list", "--json"]).json();
    assert_eq!(groups[0]["members"], 2500, "all three ranges (0-999, 1000-1999, 2000-*) were read");
    assert_eq!(fake.range_requests.load(Ordering::SeqCst), 2, "two follow-up range requests");
}
