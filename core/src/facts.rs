//! Hardware facts a machine reports when it phones home: CPU, memory, disks, NICs, DMI, machine-id.
//!
//! These types are part of the `MachineDiscovered` event and therefore of the stored format: fields are
//! appended, never reordered or removed, and no field uses `skip_serializing_if` (postcard is not
//! self-describing).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounds::{BoundsError, FACT_PATH, FACT_TEXT, MAX_CPU_FLAGS, MAX_DISKS, MAX_NICS};
use crate::ids::{InvalidValue, MachineId};

/// Everything `sendan-agent install` learns about a machine before anything is written to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HardwareFacts {
    /// `/etc/machine-id` of the running (installer) system, if any.
    #[schemars(length(max = FACT_TEXT))]
    pub machine_id: Option<String>,
    pub dmi: Dmi,
    pub cpu: Cpu,
    /// Total usable memory, from `/proc/meminfo` `MemTotal`.
    pub memory_bytes: u64,
    #[schemars(length(max = MAX_DISKS))]
    pub disks: Vec<Disk>,
    #[schemars(length(max = MAX_NICS))]
    pub nics: Vec<Nic>,
}

/// SMBIOS/DMI identity, from `/sys/class/dmi/id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Dmi {
    #[schemars(length(max = FACT_TEXT))]
    pub system_uuid: Option<String>,
    #[schemars(length(max = FACT_TEXT))]
    pub serial: Option<String>,
    #[schemars(length(max = FACT_TEXT))]
    pub vendor: Option<String>,
    #[schemars(length(max = FACT_TEXT))]
    pub product: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Cpu {
    #[schemars(length(max = FACT_TEXT))]
    pub model: String,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
    /// `vmx` (Intel VT-x) and/or `svm` (AMD-V) when the CPU can run VMs.
    #[schemars(length(max = MAX_CPU_FLAGS), inner(length(max = FACT_TEXT)))]
    pub virtualization: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Disk {
    /// Kernel name, such as `sda` or `nvme0n1`.
    #[schemars(length(max = FACT_TEXT))]
    pub name: String,
    pub size_bytes: u64,
    #[schemars(length(max = FACT_TEXT))]
    pub model: Option<String>,
    #[schemars(length(max = FACT_TEXT))]
    pub serial: Option<String>,
    /// The most specific `/dev/disk/by-id/…` link, stable across reboots.
    #[schemars(length(max = FACT_PATH))]
    pub by_id: Option<String>,
    pub rotational: bool,
    pub removable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Nic {
    #[schemars(length(max = FACT_TEXT))]
    pub name: String,
    /// Lower-case, colon-separated.
    #[schemars(regex(pattern = MAC_PATTERN))]
    pub mac: String,
    #[schemars(length(max = FACT_TEXT))]
    pub driver: Option<String>,
    pub speed_mbps: Option<u32>,
    pub link: bool,
    /// The switch port this NIC is cabled to, as the switch announces it over LLDP (appended field).
    pub lldp: Option<LldpNeighbor>,
}

/// What a switch announces over LLDP about the port a NIC is cabled to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LldpNeighbor {
    /// The switch's system name (LLDP chassis name), such as `r01-tor-a`.
    #[schemars(length(max = FACT_TEXT))]
    pub switch: String,
    /// The port's name on the switch (LLDP port id or description), such as `Ethernet12`.
    #[schemars(length(max = FACT_TEXT))]
    pub port: String,
}

impl HardwareFacts {
    /// The key this machine is known by: DMI system uuid, else machine-id, else its lowest MAC.
    ///
    /// Placeholder uuids that vendors ship unset (all zeros, all `f`) are ignored.
    pub fn machine_key(&self) -> Result<MachineId, InvalidValue> {
        if let Some(uuid) = self.dmi.system_uuid.as_deref().map(str::to_ascii_lowercase)
            && !is_placeholder_uuid(&uuid)
        {
            return MachineId::new(uuid);
        }
        if let Some(id) = self.machine_id.as_deref().filter(|s| !s.trim().is_empty()) {
            return MachineId::new(id.trim());
        }
        match self.nics.iter().map(|n| n.mac.to_ascii_lowercase()).filter(|m| !m.is_empty()).min() {
            Some(mac) => MachineId::new(mac),
            None => Err(InvalidValue {
                what: "machine",
                value: String::new(),
                why: "the facts carry no DMI uuid, no machine-id and no MAC address to identify it by",
            }),
        }
    }

    /// Every MAC address of the machine, lower-case.
    pub fn macs(&self) -> impl Iterator<Item = String> + '_ {
        self.nics.iter().map(|n| n.mac.to_ascii_lowercase())
    }
}

