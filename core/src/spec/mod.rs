//! The ClusterSpec: the versioned JSON document `nix/lib`'s `mkCluster` produces from a cluster declaration, and
//! what `sendan plan` / `sendan apply` record.
//!
//! The document is fully resolved: pools are expanded into nodes, every node carries its class, profile, disk
//! layout, desired system and address, sizes are in bytes. [`ClusterSpec::validate`] repeats every semantic check
//! the Nix library makes, with the same messages, because the server never trusts that a document came from Nix.
//! Parsing ([`ClusterSpec::from_json`]) rejects unknown fields and unknown versions.
//!
//! Submodules hold the helpers later stages use: [`hardware`] (class admission, enrollment rule matching),
//! [`disk`] (resolving a layout's disk selectors against discovered disks, rendering disko), [`plan`] (per-node
//! install plans) and [`net`] (IPv4 arithmetic).

pub mod diff;
pub mod disk;
pub mod hardware;
pub mod net;
pub mod plan;
mod schema;
mod validate;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserializer, Serializer};

use crate::facts::Disk as FactDisk;
use crate::ids::Hash;

pub use diff::{Change, Op, SpecDiff, diff};
pub use disk::{DiskLayout, ResolvedDisk};
pub use hardware::{AmbiguousMatch, Location, SwitchPort, select_rule};
pub use net::{AddressRange, Cidr};
pub use plan::InstallPlan;
pub use schema::json_schema;
pub use validate::{SpecError, SpecErrors, Subject};

/// The only `apiVersion` this build reads and writes.
pub const API_VERSION: &str = "sendan.dev/v1alpha1";

/// The whole cluster as declared: sites and networks, hardware classes and pools, enrollment rules, disk layouts,
/// host profiles, nodes, services and bootstrap settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "ClusterSpec", description = "A Sendan cluster declaration, as produced by nix/lib's mkCluster.")]
pub struct ClusterSpec {
    pub api_version: ApiVersion,
    pub kind: Kind,
    /// The cluster's name, a DNS label.
    pub name: String,
    #[serde(default)]
    pub datacenters: BTreeMap<String, Datacenter>,
    #[serde(default)]
    pub racks: BTreeMap<String, Rack>,
    #[serde(default)]
    pub vlans: BTreeMap<String, Vlan>,
    #[serde(default)]
    pub bgp: Bgp,
    #[serde(default)]
    pub ip_pools: BTreeMap<String, IpPool>,
    #[serde(default)]
    pub classes: BTreeMap<String, Class>,
    #[serde(default)]
    pub pools: BTreeMap<String, Pool>,
    #[serde(default)]
    pub enrollment_rules: BTreeMap<String, Rule>,
    #[serde(default)]
    pub disk_layouts: BTreeMap<String, DiskLayout>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeDeclaration>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    pub bootstrap: Bootstrap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "sendan.dev/v1alpha1")]
    V1Alpha1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    ClusterSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Datacenter {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rack {
    pub datacenter: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The rack's switches (top-of-rack), as LLDP names them; enrollment rules match ports on them.
    #[serde(default)]
    pub switches: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vlan {
    /// 802.1Q id, 1..=4094.
    pub id: u16,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bgp {
    /// The cluster's own ASN; required when there are peers.
    #[serde(default)]
    pub asn: Option<u32>,
    #[serde(default)]
    pub peers: BTreeMap<String, BgpPeer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeer {
    pub address: Ipv4Addr,
    pub asn: u32,
    #[serde(default)]
    pub rack: Option<String>,
}

/// A subnet nodes take addresses from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPool {
    pub cidr: Cidr,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// The VLAN the subnet lives on.
    #[serde(default)]
    pub vlan: Option<String>,
    /// Whether hosts tag their frames (a VLAN interface on the uplink) or the switch port carries the VLAN
    /// untagged.
    #[serde(default)]
    pub tagged: bool,
    /// Addresses allocation never hands out and static nodes may not use.
    #[serde(default)]
    pub reserved: Vec<AddressRange>,
}

/// A kind of machine: the hardware it must have, and the profile and disk layout its nodes default to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Class {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub hardware: HardwarePolicy,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub disk_layout: Option<String>,
}

/// Minimums a machine's [`crate::facts::HardwareFacts`] must meet to be admitted to a class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HardwarePolicy {
    /// Against `cpu.threads`.
    #[serde(default)]
    pub min_cpu_threads: u32,
    /// Against `memory_bytes` (`MemTotal`, a few percent below the installed RAM).
    #[serde(default)]
    pub min_memory_bytes: u64,
    /// The CPU must report `vmx` or `svm`.
    #[serde(default)]
    pub virtualization: bool,
    /// Each requirement needs its own disks: two requirements are never met by the same disk.
    #[serde(default)]
    pub disks: Vec<DiskRequirement>,
    #[serde(default)]
    pub nics: NicRequirement,
}

/// `count` non-removable disks within the size bounds and of the given kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskRequirement {
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub min_size_bytes: u64,
    #[serde(default)]
    pub max_size_bytes: Option<u64>,
    /// `true`: spinning disks only; `false`: SSDs/NVMe only; absent: either.
    #[serde(default)]
    pub rotational: Option<bool>,
}

