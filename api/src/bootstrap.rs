//! The bootstrap side of a member: where installers find it and the installer and rescue images it netboots
//! (configuration, validated once), and the netboot script with its bootstrap token.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use sendan_core::machines::netboot::{Boot, Image};

use crate::app::App;
use crate::config::ConfigError;
use crate::error::ApiError;

/// How long an unclaimed bootstrap token works by default.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// Netboot settings of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetbootConfig {
    /// The URL installers reach this member's API at (`sendan.server=` in the netboot script).
    pub public_url: String,
    pub installer: Option<Image>,
    pub rescue: Option<Image>,
    /// The files served at `/v1/boot/files/…`.
    pub boot_dir: Option<PathBuf>,
    /// How long a bootstrap token handed out in a netboot script works before its machine phones home.
    pub token_ttl: Duration,
}

/// The netboot keys of a config file or the flags, before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetbootFields {
    pub public_url: Option<String>,
    pub boot_dir: Option<PathBuf>,
    pub installer_kernel: Option<String>,
    pub installer_initrd: Option<String>,
    pub installer_cmdline: Option<String>,
    pub rescue_kernel: Option<String>,
    pub rescue_initrd: Option<String>,
    pub rescue_cmdline: Option<String>,
    pub bootstrap_token_ttl_secs: Option<u64>,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// An http(s) URL without whitespace, `$` or line breaks (it goes into an iPXE script).
