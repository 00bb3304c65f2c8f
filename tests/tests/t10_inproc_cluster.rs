//! In-process three-member clusters: replication, isolation of the leader, restart of every member,
//! snapshot catch-up, and time travel. Each test states the property it checks.

use std::time::Duration;

use sendan_api::client::{EventFilter, NodesQuery};
use sendan_api::config::ConfigFile;
use sendan_core::Event;
use sendan_tests::inproc::{Cluster, test_options};
use sendan_tests::{commissioned, discovered, proposal, wait_until};

/// Every event of member `id`'s log, in order.
async fn all_events(c: &Cluster, id: u64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .client(id)
            .events(&EventFilter { after: Some(after), limit: Some(1000), ..Default::default() })
            .await
            .unwrap();
        after = page.events.last().map(|e| e.seq).unwrap_or(after);
        out.extend(page.events);
        if page.next.is_none() {
            return out;
        }
    }
}

/// Property: an event written through any member (leader or follower, which forwards) is readable, with
/// the same seq and hash, from every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_any_member_are_read_back_from_every_member() {
    let c = Cluster::new(3).await;
    for (i, id) in [1u64, 2, 3].into_iter().enumerate() {
        let mut batch = vec![proposal(100 + i as u128, discovered(&format!("m{id}")))];
        let r = c.client(id).submit(&mut batch, Duration::from_secs(20)).await.unwrap();
        assert_eq!(r.events[0].seq, i as u64 + 1, "written through member {id}");
    }
    for id in 1..=3 {
        c.wait_applied(id, 3).await;
    }
    let reference = all_events(&c, 1).await;
    assert_eq!(reference.len(), 3);
    for id in 2..=3 {
        assert_eq!(all_events(&c, id).await, reference, "member {id} has the same log");
        assert_eq!(c.fleet(id).head, c.fleet(1).head);
    }
}

/// Property: when the leader is cut off, the others elect a new leader and keep accepting writes; once
/// healed, the old leader catches up and every member agrees on order and hash head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_leader_is_replaced_and_catches_up_when_healed() {
    let c = Cluster::new(3).await;
    let mut first = vec![proposal(1, discovered("m1"))];
    c.client(1).submit(&mut first, Duration::from_secs(20)).await.unwrap();
    let old = c.leader().await;
    c.isolate(old);
    let other = (1..=3).find(|i| *i != old).unwrap();
    let new = wait_until("the others elect a new leader", Duration::from_secs(20), || async {
        let m = c.running(other).app.node.raft.metrics().borrow().clone();
        m.current_leader.filter(|l| *l != old)
    })
    .await;
    let mut more: Vec<_> = (0..20).map(|i| proposal(1000 + i, discovered(&format!("m-after-{i}")))).collect();
    let r = c.client(new).submit(&mut more, Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.events.last().unwrap().seq, 21);
    assert_eq!(c.fleet(old).seq, 1, "the isolated member cannot have applied the new events");
    c.heal(old);
    for id in 1..=3 {
        c.wait_applied(id, 21).await;
    }
    let reference = all_events(&c, new).await;
    for id in 1..=3 {
        assert_eq!(all_events(&c, id).await, reference, "member {id}");
    }
}

/// Property: stopping and restarting every member loses no acknowledged event, and the restarted
/// members rebuild the same state (fold of the log) and the same hash head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_every_member_loses_nothing() {
    let options = ConfigFile { checkpoint_every: Some(16), ..test_options() };
    let mut c = Cluster::with_options(3, options).await;
    let mut acked = Vec::new();
    for i in 0..50u128 {
        let id = (i % 3) as u64 + 1;
        let mut batch = vec![proposal(i + 1, discovered(&format!("m{i}")))];
        if i % 5 == 0 {
            batch.push(proposal(10_000 + i, commissioned(&format!("n{i}"), &format!("m{i}"))));
        }
        acked.extend(c.client(id).submit(&mut batch, Duration::from_secs(20)).await.unwrap().events);
    }
    let last = acked.last().unwrap().seq;
    for id in 1..=3 {
        c.wait_applied(id, last).await;
    }
    let before = c.fleet(1);
    c.stop_all().await;
    for id in 1..=3 {
        c.restart(id).await;
    }
    c.leader().await;
    for id in 1..=3 {
        assert_eq!(c.fleet(id).as_ref(), before.as_ref(), "member {id} rebuilt the same state");
        let log = all_events(&c, id).await;
        for r in &acked {
            assert_eq!(log[r.seq as usize - 1].id, r.id, "member {id} kept acknowledged event {}", r.seq);
        }
        let v = c.client(id).verify().await.unwrap();
        assert!(v.ok && v.verified == last, "member {id}: {v:?}");
    }
}

