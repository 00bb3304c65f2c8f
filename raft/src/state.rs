//! The state machine: the applied event log, its indexes, the dedup table and state checkpoints, in one
//! redb file (`state.redb`), each apply batch in one fsynced write transaction; plus snapshots.
//!
//! Applying an entry runs the pure core (`sendan_core::log::append`) on the in-memory fleet projection
//! and hands the accepted events to a writer thread, which commits them (`Durability::Immediate`),
//! grouping whatever applies queued while it was committing. `apply` answers the clients without waiting
//! for that fsync: the entry is already committed in the Raft log of a majority, which is what makes an
//! acknowledgement durable, and after a crash openraft applies again — deterministically, to the same
//! seqs and hashes — every entry past the last applied index `state.redb` holds. Readers of the store
//! wait until it has caught up with what they were answered (`Reader::caught_up`), and watchers are
//! woken only once events are durable. A snapshot is the whole event history, streamed from an MVCC read
//! transaction into a file; installing one verifies every record against the hash chain, keeps the
//! events this member already has (they must match byte for byte) and folds the rest.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StoredMembership,
};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use sendan_core::chain::Verifier;
use sendan_core::fleet::FleetState;
use sendan_core::log::BatchRejection;
use sendan_core::{Event, NodeId, Proposal, record};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{DbResult, StoreError};
use crate::format::{decode, encode};
use crate::log_store::LogStore;
use crate::{Member, MemberId, Outcome, Receipt, Request, Response, TypeConfig};

pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub(crate) const BY_NODE: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_node");
pub(crate) const BY_TYPE: TableDefinition<(u16, u64), ()> = TableDefinition::new("events_by_type");
pub(crate) const DEDUP: TableDefinition<u128, u64> = TableDefinition::new("event_ids");
pub(crate) const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT: &str = "snapshot";
const FORMAT: &str = "format";
/// The layout version of `state.redb`.
const STATE_FORMAT: u8 = 1;

/// Snapshot files start with this, then a postcard [`SnapshotHeader`], then length-prefixed records.
const SNAPSHOT_MAGIC: &[u8; 8] = b"SNDNSNP1";

type SResult<T> = Result<T, StorageError<MemberId>>;

/// Open (or create) both stores of a member in `dir`.
pub fn open_stores(dir: &Path, checkpoint_every: u64) -> Result<(LogStore, StateMachine), StoreError> {
    fs::create_dir_all(dir).map_err(StoreError::io("create data directory", dir))?;
    let log = LogStore::open(dir)?;
    let sm = StateMachine::open(dir, checkpoint_every)?;
    Ok((log, sm))
}

pub(crate) struct Shared {
    pub(crate) db: Database,
    snapshot_dir: PathBuf,
    /// The fleet after the last applied event (possibly a little ahead of `state.redb`).
    fleet: RwLock<Arc<FleetState>>,
    /// The last seq durable in `state.redb`: what readers can read and watchers are told about.
    durable: watch::Sender<u64>,
    /// Why the writer stopped, if it failed; the member then stops applying.
    failed: Mutex<Option<String>>,
    /// Receipts of events applied but perhaps not yet durable, by event id, with the digest of their content:
    /// the dedup table's head. Only the applying thread touches it.
    unflushed: Mutex<HashMap<u128, Applied>>,
    checkpoint_every: u64,
}

impl Shared {
    pub(crate) fn fleet(&self) -> Arc<FleetState> {
        self.fleet.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    pub(crate) fn durable_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().db("begin state read")
    }
}

/// The state machine of one member. Cloning shares it (and its writer).
#[derive(Clone)]
pub struct StateMachine {
    pub(crate) shared: Arc<Shared>,
    writer: Sender<WriteJob>,
}

/// One event as the writer stores it.
struct Row {
    seq: u64,
    id: u128,
    kind: u16,
    nodes: Vec<NodeId>,
    bytes: Vec<u8>,
}