/// A NIC's hardware address as facts carry it: lower-case hex pairs separated by colons — 6 (Ethernet), 8
/// (EUI-64) or 20 (InfiniBand) of them.
pub const MAC_PATTERN: &str =
    "^[0-9a-f]{2}(:[0-9a-f]{2}){5}$|^[0-9a-f]{2}(:[0-9a-f]{2}){7}$|^[0-9a-f]{2}(:[0-9a-f]{2}){19}$";

/// Whether `mac` has the form [`MAC_PATTERN`] describes.
pub fn is_hardware_address(mac: &str) -> bool {
    let pairs: Vec<&str> = mac.split(':').collect();
    matches!(pairs.len(), 6 | 8 | 20)
        && pairs.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
}

impl HardwareFacts {
    /// These facts with every string made reportable: control characters become spaces and over-long text is cut
    /// at its cap ([`crate::bounds::clean_event_json`]). What the installer sends, since sysfs and DMI strings are
    /// whatever the firmware wrote.
    pub fn cleaned(&self) -> HardwareFacts {
        let Ok(facts) = serde_json::to_value(self) else { return self.clone() };
        let mut wrapped = serde_json::json!({ "facts": facts });
        crate::bounds::clean_event_json(&mut wrapped);
        serde_json::from_value(wrapped["facts"].take()).unwrap_or_else(|_| self.clone())
    }

    /// Whether the facts are within their caps (every string and list, see [`crate::bounds`]) and every NIC's MAC
    /// is a hardware address; the error names the field.
    pub fn check(&self) -> Result<(), BoundsError> {
        let value =
            serde_json::to_value(self).map_err(|e| BoundsError { field: "facts".into(), why: e.to_string() })?;
        crate::bounds::check_facts_json(&value)?;
        for (i, nic) in self.nics.iter().enumerate() {
            if !is_hardware_address(&nic.mac) {
                return Err(BoundsError {
                    field: format!("facts.nics[{i}].mac"),
                    why: format!(
                        "`{}` is not a hardware address in lower-case, colon-separated hex pairs (such as \
                         52:54:00:12:34:56)",
                        nic.mac
                    ),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn is_placeholder_uuid(uuid: &str) -> bool {
    let digits: String = uuid.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    digits.is_empty() || digits.chars().all(|c| c == '0') || digits.chars().all(|c| c == 'f')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_key_prefers_dmi_uuid_then_machine_id_then_mac() {
        let mut f = HardwareFacts {
            machine_id: Some("0123456789abcdef0123456789abcdef".into()),
            nics: vec![
                Nic { name: "eth1".into(), mac: "52:54:00:00:00:02".into(), ..Nic::default() },
                Nic { name: "eth0".into(), mac: "52:54:00:00:00:01".into(), ..Nic::default() },
            ],
            ..HardwareFacts::default()
        };
        f.dmi.system_uuid = Some("4C4C4544-0042-3510-8052-B4C04F4E4B31".into());
        assert_eq!(f.machine_key().unwrap().as_str(), "4c4c4544-0042-3510-8052-b4c04f4e4b31");
        f.dmi.system_uuid = Some("00000000-0000-0000-0000-000000000000".into());
        assert_eq!(f.machine_key().unwrap().as_str(), "0123456789abcdef0123456789abcdef");
        f.machine_id = None;
        assert_eq!(f.machine_key().unwrap().as_str(), "52:54:00:00:00:01");
        f.nics.clear();
        assert!(f.machine_key().is_err());
    }
}