/// Property: a member that was down while the log moved past a snapshot (and the Raft log behind it was
/// compacted) catches up by installing the snapshot, then serves the whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_behind_a_compacted_log_catches_up_through_a_snapshot() {
    let options = ConfigFile { snapshot_every: Some(20), keep_after_snapshot: Some(5), ..test_options() };
    let mut c = Cluster::with_options(3, options).await;
    let leader = c.leader().await;
    let lagging = (1..=3).find(|i| *i != leader).unwrap();
    c.stop(lagging).await;
    let writer = (1..=3).find(|i| *i != lagging).unwrap();
    for i in 0..100u128 {
        let mut batch: Vec<_> = (0..5).map(|j| proposal(i * 10 + j + 1, discovered(&format!("m{i}-{j}")))).collect();
        c.client(writer).submit(&mut batch, Duration::from_secs(20)).await.unwrap();
    }
    let leader = c.leader().await;
    let purged = wait_until("the leader compacts its log", Duration::from_secs(20), || async {
        c.running(leader).app.node.raft.metrics().borrow().purged.map(|l| l.index).filter(|i| *i > 20)
    })
    .await;
    c.restart(lagging).await;
    c.wait_applied(lagging, 500).await;
    let m = c.running(lagging).app.node.raft.metrics().borrow().clone();
    assert!(m.snapshot.is_some_and(|s| s.index >= purged), "member {lagging} installed a snapshot: {m:?}");
    assert_eq!(all_events(&c, lagging).await, all_events(&c, leader).await);
    let v = c.client(lagging).verify().await.unwrap();
    assert!(v.ok && v.verified == 500, "{v:?}");
}

/// Property: reading the fleet "as of seq N" (checkpoint plus tail) equals folding the first N events
/// from genesis, at every N.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn time_travel_equals_folding_from_genesis() {
    let options = ConfigFile { checkpoint_every: Some(7), ..test_options() };
    let c = Cluster::with_options(1, options).await;
    for i in 0..30u128 {
        let mut batch = vec![
            proposal(i * 2 + 1, discovered(&format!("m{i}"))),
            proposal(i * 2 + 2, commissioned(&format!("n{i}"), &format!("m{i}"))),
        ];
        c.client(1).submit(&mut batch, Duration::from_secs(20)).await.unwrap();
    }
    let events = all_events(&c, 1).await;
    let mut folded = sendan_core::FleetState::default();
    for e in &events {
        sendan_core::evolve(&mut folded, e);
        let at = c.running(1).app.node.reader.fleet_at(e.seq).unwrap();
        assert_eq!(at.as_ref(), &folded, "fleet at seq {}", e.seq);
    }
    let view = c.client(1).nodes(&NodesQuery { at: Some(10), ..Default::default() }).await.unwrap();
    assert_eq!(view.seq, 10);
    assert_eq!(view.nodes.len(), 5);
}

/// Property: a member added with `cluster add` receives the whole history and becomes a voter; a removed
/// member is no longer part of the membership, and the remaining members keep committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_can_be_added_and_removed() {
    let mut c = Cluster::new(3).await;
    let mut batch: Vec<_> = (0..10u128).map(|i| proposal(i + 1, discovered(&format!("m{i}")))).collect();
    c.client(2).submit(&mut batch, Duration::from_secs(20)).await.unwrap();
    c.start_joining(4).await;
    let addr = c.addrs[&4].clone();
    c.client(3).add_member(4, &addr).await.unwrap();
    c.wait_applied(4, 10).await;
    let status = c.client(1).cluster().await.unwrap();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 4, "{status:?}");
    assert_eq!(all_events(&c, 4).await, all_events(&c, 1).await);

    let leader = c.leader().await;
    let gone = (1..=4).find(|i| *i != leader).unwrap();
    c.client(leader).remove_member(gone).await.unwrap();
    let status = c.client(leader).cluster().await.unwrap();
    assert!(status.members.iter().all(|m| m.id != gone), "{status:?}");
    c.stop(gone).await;
    let mut more = vec![proposal(99, discovered("after-removal"))];
    let r = c.client(leader).submit(&mut more, Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.events[0].seq, 11);
    let err = c.client(leader).remove_member(gone).await.unwrap_err().to_string();
    assert!(err.contains(&format!("member {gone} is not part of the cluster")), "{err}");
}
