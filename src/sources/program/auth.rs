//! Password checks through PaperCut's authentication program: run with no
//! arguments, `username\npassword\n` on stdin (the only place the password
//! goes: never an argument, the environment or a log; the program's stderr
//! is not quoted, since it may echo its input). `OK` on the first line of
//! stdout, optionally with the canonical username on the second, means
//! valid; anything else invalid. The exit code is not what decides (the
//! samples disagree); a program that cannot be run, times out or is killed
//! is "cannot check", never "refused".

use std::path::PathBuf;

use async_trait::async_trait;

use super::run::{Limits, Running};
use crate::kind::{Account, PasswordCheck, Verdict};
use crate::model::name_key;

pub struct ProgramPasswordCheck {
    source: String,
    program: PathBuf,
    limits: Limits,
}

impl ProgramPasswordCheck {
    pub fn new(source: &str, program: PathBuf, limits: Limits) -> Self {
        ProgramPasswordCheck { source: source.to_string(), program, limits }
    }
}

#[async_trait]
impl PasswordCheck for ProgramPasswordCheck {
    /// A decoy asks the program about a name no user has.
    async fn decoy(&self, password: &str) {
        let name = format!("dirsync-decoy-{}", crate::sources::program::reap::new_tag());
        let who = Account { dn: "", username: &name, external_id: "" };
        let _ = self.check(&who, password).await;
    }

    async fn check(&self, who: &Account<'_>, password: &str) -> Result<Verdict, String> {
        let username = who.username;
        if username.contains(['\n', '\r']) || password.contains(['\n', '\r']) {
            // One more line would be read as something else.
            return Ok(Verdict::Refused(Some("a line break in the username or password".into())));
        }
        let what = format!("source \"{}\": authentication program", self.source);
        let stdin = format!("{username}\n{password}\n").into_bytes();
        let mut r = Running::start(&self.program, &[], Some(stdin), self.limits, what)?.quiet();
        let mut lines = Vec::new();
        while let Some((_, l)) = r.next_line().await? {
            if lines.len() < 2 {
                lines.push(String::from_utf8_lossy(l).trim().to_string());
            }
        }
        // The answer is on stdout; a non-zero exit after "OK" still says OK.
        let exit = r.finish().await;
        match lines.first().map(String::as_str) {
            Some("OK") => match lines.get(1).filter(|c| !c.is_empty()) {
                Some(canonical) if name_key(canonical) != name_key(username) => Ok(Verdict::Refused(Some(format!(
                    "the authentication program accepted the password for another user (\"{canonical}\")"
                )))),
                _ => Ok(Verdict::Accepted),
            },
            Some(_) => Ok(Verdict::Refused(None)),
            None => match exit {
                Err(e) => Err(e.into()),
                Ok(_) => Ok(Verdict::Refused(Some("the authentication program printed nothing".into()))),
            },
        }
    }
}
