//! Fixtures for the bootstrap tests: the test cluster declaration, machines made from the agents' hardware
//! fixture trees (copied, so each gets its own `/proc/cmdline` from its netboot script), real `sendan-agent`
//! processes, and the `sendan` CLI run against a process cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::procs::ProcCluster;
use crate::{binary, wait_until};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The test cluster's declaration (`tests/fixtures/bootstrap/cluster.nix`), relative to the repository.
pub const CLUSTER: &str = "tests/fixtures/bootstrap/cluster.nix";

/// Flags that give a member netboot images (nothing is fetched from these URLs: iPXE would).
pub const NETBOOT_FLAGS: &[&str] = &[
    "--installer-kernel",
    "http://boot.test/installer/bzImage",
    "--installer-initrd",
    "http://boot.test/installer/initrd",
    "--installer-cmdline",
    "init=/nix/store/00000000000000000000000000000000-installer/init loglevel=4",
    "--rescue-kernel",
    "http://boot.test/rescue/bzImage",
    "--rescue-initrd",
    "http://boot.test/rescue/initrd",
];

/// A hardware fixture of sendan-agents.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("agents/tests/fixtures").join(name)
}

/// Copy a fixture tree, keeping its symlinks as they are (sysfs is relative symlinks).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Run the `sendan` CLI against member `member` of `c`, with the admin token.
pub fn sendan(c: &ProcCluster, member: u64, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary("sendan"));
    if let Some(ca) = &c.ca_file {
        cmd.arg("--ca-file").arg(ca);
    }
    cmd.args(["--server", &c.trust.base_url(&c.addrs[&member])])
        .arg("--token-file")
        .arg(c.dir.path().join("admin.token"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sendan runs")
}

/// `sendan …` that must succeed; its standard output.
pub fn sendan_ok(c: &ProcCluster, member: u64, args: &[&str]) -> String {
    let out = sendan(c, member, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "sendan {args:?} failed: {}{text}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The kernel command line of an iPXE script's `kernel` line (everything after the kernel's URL).
pub fn kernel_cmdline(script: &str) -> String {
    let line = script.lines().find(|l| l.starts_with("kernel ")).unwrap_or_else(|| panic!("no kernel line: {script}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    // kernel --name kernel <url> <args…>
    words[4..].join(" ")
}

/// The value of `sendan.<key>=` on a kernel command line.
pub fn cmdline_value(cmdline: &str, key: &str) -> Option<String> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(&format!("sendan.{key}=")).map(str::to_owned))
}

/// A machine of the test: a copy of a hardware fixture with the kernel command line its netboot gave it, and
/// the directories a dry-run install writes to.
pub struct Machine {
    pub name: &'static str,
    pub root: PathBuf,
    pub target: PathBuf,
    pub work: PathBuf,
    pub lldp: Option<PathBuf>,
    pub agent: Option<Child>,
    pub log: PathBuf,
}

impl Machine {
    /// Copy fixture `name` below `dir`.
    pub fn new(dir: &Path, name: &'static str, lldp: Option<&str>) -> Machine {
        let base = dir.join(name);
        let root = base.join("root");
        copy_tree(&fixture(name), &root);
        Machine {
            name,
            root,
            target: base.join("target"),
            work: base.join("work"),
            lldp: lldp.map(|f| repo().join("tests/fixtures/bootstrap").join(f)),
            agent: None,
            log: base.join("agent.log"),
        }
    }

    /// Boot with the kernel command line of `script` (what iPXE would do).
    pub fn netboot(&self, script: &str) -> String {
        let cmdline = kernel_cmdline(script);
        std::fs::write(self.root.join("proc/cmdline"), format!("{cmdline}\n")).unwrap();
        cmdline
    }

    /// Start `sendan-agent install` in `mode`; server and token come from the kernel command line.
    pub fn start_install(&mut self, mode: &str, wait_secs: u64) {
        self.start_install_with(mode, wait_secs, &[]);
    }

    /// [`Machine::start_install`] with extra environment variables.
    pub fn start_install_with(&mut self, mode: &str, wait_secs: u64, env: &[(&str, &str)]) {
        let log = std::fs::File::create(&self.log).unwrap();
        let err = log.try_clone().unwrap();
        let lldp = self.lldp.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "off".into());
        let child = Command::new(binary("sendan-agent"))
            .arg("install")
            .arg("--root")
            .arg(&self.root)
            .args(["--mode", mode, "--lldp", &lldp, "--wait-secs", &wait_secs.to_string()])
            .arg("--target")
            .arg(&self.target)
            .arg("--work-dir")
            .arg(&self.work)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("sendan-agent starts");
        self.agent = Some(child);
    }

    pub fn running(&mut self) -> bool {
        self.agent.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Wait for the agent to exit; its status and output.
    pub async fn finished(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let name = self.name;
        let child = self.agent.as_mut().expect("an agent was started");
        let status = wait_until(&format!("the installer of {name} exits"), timeout, || {
            let s = child.try_wait().unwrap();
            async move { s }
        })
        .await;
        (status, std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// `sendan-agent checkin` on the installed target (its first boot).
    pub fn checkin(&self) -> Output {
        Command::new(binary("sendan-agent")).arg("checkin").arg("--root").arg(&self.target).output().unwrap()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
