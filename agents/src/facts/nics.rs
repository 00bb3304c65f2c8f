//! Network interfaces from `/sys/class/net`.
//!
//! Only interfaces backed by a device are reported: they are the ones with a `device` link (to a PCI, USB,
//! SDIO, virtio or platform device). `lo` and software interfaces — bridges, bonds, VLANs, veth pairs,
//! tun/tap, `docker0`, WireGuard — have none; they are configuration, which the install plan creates, not
//! hardware it can bind to.

use sendan_core::facts::Nic;

use super::FactsError;
use super::root::Root;

pub(super) fn collect(root: &Root) -> Result<Vec<Nic>, FactsError> {
    let mut nics = Vec::new();
    for name in root.entries("/sys/class/net")? {
        let dir = format!("/sys/class/net/{name}");
        if name == "lo" || !root.exists(&format!("{dir}/device"))? {
            continue;
        }
        nics.push(Nic {
            mac: root.required(&format!("{dir}/address"))?.to_ascii_lowercase(),
            driver: root
                .link_text(&format!("{dir}/device/driver"))?
                .and_then(|target| Some(target.file_name()?.to_string_lossy().into_owned())),
            speed_mbps: speed(root, &format!("{dir}/speed"))?,
            link: link(root, &dir)?,
            // The kernel does not know the far end of the cable; `sendan_agents::lldp` fills this in.
            lldp: None,
            name,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nics)
}

/// Negotiated speed in Mb/s; the kernel prints -1 (`SPEED_UNKNOWN`) or refuses the read when it is unknown,
/// as for a link that is down, and virtio-net reports -1 unless the hypervisor sets a speed.
fn speed(root: &Root, path: &str) -> Result<Option<u32>, FactsError> {
    let Some(text) = root.optional(path)? else { return Ok(None) };
    let speed: i64 = text.parse().map_err(|_| root.malformed(path, format!("expected Mb/s, found `{text}`")))?;
    Ok(u32::try_from(speed).ok().filter(|&speed| speed > 0))
}

/// `carrier` says whether the cable has a link; the kernel refuses to read it while the interface is
/// administratively down, and then `operstate` is asked, which is `up` only with a link.
fn link(root: &Root, dir: &str) -> Result<bool, FactsError> {
    let carrier = format!("{dir}/carrier");
    match root.optional(&carrier)?.as_deref() {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(other) => Err(root.malformed(&carrier, format!("expected 0 or 1, found `{other}`"))),
        None => Ok(root.optional(&format!("{dir}/operstate"))?.as_deref() == Some("up")),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn link_falls_back_to_operstate_only_when_carrier_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let net = dir.path().join("sys/class/net");
        for (name, carrier, operstate) in
            [("up", None, "up"), ("down", None, "down"), ("carrier0", Some("0"), "up"), ("carrier1", Some("1"), "x")]
        {
            fs::create_dir_all(net.join(name)).unwrap();
            fs::write(net.join(name).join("operstate"), format!("{operstate}\n")).unwrap();
            if let Some(carrier) = carrier {
                fs::write(net.join(name).join("carrier"), format!("{carrier}\n")).unwrap();
            }
        }
        let link = |name: &str| link(&root, &format!("/sys/class/net/{name}")).unwrap();
        assert!(link("up"));
        assert!(!link("down"));
        assert!(!link("carrier0"), "carrier wins over operstate");
        assert!(link("carrier1"));
        assert!(!link("absent"));
    }

    #[test]
    fn unknown_speeds_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        for (file, text) in [("unknown", "-1\n"), ("fast", "25000\n"), ("zero", "0\n"), ("bad", "fast\n")] {
            fs::write(dir.path().join(file), text).unwrap();
        }
        assert_eq!(speed(&root, "/unknown").unwrap(), None);
        assert_eq!(speed(&root, "/zero").unwrap(), None);
        assert_eq!(speed(&root, "/absent").unwrap(), None);
        assert_eq!(speed(&root, "/fast").unwrap(), Some(25000));
        assert!(matches!(speed(&root, "/bad"), Err(FactsError::Malformed { .. })));
    }
}
