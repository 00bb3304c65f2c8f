//! Hardware facts collected from sysfs fixture trees (`tests/fixtures/<name>/`) and from this machine.

use std::fs;
use std::path::{Path, PathBuf};

use sendan_agents::facts::{FactsError, collect};
use sendan_core::facts::{Cpu, Disk, Dmi, HardwareFacts, Nic};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Collects the facts of fixture `name`, checks them against `expected` and returns the machine key.
fn check(name: &str, expected: HardwareFacts) -> String {
    let facts = collect(&fixture(name)).unwrap_or_else(|error| panic!("collecting fixture {name}: {error}"));
    assert_eq!(facts, expected, "fixture {name}");
    facts.machine_key().unwrap_or_else(|error| panic!("fixture {name} has no machine key: {error}")).to_string()
}

fn disk(name: &str, size_bytes: u64, model: Option<&str>, serial: Option<&str>, by_id: Option<&str>) -> Disk {
    Disk {
        name: name.into(),
        size_bytes,
        model: model.map(Into::into),
        serial: serial.map(Into::into),
        by_id: by_id.map(Into::into),
        rotational: false,
        removable: false,
    }
}

fn nic(name: &str, mac: &str, driver: &str, speed_mbps: Option<u32>, link: bool) -> Nic {
    Nic { name: name.into(), mac: mac.into(), driver: Some(driver.into()), speed_mbps, link, lldp: None }
}

#[test]
fn rack_server_with_two_sockets_nvme_sata_and_25g() {
    // Given a Dell PowerEdge R650: 2 × Xeon Silver 4309Y (8 cores, HT, sparse core ids), 256 GiB, two PM9A3
    // NVMe drives behind native multipath (hidden nvmeXcYnZ path devices), four Exos SATA disks (one holding
    // an LVM physical volume), iDRAC virtual media with nothing attached, ConnectX-4 Lx 25G ports and a 1G LOM.
    let sata = |name: &str, serial: &str| Disk {
        rotational: true,
        ..disk(
            name,
            7_814_037_168 * 512,
            Some("ST4000NM0035-1V4"),
            Some(serial),
            Some(&format!("ata-ST4000NM0035-1V4107_{serial}")),
        )
    };
    let nvme = |name: &str, serial: &str| {
        disk(
            name,
            7_501_476_528 * 512,
            Some("SAMSUNG MZQL23T8HCLS-00A07"),
            Some(serial),
            Some(&format!("nvme-SAMSUNG_MZQL23T8HCLS-00A07_{serial}_1")),
        )
    };
    // Then.
    let key = check(
        "rack-server",
        HardwareFacts {
            machine_id: Some("a1e4c0f3b2d94e6f8a7b1c2d3e4f5a6b".into()),
            dmi: Dmi {
                system_uuid: Some("4c4c4544-0058-4b10-8032-b7c04f514b33".into()),
                serial: Some("7XK2QK3".into()),
                vendor: Some("Dell Inc.".into()),
                product: Some("PowerEdge R650".into()),
            },
            cpu: Cpu {
                model: "Intel(R) Xeon(R) Silver 4309Y CPU @ 2.80GHz".into(),
                sockets: 2,
                cores: 16,
                threads: 32,
                virtualization: vec!["vmx".into()],
            },
            memory_bytes: 263_518_612 * 1024,
            disks: vec![
                nvme("nvme0n1", "S64HNE0R123456"),
                nvme("nvme1n1", "S64HNE0R123457"),
                sata("sda", "ZC1ABCDE"),
                sata("sdb", "ZC1ABCDF"),
                sata("sdc", "ZC1ABCDG"),
                sata("sdd", "ZC1ABCDH"),
            ],
            nics: vec![
                nic("eno8303", "c8:4b:d6:7e:21:0a", "tg3", Some(1000), true),
                nic("ens3f0np0", "b8:ce:f6:5a:1c:40", "mlx5_core", Some(25000), true),
                nic("ens3f1np1", "b8:ce:f6:5a:1c:41", "mlx5_core", Some(25000), true),
            ],
        },
    );
    assert_eq!(key, "4c4c4544-0058-4b10-8032-b7c04f514b33", "a real DMI uuid identifies the machine");
}

#[test]
fn qemu_vm_with_virtio_disks_and_nic() {
    // Given a q35 QEMU/KVM guest with 4 vCPUs (no nested VT-x), 8 GiB, a virtio disk with a serial and one
    // without, a CD-ROM, and a virtio NIC whose speed the hypervisor does not report.
    let virtio = |name: &str, size: u64, serial: Option<&str>, by_id: Option<&str>| Disk {
        rotational: true,
        ..disk(name, size, None, serial, by_id)
    };
    // Then.
    let key = check(
        "qemu-vm",
        HardwareFacts {
            machine_id: Some("9b7e2c4d1f3a4b5c8d6e7f8091a2b3c4".into()),
            dmi: Dmi {
                system_uuid: Some("5f0c2b7e-3a41-4d8e-9b6a-1c2d3e4f5a6b".into()),
                serial: None,
                vendor: Some("QEMU".into()),
                product: Some("Standard PC (Q35 + ICH9, 2009)".into()),
            },
            cpu: Cpu {
                model: "Intel Xeon Processor (Icelake)".into(),
                sockets: 1,
                cores: 4,
                threads: 4,
                virtualization: vec![],
            },
            memory_bytes: 8_131_140 * 1024,
            disks: vec![
                virtio("vda", 40 << 30, Some("vm-7f3a-os"), Some("virtio-vm-7f3a-os")),
                virtio("vdb", 100 << 30, None, None),
            ],
            nics: vec![nic("enp1s0", "52:54:00:3c:9a:11", "virtio_net", None, true)],
        },
    );
    assert_eq!(key, "5f0c2b7e-3a41-4d8e-9b6a-1c2d3e4f5a6b");
}

