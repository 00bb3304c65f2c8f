//! Disks from `/sys/block`, with their most specific `/dev/disk/by-id` link.
//!
//! Only devices an install plan could partition are reported. Skipped by kernel name: `loop*`, `ram*`,
//! `zram*` (memory-backed), `dm-*` and `md*` (device-mapper and software RAID built on top of real disks,
//! which are reported themselves), `sr*` and `fd*` (optical and floppy drives), `nbd*` (network block
//! devices, present with size 0 whenever the module is loaded) and `mmcblk*boot*` (the small, read-only
//! hardware boot partitions of an eMMC, whose main area is reported as `mmcblkN`). Also skipped: devices
//! whose `hidden` attribute is 1 (the per-path `nvmeXcYnZ` devices of native NVMe multipath, which the
//! `nvmeXnY` head device stands for) and devices of size 0 (a card reader or drive without a medium).

use std::collections::BTreeMap;
use std::path::Path;

use sendan_core::facts::Disk;

use super::FactsError;
use super::root::Root;

const BY_ID: &str = "/dev/disk/by-id";

/// Kernel name prefixes of block devices that are never install targets; see the module documentation.
const SKIPPED_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"];

fn skipped(name: &str) -> bool {
    SKIPPED_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
        || (name.starts_with("mmcblk") && name.contains("boot"))
}

pub(super) fn collect(root: &Root) -> Result<Vec<Disk>, FactsError> {
    let mut links = by_id_links(root)?;
    let mut disks = Vec::new();
    for name in root.entries("/sys/block")? {
        if skipped(&name) {
            continue;
        }
        let dir = format!("/sys/block/{name}");
        if flag(root, &format!("{dir}/hidden"))? {
            continue;
        }
        let size_path = format!("{dir}/size");
        let sectors = root.required(&size_path)?;
        // `size` counts 512-byte sectors whatever the device's logical block size.
        let size_bytes = sectors
            .parse::<u64>()
            .ok()
            .and_then(|sectors| sectors.checked_mul(512))
            .ok_or_else(|| root.malformed(&size_path, format!("expected a sector count, found `{sectors}`")))?;
        if size_bytes == 0 {
            continue;
        }
        disks.push(Disk {
            model: model(root, &dir)?,
            serial: serial(root, &dir)?,
            by_id: links.remove(&name).and_then(|names| best_by_id(names.iter().map(String::as_str))),
            rotational: flag(root, &format!("{dir}/queue/rotational"))?,
            removable: flag(root, &format!("{dir}/removable"))?,
            size_bytes,
            name,
        });
    }
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(disks)
}

/// A `0`/`1` attribute; absent means `0`.
fn flag(root: &Root, path: &str) -> Result<bool, FactsError> {
    match root.optional(path)?.as_deref() {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(root.malformed(path, format!("expected 0 or 1, found `{other}`"))),
    }
}

/// SCSI and ATA disks and NVMe controllers have `device/model`; MMC cards call it `device/name`.
///
/// For ATA disks this is the 16-character SCSI INQUIRY model (`ST4000NM0035-1V4`), shorter than the ATA
/// model that udev puts in the by-id name (`ST4000NM0035-1V4107`).
fn model(root: &Root, dir: &str) -> Result<Option<String>, FactsError> {
    match root.optional(&format!("{dir}/device/model"))? {
        Some(model) => Ok(Some(model)),
        None => root.optional(&format!("{dir}/device/name")),
    }
}

/// The first of: `device/serial` (NVMe controllers and subsystems, MMC cards), `serial` (virtio-blk, empty
/// when the hypervisor gives none) and the unit serial number VPD page `device/vpd_pg80` (SCSI, SAS and
/// SATA behind libata). USB sticks rarely answer VPD page 0x80 and then have no serial here.
fn serial(root: &Root, dir: &str) -> Result<Option<String>, FactsError> {
    for path in [format!("{dir}/device/serial"), format!("{dir}/serial")] {
        if let Some(serial) = root.optional(&path)? {
            return Ok(Some(serial));
        }
    }
    let path = format!("{dir}/device/vpd_pg80");
    match root.optional_bytes(&path)? {
        None => Ok(None),
        Some(page) => vpd_serial(&page).map_err(|why| root.malformed(&path, why)),
    }
}

/// The serial in a VPD page 0x80: a 4-byte header (device type, page code 0x80, 16-bit big-endian length),
/// then the serial as ASCII, padded with spaces on either side (ATA pads on the left).
fn vpd_serial(page: &[u8]) -> Result<Option<String>, String> {
    let [_, code, high, low, body @ ..] = page else {
        return Err(format!("a VPD page needs a 4-byte header, found {} bytes", page.len()));
    };
    if *code != 0x80 {
        return Err(format!("expected VPD page code 0x80, found {code:#04x}"));
    }
    let length = usize::from(u16::from_be_bytes([*high, *low])).min(body.len());
    let serial = String::from_utf8_lossy(&body[..length]);
    let serial = serial.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    Ok((!serial.is_empty()).then(|| serial.to_owned()))
}

/// For each kernel name, the names of the `/dev/disk/by-id` links that point to it.
fn by_id_links(root: &Root) -> Result<BTreeMap<String, Vec<String>>, FactsError> {
    let entries = root.entries(BY_ID)?;
    let mut links: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if entries.is_empty() {
        return Ok(links);
    }
    let dir = root.canonical(BY_ID)?;
    for entry in entries {
        let Some(target) = root.link_text(&format!("{BY_ID}/{entry}"))? else { continue };
        let target = Root::lexical_target(&dir, &target);
        if target.parent() == Some(Path::new("/dev"))
            && let Some(name) = target.file_name()
        {
            links.entry(name.to_string_lossy().into_owned()).or_default().push(entry);
        }
    }
    Ok(links)
}

