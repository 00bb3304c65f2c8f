//! The agent's local state, kept in `<state-dir>/nix-agent.json` and rewritten atomically (temporary file, fsync,
//! rename) after every step: the activation under way, the last decision handled, and the outbox of reports not
//! yet accepted. A killed agent resumes from it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sendan_core::event::SwitchAction;
use serde::{Deserialize, Serialize};

/// Everything the agent must not forget across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Local {
    /// Decisions at or below this seq are done with (confirmed, rolled back, given up or acknowledged).
    pub handled: u64,
    /// The closure fetched for a decision, waiting to be activated.
    pub prefetched: Option<Prefetched>,
    pub activation: Option<Activation>,
    /// Reports to deliver, in order, each with its event id (so a retry is never a second event).
    pub outbox: Vec<serde_json::Value>,
    /// The running and booted systems last reported (`SystemReported`).
    pub reported: Option<(Option<String>, Option<String>)>,
    /// The decision the agent last rebooted the node for: it reboots once per decision, even when the machine
    /// comes back on another system.
    #[serde(default)]
    pub rebooted: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefetched {
    pub decision: u64,
    pub path: String,
}

/// One activation, from the request to the control plane to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    pub decision: u64,
    pub path: String,
    pub action: SwitchAction,
    /// The system running before: what a rollback re-activates.
    pub previous: Option<String>,
    pub step: Step,
}

/// How far an activation got. Each step is recorded before the work of the next one starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// `SystemActivating` is queued (its id); nothing is touched until the control plane accepts it.
    Requested {
        id: String,
    },
    /// Accepted: the node may be changed.
    Begun,
    ProfileSet,
    /// `switch-to-configuration` was started (a process, or a transient unit) at `started_ms`.
    Switching {
        pid: Option<u32>,
        unit: Option<String>,
        started_ms: i64,
    },
    /// It finished with `exit_code`; the health gate must pass by `health_by_ms`.
    Switched {
        exit_code: i32,
        health_by_ms: i64,
    },
    /// Healthy; the confirmation (queued with `id`) must be accepted by `confirm_by_ms`.
    Healthy {
        id: String,
        confirm_by_ms: i64,
    },
    Confirmed,
    /// Going back to `previous`, because of `reason`; the rollback's own switch, once started.
    RollingBack {
        reason: String,
        #[serde(default)]
        pid: Option<u32>,
        #[serde(default)]
        unit: Option<String>,
        #[serde(default)]
        started_ms: Option<i64>,
    },
    RolledBack,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the state directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the agent's state file {path} is damaged ({reason}); move it away to start afresh")]
    Damaged { path: PathBuf, reason: String },
}

/// Where the state lives.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store { dir: dir.to_owned() }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("nix-agent.json")
    }

    pub fn load(&self) -> Result<Local, StateError> {
        let path = self.file();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged { path, reason: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Local::default()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Replace the state file atomically: a crash leaves either the old or the new state, never a torn one.
    pub fn save(&self, local: &Local) -> Result<(), StateError> {
        let path = self.file();
        let tmp = self.dir.join("nix-agent.json.tmp");
        let io = |source| StateError::Io { path: path.clone(), source };
        let bytes = serde_json::to_vec_pretty(local).expect("the state serialises");
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), Local::default());
        let local = Local {
            handled: 7,
            prefetched: None,
            activation: Some(Activation {
                decision: 9,
                path: "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system".into(),
                action: SwitchAction::Switch,
                previous: None,
                step: Step::Switching { pid: Some(42), unit: None, started_ms: 1 },
            }),
            outbox: vec![serde_json::json!({"type": "NodeActivated", "node": "n1"})],
            reported: Some((None, None)),
            rebooted: Some(3),
        };
        store.save(&local).unwrap();
        assert_eq!(store.load().unwrap(), local);
        std::fs::write(dir.path().join("nix-agent.json"), "{").unwrap();
        assert!(matches!(store.load(), Err(StateError::Damaged { .. })));
    }
}
