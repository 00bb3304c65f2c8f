//! Clusters of real `sendan server` processes on loopback ports: replication, `kill -9` of the leader
//! under concurrent load, whole-cluster restarts, and a long-absent member catching up through a
//! snapshot. Each test states the property it checks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sendan_api::client::{Client, EventFilter, NodesQuery};
use sendan_core::wire::Receipt;
use sendan_core::{Event, EventId, Hash};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{discovered, proposal, wait_until};

async fn all_events(client: &Client) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page =
            client.events(&EventFilter { after: Some(after), limit: Some(5000), ..Default::default() }).await.unwrap();
        after = page.events.last().map(|e| e.seq).unwrap_or(after);
        out.extend(page.events);
        if page.next.is_none() {
            return out;
        }
    }
}

/// Wait until every running member has applied `seq` events and report each member's head.
async fn converged(c: &ProcCluster, seq: u64) -> BTreeMap<u64, Hash> {
    let mut heads = BTreeMap::new();
    for id in c.children.keys() {
        c.wait_seq(*id, seq, Duration::from_secs(60)).await;
        heads.insert(*id, c.client(*id).member().await.unwrap().head);
    }
    heads
}

/// Property: events written through any member process are read back, identically, from every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_any_member_are_read_back_from_every_member() {
    let c = ProcCluster::start(3, &[]).await;
    for id in 1..=3u64 {
        let mut batch = vec![proposal(u128::from(id), discovered(&format!("m{id}")))];
        c.client(id).submit(&mut batch, Duration::from_secs(30)).await.unwrap();
    }
    converged(&c, 3).await;
    let reference = all_events(&c.client(1)).await;
    assert_eq!(reference.len(), 3);
    for id in 2..=3 {
        assert_eq!(all_events(&c.client(id)).await, reference, "member {id}");
    }
}

/// Submit `per_task` single events from each of `tasks` concurrent clients, rotating to the next member
/// whenever a member does not answer, and retrying with the same id. Returns every acknowledgement;
/// `progress` counts acknowledgements and retries as they happen.
async fn load(clients: Vec<Client>, tasks: u64, per_task: u64, progress: Arc<Mutex<Progress>>) -> Vec<Receipt> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let clients = clients.clone();
        let progress = progress.clone();
        handles.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut member = t as usize % clients.len();
            for j in 0..per_task {
                let batch = vec![proposal(u128::from(t) << 32 | u128::from(j), discovered(&format!("m-{t}-{j}")))];
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match clients[member].submit_once(&batch).await {
                        Ok(r) => {
                            acked.extend(r.events);
                            progress.lock().unwrap().acked += 1;
                            break;
                        }
                        Err(e) if e.is_retryable() && Instant::now() < deadline => {
                            // The same event again, id and content: a retry, never a new event.
                            member = (member + 1) % clients.len();
                            progress.lock().unwrap().retries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await; // backoff before retry
                        }
                        Err(e) => panic!("task {t} event {j}: {e}"),
                    }
                }
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

#[derive(Debug, Default)]
struct Progress {
    acked: u64,
    retries: u64,
}

/// Property: `kill -9` of the leader in the middle of a stream of concurrent submissions loses no
/// acknowledged event; every acknowledged event is present exactly once; members agree on order and hash
/// head; clients that retried with the same ids caused no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_mid_stream_loses_and_duplicates_nothing() {
    let mut c = ProcCluster::start(3, &[]).await;
    let leader = c.leader().await;
    let progress = Arc::new(Mutex::new(Progress::default()));
    let (tasks, per_task) = (8u64, 40u64);
    let mut killed_mid_stream = false;
    let acked = {
        let clients = (1..=3).map(|id| c.client(id)).collect();
        let load = load(clients, tasks, per_task, progress.clone());
        tokio::pin!(load);
        // Let the stream get going, then kill the leader while it runs.
        let mut killed = false;
        loop {
            tokio::select! {
                acked = &mut load => break acked,
                _ = tokio::time::sleep(Duration::from_millis(20)), if !killed => { // poll pacing: check the progress
                    if progress.lock().unwrap().acked >= tasks * per_task / 4 {
                        c.kill9(leader);
                        killed = true;
                        killed_mid_stream = progress.lock().unwrap().acked < tasks * per_task;
                    }
                }
            }
        }
    };
    assert_eq!(acked.len() as u64, tasks * per_task);
    // The property is about a kill in the middle of the stream: make sure this run had one, and that the
    // clients of the killed member had to retry (with the same ids) elsewhere.
    let progress = progress.lock().unwrap();
    assert!(progress.acked >= tasks * per_task / 4 && killed_mid_stream, "the leader was killed mid-stream");
    assert!(progress.retries > 0, "no client retried after the leader was killed: {progress:?}");
    drop(progress);
    c.restart(leader);
    c.leader().await;
    let max_seq = acked.iter().map(|r| r.seq).max().unwrap();
    let heads = converged(&c, max_seq).await;
    let first_head = heads.values().next().copied().unwrap();
    assert!(heads.values().all(|h| *h == first_head), "members disagree on the head: {heads:?}");

    let log = all_events(&c.client(1)).await;
    for id in 2..=3 {
        assert_eq!(all_events(&c.client(id)).await, log, "member {id} has the same events in the same order");
    }
    let mut seen = BTreeSet::new();
    for e in &log {
        assert!(seen.insert(e.id), "event id {} appears twice (seq {})", e.id, e.seq);
    }
    let by_seq: BTreeMap<u64, EventId> = log.iter().map(|e| (e.seq, e.id)).collect();
    for r in &acked {
        assert_eq!(by_seq.get(&r.seq), Some(&r.id), "acknowledged event {} is at its seq", r.id);
    }
    let v = c.client(leader).verify().await.unwrap();
    assert!(v.ok, "{v:?}");
}