/// What one `apply` call writes, in one transaction.
#[derive(Default)]
struct WriteSet {
    rows: Vec<Row>,
    applied: Option<Option<LogId<MemberId>>>,
    membership: Option<StoredMembership<MemberId, Member>>,
    /// The fleet to checkpoint (a cheap clone: persistent maps), encoded by the writer, off the apply path.
    checkpoint: Option<FleetState>,
    seq: u64,
}

enum WriteJob {
    Apply(WriteSet),
    /// Answered once everything queued before it is durable (or has failed).
    Barrier(std::sync::mpsc::Sender<Result<(), String>>),
}

/// The most write sets the writer folds into one transaction.
const MAX_GROUP: usize = 256;
/// How long the writer gathers write sets before committing them together.
const GROUP_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

fn write_loop(shared: &Shared, rx: Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        // Nobody waits on this commit to be answered (a barrier ends the window at once), so gather a
        // little: each commit costs an fsync and rewrites the index pages it touches.
        let window = std::time::Instant::now() + GROUP_WINDOW;
        let mut barrier = matches!(first, WriteJob::Barrier(_));
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP && !barrier {
            let left = window.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => {
                    barrier = matches!(j, WriteJob::Barrier(_));
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let sets: Vec<&WriteSet> =
            jobs.iter().filter_map(|j| if let WriteJob::Apply(s) = j { Some(s) } else { None }).collect();
        let result = if sets.is_empty() || shared.failure().is_some() { Ok(()) } else { commit_sets(shared, &sets) };
        match &result {
            Ok(()) => {
                if let Some(seq) = sets.iter().map(|s| s.seq).max() {
                    shared.durable.send_if_modified(|d| {
                        let moved = seq > *d;
                        *d = (*d).max(seq);
                        moved
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the state machine could not commit applied entries; this member stops applying");
                let mut failed = shared.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                failed.get_or_insert_with(|| e.to_string());
            }
        }
        let outcome = shared.failure().map_or(Ok(()), Err);
        for job in jobs {
            if let WriteJob::Barrier(done) = job {
                let _ = done.send(outcome.clone());
            }
        }
    }
}

fn commit_sets(shared: &Shared, sets: &[&WriteSet]) -> Result<(), StoreError> {
    let txn = committed_write(&shared.db)?;
    {
        let mut events = txn.open_table(EVENTS).db("open events")?;
        let mut by_node = txn.open_table(BY_NODE).db("open node index")?;
        let mut by_type = txn.open_table(BY_TYPE).db("open type index")?;
        let mut ids = txn.open_table(DEDUP).db("open id table")?;
        for row in sets.iter().flat_map(|s| &s.rows) {
            events.insert(row.seq, row.bytes.as_slice()).db("insert event")?;
            for node in &row.nodes {
                by_node.insert((node.as_str(), row.seq), ()).db("index node")?;
            }
            by_type.insert((row.kind, row.seq), ()).db("index type")?;
            ids.insert(row.id, row.seq).db("record event id")?;
        }
    }
    if let Some(applied) = sets.iter().rev().find_map(|s| s.applied) {
        write_meta(&txn, APPLIED, &applied)?;
    }
    if let Some(m) = sets.iter().rev().find_map(|s| s.membership.as_ref()) {
        write_meta(&txn, MEMBERSHIP, m)?;
    }
    for fleet in sets.iter().filter_map(|s| s.checkpoint.as_ref()) {
        write_checkpoint_bytes(&txn, fleet.seq, &encode_checkpoint(fleet), shared.checkpoint_every)?;
    }
    txn.commit().db("commit applied entries")
}

/// What a snapshot file says about itself.
#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    last_applied: Option<LogId<MemberId>>,
    membership: StoredMembership<MemberId, Member>,
    /// The last event in the snapshot, and its hash.
    seq: u64,
    head: sendan_core::Hash,
}

/// The tables every appended event is written to, opened once per write transaction.
struct EventTables<'t> {
    events: redb::Table<'t, u64, &'static [u8]>,
    by_node: redb::Table<'t, (&'static str, u64), ()>,
    by_type: redb::Table<'t, (u16, u64), ()>,
    ids: redb::Table<'t, u128, u64>,
}

impl<'t> EventTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(EventTables {
            events: txn.open_table(EVENTS).db("open events")?,
            by_node: txn.open_table(BY_NODE).db("open node index")?,
            by_type: txn.open_table(BY_TYPE).db("open type index")?,
            ids: txn.open_table(DEDUP).db("open id table")?,
        })
    }

    /// Store `event` (whose record is `bytes`) and index it under `nodes`.
    fn write(&mut self, nodes: &[NodeId], event: &Event, bytes: &[u8]) -> Result<(), StoreError> {
        self.events.insert(event.seq, bytes).db("insert event")?;
        for node in nodes {
            self.by_node.insert((node.as_str(), event.seq), ()).db("index node")?;
        }
        self.by_type.insert((event.kind().code(), event.seq), ()).db("index type")?;
        self.ids.insert(event.id.0.as_u128(), event.seq).db("record event id")?;
        Ok(())
    }
}

