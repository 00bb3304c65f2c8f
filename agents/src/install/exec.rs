//! Carrying out install steps: [`Host`] runs them on the machine; [`Rehearsal`] (`--mode dry-run`) records the
//! commands that would partition and install (disko, nix, nixos-install) without running any, and does only
//! what stays inside the target and work directories: writing files and generating the host key there.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::InstallError;

/// Runs the side effects of install steps.
pub trait Executor {
    /// Run `argv` and return its standard output.
    fn run(&mut self, argv: &[String]) -> Result<String, InstallError>;
    /// Write `contents` to `path` with `mode`, creating its directory (mode 0700) first.
    fn write(&mut self, path: &Path, contents: &[u8], mode: u32) -> Result<(), InstallError>;
    /// Whether commands really run.
    fn rehearsal(&self) -> bool;
}

/// Executes on the machine the installer runs on.
pub struct Host;

impl Executor for Host {
    fn run(&mut self, argv: &[String]) -> Result<String, InstallError> {
        let (program, args) = argv.split_first().ok_or_else(|| InstallError::Config("an empty command".into()))?;
        let out = Command::new(program).args(args).stdin(Stdio::null()).stderr(Stdio::inherit()).output().map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => InstallError::MissingTool {
                    tool: program.clone(),
                    why: "the installer image must provide it".into(),
                },
                _ => InstallError::Command { command: argv.join(" "), why: e.to_string() },
            },
        )?;
        if !out.status.success() {
            return Err(InstallError::Command { command: argv.join(" "), why: out.status.to_string() });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn write(&mut self, path: &Path, contents: &[u8], mode: u32) -> Result<(), InstallError> {
        write_file(path, contents, mode)
    }

    fn rehearsal(&self) -> bool {
        false
    }
}

/// Records commands in `log` (and answers each with a placeholder) instead of running them.
pub struct Rehearsal {
    pub log: PathBuf,
}

impl Executor for Rehearsal {
    fn run(&mut self, argv: &[String]) -> Result<String, InstallError> {
        let line = argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| InstallError::Io { path: self.log.clone(), source })?;
        writeln!(f, "{line}").map_err(|source| InstallError::Io { path: self.log.clone(), source })?;
        Ok(format!("<output of {}>", argv.first().map(String::as_str).unwrap_or("")))
    }

    fn write(&mut self, path: &Path, contents: &[u8], mode: u32) -> Result<(), InstallError> {
        write_file(path, contents, mode)
    }

    fn rehearsal(&self) -> bool {
        true
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Write a file readable by the owner only (or `mode`), replacing it atomically; its directory is created
/// with mode 0700.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), InstallError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |source| InstallError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io)?;
    f.write_all(contents).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Generate an ed25519 host key pair at `path` with ssh-keygen and return the public key line. An existing pair
/// (an install that restarts) is kept. There is no fallback: without ssh-keygen the install stops, because the
/// private key must be made on the node and nowhere else.
pub fn host_key(path: &Path, comment: &str) -> Result<String, InstallError> {
    use std::os::unix::fs::DirBuilderExt;
    let public = path.with_extension("pub");
    if !(path.exists() && public.exists()) {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| InstallError::Io { path: dir.to_owned(), source })?;
        }
        let _ = std::fs::remove_file(path);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => InstallError::MissingTool {
                    tool: "ssh-keygen".into(),
                    why: "the SSH host key is generated on the node and nowhere else, so the installer image must \
                          include OpenSSH"
                        .into(),
                },
                _ => InstallError::Command { command: "ssh-keygen".into(), why: e.to_string() },
            })?;
        if !out.status.success() {
            return Err(InstallError::Command {
                command: "ssh-keygen".into(),
                why: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
    }
    let text = std::fs::read_to_string(&public).map_err(|source| InstallError::Io { path: public.clone(), source })?;
    Ok(text.trim().to_owned())
}

/// A new node token (`sendan-node-` and 64 hex digits from the kernel's random source), written to `path` with
/// mode 0600. Returns the token.
pub fn node_token(path: &Path) -> Result<String, InstallError> {
    let mut bytes = [0u8; 32];
    let random = Path::new("/dev/urandom");
    std::fs::File::open(random)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| InstallError::Io { path: random.to_owned(), source })?;
    let token = format!("sendan-node-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    write_file(path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rehearsal_records_commands_and_runs_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rehearsal { log: dir.path().join("commands.sh") };
        let out = r.run(&["disko".into(), "--mode".into(), "destroy,format,mount".into(), "a b".into()]).unwrap();
        assert_eq!(out, "<output of disko>");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("commands.sh")).unwrap(),
            "disko --mode destroy,format,mount 'a b'\n"
        );
    }

    #[test]
    fn files_are_private_and_tokens_are_random() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/token");
        let a = node_token(&path).unwrap();
        assert!(a.starts_with("sendan-node-") && a.len() == 12 + 64);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_ne!(a, node_token(&path).unwrap());
    }

    #[test]
    fn the_host_key_is_made_by_ssh_keygen_and_kept_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/ssh/ssh_host_ed25519_key");
        let public = host_key(&path, "root@vm-1").unwrap();
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with(" root@vm-1"), "{public}");
        assert!(sendan_core::machines::rules::ssh_public_key_problem(&public).is_none());
        assert_eq!(host_key(&path, "root@vm-1").unwrap(), public, "an existing key is kept");
        let private = std::fs::read_to_string(&path).unwrap();
        assert!(private.contains("OPENSSH PRIVATE KEY"));
    }
}