#[test]
fn mini_pc_without_dmi_serials_with_usb_stick_and_unplugged_nic() {
    // Given a fanless N100 box whose DMI uuid and serial are unreadable, booted from a USB stick, with one
    // NIC cabled, one unplugged, Wi-Fi administratively down, and docker, veth and tailscale interfaces.
    // Then.
    let key = check(
        "mini-pc",
        HardwareFacts {
            machine_id: Some("e2f4a6b8c0d24e6f8a0b2c4d6e8f0a1b".into()),
            dmi: Dmi { system_uuid: None, serial: None, vendor: Some("AZW".into()), product: Some("MINI S".into()) },
            cpu: Cpu {
                model: "Intel(R) N100".into(),
                sockets: 1,
                cores: 4,
                threads: 4,
                virtualization: vec!["vmx".into()],
            },
            memory_bytes: 16_111_788 * 1024,
            disks: vec![
                disk(
                    "nvme0n1",
                    1_000_215_216 * 512,
                    Some("SAMSUNG MZVL2512HCJQ-00B00"),
                    Some("S675NX0T123456"),
                    Some("nvme-SAMSUNG_MZVL2512HCJQ-00B00_S675NX0T123456"),
                ),
                Disk {
                    rotational: true,
                    removable: true,
                    ..disk(
                        "sda",
                        60_063_744 * 512,
                        Some("Ultra Fit"),
                        None,
                        Some("usb-SanDisk_Ultra_Fit_4C530001240122115172-0:0"),
                    )
                },
            ],
            nics: vec![
                nic("enp2s0", "7c:83:34:b9:0a:11", "r8169", Some(1000), true),
                nic("enp3s0", "7c:83:34:b9:0a:12", "r8169", None, false),
                nic("wlo1", "3c:e9:f7:12:34:56", "iwlwifi", None, false),
            ],
        },
    );
    assert_eq!(key, "e2f4a6b8c0d24e6f8a0b2c4d6e8f0a1b", "without a DMI uuid the machine-id identifies it");
}

#[test]
fn arm_board_without_dmi_topology_or_machine_id() {
    // Given a Raspberry Pi CM4: arm64 cpuinfo with no model name and no physical id (sysfs has the topology),
    // no DMI at all, an eMMC with its boot partitions, RAM disks, and a first boot that has not committed a
    // machine-id yet.
    // Then.
    let key = check(
        "arm-board",
        HardwareFacts {
            machine_id: None,
            dmi: Dmi::default(),
            cpu: Cpu { model: "ARM Cortex-A72".into(), sockets: 1, cores: 4, threads: 4, virtualization: vec![] },
            memory_bytes: 3_884_132 * 1024,
            disks: vec![disk(
                "mmcblk0",
                61_071_360 * 512,
                Some("DG4032"),
                Some("0x5a3b2c1d"),
                Some("mmc-DG4032_0x5a3b2c1d"),
            )],
            nics: vec![
                nic("eth0", "dc:a6:32:4f:8e:01", "bcmgenet", Some(1000), true),
                nic("wlan0", "dc:a6:32:4f:8e:02", "brcmfmac", None, false),
            ],
        },
    );
    assert_eq!(key, "dc:a6:32:4f:8e:01", "with neither DMI uuid nor machine-id the lowest MAC identifies it");
}

#[test]
fn malformed_meminfo_is_an_error_naming_the_file() {
    // Given a tree whose cpuinfo is fine but whose meminfo has lost its MemTotal line.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("proc")).unwrap();
    fs::copy(fixture("qemu-vm").join("proc/cpuinfo"), dir.path().join("proc/cpuinfo")).unwrap();
    fs::write(dir.path().join("proc/meminfo"), "MemFree:         8131140 kB\n").unwrap();
    // Then.
    let meminfo = dir.path().join("proc/meminfo");
    let error = collect(dir.path()).unwrap_err();
    assert!(matches!(&error, FactsError::Malformed { path, .. } if path == &meminfo), "{error:?}");
    assert_eq!(error.to_string(), format!("`{}` is malformed: it has no `MemTotal` line", meminfo.display()));
}

/// Sanity of the facts of the machine running the tests. What it has varies (a CI container, a VM, a
/// workstation), so only what every Linux machine must report is required.
#[test]
fn this_machine() {
    let facts = collect(Path::new("/")).expect("collecting this machine's facts");
    eprintln!("{}", serde_json::to_string_pretty(&facts).unwrap());
    let cpu = &facts.cpu;
    assert!(cpu.threads >= 1, "{cpu:?}");
    assert!(1 <= cpu.sockets && cpu.sockets <= cpu.cores && cpu.cores <= cpu.threads, "{cpu:?}");
    assert!(facts.memory_bytes > 0);
    for disk in &facts.disks {
        assert!(disk.size_bytes > 0, "{disk:?}");
        assert!(Path::new("/sys/block").join(&disk.name).exists(), "{disk:?}");
    }
    for nic in &facts.nics {
        assert_ne!(nic.name, "lo");
        assert!(Path::new("/sys/class/net").join(&nic.name).join("device").exists(), "{nic:?} is virtual");
    }
    assert!(
        !facts.disks.is_empty() || !facts.nics.is_empty(),
        "found neither a disk nor a NIC; a container may hide its host's disks (no /sys/block entries) or give \
         itself only veth interfaces, but a machine that shows neither cannot be installed to: {facts:#?}"
    );
    assert!(facts.machine_key().is_ok(), "no DMI uuid, machine-id or MAC to identify this machine: {facts:#?}");
}