/// How much a by-id link family is preferred, lowest first; `None` for families that are not derived from
/// the hardware.
///
/// 0. `<bus>-<model>_<serial>` names made by udev from what the drive reports (`nvme-`, `ata-`, `usb-`,
///    `mmc-`, `virtio-`, `ieee1394-`, `memstick-`): they stay the same across reboots, controllers and
///    reinstalls, and a person reading a disk layout can tell which drive is meant.
/// 1. `scsi-`: SCSI designators, the only stable names of SAS drives, and duplicates of `ata-` for SATA
///    drives when sg3_utils' rules are installed.
/// 2. `wwn-`: World Wide Names; unique only when the vendor bothered, and some USB bridges and cheap drives
///    repeat one.
/// 3. `nvme-eui.` and 4. `nvme-nvme.`: NVMe namespace identifiers, which budget drives leave at zero.
///
/// `dm-`, `md-`, `lvm-pv-uuid-` and other links describe what is written on a disk, not the disk, and
/// change when it is reinstalled, so they are never chosen.
fn by_id_rank(link: &str) -> Option<u8> {
    const FAMILIES: &[(&str, u8)] = &[
        ("nvme-eui.", 3),
        ("nvme-nvme.", 4),
        ("nvme-", 0),
        ("ata-", 0),
        ("usb-", 0),
        ("mmc-", 0),
        ("virtio-", 0),
        ("ieee1394-", 0),
        ("memstick-", 0),
        ("scsi-", 1),
        ("wwn-", 2),
    ];
    FAMILIES.iter().find(|(prefix, _)| link.starts_with(prefix)).map(|&(_, rank)| rank)
}

/// The most specific by-id link: best family (see [`by_id_rank`]), then the longest name, so that
/// `nvme-<model>_<serial>_1`, which names the namespace, wins over `nvme-<model>_<serial>`; then the
/// alphabetically first, so the choice never depends on directory order.
fn best_by_id<'a>(links: impl IntoIterator<Item = &'a str>) -> Option<String> {
    links
        .into_iter()
        .filter_map(|link| Some((by_id_rank(link)?, std::cmp::Reverse(link.len()), link)))
        .min()
        .map(|(_, _, link)| link.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_id_prefers_model_and_serial_names_then_scsi_then_wwn_then_eui() {
        let sata =
            ["wwn-0x5000c500a1b2c3d4", "scsi-SATA_ST4000NM0035-1V4_ZC1ABCDE", "ata-ST4000NM0035-1V4107_ZC1ABCDE"];
        assert_eq!(best_by_id(sata).as_deref(), Some("ata-ST4000NM0035-1V4107_ZC1ABCDE"));
        let sas = ["wwn-0x5000c500d00dfeed", "scsi-35000c500d00dfeed", "scsi-SSEAGATE_ST4000NM0025_ZC1SAS01"];
        assert_eq!(best_by_id(sas).as_deref(), Some("scsi-SSEAGATE_ST4000NM0025_ZC1SAS01"));
        let nvme = [
            "nvme-eui.36344830521234560025384500000001",
            "nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0R123456",
            "nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0R123456_1",
        ];
        assert_eq!(best_by_id(nvme).as_deref(), Some("nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0R123456_1"));
        assert_eq!(
            best_by_id(["nvme-nvme.144d-5336", "nvme-eui.0000000000000000"]).as_deref(),
            Some("nvme-eui.0000000000000000")
        );
        assert_eq!(best_by_id(["wwn-0x2", "wwn-0x1"]).as_deref(), Some("wwn-0x1"), "ties are broken alphabetically");
    }

    #[test]
    fn by_id_never_picks_a_link_derived_from_disk_contents() {
        assert_eq!(best_by_id(["lvm-pv-uuid-Xc3gYT-0000-0000", "dm-name-vg0-root", "md-uuid-1a2b3c4d"]), None);
        assert_eq!(best_by_id(["lvm-pv-uuid-Xc3gYT-0000-0000", "wwn-0x1"]).as_deref(), Some("wwn-0x1"));
    }

    #[test]
    fn vpd_page_serials_are_trimmed_of_padding() {
        let mut page = vec![0x00, 0x80, 0x00, 0x14];
        page.extend_from_slice(b"            ZC1ABCDE");
        assert_eq!(vpd_serial(&page).unwrap().as_deref(), Some("ZC1ABCDE"));
        assert_eq!(vpd_serial(&[0x00, 0x80, 0x00, 0x04, b' ', b' ', 0, 0]).unwrap(), None);
        // A length larger than the page is cut to what is there, as the kernel may truncate.
        assert_eq!(vpd_serial(&[0x00, 0x80, 0x00, 0xff, b'A', b'B']).unwrap().as_deref(), Some("AB"));
        assert_eq!(vpd_serial(&[0x00, 0x83, 0x00, 0x01, b'A']).unwrap_err(), "expected VPD page code 0x80, found 0x83");
        assert!(vpd_serial(&[0x00, 0x80]).is_err());
    }

    #[test]
    fn skipped_kernel_names() {
        for name in ["loop0", "ram15", "zram0", "dm-3", "md127", "sr0", "fd0", "nbd7", "mmcblk0boot1"] {
            assert!(skipped(name), "{name} should be skipped");
        }
        for name in ["sda", "sdaa", "nvme0n1", "vda", "xvda", "mmcblk0", "hda"] {
            assert!(!skipped(name), "{name} is a disk");
        }
    }
}
