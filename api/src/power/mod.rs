//! Talking to baseboard management controllers: Redfish over HTTP(S) and IPMI through `ipmitool` lanplus, behind
//! one small set of primitives (read the power, reset, set the next boot), and [`execute`], which carries out a
//! power request with them the way Ironic maps its power states — polling the BMC until it reports the state
//! asked for, or the deadline passes. The password is read from the declared file each time; it never leaves
//! this module except to the BMC.

mod ipmi;
mod redfish;

use std::time::{Duration, Instant};

use sendan_core::event::{BootOverride, Power, PowerAction};
use sendan_core::spec::{Bmc, BmcDriver};

/// A BMC failure, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BmcError(pub String);

pub(crate) fn err(s: impl Into<String>) -> BmcError {
    BmcError(s.into())
}

/// The power transitions a BMC is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    On,
    ForceOff,
    GracefulShutdown,
}

/// A connected BMC driver.
pub enum Driver {
    Redfish(redfish::Redfish),
    Ipmi(ipmi::Ipmi),
}

impl Driver {
    /// A driver for `bmc`, with the password read from its file now.
    pub async fn connect(bmc: &Bmc) -> Result<Driver, BmcError> {
        let password = read_password(&bmc.password_file)?;
        match bmc.driver {
            BmcDriver::Redfish => Ok(Driver::Redfish(redfish::Redfish::connect(bmc, password).await?)),
            BmcDriver::Ipmi => Ok(Driver::Ipmi(ipmi::Ipmi::new(bmc)?)),
        }
    }

    pub async fn power(&self) -> Result<Power, BmcError> {
        match self {
            Driver::Redfish(r) => r.power().await,
            Driver::Ipmi(i) => i.power().await,
        }
    }

    pub async fn reset(&self, reset: Reset) -> Result<(), BmcError> {
        match self {
            Driver::Redfish(r) => r.reset(reset).await,
            Driver::Ipmi(i) => i.reset(reset).await,
        }
    }

    pub async fn set_boot(&self, boot: BootOverride) -> Result<(), BmcError> {
        match self {
            Driver::Redfish(r) => r.set_boot(boot).await,
            Driver::Ipmi(i) => i.set_boot(boot).await,
        }
    }

    /// A power cycle in one call, where the BMC offers it: `Ok(false)` when it does not (the caller powers off
    /// and on instead).
    async fn power_cycle(&self) -> Result<bool, BmcError> {
        match self {
            Driver::Redfish(r) => r.power_cycle().await,
            Driver::Ipmi(_) => Ok(false),
        }
    }
}

fn read_password(path: &str) -> Result<String, BmcError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!("cannot read the BMC password file {path} on this server ({e}); every Sendan server needs it"))
    })?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(err(format!("the BMC password file {path} is empty")));
    }
    Ok(password)
}

/// Carry out a request on `driver`: set the boot device, then the power action, polling until the BMC reports
/// the state asked for or `deadline` passes. The power state last read.
pub async fn execute(
    driver: &Driver,
    action: Option<PowerAction>,
    boot: Option<BootOverride>,
    deadline: Duration,
) -> Result<Power, BmcError> {
    let until = Instant::now() + deadline;
    if let Some(b) = boot {
        driver.set_boot(b).await?;
    }
    let now = driver.power().await?;
    match action {
        None => Ok(now),
        Some(PowerAction::On) => {
            if now != Power::On {
                driver.reset(Reset::On).await?;
            }
            wait(driver, Power::On, until, deadline).await
        }
        Some(PowerAction::Off) => {
            if now != Power::Off {
                driver.reset(Reset::ForceOff).await?;
            }
            wait(driver, Power::Off, until, deadline).await
        }
        Some(PowerAction::SoftOff) => {
            if now != Power::Off {
                driver.reset(Reset::GracefulShutdown).await?;
            }
            wait(driver, Power::Off, until, deadline).await
        }
        Some(PowerAction::Reboot) => {
            if now == Power::Off {
                driver.reset(Reset::On).await?;
            } else if !driver.power_cycle().await? {
                // As Ironic does where PowerCycle is not offered: off, the boot device again (some BMCs forget a
                // one-time override at power off), on.
                driver.reset(Reset::ForceOff).await?;
                wait(driver, Power::Off, until, deadline).await?;
                if let Some(b) = boot {
                    driver.set_boot(b).await?;
                }
                driver.reset(Reset::On).await?;
            }
            wait(driver, Power::On, until, deadline).await
        }
    }
}

/// Poll the BMC until it reports `want` (a BMC applies a change a few seconds after it accepts it).
async fn wait(driver: &Driver, want: Power, until: Instant, deadline: Duration) -> Result<Power, BmcError> {
    loop {
        if driver.power().await? == want {
            return Ok(want);
        }
        if Instant::now() >= until {
            return Err(err(format!("the BMC did not report power {} within {} s", want.as_str(), deadline.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // poll pacing
    }
}
