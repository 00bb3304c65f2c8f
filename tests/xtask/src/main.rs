//! `cargo xtask`: the project's own tasks, rust-analyzer style — plain Rust, no dependencies, one command each.
//!
//! - `cargo xtask test [ARGS…]` provisions what the tests need when it is missing (Debian's `nix-bin`, with the
//!   build sandbox off as Debian ships it), then runs `cargo test --workspace [ARGS…]`. It installs with
//!   `apt-get` when it runs as root (or can use `sudo`), and otherwise says exactly what to run.
//! - `cargo xtask setup` only provisions: that includes QEMU with Debian's iPXE ROMs and the VM test image
//!   (`cargo xtask vm-image`, see `vm.rs`), built from Debian packages into `<target dir>/vm-image`, and the BMC
//!   emulators (`ipmitool` and a Python venv with sushy-tools and pyghmi in `<target dir>/bmc-venv`, see `bmc.rs`).
//! - `cargo xtask fuzz [--seconds S | --runs N] [TARGET…]` builds every fuzz target with cargo-fuzz (installing it
//!   when missing) and runs each one, printing how many executions each reached clean; a crash prints its
//!   reproducer (base64) and fails.

mod bmc;
mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => setup().and_then(|()| test(&args[1..])),
        Some("setup") => setup().map(|()| ExitCode::SUCCESS),
        Some("vm-image") => vm::image().map(|_| ExitCode::SUCCESS),
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test [ARGS…]      provision what the tests need, then `cargo test --workspace ARGS…`\n\
                 \x20      cargo xtask setup               only provision (the VM test image included)\n\
                 \x20      cargo xtask vm-image            build the VM test image into <target>/vm-image\n\
                 \x20      cargo xtask fuzz [--seconds S | --runs N] [TARGET…]   build and run the fuzz targets"
            );
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask: {e}");
        ExitCode::FAILURE
    })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("tests/xtask is two levels down").to_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run `apt-get install` for `packages`, as root or through sudo; otherwise the error says what to run.
fn apt_install(packages: &[&str], why: &str) -> Result<(), String> {
    let line = format!("apt-get install -y {}", packages.join(" "));
    let sudo = if is_root() {
        None
    } else if have("sudo") {
        Some("sudo")
    } else {
        return Err(format!("{why}; install it as root: `{line}` (then run this again)"));
    };
    if !have("apt-get") {
        return Err(format!("{why}, and this machine has no apt-get; install {} by hand", packages.join(", ")));
    }
    eprintln!("xtask: {why}: {}{line}", sudo.map(|s| format!("{s} ")).unwrap_or_default());
    let run = |args: &[&str]| -> Result<(), String> {
        let mut cmd = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("env").arg("DEBIAN_FRONTEND=noninteractive").args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]).env("DEBIAN_FRONTEND", "noninteractive");
                c
            }
        };
        let status = cmd.status().map_err(|e| format!("cannot run {}: {e}", args[0]))?;
        if status.success() { Ok(()) } else { Err(format!("`{}` failed ({status})", args.join(" "))) }
    };
    run(&["apt-get", "update", "-q"])?;
    let mut install = vec!["apt-get", "install", "-y", "-q"];
    install.extend_from_slice(packages);
    run(&install)
}

