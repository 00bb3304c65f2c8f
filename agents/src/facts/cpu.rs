//! CPU facts from `/proc/cpuinfo`, with `/sys/devices/system/cpu/cpu*/topology` when cpuinfo has no topology.
//!
//! x86 cpuinfo names each logical processor's `physical id` (socket) and `core id`, so sockets are the
//! distinct physical ids, cores the distinct (physical id, core id) pairs and threads the processor count.
//! arm64 and some hypervisors print neither; then the kernel's sysfs topology gives the same two numbers,
//! and where that is missing too each processor is counted as one core of a single socket, which is what
//! the machine can tell us.

use std::collections::BTreeSet;

use sendan_core::facts::Cpu;

use super::FactsError;
use super::root::Root;

const CPUINFO: &str = "/proc/cpuinfo";

/// One `processor` block of `/proc/cpuinfo`.
#[derive(Debug, Default, PartialEq)]
struct Processor {
    number: u32,
    physical_id: Option<u32>,
    core_id: Option<u32>,
}

/// What `/proc/cpuinfo` says, before topology gaps are filled from sysfs.
#[derive(Debug, Default, PartialEq)]
struct CpuInfo {
    model: String,
    processors: Vec<Processor>,
    virtualization: Vec<String>,
}

pub(super) fn collect(root: &Root) -> Result<Cpu, FactsError> {
    let text = root.required(CPUINFO)?;
    let mut info = parse(&text).map_err(|why| root.malformed(CPUINFO, why))?;
    if info.processors.iter().any(|p| p.physical_id.is_none()) {
        for processor in &mut info.processors {
            let dir = format!("/sys/devices/system/cpu/cpu{}/topology", processor.number);
            let package = topology_id(root, &format!("{dir}/physical_package_id"))?;
            let core = topology_id(root, &format!("{dir}/core_id"))?;
            if let (Some(package), Some(core)) = (package, core) {
                processor.physical_id = Some(package);
                processor.core_id = Some(core);
            }
        }
    }
    Ok(summarize(info))
}

/// A sysfs topology id; the kernel prints -1 when firmware did not describe packages, which means "one".
fn topology_id(root: &Root, path: &str) -> Result<Option<u32>, FactsError> {
    let Some(text) = root.optional(path)? else { return Ok(None) };
    let id: i64 = text.parse().map_err(|_| root.malformed(path, format!("expected an integer, found `{text}`")))?;
    Ok(Some(u32::try_from(id).unwrap_or(0)))
}

fn parse(text: &str) -> Result<CpuInfo, String> {
    let mut info = CpuInfo::default();
    let mut model_name = None;
    let mut power_cpu = None;
    let (mut arm_implementer, mut arm_part) = (None, None);
    let mut flags = BTreeSet::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        let number =
            |what: &str| value.parse::<u32>().map_err(|_| format!("`{what}` should be a number, found `{value}`"));
        match key {
            "processor" => info.processors.push(Processor { number: number(key)?, ..Processor::default() }),
            "physical id" | "core id" => {
                let id = number(key)?;
                let processor =
                    info.processors.last_mut().ok_or_else(|| format!("`{key}` appears before any `processor`"))?;
                if key == "physical id" {
                    processor.physical_id = Some(id);
                } else {
                    processor.core_id = Some(id);
                }
            }
            "model name" => {
                model_name.get_or_insert_with(|| value.to_owned());
            }
            // POWER: `cpu : POWER9 (raw), altivec supported`.
            "cpu" => {
                power_cpu.get_or_insert_with(|| value.to_owned());
            }
            "CPU implementer" => {
                arm_implementer.get_or_insert_with(|| value.to_owned());
            }
            "CPU part" => {
                arm_part.get_or_insert_with(|| value.to_owned());
            }
            // Only the x86 `flags` line; `vmx flags` lists VT-x sub-features, not the CPU's.
            "flags" => flags.extend(value.split_whitespace().filter(|f| matches!(*f, "vmx" | "svm"))),
            _ => {}
        }
    }
    if info.processors.is_empty() {
        return Err("it lists no `processor`".to_owned());
    }
    info.model = model_name
        .or(power_cpu)
        .or_else(|| Some(arm_model(arm_implementer.as_deref()?, arm_part.as_deref()?)))
        .unwrap_or_default();
    // Intel's before AMD's; a CPU has at most one of them.
    info.virtualization = ["vmx", "svm"].into_iter().filter(|f| flags.contains(f)).map(str::to_owned).collect();
    Ok(info)
}