fn committed_write(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db("begin state write")?;
    txn.set_durability(Durability::Immediate).db("set durability")?;
    Ok(txn)
}

fn read_meta<T: for<'de> Deserialize<'de>>(txn: &ReadTransaction, key: &'static str) -> Result<Option<T>, StoreError> {
    let table = txn.open_table(META).db("open state meta")?;
    let v = table.get(key).db("read state meta")?;
    v.map(|v| decode(key, v.value())).transpose()
}

fn write_meta<T: Serialize>(txn: &WriteTransaction, key: &'static str, value: &T) -> Result<(), StoreError> {
    txn.open_table(META).db("open state meta")?.insert(key, encode(value).as_slice()).db("write state meta")?;
    Ok(())
}

/// The version byte of a checkpoint carrying the fleet's schema fingerprint: `[2][fingerprint: 32 bytes][postcard
/// fleet]`. Checkpoints before fingerprints were `[1][postcard fleet]` (the plain record format).
const CHECKPOINT_FORMAT: u8 = 2;

/// A checkpoint of `fleet`, stamped with this build's schema fingerprint.
fn encode_checkpoint(fleet: &FleetState) -> Vec<u8> {
    let mut out = vec![CHECKPOINT_FORMAT];
    out.extend_from_slice(&sendan_core::fleet::schema::fingerprint().0);
    postcard::to_extend(fleet, out).unwrap_or_default()
}

