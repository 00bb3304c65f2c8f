//! The Raft log, vote and committed index, in their own redb file (`raft-log.redb`), every write fsynced
//! before it is acknowledged (`Durability::Immediate`).
//!
//! The log lives apart from the state machine so that appending entries and applying them commit (and
//! fsync) in parallel instead of queueing behind one writer.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, StorageError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DbResult, StoreError};
use crate::{MemberId, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";

/// The durable Raft log of one member. Cloning shares the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

type SResult<T> = Result<T, StorageError<MemberId>>;

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("postcard encoding into a Vec")
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(StoreError::decode(what))
}

fn committed_write(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db("begin log write")?;
    txn.set_durability(Durability::Immediate).db("set durability")?;
    Ok(txn)
}

impl LogStore {
    /// Open (or create) the log in `dir/raft-log.redb`.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        let path = dir.join("raft-log.redb");
        let db = Database::create(&path).db("open raft-log.redb")?;
        let txn = committed_write(&db)?;
        txn.open_table(LOG).db("create log table")?;
        txn.open_table(META).db("create log meta table")?;
        txn.commit().db("commit log tables")?;
        Ok(LogStore { db: Arc::new(db) })
    }

    /// The committed log id openraft last saved.
    pub fn committed(&self) -> Result<Option<LogId<MemberId>>, StoreError> {
        Ok(self.read_meta::<Option<LogId<MemberId>>>(COMMITTED)?.flatten())
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &'static str) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().db("begin log read")?;
        let table = txn.open_table(META).db("open log meta")?;
        match table.get(key).db("read log meta")? {
            Some(v) => decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    async fn write_meta<T: Serialize>(&self, key: &'static str, value: &T) -> Result<(), StoreError> {
        let db = self.db.clone();
        let bytes = encode(value);
        tokio::task::spawn_blocking(move || {
            let txn = committed_write(&db)?;
            txn.open_table(META).db("open log meta")?.insert(key, bytes.as_slice()).db("write log meta")?;
            txn.commit().db("commit log meta")
        })
        .await?
    }

    fn entries(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let txn = self.db.begin_read().db("begin log read")?;
        let table = txn.open_table(LOG).db("open log")?;
        let mut out = Vec::new();
        for row in table.range::<u64>((start, end)).db("range log")? {
            let (_, v) = row.db("read log entry")?;
            out.push(decode("log entry", v.value())?);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<MemberId>>, StoreError> {
        let txn = self.db.begin_read().db("begin log read")?;
        let table = txn.open_table(LOG).db("open log")?;
        match table.last().db("read last log entry")? {
            Some((_, v)) => Ok(Some(decode::<Entry<TypeConfig>>("log entry", v.value())?.log_id)),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = (range.start_bound().cloned(), range.end_bound().cloned());
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.entries(start, end))
            .await
            .map_err(StoreError::from)
            .and_then(|r| r)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig>> {
        let read = || -> Result<_, StoreError> {
            let purged: Option<LogId<MemberId>> = self.read_meta(PURGED)?;
            let last = self.last_entry_id()?.or(purged);
            Ok(LogState { last_purged_log_id: purged, last_log_id: last })
        };
        read().map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> SResult<()> {
        self.write_meta(VOTE, vote).await.map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<MemberId>>> {
        self.read_meta(VOTE).map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId<MemberId>>) -> SResult<()> {
        self.write_meta(COMMITTED, &committed).await.map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> SResult<Option<LogId<MemberId>>> {
        let c: Option<Option<LogId<MemberId>>> =
            self.read_meta(COMMITTED).map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))?;
        Ok(c.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let rows: Vec<(u64, Vec<u8>)> = entries.into_iter().map(|e| (e.log_id.index, encode(&e))).collect();
        let db = self.db.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let txn = committed_write(&db)?;
            {
                let mut table = txn.open_table(LOG).db("open log")?;
                for (index, bytes) in &rows {
                    table.insert(*index, bytes.as_slice()).db("append log entry")?;
                }
            }
            txn.commit().db("commit appended entries")
        })
        .await
        .map_err(StoreError::from)
        .and_then(|r| r);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> SResult<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let txn = committed_write(&db)?;
            txn.open_table(LOG).db("open log")?.retain_in(log_id.index.., |_, _| false).db("truncate log")?;
            txn.commit().db("commit truncation")
        })
        .await
        .map_err(StoreError::from)
        .and_then(|r| r)
        .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> SResult<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let txn = committed_write(&db)?;
            txn.open_table(META).db("open log meta")?.insert(PURGED, encode(&log_id).as_slice()).db("write purged")?;
            txn.open_table(LOG).db("open log")?.retain_in(..=log_id.index, |_, _| false).db("purge log")?;
            txn.commit().db("commit purge")
        })
        .await
        .map_err(StoreError::from)
        .and_then(|r| r)
        .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
