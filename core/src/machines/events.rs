//! Machine and bootstrap events: a machine's facts, its phone-home with a bootstrap token, install progress, the
//! exchange of the bootstrap token for a node token, and the enrollment and install-plan decisions the server
//! records when it cannot bind or install a machine. The rules are in `rules.rs`.
//!
//! Stored format: every struct here is postcard-encoded in the log. Fields are appended, never reordered
//! or removed, and nothing uses `skip_serializing_if`, `flatten` or internally tagged enums.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::{Emitters, EventData};
use crate::facts::HardwareFacts;
use crate::ids::{Hash, MachineId, NodeId, Timestamp};

/// A machine's hardware facts, recorded by an operator or the system (an installer phoning home records
/// [`super::MachinePhonedHome`] instead; releases before it recorded this). An unknown machine becomes `discovered`; a known one only refreshes its facts, so a bound
/// machine keeps its node across reboots and re-discovery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineDiscovered {
    pub machine: MachineId,
    #[serde(default)]
    pub facts: HardwareFacts,
}

impl EventData for MachineDiscovered {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}

/// A netbooted machine was handed a bootstrap token (in its iPXE script) for the NIC with this MAC. Written by
/// the netboot endpoint of releases before bootstrap tokens became stateless (netboot now records nothing, see
/// [`MachinePhonedHome`]); logs that hold it still fold, and an operator may still issue one. Keeps: the MAC is well-formed; the token hash was
/// never used before (by any bootstrap or node token); it expires after it was issued; a MAC has at most one
/// unclaimed token (a new one replaces it); at most [`MAX_UNCLAIMED_TOKENS`] unexpired unclaimed tokens exist,
/// so the unauthenticated netboot endpoint cannot grow the log without bound. Only the hash is recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapTokenIssued {
    /// sha256 of the token.
    pub token: Hash,
    /// Lower-case, colon-separated: the NIC the machine netbooted from.
    pub mac: String,
    /// The machine that reported this MAC before, if one did (so the event joins its node's history).
    #[serde(default)]
    pub machine: Option<MachineId>,
    /// After this, an unclaimed token no longer works.
    pub expires: Timestamp,
}

/// At most this many unclaimed bootstrap tokens may be unexpired at once.
pub const MAX_UNCLAIMED_TOKENS: usize = 1024;

impl EventData for BootstrapTokenIssued {
    const EMITTERS: Emitters = Emitters::NONE;
    fn machine(&self) -> Option<&MachineId> {
        self.machine.as_ref()
    }
}

/// The installer phoned home with a bootstrap token recorded by `BootstrapTokenIssued` (right after the
/// `MachineDiscovered` carrying its facts, in the same batch): the token is now bound to that machine and cannot
/// phone home again. Written by the phone-home endpoint of releases before [`MachinePhonedHome`]; an operator may
/// still submit one for a token an operator issued. Keeps: the token was issued, is unclaimed and unexpired at the
/// proposal's time; the machine reported the NIC the token was issued for; one live installer session per
/// machine (claiming ends the machine's previous one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapTokenClaimed {
    pub token: Hash,
    pub machine: MachineId,
}

impl EventData for BootstrapTokenClaimed {
    const EMITTERS: Emitters = Emitters::NONE;
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}

/// The installer finished writing the node, generated its SSH host key on the node and spent its bootstrap
/// token; the `NodeTokenIssued` in the same batch carries the hash of the node token the installer generated.
/// Emitted by the server (`system:bootstrap`) for the installer holding the token. Keeps: the token was claimed
/// by the node's machine and is spent once; the node is `installing`; the key is an OpenSSH public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapTokenExchanged {
    pub token: Hash,
    pub node: NodeId,
    /// `ssh-ed25519 AAAA… comment`: the public half of the host key generated on the node.
    pub ssh_host_key: String,
}

impl EventData for BootstrapTokenExchanged {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// One step of an install, in the order the installer takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InstallStep {
    /// The install plan was fetched and its disks checked against the machine's.
    PlanFetched,
    /// disko partitioned, formatted and mounted the disks.
    DisksFormatted,
    /// The system closure was installed into the target and made bootable.
    SystemInstalled,
    /// The SSH host key was generated on the node.
    HostKeyGenerated,
}

