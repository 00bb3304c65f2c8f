//! NixOS vocabulary every aggregate that deals with systems shares: what a system string names (a store path or
//! a flake output), `switch-to-configuration`'s verbs, and what its exit codes mean. Below the aggregates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `switch-to-configuration`'s verb: `switch` (activate now and make it the boot default), `boot` (boot
/// default only, active after the next reboot) or `test` (activate now, boot default unchanged).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchAction {
    #[default]
    Switch,
    Boot,
    Test,
}

impl SwitchAction {
    pub const ALL: [SwitchAction; 3] = [SwitchAction::Switch, SwitchAction::Boot, SwitchAction::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            SwitchAction::Switch => "switch",
            SwitchAction::Boot => "boot",
            SwitchAction::Test => "test",
        }
    }

    /// Whether the system profile (the boot default) is set before switching; `test` leaves it alone.
    pub fn sets_profile(self) -> bool {
        self != SwitchAction::Test
    }
}

impl fmt::Display for SwitchAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SwitchAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SwitchAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a switch action; use switch, boot or test"))
    }
}

/// What a system string names: a store path to fetch, or a flake output to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemKind {
    StorePath,
    Flake,
}

/// Classify a desired system: a store path (`/nix/store/<hash>-<name>`) or a flake reference with an attribute
/// (`<ref>#<attr>`). The error is the end of a sentence saying what is wrong.
pub fn system_kind(system: &str) -> Result<SystemKind, String> {
    const NIX_BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    if system.len() > 1024 {
        return Err("it is longer than 1024 characters".into());
    }
    if system.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters".into());
    }
    if let Some(rest) = system.strip_prefix("/nix/store/") {
        let (hash, name) = rest.split_at_checked(32).unwrap_or(("", ""));
        let ok = hash.len() == 32
            && hash.chars().all(|c| NIX_BASE32.contains(c))
            && name.len() > 1
            && name.starts_with('-')
            && !name.contains('/');
        return if ok {
            Ok(SystemKind::StorePath)
        } else {
            Err("it is not a store path such as /nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01"
                .into())
        };
    }
    match system.split_once('#') {
        Some((r, attr)) if !r.is_empty() && !attr.is_empty() && !attr.contains('#') => Ok(SystemKind::Flake),
        _ => Err("it is neither a store path (/nix/store/…) nor a flake reference with an attribute \
                  (such as git+https://git.example.com/infra#nixosConfigurations.worker-01.config.system.build.toplevel)"
            .into()),
    }
}

/// Whether `switch-to-configuration` exiting with `code` means the system was activated.
pub fn switch_succeeded(code: i32) -> bool {
    code == 0 || code == 100
}

/// What a `switch-to-configuration` exit code means.
pub fn switch_failure(code: i32) -> String {
    let meaning = match code {
        -1 => "timed out or was killed",
        1 => "error",
        2 => "activation failed",
        4 => "units failed",
        _ => "failed",
    };
    if code == -1 {
        format!("switch-to-configuration {meaning}")
    } else {
        format!("switch-to-configuration exited {code} ({meaning})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_are_store_paths_or_flake_references() {
        let p = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-01";
        assert_eq!(system_kind(p), Ok(SystemKind::StorePath));
        assert_eq!(system_kind("git+https://git.example.com/lab#nixosConfigurations.x"), Ok(SystemKind::Flake));
        for bad in [
            "",
            "/nix/store/short-x",
            "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-a/b",
            "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6e-x",
            "/etc/passwd",
            "flake#",
            "a b#c",
            "#attr",
        ] {
            assert!(system_kind(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn switch_actions_round_trip() {
        for a in SwitchAction::ALL {
            assert_eq!(a.as_str().parse::<SwitchAction>(), Ok(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        }
        assert!("reboot".parse::<SwitchAction>().is_err());
        assert!(switch_succeeded(0) && switch_succeeded(100));
        assert!(!switch_succeeded(2) && !switch_succeeded(4) && !switch_succeeded(-1));
    }
}