/// At least `min_count` NICs, each at least `min_speed_mbps` fast when that is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NicRequirement {
    #[serde(default)]
    pub min_count: u32,
    #[serde(default)]
    pub min_speed_mbps: Option<u32>,
}

/// A group of nodes of one class: `size` generated members placed round-robin over `racks`, plus any static
/// node that names the pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pool {
    #[serde(default)]
    pub description: Option<String>,
    pub class: String,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub disk_layout: Option<String>,
    #[serde(default)]
    pub racks: Vec<String>,
    /// The ip pool of each rack.
    #[serde(default)]
    pub ip_pools: BTreeMap<String, String>,
    #[serde(default)]
    pub size: u32,
    /// How generated members are named: `{index}` (zero-padded to `indexWidth`), `{rack}`, `{pool}`.
    pub name_pattern: String,
    #[serde(default = "two")]
    pub index_width: u32,
    /// When voluntary disruptions (rollout waves, drains' hand-overs) may happen on its nodes: empty, always.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindow>,
}

/// A weekly maintenance window, in UTC: on each of `days`, from `start` (`HH:MM`) for `minutes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// `mon` … `sun`; all of them by default.
    #[serde(default = "all_days")]
    pub days: Vec<String>,
    pub start: String,
    pub minutes: u32,
}

/// The days of the week, as windows name them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn all_days() -> Vec<String> {
    DAYS.iter().map(|d| (*d).to_owned()).collect()
}

const DAY_MS: i64 = 86_400_000;

impl MaintenanceWindow {
    /// Its start as minutes after midnight, when `start` is `HH:MM`.
    pub fn start_minute(&self) -> Option<i64> {
        let (h, m) = self.start.split_once(':')?;
        let ok = |t: &str, max: i64| {
            (t.len() == 2).then(|| t.parse::<i64>().ok()).flatten().filter(|v| (0..max).contains(v))
        };
        Some(ok(h, 24)? * 60 + ok(m, 60)?)
    }

    /// The times (ms) its openings start on the days around `now`, from a week before to a week after.
    fn openings(&self, now: i64) -> impl Iterator<Item = i64> + '_ {
        let start = self.start_minute().unwrap_or(0) * 60_000;
        let today = now.div_euclid(DAY_MS);
        (-8..=8).filter_map(move |k| {
            let day = today + k;
            // 1970-01-01 was a Thursday.
            let weekday = DAYS[((day + 3).rem_euclid(7)) as usize];
            self.days.iter().any(|d| d == weekday).then_some(day * DAY_MS + start)
        })
    }

    /// Whether it is open at `now` (ms since the epoch).
    pub fn open_at(&self, now: i64) -> bool {
        let length = i64::from(self.minutes) * 60_000;
        self.openings(now).any(|t| t <= now && now < t + length)
    }

    /// When it opens next after `now`.
    pub fn next_opening(&self, now: i64) -> Option<i64> {
        self.openings(now).filter(|t| *t > now).min()
    }
}

