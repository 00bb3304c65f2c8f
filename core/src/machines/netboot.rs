//! Netboot: what a machine booting over the network should boot, by the MAC it boots from, and the iPXE
//! script that says so. Unknown machines and machines whose node is to be installed boot the generic
//! installer (with the server's URL and a bootstrap token on the kernel command line); installed ones boot
//! from their local disk; a node sent to rescue boots the rescue image. The bootstrap token is stateless: an
//! HMAC of the MAC, an expiry and the MAC's place in the log, keyed with the cluster secret. Pure: the server
//! supplies the artifact locations (its configuration), the secret and the time.

use super::identity::boots_installer;
use crate::ids::{InvalidValue, MachineId, NodeId, Timestamp};
use crate::lifecycle::NodeState;
use crate::read::{FleetRead, MachineFacts};

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

/// Whether `mac` (normalized) is an address a NIC netboots from: not the broadcast address, not a multicast group
/// (the low bit of the first octet) and not all zeros.
pub fn is_unicast_mac(mac: &str) -> bool {
    if normalize_mac(mac).ok().as_deref() != Some(mac) {
        return false;
    }
    let first = u8::from_str_radix(&mac[..2], 16).unwrap_or(1);
    first & 1 == 0 && mac != "00:00:00:00:00:00"
}

/// The machine that reported NIC `mac`, or that is known by it (a machine recorded without facts, by its MAC);
/// when several are, the one seen most recently.
pub fn machine_with_mac<'a>(fleet: &'a dyn FleetRead, mac: &str) -> Option<MachineFacts<'a>> {
    fleet.machines().filter(|m| m.id.as_str() == mac || m.facts.macs().any(|x| x == mac)).max_by_key(|m| m.last_seen)
}

/// What a machine netbooting from a MAC should boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// The installer, with a bootstrap token for the MAC on its kernel command line.
    Installer {
        why: String,
        machine: Option<MachineId>,
    },
    LocalDisk {
        why: String,
    },
    Rescue {
        node: NodeId,
        why: String,
    },
}

/// What the machine with NIC `mac` (normalized) boots.
pub fn boot_for(fleet: &dyn FleetRead, mac: &str) -> Boot {
    let machine = machine_with_mac(fleet, mac);
    let node = machine.and_then(|m| m.node).and_then(|n| fleet.node(n));
    let why = match (machine, node) {
        (None, _) => format!("MAC {mac} is unknown; the installer phones home"),
        (Some(m), None) => format!("machine {} is not bound to a node; the installer phones home", m.id),
        (Some(_), Some(n)) if n.state == NodeState::Rescue => {
            return Boot::Rescue { node: n.id.clone(), why: format!("node {} is `rescue`", n.id) };
        }
        (Some(_), Some(n)) if boots_installer(n.state) => {
            format!("node {} is `{}`; the installer installs it", n.id, n.state)
        }
        (Some(_), Some(n)) => {
            return Boot::LocalDisk { why: format!("node {} is `{}`; boot from the local disk", n.id, n.state) };
        }
    };
    Boot::Installer { why, machine: machine.map(|m| m.id.clone()) }
}

/// Bootstrap tokens: stateless, derived with the cluster secret (passed in; it never enters the log).
/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Stateless bootstrap tokens expire on a whole minute, so every member asked within the same minute hands the
/// same machine the same token.
const EXPIRY_STEP_MS: i64 = 60_000;

/// When a bootstrap token handed out at `now` for `ttl_ms` expires: `now + ttl`, rounded up to a minute.
pub fn bootstrap_expiry(now: Timestamp, ttl_ms: i64) -> Timestamp {
    let t = now.0.saturating_add(ttl_ms);
    Timestamp(
        t.div_euclid(EXPIRY_STEP_MS).saturating_add(i64::from(t.rem_euclid(EXPIRY_STEP_MS) != 0)) * EXPIRY_STEP_MS,
    )
}

fn stateless_signature(cluster_secret: &str, mac_hex: &str, expires_secs: i64, epoch: u64) -> [u8; 32] {
    let mut message = b"sendan bootstrap token v2\0".to_vec();
    message.extend_from_slice(mac_hex.as_bytes());
    message.push(0);
    message.extend_from_slice(&expires_secs.to_be_bytes());
    message.extend_from_slice(&epoch.to_be_bytes());
    hmac_sha256(cluster_secret.as_bytes(), &message)
}

/// What a stateless bootstrap token was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatelessToken {
    /// The NIC, normalized.
    pub mac: String,
    pub expires: Timestamp,
    /// [`bootstrap_epoch`] of the MAC when the token was handed out.
    pub epoch: u64,
}

