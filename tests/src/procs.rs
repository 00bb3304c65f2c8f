//! Clusters of real `sendan server` processes on loopback ports: start, `kill -9`, restart, stop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sendan_api::client::Client;
use tempfile::TempDir;

use crate::{binary, wait_until};

pub struct ProcCluster {
    pub dir: TempDir,
    pub addrs: BTreeMap<u64, String>,
    pub children: BTreeMap<u64, Child>,
    /// Extra `sendan server` flags for every member.
    pub extra: Vec<String>,
    /// Extra flags for one member.
    extra_for: BTreeMap<u64, Vec<String>>,
    admin_token: String,
    /// What clients trust: plain HTTP, or (with [`ProcCluster::start_tls`]) the cluster's CA.
    pub trust: sendan_raft::Trust,
    /// The CA certificate of a TLS cluster.
    pub ca_file: Option<PathBuf>,
}

/// A free loopback port (bound, then released for the child to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl ProcCluster {
    /// Start `n` member processes forming a new cluster and wait until every member reports a leader.
    pub async fn start(n: u64, extra: &[&str]) -> ProcCluster {
        Self::start_with(n, extra, false).await
    }

    /// Like [`ProcCluster::start`], every member serving HTTPS (to clients and to each other) with a certificate
    /// for 127.0.0.1 issued by a CA made with `sendan tls init` / `sendan tls issue`.
    pub async fn start_tls(n: u64, extra: &[&str]) -> ProcCluster {
        Self::start_with(n, extra, true).await
    }

    async fn start_with(n: u64, extra: &[&str], tls: bool) -> ProcCluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (mut trust, mut ca_file) = (sendan_raft::Trust::plain(), None);
        if tls {
            let pki = dir.path().join("pki");
            let run = |args: &[&str]| {
                let out = Command::new(binary("sendan")).args(args).output().expect("sendan runs");
                assert!(out.status.success(), "sendan {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            };
            let p = pki.display().to_string();
            run(&["tls", "init", &p]);
            run(&["tls", "issue", &p, "member", "--host", "127.0.0.1", "--host", "localhost"]);
            for (flag, file) in
                [("--tls-cert-file", "member.pem"), ("--tls-key-file", "member-key.pem"), ("--tls-ca-file", "ca.pem")]
            {
                extra.extend([flag.to_owned(), pki.join(file).display().to_string()]);
            }
            trust = sendan_raft::Trust::from_pem_file(&pki.join("ca.pem")).expect("the CA loads");
            ca_file = Some(pki.join("ca.pem"));
        }
        std::fs::write(dir.path().join("cluster.secret"), "proc-cluster-secret\n").unwrap();
        let admin_token = "sendan-admin-proc-token".to_owned();
        std::fs::write(dir.path().join("admin.token"), format!("{admin_token}\n")).unwrap();
        let addrs = (1..=n).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
        let mut c = ProcCluster {
            dir,
            addrs,
            children: BTreeMap::new(),
            extra,
            extra_for: BTreeMap::new(),
            admin_token,
            trust,
            ca_file,
        };
        for id in 1..=n {
            c.spawn(id);
        }
        c.leader().await;
        c
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    /// Start a new member `id` on a fresh port that waits to be added (`--initial-cluster-state existing`,
    /// the way an operator starts one before `sendan cluster add`); its address.
    pub fn start_joining(&mut self, id: u64) -> String {
        let addr = format!("127.0.0.1:{}", free_port());
        self.addrs.insert(id, addr.clone());
        self.extra_for.insert(id, vec!["--initial-cluster-state".into(), "existing".into()]);
        self.spawn(id);
        addr
    }

    fn spawn(&mut self, id: u64) {
        let cluster = self.addrs.iter().map(|(i, a)| format!("{i}={a}")).collect::<Vec<_>>().join(",");
        let log = std::fs::File::create(self.dir.path().join(format!("member-{id}.log"))).unwrap();
        let child = Command::new(binary("sendan"))
            .arg("server")
            .args(["--node-id", &id.to_string()])
            .args(["--listen", &self.addrs[&id]])
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .args(["--initial-cluster", &cluster])
            .arg("--cluster-secret-file")
            .arg(self.dir.path().join("cluster.secret"))
            .arg("--admin-token-file")
            .arg(self.dir.path().join("admin.token"))
            .args(["--heartbeat-ms", "100", "--election-timeout-ms", "700"])
            .args(&self.extra)
            .args(self.extra_for.get(&id).into_iter().flatten())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sendan server starts");
        self.children.insert(id, child);
    }

    pub fn client(&self, id: u64) -> Client {
        Client::with_trust(&self.addrs[&id], Some(self.admin_token.clone()), &self.trust)
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("member-{id}.log"))).unwrap_or_default()
    }

    /// Wait until every running member reports the same leader; return it.
    pub async fn leader(&self) -> u64 {
        wait_until("the member processes agree on a leader", Duration::from_secs(30), || async {
            let mut seen = None;
            for id in self.children.keys() {
                let m = self.client(*id).member().await.ok()?;
                let l = m.leader?;
                if seen.is_some_and(|s| s != l) || !self.children.contains_key(&l) {
                    return None;
                }
                seen = Some(l);
            }
            seen
        })
        .await
    }

    /// `kill -9` member `id`.
    pub fn kill9(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// Stop member `id` with SIGTERM and wait for it to exit.
    pub fn stop(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            signal(c.id(), 15);
            let _ = c.wait();
        }
    }

    pub fn stop_all(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }

    /// Start member `id` again with its old data directory.
    pub fn restart(&mut self, id: u64) {
        self.kill9(id);
        self.spawn(id);
    }

    /// Wait until member `id` has applied at least `seq` events.
    pub async fn wait_seq(&self, id: u64, seq: u64, timeout: Duration) {
        wait_until(&format!("member {id} applies seq {seq}"), timeout, || async {
            let m = self.client(id).member().await.ok()?;
            (m.seq >= seq).then_some(())
        })
        .await
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Send signal `sig` to process `pid` (kill(2)); whether it was delivered.
pub fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc_kill(pid as i32, sig) == 0 }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.children) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