/// The fleet in a checkpoint, if this build wrote it: a checkpoint of another schema (or from before fingerprints)
/// is never decoded into this build's types — `None`, and the caller folds the events instead.
fn decode_checkpoint(bytes: &[u8]) -> Option<FleetState> {
    let (&version, rest) = bytes.split_first()?;
    if version != CHECKPOINT_FORMAT || rest.len() < 32 {
        return None;
    }
    let (fingerprint, body) = rest.split_at(32);
    if fingerprint != sendan_core::fleet::schema::fingerprint().0 {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// The latest checkpoint at or before `seq` this build can read, and how many newer ones it could not.
fn readable_checkpoint(txn: &ReadTransaction, seq: u64) -> Result<(FleetState, usize), StoreError> {
    let cps = txn.open_table(CHECKPOINTS).db("open checkpoints")?;
    let mut skipped = 0;
    for row in cps.range(..=seq).db("range checkpoints")?.rev() {
        let (_, v) = row.db("read checkpoint")?;
        match decode_checkpoint(v.value()) {
            Some(fleet) => return Ok((fleet, skipped)),
            None => skipped += 1,
        }
    }
    Ok((FleetState::default(), skipped))
}

/// The fleet after `seq`, from the nearest readable checkpoint at or before it plus the events since.
pub(crate) fn fleet_at(txn: &ReadTransaction, seq: u64) -> Result<FleetState, StoreError> {
    Ok(fleet_at_counting(txn, seq)?.0)
}

/// [`fleet_at`], and how many checkpoints of another schema it passed over.
fn fleet_at_counting(txn: &ReadTransaction, seq: u64) -> Result<(FleetState, usize), StoreError> {
    let (mut fleet, skipped) = readable_checkpoint(txn, seq)?;
    let events = txn.open_table(EVENTS).db("open events")?;
    for row in events.range(fleet.seq + 1..=seq).db("range events")? {
        let (k, v) = row.db("read event")?;
        let event = record::decode(v.value()).map_err(|source| StoreError::Record { seq: k.value(), source })?;
        sendan_core::evolve(&mut fleet, &event);
    }
    Ok((fleet, skipped))
}

fn last_seq(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let events = txn.open_table(EVENTS).db("open events")?;
    Ok(events.last().db("read last event")?.map(|(k, _)| k.value()).unwrap_or(0))
}

impl StateMachine {
    pub fn open(dir: &Path, checkpoint_every: u64) -> Result<StateMachine, StoreError> {
        let path = dir.join("state.redb");
        let db = Database::create(&path).db("open state.redb")?;
        let txn = committed_write(&db)?;
        for t in [EVENTS, CHECKPOINTS] {
            txn.open_table(t).db("create table")?;
        }
        txn.open_table(BY_NODE).db("create table")?;
        txn.open_table(BY_TYPE).db("create table")?;
        txn.open_table(DEDUP).db("create table")?;
        {
            let mut meta = txn.open_table(META).db("create table")?;
            let format = meta.get(FORMAT).db("read format")?.map(|v| v.value().to_vec());
            match format.as_deref() {
                None => {
                    meta.insert(FORMAT, [STATE_FORMAT].as_slice()).db("write format")?;
                }
                Some([STATE_FORMAT]) => {}
                Some(other) => {
                    return Err(StoreError::Layout(format!(
                        "state.redb has layout version {other:?}; this build reads version {STATE_FORMAT}"
                    )));
                }
            }
        }
        txn.commit().db("commit state tables")?;

        let snapshot_dir = dir.join("snapshots");
        fs::create_dir_all(&snapshot_dir).map_err(StoreError::io("create snapshot directory", &snapshot_dir))?;
        // Cold start: the latest checkpoint plus the events after it. Checkpoints another build wrote (another
        // schema of the fleet's state) are passed over: the events are folded again, and a fresh checkpoint
        // replaces them.
        let read = db.begin_read().db("begin state read")?;
        let (fleet, skipped) = fleet_at_counting(&read, last_seq(&read)?)?;
        drop(read);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                seq = fleet.seq,
                "checkpoints of another schema of the fleet's state (an older or newer build) were not read; the \
                 events were folded again and a fresh checkpoint replaces them"
            );
            let txn = committed_write(&db)?;
            {
                let mut cps = txn.open_table(CHECKPOINTS).db("open checkpoints")?;
                let stale: Vec<u64> = cps
                    .iter()
                    .db("list checkpoints")?
                    .filter_map(|r| r.ok())
                    .filter(|(_, v)| decode_checkpoint(v.value()).is_none())
                    .map(|(k, _)| k.value())
                    .collect();
                for k in stale {
                    cps.remove(k).db("remove a stale checkpoint")?;
                }
            }
            if fleet.seq > 0 {
                write_checkpoint_bytes(&txn, fleet.seq, &encode_checkpoint(&fleet), checkpoint_every.max(1))?;
            }
            txn.commit().db("commit fresh checkpoints")?;
        }
        let (durable, _) = watch::channel(fleet.seq);
        let shared = Arc::new(Shared {
            db,
            snapshot_dir,
            fleet: RwLock::new(Arc::new(fleet)),
            durable,
            failed: Mutex::new(None),
            unflushed: Mutex::new(HashMap::new()),
            checkpoint_every: checkpoint_every.max(1),
        });
        let (writer, rx) = channel();
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("sendan-state-writer".into())
            .spawn(move || write_loop(&for_writer, rx))
            .map_err(StoreError::io("start the state writer", &path))?;
        Ok(StateMachine { shared, writer })
    }

    /// Wait until everything applied so far is durable in `state.redb`.
    fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.writer
            .send(WriteJob::Barrier(tx))
            .map_err(|_| StoreError::Layout("the state writer has stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Layout("the state writer stopped".into()))?
            .map_err(|e| StoreError::Layout(format!("the state writer failed: {e}")))
    }

    pub fn reader(&self) -> crate::Reader {
        crate::Reader { shared: self.shared.clone() }
    }

    fn apply_blocking(&self, entries: Vec<openraft::Entry<TypeConfig>>) -> Result<Vec<Response>, StoreError> {
        let shared = &self.shared;
        if let Some(e) = shared.failure() {
            return Err(StoreError::Layout(format!("the state writer failed earlier: {e}")));
        }
        // The fleet is changed in place; it is copied only where a reader still holds an older version
        // (persistent maps copy just the paths they change).
        let mut guard = shared.fleet.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fleet = Arc::make_mut(&mut guard);
        let before = fleet.seq;
        let mut ids = IdLookup::begin(shared)?;
        let mut set = WriteSet::default();
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            set.applied = Some(Some(entry.log_id));
            let response = match entry.payload {
                EntryPayload::Blank => Response::Nothing,
                EntryPayload::Membership(m) => {
                    set.membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    Response::Nothing
                }
                EntryPayload::Normal(Request::AppendV1 { batches }) => {
                    let batches: Vec<Vec<Proposal>> =
                        batches.into_iter().map(|b| b.into_iter().map(Proposal::from).collect()).collect();
                    let mut outcomes = Vec::with_capacity(batches.len());
                    for proposals in &batches {
                        outcomes.push(apply_append(&mut ids, &mut set.rows, fleet, proposals)?);
                    }
                    Response::Appended(outcomes)
                }
                EntryPayload::Normal(Request::Append { batches }) => {
                    let mut outcomes = Vec::with_capacity(batches.len());
                    for proposals in &batches {
                        outcomes.push(apply_append(&mut ids, &mut set.rows, fleet, proposals)?);
                    }
                    Response::Appended(outcomes)
                }
            };
            responses.push(response);
        }
        if fleet.seq / shared.checkpoint_every > before / shared.checkpoint_every {
            set.checkpoint = Some(fleet.clone());
        }
        set.seq = fleet.seq;
        drop(ids);
        self.writer
            .send(WriteJob::Apply(set))
            .map_err(|_| StoreError::Layout("the state writer has stopped".into()))?;
        drop(guard);
        Ok(responses)
    }

    fn applied_state_blocking(
        &self,
    ) -> Result<(Option<LogId<MemberId>>, StoredMembership<MemberId, Member>), StoreError> {
        self.flush()?;
        let txn = self.shared.begin_read()?;
        let applied = read_meta::<Option<LogId<MemberId>>>(&txn, APPLIED)?.flatten();
        let membership = read_meta(&txn, MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    fn build_snapshot_blocking(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let shared = &self.shared;
        // Everything applied so far goes in; then one MVCC read transaction, so applies go on while the
        // file is written.
        self.flush()?;
        let txn = shared.begin_read()?;
        let last_applied = read_meta::<Option<LogId<MemberId>>>(&txn, APPLIED)?.flatten();
        let membership: StoredMembership<MemberId, Member> = read_meta(&txn, MEMBERSHIP)?.unwrap_or_default();
        let events = txn.open_table(EVENTS).db("open events")?;
        let (seq, head) = match events.last().db("read last event")? {
            Some((k, v)) => {
                let raw = record::split(v.value()).map_err(|source| StoreError::Record { seq: k.value(), source })?;
                (k.value(), raw.hash)
            }
            None => (0, sendan_core::Hash::GENESIS),
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}-{seq}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => format!("0-0-0-{seq}"),
        };
        let path = shared.snapshot_dir.join(format!("{snapshot_id}.snap"));
        let tmp = path.with_extension("tmp");
        {
            let file = File::create(&tmp).map_err(StoreError::io("create snapshot", &tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let header = encode(&SnapshotHeader { last_applied, membership: membership.clone(), seq, head });
            let io = StoreError::io("write snapshot", &tmp);
            let result: std::io::Result<()> = (|| {
                w.write_all(SNAPSHOT_MAGIC)?;
                w.write_all(&(header.len() as u32).to_be_bytes())?;
                w.write_all(&header)?;
                for row in events.range(1..=seq).map_err(std::io::Error::other)? {
                    let (_, v) = row.map_err(std::io::Error::other)?;
                    let bytes = v.value();
                    w.write_all(&(bytes.len() as u32).to_be_bytes())?;
                    w.write_all(bytes)?;
                }
                w.flush()?;
                w.get_ref().sync_all()
            })();
            result.map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(StoreError::io("publish snapshot", &path))?;
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        self.set_current_snapshot(&meta, &path)?;
        let file = File::open(&path).map_err(StoreError::io("open snapshot", &path))?;
        Ok(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) })
    }

    /// Record `meta` as the current snapshot (its file already in place) and delete older files.
    fn set_current_snapshot(&self, meta: &SnapshotMeta<MemberId, Member>, path: &Path) -> Result<(), StoreError> {
        let txn = committed_write(&self.shared.db)?;
        write_meta(&txn, SNAPSHOT, meta)?;
        txn.commit().db("commit snapshot meta")?;
        if let Ok(dir) = fs::read_dir(&self.shared.snapshot_dir) {
            for entry in dir.flatten() {
                let p = entry.path();
                if p != path && p.extension().is_some_and(|e| e == "snap") {
                    let _ = fs::remove_file(p);
                }
            }
        }
        Ok(())
    }

    fn current_snapshot_blocking(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let txn = self.shared.begin_read()?;
        let Some(meta) = read_meta::<SnapshotMeta<MemberId, Member>>(&txn, SNAPSHOT)? else { return Ok(None) };
        let path = self.shared.snapshot_dir.join(format!("{}.snap", meta.snapshot_id));
        let file = File::open(&path).map_err(StoreError::io("open snapshot", &path))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }

    fn install_blocking(&self, meta: SnapshotMeta<MemberId, Member>, mut file: File) -> Result<(), StoreError> {
        let shared = &self.shared;
        let incoming = shared.snapshot_dir.join(format!("{}.snap", meta.snapshot_id));
        let bad = |m: String| StoreError::Snapshot(m);
        file.seek(SeekFrom::Start(0)).map_err(StoreError::io("rewind snapshot", &incoming))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let io = |e| StoreError::io("read snapshot", &incoming)(e);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io)?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(bad("the file is not a Sendan snapshot".into()));
        }
        let header: SnapshotHeader = decode("snapshot header", &read_frame(&mut r).map_err(io)?)?;
        if header.last_applied != meta.last_log_id {
            return Err(bad(format!(
                "its header covers log id {:?} but it was sent as {:?}",
                header.last_applied, meta.last_log_id
            )));
        }

        self.flush()?;
        let mut fleet = (*shared.fleet()).clone();
        let local_seq = fleet.seq;
        let txn = committed_write(&shared.db)?;
        let mut verifier = Verifier::default();
        {
            let mut tables = EventTables::open(&txn)?;
            for seq in 1..=header.seq {
                let bytes = read_frame(&mut r).map_err(io)?;
                verifier.push(seq, &bytes).map_err(|e| bad(e.to_string()))?;
                if seq <= local_seq {
                    // History this member already has must be the same history, byte for byte.
                    let ours = tables.events.get(seq).db("read event")?;
                    if ours.as_ref().map(|v| v.value()) != Some(bytes.as_slice()) {
                        return Err(bad(format!("event {seq} differs from this member's copy")));
                    }
                    continue;
                }
                let event = record::decode(&bytes).map_err(|source| StoreError::Record { seq, source })?;
                let nodes = sendan_core::fleet::evolve_indexed(&mut fleet, &event);
                tables.write(&nodes, &event, &bytes)?;
            }
        }
        if verifier.head() != header.head || fleet.seq != header.seq.max(local_seq) {
            return Err(bad("the last event's hash does not match the snapshot header".into()));
        }
        if local_seq > header.seq {
            return Err(bad(format!(
                "it ends at seq {} but this member has applied up to seq {local_seq}",
                header.seq
            )));
        }
        write_meta(&txn, APPLIED, &meta.last_log_id)?;
        write_meta(&txn, MEMBERSHIP, &meta.last_membership)?;
        write_checkpoint_bytes(&txn, fleet.seq, &encode_checkpoint(&fleet), shared.checkpoint_every)?;
        txn.commit().db("commit installed snapshot")?;

        // Keep the received file as this member's current snapshot.
        let mut src = r.into_inner();
        src.seek(SeekFrom::Start(0)).map_err(StoreError::io("rewind snapshot", &incoming))?;
        let tmp = incoming.with_extension("tmp");
        let mut dst = File::create(&tmp).map_err(StoreError::io("create snapshot", &tmp))?;
        std::io::copy(&mut src, &mut dst).map_err(StoreError::io("copy snapshot", &tmp))?;
        dst.sync_all().map_err(StoreError::io("sync snapshot", &tmp))?;
        fs::rename(&tmp, &incoming).map_err(StoreError::io("publish snapshot", &incoming))?;
        self.set_current_snapshot(&meta, &incoming)?;
        let seq = fleet.seq;
        *shared.fleet.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fleet);
        shared.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        shared.durable.send_replace(seq);
        Ok(())
    }
}

