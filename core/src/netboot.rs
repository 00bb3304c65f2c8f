//! Netboot: what a machine booting over the network should boot, by the MAC it boots from, and the iPXE
//! script that says so. Unknown machines and machines whose node is to be installed boot the generic
//! installer (with the server's URL and a bootstrap token on the kernel command line); installed ones boot
//! from their local disk; a node sent to rescue boots the rescue image. Pure: the server supplies the
//! artifact locations (its configuration), the token and the time.

use crate::fleet::{FleetState, MachineRecord};
use crate::ids::{EventId, Hash, InvalidValue, MachineId, NodeId, Timestamp};
use crate::lifecycle::NodeState;

/// A MAC address in the form facts use (lower-case, colon-separated), from `52:54:00:12:34:56`,
/// `52-54-00-12-34-56` or `525400123456` in any case (iPXE's `${mac}`, `${mac:hexhyp}`, `${mac:hexraw}`).
pub fn normalize_mac(s: &str) -> Result<String, InvalidValue> {
    let digits: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
    let separators = s.chars().filter(|c| *c == ':' || *c == '-').count();
    if digits.len() != 12 || !digits.chars().all(|c| c.is_ascii_hexdigit()) || !(separators == 0 || separators == 5) {
        return Err(InvalidValue {
            what: "MAC address",
            value: s.chars().take(40).collect(),
            why: "expected six hexadecimal pairs, such as 52:54:00:12:34:56",
        });
    }
    let lower = digits.to_ascii_lowercase();
    Ok((0..6).map(|i| &lower[2 * i..2 * i + 2]).collect::<Vec<_>>().join(":"))
}

/// The machine that reported NIC `mac`; when several did, the one seen most recently.
pub fn machine_with_mac<'a>(fleet: &'a FleetState, mac: &str) -> Option<&'a MachineRecord> {
    fleet.machines.values().map(AsRef::as_ref).filter(|m| m.facts.macs().any(|x| x == mac)).max_by_key(|m| m.last_seen)
}

/// An unclaimed bootstrap token is handed out again only while it has at least this long to live.
pub const REUSE_MARGIN_MS: i64 = 5 * 60 * 1000;

/// Which bootstrap token an installer boot carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenChoice {
    /// The MAC's unclaimed token, issued by the event with this id, is handed out again.
    Reuse { hash: Hash, issued_id: EventId },
    /// A new token must be issued first.
    Issue,
}

/// What a machine netbooting from a MAC should boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    Installer { why: String, machine: Option<MachineId>, token: TokenChoice },
    LocalDisk { why: String },
    Rescue { node: NodeId, why: String },
}

/// Decide what the machine with NIC `mac` (normalized) boots at `now`.
pub fn decide(fleet: &FleetState, mac: &str, now: Timestamp) -> Boot {
    let machine = machine_with_mac(fleet, mac);
    let node = machine.and_then(|m| m.node.as_ref()).and_then(|n| fleet.node(n));
    let why = match (machine, node) {
        (None, _) => format!("MAC {mac} is unknown; the installer phones home"),
        (Some(m), None) => format!("machine {} is not bound to a node; the installer phones home", m.id),
        (Some(_), Some(n)) => match n.state {
            NodeState::Rescue => {
                return Boot::Rescue { node: n.id.clone(), why: format!("node {} is `rescue`", n.id) };
            }
            NodeState::Active | NodeState::Draining | NodeState::Failed | NodeState::Retired => {
                return Boot::LocalDisk { why: format!("node {} is `{}`; boot from the local disk", n.id, n.state) };
            }
            NodeState::Discovered
            | NodeState::Commissioned
            | NodeState::InstallPending
            | NodeState::Installing
            | NodeState::Reprovisioning => format!("node {} is `{}`; the installer installs it", n.id, n.state),
        },
    };
    let token = match fleet.bootstrap.unclaimed_for(mac, now) {
        Some(t) if t.expires.0 - now.0 >= REUSE_MARGIN_MS => {
            TokenChoice::Reuse { hash: t.hash, issued_id: t.issued_id }
        }
        _ => TokenChoice::Issue,
    };
    Boot::Installer { why, machine: machine.map(|m| m.id.clone()), token }
}