/// arm64 cpuinfo has no `model name`, only the MIDR implementer and part numbers; these are the cores found
/// in servers and boards Sendan expects, named as `lscpu` names them. Others keep their numbers.
fn arm_model(implementer: &str, part: &str) -> String {
    let known = match (implementer, part) {
        ("0x41", "0xd03") => Some("ARM Cortex-A53"),
        ("0x41", "0xd04") => Some("ARM Cortex-A35"),
        ("0x41", "0xd05") => Some("ARM Cortex-A55"),
        ("0x41", "0xd07") => Some("ARM Cortex-A57"),
        ("0x41", "0xd08") => Some("ARM Cortex-A72"),
        ("0x41", "0xd09") => Some("ARM Cortex-A73"),
        ("0x41", "0xd0a") => Some("ARM Cortex-A75"),
        ("0x41", "0xd0b") => Some("ARM Cortex-A76"),
        ("0x41", "0xd0c") => Some("ARM Neoverse-N1"),
        ("0x41", "0xd0d") => Some("ARM Cortex-A77"),
        ("0x41", "0xd40") => Some("ARM Neoverse-V1"),
        ("0x41", "0xd41") => Some("ARM Cortex-A78"),
        ("0x41", "0xd49") => Some("ARM Neoverse-N2"),
        ("0x41", "0xd4f") => Some("ARM Neoverse-V2"),
        ("0xc0", "0xac3") => Some("Ampere Ampere-1"),
        ("0xc0", "0xac4") => Some("Ampere Ampere-1a"),
        _ => None,
    };
    known.map_or_else(|| format!("CPU implementer {implementer} part {part}"), str::to_owned)
}

fn summarize(info: CpuInfo) -> Cpu {
    let threads = info.processors.len();
    let (sockets, cores) = if info.processors.iter().all(|p| p.physical_id.is_some()) {
        let sockets: BTreeSet<_> = info.processors.iter().map(|p| p.physical_id).collect();
        // A processor without `core id` is a core of its own, keyed by its number.
        let cores: BTreeSet<_> = info.processors.iter().map(|p| (p.physical_id, p.core_id.ok_or(p.number))).collect();
        (sockets.len(), cores.len())
    } else {
        (1, threads)
    };
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Cpu {
        model: info.model,
        sockets: count(sockets),
        cores: count(cores),
        threads: count(threads),
        virtualization: info.virtualization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(number: u32, topology: Option<(u32, u32)>, flags: &str) -> String {
        let mut text = format!("processor\t: {number}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\n");
        if let Some((package, core)) = topology {
            text += &format!("physical id\t: {package}\ncore id\t\t: {core}\n");
        }
        text + &format!("flags\t\t: fpu {flags} sse2\nvmx flags\t: vnmi ept\n\n")
    }

    #[test]
    fn sockets_and_cores_are_distinct_ids_not_maxima() {
        // Given two sockets whose core ids have gaps, each core with two hyper-threads.
        let mut text = String::new();
        let mut number = 0;
        for _thread in 0..2 {
            for package in 0..2 {
                for core in [0, 4, 9] {
                    text += &block(number, Some((package, core)), "vmx");
                    number += 1;
                }
            }
        }
        // Then.
        let cpu = summarize(parse(&text).unwrap());
        assert_eq!((cpu.sockets, cpu.cores, cpu.threads), (2, 6, 12));
        assert_eq!(cpu.virtualization, ["vmx"]);
        assert_eq!(cpu.model, "Test CPU");
    }

    #[test]
    fn without_any_topology_each_processor_is_a_core_of_one_socket() {
        let text: String = (0..3).map(|n| block(n, None, "hypervisor")).collect();
        let cpu = summarize(parse(&text).unwrap());
        assert_eq!((cpu.sockets, cpu.cores, cpu.threads), (1, 3, 3));
        assert!(cpu.virtualization.is_empty(), "`vmx flags` must not count as the `vmx` flag");
    }

    #[test]
    fn sysfs_topology_fills_in_for_cpuinfo_without_physical_id() {
        // Given an arm64 cpuinfo (no topology) on a two-socket machine whose sysfs knows the packages.
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for cpu in 0..4u32 {
            text += &format!("processor\t: {cpu}\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n\n");
            let topology = dir.path().join(format!("sys/devices/system/cpu/cpu{cpu}/topology"));
            std::fs::create_dir_all(&topology).unwrap();
            std::fs::write(topology.join("physical_package_id"), format!("{}\n", cpu / 2)).unwrap();
            std::fs::write(topology.join("core_id"), format!("{}\n", cpu % 2)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(dir.path().join("proc/cpuinfo"), text).unwrap();
        // Then.
        let cpu = collect(&Root::new(dir.path())).unwrap();
        assert_eq!((cpu.sockets, cpu.cores, cpu.threads), (2, 4, 4));
        assert_eq!(cpu.model, "ARM Neoverse-N1");
    }

    #[test]
    fn models_fall_back_from_model_name_to_power_to_arm_ids() {
        let power = "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\nclock\t\t: 3800.000000MHz\n";
        assert_eq!(parse(power).unwrap().model, "POWER9 (raw), altivec supported");
        let unknown_arm = "processor\t: 0\nCPU implementer\t: 0x61\nCPU part\t: 0x022\n";
        assert_eq!(parse(unknown_arm).unwrap().model, "CPU implementer 0x61 part 0x022");
        assert_eq!(parse("processor\t: 0\n").unwrap().model, "");
    }

    #[test]
    fn malformed_cpuinfo_is_refused_with_the_reason() {
        assert_eq!(parse("MemTotal: 12 kB\n").unwrap_err(), "it lists no `processor`");
        assert_eq!(parse("processor\t: zero\n").unwrap_err(), "`processor` should be a number, found `zero`");
        assert_eq!(parse("core id\t: 1\nprocessor\t: 0\n").unwrap_err(), "`core id` appears before any `processor`");
    }
}