impl InstallStep {
    pub const ALL: [InstallStep; 4] = [
        InstallStep::PlanFetched,
        InstallStep::DisksFormatted,
        InstallStep::SystemInstalled,
        InstallStep::HostKeyGenerated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InstallStep::PlanFetched => "plan-fetched",
            InstallStep::DisksFormatted => "disks-formatted",
            InstallStep::SystemInstalled => "system-installed",
            InstallStep::HostKeyGenerated => "host-key-generated",
        }
    }
}

impl std::fmt::Display for InstallStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The installer finished a step of the install. Emitted by the installer (bootstrap token) or the node's
/// agent, about its own node. Keeps: the node is `install-pending` or `installing`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallProgressed {
    pub node: NodeId,
    pub step: InstallStep,
    /// What was done, in a sentence (such as the resolved disks, or "dry run: disko was not run").
    pub detail: String,
}

impl EventData for InstallProgressed {
    const EMITTERS: Emitters = Emitters::BOOTSTRAP.or(Emitters::NODE);
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The node's disk layout does not fit the disks its machine reported, so it is not requested for install and
/// no plan is handed out: refused before anything is written. Emitted by enrollment (`system:enrollment`).
/// Keeps: the node is `commissioned` or `reprovisioning` and stays so; the spec is the live one; the layout
/// really does not fit (recomputed); `reasons` says why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallPlanRefused {
    pub node: NodeId,
    /// The digest of the live spec the plan was made from.
    pub spec: Hash,
    pub layout: String,
    pub reasons: Vec<String>,
}

impl EventData for InstallPlanRefused {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// Several enrollment rules match an unbound machine at the same, highest, priority, so none binds it: a
/// conflict for an operator to resolve (change the rules, or `sendan node accept`), never a silent pick.
/// Emitted by enrollment. Keeps: the machine is unbound; the spec is the live one; those rules really match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConflicted {
    pub machine: MachineId,
    pub spec: Hash,
    pub priority: u32,
    /// At least two, in name order.
    pub rules: Vec<String>,
}

impl EventData for EnrollmentConflicted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}

/// An enrollment rule matched an unbound machine, but the machine cannot be bound: its hardware does not meet
/// the class's policy, the node the rule names is bound to other hardware, or the pool has no free member.
/// Emitted by enrollment. Keeps: the machine is unbound; the spec is the live one; the rule matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRefused {
    pub machine: MachineId,
    pub spec: Hash,
    pub rule: String,
    pub reasons: Vec<String>,
}

impl EventData for EnrollmentRefused {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}

/// A netbooted installer phoned home (`POST /v1/bootstrap/phone-home`) with its hardware facts and the
/// bootstrap token its iPXE script carried: the machine is recorded (or its facts refreshed) and the token is now
/// that machine's installer session, which works once. Bootstrap tokens are stateless — derived from the NIC's MAC
/// and an expiry with the cluster secret, so netboot writes nothing — and this is the first event a token causes.
/// Emitted by the installer (`bootstrap:<machine>`); the endpoint stamps the hash, the MAC and the expiry of the
/// token the request authenticated with. Keeps: the token hash was never used (by any bootstrap or node token);
/// it is unexpired at the proposal's time and expires within 7 days; the MAC is a unicast MAC the facts list; the
/// facts are within their caps and identify `machine`; and the machine is one the token may speak for — a new
/// machine, or the one the log associates with that MAC, whose node (if any) is to be installed
/// ([`crate::machines::identity::identity_refusal`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachinePhonedHome {
    pub machine: MachineId,
    pub facts: HardwareFacts,
    /// Lower-case, colon-separated: the NIC the machine netbooted from, which the token was derived for.
    pub mac: String,
    /// sha256 of the bootstrap token.
    pub token: Hash,
    /// After this the token would no longer have phoned home.
    pub expires: Timestamp,
}

impl EventData for MachinePhonedHome {
    const EMITTERS: Emitters = Emitters::BOOTSTRAP;
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}
