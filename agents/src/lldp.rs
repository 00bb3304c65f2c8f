//! LLDP neighbours: which switch port each NIC is cabled to, as the switches announce it. Enrollment rules
//! match on switch ports and on the rack those switches belong to.
//!
//! The kernel does not keep LLDP frames, so neighbours come from lldpd (`lldpctl -f keyvalue`, which the netboot
//! installer image runs), or from a file holding that output (tests, and machines where lldpd runs elsewhere).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sendan_core::facts::{HardwareFacts, LldpNeighbor};

/// Where the neighbours come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Ask lldpd with `lldpctl -f keyvalue` when it is installed; none otherwise.
    Auto,
    Off,
    /// A file holding `lldpctl -f keyvalue` output.
    File(PathBuf),
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Source::Auto),
            "off" => Ok(Source::Off),
            "" => Err("expected auto, off or a file of `lldpctl -f keyvalue` output".into()),
            path => Ok(Source::File(PathBuf::from(path))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LldpError {
    #[error("cannot read LLDP neighbours from `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`lldpctl -f keyvalue` failed: {0}")]
    Lldpctl(String),
}

/// The neighbour of each interface in `lldpctl -f keyvalue` output (`lldp.eth0.chassis.name=r01-tor-a`,
/// `lldp.eth0.port.ifname=Ethernet12`). The port is the port id when it is an interface name or local id, else
/// the port description; interfaces without a chassis name are left out.
pub fn parse_keyvalue(text: &str) -> BTreeMap<String, LldpNeighbor> {
    let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let Some(rest) = key.trim().strip_prefix("lldp.") else { continue };
        // Interface names contain no dots; the rest of the key names the field.
        let Some((iface, field)) = rest.split_once('.') else { continue };
        fields.entry(iface.to_owned()).or_default().entry(field.to_owned()).or_insert_with(|| value.trim().to_owned());
    }
    fields
        .into_iter()
        .filter_map(|(iface, f)| {
            let switch = f.get("chassis.name").filter(|s| !s.is_empty())?.clone();
            let port = ["port.ifname", "port.local", "port.descr", "port.mac"]
                .iter()
                .find_map(|k| f.get(*k).filter(|s| !s.is_empty()))?
                .clone();
            Some((iface, LldpNeighbor { switch, port }))
        })
        .collect()
}

/// Read the neighbours from `source`. `Auto` asks lldpd only when the facts describe this machine (`root` is `/`).
pub fn neighbours(source: &Source, root: &Path) -> Result<BTreeMap<String, LldpNeighbor>, LldpError> {
    match source {
        Source::Off => Ok(BTreeMap::new()),
        Source::File(path) => std::fs::read_to_string(path)
            .map(|t| parse_keyvalue(&t))
            .map_err(|source| LldpError::Read { path: path.clone(), source }),
        Source::Auto if root != Path::new("/") => Ok(BTreeMap::new()),
        Source::Auto => match Command::new("lldpctl").args(["-f", "keyvalue"]).output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(LldpError::Lldpctl(e.to_string())),
            Ok(out) if out.status.success() => Ok(parse_keyvalue(&String::from_utf8_lossy(&out.stdout))),
            Ok(out) => Err(LldpError::Lldpctl(String::from_utf8_lossy(&out.stderr).trim().to_owned())),
        },
    }
}

/// Put each NIC's neighbour into the facts.
pub fn merge(facts: &mut HardwareFacts, neighbours: &BTreeMap<String, LldpNeighbor>) {
    for nic in &mut facts.nics {
        if let Some(n) = neighbours.get(&nic.name) {
            nic.lldp = Some(n.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyvalue_output_gives_each_interface_its_switch_and_port() {
        let text = "\
lldp.ens3f0np0.via=LLDP
lldp.ens3f0np0.rid=1
lldp.ens3f0np0.chassis.mac=0c:29:ef:00:00:01
lldp.ens3f0np0.chassis.name=r01-tor-a
lldp.ens3f0np0.port.ifname=Ethernet12
lldp.ens3f0np0.port.descr=server r01-u12 port 0
lldp.ens3f1np1.chassis.name=r01-tor-b
lldp.ens3f1np1.port.mac=b8:ce:f6:00:00:02
lldp.ens3f1np1.port.descr=Ethernet12
lldp.eno8303.chassis.mac=00:00:5e:00:53:01
lldp.eno8303.port.ifname=ge-0/0/7
garbage line
";
        let n = parse_keyvalue(text);
        assert_eq!(n.len(), 2, "an interface without a chassis name is left out: {n:?}");
        assert_eq!(n["ens3f0np0"], LldpNeighbor { switch: "r01-tor-a".into(), port: "Ethernet12".into() });
        assert_eq!(n["ens3f1np1"], LldpNeighbor { switch: "r01-tor-b".into(), port: "Ethernet12".into() });
    }
}
