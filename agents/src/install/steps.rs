//! What installing a node takes, as a list of steps: a pure function of the served plan and the installer's
//! options, unit-tested; `exec` carries the steps out (or rehearses them).

use std::path::{Path, PathBuf};

use sendan_core::event::InstallStep;
use sendan_core::machines::install::ServedPlan;

/// Where `sendan-agent nix` and `sendan-agent checkin` keep their state on the installed system.
pub const AGENT_STATE_DIR: &str = "var/lib/sendan-agent";
/// The host key the installer generates, below the target.
pub const HOST_KEY: &str = "etc/ssh/ssh_host_ed25519_key";

/// One step of an install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Report that an install step is done (`InstallProgressed`).
    Report(InstallStep, String),
    /// Report that the disks are about to be written (`NodeInstallStarted`).
    Started,
    /// Write a file (creating its directory, readable by the owner only).
    Write { path: PathBuf, contents: String, mode: u32 },
    /// Run a command; `capture` names the value its trimmed standard output gives later commands (`{name}`).
    Run { argv: Vec<String>, capture: Option<&'static str> },
    /// Generate the node's SSH host key pair (ed25519, no passphrase) at `path`.
    HostKey { path: PathBuf, comment: String },
    /// Generate the node token at `path` (mode 0600); only its hash leaves the node.
    NodeToken { path: PathBuf },
    /// Spend the bootstrap token for the node token, reporting the host key.
    Exchange,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `--option substituters …` and `--option trusted-public-keys …`, for the plan's caches.
fn nix_options(plan: &ServedPlan) -> Vec<String> {
    let b = &plan.plan.bootstrap;
    let mut out = Vec::new();
    if !b.substituters.is_empty() {
        out.extend(["--option".into(), "substituters".into(), b.substituters.join(" ")]);
    }
    if !b.trusted_public_keys.is_empty() {
        out.extend(["--option".into(), "trusted-public-keys".into(), b.trusted_public_keys.join(" ")]);
    }
    out
}

/// One line naming each layout disk's device: `os-a → nvme0n1 (/dev/disk/by-id/…)`.
pub fn disks_line(plan: &ServedPlan) -> String {
    plan.disks.iter().map(|(k, d)| format!("{k} → {} ({})", d.name, d.device)).collect::<Vec<_>>().join(", ")
}

/// How the installed node's agents reach Sendan: the server, and the CA certificates (PEM) its `https://`
/// certificate chains to, copied onto the node.
#[derive(Clone, Copy, Debug)]
pub struct Reach<'a> {
    pub server: &'a str,
    pub ca_pem: Option<&'a str>,
}

