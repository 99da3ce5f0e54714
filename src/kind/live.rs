//! Live sync's part of the kind contract: `[sources.live]` ([`Live`]), what
//! a source's change channel says while it is held open ([`Nudge`]), and
//! why it ended ([`WatchEnd`]). A nudge carries no data: the run it
//! triggers reads what changed with the source's own incremental read,
//! which stays the source of truth (and saves its position with the data
//! it covers); a channel that names its entries (a persistent search) lets
//! the run read just those ([`Touched`]).

use std::time::Duration;

/// `[sources.live]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// Hold the source's change channel (or poll) under `dirsync serve`.
    pub enabled: bool,
    /// Changes arriving within this of the first become one run.
    pub debounce: Duration,
    /// How often a source without a change channel is read for changes.
    pub poll: Duration,
}

impl Default for Live {
    fn default() -> Self {
        Live { enabled: false, debounce: Duration::from_millis(500), poll: Duration::from_secs(30) }
    }
}

/// What a held change channel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nudge {
    /// The channel is open: changes from now on will be told. (What changed
    /// before is read by the run that follows.)
    Listening {
        /// How the source listens, for `GET /api/live` ("RFC 4533
        /// refreshAndPersist", "persistent search").
        how: String,
    },
    /// Something in scope changed.
    Changed,
    /// The entry `dn` changed (added, modified, moved), or was deleted
    /// (`gone`: its identity): a run may read just the entries it was told of.
    Touched { dn: String, gone: Option<String> },
}

/// What the nudges of one debounce window named: the entries to read again
/// (and the groups that list them) and the identities deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    pub dns: Vec<String>,
    pub gone: Vec<String>,
}

impl Touched {
    /// Adds what one nudge named (each DN once).
    pub fn add(&mut self, dn: String, gone: Option<String>) {
        match gone {
            Some(id) => {
                if !self.gone.contains(&id) {
                    self.gone.push(id);
                }
            }
            None => {
                if !self.dns.iter().any(|d| d.eq_ignore_ascii_case(&dn)) {
                    self.dns.push(dn);
                }
            }
        }
    }
}

/// Why a change channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// This source (or its server) has no change channel: poll it.
    Unsupported(String),
    /// The connection was lost, refused or timed out: reconnect later.
    Lost(String),
    /// The saved position is too old for the server: read in full, then
    /// listen again.
    Stale(String),
    /// The nudges' receiver is gone (the service is stopping).
    Stopped,
}

impl WatchEnd {
    pub fn reason(&self) -> &str {
        match self {
            WatchEnd::Unsupported(m) | WatchEnd::Lost(m) | WatchEnd::Stale(m) => m,
            WatchEnd::Stopped => "stopped",
        }
    }
}
