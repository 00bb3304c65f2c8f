//! QEMU machines for the bare-metal tests: TCG (no KVM), Debian's iPXE ROM netbooting from a Sendan member on
//! the host's loopback, and the VM test image (`cargo xtask vm-image`) as the installer.
//!
//! Network safety: every NIC is QEMU user-mode networking with `restrict=on` — the guest reaches nothing on the
//! host or beyond — and the one way out is a `guestfwd` from `10.0.2.100:80` in the guest to the member's
//! `127.0.0.1` port. No bridge, no tap, no other address.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The address the guest reaches the Sendan member at (forwarded to the host's loopback).
pub const SERVER_IN_GUEST: &str = "10.0.2.100";

/// Why the VM tests cannot run here, if they cannot: QEMU is missing (`cargo xtask setup` installs it).
pub fn unavailable() -> Option<String> {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| "qemu-system-x86_64 is not installed (`cargo xtask setup` installs it)".to_owned())
}

/// The VM test image's directory (`vmlinuz`, `initrd.img`), built by `cargo xtask vm-image` when missing.
pub fn image_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::bootstrap::repo().join("target"));
    let dir = target.join("vm-image");
    if !dir.join("initrd.img").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["xtask", "vm-image"])
            .current_dir(crate::bootstrap::repo())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "`cargo xtask vm-image` failed");
    }
    dir
}

/// A boot directory for `sendan server --boot-dir`: the image's kernel and initrd as `installer/vmlinuz` and
/// `installer/initrd.img`, and the same again as the rescue image.
pub fn boot_dir(root: &Path) -> PathBuf {
    let image = image_dir();
    let dir = root.join("boot");
    for kind in ["installer", "rescue"] {
        std::fs::create_dir_all(dir.join(kind)).unwrap();
        for file in ["vmlinuz", "initrd.img"] {
            std::os::unix::fs::symlink(image.join(file), dir.join(kind).join(file)).unwrap();
        }
    }
    dir
}

/// A virtio disk: a sparse raw file of `size` bytes with a serial.
#[derive(Clone, Debug)]
pub struct DiskSpec {
    pub serial: &'static str,
    pub size: u64,
}

/// What a machine looks like on the QEMU command line.
#[derive(Clone, Debug)]
pub struct VmSpec {
    pub name: &'static str,
    /// SMBIOS system serial, uuid, manufacturer and product.
    pub serial: &'static str,
    pub uuid: &'static str,
    pub vendor: &'static str,
    pub product: &'static str,
    pub cpus: u32,
    pub memory_mib: u64,
    pub disks: Vec<DiskSpec>,
    /// MACs of its NICs; it netboots from the first.
    pub macs: Vec<&'static str>,
}

/// A running QEMU machine; killed when dropped. Its serial console goes to `console.log` in its directory.
pub struct Vm {
    pub spec: VmSpec,
    pub dir: PathBuf,
    child: Child,
}

impl Vm {
    /// Power `spec` on, netbooting through the iPXE ROM from the member listening on `127.0.0.1:port`.
    pub fn netboot(root: &Path, spec: VmSpec, port: u16) -> Vm {
        let dir = root.join(spec.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<String> = vec![
            "-accel".into(),
            "tcg".into(),
            "-machine".into(),
            "pc".into(),
            "-m".into(),
            spec.memory_mib.to_string(),
            "-smp".into(),
            spec.cpus.to_string(),
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-no-reboot".into(),
            "-serial".into(),
            format!("file:{}", dir.join("console.log").display()),
            "-uuid".into(),
            spec.uuid.into(),
            "-smbios".into(),
            format!("type=1,manufacturer={},product={},serial={}", spec.vendor, spec.product, spec.serial),
            "-boot".into(),
            "n".into(),
        ];
        for (i, mac) in spec.macs.iter().enumerate() {
            // Restricted user networking: the guest reaches only the forwarded member, never the host or beyond.
            let forward = if i == 0 {
                format!(
                    ",guestfwd=tcp:{SERVER_IN_GUEST}:80-tcp:127.0.0.1:{port},bootfile=http://{SERVER_IN_GUEST}/v1/boot/ipxe?mac=${{net0/mac}}"
                )
            } else {
                String::new()
            };
            args.extend(["-netdev".into(), format!("user,id=n{i},restrict=on{forward}")]);
            args.extend(["-device".into(), format!("virtio-net-pci,netdev=n{i},mac={mac}")]);
        }
        for (i, d) in spec.disks.iter().enumerate() {
            let file = dir.join(format!("disk{i}.img"));
            std::fs::File::create(&file).unwrap().set_len(d.size).unwrap();
            args.extend(["-drive".into(), format!("file={},if=none,id=d{i},format=raw", file.display())]);
            args.extend(["-device".into(), format!("virtio-blk-pci,drive=d{i},serial={}", d.serial)]);
        }
        std::fs::write(dir.join("qemu.args"), args.join("\n")).unwrap();
        let log = std::fs::File::create(dir.join("qemu.log")).unwrap();
        let child = Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("qemu-system-x86_64 starts");
        Vm { spec, dir, child }
    }

    /// Its serial console so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("console.log")).unwrap_or_default()).into_owned()
    }

    /// Wait (polling) until the machine powers itself off, up to `timeout`; the console. Panics with the console
    /// and QEMU's own output when it does not.
    pub fn powered_off(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let qemu = std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
                assert!(status.success(), "QEMU for {} failed ({status}): {qemu}\n{}", self.spec.name, self.console());
                return self.console();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not power off within {timeout:?}; its console:\n{}",
                self.spec.name,
                self.console()
            );
            std::thread::sleep(Duration::from_millis(250)); // poll pacing for a process we cannot wait on with a deadline
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
