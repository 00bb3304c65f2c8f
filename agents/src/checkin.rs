//! `sendan-agent checkin`: the first boot of an installed node reports in. With the node token its installer
//! generated, it checks that the SSH host key on this system is the one the installer reported (so the machine
//! that checks in is the one that was installed), then records `NodeActivated`: the node is `active`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sendan_core::event::NodeActivated;
use sendan_core::lifecycle::NodeState;
use sendan_core::wire::InstallView;
use sendan_core::wire::{NodeView, ProposalIn};
use sendan_core::{EventId, Hash, NodeId};
use serde::Deserialize;

use crate::client::{ApiClient, ClientError};
use crate::install::steps::{AGENT_STATE_DIR, HOST_KEY};

#[derive(Clone, Debug)]
pub struct Options {
    /// The installed system's `/` (tests point it at an install's target directory).
    pub root: PathBuf,
    /// Default `<root>/var/lib/sendan-agent`.
    pub state_dir: Option<PathBuf>,
    /// Override the server, node and CA certificates the installer wrote into `agent.toml`.
    pub server: Option<String>,
    pub node: Option<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckinError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is invalid: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("{what}")]
    Api {
        what: &'static str,
        #[source]
        source: ClientError,
    },
    #[error(
        "the SSH host key here ({here}) is not the one node {node}'s installer reported ({reported}); this is not \
         the machine that was installed"
    )]
    WrongHost { node: NodeId, here: String, reported: String },
    #[error("node {node} is `{state}`; a first-boot check-in needs `installing` (or `rescue`)")]
    WrongState { node: NodeId, state: NodeState },
}

#[derive(Debug, PartialEq, Eq)]
pub enum CheckedIn {
    Activated { node: NodeId, seq: u64 },
    AlreadyActive { node: NodeId },
}

/// The keys of `agent.toml` this command reads; the file may hold others (for `sendan-agent nix`).
#[derive(Deserialize)]
struct AgentToml {
    server: Option<String>,
    node: Option<String>,
    /// A path on the installed system, below `root`.
    #[serde(rename = "ca-file")]
    ca_file: Option<PathBuf>,
}

fn read(path: &Path) -> Result<String, CheckinError> {
    std::fs::read_to_string(path).map_err(|source| CheckinError::Read { path: path.to_owned(), source })
}

/// The key type and body of an OpenSSH public key line, without its comment.
fn key_material(line: &str) -> String {
    line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

pub fn run(opts: &Options) -> Result<CheckedIn, CheckinError> {
    let state = opts.state_dir.clone().unwrap_or_else(|| opts.root.join(AGENT_STATE_DIR));
    let config_path = state.join("agent.toml");
    let config: AgentToml = match (&opts.server, &opts.node) {
        (Some(_), Some(_)) => AgentToml { server: None, node: None, ca_file: None },
        _ => toml::from_str(&read(&config_path)?)
            .map_err(|e| CheckinError::Invalid { path: config_path.clone(), why: e.to_string() })?,
    };
    let missing = |key: &str| CheckinError::Invalid { path: config_path.clone(), why: format!("it has no `{key}`") };
    let server = opts.server.clone().or(config.server).ok_or_else(|| missing("server"))?;
    let node = opts.node.clone().or(config.node).ok_or_else(|| missing("node"))?;
    let node =
        NodeId::new(node).map_err(|e| CheckinError::Invalid { path: config_path.clone(), why: e.to_string() })?;
    let token = read(&state.join("token"))?.trim().to_owned();
    let ca_file = opts
        .ca_file
        .clone()
        .or_else(|| config.ca_file.map(|p| opts.root.join(p.strip_prefix("/").map(Path::to_path_buf).unwrap_or(p))));
    let trust = crate::client::Trust::from_optional_file(ca_file.as_deref())
        .map_err(|source| CheckinError::Api { what: "reading the CA certificates", source })?;
    let client = ApiClient::with_trust(&server, &token, &trust);
    let api = |what| move |source| CheckinError::Api { what, source };
    let install: InstallView =
        client.get(&format!("/v1/nodes/{node}/install"), &[]).map_err(api("reading the node's install record"))?;
    if let Some(reported) = &install.ssh_host_key {
        let here = key_material(&read(&opts.root.join(format!("{HOST_KEY}.pub")))?);
        if here != key_material(&reported.key) {
            return Err(CheckinError::WrongHost { node, here, reported: key_material(&reported.key) });
        }
    }
    let view: NodeView = client.get(&format!("/v1/nodes/{node}"), &[]).map_err(api("reading the node"))?;
    match view.node.state {
        NodeState::Active => Ok(CheckedIn::AlreadyActive { node }),
        NodeState::Installing | NodeState::Rescue => {
            let id = EventId::derive(&[
                b"first-boot",
                node.as_str().as_bytes(),
                &Hash::of(token.as_bytes()).0,
                &view.node.since.to_be_bytes(),
            ]);
            let mut events = vec![ProposalIn {
                id: Some(id),
                comment: Some("first boot of the installed system".into()),
                cause: None,
                payload: NodeActivated { node: node.clone() }.into(),
            }];
            let r = client.submit(&mut events, Duration::from_secs(60)).map_err(api("checking in"))?;
            Ok(CheckedIn::Activated { node, seq: r.events[0].seq })
        }
        state => Err(CheckinError::WrongState { node, state }),
    }
}
