//! The VM test image: a Debian kernel and an initramfs that netboot into the real `sendan-agent install`, built
//! from Debian packages only. The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`
//! into a cache directory, so nothing is installed on the host; `sendan-agent` is this checkout's, built static
//! for musl. The initramfs holds busybox, the kernel modules a virtio machine needs (with their dependencies, from
//! the package's `modules.dep`), Debian's `ssh-keygen` with the libraries it links (the installer makes the
//! node's host key with it), and an `/init` that brings up the first NIC with DHCP and runs the installer, which
//! reads `sendan.server=`, `sendan.token=` and `sendan.mode=` from `/proc/cmdline`.
//!
//! Output, in `<target dir>/vm-image/`: `vmlinuz`, `initrd.img` (an uncompressed newc cpio) and `kernel-version`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{apt_install, cargo, have, root};

/// The musl target the agent is built for.
const MUSL: &str = "x86_64-unknown-linux-musl";

/// The modules a QEMU machine with virtio disks and NICs needs; each comes with the modules its `depends=` names.
const MODULES: [&str; 4] = ["virtio_pci", "virtio_net", "virtio_blk", "failover"];

/// The packages besides the kernel: busybox, and `ssh-keygen` with the shared libraries it links.
const PACKAGES: [&str; 6] = ["busybox-static", "openssh-client", "libc6", "libssl3", "libselinux1", "libpcre2-8-0"];

/// What `ssh-keygen` needs at run time, as paths inside the unpacked packages.
const SSH_KEYGEN_FILES: [&str; 6] = [
    "usr/bin/ssh-keygen",
    "lib64/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/libc.so.6",
    "usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "lib/x86_64-linux-gnu/libselinux.so.1",
    "usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
];

const INIT: &str = r#"#!/bin/busybox sh
# Sendan's VM test installer: bring up the first NIC with DHCP, then run the real `sendan-agent install`.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin HOME=/root
mkdir -p /proc /sys /dev /run /tmp /mnt /etc
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m" || echo "sendan-vm: insmod $m failed"; done
# What udev's persistent-storage rules would make: /dev/disk/by-id/virtio-<serial>.
mkdir -p /dev/disk/by-id
for d in /sys/block/vd*; do
  [ -e "$d/serial" ] || continue
  s=$(cat "$d/serial")
  [ -n "$s" ] && ln -s "../../$(basename "$d")" "/dev/disk/by-id/virtio-$s"
done
ip link set lo up
# A rescue boot (`sendan.node=`, no bootstrap token): the disks are left alone. A real rescue image starts sshd.
if grep -q 'sendan\.node=' /proc/cmdline && ! grep -q 'sendan\.token=' /proc/cmdline; then
  node=$(sed -n 's/.*sendan\.node=\([^ ]*\).*/\1/p' /proc/cmdline)
  echo "sendan-vm: rescue system for node $node; disks: $(ls /dev/disk/by-id | tr '\n' ' ')"
  poweroff -f
fi
nic=$(ls /sys/class/net | grep -v '^lo$' | sort | head -n 1)
for n in $(ls /sys/class/net | grep -v '^lo$'); do ip link set "$n" up; done
udhcpc -i "$nic" -n -q -t 10 -s /etc/udhcpc.script || echo "sendan-vm: no DHCP lease on $nic"
echo "sendan-vm: $nic is up: $(ip -4 addr show dev "$nic" | grep inet)"
mode=$(sed -n 's/.*sendan\.mode=\([a-z-]*\).*/\1/p' /proc/cmdline)
echo "sendan-vm: running sendan-agent install (mode ${mode:-plan})"
/bin/sendan-agent install --lldp off --wait-secs 600
echo "sendan-vm: sendan-agent install exited $?"
if [ -f /run/sendan-install/commands.sh ]; then
  echo "--- commands.sh ---"; cat /run/sendan-install/commands.sh; echo "--- end of commands.sh ---"
fi
sync
poweroff -f
"#;

