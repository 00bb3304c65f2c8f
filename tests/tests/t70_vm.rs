//! Bare metal as far as this machine allows: QEMU machines (TCG) whose firmware is Debian's iPXE ROM netboot
//! from a real `sendan server` on the host's loopback — the netboot script, then the installer kernel and initrd
//! the member serves from its `--boot-dir` — boot a Debian kernel into the VM test image, and run the real
//! `sendan-agent install`, which reads its facts from the machine's own `/sys` and `/proc`. Every NIC is QEMU
//! user networking with `restrict=on`; the guest reaches the member only through a `guestfwd` to 127.0.0.1.
//! Skipped, with the reason printed, only where QEMU is missing (`cargo xtask setup` installs it, so CI never
//! skips).

use std::time::Duration;

use sendan_core::{EventKind, Payload};
use sendan_tests::bmc::{FakeSystem, Redfish};
use sendan_tests::bootstrap::sendan_ok;
use sendan_tests::procs::ProcCluster;
use sendan_tests::vm::{DiskSpec, SERVER_IN_GUEST, Vm, VmSpec};
use sendan_tests::wait_until;

const GIB: u64 = 1 << 30;
/// A TCG boot takes ~10 s here; the installer's dry run a little more. Generous for a loaded CI machine.
const BOOT: Duration = Duration::from_secs(300);

fn lab_1() -> VmSpec {
    VmSpec {
        name: "lab-1",
        serial: "SENDAN-VM-1",
        uuid: "6a1f0d2c-8b3e-4c5d-9e7f-0a1b2c3d4e51",
        vendor: "Sendan Lab",
        product: "QEMU netboot VM",
        cpus: 2,
        memory_mib: 768,
        disks: vec![DiskSpec { serial: "SENDAN-D0", size: 10 * GIB }, DiskSpec { serial: "SENDAN-D1", size: 2 * GIB }],
        macs: vec!["52:54:00:5e:00:01", "52:54:00:5e:00:02"],
    }
}

fn lab_2() -> VmSpec {
    VmSpec {
        name: "lab-2",
        serial: "SENDAN-VM-2",
        uuid: "6a1f0d2c-8b3e-4c5d-9e7f-0a1b2c3d4e52",
        vendor: "Sendan Lab",
        product: "QEMU netboot VM",
        cpus: 1,
        memory_mib: 512,
        disks: vec![DiskSpec { serial: "SENDAN-S0", size: GIB }, DiskSpec { serial: "SENDAN-S1", size: GIB }],
        macs: vec!["52:54:00:5e:00:11", "52:54:00:5e:00:12"],
    }
}

