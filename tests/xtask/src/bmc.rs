//! The BMC emulators the out-of-band tests drive: Debian's `ipmitool` (the IPMI client), and a Python virtualenv
//! at `<target dir>/bmc-venv` with `sushy-tools` (`sushy-emulator --fake`, a Redfish BMC without libvirt),
//! `pyghmi` (whose `pyghmi.ipmi.bmc.Bmc` the harness's `tests/fixtures/bmc/fakebmc.py` subclasses) and `bcrypt`
//! (sushy's htpasswd authentication needs it). The harness (`tests/src/bmc.rs`) finds the venv at the same place.
//!
//! The venv is made once: a marker file in it lists the requirements it was installed with, and a venv whose
//! marker matches is left alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{apt_install, have};

/// What `pip install` puts into the venv, pinned: the tests rely on these versions' behaviour (sushy's fake
/// driver, pyghmi's BMC base class).
pub const REQUIREMENTS: [&str; 3] = ["sushy-tools==2.2.0", "pyghmi==1.6.19", "bcrypt==5.0.0"];

/// The file in the venv that lists the requirements it was installed with.
const MARKER: &str = "sendan-requirements.txt";

/// `<target dir>/bmc-venv`.
pub fn venv_dir() -> PathBuf {
    super::vm::target_dir().join("bmc-venv")
}

/// Debian's Python when there is one (`python3-venv` is what `apt-get` can fix), else the first on `PATH`.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

fn python_has_venv() -> bool {
    Command::new(python())
        .args(["-c", "import venv, ensurepip"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Install `ipmitool` and the venv when they are missing.
pub fn provision() -> Result<(), String> {
    let started = Instant::now();
    if !have("ipmitool") {
        apt_install(&["ipmitool"], "ipmitool is missing (the IPMI BMC tests drive the fake BMC with it)")?;
    }
    if !have(python()) {
        apt_install(&["python3", "python3-venv"], "python3 is missing (the BMC emulators are Python)")?;
    } else if !python_has_venv() {
        apt_install(&["python3-venv"], "`python3 -m venv` is not available (the BMC emulators live in a venv)")?;
    }
    let venv = venv_dir();
    let wanted = REQUIREMENTS.join("\n") + "\n";
    let marker = venv.join(MARKER);
    let imports = || {
        Command::new(venv.join("bin/python"))
            .args(["-c", "import sushy_tools.emulator.main, pyghmi.ipmi.bmc, bcrypt"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let marked = std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if marked && venv.join("bin/sushy-emulator").exists() && imports() {
        return Ok(());
    }
    let _ = std::fs::remove_file(&marker);
    // A venv whose Python is gone (or broken) is made anew; one that only lacks packages is completed.
    let python_works = Command::new(venv.join("bin/python")).args(["-c", ""]).status().is_ok_and(|s| s.success());
    if !python_works {
        eprintln!("xtask: creating the BMC emulators' venv in {}", venv.display());
        let _ = std::fs::remove_dir_all(&venv);
        let status = Command::new(python())
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| format!("cannot run {} -m venv: {e}", python()))?;
        if !status.success() {
            return Err(format!("`{} -m venv {}` failed ({status})", python(), venv.display()));
        }
    }
    eprintln!("xtask: pip install {} into {}", REQUIREMENTS.join(" "), venv.display());
    let status = Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(REQUIREMENTS)
        .status()
        .map_err(|e| format!("cannot run the venv's pip: {e}"))?;
    if !status.success() {
        return Err(format!("pip install {} failed ({status})", REQUIREMENTS.join(" ")));
    }
    if !imports() {
        return Err(format!("the venv in {} cannot import sushy-tools, pyghmi and bcrypt", venv.display()));
    }
    std::fs::write(&marker, wanted).map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    eprintln!("xtask: the BMC emulators are installed ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}