/// Property: stopping the whole cluster — here with `kill -9`, all members at once — and starting it again
/// loses nothing acknowledged, and the chain still verifies on every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_the_whole_cluster_loses_nothing() {
    let mut c = ProcCluster::start(3, &[]).await;
    let acked = load((1..=3).map(|id| c.client(id)).collect(), 4, 25, Arc::default()).await;
    for id in 1..=3 {
        c.kill9(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    c.leader().await;
    let max_seq = acked.iter().map(|r| r.seq).max().unwrap();
    converged(&c, max_seq).await;
    for id in 1..=3 {
        let log = all_events(&c.client(id)).await;
        for r in &acked {
            assert_eq!(log[r.seq as usize - 1].id, r.id, "member {id} lost acknowledged event {}", r.seq);
        }
        let v = c.client(id).verify().await.unwrap();
        assert!(v.ok && v.verified == log.len() as u64, "member {id}: {v:?}");
    }
}

/// Property: a member that was down for thousands of events — long enough that the others compacted
/// their Raft logs — catches up through a snapshot and then answers audit queries over the whole history
/// exactly as the leader does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_down_for_thousands_of_events_catches_up_through_a_snapshot() {
    let mut c = ProcCluster::start(3, &["--snapshot-every", "100", "--keep-after-snapshot", "10"]).await;
    let leader = c.leader().await;
    let lagging = (1..=3).find(|i| *i != leader).unwrap();
    let mut first = vec![proposal(1, discovered("m-first"))];
    c.client(leader).submit(&mut first, Duration::from_secs(30)).await.unwrap();
    c.wait_seq(lagging, 1, Duration::from_secs(30)).await;
    let lag_log = c.client(lagging).member().await.unwrap().last_log_index.unwrap_or(0);
    c.kill9(lagging);

    let writer = c.client(leader);
    let total: u64 = 3000;
    for b in 0..(total / 10) {
        let mut batch: Vec<_> =
            (0..10).map(|j| proposal(1_000_000 + u128::from(b * 10 + j), discovered(&format!("m{b}-{j}")))).collect();
        writer.submit(&mut batch, Duration::from_secs(30)).await.unwrap();
    }
    let leader_status = wait_until("the leader compacts its Raft log", Duration::from_secs(30), || async {
        let s = writer.member().await.ok()?;
        s.purged_index.is_some_and(|p| p > lag_log + 10).then_some(s)
    })
    .await;

    c.restart(lagging);
    c.wait_seq(lagging, total + 1, Duration::from_secs(120)).await;
    let status = c.client(lagging).member().await.unwrap();
    assert!(
        status.snapshot_index.is_some_and(|s| s >= leader_status.purged_index.unwrap()),
        "the lagging member caught up through a snapshot: {status:?}"
    );
    let lagging_client = c.client(lagging);
    assert_eq!(all_events(&lagging_client).await, all_events(&writer).await);
    let v = lagging_client.verify().await.unwrap();
    assert!(v.ok && v.verified == total + 1, "{v:?}");
    // Audit queries over old history answer on the caught-up member.
    let first = lagging_client
        .events(&EventFilter { kind: Some("MachineDiscovered".into()), limit: Some(1), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(first.events[0].id, EventId::from_u128(1));
    let old = lagging_client.nodes(&NodesQuery { at: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!((old.seq, old.machines.len()), (2, 2));
}

/// Property: a stored event changed behind the log's back (a byte of seq 5 changed in `state.redb` while
/// the member was down) is found by `GET /v1/audit/verify` and `sendan audit verify`, which name that seq,
/// count the events before it as verified, and exit 1; a member that was not tampered with still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_with_a_stored_event_is_found_at_its_seq() {
    use redb::ReadableDatabase;
    const EVENTS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("events");
    let mut c = ProcCluster::start(3, &[]).await;
    let mut batch: Vec<_> = (0..8u128).map(|i| proposal(i + 1, discovered(&format!("m{i}")))).collect();
    c.client(1).submit(&mut batch, Duration::from_secs(30)).await.unwrap();
    converged(&c, 8).await;

    let leader = c.leader().await;
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    c.stop(victim);
    {
        let db = redb::Database::open(c.data_dir(victim).join("state.redb")).unwrap();
        let stored = db.begin_read().unwrap().open_table(EVENTS).unwrap().get(5).unwrap().unwrap().value().to_vec();
        // Rename the machine in the record (`m4` → `mZ`): it still decodes, so the member starts and serves
        // the changed history, but its hash no longer matches the chain.
        let mut record = stored;
        let at = record.windows(2).position(|w| w == b"m4").expect("seq 5 names machine m4");
        record[at + 1] = b'Z';
        let txn = db.begin_write().unwrap();
        txn.open_table(EVENTS).unwrap().insert(5, record.as_slice()).unwrap();
        txn.commit().unwrap();
    }
    c.restart(victim);
    let member = c.client(victim);
    wait_until("the tampered member serves again", Duration::from_secs(60), || async {
        member.member().await.ok().filter(|m| m.seq >= 8)
    })
    .await;

    let v = c.client(victim).verify().await.unwrap();
    assert!(!v.ok, "{v:?}");
    assert_eq!(v.verified, 4, "the events before the tampered one verify: {v:?}");
    let out = tokio::task::block_in_place(|| sendan_tests::bootstrap::sendan(&c, victim, &["audit", "verify"]));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("seq 5"), "the CLI names the bad seq: {text}");
    let healthy = (1..=3).find(|id| *id != victim).unwrap();
    let v = c.client(healthy).verify().await.unwrap();
    assert!(v.ok && v.verified == 8, "{v:?}");
}

/// Property: membership changes with the CLI against real processes: a member started with
/// `--initial-cluster-state existing` and added with `sendan cluster add` receives the whole history and becomes a
/// voter; `sendan cluster remove` takes a member out, the others keep committing, and every remaining member
/// holds the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_join_and_leave_with_the_cli() {
    use sendan_tests::bootstrap::sendan_ok;
    let mut c = ProcCluster::start(3, &[]).await;
    let mut batch: Vec<_> = (0..20u128).map(|i| proposal(i + 1, discovered(&format!("m{i}")))).collect();
    c.client(1).submit(&mut batch, Duration::from_secs(30)).await.unwrap();

    let addr = c.start_joining(4);
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 2, &["cluster", "add", "4", &addr]));
    assert!(out.contains("member 4") && out.contains("added as a voter"), "{out}");
    c.wait_seq(4, 20, Duration::from_secs(60)).await;
    assert_eq!(all_events(&c.client(4)).await, all_events(&c.client(1)).await, "the new member has the history");
    let status = c.client(4).cluster().await.unwrap();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 4, "{status:?}");

    let leader = c.leader().await;
    let gone = (1..=4).find(|i| *i != leader).unwrap();
    let out = tokio::task::block_in_place(|| sendan_ok(&c, leader, &["cluster", "remove", &gone.to_string()]));
    assert!(out.contains(&format!("member {gone} removed")), "{out}");
    c.stop(gone);
    let mut more = vec![proposal(99, discovered("after-removal"))];
    let r = c.client(leader).submit(&mut more, Duration::from_secs(30)).await.unwrap();
    assert_eq!(r.events[0].seq, 21);
    let status = tokio::task::block_in_place(|| sendan_ok(&c, leader, &["--output", "json", "cluster", "status"]));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let ids: Vec<u64> = v["members"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert!(!ids.contains(&gone) && ids.len() == 3, "{status}");
    let heads = converged(&c, 21).await;
    assert!(heads.values().all(|h| Some(h) == heads.values().next()), "{heads:?}");
}
