//! Disk layouts: disko's device tree (`disko.devices.{disk,mdadm,lvm_vg,zpool}`), restricted to the content
//! types Sendan supports, with a `selector` on each disk instead of a device path. At install time the selectors
//! are resolved against the disks the machine reported ([`DiskLayout::resolve`]) and the layout is rendered as a
//! disko configuration with real devices ([`DiskLayout::render_disko`]).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts;

/// A named disk layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskLayout {
    #[serde(default)]
    pub description: Option<String>,
    /// The disks whose EFI system partitions the bootloader is installed to.
    pub boot_disks: Vec<String>,
    pub disko: Disko,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disko {
    pub devices: Devices,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub disk: BTreeMap<String, LayoutDisk>,
    #[serde(default)]
    pub mdadm: BTreeMap<String, Mdadm>,
    #[serde(default)]
    pub lvm_vg: BTreeMap<String, LvmVg>,
    #[serde(default)]
    pub zpool: BTreeMap<String, Zpool>,
}

macro_rules! type_tag {
    ($name:ident, $tag:literal) => {
        #[doc = concat!("The constant `type = \"", $tag, "\"` disko expects.")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            #[default]
            #[serde(rename = $tag)]
            Tag,
        }
    };
}

type_tag!(DiskTag, "disk");
type_tag!(MdadmTag, "mdadm");
type_tag!(LvmVgTag, "lvm_vg");
type_tag!(ZpoolTag, "zpool");
type_tag!(ZfsFsTag, "zfs_fs");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LayoutDisk")]
pub struct LayoutDisk {
    #[serde(default, rename = "type")]
    pub tag: DiskTag,
    #[serde(default)]
    pub selector: DiskSelector,
    pub content: DiskContent,
}

/// Which discovered disk a layout disk is: among the machine's non-removable disks that satisfy every set
/// criterion, in kernel enumeration order (shorter names first, then alphabetical: sda … sdz, sdaa;
/// nvme0n1 … nvme9n1, nvme10n1), the one at `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskSelector {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub rotational: Option<bool>,
    #[serde(default)]
    pub min_size_bytes: Option<u64>,
    #[serde(default)]
    pub max_size_bytes: Option<u64>,
    /// A substring of the disk's model.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiskContent {
    Gpt(Gpt),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpt {
    pub partitions: BTreeMap<String, Partition>,
}

