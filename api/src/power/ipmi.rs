//! The IPMI driver: Debian's `ipmitool` over lanplus (IPMI 2.0, cipher suite 3), the password handed over in its
//! file (`-f`), never on a command line.

use std::time::Duration;

use sendan_core::event::{BootDevice, BootOverride, Power};
use sendan_core::spec::Bmc;

use super::{BmcError, Reset, err};

pub struct Ipmi {
    host: String,
    port: u16,
    user: String,
    password_file: String,
}

/// How long one `ipmitool` call may take (it retries a lost UDP datagram itself).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

impl Ipmi {
    pub fn new(bmc: &Bmc) -> Result<Ipmi, BmcError> {
        let (host, port) = match bmc.address.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| err(format!("bad IPMI port in '{}'", bmc.address)))?),
            None => (bmc.address.as_str(), 623),
        };
        Ok(Ipmi { host: host.to_owned(), port, user: bmc.user.clone(), password_file: bmc.password_file.clone() })
    }

    pub async fn power(&self) -> Result<Power, BmcError> {
        let out = self.run(&["chassis", "power", "status"]).await?;
        if out.contains("is on") {
            Ok(Power::On)
        } else if out.contains("is off") {
            Ok(Power::Off)
        } else {
            Err(err(format!(
                "ipmitool at {}:{} reported an unknown power status: {}",
                self.host,
                self.port,
                out.trim()
            )))
        }
    }

    pub async fn reset(&self, reset: Reset) -> Result<(), BmcError> {
        let verb = match reset {
            Reset::On => "on",
            Reset::ForceOff => "off",
            Reset::GracefulShutdown => "soft",
        };
        self.run(&["chassis", "power", verb]).await.map(drop)
    }

    pub async fn set_boot(&self, boot: BootOverride) -> Result<(), BmcError> {
        let device = match boot.device {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
        };
        let mut args = vec!["chassis", "bootdev", device];
        if !boot.once {
            args.push("options=persistent");
        }
        self.run(&args).await.map(drop)
    }

    async fn run(&self, args: &[&str]) -> Result<String, BmcError> {
        let port = self.port.to_string();
        let mut cmd = tokio::process::Command::new("ipmitool");
        cmd.args(["-I", "lanplus", "-C", "3", "-N", "2", "-R", "3", "-H", &self.host, "-p", &port])
            .args(["-U", &self.user, "-f", &self.password_file])
            .args(args)
            .kill_on_drop(true);
        let what = format!("`ipmitool {}` at {}:{}", args.join(" "), self.host, self.port);
        let out = match tokio::time::timeout(CALL_TIMEOUT, cmd.output()).await {
            Err(_) => return Err(err(format!("{what} did not answer within {} s", CALL_TIMEOUT.as_secs()))),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(err("ipmitool is not installed on this server (Debian: apt install ipmitool)"));
            }
            Ok(Err(e)) => return Err(err(format!("cannot run {what}: {e}"))),
            Ok(Ok(out)) => out,
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut why = stderr.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("; ");
        if why.contains("Unable to establish IPMI v2") || why.contains("RAKP") {
            why = format!(
                "the BMC refused user '{}' with the password in {} (or is not reachable): {why}",
                self.user, self.password_file
            );
        }
        Err(err(format!("{what} failed: {why}")))
    }
}
