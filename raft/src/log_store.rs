//! The Raft log, vote and committed index, in their own redb file (`raft-log.redb`), every write fsynced
//! before it is acknowledged (`Durability::Immediate`).
//!
//! Appends are group-committed: `append` keeps the entries in memory (readable at once, as openraft
//! requires) and hands them to one writer thread, which writes everything queued since its last commit in
//! one transaction and one fsync, then tells openraft they are durable. Under load, many client writes
//! share one fsync. The log lives apart from the state machine so that appending and applying commit in
//! parallel instead of queueing behind one writer.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, StorageError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;

use crate::error::{DbResult, StoreError};
use crate::format::{decode, encode};
use crate::{MemberId, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";
const FORMAT: &str = "format";
/// The layout version of `raft-log.redb`.
const LOG_FORMAT: u8 = 1;

/// The most jobs the writer folds into one transaction.
const MAX_GROUP: usize = 4096;

type SResult<T> = Result<T, StorageError<MemberId>>;
type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Work for the writer thread, done in the order queued.
enum Job {
    Append { rows: Vec<(LogId<MemberId>, Vec<u8>)>, flushed: LogFlushed<TypeConfig> },
    Meta { key: &'static str, bytes: Vec<u8>, done: Done },
    Truncate { from: u64, done: Done },
    Purge { upto: LogId<MemberId>, done: Done },
}

struct Shared {
    db: Database,
    /// Appended entries the writer may not have committed yet, by index.
    pending: Mutex<BTreeMap<u64, Entry<TypeConfig>>>,
    /// The last committed log id openraft reported, and whether it changed since it was last written.
    /// It is written with the next group commit rather than on its own: openraft does not need it
    /// durable, and an extra fsync per commit would halve the log's throughput.
    committed: Mutex<(Option<LogId<MemberId>>, bool)>,
}

/// The durable Raft log of one member. Cloning shares the database and the writer.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
}

fn committed_write(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db("begin log write")?;
    txn.set_durability(Durability::Immediate).db("set durability")?;
    Ok(txn)
}

impl LogStore {
    /// Open (or create) the log in `dir/raft-log.redb` and start its writer thread.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        let path = dir.join("raft-log.redb");
        let db = Database::create(&path).db("open raft-log.redb")?;
        let txn = committed_write(&db)?;
        txn.open_table(LOG).db("create log table")?;
        {
            let mut meta = txn.open_table(META).db("create log meta table")?;
            let format = meta.get(FORMAT).db("read log format")?.map(|v| v.value().to_vec());
            match format.as_deref() {
                None => {
                    meta.insert(FORMAT, [LOG_FORMAT].as_slice()).db("write log format")?;
                }
                Some([LOG_FORMAT]) => {}
                Some(other) => {
                    return Err(StoreError::Layout(format!(
                        "raft-log.redb has layout version {other:?}; this build reads version {LOG_FORMAT}"
                    )));
                }
            }
        }
        txn.commit().db("commit log tables")?;
        let committed = read_meta::<Option<LogId<MemberId>>>(&db, COMMITTED)?.flatten();
        let shared =
            Arc::new(Shared { db, pending: Mutex::new(BTreeMap::new()), committed: Mutex::new((committed, false)) });
        let (jobs, rx) = channel();
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("sendan-log-writer".into())
            .spawn(move || write_loop(&writer, rx))
            .map_err(StoreError::io("start the log writer", &path))?;
        Ok(LogStore { shared, jobs })
    }

    /// The committed log id openraft last reported.
    pub fn committed(&self) -> Result<Option<LogId<MemberId>>, StoreError> {
        Ok(self.shared.committed.lock().expect("committed lock").0)
    }

    /// Queue `job` and wait until the writer has committed it (and everything queued before it).
    async fn run(&self, job: impl FnOnce(Done) -> Job) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs.send(job(tx)).map_err(|_| StoreError::Layout("the log writer has stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Layout(format!("the log writer failed: {e}"))),
            Err(_) => Err(StoreError::Layout("the log writer stopped before committing".into())),
        }
    }

    fn entries(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        // Pending first: an entry leaves `pending` only after it is committed, so whatever is missing
        // from this copy is already in the database read below.
        let pending: Vec<Entry<TypeConfig>> =
            self.shared.pending.lock().expect("pending lock").range((start, end)).map(|(_, e)| e.clone()).collect();
        let mut out = BTreeMap::new();
        let txn = self.shared.db.begin_read().db("begin log read")?;
        let table = txn.open_table(LOG).db("open log")?;
        for row in table.range::<u64>((start, end)).db("range log")? {
            let (k, v) = row.db("read log entry")?;
            out.insert(k.value(), decode::<Entry<TypeConfig>>("log entry", v.value())?);
        }
        for e in pending {
            out.insert(e.log_id.index, e);
        }
        Ok(out.into_values().collect())
    }

    fn last_entry_id(&self) -> Result<Option<LogId<MemberId>>, StoreError> {
        if let Some((_, e)) = self.shared.pending.lock().expect("pending lock").last_key_value() {
            return Ok(Some(e.log_id));
        }
        let txn = self.shared.db.begin_read().db("begin log read")?;
        let table = txn.open_table(LOG).db("open log")?;
        match table.last().db("read last log entry")? {
            Some((_, v)) => Ok(Some(decode::<Entry<TypeConfig>>("log entry", v.value())?.log_id)),
            None => Ok(None),
        }
    }
}

