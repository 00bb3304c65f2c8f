//! Hardware facts of a machine, read from `/proc`, `/sys`, `/dev/disk/by-id` and `/etc/machine-id`.
//!
//! [`collect`] reads everything below a root directory that stands in for `/` (see `root.rs`), so tests run
//! it on fixture trees and `sendan-agent facts --root DIR` on a mounted system. Reads follow one
//! rule: what the install plan is computed from — `/proc/cpuinfo`, `/proc/meminfo`, each disk's `size` —
//! must be readable and well-formed, or collection fails naming the file, because a plan made from a guess
//! is worse than none. Descriptive attributes the kernel may withhold (DMI serials readable only by root,
//! `speed` of a link that is down, a drive without a serial) are `None` (or `false`) when withheld, and an
//! error naming the file only when present but malformed. Disks and NICs are sorted by kernel name.

mod cpu;
mod disks;
mod nics;
mod root;

use std::io;
use std::path::{Path, PathBuf};

use sendan_core::facts::{Dmi, HardwareFacts};

use root::Root;

/// Why hardware facts could not be collected. `path` is the file on the host, below the root.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is malformed: {why}", path.display())]
    Malformed { path: PathBuf, why: String },
}

/// Collects the hardware facts of the machine whose `/` is `root`.
pub fn collect(root: &Path) -> Result<HardwareFacts, FactsError> {
    let root = Root::new(root);
    Ok(HardwareFacts {
        machine_id: machine_id(&root)?,
        dmi: dmi(&root)?,
        cpu: cpu::collect(&root)?,
        memory_bytes: memory_bytes(&root)?,
        disks: disks::collect(&root)?,
        nics: nics::collect(&root)?,
    })
}

/// systemd writes `uninitialized` into `/etc/machine-id` until the first boot completes; that is no id.
fn machine_id(root: &Root) -> Result<Option<String>, FactsError> {
    Ok(root.optional("/etc/machine-id")?.filter(|id| id != "uninitialized"))
}

/// `product_uuid` and `product_serial` are readable by root only: run unprivileged, they are `None`.
/// Values are reported as the firmware gives them, placeholders such as `To Be Filled By O.E.M.` included.
fn dmi(root: &Root) -> Result<Dmi, FactsError> {
    let field = |name: &str| root.optional(&format!("/sys/class/dmi/id/{name}"));
    Ok(Dmi {
        system_uuid: field("product_uuid")?,
        serial: field("product_serial")?,
        vendor: field("sys_vendor")?,
        product: field("product_name")?,
    })
}

fn memory_bytes(root: &Root) -> Result<u64, FactsError> {
    const MEMINFO: &str = "/proc/meminfo";
    let text = root.required(MEMINFO)?;
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .ok_or_else(|| root.malformed(MEMINFO, "it has no `MemTotal` line"))?;
    let mut words = value.split_whitespace();
    let kibibytes = match (words.next(), words.next(), words.next()) {
        (Some(number), Some("kB"), None) => number.parse::<u64>().ok(),
        _ => None,
    };
    kibibytes
        .and_then(|kib| kib.checked_mul(1024))
        .ok_or_else(|| root.malformed(MEMINFO, format!("`MemTotal:{value}` is not `<number> kB`")))
}