const UDHCPC: &str = r#"#!/bin/sh
# busybox udhcpc: configure the lease's address and route.
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"#;

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo target directory (respecting `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Where downloaded packages and their unpacked trees are kept between runs (fresh clones share it).
fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache"));
    base.join("sendan").join("vm-debs")
}

/// QEMU, Debian's iPXE ROMs, the musl tools and the musl target: what the VM tests and the image need.
pub fn provision() -> Result<(), String> {
    let mut missing = Vec::new();
    if !have("qemu-system-x86_64") {
        missing.push("qemu-system-x86");
    }
    if !Path::new("/usr/lib/ipxe/qemu/pxe-virtio.rom").exists() {
        missing.push("ipxe-qemu");
    }
    if !have("musl-gcc") {
        missing.push("musl-tools");
    }
    if !have("dpkg-deb") {
        missing.push("dpkg");
    }
    if !missing.is_empty() {
        apt_install(&missing, "QEMU, iPXE or the musl tools are missing (the VM tests need them)")?;
    }
    let installed = run(Command::new("rustup").args(["target", "list", "--installed"]), "rustup")?;
    if !installed.lines().any(|l| l.trim() == MUSL) {
        eprintln!("xtask: adding the {MUSL} target (the VM image's static sendan-agent)");
        run(Command::new("rustup").args(["target", "add", MUSL]), "rustup target add")?;
    }
    Ok(())
}

/// The kernel package `linux-image-amd64` depends on now, such as `linux-image-6.1.0-57-amd64`.
fn kernel_package() -> Result<String, String> {
    let out = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]), "apt-cache depends")?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or_else(|| format!("apt-cache does not say which kernel linux-image-amd64 depends on:\n{out}"))
}

/// `package` unpacked below the cache (downloaded first when it is not there yet); the tree's path.
fn unpacked(package: &str) -> Result<PathBuf, String> {
    let cache = cache_dir();
    let tree = cache.join("trees").join(package);
    if tree.join(".complete").exists() {
        return Ok(tree);
    }
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("cannot create {}: {e}", debs.display()))?;
    let find = |debs: &Path| {
        std::fs::read_dir(debs)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{package}_"))))
    };
    let deb = match find(&debs) {
        Some(d) => d,
        None => {
            eprintln!("xtask: apt-get download {package}");
            run(Command::new("apt-get").arg("download").arg(package).current_dir(&debs), "apt-get download")?;
            find(&debs).ok_or_else(|| format!("apt-get download {package} left no .deb in {}", debs.display()))?
        }
    };
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree).map_err(|e| format!("cannot create {}: {e}", tree.display()))?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree), "dpkg-deb -x")?;
    std::fs::write(tree.join(".complete"), "").map_err(|e| e.to_string())?;
    Ok(tree)
}

/// A newc cpio archive, written by hand: directories, files, symlinks and character devices.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    /// `path`'s parent directories, once each.
    fn parents(&mut self, path: &str) {
        let mut at = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            at = if at.is_empty() { (*part).to_owned() } else { format!("{at}/{part}") };
            if self.dirs.insert(at.clone()) {
                self.entry(&at, 0o040755, &[], (0, 0));
            }
        }
    }

    fn dir(&mut self, path: &str) {
        self.parents(&format!("{path}/x"));
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.parents(path);
        self.entry(path, 0o100000 | mode, data, (0, 0));
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entry(path, 0o120777, target.as_bytes(), (0, 0));
    }

    fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entry(path, 0o020600, &[], (major, minor));
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        while self.out.len() % 512 != 0 {
            self.out.push(0);
        }
        self.out
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every loadable module below `dir`, by name (`virtio_net`), as paths relative to `base`.
fn modules_by_name(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            modules_by_name(base, &path, out)?;
        } else if let Some(file) = path.file_name().and_then(|n| n.to_str())
            && file.contains(".ko")
        {
            let name = file.split(".ko").next().unwrap_or(file).replace('-', "_");
            let rel = path.strip_prefix(base).map_err(|e| e.to_string())?.display().to_string();
            out.insert(name, rel);
        }
    }
    Ok(())
}

/// A module's `depends=` (its `.modinfo` entry, which `depmod` reads; the package ships no `modules.dep`).
fn module_depends(bytes: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = bytes.windows(key.len()).position(|w| w == key) else { return Vec::new() };
    let rest = &bytes[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|d| !d.is_empty()).map(|d| d.replace('-', "_")).collect()
}

/// `MODULES` and what they need, in load order (dependencies first), as paths below `lib/modules/<version>/`;
/// built-in ones are left out.
fn module_load_order(modules_dir: &Path) -> Result<Vec<String>, String> {
    let builtin = String::from_utf8_lossy(&read(&modules_dir.join("modules.builtin"))?).into_owned();
    let is_builtin = |name: &str| {
        builtin.lines().any(|l| {
            let file = l.rsplit('/').next().unwrap_or(l);
            file.split(".ko").next().unwrap_or(file).replace('-', "_") == name
        })
    };
    let mut all = BTreeMap::new();
    modules_by_name(modules_dir, &modules_dir.join("kernel"), &mut all)?;
    let mut order: Vec<String> = Vec::new();
    let mut stack: Vec<(String, bool)> = MODULES.iter().rev().map(|m| ((*m).to_owned(), false)).collect();
    while let Some((name, expanded)) = stack.pop() {
        let Some(rel) = all.get(&name) else {
            if is_builtin(&name) {
                continue;
            }
            return Err(format!("the kernel package has no module {name}, built in or loadable"));
        };
        if order.contains(rel) {
            continue;
        }
        if expanded {
            order.push(rel.clone());
            continue;
        }
        stack.push((name, true));
        for d in module_depends(&module_bytes(&modules_dir.join(rel))?) {
            stack.push((d, false));
        }
    }
    Ok(order)
}

/// A module's bytes, decompressed when the package ships it compressed (`.ko.xz`, `.ko.zst`).
fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let name = path.display().to_string();
    let tool = if name.ends_with(".xz") {
        Some(("xz", vec!["-dc"]))
    } else if name.ends_with(".zst") {
        Some(("zstd", vec!["-dc"]))
    } else {
        None
    };
    match tool {
        None => read(path),
        Some((program, args)) => {
            let out = Command::new(program)
                .args(args)
                .arg(path)
                .output()
                .map_err(|e| format!("cannot run {program} on {name}: {e}"))?;
            if out.status.success() { Ok(out.stdout) } else { Err(format!("{program} cannot decompress {name}")) }
        }
    }
}

/// `rel` (a path inside the root file system) found in one of the unpacked `trees`, its symlinks followed
/// within the trees (an absolute target is taken from the trees' root, not the host's).
fn resolve(trees: &[PathBuf], rel: &str) -> Result<PathBuf, String> {
    let mut rel = rel.trim_start_matches('/').to_owned();
    for _ in 0..16 {
        // Debian 12 ships libraries below /lib, but merged-/usr paths name them below /usr/lib too.
        let alternatives =
            [rel.clone(), rel.strip_prefix("usr/").map(str::to_owned).unwrap_or_else(|| format!("usr/{rel}"))];
        let found = alternatives
            .iter()
            .flat_map(|r| trees.iter().map(move |t| t.join(r)))
            .find(|p| p.is_symlink() || p.exists())
            .ok_or_else(|| format!("no unpacked package holds /{rel}"))?;
        if !found.is_symlink() {
            return Ok(found);
        }
        let target = std::fs::read_link(&found).map_err(|e| format!("cannot read {}: {e}", found.display()))?;
        let target = target.to_string_lossy().into_owned();
        rel = if let Some(abs) = target.strip_prefix('/') {
            abs.to_owned()
        } else {
            let dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for part in target.split('/') {
                match part {
                    ".." => {
                        parts.pop();
                    }
                    "." | "" => {}
                    p => parts.push(p),
                }
            }
            parts.join("/")
        };
    }
    Err(format!("too many symlinks resolving /{rel}"))
}

/// Build the image; the directory holding it.
pub fn image() -> Result<PathBuf, String> {
    provision()?;
    let out_dir = target_dir().join("vm-image");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;

    eprintln!("xtask: building a static sendan-agent for the VM image ({MUSL})");
    let status = cargo()
        .args(["build", "-p", "sendan-agents", "--bin", "sendan-agent", "--target", MUSL, "--profile", "vm"])
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the musl sendan-agent failed".into());
    }
    let agent = read(&target_dir().join(MUSL).join("vm").join("sendan-agent"))?;

    let kernel_pkg = kernel_package()?;
    let kernel_tree = unpacked(&kernel_pkg)?;
    let version = kernel_pkg.strip_prefix("linux-image-").unwrap_or(&kernel_pkg).to_owned();
    let vmlinuz = read(&kernel_tree.join("boot").join(format!("vmlinuz-{version}")))?;
    let modules_dir = kernel_tree.join("lib/modules").join(&version);

    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "etc", "lib/modules", "mnt", "proc", "run", "sys", "tmp", "usr/bin"] {
        cpio.dir(d);
    }
    cpio.char_device("dev/console", 5, 1);
    cpio.char_device("dev/null", 1, 3);
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.file("etc/udhcpc.script", 0o755, UDHCPC.as_bytes());
    // ssh-keygen looks its user up.
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    cpio.file("etc/group", 0o644, b"root:x:0:\n");
    cpio.dir("root");
    cpio.file("bin/sendan-agent", 0o755, &agent);

    let busybox = unpacked("busybox-static")?;
    cpio.file("bin/busybox", 0o755, &read(&busybox.join("bin/busybox"))?);
    cpio.symlink("bin/sh", "busybox");

    let mut order = Vec::new();
    for rel in module_load_order(&modules_dir)? {
        let file = rel.rsplit('/').next().unwrap_or(&rel);
        let plain = file.split(".ko").next().unwrap_or(file).to_owned() + ".ko";
        cpio.file(&format!("lib/modules/{plain}"), 0o644, &module_bytes(&modules_dir.join(&rel))?);
        order.push(plain);
    }
    cpio.file("lib/modules/load-order", 0o644, (order.join("\n") + "\n").as_bytes());

    let mut trees = Vec::new();
    for p in &PACKAGES[1..] {
        trees.push(unpacked(p)?);
    }
    for file in SSH_KEYGEN_FILES {
        // Libraries are symlinks (some absolute) to versioned files, maybe in another package: follow them
        // inside the unpacked trees, never on the host; the initramfs gets the bytes.
        let real = resolve(&trees, file)?;
        let dest = file.strip_prefix("usr/").unwrap_or(file);
        cpio.file(dest, 0o755, &read(&real)?);
    }

    let initrd = cpio.finish();
    std::fs::write(out_dir.join("vmlinuz"), vmlinuz).map_err(|e| e.to_string())?;
    std::fs::write(out_dir.join("initrd.img"), initrd).map_err(|e| e.to_string())?;
    std::fs::write(out_dir.join("kernel-version"), format!("{version}\n")).map_err(|e| e.to_string())?;
    eprintln!("xtask: VM image in {} (kernel {version}, modules: {})", out_dir.display(), order.join(" "));
    Ok(out_dir)
}