/// Properties: (a) a VM with two disks and two NICs netboots through the real iPXE ROM into the installer the
/// member serves from its boot directory, phones home with facts that are exactly its QEMU command line (disk
/// sizes, serials, by-id links, MACs, SMBIOS serial, uuid, vendor and product, CPU count; memory within what the
/// kernel keeps for itself), is enrolled by its SMBIOS serial to node lab-1, gets a plan whose disks are its own
/// `/dev/disk/by-id/virtio-<serial>`, and rehearses the install, listing the disko and nixos-install commands it
/// would run; (b) a VM whose disks are too small for its node's layout is refused before anything is written, the
/// refusal naming the disk; (c) once an operator puts lab-1 into `rescue`, the same machine's next netboot boots
/// the rescue image the member serves — its command line names the node and carries no bootstrap token — and
/// the disks are left alone; (d) with a Redfish BMC declared for lab-1 (`sushy-emulator --fake`, whose change
/// notifications power the QEMU machine on, as a real BMC would), `sendan node reprovision lab-1` sets a one-time
/// network boot and reboots the machine through the BMC, and the machine netboots the installer again, phones
/// home as the same machine and keeps its node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_netboots_through_ipxe_phones_home_and_rehearses_its_install() {
    if let Some(why) = sendan_tests::vm::unavailable() {
        eprintln!("skipping the VM tests: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let boot = tokio::task::block_in_place(|| sendan_tests::vm::boot_dir(dir.path()));
    let boot = boot.display().to_string();
    let public = format!("http://{SERVER_IN_GUEST}");
    let flags = [
        "--boot-dir",
        boot.as_str(),
        "--installer-kernel",
        "installer/vmlinuz",
        "--installer-initrd",
        "installer/initrd.img",
        "--installer-cmdline",
        "console=ttyS0 panic=-1 sendan.mode=dry-run",
        "--rescue-kernel",
        "rescue/vmlinuz",
        "--rescue-initrd",
        "rescue/initrd.img",
        "--rescue-cmdline",
        "console=ttyS0 panic=-1",
        "--public-url",
        public.as_str(),
        // Every VM reaches the member from 127.0.0.1 (the guestfwd): no per-address limit.
        "--bootstrap-rate-limit",
        "0",
    ];
    let c = ProcCluster::start(1, &flags).await;
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["apply", "tests/fixtures/vm/cluster.nix"]));
    assert!(out.contains("Applied spec"), "{out}");
    let port: u16 = c.addrs[&1].rsplit(':').next().unwrap().parse().unwrap();

    let mut one = Vm::netboot(dir.path(), lab_1(), port);
    let mut two = Vm::netboot(dir.path(), lab_2(), port);
    let console = tokio::task::block_in_place(|| one.powered_off(BOOT));
    let admin = c.client(1);

    // (a) The kernel was booted by iPXE with the script's command line: the member's URL and a bootstrap token.
    let cmdline = console.lines().find(|l| l.contains("Command line:")).unwrap_or_default().to_owned();
    assert!(
        cmdline.contains(&format!("sendan.server={public}")) && cmdline.contains("sendan.token=sendan-boot-525400"),
        "the kernel's command line comes from the netboot script: {cmdline}\n{console}"
    );
    assert!(console.contains("rehearsed the install of node lab-1"), "{console}");
    assert!(console.contains("sendan-agent install exited 0"), "{console}");
    let commands = console.split("--- commands.sh ---").nth(1).unwrap_or_default();
    assert!(commands.contains("disko") && commands.contains("nixos-install --root"), "{console}");

    let events = sendan_tests::all_events(&admin).await;
    let phoned = events.iter().find_map(|e| match &e.payload {
        Payload::MachinePhonedHome(p) if p.facts.dmi.serial.as_deref() == Some("SENDAN-VM-1") => Some(p.clone()),
        _ => None,
    });
    let phoned = phoned.expect("lab-1 phoned home");
    assert_eq!(phoned.mac, "52:54:00:5e:00:01", "it netbooted from its first NIC");
    let f = &phoned.facts;
    let spec = lab_1();
    assert_eq!(f.dmi.system_uuid.as_deref(), Some(spec.uuid));
    assert_eq!((f.dmi.vendor.as_deref(), f.dmi.product.as_deref()), (Some(spec.vendor), Some(spec.product)));
    assert_eq!(f.cpu.threads, spec.cpus);
    let ram = spec.memory_mib << 20;
    assert!(f.memory_bytes <= ram && f.memory_bytes > ram * 3 / 4, "{} of {ram} bytes", f.memory_bytes);
    let disks: Vec<(String, u64, Option<String>, Option<String>)> =
        f.disks.iter().map(|d| (d.name.clone(), d.size_bytes, d.serial.clone(), d.by_id.clone())).collect();
    let want: Vec<(String, u64, Option<String>, Option<String>)> = spec
        .disks
        .iter()
        .zip(["vda", "vdb"])
        .map(|(d, name)| {
            // The name of its `/dev/disk/by-id` link.
            let by_id = format!("virtio-{}", d.serial);
            (name.to_owned(), d.size, Some(d.serial.to_owned()), Some(by_id))
        })
        .collect();
    assert_eq!(disks, want, "the disks are the QEMU command line's");
    let macs: Vec<&str> = f.nics.iter().map(|n| n.mac.as_str()).collect();
    assert_eq!(macs, spec.macs, "the NICs are the QEMU command line's");

    let node = admin.node("lab-1", None).await.unwrap();
    assert_eq!(node.node.rule.as_deref(), Some("lab-1"), "enrolled by its SMBIOS serial");
    let plan: serde_json::Value = admin.get("/v1/nodes/lab-1/plan", &()).await.unwrap();
    let text = plan.to_string();
    for serial in ["SENDAN-D0", "SENDAN-D1"] {
        assert!(text.contains(&format!("/dev/disk/by-id/virtio-{serial}")), "{plan:#}");
    }
    let history: Vec<EventKind> =
        events.iter().filter(|e| e.payload.node().is_some_and(|n| n.as_str() == "lab-1")).map(|e| e.kind()).collect();
    assert!(history.contains(&EventKind::NodeCommissioned), "{history:?}");

    // (b) lab-2's disks are 1 GiB; its layout's root needs 8 GiB: refused, before anything is written.
    let console = tokio::task::block_in_place(|| two.powered_off(BOOT));
    assert!(
        console.contains("the server will not install this machine: node lab-2's install plan was refused"),
        "{console}"
    );
    assert!(!console.contains("--- commands.sh ---"), "a refused install runs nothing: {console}");
    let refused = wait_until("lab-2's plan is refused in the log", Duration::from_secs(30), || async {
        let events = sendan_tests::all_events(&admin).await;
        events.into_iter().find_map(|e| match e.payload {
            Payload::InstallPlanRefused(r) if r.node.as_str() == "lab-2" => Some(r),
            _ => None,
        })
    })
    .await;
    let why = format!("{refused:?}");
    assert!(why.contains("disk 'root'") && why.contains("big-root"), "{why}");

    // (c) Rescue: the operator's verb, then the machine's next netboot.
    let out = tokio::task::block_in_place(|| sendan_ok(&c, 1, &["node", "rescue", "lab-1", "--comment", "fsck"]));
    assert!(out.contains("it is `rescue` now"), "{out}");
    let again = dir.path().join("second-boot");
    let mut rescue = Vm::netboot(&again, lab_1(), port);
    let console = tokio::task::block_in_place(|| rescue.powered_off(BOOT));
    let cmdline = console.lines().find(|l| l.contains("Command line:")).unwrap_or_default().to_owned();
    assert!(
        cmdline.contains("sendan.node=lab-1") && !cmdline.contains("sendan.token="),
        "a rescue boot names its node and carries no bootstrap token: {cmdline}"
    );
    assert!(
        console.contains("sendan-vm: rescue system for node lab-1; disks: virtio-SENDAN-D0 virtio-SENDAN-D1"),
        "{console}"
    );
    assert!(!console.contains("sendan-agent install"), "the rescue image installs nothing: {console}");

    // (d) Reprovision through the BMC. The emulator's system is the machine's power: when it reports `On`, the
    // machine (still off since its rescue boot) is started.
    let (notify_url, mut notes) = sendan_tests::bmc::notifications().await;
    let uuid = lab_1().uuid;
    let bmc = tokio::task::block_in_place(|| {
        Redfish::start_with(&[FakeSystem::new("lab-1", uuid, false)], Some(&notify_url))
    });
    let bmc = std::sync::Arc::new(bmc);
    let mut doc = serde_json::to_value(admin.spec(None).await.unwrap().spec).unwrap();
    doc["nodes"]["lab-1"]["bmc"] = serde_json::json!({
        "driver": "redfish", "address": bmc.url, "user": bmc.user, "passwordFile": bmc.password_file,
        "caFile": bmc.ca_file, "system": bmc.system_path(uuid),
    });
    let with_bmc = sendan_core::spec::ClusterSpec::from_json(&doc.to_string()).unwrap();
    sendan_api::cli::spec::apply(&admin, &with_bmc).await.unwrap();
    let third = dir.path().join("third-boot");
    let machine = {
        let bmc = bmc.clone();
        tokio::spawn(async move {
            while notes.recv().await.is_some() {
                if bmc.power(uuid).await == "On" {
                    return tokio::task::block_in_place(|| Vm::netboot(&third, lab_1(), port));
                }
            }
            panic!("the notification listener stopped");
        })
    };
    let out =
        tokio::task::block_in_place(|| sendan_ok(&c, 1, &["node", "reprovision", "lab-1", "--comment", "wipe it"]));
    assert!(out.contains("node lab-1: `boot pxe once, then reboot` done"), "{out}");
    assert_eq!(bmc.boot(uuid).await.0, "Pxe", "the next boot is the network's");
    let mut vm = tokio::time::timeout(BOOT, machine).await.expect("the BMC powered the machine on").unwrap();
    let console = tokio::task::block_in_place(|| vm.powered_off(BOOT));
    let cmdline = console.lines().find(|l| l.contains("Command line:")).unwrap_or_default().to_owned();
    assert!(cmdline.contains("sendan.token="), "the installer again, with a new bootstrap token: {cmdline}");
    assert!(console.contains("rehearsed the install of node lab-1"), "{console}");
    let events = sendan_tests::all_events(&admin).await;
    let homes: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::MachinePhonedHome(p) if p.facts.dmi.serial.as_deref() == Some("SENDAN-VM-1") => {
                Some(p.machine.to_string())
            }
            _ => None,
        })
        .collect();
    assert!(homes.len() == 2 && homes[0] == homes[1], "it phoned home again as the same machine: {homes:?}");
    let node = admin.node("lab-1", None).await.unwrap();
    assert_eq!(node.node.machine.to_string(), homes[0], "lab-1 keeps its machine");
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    let reprovision = kinds.iter().position(|k| *k == EventKind::NodeReprovisionRequested).unwrap();
    assert_eq!(kinds[reprovision + 1], EventKind::PowerRequested, "one batch: the lifecycle, then the power");
}
