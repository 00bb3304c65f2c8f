//! Starting one cluster member: open its stores, start openraft over them, and join the static initial
//! cluster the first time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use openraft::{Config, SnapshotPolicy};

use crate::log_store::LogStore;
use crate::network::{FaultSwitch, Network};
use crate::state::open_stores;
use crate::tls::Trust;
use crate::{Member, MemberId, Raft, Reader, StoreError};

/// Timing and compaction knobs of the Raft group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) every this many Raft entries.
    pub snapshot_every: u64,
    /// Raft entries kept behind a snapshot, for followers that are only a little behind.
    pub keep_after_snapshot: u64,
    /// Write a fleet checkpoint every this many events (bounds cold start and time-travel reads).
    pub checkpoint_every: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            heartbeat_ms: 100,
            election_min_ms: 800,
            election_max_ms: 1600,
            snapshot_every: 20_000,
            keep_after_snapshot: 2_000,
            checkpoint_every: 10_000,
        }
    }
}

/// The openraft configuration for `opts`.
pub fn raft_config(opts: &ClusterOptions) -> Result<Arc<Config>, String> {
    let config = Config {
        cluster_name: "sendan".into(),
        heartbeat_interval: opts.heartbeat_ms,
        election_timeout_min: opts.election_min_ms,
        election_timeout_max: opts.election_max_ms,
        // A loaded two-core box with fsync can stall an RPC for a while; snapshots are files.
        install_snapshot_timeout: 5_000,
        max_payload_entries: 512,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_every),
        max_in_snapshot_log_to_keep: opts.keep_after_snapshot,
        replication_lag_threshold: opts.snapshot_every.saturating_mul(2),
        purge_batch_size: 64,
        ..Config::default()
    };
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}

/// A running member: its Raft handle, its read handle and its peer network.
#[derive(Clone)]
pub struct RaftNode {
    pub id: MemberId,
    pub raft: Raft,
    pub reader: Reader,
    pub network: Network,
    log: LogStore,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the stores")]
    Store(#[from] StoreError),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("openraft failed to start: {0}")]
    Raft(String),
}

impl RaftNode {
    /// Open the stores in `dir` and start Raft. Nothing is initialised yet; see [`RaftNode::join_initial`].
    pub async fn start(
        id: MemberId,
        dir: &Path,
        secret: &str,
        faults: Arc<FaultSwitch>,
        opts: &ClusterOptions,
        trust: Trust,
    ) -> Result<RaftNode, StartError> {
        let (log, sm) = open_stores(dir, opts.checkpoint_every)?;
        let reader = sm.reader();
        let network = Network::new(id, secret, faults, trust);
        let config = raft_config(opts).map_err(StartError::Config)?;
        let raft = Raft::new(id, config, network.clone(), log.clone(), sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        Ok(RaftNode { id, raft, reader, network, log })
    }

    /// The last log index this member knows to be committed (persisted by openraft as it advances).
    pub fn committed_index(&self) -> Result<Option<u64>, StoreError> {
        self.log.committed().map(|c| c.map(|l| l.index))
    }

    /// On first start, become a member of the static initial cluster `members` (every member of it does
    /// the same, with the same list: the first log entry is then identical everywhere). A member that
    /// already has state ignores the list, as etcd does with `--initial-cluster`.
    pub async fn join_initial(&self, members: BTreeMap<MemberId, Member>) -> Result<bool, StartError> {
        if self.raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
            return Ok(false);
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(StartError::Raft(e.to_string())),
        }
    }
}