/// A GPT partition; the fields are disko's (`size` such as `1G` or `100%`, `type` a GPT type code such as
/// `EF00`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default, rename = "type")]
    pub type_code: Option<String>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub content: Option<PartitionContent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PartitionContent {
    Filesystem(Filesystem),
    Swap(Swap),
    /// A member of `disko.devices.mdadm.<name>`.
    Mdraid(Mdraid),
    /// A member of `disko.devices.zpool.<pool>`.
    Zfs(Zfs),
    /// A physical volume of `disko.devices.lvm_vg.<vg>`.
    LvmPv(LvmPv),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filesystem {
    pub format: String,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub mount_options: Vec<String>,
    #[serde(default)]
    pub extra_args: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Swap {
    #[serde(default)]
    pub random_encryption: bool,
    #[serde(default)]
    pub resume_device: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mdraid {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Zfs {
    pub pool: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LvmPv {
    pub vg: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mdadm {
    #[serde(default, rename = "type")]
    pub tag: MdadmTag,
    pub level: u32,
    #[serde(default = "default_metadata")]
    pub metadata: String,
    pub content: MdadmContent,
}

fn default_metadata() -> String {
    "1.2".to_owned()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MdadmContent {
    Gpt(Gpt),
    Filesystem(Filesystem),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LvmVg {
    #[serde(default, rename = "type")]
    pub tag: LvmVgTag,
    pub lvs: BTreeMap<String, LogicalVolume>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogicalVolume {
    pub size: String,
    pub content: VolumeContent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VolumeContent {
    Filesystem(Filesystem),
    Swap(Swap),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Zpool {
    #[serde(default, rename = "type")]
    pub tag: ZpoolTag,
    /// `""` (stripe), `mirror`, `raidz`, `raidz2`, `raidz3`.
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub root_fs_options: BTreeMap<String, String>,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub datasets: BTreeMap<String, Dataset>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    #[serde(default, rename = "type")]
    pub tag: ZfsFsTag,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The kinds of device a partition can put itself into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    Mdadm,
    Zpool,
    LvmVg,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Mdadm, DeviceKind::Zpool, DeviceKind::LvmVg];

    /// How messages name the kind.
    pub fn label(self) -> &'static str {
        match self {
            DeviceKind::Mdadm => "mdadm array",
            DeviceKind::Zpool => "zpool",
            DeviceKind::LvmVg => "lvm volume group",
        }
    }

    /// The attribute under `disko.devices`.
    pub fn key(self) -> &'static str {
        match self {
            DeviceKind::Mdadm => "mdadm",
            DeviceKind::Zpool => "zpool",
            DeviceKind::LvmVg => "lvm_vg",
        }
    }
}

const ESP_TYPES: [&str; 2] = ["EF00", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"];

impl LayoutDisk {
    /// Whether the disk has an EFI system partition.
    pub fn has_esp(&self) -> bool {
        let DiskContent::Gpt(gpt) = &self.content;
        gpt.partitions
            .values()
            .any(|p| p.type_code.as_deref().is_some_and(|t| ESP_TYPES.iter().any(|e| e.eq_ignore_ascii_case(t))))
    }
}

fn gpt_refs(gpt: &Gpt) -> impl Iterator<Item = (DeviceKind, &str)> {
    gpt.partitions.values().filter_map(|p| match p.content.as_ref()? {
        PartitionContent::Mdraid(m) => Some((DeviceKind::Mdadm, m.name.as_str())),
        PartitionContent::Zfs(z) => Some((DeviceKind::Zpool, z.pool.as_str())),
        PartitionContent::LvmPv(l) => Some((DeviceKind::LvmVg, l.vg.as_str())),
        PartitionContent::Filesystem(_) | PartitionContent::Swap(_) => None,
    })
}

impl Devices {
    /// Every reference from a partition to an mdadm array, zpool or volume group, without repeats.
    pub fn references(&self) -> BTreeSet<(DeviceKind, &str)> {
        let from_disks = self.disk.values().flat_map(|d| {
            let DiskContent::Gpt(gpt) = &d.content;
            gpt_refs(gpt)
        });
        let from_arrays = self.mdadm.values().flat_map(|m| match &m.content {
            MdadmContent::Gpt(gpt) => gpt_refs(gpt).collect::<Vec<_>>(),
            MdadmContent::Filesystem(_) => Vec::new(),
        });
        from_disks.chain(from_arrays).collect()
    }

    pub fn declares(&self, kind: DeviceKind, name: &str) -> bool {
        match kind {
            DeviceKind::Mdadm => self.mdadm.contains_key(name),
            DeviceKind::Zpool => self.zpool.contains_key(name),
            DeviceKind::LvmVg => self.lvm_vg.contains_key(name),
        }
    }

    pub fn declared(&self, kind: DeviceKind) -> Vec<&str> {
        match kind {
            DeviceKind::Mdadm => self.mdadm.keys().map(String::as_str).collect(),
            DeviceKind::Zpool => self.zpool.keys().map(String::as_str).collect(),
            DeviceKind::LvmVg => self.lvm_vg.keys().map(String::as_str).collect(),
        }
    }
}

impl DiskSelector {
    pub fn accepts(&self, disk: &facts::Disk) -> bool {
        !disk.removable
            && self.rotational.is_none_or(|r| disk.rotational == r)
            && self.min_size_bytes.is_none_or(|min| disk.size_bytes >= min)
            && self.max_size_bytes.is_none_or(|max| disk.size_bytes <= max)
            && self.model.as_deref().is_none_or(|m| disk.model.as_deref().is_some_and(|dm| dm.contains(m)))
    }
}

/// A layout disk resolved to a discovered one. Sendan's own type (not part of a Nix document), so `snake_case`
/// like every field the API defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolvedDisk {
    /// The kernel name, such as `nvme0n1`.
    pub name: String,
    /// The path disko writes to: the disk's `/dev/disk/by-id/…` link when it has one, else `/dev/<name>`.
    pub device: String,
    pub size_bytes: u64,
}

impl DiskLayout {
    /// Resolve every layout disk's selector against the machine's disks. Refuses, before anything destructive,
    /// when a selector finds no disk or two layout disks resolve to the same one; the error lists every problem.
    pub fn resolve(&self, discovered: &[facts::Disk]) -> Result<BTreeMap<String, ResolvedDisk>, Vec<String>> {
        let mut disks: Vec<&facts::Disk> = discovered.iter().filter(|d| !d.removable).collect();
        disks.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
        let mut problems = Vec::new();
        let mut resolved = BTreeMap::new();
        let mut taken: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, disk) in &self.disko.devices.disk {
            let candidates: Vec<&&facts::Disk> = disks.iter().filter(|d| disk.selector.accepts(d)).collect();
            let Some(found) = candidates.get(disk.selector.index as usize) else {
                problems.push(format!(
                    "disk '{name}' needs the disk at index {} among those matching its selector, but {} match",
                    disk.selector.index,
                    candidates.len()
                ));
                continue;
            };
            if let Some(other) = taken.insert(found.name.as_str(), name.as_str()) {
                problems.push(format!("disks '{other}' and '{name}' both resolve to {}", found.name));
                continue;
            }
            // Facts carry the by-id link's name (`ata-…`); disko needs the path.
            let device = match &found.by_id {
                Some(link) if link.starts_with('/') => link.clone(),
                Some(link) => format!("/dev/disk/by-id/{link}"),
                None => format!("/dev/{}", found.name),
            };
            resolved
                .insert(name.clone(), ResolvedDisk { name: found.name.clone(), device, size_bytes: found.size_bytes });
        }
        if problems.is_empty() { Ok(resolved) } else { Err(problems) }
    }

    /// The layout as a disko configuration (`{ "disko": { "devices": … } }`) with each disk's `device` set to
    /// what it resolved to; selectors and unset (null) options are left out, since disko has no null options.
    /// A layout disk `resolved` lacks keeps no `device` (pass the result of [`DiskLayout::resolve`], which
    /// resolves every one or fails).
    pub fn render_disko(&self, resolved: &BTreeMap<String, ResolvedDisk>) -> serde_json::Value {
        let mut devices = serde_json::to_value(&self.disko.devices).unwrap_or(serde_json::Value::Null);
        if let Some(disks) = devices.get_mut("disk").and_then(|d| d.as_object_mut()) {
            for (name, disk) in disks.iter_mut() {
                let Some(disk) = disk.as_object_mut() else { continue };
                disk.remove("selector");
                if let Some(r) = resolved.get(name) {
                    disk.insert("device".to_owned(), r.device.clone().into());
                }
            }
        }
        strip_nulls(&mut devices);
        serde_json::json!({ "disko": { "devices": devices } })
    }
}

fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn found(name: &str, size_gb: u64, rotational: bool, by_id: Option<&str>) -> facts::Disk {
        facts::Disk {
            name: name.into(),
            size_bytes: size_gb * GB,
            rotational,
            by_id: by_id.map(str::to_owned),
            model: Some(if rotational { "ST16000NM001G" } else { "SAMSUNG MZQL2960HCJR" }.into()),
            ..facts::Disk::default()
        }
    }

    fn storage_layout() -> DiskLayout {
        let json = serde_json::json!({
            "bootDisks": ["system"],
            "disko": { "devices": {
                "disk": {
                    "system": { "selector": { "rotational": false, "minSizeBytes": 400 * GB },
                                "content": { "type": "gpt", "partitions": {
                                    "ESP": { "size": "1G", "type": "EF00",
                                             "content": { "type": "filesystem", "format": "vfat", "mountpoint": "/boot" } },
                                    "root": { "size": "100%", "content": { "type": "filesystem", "format": "ext4", "mountpoint": "/" } } } } },
                    "data1": { "selector": { "index": 0, "rotational": true },
                               "content": { "type": "gpt", "partitions": { "zfs": { "size": "100%", "content": { "type": "zfs", "pool": "tank" } } } } },
                    "data2": { "selector": { "index": 1, "rotational": true },
                               "content": { "type": "gpt", "partitions": { "zfs": { "size": "100%", "content": { "type": "zfs", "pool": "tank" } } } } }
                },
                "zpool": { "tank": { "mode": "mirror" } }
            } }
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn given_matching_disks_then_selectors_resolve_in_kernel_order() {
        let disks = [
            found("sdb", 16_000, true, Some("/dev/disk/by-id/ata-ST16000NM001G_ZL2B")),
            found("sdaa", 16_000, true, None),
            found("nvme0n1", 960, false, Some("/dev/disk/by-id/nvme-SAMSUNG_MZQL2960HCJR_S64F")),
            found("sda", 16_000, true, Some("/dev/disk/by-id/ata-ST16000NM001G_ZL2A")),
            facts::Disk { removable: true, ..found("sdc", 16_000, true, None) },
        ];
        let resolved = storage_layout().resolve(&disks).unwrap();
        let devices: Vec<(&str, &str)> = resolved.iter().map(|(k, v)| (k.as_str(), v.name.as_str())).collect();
        assert_eq!(devices, [("data1", "sda"), ("data2", "sdb"), ("system", "nvme0n1")]);
        assert_eq!(resolved["data1"].device, "/dev/disk/by-id/ata-ST16000NM001G_ZL2A");
        // Facts name the by-id link as `sendan-agent facts` reports it, without its directory.
        let mut named = disks.clone();
        named[3].by_id = Some("ata-ST16000NM001G_ZL2A".into());
        assert_eq!(storage_layout().resolve(&named).unwrap()["data1"].device, "/dev/disk/by-id/ata-ST16000NM001G_ZL2A");
    }

    #[test]
    fn given_too_few_disks_then_resolution_refuses_and_says_why() {
        let disks = [found("nvme0n1", 960, false, None), found("sda", 16_000, true, None)];
        assert_eq!(
            storage_layout().resolve(&disks).unwrap_err(),
            vec!["disk 'data2' needs the disk at index 1 among those matching its selector, but 1 match"]
        );
    }

    #[test]
    fn given_two_selectors_that_find_the_same_disk_then_resolution_refuses() {
        let mut layout = storage_layout();
        layout.disko.devices.disk.get_mut("data2").unwrap().selector =
            DiskSelector { model: Some("ST16000".into()), ..DiskSelector::default() };
        let disks =
            [found("nvme0n1", 960, false, None), found("sda", 16_000, true, None), found("sdb", 16_000, true, None)];
        assert_eq!(layout.resolve(&disks).unwrap_err(), vec!["disks 'data1' and 'data2' both resolve to sda"]);
    }

    #[test]
    fn given_a_resolved_layout_then_disko_gets_devices_and_no_nulls_or_selectors() {
        let layout = storage_layout();
        let disks =
            [found("nvme0n1", 960, false, None), found("sda", 16_000, true, None), found("sdb", 16_000, true, None)];
        let rendered = layout.render_disko(&layout.resolve(&disks).unwrap());
        let system = &rendered["disko"]["devices"]["disk"]["system"];
        assert_eq!(system["device"], "/dev/nvme0n1");
        assert_eq!(system["type"], "disk");
        assert!(system.get("selector").is_none());
        assert_eq!(
            system["content"]["partitions"]["ESP"],
            serde_json::json!({
                "size": "1G", "type": "EF00",
                "content": { "type": "filesystem", "format": "vfat", "mountpoint": "/boot", "mountOptions": [], "extraArgs": [] }
            })
        );
        assert_eq!(rendered["disko"]["devices"]["zpool"]["tank"]["type"], "zpool");
        assert!(!rendered.to_string().contains("null"), "{rendered}");
    }

    #[test]
    fn given_a_layout_then_its_references_and_boot_partitions_are_known() {
        let layout = storage_layout();
        let refs: Vec<_> = layout.disko.devices.references().into_iter().collect();
        assert_eq!(refs, [(DeviceKind::Zpool, "tank")]);
        assert!(layout.disko.devices.disk["system"].has_esp());
        assert!(!layout.disko.devices.disk["data1"].has_esp());
    }

    #[test]
    fn given_an_unsupported_content_type_then_parsing_refuses_it() {
        let mut json = serde_json::to_value(storage_layout()).unwrap();
        json["disko"]["devices"]["disk"]["data1"]["content"]["partitions"]["zfs"]["content"] =
            serde_json::json!({ "type": "luks", "name": "crypted" });
        let err = serde_json::from_value::<DiskLayout>(json).unwrap_err().to_string();
        assert!(err.contains("unknown variant `luks`"), "{err}");
        let mut json = serde_json::to_value(storage_layout()).unwrap();
        json["disko"]["devices"]["disk"]["data1"]["content"]["partitions"]["zfs"]["content"]["compression"] =
            "lz4".into();
        let err = serde_json::from_value::<DiskLayout>(json).unwrap_err().to_string();
        assert!(err.contains("unknown field `compression`"), "{err}");
    }
}
