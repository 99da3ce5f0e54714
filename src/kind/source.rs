//! What a source is: the [`Source`] trait, the [`EntrySink`] it streams
//! entries into (bounded, batched, counted), and what a read returns
//! ([`Fetched`]) or how it fails ([`SourceError`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::live::{Nudge, Touched, WatchEnd};
use super::settings::SourceConfig;
use crate::model::{Delta, EntryKind, RawEntry};

/// A source failed: the run that uses it changes nothing.
#[derive(Debug, thiserror::Error)]
#[error("source \"{source_name}\": {message}")]
pub struct SourceError {
    pub source_name: String,
    pub message: String,
    /// The saved position is no longer valid (RFC 4533 e-syncRefreshRequired,
    /// another domain controller): read again in full.
    pub refresh_required: bool,
}

impl SourceError {
    pub fn new(source_name: &str, message: impl Into<String>) -> Self {
        SourceError { source_name: source_name.to_string(), message: message.into(), refresh_required: false }
    }

    pub fn refresh_required(source_name: &str, message: impl Into<String>) -> Self {
        SourceError { refresh_required: true, ..SourceError::new(source_name, message) }
    }
}

/// What a read produced besides its entries.
#[derive(Debug, Default)]
pub struct Fetched {
    pub counts: FetchCounts,
    /// `Some` when the read was incremental.
    pub delta: Option<Delta>,
    /// The position to continue from next time (`None`: the source cannot).
    pub next_state: Option<String>,
    /// Things the run should be warned of (a program that left processes
    /// running); the read itself is complete.
    pub warnings: Vec<String>,
}

/// How many entries a source delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchCounts {
    pub users: u64,
    pub groups: u64,
}

/// What a source hands to the mapping step: an entry, or the report that
/// the object with this identity is gone (an incremental read's removal).
#[derive(Debug)]
pub enum Item {
    Entry(EntryKind, RawEntry),
    Gone(EntryKind, String),
}

/// A batch of items on their way from a source to the mapping step.
pub type EntryBatch = Vec<Item>;

const BATCH: usize = 256;

/// How a source turns its own attributes into neutral [`Facts`](crate::model::Facts)
/// on each entry, before the core sees it.
pub type Interpret = Arc<dyn Fn(EntryKind, &mut RawEntry) + Send + Sync>;

/// Where a source puts its entries: a bounded channel (so a fast source cannot
/// run ahead of mapping and fill memory) plus a shared progress counter.
#[derive(Clone)]
pub struct EntrySink {
    tx: mpsc::Sender<EntryBatch>,
    read: Arc<AtomicU64>,
    interpret: Option<Interpret>,
}

impl EntrySink {
    /// A sink and the receiving end; `read` counts entries for progress display.
    pub fn channel(read: Arc<AtomicU64>) -> (EntrySink, mpsc::Receiver<EntryBatch>) {
        let (tx, rx) = mpsc::channel(8);
        (EntrySink { tx, read, interpret: None }, rx)
    }

    /// The same sink, with `f` run on every entry pushed into it.
    pub fn interpreted(mut self, f: Interpret) -> EntrySink {
        self.interpret = Some(f);
        self
    }

    /// A buffer that sends entries in batches.
    pub fn batcher(&self) -> Batcher {
        Batcher { sink: self.clone(), buf: Vec::with_capacity(BATCH) }
    }
}

/// Collects entries and sends them `BATCH` at a time.
pub struct Batcher {
    sink: EntrySink,
    buf: EntryBatch,
}

impl Batcher {
    pub async fn push(&mut self, kind: EntryKind, mut entry: RawEntry) -> Result<(), String> {
        if let Some(f) = &self.sink.interpret {
            f(kind, &mut entry);
        }
        self.buf.push(Item::Entry(kind, entry));
        self.sink.read.fetch_add(1, Ordering::Relaxed);
        self.flush_full().await
    }

    /// Reports the object with identity `id` gone, in its place among the
    /// entries: for a source that replays, whichever of an entry and a
    /// removal of one identity comes last wins.
    pub async fn gone(&mut self, kind: EntryKind, id: String) -> Result<(), String> {
        self.buf.push(Item::Gone(kind, id));
        self.flush_full().await
    }

    async fn flush_full(&mut self) -> Result<(), String> {
        if self.buf.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
        self.sink.tx.send(batch).await.map_err(|_| "the sync stopped reading entries".to_string())
    }
}

/// A place users and groups come from.
#[async_trait]
pub trait Source: Send + Sync {
    /// The source's configured name.
    fn name(&self) -> &str;

    /// Reads the user and group entries in scope into `sink`: all of them, or,
    /// given the position `since` a previous read returned and when the source
    /// can, only what changed since (with the deletions in
    /// [`Fetched::delta`]). An `Err` means the read is incomplete and must not
    /// be used to remove anybody.
    async fn fetch(&self, sink: EntrySink, since: Option<&str>) -> Result<Fetched, SourceError>;

    /// Reads one user by username and the groups that list it as a direct
    /// member, as a delta that deletes nothing (just-in-time provisioning).
    /// No user entry: the source does not know the user. Kinds that cannot
    /// look one user up (an LDIF file) answer that they do not know it.
    async fn fetch_user(&self, _sink: EntrySink, _username: &str) -> Result<Fetched, SourceError> {
        Ok(Fetched { delta: Some(Delta::default()), ..Fetched::default() })
    }

    /// Whether the source's API may hand out one object several times in a
    /// read (a replay): then its entries are versions, the last of each
    /// identity wins, and removals go through [`Batcher::gone`]. Otherwise
    /// two entries with one identity are a conflict and both are skipped.
    fn replays(&self) -> bool {
        false
    }

    /// The attribute names one user entry has, all of them: asked only when
    /// a mapped attribute was found on no entry, to suggest the name meant.
    /// Kinds whose entries carry every attribute anyway answer nothing.
    async fn sample_attributes(&self) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }

    /// Holds the source's change channel open (a persistent search), sending
    /// [`Nudge::Listening`] once it is open and [`Nudge::Changed`] for each
    /// change it tells of, until it ends; `since` is the saved position,
    /// where the channel can start from one. Kinds without a channel answer
    /// [`WatchEnd::Unsupported`] at once (they are polled).
    async fn watch(&self, _nudges: mpsc::Sender<Nudge>, _since: Option<&str>) -> WatchEnd {
        WatchEnd::Unsupported("this kind of source has no change channel".into())
    }

    /// Reads again the entries a change channel named ([`Nudge::Touched`])
    /// and the groups that list them, as a delta (the deleted identities in
    /// it, and those of entries that left the scope). Only kinds whose
    /// channel names entries are asked.
    async fn fetch_touched(&self, _sink: EntrySink, _touched: &Touched) -> Result<Fetched, SourceError> {
        Err(SourceError::new(self.name(), "this kind of source cannot read the single entries a change channel names"))
    }

    /// Asks the source whether it works, before a read (`dirsync check`,
    /// "Test settings"): `Ok` with what it said about itself, if anything.
    /// Kinds with no such question answer `Ok(None)`.
    async fn probe(&self) -> Result<Option<String>, SourceError> {
        Ok(None)
    }
}

/// Opens the source a config section describes.
pub fn open(cfg: &SourceConfig) -> Box<dyn Source> {
    cfg.kind.open(cfg)
}