impl Pool {
    /// Why voluntary disruptions on its nodes wait at `now`: its maintenance windows are all closed (and when the
    /// next opens). `None`: open, or it declares none.
    pub fn maintenance_closed(&self, name: &str, now: crate::ids::Timestamp) -> Option<String> {
        if self.maintenance.is_empty() || self.maintenance.iter().any(|w| w.open_at(now.0)) {
            return None;
        }
        let next = self.maintenance.iter().filter_map(|w| w.next_opening(now.0)).min();
        Some(match next {
            Some(t) => format!("pool {name}'s maintenance window is closed; it opens at {}", crate::ids::Timestamp(t)),
            None => format!("pool {name}'s maintenance window is closed"),
        })
    }
}

/// An enrollment rule: which machines it matches and what it binds them to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub description: Option<String>,
    /// Higher wins.
    pub priority: u32,
    #[serde(default, rename = "match")]
    pub matches: Match,
    pub bind: Bind,
}

/// What a rule matches: every criterion that is set must hold; an absent criterion holds for every machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// `/etc/machine-id` of the installer.
    #[serde(default)]
    pub machine_ids: Option<Vec<String>>,
    /// DMI system uuid, compared case-insensitively.
    #[serde(default)]
    pub system_uuids: Option<Vec<String>>,
    #[serde(default)]
    pub dmi_serials: Option<Vec<String>>,
    /// Any of the machine's NIC MACs, compared case-insensitively.
    #[serde(default)]
    pub macs: Option<Vec<String>>,
    #[serde(default)]
    pub cpu_threads: Option<Range>,
    #[serde(default)]
    pub memory_bytes: Option<Range>,
    /// Non-removable disks.
    #[serde(default)]
    pub disk_count: Option<Range>,
    /// The rack the machine was found in (from its switch ports).
    #[serde(default)]
    pub racks: Option<Vec<String>>,
    /// Any switch port one of the machine's NICs is cabled to (from LLDP).
    #[serde(default)]
    pub switch_ports: Option<Vec<SwitchPort>>,
}

/// An inclusive range; an absent bound is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

impl Range {
    pub fn contains(&self, v: u64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    pub fn is_empty(&self) -> bool {
        matches!((self.min, self.max), (Some(a), Some(b)) if a > b)
    }

    pub fn intersects(&self, other: &Range) -> bool {
        let below = |x: &Range, y: &Range| matches!((x.max, y.min), (Some(a), Some(b)) if a < b);
        !below(self, other) && !below(other, self)
    }
}

/// What a matching machine becomes: a declared node, or the next free member of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bind {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    /// Overrides the node's or pool's class.
    #[serde(default)]
    pub class: Option<String>,
    /// Overrides the node's or pool's profile.
    #[serde(default)]
    pub profile: Option<String>,
}

/// A host profile: the NixOS system its nodes run. The modules that build it stay in Nix; the document carries
/// the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub description: Option<String>,
    /// The Nix system double, such as `x86_64-linux`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// In a profile, `{node}` in the flake attribute stands for each node's name.
    #[serde(default)]
    pub system: SystemTarget,
}

/// A desired NixOS system: exactly one of a flake output or a store path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemTarget {
    /// `<flake ref>#<attribute>`, such as `git+https://git.example.com/infra#nixosConfigurations.cp-1.config.system.build.toplevel`.
    #[serde(default)]
    pub flake: Option<String>,
    /// `/nix/store/<hash>-<name>`.
    #[serde(default)]
    pub store_path: Option<String>,
}

/// A node, fully resolved: a static one from `nodes`, or a pool's generated member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDeclaration {
    pub class: String,
    #[serde(default)]
    pub pool: Option<String>,
    /// Generated by its pool's `size` and `namePattern` (rather than declared in `nodes`).
    #[serde(default)]
    pub generated: bool,
    pub rack: String,
    pub profile: String,
    pub disk_layout: String,
    /// The system this node runs, `{node}` already substituted.
    pub system: SystemTarget,
    pub network: NodeNetwork,
    /// Its baseboard management controller, when the leader may power it and set its next boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<Bmc>,
}