/// The steps of installing `plan` into `target` (the directory disko mounts the new system at), with scratch
/// files in `work`. `rehearsal`: commands are recorded, not run (the reports say so). `installing`: the node
/// is `installing` already (an interrupted install restarting), so it is not reported as started again.
pub fn steps(
    plan: &ServedPlan,
    reach: &Reach,
    target: &Path,
    work: &Path,
    rehearsal: bool,
    installing: bool,
) -> Vec<Step> {
    let not_run = |what: &str| if rehearsal { format!("dry run, {what} not run") } else { String::new() };
    let mut out = vec![Step::Report(
        InstallStep::PlanFetched,
        format!(
            "spec {}, disk layout '{}': {}",
            &plan.spec.to_hex()[..12],
            plan.plan.disk_layout.name,
            disks_line(plan)
        ),
    )];
    if !installing {
        out.push(Step::Started);
    }
    let disko_json = work.join("disko.json");
    let disko_nix = work.join("disko.nix");
    out.push(Step::Write {
        path: disko_json.clone(),
        contents: serde_json::to_string_pretty(&plan.disko).unwrap_or_default(),
        mode: 0o600,
    });
    out.push(Step::Write {
        path: disko_nix.clone(),
        contents: "# Written by sendan-agent install from the node's install plan.\n\
                   { disko.devices = (builtins.fromJSON (builtins.readFile ./disko.json)).disko.devices; }\n"
            .into(),
        mode: 0o600,
    });
    out.push(Step::Run {
        argv: vec![
            "disko".into(),
            "--mode".into(),
            "destroy,format,mount".into(),
            "--yes-wipe-all-disks".into(),
            "--root-mountpoint".into(),
            s(target),
            s(&disko_nix),
        ],
        capture: None,
    });
    let formatted = format!("disko partitioned, formatted and mounted {}", disks_line(plan));
    out.push(Step::Report(InstallStep::DisksFormatted, join(&not_run("disko"), &formatted)));
    let system = match (&plan.plan.system.store_path, &plan.plan.system.flake) {
        (Some(path), _) => path.clone(),
        (None, flake) => {
            let mut argv: Vec<String> = ["nix", "--extra-experimental-features", "nix-command flakes", "build"]
                .into_iter()
                .map(String::from)
                .chain(["--no-link".into(), "--print-out-paths".into()])
                .chain(nix_options(plan))
                .collect();
            argv.push(flake.clone().unwrap_or_default());
            out.push(Step::Run { argv, capture: Some("system") });
            "{system}".into()
        }
    };
    let mut install: Vec<String> = vec![
        "nixos-install".into(),
        "--root".into(),
        s(target),
        "--system".into(),
        system,
        "--no-root-passwd".into(),
        "--no-channel-copy".into(),
    ];
    install.extend(nix_options(plan));
    out.push(Step::Run { argv: install, capture: None });
    let target_system = plan.plan.system.store_path.as_deref().or(plan.plan.system.flake.as_deref()).unwrap_or("-");
    out.push(Step::Report(
        InstallStep::SystemInstalled,
        join(&not_run("nixos-install"), &format!("installed {target_system} and its bootloader")),
    ));
    let key = target.join(HOST_KEY);
    out.push(Step::HostKey { path: key, comment: format!("root@{}", plan.plan.hostname) });
    out.push(Step::Report(
        InstallStep::HostKeyGenerated,
        format!("ed25519 host key generated on the node at /{HOST_KEY}"),
    ));
    let state = target.join(AGENT_STATE_DIR);
    let mut agent_toml = format!(
        "# Written by sendan-agent install: how this node's agents reach Sendan.\nserver = {}\nnode = {}\n",
        toml_string(reach.server),
        toml_string(plan.node.as_str())
    );
    if let Some(pem) = reach.ca_pem {
        out.push(Step::Write { path: state.join("ca.pem"), contents: pem.to_owned(), mode: 0o644 });
        agent_toml.push_str(&format!("ca-file = {}\n", toml_string(&format!("/{AGENT_STATE_DIR}/ca.pem"))));
    }
    out.push(Step::Write { path: state.join("agent.toml"), contents: agent_toml, mode: 0o600 });
    out.push(Step::NodeToken { path: state.join("token") });
    out.push(Step::Exchange);
    out
}

fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() { rest.to_owned() } else { format!("{prefix}: would have {rest}") }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use sendan_core::spec::ResolvedDisk;

    use super::*;

    pub(crate) fn plan(store_path: Option<&str>) -> ServedPlan {
        let spec = serde_json::json!({
            "apiVersion": "sendan.dev/v1alpha1", "kind": "InstallPlan", "cluster": "lab", "node": "vm-1",
            "hostname": "vm-1", "class": "vm", "pool": null, "rack": "r1", "profile": "p", "platform": "x86_64-linux",
            "system": { "flake": if store_path.is_none() { Some("git+https://git.lab/fleet#vm-1") } else { None },
                        "storePath": store_path },
            "network": { "interface": "en*", "ipPool": "lab", "address": "10.0.0.5", "cidr": "10.0.0.0/24",
                         "prefixLength": 24, "gateway": "10.0.0.1", "dns": [], "vlan": null, "tagged": false },
            "diskLayout": { "name": "single", "bootDisks": ["root"], "disko": { "devices": {} } },
            "bootstrap": { "servers": ["http://s"], "substituters": ["https://cache.lab"], "trustedPublicKeys": ["cache.lab-1:abc="] }
        });
        ServedPlan {
            node: sendan_core::NodeId::new("vm-1").unwrap(),
            machine: sendan_core::MachineId::new("m1").unwrap(),
            state: sendan_core::NodeState::InstallPending,
            spec: sendan_core::Hash::of(b"spec"),
            plan: serde_json::from_value(spec).unwrap(),
            disks: BTreeMap::from([(
                "root".to_owned(),
                ResolvedDisk { name: "vda".into(), device: "/dev/disk/by-id/virtio-os".into(), size_bytes: 1 },
            )]),
            disko: serde_json::json!({ "disko": { "devices": { "disk": {} } } }),
        }
    }

    fn runs(steps: &[Step]) -> Vec<String> {
        steps.iter().filter_map(|s| if let Step::Run { argv, .. } = s { Some(argv.join(" ")) } else { None }).collect()
    }

    #[test]
    fn a_store_path_system_is_installed_after_disko_and_before_the_key_and_the_exchange() {
        let steps = steps(
            &plan(Some("/nix/store/abc-nixos-system-vm-1")),
            &Reach { server: "http://s:7770", ca_pem: None },
            Path::new("/mnt"),
            Path::new("/run/w"),
            false,
            false,
        );
        assert_eq!(
            runs(&steps),
            [
                "disko --mode destroy,format,mount --yes-wipe-all-disks --root-mountpoint /mnt /run/w/disko.nix",
                "nixos-install --root /mnt --system /nix/store/abc-nixos-system-vm-1 --no-root-passwd --no-channel-copy \
                 --option substituters https://cache.lab --option trusted-public-keys cache.lab-1:abc=",
            ]
        );
        let order: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Report(step, _) => step.to_string(),
                Step::Started => "started".into(),
                Step::Write { path, .. } => format!("write {}", path.display()),
                Step::Run { argv, .. } => argv[0].clone(),
                Step::HostKey { .. } => "host-key".into(),
                Step::NodeToken { .. } => "token".into(),
                Step::Exchange => "exchange".into(),
            })
            .collect();
        assert_eq!(
            order,
            [
                "plan-fetched",
                "started",
                "write /run/w/disko.json",
                "write /run/w/disko.nix",
                "disko",
                "disks-formatted",
                "nixos-install",
                "system-installed",
                "host-key",
                "host-key-generated",
                "write /mnt/var/lib/sendan-agent/agent.toml",
                "token",
                "exchange",
            ]
        );
        let Step::Write { contents, .. } = &steps[10] else { panic!() };
        assert_eq!(contents.lines().skip(1).collect::<Vec<_>>(), ["server = \"http://s:7770\"", "node = \"vm-1\""]);
    }

    #[test]
    fn a_flake_system_is_built_first_and_a_restarted_install_is_not_started_twice() {
        let reach = Reach { server: "https://s", ca_pem: Some("-----BEGIN CERTIFICATE-----\n…\n") };
        let steps = steps(&plan(None), &reach, Path::new("/mnt"), Path::new("/w"), true, true);
        assert!(!steps.contains(&Step::Started));
        let runs = runs(&steps);
        assert!(
            runs[1]
                .starts_with("nix --extra-experimental-features nix-command flakes build --no-link --print-out-paths")
        );
        assert!(runs[1].ends_with("git+https://git.lab/fleet#vm-1"));
        assert!(runs[2].contains("--system {system}"));
        let Step::Report(InstallStep::DisksFormatted, detail) = &steps[4] else { panic!("{steps:?}") };
        assert!(detail.starts_with("dry run, disko not run: would have disko partitioned"), "{detail}");
        // The cluster's CA goes onto the node, and its agents are told to trust it.
        let writes: Vec<(&Path, &str)> = steps
            .iter()
            .filter_map(|s| {
                if let Step::Write { path, contents, .. } = s {
                    Some((path.as_path(), contents.as_str()))
                } else {
                    None
                }
            })
            .collect();
        assert!(writes.contains(&(Path::new("/mnt/var/lib/sendan-agent/ca.pem"), "-----BEGIN CERTIFICATE-----\n…\n")));
        let (_, toml) = writes.iter().find(|(p, _)| p.ends_with("agent.toml")).unwrap();
        assert!(toml.contains("ca-file = \"/var/lib/sendan-agent/ca.pem\"\n"), "{toml}");
    }
}