fn read_frame(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "snapshot frame larger than 64 MiB"));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Where an event id was applied, and the digest of what it carried ([`record::content_digest`]).
#[derive(Clone, Copy)]
struct Applied {
    seq: u64,
    hash: sendan_core::Hash,
    content: sendan_core::Hash,
}

/// Finds the original receipt of an event id applied before: first among events not yet durable, then
/// in a read transaction begun after pruning what it can see from that list (so nothing falls between).
struct IdLookup<'s> {
    unflushed: std::sync::MutexGuard<'s, HashMap<u128, Applied>>,
    txn: ReadTransaction,
}

impl<'s> IdLookup<'s> {
    fn begin(shared: &'s Shared) -> Result<Self, StoreError> {
        let mut unflushed = shared.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = shared.begin_read()?;
        let durable = last_seq(&txn)?;
        unflushed.retain(|_, a| a.seq > durable);
        Ok(IdLookup { unflushed, txn })
    }

    fn applied_before(&self, id: sendan_core::EventId) -> Result<Option<Applied>, StoreError> {
        let key = id.0.as_u128();
        if let Some(a) = self.unflushed.get(&key) {
            return Ok(Some(*a));
        }
        let ids = self.txn.open_table(DEDUP).db("open id table")?;
        let Some(seq) = ids.get(key).db("look up event id")?.map(|v| v.value()) else { return Ok(None) };
        let events = self.txn.open_table(EVENTS).db("open events")?;
        let stored = events.get(seq).db("read event")?;
        let bytes = stored.as_ref().map(|v| v.value()).unwrap_or_default();
        let event = record::decode(bytes).map_err(|source| StoreError::Record { seq, source })?;
        let content = record::content_digest(&event.actor, &event.comment, &event.payload);
        Ok(Some(Applied { seq, hash: event.hash, content }))
    }
}