/// A node's baseboard management controller. The password is a file on the servers, read by the leader when it
/// acts; it is never in the spec or the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bmc {
    pub driver: BmcDriver,
    /// Redfish: the service's URL (`https://10.0.9.5`); IPMI: `HOST` or `HOST:PORT` (lanplus, port 623 by default).
    pub address: String,
    pub user: String,
    /// An absolute path, on every Sendan server, of a file holding the password.
    pub password_file: String,
    /// Redfish: the system's path, such as `/redfish/v1/Systems/1`; default: the service's only system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Redfish over https: an absolute path of PEM certificates the BMC's certificate must chain to; default:
    /// the server's CA bundle (`/etc/ssl/certs/ca-certificates.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BmcDriver {
    Redfish,
    Ipmi,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeNetwork {
    /// A systemd-networkd `Name=` match for the uplink, such as `en*` or `eno1`.
    #[serde(default = "default_interface")]
    pub interface: String,
    pub ip_pool: String,
    pub address: Ipv4Addr,
    /// Allocated from the ip pool (rather than declared).
    #[serde(default)]
    pub allocated: bool,
}

/// A native service for the scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub description: Option<String>,
    /// A store path or flake installable.
    #[serde(default)]
    pub package: Option<String>,
    /// argv; a relative `command[0]` is resolved inside `package`.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub replicas: u32,
    /// The pools whose members may run instances.
    pub pools: Vec<String>,
    #[serde(default)]
    pub constraints: Constraints,
    #[serde(default)]
    pub health: Option<HealthCheck>,
    #[serde(default)]
    pub update: UpdatePolicy,
    /// How many instances a voluntary disruption (a host rollout's wave, a drain, a reprovision, a retire) may
    /// take away at once. Unset: `update.maxParallel`, at most `replicas`.
    #[serde(default)]
    pub budget: DisruptionBudget,
    /// What one instance reserves on its node, compared with the node's reported facts minus what is placed.
    #[serde(default)]
    pub resources: Resources,
    /// Named ports: a static number, or (no number) one the node-agent allocates from its range. Each reaches the
    /// instance as `SENDAN_PORT_<NAME>` (upper-cased), and `$SENDAN_PORT_<NAME>` in `command` is replaced by it.
    #[serde(default)]
    pub ports: BTreeMap<String, PortSpec>,
    /// What the node-agent does when an instance exits or fails its health check.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// What the scheduler does when an instance failed for good (its restarts used up): place a replacement on
    /// another node, after a delay that grows, a bounded number of times within an interval.
    #[serde(default)]
    pub reschedule: ReschedulePolicy,
    /// How the scheduler ranks the nodes that fit: `binpack` fills nodes up, `spread` evens them out.
    #[serde(default)]
    pub placement: PlacementStrategy,
}

/// What one instance reserves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU threads.
    #[serde(default)]
    pub cpu: u32,
    #[serde(default)]
    pub memory_bytes: u64,
}

/// A named port of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The port every instance listens on; none: the node-agent allocates one per instance.
    #[serde(default, rename = "static")]
    pub static_port: Option<u16>,
}

/// A health probe's port: a number, or the name of one of the service's ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl PortRef {
    /// The port number, given the instance's allocated ports by name.
    pub fn resolve(&self, ports: &BTreeMap<String, u16>) -> Option<u16> {
        match self {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(name) => ports.get(name).copied(),
        }
    }
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => write!(f, "'{name}'"),
        }
    }
}

/// Restarts on the node: at most `attempts` within `intervalSeconds`, each after `delaySeconds`; past that the
/// instance has failed and the scheduler's reschedule policy takes over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default = "two")]
    pub attempts: u32,
    #[serde(default = "three_hundred")]
    pub interval_seconds: u32,
    #[serde(default = "one")]
    pub delay_seconds: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy { attempts: 2, interval_seconds: 300, delay_seconds: 1 }
    }
}