/// Provision what `cargo test --workspace` needs: `nix-instantiate` and `nix-build` (Debian's `nix-bin`), with
/// the build sandbox off (it does not work on Debian; Debian's own nix.conf says so).
fn setup() -> Result<(), String> {
    if !have("nix-instantiate") || !have("nix-build") {
        apt_install(&["nix-bin"], "nix-instantiate is missing (the Nix library and nix-agent tests need it)")?;
    }
    // The installer generates the node's SSH host key with ssh-keygen.
    if !have("ssh-keygen") {
        apt_install(&["openssh-client"], "ssh-keygen is missing (the installer tests generate host keys with it)")?;
    }
    let conf = Path::new("/etc/nix/nix.conf");
    let text = std::fs::read_to_string(conf).unwrap_or_default();
    let sandbox = text.lines().map(str::trim).filter(|l| l.starts_with("sandbox") && l.contains('=')).last();
    match sandbox.map(|l| l.split('=').nth(1).unwrap_or_default().trim().to_owned()) {
        Some(v) if v == "false" => {}
        Some(v) => return Err(format!("{} says `sandbox = {v}`; the tests need `sandbox = false`", conf.display())),
        None if is_root() => {
            eprintln!("xtask: {} does not set `sandbox`: setting it to false, as Debian ships it", conf.display());
            std::fs::create_dir_all("/etc/nix").map_err(|e| format!("cannot create /etc/nix: {e}"))?;
            std::fs::write(
                conf,
                format!("{text}{}sandbox = false\n", if text.ends_with('\n') || text.is_empty() { "" } else { "\n" }),
            )
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        }
        None => return Err(format!("add `sandbox = false` to {} (as root), then run this again", conf.display())),
    }
    let two = Command::new("nix-instantiate").args(["--eval", "-E", "1 + 1"]).output();
    match two {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "2" => {}
        Ok(o) => {
            return Err(format!("nix-instantiate cannot evaluate `1 + 1`: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Err(e) => return Err(format!("cannot run nix-instantiate: {e}")),
    }
    // The Redfish and IPMI BMC emulators (sushy-tools, pyghmi) and ipmitool, for the out-of-band tests.
    bmc::provision()?;
    // QEMU, iPXE and the VM image the bare-metal tests netboot.
    vm::image().map(|_| ())
}

fn test(args: &[String]) -> Result<ExitCode, String> {
    let status = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn fuzz(args: &[String]) -> Result<ExitCode, String> {
    let mut limit = vec!["-max_total_time=25".to_owned()];
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => limit = vec![format!("-max_total_time={}", it.next().ok_or("--seconds needs a number")?)],
            "--runs" => limit = vec![format!("-runs={}", it.next().ok_or("--runs needs a number")?)],
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => targets.push(other.to_owned()),
        }
    }
    if !have("cc") || !have("c++") {
        apt_install(&["build-essential"], "a C/C++ compiler is missing (libFuzzer is C++)")?;
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let path = format!("{}:{}", home.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let fuzz_dir = root().join("fuzz");
    // cargo-fuzz passes nightly-only flags (-Zsanitizer=address and friends); RUSTC_BOOTSTRAP=1 lets the stable
    // toolchain take them, for these commands alone.
    let cargo_fuzz = || {
        let mut c = cargo();
        c.arg("fuzz").current_dir(&fuzz_dir).env("PATH", &path).env("RUSTC_BOOTSTRAP", "1");
        c
    };
    if !cargo_fuzz().arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
        eprintln!("xtask: cargo-fuzz is missing: cargo install cargo-fuzz --locked");
        let ok = cargo().args(["install", "cargo-fuzz", "--locked"]).status().is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot install cargo-fuzz".into());
        }
    }
    if !cargo_fuzz().arg("build").status().is_ok_and(|s| s.success()) {
        return Err("cargo fuzz build failed".into());
    }
    if targets.is_empty() {
        let out = cargo_fuzz().arg("list").output().map_err(|e| format!("cargo fuzz list: {e}"))?;
        targets = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    }
    let mut summary = Vec::new();
    for target in &targets {
        let (corpus, seeds) = (format!("corpus/{target}"), format!("seeds/{target}"));
        for d in [&corpus, &seeds] {
            std::fs::create_dir_all(fuzz_dir.join(d)).map_err(|e| format!("cannot create fuzz/{d}: {e}"))?;
        }
        let mut fuzzer_args = limit.clone();
        fuzzer_args.extend(["-timeout=10".into(), "-print_final_stats=1".into()]);
        if fuzz_dir.join(format!("dicts/{target}.dict")).exists() {
            fuzzer_args.push(format!("-dict=dicts/{target}.dict"));
        }
        eprintln!("xtask: fuzzing {target} ({})", limit.join(" "));
        let started = Instant::now();
        let out = cargo_fuzz()
            .args(["run", target, &corpus, &seeds, "--"])
            .args(&fuzzer_args)
            .output()
            .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let executions = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| "?".into());
        if !out.status.success() {
            eprintln!("{log}");
            for entry in std::fs::read_dir(fuzz_dir.join("artifacts").join(target)).into_iter().flatten().flatten() {
                let bytes = std::fs::read(entry.path()).unwrap_or_default();
                eprintln!(
                    "\nreproducer {} (base64; `base64 -d > crash && cargo fuzz run {target} crash`):",
                    entry.path().display()
                );
                eprintln!("{}", base64(&bytes));
            }
            return Err(format!("fuzz target {target} failed after {executions} executions"));
        }
        summary.push((target.clone(), executions, started.elapsed().as_secs()));
    }
    println!("{:<22} {:>14} {:>8}", "TARGET", "EXECUTIONS", "SECONDS");
    for (t, n, s) in summary {
        println!("{t:<22} {n:>14} {s:>8}  clean");
    }
    Ok(ExitCode::SUCCESS)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
