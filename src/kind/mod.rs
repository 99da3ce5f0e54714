//! The kind contract: everything a source kind and the rest of dirsync
//! agree on, and nothing else. It sits just above [`crate::model`] and
//! imports nothing of the engine, the kinds, the config file or the service.
//!
//! - [`Kind`]: a kind's settings, parsed from its part of a `[[sources]]`
//!   table, and what they open: a [`Source`], a write-back [`Transport`], a
//!   [`PasswordCheck`]; the [`Registration`] a registry lists, one a kind
//!   (dirsync's own is `sources::KINDS`).
//! - [`source`]: the [`Source`] trait and the sink it streams entries into.
//! - [`transport`]: writing application-owned values to a directory.
//! - [`settings`], [`fields`], [`incremental`], [`live`], [`schedule`]: what every
//!   source has whatever its kind, and [`section`], the reader a kind parses
//!   its keys with, and [`error`]: [`ConfigError`] names the file and key.

pub mod error;
pub mod fields;
pub mod incremental;
pub mod live;
pub mod schedule;
pub mod section;
pub mod settings;
pub mod source;
pub mod transport;

use std::any::Any;
use std::fmt;

use futures_util::future::BoxFuture;

pub use section::Section;
pub use settings::{ConfigError, DirectoryQuery, MemberSyntax, SourceConfig};
pub use source::Source;
pub use transport::{Transport, TransportError};

/// What a kind can do beyond a full read; the common config refuses the
/// settings a kind has no use for (`incremental`, `import_disabled`,
/// `writeback`, `owner = "app"` fields) with "is not used by type = ...".
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    /// Reads only what changed since a saved position (`[sources.incremental]`).
    pub incremental: bool,
    /// Says whether an account is disabled (`import_disabled`).
    pub disabled_flag: bool,
    /// Application-owned fields can be written back (`[sources.writeback]`).
    pub writeback: bool,
    /// Entries are pushed to dirsync (SCIM), never read: a sync skips the
    /// source, and nothing counts its users missing for not being pushed.
    pub pushed: bool,
}

/// One source's kind-specific settings, validated at config load.
pub trait Kind: fmt::Debug + Send + Sync + 'static {
    /// The `type` this source was configured with (`"ad"`, `"ldif"`).
    fn type_name(&self) -> &'static str;

    /// Where the source reads from, for messages (`ldap://dc1:389 dc=example,dc=com`).
    fn place(&self) -> String;

    /// The part of the incremental fingerprint that says where the source
    /// reads: a change here needs a full read. Defaults to [`Kind::place`].
    fn fingerprint_place(&self) -> String {
        self.place()
    }

    /// How the core reads this kind's entries: which attribute is the
    /// identity, a group's name and its members (and, for LDAP-shaped kinds,
    /// the filters).
    fn query(&self) -> &DirectoryQuery;

    /// What the kind can do besides a full read.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The `[sources.fields]` table used when the admin gives none (AD's
    /// defaults); `None`: fields are required.
    fn default_fields(&self) -> Option<&'static str> {
        None
    }

    /// Checks one field source name (an attribute, a column, a JSON path)
    /// at config load. Names arrive lower-cased: entries' attribute names
    /// match without regard to case.
    fn check_field_source(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    /// The source these settings describe; `cfg` holds what every source has.
    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source>;

    /// Connects to the write-back target, for kinds whose capabilities say
    /// they have one (`None` otherwise).
    fn open_writeback<'a>(
        &'a self,
        _cfg: &'a SourceConfig,
    ) -> Option<BoxFuture<'a, Result<Box<dyn Transport>, TransportError>>> {
        None
    }

    /// Checks users' passwords against this source's directory (`None`:
    /// this kind cannot). Built once per service and reused.
    fn password_check(&self, _cfg: &SourceConfig) -> Option<std::sync::Arc<dyn PasswordCheck>> {
        None
    }

    /// For kinds without a password check: what to use instead, for the
    /// admin's message.
    fn password_note(&self) -> Option<&'static str> {
        None
    }

    /// The settings as their own type, for code that knows the kind.
    fn as_any(&self) -> &dyn Any;
}

/// What the directory said of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Refused; the reason is for the admin's log (AD's "account locked
    /// out"), never for the caller.
    Refused(Option<String>),
}

/// The stored user whose password is checked, as last synced.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub dn: &'a str,
    pub username: &'a str,
    /// The identity the store holds: an entry found under this username
    /// that carries another is another person, and is refused.
    pub external_id: &'a str,
}

/// Checks one user's password against a source's directory.
#[async_trait::async_trait]
pub trait PasswordCheck: Send + Sync {
    /// `Err`: the directory could not be asked (down, busy): never "refused".
    async fn check(&self, who: &Account<'_>, password: &str) -> Result<Verdict, String>;

    /// Does what checking a password costs, for a user who cannot succeed
    /// (unknown, disabled), so the answer's timing does not tell them apart:
    /// a bind the directory refuses, a call of the authentication program.
    async fn decoy(&self, password: &str);
}

/// One line of the registry: the `type` names a kind answers to, the keys of
/// its config section, and how that section is read.
#[derive(Clone, Copy)]
pub struct Registration {
    pub types: &'static [&'static str],
    /// Every key the kind reads (to tell another kind's key from a typo).
    pub keys: &'static [&'static str],
    /// Reads the kind's keys from the section (the type name it was given
    /// as is passed along); keys it leaves are refused by the caller.
    pub parse: ParseKind,
}

/// A kind's section parser: the type name it was given as, the section.
pub type ParseKind = fn(&str, &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError>;
