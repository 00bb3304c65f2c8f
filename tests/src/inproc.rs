//! An in-process cluster: every member is a real server (Raft over redb, HTTP on a loopback port) in this
//! test's runtime, with a fault switch to isolate members and the ability to stop and restart them on
//! the same port and data directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sendan_api::app::Running;
use sendan_api::client::Client;
use sendan_api::config::{ConfigFile, InitialCluster};
use sendan_core::fleet::FleetState;
use sendan_raft::FaultSwitch;
use tempfile::TempDir;

use crate::wait_until;

pub struct Cluster {
    pub dir: TempDir,
    pub addrs: BTreeMap<u64, String>,
    pub members: BTreeMap<u64, Option<Running>>,
    pub faults: Arc<FaultSwitch>,
    admin_token: String,
    options: ConfigFile,
}

/// Raft timings a loaded two-core test machine can keep: elections are not triggered by scheduling hiccups.
pub fn test_options() -> ConfigFile {
    ConfigFile { heartbeat_ms: Some(100), election_timeout_ms: Some(700), ..ConfigFile::default() }
}

impl Cluster {
    /// Start `n` members forming a new cluster, and wait until it has a leader.
    pub async fn new(n: u64) -> Cluster {
        Cluster::with_options(n, test_options()).await
    }

    pub async fn with_options(n: u64, options: ConfigFile) -> Cluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("cluster.secret"), "test-cluster-secret\n").unwrap();
        let admin_token = "sendan-admin-test-token".to_owned();
        std::fs::write(dir.path().join("admin.token"), format!("{admin_token}\n")).unwrap();
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
            listeners.insert(id, l);
        }
        let addrs: BTreeMap<u64, String> =
            listeners.iter().map(|(id, l)| (*id, l.local_addr().unwrap().to_string())).collect();
        let mut c = Cluster {
            dir,
            addrs,
            members: BTreeMap::new(),
            faults: Arc::new(FaultSwitch::default()),
            admin_token,
            options,
        };
        for (id, l) in listeners {
            let running = Running::start(c.config(id), l, c.faults.clone()).await.expect("member starts");
            c.members.insert(id, Some(running));
        }
        c.leader().await;
        c
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    /// Start a new member `id` that waits to be added to the running cluster
    /// (`--initial-cluster-state existing`); add it with `sendan cluster add`.
    pub async fn start_joining(&mut self, id: u64) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        self.addrs.insert(id, listener.local_addr().unwrap().to_string());
        let mut config = self.config(id);
        config.cluster_state = sendan_api::config::ClusterState::Existing;
        let running = Running::start(config, listener, self.faults.clone()).await.expect("member starts");
        self.members.insert(id, Some(running));
    }

    fn config(&self, id: u64) -> sendan_api::config::ServerConfig {
        let flag = self.addrs.iter().map(|(i, a)| format!("{i}={a}")).collect::<Vec<_>>().join(",");
        ConfigFile {
            node_id: Some(id),
            listen: Some(self.addrs[&id].clone()),
            data_dir: Some(self.data_dir(id)),
            initial_cluster: Some(InitialCluster::Flag(flag)),
            cluster_secret_file: Some(self.dir.path().join("cluster.secret")),
            admin_token_file: Some(self.dir.path().join("admin.token")),
            ..ConfigFile::default()
        }
        .overlay(self.options.clone())
        .validate()
        .expect("a valid test config")
    }

    /// An API client of member `id`.
    pub fn client(&self, id: u64) -> Client {
        Client::new(&self.addrs[&id], Some(self.admin_token.clone()))
    }

    pub fn running(&self, id: u64) -> &Running {
        self.members[&id].as_ref().unwrap_or_else(|| panic!("member {id} is stopped"))
    }

    pub fn fleet(&self, id: u64) -> Arc<FleetState> {
        self.running(id).app.node.reader.fleet()
    }

    /// Wait until some running member is leader and every running member agrees; return its id.
    pub async fn leader(&self) -> u64 {
        wait_until("the running members agree on a leader", Duration::from_secs(20), || async {
            let mut seen = None;
            for r in self.members.values().flatten() {
                let m = r.app.node.raft.metrics().borrow().clone();
                let l = m.current_leader?;
                if seen.is_some_and(|s| s != l) || !self.members.get(&l).is_some_and(|m| m.is_some()) {
                    return None;
                }
                if self.faults.blocks(l, r.app.node.id) {
                    continue;
                }
                seen = Some(l);
            }
            let l = seen?;
            let m = self.running(l).app.node.raft.metrics().borrow().clone();
            (m.current_leader == Some(l)).then_some(l)
        })
        .await
    }

    /// Wait until member `id` has applied up to at least `seq`.
    pub async fn wait_applied(&self, id: u64, seq: u64) {
        let reader = self.running(id).app.node.reader.clone();
        wait_until(&format!("member {id} applies seq {seq}"), Duration::from_secs(30), || {
            let reader = reader.clone();
            async move { (reader.seq() >= seq).then_some(()) }
        })
        .await
    }

    /// Cut member `id` off from every other member (both directions).
    pub fn isolate(&self, id: u64) {
        self.faults.isolate(id);
    }

    pub fn heal(&self, id: u64) {
        self.faults.heal(id);
    }

    /// Stop member `id` (its stores close; its data directory stays).
    pub async fn stop(&mut self, id: u64) {
        if let Some(r) = self.members.get_mut(&id).and_then(Option::take) {
            r.stop().await;
        }
    }

    /// Start member `id` again on its port and data directory.
    pub async fn restart(&mut self, id: u64) {
        self.stop(id).await;
        let addr = self.addrs[&id].clone();
        let listener = wait_until(&format!("port {addr} can be bound again"), Duration::from_secs(10), || {
            let addr = addr.clone();
            async move { tokio::net::TcpListener::bind(&addr).await.ok() }
        })
        .await;
        // The previous instance may still hold its redb files for a moment while its tasks end.
        let (config, faults) = (self.config(id), self.faults.clone());
        let (app, _, _) = wait_until(&format!("member {id} reopens its stores"), Duration::from_secs(10), || {
            let (config, faults) = (config.clone(), faults.clone());
            async move { sendan_api::app::open(config, faults).await.ok() }
        })
        .await;
        self.members.insert(id, Some(Running::serve(app, listener)));
    }

    /// Stop every member.
    pub async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}