fn read_meta<T: DeserializeOwned>(db: &Database, key: &'static str) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read().db("begin log read")?;
    let table = txn.open_table(META).db("open log meta")?;
    match table.get(key).db("read log meta")? {
        Some(v) => decode(key, v.value()).map(Some),
        None => Ok(None),
    }
}

/// The writer thread: commit everything queued, in order, one transaction and one fsync per round.
fn write_loop(shared: &Shared, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP
            && let Ok(j) = rx.try_recv()
        {
            jobs.push(j);
        }
        let committed = {
            let mut c = shared.committed.lock().expect("committed lock");
            let dirty = std::mem::replace(&mut c.1, false);
            dirty.then_some(c.0)
        };
        let result = commit_jobs(&shared.db, &jobs, committed).map_err(|e| e.to_string());
        if result.is_ok() {
            let mut pending = shared.pending.lock().expect("pending lock");
            for job in &jobs {
                if let Job::Append { rows, .. } = job {
                    for (id, _) in rows {
                        if pending.get(&id.index).is_some_and(|e| e.log_id == *id) {
                            pending.remove(&id.index);
                        }
                    }
                }
            }
        }
        for job in jobs {
            match job {
                Job::Append { flushed, .. } => {
                    flushed.log_io_completed(result.clone().map_err(std::io::Error::other));
                }
                Job::Meta { done, .. } | Job::Truncate { done, .. } | Job::Purge { done, .. } => {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

fn commit_jobs(db: &Database, jobs: &[Job], committed: Option<Option<LogId<MemberId>>>) -> Result<(), StoreError> {
    let txn = committed_write(db)?;
    {
        let mut log = txn.open_table(LOG).db("open log")?;
        let mut meta = txn.open_table(META).db("open log meta")?;
        if let Some(c) = committed {
            meta.insert(COMMITTED, encode(&c).as_slice()).db("write committed")?;
        }
        for job in jobs {
            match job {
                Job::Append { rows, .. } => {
                    for (id, bytes) in rows {
                        log.insert(id.index, bytes.as_slice()).db("append log entry")?;
                    }
                }
                Job::Meta { key, bytes, .. } => {
                    meta.insert(*key, bytes.as_slice()).db("write log meta")?;
                }
                Job::Truncate { from, .. } => {
                    log.retain_in(*from.., |_, _| false).db("truncate log")?;
                }
                Job::Purge { upto, .. } => {
                    meta.insert(PURGED, encode(upto).as_slice()).db("write purged")?;
                    log.retain_in(..=upto.index, |_, _| false).db("purge log")?;
                }
            }
        }
    }
    txn.commit().db("commit log writes")
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<TypeConfig>>> {
        // Served from memory or redb's page cache: quick enough to run on the caller's task.
        let (start, end) = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries(start, end).map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig>> {
        let read = || -> Result<_, StoreError> {
            let purged: Option<LogId<MemberId>> = read_meta(&self.shared.db, PURGED)?;
            let last = self.last_entry_id()?.or(purged);
            Ok(LogState { last_purged_log_id: purged, last_log_id: last })
        };
        read().map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> SResult<()> {
        let bytes = encode(vote);
        self.run(|done| Job::Meta { key: VOTE, bytes, done })
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<MemberId>>> {
        read_meta(&self.shared.db, VOTE).map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId<MemberId>>) -> SResult<()> {
        *self.shared.committed.lock().expect("committed lock") = (committed, true);
        Ok(())
    }

    async fn read_committed(&mut self) -> SResult<Option<LogId<MemberId>>> {
        self.committed().map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        {
            let mut pending = self.shared.pending.lock().expect("pending lock");
            for e in entries {
                rows.push((e.log_id, encode(&e)));
                pending.insert(e.log_id.index, e);
            }
        }
        self.jobs
            .send(Job::Append { rows, flushed: callback })
            .map_err(|_| StoreError::Layout("the log writer has stopped".into()))
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> SResult<()> {
        self.shared.pending.lock().expect("pending lock").retain(|i, _| *i < log_id.index);
        self.run(|done| Job::Truncate { from: log_id.index, done })
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> SResult<()> {
        self.shared.pending.lock().expect("pending lock").retain(|i, _| *i > log_id.index);
        self.run(|done| Job::Purge { upto: log_id, done })
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