/// Replacements of failed instances on other nodes: at most `attempts` within `intervalSeconds` (or without end
/// when `unlimited`), the first after `delaySeconds`, each next one after twice the last (`exponential`) or the
/// same (`constant`), never more than `maxDelaySeconds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReschedulePolicy {
    #[serde(default = "three")]
    pub attempts: u32,
    #[serde(default = "hour")]
    pub interval_seconds: u32,
    #[serde(default = "five")]
    pub delay_seconds: u32,
    #[serde(default = "three_hundred")]
    pub max_delay_seconds: u32,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default)]
    pub unlimited: bool,
}

impl Default for ReschedulePolicy {
    fn default() -> Self {
        ReschedulePolicy {
            attempts: 3,
            interval_seconds: 3600,
            delay_seconds: 5,
            max_delay_seconds: 300,
            backoff: Backoff::Exponential,
            unlimited: false,
        }
    }
}

impl ReschedulePolicy {
    /// The delay before the reschedule that follows `earlier` reschedules, in milliseconds.
    pub fn delay_ms(&self, earlier: u32) -> i64 {
        let base = i64::from(self.delay_seconds) * 1000;
        let max = i64::from(self.max_delay_seconds.max(self.delay_seconds)) * 1000;
        match self.backoff {
            Backoff::Constant => base,
            Backoff::Exponential => base.saturating_mul(1i64 << earlier.min(30)).min(max),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Constant,
    #[default]
    Exponential,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementStrategy {
    #[default]
    Binpack,
    Spread,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraints {
    #[serde(default = "one")]
    pub max_per_node: u32,
    /// Only nodes in these racks.
    #[serde(default)]
    pub racks: Option<Vec<String>>,
    /// Spread instances evenly over the eligible racks.
    #[serde(default)]
    pub spread_across_racks: bool,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints { max_per_node: 1, racks: None, spread_across_racks: false }
    }
}

/// Exactly one of `http`, `tcp` or `exec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default)]
    pub http: Option<HttpProbe>,
    #[serde(default)]
    pub tcp: Option<TcpProbe>,
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    #[serde(default = "ten")]
    pub interval_seconds: u32,
    #[serde(default = "two")]
    pub timeout_seconds: u32,
    /// Consecutive failures before the instance counts as unhealthy.
    #[serde(default = "three")]
    pub unhealthy_after: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    pub port: PortRef,
    #[serde(default = "root_path")]
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbe {
    pub port: PortRef,
}

/// How a new version rolls out: `canary` instances first, then at most `maxParallel` at a time; each must stay
/// healthy for `minHealthySeconds` within `healthyDeadlineSeconds`, else the rollout stops (and reverts when
/// `autoRevert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicy {
    #[serde(default = "one")]
    pub max_parallel: u32,
    #[serde(default)]
    pub canary: u32,
    #[serde(default = "ten")]
    pub min_healthy_seconds: u32,
    #[serde(default = "three_hundred")]
    pub healthy_deadline_seconds: u32,
    #[serde(default = "yes")]
    pub auto_revert: bool,
}

/// A service's disruption budget: at most one of the two; neither set derives `maxUnavailable` from the update
/// policy ([`Service::max_unavailable`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisruptionBudget {
    /// At most this many of its replicas may be unhealthy because of a voluntary disruption.
    #[serde(default)]
    pub max_unavailable: Option<u32>,
    /// At least this many instances stay healthy through a voluntary disruption.
    #[serde(default)]
    pub min_healthy: Option<u32>,
}

impl ClusterSpec {
    /// Why voluntary disruptions on `node` wait at `now`: its pool's maintenance windows are closed.
    pub fn maintenance_closed_for(&self, node: &str, now: crate::ids::Timestamp) -> Option<String> {
        let pool = self.nodes.get(node)?.pool.as_ref()?;
        self.pools.get(pool)?.maintenance_closed(pool, now)
    }
}

impl Service {
    /// How many replicas a voluntary disruption may take away: the declared budget, else `update.maxParallel`,
    /// never more than `replicas`.
    pub fn max_unavailable(&self) -> u32 {
        let declared = match (self.budget.max_unavailable, self.budget.min_healthy) {
            (Some(n), _) => n,
            (None, Some(min)) => self.replicas.saturating_sub(min),
            (None, None) => self.update.max_parallel,
        };
        declared.min(self.replicas)
    }

