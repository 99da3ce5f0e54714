//! Early creations: on a source's first sync (no user of it in the store
//! yet), its new users are written in the run's own transaction while the
//! source is still being read, so the store's first write overlaps the read
//! instead of following it.
//!
//! Nothing of it is committed before the plan and the guards: the plan is
//! still made from everything read, and the apply, in the same transaction,
//! keeps each early row the plan creates, rewrites one the plan creates
//! otherwise (a provisioning rule's field) and takes back the rest (a source
//! that failed or was held back, a duplicate found at the end). A blocked,
//! failed or killed run rolls the transaction back. The session holds the
//! store's writer while the source is read: other writes wait for the run
//! (only on a first sync; a source with users in the store never takes it),
//! so only runs that ask for it (`SyncOptions::early_writes`: the CLI's
//! `sync`, not the service, which must keep taking writes) write early.
//! Dry runs never write early (an in-memory store's readers share its writer).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet as HashSet;
use tracing::warn;

use crate::engine::apply::{EarlyWrites, Written};
use crate::engine::history::now;
use crate::engine::plan::NewUser;
use crate::model::{name_key, Snapshot};
use crate::store::{on_store, Store, StoreError, WriteSession};

/// Where a source's mapper sends the new users it maps (one chunk per batch
/// of entries). A clone per source.
#[derive(Clone)]
pub struct Feed(SyncSender<Vec<NewUser>>);

impl Feed {
    /// `false` once the writer has stopped (it failed): send no more.
    pub fn send(&self, users: Vec<NewUser>) -> bool {
        self.0.send(users).is_ok()
    }
}

/// The writer of early creations: its own blocking thread, fed by the
/// mappers, holding the run's write session.
pub struct Writer {
    snapshot: SyncSender<Taken>,
    done: tokio::task::JoinHandle<Result<Early, StoreError>>,
}

/// The run's open session and what was written in it.
pub type Early = (Box<dyn WriteSession>, EarlyWrites);

/// What the store already holds that early rows must not collide with.
struct Taken {
    names: HashSet<String>,
    sources: HashSet<Arc<str>>,
}

/// Opens the run's write session (the store's writer is held from here on)
/// and starts the writer. The snapshot must be read after this returns, so
/// that it and the session see the same store.
async fn start(store: &dyn Store, run_id: Option<i64>) -> Result<(Feed, Writer), StoreError> {
    let session = on_store(store, |s| s.write_session()).await?;
    let (feed, chunks) = sync_channel::<Vec<NewUser>>(4);
    let (snapshot, taken) = sync_channel::<Taken>(1);
    let done = tokio::task::spawn_blocking(move || write(session, taken, chunks, run_id));
    Ok((Feed(feed), Writer { snapshot, done }))
}

impl Writer {
    /// Lets the writer go on with what the snapshot holds: names in use, and
    /// sources that already have users (theirs are left to the plan).
    pub fn snapshot_read(&self, snap: &Snapshot) {
        let names = snap.users.iter().map(|u| name_key(&u.username)).collect();
        let sources = snap.users.iter().map(|u| u.source.clone()).collect();
        let _ = self.snapshot.send(Taken { names, sources });
    }

    /// Waits for the writer (every [`Feed`] must be dropped first) and
    /// returns the open session and what was written in it.
    pub async fn finish(self) -> Result<Early, StoreError> {
        drop(self.snapshot);
        match self.done.await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

fn write(
    mut session: Box<dyn WriteSession>,
    taken: Receiver<Taken>,
    chunks: Receiver<Vec<NewUser>>,
    run_id: Option<i64>,
) -> Result<Early, StoreError> {
    let mut early = EarlyWrites::default();
    // No snapshot (it failed): nothing is written early.
    let Ok(taken) = taken.recv() else { return Ok((session, early)) };
    let mut claimed: HashSet<String> = HashSet::default();
    let mut identities: HashSet<(Arc<str>, Arc<str>)> = HashSet::default();
    while let Ok(chunk) = chunks.recv() {
        // A name the store holds, or that this read already claimed (a
        // duplicate: the plan decides), and an identity seen twice, are left
        // to the plan; so is a source that already has users.
        let chunk: Vec<NewUser> = chunk
            .into_iter()
            .filter(|u| {
                if taken.sources.contains(&*u.source) || !identities.insert((u.source.clone(), u.external_id.clone())) {
                    return false;
                }
                let key = name_key(&u.username);
                !taken.names.contains(&key) && claimed.insert(key)
            })
            .collect();
        if chunk.is_empty() {
            continue;
        }
        let digests: Vec<u64> = chunk.iter().map(|u| early.digest(u)).collect();
        let chunk = Arc::new(chunk);
        let ids = Arc::new(Mutex::new(Vec::new()));
        let (c, out) = (chunk.clone(), ids.clone());
        session.run(Box::new(move |tx| {
            *out.lock().unwrap_or_else(|p| p.into_inner()) = tx.insert_created(&c, run_id, now())?;
            Ok(())
        }))?;
        let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|p| p.into_inner()));
        for ((u, (user_id, audit_id)), digest) in chunk.iter().zip(ids).zip(digests) {
            early.insert(u, Written { user_id, audit_id, digest });
        }
    }
    Ok((session, early))
}

/// Starts early creations when some of `fresh` sources is to be read in full
/// and the store has none of its users: `None` (and a warning if the session
/// could not be opened) otherwise.
pub async fn maybe_start(
    store: &dyn Store,
    run_id: Option<i64>,
    fresh: Vec<String>,
) -> Result<Option<(Feed, Writer, HashSet<String>)>, StoreError> {
    if fresh.is_empty() {
        return Ok(None);
    }
    let (counts, _) = on_store(store, |s| s.counts()).await?;
    let fresh: HashSet<String> =
        fresh.into_iter().filter(|name| !counts.iter().any(|((s, _), n)| s == name && *n > 0)).collect();
    if fresh.is_empty() {
        return Ok(None);
    }
    match start(store, run_id).await {
        Ok((feed, writer)) => Ok(Some((feed, writer, fresh))),
        Err(e) => {
            warn!("new users will be written after the read: {e}");
            Ok(None)
        }
    }
}