fn url(key: &'static str, value: &str, schemes: &[&str]) -> Result<String, ConfigError> {
    let value = value.trim();
    let scheme_ok = schemes.iter().any(|s| value.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
    if !scheme_ok {
        return Err(invalid(key, format!("`{value}` is not a URL starting with {}", schemes.join(" or "))));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '$') {
        return Err(invalid(key, format!("`{value}` contains whitespace or `$`")));
    }
    Ok(value.to_owned())
}

/// `rel` as a path below `dir` that stays below it (no `..`, no absolute path, no hidden file), if it is one.
pub fn below(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let plain = p.components().all(|c| matches!(c, Component::Normal(n) if !n.to_string_lossy().starts_with('.')));
    (plain && !rel.is_empty()).then(|| dir.join(p))
}

/// An image location: a URL iPXE fetches, or (without a scheme) a file below the boot directory, served at
/// `<public-url>/v1/boot/files/<path>`.
fn location(key: &'static str, value: &str, public_url: &str, boot_dir: Option<&Path>) -> Result<String, ConfigError> {
    if value.contains("://") {
        return Ok(value.to_owned());
    }
    let value = value.trim().trim_start_matches("./");
    let Some(dir) = boot_dir else {
        return Err(invalid(key, format!("`{value}` is not a URL, and no `boot-dir` is set to find it in")));
    };
    let path = below(dir, value)
        .ok_or_else(|| invalid(key, format!("`{value}` must be a plain relative path below the boot directory")))?;
    if !path.is_file() {
        return Err(invalid(key, format!("{} is not a file (it is looked up below boot-dir)", path.display())));
    }
    let url_path: Vec<String> = value.split('/').map(percent_encode).collect();
    Ok(format!("{public_url}/v1/boot/files/{}", url_path.join("/")))
}

/// One path segment, percent-encoded where a URL needs it.
fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn image(
    (kernel_key, kernel): (&'static str, Option<String>),
    (initrd_key, initrd): (&'static str, Option<String>),
    (cmdline_key, cmdline): (&'static str, Option<String>),
    (public_url, boot_dir): (&str, Option<&Path>),
) -> Result<Option<Image>, ConfigError> {
    // iPXE fetches images over HTTP, HTTPS or TFTP.
    const SCHEMES: [&str; 3] = ["http://", "https://", "tftp://"];
    let cmdline = cmdline.unwrap_or_default();
    if cmdline.chars().any(|c| c.is_control() || c == '$') {
        return Err(invalid(cmdline_key, "the kernel command line must be one line without `$`"));
    }
    match (kernel, initrd) {
        (None, None) if cmdline.is_empty() => Ok(None),
        (None, None) => Err(invalid(cmdline_key, format!("it needs `{kernel_key}` and `{initrd_key}`"))),
        (Some(_), None) => Err(invalid(initrd_key, format!("`{kernel_key}` is set, so `{initrd_key}` is required"))),
        (None, Some(_)) => Err(invalid(kernel_key, format!("`{initrd_key}` is set, so `{kernel_key}` is required"))),
        (Some(k), Some(i)) => Ok(Some(Image {
            kernel: url(kernel_key, &location(kernel_key, &k, public_url, boot_dir)?, &SCHEMES)?,
            initrd: url(initrd_key, &location(initrd_key, &i, public_url, boot_dir)?, &SCHEMES)?,
            cmdline: cmdline.trim().to_owned(),
        })),
    }
}

impl NetbootFields {
    /// Fields set in `over` win.
    pub fn overlay(self, over: NetbootFields) -> NetbootFields {
        NetbootFields {
            public_url: over.public_url.or(self.public_url),
            boot_dir: over.boot_dir.or(self.boot_dir),
            installer_kernel: over.installer_kernel.or(self.installer_kernel),
            installer_initrd: over.installer_initrd.or(self.installer_initrd),
            installer_cmdline: over.installer_cmdline.or(self.installer_cmdline),
            rescue_kernel: over.rescue_kernel.or(self.rescue_kernel),
            rescue_initrd: over.rescue_initrd.or(self.rescue_initrd),
            rescue_cmdline: over.rescue_cmdline.or(self.rescue_cmdline),
            bootstrap_token_ttl_secs: over.bootstrap_token_ttl_secs.or(self.bootstrap_token_ttl_secs),
        }
    }

    /// Check everything once; `advertise` is the member's address in the initial cluster.
    /// `base` is the member's own URL (`http[s]://<its initial-cluster address>`), the default public URL.
    pub fn validate(self, base: &str) -> Result<NetbootConfig, ConfigError> {
        let public_url = match self.public_url {
            Some(u) => url("public-url", &u, &["http://", "https://"])?.trim_end_matches('/').to_owned(),
            None => base.to_owned(),
        };
        let ttl = self.bootstrap_token_ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        if !(60..=7 * 24 * 3600).contains(&ttl) {
            return Err(invalid("bootstrap-token-ttl-secs", "it must be between 60 seconds and 7 days"));
        }
        if let Some(dir) = &self.boot_dir
            && !dir.is_dir()
        {
            return Err(invalid("boot-dir", format!("{} is not a directory", dir.display())));
        }
        let at = (public_url.as_str(), self.boot_dir.as_deref());
        Ok(NetbootConfig {
            installer: image(
                ("installer-kernel", self.installer_kernel),
                ("installer-initrd", self.installer_initrd),
                ("installer-cmdline", self.installer_cmdline),
                at,
            )?,
            rescue: image(
                ("rescue-kernel", self.rescue_kernel),
                ("rescue-initrd", self.rescue_initrd),
                ("rescue-cmdline", self.rescue_cmdline),
                at,
            )?,
            boot_dir: self.boot_dir.clone(),
            public_url,
            token_ttl: Duration::from_secs(ttl),
        })
    }
}

/// The iPXE script for the machine netbooting from `mac` (normalized). An installer boot carries a bootstrap
/// token for that MAC, derived with the cluster secret from the MAC, an expiry and where the MAC stands in the
/// log (any member hands out the same one within a minute, and never one that was used): nothing is recorded, so
/// this unauthenticated endpoint never writes to the log.
pub fn netboot_script(app: &App, mac: &str) -> String {
    let config = &app.config.netboot;
    let fleet = app.node.reader.fleet();
    match sendan_core::machines::netboot::boot_for(&*fleet, mac) {
        Boot::LocalDisk { why } => sendan_core::machines::netboot::local_disk_script(&why),
        Boot::Rescue { node, why } => {
            sendan_core::machines::netboot::rescue_script(config.rescue.as_ref(), &why, &config.public_url, &node)
        }
        Boot::Installer { why, .. } if config.installer.is_none() => {
            sendan_core::machines::netboot::installer_script(None, &why, &config.public_url, "")
        }
        Boot::Installer { why, .. } => {
            let ttl = i64::try_from(config.token_ttl.as_millis()).unwrap_or(i64::MAX);
            let boot = crate::auth::StatelessToken {
                mac: mac.to_owned(),
                expires: crate::auth::bootstrap_expiry(crate::write::now(), ttl),
                epoch: crate::auth::bootstrap_epoch(&*fleet, mac),
            };
            let token = crate::auth::bootstrap_token(&app.cluster_secret, &boot);
            sendan_core::machines::netboot::installer_script(
                config.installer.as_ref(),
                &why,
                &config.public_url,
                &token,
            )
        }
    }
}

/// Wait until this member has applied (and stored) `seq`: a write answered through another member's leader
/// may not have reached this one yet.
pub async fn wait_applied(app: &App, seq: u64) -> Result<(), ApiError> {
    let mut applied = app.node.reader.subscribe();
    let reached = applied.wait_for(|s| *s >= seq);
    match tokio::time::timeout(Duration::from_secs(10), reached).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ApiError::Unavailable(format!("this member has not applied seq {seq} yet; retry"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_need_a_kernel_and_an_initrd_with_urls_ipxe_can_fetch() {
        let ok = NetbootFields {
            installer_kernel: Some("http://boot.lab/bzImage".into()),
            installer_initrd: Some("http://boot.lab/initrd".into()),
            installer_cmdline: Some(" init=/nix/store/x/init ".into()),
            ..NetbootFields::default()
        }
        .validate("http://10.0.0.1:7770")
        .unwrap();
        assert_eq!(ok.public_url, "http://10.0.0.1:7770");
        assert_eq!(ok.installer.unwrap().cmdline, "init=/nix/store/x/init");
        assert_eq!(ok.rescue, None);
        assert_eq!(ok.token_ttl, Duration::from_secs(DEFAULT_TOKEN_TTL_SECS));
        let cases = [
            (NetbootFields { installer_kernel: Some("http://k".into()), ..Default::default() }, "installer-initrd"),
            (NetbootFields { rescue_initrd: Some("http://i".into()), ..Default::default() }, "rescue-kernel"),
            (
                NetbootFields {
                    installer_kernel: Some("file:///k".into()),
                    installer_initrd: Some("http://i".into()),
                    ..Default::default()
                },
                "is not a URL starting with http:// or https:// or tftp://",
            ),
            (NetbootFields { public_url: Some("10.0.0.1:7770".into()), ..Default::default() }, "public-url"),
            (NetbootFields { rescue_cmdline: Some("quiet".into()), ..Default::default() }, "it needs `rescue-kernel`"),
            (NetbootFields { bootstrap_token_ttl_secs: Some(5), ..Default::default() }, "between 60 seconds"),
        ];
        for (fields, want) in cases {
            let err = fields.validate("http://a:1").unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
    }

    #[test]
    fn image_paths_without_a_scheme_are_files_below_the_boot_dir_served_by_the_member() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("installer")).unwrap();
        std::fs::write(dir.path().join("installer/bzImage"), "k").unwrap();
        std::fs::write(dir.path().join("installer/initrd img"), "i").unwrap();
        let fields = |kernel: &str, boot_dir: Option<&Path>| NetbootFields {
            public_url: Some("http://10.0.2.100".into()),
            boot_dir: boot_dir.map(Path::to_owned),
            installer_kernel: Some(kernel.into()),
            installer_initrd: Some("installer/initrd img".into()),
            ..NetbootFields::default()
        };
        let ok = fields("./installer/bzImage", Some(dir.path())).validate("http://a:1").unwrap();
        let image = ok.installer.unwrap();
        assert_eq!(image.kernel, "http://10.0.2.100/v1/boot/files/installer/bzImage");
        assert_eq!(image.initrd, "http://10.0.2.100/v1/boot/files/installer/initrd%20img");
        assert_eq!(ok.boot_dir.as_deref(), Some(dir.path()));
        let cases = [
            (fields("installer/bzImage", None), "no `boot-dir` is set"),
            (fields("installer/missing", Some(dir.path())), "is not a file"),
            (fields("../etc/passwd", Some(dir.path())), "plain relative path"),
            (fields("/etc/passwd", Some(dir.path())), "plain relative path"),
            (fields("installer/bzImage", Some(&dir.path().join("nope"))), "is not a directory"),
        ];
        for (f, want) in cases {
            let err = f.validate("http://a:1").unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
        assert_eq!(below(dir.path(), "a/.hidden"), None);
        assert_eq!(below(dir.path(), ""), None);
    }
}