/// Apply one submission: every proposal is authorized first (an id says nothing about an event to someone
/// who may not submit it); ids applied before answer with their original place when they carry the same
/// content, and are refused (`id_reused`) when they do not; the rest are checked and appended as one atomic
/// batch, and their rows queued for the writer.
fn apply_append(
    ids: &mut IdLookup<'_>,
    rows: &mut Vec<Row>,
    fleet: &mut FleetState,
    proposals: &[Proposal],
) -> Result<Outcome, StoreError> {
    for (index, p) in proposals.iter().enumerate() {
        if let Err(rejection) = sendan_core::fleet::authorize(fleet, &p.actor, &p.payload) {
            return Ok(Outcome::Rejected(BatchRejection { index, rejection }));
        }
    }
    let mut receipts: Vec<Option<Receipt>> = Vec::with_capacity(proposals.len());
    let mut fresh = Vec::with_capacity(proposals.len());
    let mut fresh_at = Vec::with_capacity(proposals.len());
    for (i, p) in proposals.iter().enumerate() {
        let before = ids.applied_before(p.id)?;
        match before {
            None => {
                fresh.push(p.clone());
                fresh_at.push(i);
                receipts.push(None);
            }
            Some(a) if a.content == record::content_digest(&p.actor, &p.comment, &p.payload) => {
                receipts.push(Some(Receipt { id: p.id, seq: a.seq, hash: a.hash, duplicate: true }));
            }
            Some(a) => {
                let rejection = sendan_core::Rejection::IdReused { id: p.id, seq: a.seq };
                return Ok(Outcome::Rejected(BatchRejection { index: i, rejection }));
            }
        }
    }
    if !fresh.is_empty() {
        match sendan_core::log::append_indexed(fleet, &fresh) {
            Ok(events) => {
                for (sealed, i) in events.into_iter().zip(&fresh_at) {
                    let event = &sealed.event;
                    let id = event.id.0.as_u128();
                    let content = record::content_digest(&event.actor, &event.comment, &event.payload);
                    ids.unflushed.insert(id, Applied { seq: event.seq, hash: event.hash, content });
                    receipts[*i] = Some(Receipt { id: event.id, seq: event.seq, hash: event.hash, duplicate: false });
                    let (seq, kind) = (event.seq, event.kind().code());
                    rows.push(Row { seq, id, kind, nodes: sealed.nodes, bytes: sealed.record });
                }
            }
            Err(BatchRejection { index, rejection }) => {
                return Ok(Outcome::Rejected(BatchRejection { index: fresh_at[index], rejection }));
            }
        }
    }
    let receipts: Option<Vec<Receipt>> = receipts.into_iter().collect();
    receipts
        .map(Outcome::Appended)
        .ok_or_else(|| StoreError::Layout("a proposal of an applied submission has no receipt".into()))
}

