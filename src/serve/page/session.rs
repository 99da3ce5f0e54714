//! Who is signed in to the admin page: the local `admin` account (an
//! Argon2id hash from `[server.admin] password_file`) or a member of
//! `[server.admin] group` with their directory password (the same check and
//! rate limits as `POST /api/auth`); sessions held in memory behind a random
//! cookie, each with its own CSRF token, expiring when unused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The session cookie's name.
pub const COOKIE: &str = "dirsync_session";

/// An Argon2id PHC string for `password` (what `dirsync admin-password` writes).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A random token (hex), for session ids and CSRF tokens.
pub fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("a random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    /// The username (`admin` for the local account).
    pub user: String,
    /// The token every form that changes something must carry.
    pub csrf: String,
    /// The local `admin` account (not a directory user).
    pub local: bool,
    opened: Instant,
    last_used: Instant,
}

/// The open sessions.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `user`; returns its id (the cookie's value).
    pub fn open(&self, user: &str, local: bool, idle: Duration) -> String {
        let id = token();
        let mut open = self.open.lock().expect("sessions lock");
        let now = Instant::now();
        open.retain(|_, s| now.duration_since(s.last_used) < idle);
        open.insert(id.clone(), Session { user: user.to_string(), csrf: token(), local, opened: now, last_used: now });
        id
    }

    /// The session with this id, if it is open, was used within `idle` and
    /// was opened within `max`.
    pub fn get(&self, id: &str, idle: Duration, max: Duration) -> Option<Session> {
        let mut open = self.open.lock().expect("sessions lock");
        let now = Instant::now();
        match open.get_mut(id) {
            Some(s) if now.duration_since(s.last_used) < idle && now.duration_since(s.opened) < max => {
                s.last_used = now;
                Some(s.clone())
            }
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("s3cret-admin").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "s3cret-admin"));
        assert!(!verify_password(&h, "s3cret-admiN") && !verify_password("not a hash", "x"));
    }

    #[test]
    fn sessions_expire_unused_and_close() {
        let (m, h) = (Duration::from_secs(60), Duration::from_secs(3600));
        let s = Sessions::default();
        let id = s.open("admin", true, m);
        let a = s.get(&id, m, h).unwrap();
        assert_eq!((a.user.as_str(), a.local), ("admin", true));
        assert_eq!(a.csrf.len(), 64);
        assert!(s.get(&id, Duration::ZERO, h).is_none(), "expired");
        assert!(s.get(&id, m, h).is_none(), "and gone");
        let id = s.open("admin", true, m);
        s.close(&id);
        assert!(s.get(&id, m, h).is_none());
        assert!(s.get("forged", m, h).is_none());
    }

    #[test]
    fn a_session_in_use_ends_at_its_absolute_lifetime() {
        let s = Sessions::default();
        let id = s.open("ann", false, Duration::from_secs(60));
        assert!(s.get(&id, Duration::from_secs(60), Duration::from_secs(3600)).is_some());
        assert!(
            s.get(&id, Duration::from_secs(60), Duration::ZERO).is_none(),
            "used a moment ago, but past its lifetime"
        );
    }
}
