//! The identity rule every phone-home passes: a bootstrap token proves only that its holder netbooted (or asked
//! the netboot endpoint) with one MAC, so a phone-home may speak for a machine that is new, or for the one the log
//! already associates with that MAC — and then only while its node is to be installed.

use crate::facts::HardwareFacts;
use crate::ids::MachineId;
use crate::lifecycle::NodeState;
use crate::read::FleetRead;
use crate::rejection::IdentityRefusal;

/// Whether a node in `state` netboots into the installer: it is to be installed. A bound machine may phone home
/// only then; installed nodes boot their disk and a node in `rescue` boots the rescue image.
pub fn boots_installer(state: NodeState) -> bool {
    matches!(
        state,
        NodeState::Commissioned | NodeState::InstallPending | NodeState::Installing | NodeState::Reprovisioning
    )
}

/// DMI serials that vendors ship unset, which identify nothing.
fn placeholder_serial(serial: &str) -> bool {
    const PLACEHOLDERS: [&str; 12] = [
        "",
        "0",
        "none",
        "n/a",
        "na",
        "default string",
        "to be filled by o.e.m.",
        "not specified",
        "system serial number",
        "not applicable",
        "0123456789",
        "123456789",
    ];
    let s = serial.trim().to_ascii_lowercase();
    PLACEHOLDERS.contains(&s.as_str()) || s.chars().all(|c| c == '0' || c == 'x' || c == '-' || c == ' ')
}

fn dmi_uuid(facts: &HardwareFacts) -> Option<String> {
    let uuid = facts.dmi.system_uuid.as_deref()?.to_ascii_lowercase();
    (!crate::facts::is_placeholder_uuid(&uuid)).then_some(uuid)
}

fn dmi_serial(facts: &HardwareFacts) -> Option<(String, String)> {
    let serial = facts.dmi.serial.as_deref().filter(|s| !placeholder_serial(s))?;
    let vendor = facts.dmi.vendor.as_deref().unwrap_or_default().trim().to_ascii_lowercase();
    Some((vendor, serial.trim().to_owned()))
}

/// Whether a phone-home with a bootstrap token for NIC `mac` (normalized) may record `facts` for `machine` (their
/// machine key): `None` when it may, else why not. Pure; `check` applies it to `MachinePhonedHome`, and the
/// phone-home endpoint asks it first so that a refusal never reaches the log.
pub fn identity_refusal(
    read: &dyn FleetRead,
    mac: &str,
    machine: &MachineId,
    facts: &HardwareFacts,
) -> Option<IdentityRefusal> {
    if !facts.macs().any(|m| m == mac) {
        return Some(IdentityRefusal::NicNotReported { mac: mac.to_owned() });
    }
    if let Some(known) = read.machine(machine) {
        if known.id.as_str() != mac && !known.facts.macs().any(|m| m == mac) {
            return Some(IdentityRefusal::NotThisMachinesNic { machine: machine.clone(), mac: mac.to_owned() });
        }
        if let Some(node) = known.node.and_then(|n| read.node(n))
            && !boots_installer(node.state)
        {
            return Some(IdentityRefusal::NodeNotInstalling {
                machine: machine.clone(),
                node: node.id.clone(),
                state: node.state,
            });
        }
    }
    let uuid = dmi_uuid(facts);
    let serial = dmi_serial(facts);
    for other in read.machines().filter(|m| m.id != machine) {
        if other.id.as_str() == mac || other.facts.macs().any(|m| m == mac) {
            return Some(IdentityRefusal::NicOfAnotherMachine {
                mac: mac.to_owned(),
                owner: other.id.clone(),
                machine: machine.clone(),
            });
        }
        if let Some(u) = &uuid
            && dmi_uuid(other.facts).as_ref() == Some(u)
        {
            return Some(IdentityRefusal::IdentityOfAnotherMachine {
                what: "DMI system uuid".into(),
                value: u.clone(),
                owner: other.id.clone(),
            });
        }
        if let Some(s) = &serial
            && dmi_serial(other.facts).as_ref() == Some(s)
        {
            return Some(IdentityRefusal::IdentityOfAnotherMachine {
                what: "DMI serial".into(),
                value: s.1.clone(),
                owner: other.id.clone(),
            });
        }
    }
    None
}