/// A kernel and initrd to boot, and the kernel command line they need (such as NixOS's `init=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub kernel: String,
    pub initrd: String,
    pub cmdline: String,
}

/// One line of text safe to put in an iPXE script: no line breaks, and no `$` (iPXE would expand it).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() || c == '$' { ' ' } else { c }).collect()
}

fn header(why: &str) -> String {
    format!("#!ipxe\n# sendan: {}\n", one_line(why))
}

fn boot_image(image: &Image, args: &str) -> String {
    let cmdline = [image.cmdline.as_str(), args].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>();
    format!(
        "kernel --name kernel {} initrd=initrd {}\ninitrd --name initrd {}\nboot\n",
        one_line(&image.kernel),
        one_line(&cmdline.join(" ")),
        one_line(&image.initrd)
    )
}

fn cannot(why: &str, what: &str) -> String {
    format!(
        "{}echo sendan: {}\necho sendan: booting from the local disk instead\nsleep 10\nexit\n",
        header(why),
        one_line(what)
    )
}

/// The installer: `server` and `token` go on the kernel command line as `sendan.server=` and `sendan.token=`,
/// where `sendan-agent install` reads them.
pub fn installer_script(image: Option<&Image>, why: &str, server: &str, token: &str) -> String {
    match image {
        Some(image) => {
            header(why) + &boot_image(image, &format!("sendan.server={} sendan.token={token}", one_line(server)))
        }
        None => cannot(why, "this server has no installer image configured (installer-kernel, installer-initrd)"),
    }
}

pub fn local_disk_script(why: &str) -> String {
    header(why) + "exit\n"
}

/// The rescue image, told the server and the node it rescues (`sendan.server=`, `sendan.node=`).
pub fn rescue_script(image: Option<&Image>, why: &str, server: &str, node: &NodeId) -> String {
    match image {
        Some(image) => {
            header(why) + &boot_image(image, &format!("sendan.server={} sendan.node={node}", one_line(server)))
        }
        None => cannot(why, "this server has no rescue image configured (rescue-kernel, rescue-initrd)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_normalize_from_every_ipxe_form_and_garbage_is_refused() {
        for s in ["52:54:00:AB:cd:01", "52-54-00-ab-CD-01", "525400abcd01"] {
            assert_eq!(normalize_mac(s).unwrap(), "52:54:00:ab:cd:01", "{s}");
        }
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0g", "5254:00ab:cd01", "52:54:00:ab:cd:01:02"] {
            assert_eq!(normalize_mac(bad).unwrap_err().what, "MAC address", "{bad}");
        }
    }

    #[test]
    fn scripts_carry_the_server_and_token_and_never_expand_variables() {
        let image = Image {
            kernel: "http://boot/bzImage".into(),
            initrd: "http://boot/initrd".into(),
            cmdline: "init=/nix/store/x-init loglevel=4".into(),
        };
        let s = installer_script(Some(&image), "MAC x is unknown\n#!evil", "http://10.0.0.1:7770", "sendan-boot-ab");
        assert_eq!(
            s,
            "#!ipxe\n# sendan: MAC x is unknown #!evil\n\
             kernel --name kernel http://boot/bzImage initrd=initrd init=/nix/store/x-init loglevel=4 \
             sendan.server=http://10.0.0.1:7770 sendan.token=sendan-boot-ab\n\
             initrd --name initrd http://boot/initrd\nboot\n"
        );
        assert_eq!(local_disk_script("node n1 is `active`"), "#!ipxe\n# sendan: node n1 is `active`\nexit\n");
        let none = installer_script(None, "why", "http://s", "t");
        assert!(
            none.contains("no installer image configured")
                && none.ends_with("exit\n")
                && !none.contains("sendan.token")
        );
        assert!(
            rescue_script(Some(&image), "r", "http://s${x}", &NodeId::new("n1").unwrap())
                .contains("sendan.server=http://s {x} sendan.node=n1")
        );
    }
}