/// Where a MAC stands in the log for bootstrap tokens: the `last_seen` seq of the machine known by it (0 when
/// none is). A phone-home moves it, so a token handed out before a MAC's last phone-home no longer works, and the
/// next netboot gets a different one — a used token is never handed out again.
pub fn bootstrap_epoch(fleet: &dyn FleetRead, mac: &str) -> u64 {
    machine_with_mac(fleet, mac).map_or(0, |m| m.last_seen)
}

/// The bootstrap token for `t`:
/// `sendan-boot-<mac as 12 hex digits>-<expiry in Unix seconds>-<epoch>-<HMAC-SHA256 of them with the cluster
/// secret>`. Nothing is recorded when it is handed out: any member can check it, and only a phone-home with it
/// records anything (`MachinePhonedHome`, with its hash).
pub fn bootstrap_token(cluster_secret: &str, t: &StatelessToken) -> String {
    let mac_hex: String = t.mac.chars().filter(|c| *c != ':').collect();
    let secs = t.expires.0.div_euclid(1000);
    let sig = stateless_signature(cluster_secret, &mac_hex, secs, t.epoch);
    format!("sendan-boot-{mac_hex}-{secs}-{}-{}", t.epoch, hex::encode(sig))
}

/// What a stateless bootstrap token was made for, if it carries a valid signature.
pub fn verify_bootstrap_token(cluster_secret: &str, token: &str) -> Option<StatelessToken> {
    let rest = token.strip_prefix("sendan-boot-")?;
    let mut parts = rest.split('-');
    let (mac_hex, secs, epoch, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || mac_hex.len() != 12 || sig.len() != 64 {
        return None;
    }
    let mac = normalize_mac(mac_hex).ok()?;
    if mac_hex != mac.replace(':', "") {
        return None;
    }
    let (secs, epoch): (i64, u64) = (secs.parse().ok()?, epoch.parse().ok()?);
    let given: [u8; 32] = hex::decode(sig).ok()?.try_into().ok()?;
    let want = stateless_signature(cluster_secret, mac_hex, secs, epoch);
    constant_time_eq(&given, &want).then(|| StatelessToken {
        mac,
        expires: Timestamp(secs.saturating_mul(1000)),
        epoch,
    })
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn stateless_bootstrap_tokens_carry_their_mac_and_expiry_and_verify_only_with_the_secret() {
        let expires = bootstrap_expiry(Timestamp(1_790_000_000_123), 3_600_000);
        assert_eq!(expires, Timestamp(1_790_003_640_000), "rounded up to a whole minute");
        assert_eq!(bootstrap_expiry(Timestamp(1_790_000_040_000), 0), Timestamp(1_790_000_040_000));
        let boot = StatelessToken { mac: "52:54:00:3c:9a:11".into(), expires, epoch: 7 };
        let t = bootstrap_token("secret", &boot);
        assert!(t.starts_with("sendan-boot-5254003c9a11-1790003640-7-"), "{t}");
        assert_eq!(verify_bootstrap_token("secret", &t), Some(boot.clone()));
        assert_eq!(t, bootstrap_token("secret", &boot), "any member makes the same token");
        assert_ne!(
            t,
            bootstrap_token("secret", &StatelessToken { epoch: 8, ..boot }),
            "a phone-home changes the token"
        );
        assert_eq!(verify_bootstrap_token("other", &t), None);
        // Changing the MAC, the expiry or the epoch breaks the signature.
        for forged in [
            t.replace("5254003c9a11", "5254003c9a12"),
            t.replace("-1790003640-", "-1890003640-"),
            t.replace("-7-", "-0-"),
        ] {
            assert_eq!(verify_bootstrap_token("secret", &forged), None, "{forged}");
        }
        for junk in ["sendan-boot-", "sendan-boot-x-y-z", "sendan-boot-5254003C9A11-1-00", &format!("{t}-x")] {
            assert_eq!(verify_bootstrap_token("secret", junk), None, "{junk}");
        }
    }

    #[test]
    fn macs_normalize_from_every_ipxe_form_and_garbage_is_refused() {
        for s in ["52:54:00:AB:cd:01", "52-54-00-ab-CD-01", "525400abcd01"] {
            assert_eq!(normalize_mac(s).unwrap(), "52:54:00:ab:cd:01", "{s}");
        }
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0g", "5254:00ab:cd01", "52:54:00:ab:cd:01:02"] {
            assert_eq!(normalize_mac(bad).unwrap_err().what, "MAC address", "{bad}");
        }
        assert!(is_unicast_mac("52:54:00:ab:cd:01"));
        for not in
            ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "33:33:00:00:00:01", "00:00:00:00:00:00", "52:54:00:AB:cd:01"]
        {
            assert!(!is_unicast_mac(not), "{not}");
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
