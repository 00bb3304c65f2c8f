//! The state machine and store below Raft: applying entries (dedup, atomic rejection), reopening,
//! snapshots that carry and verify the whole history, and tampering detected at the exact seq.

use std::path::Path;
use std::time::{Duration, Instant};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sendan_core::event::{MachineDiscovered, NodeCommissioned, NodeDrainRequested};
use sendan_core::{Actor, EventId, MachineId, NodeId, Payload, Proposal, Timestamp};
use sendan_raft::{Outcome, Request, Response, StateMachine, TypeConfig};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");

fn proposal(id: u128, payload: impl Into<Payload>) -> Proposal {
    Proposal {
        id: EventId::from_u128(id),
        time: Timestamp(1_800_000_000_000 + id as i64),
        actor: Actor::Admin,
        comment: None,
        cause: None,
        payload: payload.into(),
    }
}

fn discovered(m: &str) -> Payload {
    MachineDiscovered { machine: MachineId::new(m).unwrap(), facts: Default::default() }.into()
}

fn entry(index: u64, batches: Vec<Vec<Proposal>>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request::Append { batches }),
    }
}

fn outcomes(r: Response) -> Vec<Outcome> {
    match r {
        Response::Appended(o) => o,
        other => panic!("expected outcomes, got {other:?}"),
    }
}

/// Open the stores in `dir`, waiting for a previous instance's writer to let go of the files.
fn reopen(dir: &Path) -> StateMachine {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match StateMachine::open(dir, 4) {
            Ok(sm) => return sm,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20)); // poll pacing while the old writer exits
            }
            Err(e) => panic!("the state machine does not reopen: {e}"),
        }
    }
}

fn open_db(dir: &Path) -> redb::Database {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redb::Database::open(dir.join("state.redb")) {
            Ok(db) => return db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)), // poll pacing
            Err(e) => panic!("state.redb does not open: {e}"),
        }
    }
}

/// Ten events in three entries, including a re-submitted id and a refused submission.
async fn fill(sm: &mut StateMachine) -> Vec<Outcome> {
    let node = NodeId::new("n1").unwrap();
    let mut all = Vec::new();
    let r = sm
        .apply([
            entry(1, vec![(1..=4).map(|i| proposal(i, discovered(&format!("m{i}")))).collect()]),
            entry(
                2,
                vec![
                    vec![proposal(
                        5,
                        NodeCommissioned {
                            node: node.clone(),
                            machine: MachineId::new("m1").unwrap(),
                            class: None,
                            pool: None,
                            profile: None,
                            rule: None,
                        },
                    )],
                    // Applied before: answered with the original seq, not written again.
                    vec![proposal(2, discovered("m2"))],
                    // Refused as a whole: nothing of it is written.
                    vec![proposal(6, discovered("m6")), proposal(7, NodeDrainRequested { node: node.clone() })],
                ],
            ),
        ])
        .await
        .unwrap();
    for resp in r {
        all.extend(outcomes(resp));
    }
    let r = sm
        .apply([entry(3, vec![(8..=12).map(|i| proposal(i, discovered(&format!("m{i}")))).collect()])])
        .await
        .unwrap();
    all.extend(r.into_iter().flat_map(outcomes));
    all
}

#[tokio::test]
async fn applying_dedups_ids_rejects_atomically_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(dir.path(), 4).unwrap();
    let out = fill(&mut sm).await;
    let seqs = |o: &Outcome| match o {
        Outcome::Appended(r) => r.iter().map(|r| (r.seq, r.duplicate)).collect::<Vec<_>>(),
        Outcome::Rejected(b) => panic!("unexpected rejection {b:?}"),
    };
    assert_eq!(seqs(&out[0]), vec![(1, false), (2, false), (3, false), (4, false)]);
    assert_eq!(seqs(&out[1]), vec![(5, false)]);
    assert_eq!(seqs(&out[2]), vec![(2, true)], "the re-submitted id answers with its original seq");
    assert!(matches!(&out[3], Outcome::Rejected(b) if b.index == 1 && b.rejection.code() == "illegal_transition"));
    assert_eq!(seqs(&out[4]), vec![(6, false), (7, false), (8, false), (9, false), (10, false)]);

    let reader = sm.reader();
    reader.caught_up().await.unwrap();
    let before = reader.fleet();
    assert_eq!(before.seq, 10);
    assert!(before.machine(&MachineId::new("m6").unwrap()).is_none(), "the refused submission wrote nothing");
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(3));
    drop((sm, reader));

    // Cold start: checkpoints every 4 events plus the tail rebuild the same fleet.
    let sm = reopen(dir.path());
    assert_eq!(sm.reader().fleet().as_ref(), before.as_ref());
    assert!(sm.reader().verify().unwrap().broken.is_none());
}

