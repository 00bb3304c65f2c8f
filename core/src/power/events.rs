//! Power events: an operator asks a node's BMC to power it or set its next boot (`PowerRequested`); the leader's
//! power controller carries the request out and records how it went (`PowerCompleted`); a status query that finds
//! the machine in another power state than the log last knew records that (`PowerObserved`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::Emitters;
use crate::ids::NodeId;

/// What a power request asks of the machine's power.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PowerAction {
    /// Power on (nothing to do when it is on).
    On,
    /// Cut the power at once.
    Off,
    /// Ask the operating system to shut down (ACPI), and wait for the power to go off.
    SoftOff,
    /// Power off at once, then on again (on, when it was off). The boot device set by the request, if any, is
    /// set before.
    Reboot,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::SoftOff => "soft-off",
            PowerAction::Reboot => "reboot",
        }
    }

    /// Does the action take the machine out of service (and so count against the disruption budgets)?
    pub fn takes_out(self) -> bool {
        !matches!(self, PowerAction::On)
    }
}

/// Where the machine boots from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    /// The network (PXE / iPXE): the installer or the rescue image Sendan serves.
    Pxe,
    /// The first local disk.
    Disk,
}

impl BootDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
        }
    }
}

/// A boot device override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootOverride {
    pub device: BootDevice,
    /// For the next boot only (then the BMC's own order again), or until changed.
    pub once: bool,
}

/// A machine's power as its BMC reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    On,
    Off,
}

impl Power {
    pub fn as_str(self) -> &'static str {
        match self {
            Power::On => "on",
            Power::Off => "off",
        }
    }
}

/// Ask the node's BMC to set its next boot and/or act on its power. Operator (and `sendan node
/// reprovision|rescue`). Keeps: the live spec declares a BMC for the node; the request asks for something; no
/// other request of the node is still being carried out; an action that takes the node out (off, soft-off,
/// reboot) keeps every service within its disruption budget, unless `force`. The event's seq is the request id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequested {
    pub node: NodeId,
    /// The power action, done after the boot device is set; none for a boot device change alone.
    #[serde(default)]
    pub action: Option<PowerAction>,
    /// The boot device to set first, if any.
    #[serde(default)]
    pub boot: Option<BootOverride>,
    /// Skip the disruption budget check.
    #[serde(default)]
    pub force: bool,
}
about_node!(PowerRequested, Emitters::NONE);

/// How a power request went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerOutcome {
    /// The BMC did what was asked and reports the power state asked for.
    Done,
    /// The BMC refused, could not be reached, or did not reach the state before the deadline (`error` says which).
    Failed,
}

/// The power controller carried out request `request`. System (`system:power`). Keeps: `request` is the node's
/// pending request; a failure says why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerCompleted {
    pub node: NodeId,
    /// The seq of the `PowerRequested` this completes.
    pub request: u64,
    pub outcome: PowerOutcome,
    #[serde(default)]
    pub error: Option<String>,
    /// The power state the BMC reported last, if it could be read.
    #[serde(default)]
    pub power: Option<Power>,
}
about_node!(PowerCompleted, Emitters::SYSTEM);

/// A status query found the machine's power other than the log last recorded (changes only). System. Keeps: the
/// state differs from the last observed one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerObserved {
    pub node: NodeId,
    pub power: Power,
}
about_node!(PowerObserved, Emitters::SYSTEM);