    /// The fewest healthy instances a voluntary disruption may leave.
    pub fn min_healthy(&self) -> u32 {
        self.replicas - self.max_unavailable()
    }
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            max_parallel: 1,
            canary: 0,
            min_healthy_seconds: 10,
            healthy_deadline_seconds: 300,
            auto_revert: true,
        }
    }
}

/// What a netbooted installer needs before it knows anything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bootstrap {
    /// Sendan server URLs to phone home to.
    pub servers: Vec<String>,
    #[serde(default)]
    pub substituters: Vec<String>,
    #[serde(default)]
    pub trusted_public_keys: Vec<String>,
}

fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn ten() -> u32 {
    10
}
fn hour() -> u32 {
    3600
}
fn three_hundred() -> u32 {
    300
}
fn yes() -> bool {
    true
}
fn root_path() -> String {
    "/".to_owned()
}
fn default_platform() -> String {
    "x86_64-linux".to_owned()
}
fn default_interface() -> String {
    "en*".to_owned()
}

/// Why a document could not be read as a ClusterSpec (before any semantic check).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the document is not JSON: {reason}")]
    NotJson { reason: String },
    #[error("the document has no `apiVersion`; expected `{API_VERSION}`")]
    MissingVersion,
    #[error("apiVersion `{found}` is not supported; this Sendan reads `{API_VERSION}`")]
    UnsupportedVersion { found: String },
    #[error("kind `{found}` is not a ClusterSpec")]
    WrongKind { found: String },
    #[error("the document is not a valid {API_VERSION} ClusterSpec: {reason}")]
    Invalid { reason: String },
}

impl ClusterSpec {
    /// Read a document: the version first (so an old or new document gets a clear message rather than a
    /// field-by-field complaint), then the typed body. Semantic checks are [`ClusterSpec::validate`]'s.
    pub fn from_json(text: &str) -> Result<ClusterSpec, ParseError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ParseError::NotJson { reason: e.to_string() })?;
        match value.get("apiVersion") {
            None => return Err(ParseError::MissingVersion),
            Some(serde_json::Value::String(v)) if v == API_VERSION => {}
            Some(other) => {
                let found = other.as_str().map(str::to_owned).unwrap_or_else(|| other.to_string());
                return Err(ParseError::UnsupportedVersion { found });
            }
        }
        match value.get("kind") {
            Some(serde_json::Value::String(k)) if k == "ClusterSpec" => {}
            other => {
                let found = other.map(|k| k.as_str().map(str::to_owned).unwrap_or_else(|| k.to_string()));
                return Err(ParseError::WrongKind { found: found.unwrap_or_else(|| "(none)".to_owned()) });
            }
        }
        serde_json::from_value(value).map_err(|e| ParseError::Invalid { reason: e.to_string() })
    }

    /// The canonical form: every field present, object keys sorted, no whitespace. It is byte-for-byte what
    /// `nix-instantiate --eval --strict --json` prints for the same document (`builtins.toJSON` sorts keys too).
    pub fn canonical_json(&self) -> String {
        // A ClusterSpec's maps have string keys and its values are plain data, so it always serialises.
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// sha256 of [`ClusterSpec::canonical_json`]: equal documents have equal digests, whatever their key order
    /// or omitted defaults.
    pub fn digest(&self) -> Hash {
        Hash::of(self.canonical_json().as_bytes())
    }

    /// The members of a pool, static and generated, by name.
    pub fn pool_members<'a>(&'a self, pool: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes.iter().filter(move |(_, n)| n.pool.as_deref() == Some(pool)).map(|(name, _)| name.as_str())
    }

    /// The nodes a service may run on: members of its pools, within its allowed racks.
    pub fn eligible_nodes<'a>(&'a self, service: &'a Service) -> Vec<&'a str> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.pool.as_ref().is_some_and(|p| service.pools.contains(p)))
            .filter(|(_, n)| service.constraints.racks.as_ref().is_none_or(|racks| racks.contains(&n.rack)))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// `value` as canonical JSON: object keys sorted, no whitespace — what `builtins.toJSON` writes.
