//! The reference for `bench/auth_run.py`: simple binds as random users on
//! persistent connections (ldap3, like dirsync), as fast as they go.
//! Usage: rawbind URL USERS CONNECTIONS SECONDS (users are uid=userNNNNNN,
//! ou=people,dc=example,dc=com with the password pw-userNNNNNN).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (url, users, conns, secs): (String, u64, usize, u64) =
        (a[1].clone(), a[2].parse().unwrap(), a[3].parse().unwrap(), a[4].parse().unwrap());
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (url, done) = (url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url).await.unwrap();
            ldap3::drive!(conn);
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ c as u64;
            while Instant::now() < end {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let uid = format!("user{:06}", x % users);
                let dn = format!("uid={uid},ou=people,dc=example,dc=com");
                let r = ldap.simple_bind(&dn, &format!("pw-{uid}")).await.unwrap();
                assert_eq!(r.rc, 0, "bind as {dn}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("{:.0}", done.load(Ordering::Relaxed) as f64 / secs as f64);
}