/// Property: a checkpoint another build wrote — a different schema fingerprint, or the format from before
/// fingerprints — is never decoded into this build's types: the member folds the events again, reaches the same
/// fleet, and replaces the stale checkpoints with fresh ones.
#[tokio::test]
async fn checkpoints_of_another_schema_are_refolded_not_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(dir.path(), 4).unwrap();
    fill(&mut sm).await;
    sm.reader().caught_up().await.unwrap();
    let before = sm.reader().fleet();
    drop(sm);
    {
        let db = open_db(dir.path());
        let txn = db.begin_write().unwrap();
        {
            let mut cps = txn.open_table(CHECKPOINTS).unwrap();
            let keys: Vec<u64> = cps.iter().unwrap().map(|r| r.unwrap().0.value()).collect();
            assert!(!keys.is_empty(), "the fill wrote checkpoints");
            for (i, k) in keys.iter().enumerate() {
                let mut bytes = cps.get(*k).unwrap().unwrap().value().to_vec();
                if i % 2 == 0 {
                    bytes[1] ^= 0xff; // another schema's fingerprint
                } else {
                    bytes = [&[1u8][..], &bytes[33..]].concat(); // the format before fingerprints
                }
                cps.insert(*k, bytes.as_slice()).unwrap();
            }
            // One that would decode into garbage if it were read.
            cps.insert(10, [2u8; 40].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let sm = reopen(dir.path());
    assert_eq!(sm.reader().fleet().as_ref(), before.as_ref(), "folding the events gives the same fleet");
    drop(sm);
    let db = open_db(dir.path());
    let read = db.begin_read().unwrap();
    let cps = read.open_table(CHECKPOINTS).unwrap();
    let fresh: Vec<(u64, u8)> =
        cps.iter().unwrap().map(|r| r.unwrap()).map(|(k, v)| (k.value(), v.value()[0])).collect();
    assert_eq!(fresh, vec![(10, 2)], "the stale checkpoints were replaced by a fresh one: {fresh:?}");
    let v = cps.get(10).unwrap().unwrap();
    assert_ne!(v.value(), [2u8; 40].as_slice());
}

#[tokio::test]
async fn a_flipped_byte_in_the_store_is_found_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(dir.path(), 4).unwrap();
    fill(&mut sm).await;
    sm.reader().caught_up().await.unwrap();
    drop(sm);
    {
        let db = open_db(dir.path());
        let txn = db.begin_write().unwrap();
        {
            let mut events = txn.open_table(EVENTS).unwrap();
            let mut record = events.get(7).unwrap().unwrap().value().to_vec();
            let last = record.len() - 1;
            record[last] ^= 0x01;
            events.insert(7, record.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let sm = reopen(dir.path());
    let report = sm.reader().verify().unwrap();
    let broken = report.broken.expect("the tampered record is found");
    assert_eq!((broken.seq, report.verified), (7, 6), "{broken}");
}

#[tokio::test]
async fn a_snapshot_carries_the_history_and_a_tampered_one_is_refused() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = StateMachine::open(a.path(), 4).unwrap();
    fill(&mut leader).await;
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();

    // A fresh member installs it: the same events, the same fleet, a verified chain.
    let mut fresh = StateMachine::open(b.path(), 4).unwrap();
    let mut incoming = fresh.begin_receiving_snapshot().await.unwrap();
    let mut src = leader.get_current_snapshot().await.unwrap().unwrap();
    tokio::io::copy(&mut src.snapshot, &mut incoming).await.unwrap();
    fresh.install_snapshot(&snapshot.meta, incoming).await.unwrap();
    let (r, w) = (fresh.reader(), leader.reader());
    assert_eq!(r.fleet().as_ref(), w.fleet().as_ref());
    for seq in 1..=10 {
        assert_eq!(r.raw_record(seq).unwrap(), w.raw_record(seq).unwrap(), "event {seq}");
    }
    assert_eq!(r.verify().unwrap().verified, 10);

    // The same file with one byte flipped in the middle of the history is refused, naming the event.
    let path = a.path().join("snapshots").join(format!("{}.snap", snapshot.meta.snapshot_id));
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = w.raw_record(6).unwrap().unwrap();
    let at = bytes.windows(needle.len()).position(|win| win == needle).unwrap() + needle.len() - 1;
    bytes[at] ^= 0x01;
    let mut victim = StateMachine::open(c.path(), 4).unwrap();
    let mut incoming = victim.begin_receiving_snapshot().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut *incoming, &bytes).await.unwrap();
    let err = victim.install_snapshot(&snapshot.meta, incoming).await.unwrap_err().to_string();
    assert!(err.contains("seq 6"), "{err}");
    assert_eq!(victim.reader().fleet().seq, 0, "nothing of a refused snapshot is kept");
}