pub fn canonical(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The spec that is live, with the event that made it so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSpec {
    /// The seq of the `SpecApplied` event.
    pub seq: u64,
    pub digest: Hash,
    pub spec: Arc<ClusterSpec>,
}

/// Stored as its canonical document and parsed back: the spec types are JSON-shaped (internally tagged
/// enums), which postcard cannot carry.
impl Serialize for LiveSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.seq, self.digest, self.spec.canonical_json()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LiveSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (seq, digest, document): (u64, Hash, String) = Deserialize::deserialize(d)?;
        let spec = ClusterSpec::from_json(&document).map_err(D::Error::custom)?;
        Ok(LiveSpec { seq, digest, spec: Arc::new(spec) })
    }
}

/// Resolve the disk layout the spec gives node `node` against `disks`: the layout's name and either its
/// resolved disks or every reason it does not fit. `None` when the spec does not declare the node or its layout.
pub fn layout_fit(
    spec: &ClusterSpec,
    node: &str,
    disks: &[FactDisk],
) -> Option<(String, Result<BTreeMap<String, ResolvedDisk>, Vec<String>>)> {
    let declared = spec.nodes.get(node)?;
    let layout = spec.disk_layouts.get(&declared.disk_layout)?;
    let mut result = layout.resolve(disks);
    if disks.is_empty()
        && let Err(reasons) = &mut result
    {
        reasons.insert(0, "the machine reported no disks".to_owned());
    }
    Some((declared.disk_layout.clone(), result))
}

/// The spec of `nix/tests/fixtures/small.nix`: unit tests use it, and so does the fleet's schema probe.
pub(crate) mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_document_of_another_version_then_parsing_names_the_version() {
        let doc = r#"{"apiVersion":"sendan.dev/v2","kind":"ClusterSpec"}"#;
        assert_eq!(
            ClusterSpec::from_json(doc).unwrap_err().to_string(),
            "apiVersion `sendan.dev/v2` is not supported; this Sendan reads `sendan.dev/v1alpha1`"
        );
        assert_eq!(ClusterSpec::from_json(r#"{"kind":"ClusterSpec"}"#).unwrap_err(), ParseError::MissingVersion);
        let other_kind = r#"{"apiVersion":"sendan.dev/v1alpha1","kind":"InstallPlan"}"#;
        assert!(
            matches!(ClusterSpec::from_json(other_kind), Err(ParseError::WrongKind { found }) if found == "InstallPlan")
        );
        assert!(matches!(ClusterSpec::from_json("{"), Err(ParseError::NotJson { .. })));
    }

    #[test]
    fn given_an_unknown_field_then_parsing_refuses_it() {
        let mut doc = fixture::json();
        doc["classes"]["worker"]["hardware"]["minMemroy"] = 1.into();
        let err = ClusterSpec::from_json(&doc.to_string()).unwrap_err();
        assert!(err.to_string().contains("unknown field `minMemroy`"), "{err}");
    }

    #[test]
    fn given_omitted_defaults_then_the_canonical_form_and_digest_are_those_of_the_full_document() {
        let full = fixture::spec();
        let json = full.canonical_json();
        let mut sparse: serde_json::Value = serde_json::from_str(&json).unwrap();
        sparse["services"]["web"].as_object_mut().unwrap().remove("update");
        sparse["ipPools"]["rack1-v4"].as_object_mut().unwrap().remove("tagged");
        let reparsed = ClusterSpec::from_json(&sparse.to_string()).unwrap();
        assert_eq!(reparsed, full);
        assert_eq!(reparsed.digest(), full.digest());
        assert_eq!(full.digest(), Hash::of(json.as_bytes()));
        assert!(json.starts_with(r#"{"apiVersion":"sendan.dev/v1alpha1","bgp":{"#), "keys are sorted: {json}");
        assert!(!json.contains('\n'), "one line: {json}");
    }

    #[test]
    fn given_a_change_then_the_digest_changes() {
        let a = fixture::spec();
        let mut b = a.clone();
        b.services.get_mut("web").unwrap().replicas += 1;
        assert_ne!(a.digest(), b.digest());
    }
}
