//! A reference for `bench/run.py`: the paged read dirsync does (users and
//! groups on two connections at once, the same attributes and page size),
//! with ldap3 and nothing else: each entry is received, decoded and dropped.
//! What this costs is dirsync's floor for reading a directory with ldap3.
//! Usage: rawread URL BIND_DN PASSWORD BASE (prints the entries read).

use ldap3::adapters::PagedResults;
use ldap3::{LdapConnAsync, Scope};

async fn read(url: &str, dn: &str, pw: &str, base: &str, filter: &str, attrs: Vec<&str>) -> u64 {
    let (conn, mut ldap) = LdapConnAsync::new(url).await.expect("connect");
    ldap3::drive!(conn);
    ldap.simple_bind(dn, pw).await.expect("bind").success().expect("bind");
    let mut s =
        ldap.streaming_search_with(PagedResults::new(1000), base, Scope::Subtree, filter, attrs).await.expect("search");
    let mut n = 0;
    while let Some(e) = s.next().await.expect("entry") {
        std::hint::black_box(e);
        n += 1;
    }
    s.finish().await.success().expect("search result");
    n
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (url, dn, pw, base) = (&a[1], &a[2], &a[3], &a[4]);
    let users =
        ["entryUUID", "uid", "cn", "mail", "departmentNumber", "l", "roomNumber", "employeeNumber", "telephoneNumber"];
    let (u, g) = tokio::join!(
        read(url, dn, pw, base, "(objectClass=inetOrgPerson)", users.to_vec()),
        read(url, dn, pw, base, "(objectClass=groupOfNames)", vec!["entryUUID", "cn", "member"]),
    );
    println!("{u} users, {g} groups");
}
