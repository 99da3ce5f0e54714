//! Connections cannot starve the service: silent, slow-header and idle
//! clients are closed at their deadlines, and beyond `max_connections` a
//! new connection is closed at accept. Real sockets against the real
//! binary; every wait is for an event (a closed socket), bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::serve::{school, server_section, Service};

fn served(extra: &str) -> (Slapd, Env, Service) {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "");
    let server = server_section(&env, extra);
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    (slapd, env, svc)
}

fn addr(svc: &Service) -> String {
    svc.base.trim_start_matches("http://").to_string()
}

/// Waits until the server closes `s` (EOF or reset); how long it took.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let t0 = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => continue, // an answer (a 408, say); the close follows
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("still open after {limit:?}")
            }
            Err(_) => return t0.elapsed(), // reset
        }
    }
}

fn healthz(svc: &Service) -> u16 {
    let mut s = TcpStream::connect(addr(svc)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn slow_header_and_silent_clients_past_max_connections_cannot_starve_healthz() {
    let (_slapd, _env, svc) = served("max_connections = 8\nheader_timeout_secs = 1\nidle_timeout_secs = 30");
    // Eight places taken: four say nothing, four send a head that never ends.
    let mut held: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = TcpStream::connect(addr(&svc)).unwrap();
            if i % 2 == 1 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            s
        })
        .collect();
    // A ninth is closed at once, not queued.
    let mut ninth = TcpStream::connect(addr(&svc)).unwrap();
    let _ = ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(closed_within(&mut ninth, Duration::from_secs(5)) < Duration::from_secs(5));
    // The held ones are closed at the head deadline, even one that trickles bytes.
    for s in &mut held {
        closed_within(s, Duration::from_secs(10));
    }
    assert_eq!(healthz(&svc), 200, "served again once the deadlines freed the places");
}

#[test]
fn a_client_trickling_its_head_is_closed_at_the_head_deadline() {
    let (_slapd, _env, svc) = served("header_timeout_secs = 1");
    let mut s = TcpStream::connect(addr(&svc)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let t0 = Instant::now();
    // One header line every 200 ms: bytes keep coming, the head never ends.
    let mut w = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for i in 0..100 {
            if w.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    closed_within(&mut s, Duration::from_secs(10));
    assert!(t0.elapsed() < Duration::from_secs(8), "closed at the deadline, not when the trickle ended");
    trickle.join().unwrap();
}

#[test]
fn an_idle_kept_alive_connection_is_closed_and_a_long_request_is_not() {
    let (_slapd, _env, svc) = served("header_timeout_secs = 5\nidle_timeout_secs = 1");
    let mut s = TcpStream::connect(addr(&svc)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(s.read(&mut buf).unwrap() > 0, "the answer");
    closed_within(&mut s, Duration::from_secs(10));
    // A request that takes longer than the idle deadline (a long poll) is not cut.
    let mut s = TcpStream::connect(addr(&svc)).unwrap();
    let req = format!(
        "GET /api/changes?since=999999&wait=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        crate::serve::READER
    );
    s.write_all(req.as_bytes()).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}