/// Persist a checkpoint of the fleet at `seq`, keeping the last four and every tenth.
fn write_checkpoint_bytes(txn: &WriteTransaction, seq: u64, bytes: &[u8], every: u64) -> Result<(), StoreError> {
    let mut cps = txn.open_table(CHECKPOINTS).db("open checkpoints")?;
    cps.insert(seq, bytes).db("write checkpoint")?;
    let keys: Vec<u64> = cps.iter().db("list checkpoints")?.filter_map(|r| r.ok().map(|(k, _)| k.value())).collect();
    let recent = keys.len().saturating_sub(4);
    for k in &keys[..recent] {
        if (k / every) % 10 != 0 {
            cps.remove(k).db("prune checkpoint")?;
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await?
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> SResult<(Option<LogId<MemberId>>, StoredMembership<MemberId, Member>)> {
        let this = self.clone();
        blocking(move || this.applied_state_blocking())
            .await
            .map_err(|e| e.into_raft(ErrorSubject::StateMachine, ErrorVerb::Read))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<Response>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        // Applying is CPU work on memory (the fsync happens on the writer thread), so it runs inline.
        self.apply_blocking(entries.into_iter().collect())
            .map_err(|e| e.into_raft(ErrorSubject::StateMachine, ErrorVerb::Write))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<tokio::fs::File>> {
        let dir = self.shared.snapshot_dir.clone();
        let open = move || -> Result<File, StoreError> {
            let path = dir.join(format!("incoming-{}.part", std::process::id()));
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(StoreError::io("create incoming snapshot", &path))
        };
        blocking(open)
            .await
            .map(|f| Box::new(tokio::fs::File::from_std(f)))
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, Member>,
        snapshot: Box<tokio::fs::File>,
    ) -> SResult<()> {
        let file = snapshot.into_std().await;
        let this = self.clone();
        let meta_owned = meta.clone();
        blocking(move || this.install_blocking(meta_owned, file))
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Write))
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        let this = self.clone();
        blocking(move || this.current_snapshot_blocking())
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let this = self.clone();
        blocking(move || this.build_snapshot_blocking())
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }
}
