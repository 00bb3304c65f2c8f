//! A cluster of real `sendan server` processes serving HTTPS, with certificates from `sendan tls init|issue`:
//! clients, the CLI and the peer transport all speak TLS, and nothing else gets in.

use std::time::Duration;

use sendan_api::client::{Client, ClientError, EventFilter};
use sendan_tests::bootstrap::{sendan, sendan_ok};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{discovered, proposal};

/// Property: members that serve HTTPS elect a leader and replicate over the TLS peer transport; a follower
/// forwards writes to the leader over it; every member reads back the same events, through the client and the
/// CLI (`--ca-file`). A client that does not trust the cluster's CA, or that speaks plain HTTP, is refused with a
/// sentence saying what to do, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_cluster_serves_and_replicates_over_https_only() {
    let c = ProcCluster::start_tls(3, &[]).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut batch = vec![proposal(1, discovered("m1")), proposal(2, discovered("m2"))];
    let r = c.client(follower).submit(&mut batch, Duration::from_secs(30)).await.unwrap();
    assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let reference = c.client(leader).events(&EventFilter::default()).await.unwrap().events;
    for id in 1..=3 {
        c.wait_seq(id, 2, Duration::from_secs(30)).await;
        assert_eq!(c.client(id).events(&EventFilter::default()).await.unwrap().events, reference, "member {id}");
    }
    let listed = tokio::task::block_in_place(|| sendan_ok(&c, follower, &["events", "list"]));
    assert!(listed.contains("MachineDiscovered") && listed.contains("m2"), "{listed}");

    // Without the CA: the server's certificate is not trusted.
    let https = format!("https://{}", c.addrs[&leader]);
    match Client::new(&https, None).member().await {
        Err(ClientError::Transport { reason, .. }) => {
            assert!(reason.contains("invalid peer certificate") && reason.contains("--ca-file"), "{reason}")
        }
        other => panic!("a client without the CA must be refused, got {:?}", other.map(|m| m.seq)),
    }
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(sendan_tests::binary("sendan"))
            .args(["--server", &https, "--token-file"])
            .arg(c.dir.path().join("admin.token"))
            .args(["cluster", "status"])
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("pass --ca-file"), "{stderr}");
    // Plain HTTP to a TLS port gets nowhere, and says why.
    match Client::new(&c.addrs[&leader], None).member().await {
        Err(ClientError::Transport { reason, .. }) => assert!(reason.contains("use an https:// address"), "{reason}"),
        other => panic!("plain HTTP must be refused, got {:?}", other.map(|m| m.seq)),
    }
    let status = tokio::task::block_in_place(|| sendan(&c, leader, &["cluster", "status"]));
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(c.client(leader).member().await.unwrap().seq, 2, "the refused clients changed nothing");
}
