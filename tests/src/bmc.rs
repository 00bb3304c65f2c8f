//! BMC emulators for the out-of-band tests: a Redfish BMC (`sushy-emulator --fake` from sushy-tools: fake systems,
//! no libvirt) over HTTPS with basic authentication, and an IPMI BMC (`tests/fixtures/bmc/fakebmc.py` on pyghmi)
//! driven with Debian's `ipmitool -I lanplus -C 3`. Both come from `cargo xtask setup` (a venv in
//! `<target dir>/bmc-venv`, and `ipmitool`); a test that needs them and finds them missing fails, it never skips.
//!
//! Network safety: both emulators bind 127.0.0.1 only, on a port the kernel picks (they report it once they
//! listen, so there is no race for a free port).
//!
//! What sushy's fake driver does (sushy-tools 2.2.0), which clients must cope with:
//! - a power change lands up to 11 s after the `ComputerSystem.Reset` (204 at once; the driver picks
//!   `int(now) + 1..=11` s, so sometimes within 0.1 s): clients poll. The change is
//!   applied when the system is next *read* (any GET of it), not on a timer; a restart reads `Off` at once, then
//!   `On`.
//! - `ResetType` `On`, `ForceOn`, `ForceOff`, `GracefulShutdown`, `GracefulRestart`, `ForceRestart` work; anything
//!   else (`PowerCycle`, `PushPowerButton`, and even `Nmi`, which `ResetType@Redfish.AllowableValues` lists)
//!   answers 501 with a Redfish error body ("Power state PowerCycle is not supported").
//! - a boot override PATCH answers 204 and reads back `BootSourceOverrideEnabled: Continuous` whatever was sent
//!   (`Once` included); the target is not checked against the allowable values.
//! - `/redfish/v1/` answers without authentication; everything below it needs it (401 otherwise).
//! - with a notification URL, every change of a system (a pending power change, its landing, a boot override) is
//!   PUT there as the system's JSON, synchronously, from the request that made or observed it; while nothing
//!   listens there, that request fails (500), so the listener must outlive the emulator's use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

/// How long an emulator may take to start listening and answer.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The user both emulators know.
pub const USER: &str = "admin";

/// How long sushy's fake driver may take to land a power change (at most 11 s), plus slack for a loaded machine.
pub const POWER_CHANGE: Duration = Duration::from_secs(20);

/// The cargo target directory, found as `vm::image_dir` finds it (respecting `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| crate::bootstrap::repo().join("target"))
}

/// The emulators' venv (`<target dir>/bmc-venv`); panics, saying to run `cargo xtask setup`, when it is missing.
pub fn venv() -> PathBuf {
    let dir = target_dir().join("bmc-venv");
    let installed =
        ["sendan-requirements.txt", "bin/python", "bin/sushy-emulator"].iter().all(|f| dir.join(f).exists());
    assert!(
        installed,
        "the BMC emulators (sushy-tools, pyghmi) are not installed in {}: run `cargo xtask setup`",
        dir.display()
    );
    dir
}

/// Panics, saying to run `cargo xtask setup`, when `ipmitool` is missing.
fn require_ipmitool() {
    let ok = Command::new("ipmitool").arg("-V").output().is_ok_and(|o| o.status.success());
    assert!(ok, "ipmitool is not installed: run `cargo xtask setup`");
}

/// The last lines of a log file, for a panic message.
fn tail(path: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A password unlikely to match anything else on the machine (not a secret: tests only). 16 characters: IPMI
/// passwords are at most 20 bytes, and some clients stop at 16.
fn fresh_password() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("bmc-{:012x}", mixed & 0xffff_ffff_ffff)
}

/// Write `password` to `path` (no trailing newline), readable by its owner only.
fn write_password(path: &Path, password: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, password).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A started emulator: its process, killed when dropped, and its directory (config, state, `log`).
struct Emulator {
    name: &'static str,
    child: Child,
    log: PathBuf,
    dir: TempDir,
}

impl Emulator {
    fn spawn(name: &'static str, dir: TempDir, cmd: &mut Command) -> Emulator {
        let log = dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Emulator { name, child, log, dir }
    }

    /// Append a line of the harness's own to the log (what it saw while waiting, for the panic message).
    fn note(&self, line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.log).unwrap();
        let _ = writeln!(f, "harness: {line}");
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Panic about a failed start, with the log's tail.
    fn fail(&self, why: &str) -> ! {
        panic!("{} did not start: {why}; the end of its log ({}):\n{}", self.name, self.log.display(), tail(&self.log))
    }

    /// Poll (with the `STARTUP` deadline) until `check` answers `Some`; fail with the log when the process exits or
    /// the deadline passes.
    fn poll<T>(&mut self, what: &str, mut check: impl FnMut(&Emulator) -> Option<T>) -> T {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                self.fail(&format!("it exited ({status}) before {what}"));
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {STARTUP:?} waiting until {what}"));
            }
            std::thread::sleep(Duration::from_millis(50)); // poll pacing
        }
    }

    /// The port in the log line that starts with `prefix` followed by `127.0.0.1:PORT`.
    fn port_from_log(&mut self, prefix: &str) -> u16 {
        let what = format!("it logs `{prefix}127.0.0.1:PORT`");
        self.poll(&what, |e| {
            e.log().lines().find_map(|l| {
                let rest = l.split_once(prefix)?.1.strip_prefix("127.0.0.1:")?;
                rest.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()
            })
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `f` to completion on a runtime of its own, on a thread of its own: usable from sync code and from inside
/// another runtime alike.
fn block_on<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
    })
    .join()
    .expect("the request thread does not panic")
}

/// A fake machine behind the Redfish emulator.
#[derive(Clone, Debug)]
pub struct FakeSystem {
    pub name: String,
    pub uuid: String,
    pub power_on: bool,
}

impl FakeSystem {
    pub fn new(name: &str, uuid: &str, power_on: bool) -> FakeSystem {
        FakeSystem { name: name.to_owned(), uuid: uuid.to_owned(), power_on }
    }
}

/// A running `sushy-emulator --fake` on `https://127.0.0.1:PORT`, with a certificate for 127.0.0.1 signed by a CA
/// of its own (`ca_file`), basic authentication for `user` with the password in `password_file` (no trailing
/// newline), and its state in a directory of its own. Killed when dropped.
pub struct Redfish {
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The CA (PEM) that signed the emulator's certificate.
    pub ca_file: PathBuf,
    pub user: String,
    pub password_file: PathBuf,
    emulator: Emulator,
}

impl Redfish {
    /// The emulator with `systems`, notifying nobody.
    pub fn start(systems: &[FakeSystem]) -> Redfish {
        Redfish::start_with(systems, None)
    }

    /// The emulator with `systems`; with `notify_url`, every change of every system is PUT there as JSON (the
    /// system as the fake driver keeps it: `uuid`, `name`, `power_state`, `pending_power`, `boot_device`…).
    pub fn start_with(systems: &[FakeSystem], notify_url: Option<&str>) -> Redfish {
        let venv = venv();
        let dir = tempfile::Builder::new().prefix("sendan-redfish-").tempdir().unwrap();
        let path = dir.path().to_owned();

        // TLS: a CA, and a certificate for 127.0.0.1 it signs.
        let (ca_file, cert_file, key_file) = (path.join("ca.pem"), path.join("cert.pem"), path.join("key.pem"));
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "Sendan test BMC CA");
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        std::fs::write(&ca_file, ca.self_signed(&ca_key).unwrap().pem()).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cert_file, leaf.signed_by(&key, &issuer).unwrap().pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();

        // Authentication: sushy takes an htpasswd file of bcrypt digests only (cost 4: it checks every request).
        let password = fresh_password();
        let password_file = path.join("password");
        write_password(&password_file, &password);
        let htpasswd = path.join("htpasswd");
        let hash = Command::new(venv.join("bin/python"))
            .args(["-c", "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())"])
            .arg(&password)
            .output()
            .expect("the venv's python runs");
        assert!(hash.status.success(), "bcrypt fails: {}", String::from_utf8_lossy(&hash.stderr));
        std::fs::write(&htpasswd, format!("{USER}:{}", String::from_utf8_lossy(&hash.stdout).trim())).unwrap();

        let state = path.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let fake_systems: Vec<serde_json::Value> = systems
            .iter()
            .map(|s| {
                serde_json::json!({
                    "uuid": s.uuid,
                    "name": s.name,
                    "power_state": if s.power_on { "On" } else { "Off" },
                    "external_notifier": notify_url.is_some(),
                    "nics": [],
                })
            })
            .collect();
        // The config is Python; every value goes through json.loads, so no quoting can go wrong.
        let value = |v: serde_json::Value| format!("json.loads(r'''{v}''')");
        let path_value = |p: &Path| value(p.display().to_string().into());
        let mut config = String::from("# Written by the Sendan tests' BMC harness (tests/src/bmc.rs).\nimport json\n");
        config += "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n";
        config += "SUSHY_EMULATOR_LISTEN_PORT = 0\n";
        config += "SUSHY_EMULATOR_FAKE_DRIVER = True\n";
        config += &format!("SUSHY_EMULATOR_SSL_CERT = {}\n", path_value(&cert_file));
        config += &format!("SUSHY_EMULATOR_SSL_KEY = {}\n", path_value(&key_file));
        config += &format!("SUSHY_EMULATOR_AUTH_FILE = {}\n", path_value(&htpasswd));
        config += &format!("SUSHY_EMULATOR_STATE_DIR = {}\n", path_value(&state));
        config += &format!("SUSHY_EMULATOR_FAKE_SYSTEMS = {}\n", value(fake_systems.into()));
        if let Some(url) = notify_url {
            config += &format!("EXTERNAL_NOTIFICATION_URL = {}\n", value(url.into()));
        }
        let config_file = path.join("sushy.conf");
        std::fs::write(&config_file, config).unwrap();

        let mut cmd = Command::new(venv.join("bin/sushy-emulator"));
        cmd.arg("--fake").arg("--config").arg(&config_file).current_dir(&path);
        let mut emulator = Emulator::spawn("sushy-emulator", dir, &mut cmd);
        let port = emulator.port_from_log("Running on https://");
        let url = format!("https://127.0.0.1:{port}");

        // Ready: an authenticated read of the systems answers over verified TLS.
        let systems_url = format!("{url}/redfish/v1/Systems");
        let status = emulator.poll("GET /redfish/v1/Systems answers with authentication", |e| {
            let (ca_file, systems_url, password) = (ca_file.clone(), systems_url.clone(), password.clone());
            let answer = block_on(async move {
                let client = sendan_raft::Trust::from_pem_file(&ca_file).expect("the CA loads").http_builder();
                let r = client.build().unwrap().get(&systems_url).basic_auth(USER, Some(&password)).send().await;
                r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}"))
            });
            answer.map_err(|err| e.note(&format!("GET /redfish/v1/Systems: {err}"))).ok()
        });
        if status != 200 {
            emulator.fail(&format!("an authenticated GET /redfish/v1/Systems answered {status}"));
        }
        Redfish { url, ca_file, user: USER.to_owned(), password_file, emulator }
    }

    /// The password in `password_file`.
    pub fn password(&self) -> String {
        std::fs::read_to_string(&self.password_file).unwrap()
    }

    /// A file (next to `password_file`) holding a password the emulator refuses, for "a wrong password is a clear
    /// error" tests.
    pub fn wrong_password_file(&self) -> PathBuf {
        let file = self.emulator.dir.path().join("wrong-password");
        write_password(&file, &format!("not-{}", self.password()));
        file
    }

    /// `/redfish/v1/Systems/<uuid>`.
    pub fn system_path(&self, uuid: &str) -> String {
        format!("/redfish/v1/Systems/{uuid}")
    }

    /// A client that trusts the emulator's CA (and nothing else); requests carry no credentials of their own.
    pub fn client(&self) -> reqwest::Client {
        sendan_raft::Trust::from_pem_file(&self.ca_file).expect("the CA loads").http_builder().build().unwrap()
    }

    /// GET `path` (below `url`) with the right credentials: the status and the body as JSON (`Null` when it is
    /// not JSON).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client()
            .get(format!("{}{path}", self.url))
            .basic_auth(&self.user, Some(self.password()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} from the Redfish emulator: {e}; its log:\n{}", self.log()));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A system as the emulator shows it; panics unless it answers 200. Reading a system is also what makes the
    /// fake driver land a pending power change that is due.
    pub async fn system(&self, uuid: &str) -> serde_json::Value {
        let (status, body) = self.get(&self.system_path(uuid)).await;
        assert_eq!(status, 200, "GET {} answered {status}: {body}", self.system_path(uuid));
        body
    }

    /// A system's `PowerState`: `On` or `Off`.
    pub async fn power(&self, uuid: &str) -> String {
        self.system(uuid).await["PowerState"].as_str().expect("a PowerState").to_owned()
    }

    /// A system's boot override: `BootSourceOverrideTarget` (`Hdd` until one is set) and `BootSourceOverrideEnabled`
    /// (always `Continuous` with the fake driver).
    pub async fn boot(&self, uuid: &str) -> (String, String) {
        let boot = &self.system(uuid).await["Boot"];
        let field = |k: &str| boot[k].as_str().unwrap_or_default().to_owned();
        (field("BootSourceOverrideTarget"), field("BootSourceOverrideEnabled"))
    }

    /// Poll until a system's `PowerState` is `want` (`On`, `Off`), within `POWER_CHANGE`.
    pub async fn wait_power(&self, uuid: &str, want: &str) {
        let what = format!("the Redfish system {uuid} is powered {want}");
        crate::wait_until(&what, POWER_CHANGE, || async { (self.power(uuid).await == want).then_some(()) }).await
    }

    /// The emulator's output so far.
    pub fn log(&self) -> String {
        self.emulator.log()
    }
}

/// The state of the IPMI BMC after a change, as `fakebmc.py` records it (one JSON line per change).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct IpmiState {
    /// 1 for the state at start, then one more per change.
    pub seq: u64,
    /// What happened: `start`, `power_on`, `power_off`, `power_soft`, `power_reset`, `power_cycle`, `diag`,
    /// `bootdev`, `bmc_cold_reset`.
    pub event: String,
    /// `on` or `off`.
    pub power: String,
    /// The boot override, in pyghmi's names: `default` (none), `network`, `hd`, `optical`, `setup`, `safe`,
    /// `floppy`.
    pub bootdev: String,
    /// Whether the override applies to every boot (`options=persistent`) rather than the next one only.
    pub persistent: bool,
    /// Whether the override asks for an EFI boot (`options=efiboot`).
    pub uefi: bool,
    /// On a boot (power on from off, reset, cycle): the device the machine booted from. A one-time override is
    /// consumed by it.
    pub booted_from: Option<String>,
}

/// A running IPMI BMC (`tests/fixtures/bmc/fakebmc.py`) on UDP `127.0.0.1:PORT`, for `user` with the password in
/// `password_file` (no trailing newline), answering `ipmitool -I lanplus -C 3`. Killed when dropped.
pub struct Ipmi {
    /// `127.0.0.1:PORT`.
    pub address: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password_file: PathBuf,
    /// Every state change as a JSON line (`IpmiState`), the state at start first.
    pub state_file: PathBuf,
    emulator: Emulator,
}

impl Ipmi {
    /// The BMC of a machine that is powered on (or off), notifying nobody.
    pub fn start(power_on: bool) -> Ipmi {
        Ipmi::start_with(power_on, None)
    }

    /// The BMC; with `notify_url`, every state change is also PUT there as JSON (an `IpmiState`), in order.
    pub fn start_with(power_on: bool, notify_url: Option<&str>) -> Ipmi {
        let venv = venv();
        require_ipmitool();
        let dir = tempfile::Builder::new().prefix("sendan-ipmi-").tempdir().unwrap();
        let path = dir.path().to_owned();
        let password_file = path.join("password");
        write_password(&password_file, &fresh_password());
        let state_file = path.join("state.jsonl");
        let script = crate::bootstrap::repo().join("tests/fixtures/bmc/fakebmc.py");
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg(&script)
            .args(["--port", "0", "--user", USER, "--power", if power_on { "on" } else { "off" }])
            .arg("--password-file")
            .arg(&password_file)
            .arg("--state-file")
            .arg(&state_file)
            .current_dir(&path);
        if let Some(url) = notify_url {
            cmd.args(["--notify-url", url]);
        }
        let mut emulator = Emulator::spawn("fakebmc", dir, &mut cmd);
        let port = emulator.port_from_log("fakebmc ready on ");
        // Ready: `chassis power status` answers (the socket is bound before the ready line, so this is at once).
        emulator.poll("`ipmitool chassis power status` answers", |e| {
            let mut cmd = ipmitool(port, USER, &password_file);
            let out = cmd.args(["-R", "1", "-N", "1", "chassis", "power", "status"]).output().expect("ipmitool runs");
            if !out.status.success() {
                e.note(&format!("ipmitool chassis power status: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
            out.status.success().then_some(())
        });
        Ipmi {
            address: format!("127.0.0.1:{port}"),
            host: "127.0.0.1".to_owned(),
            port,
            user: USER.to_owned(),
            password_file,
            state_file,
            emulator,
        }
    }

    /// A file (next to `password_file`) holding a password the BMC refuses, for "a wrong password is a clear
    /// error" tests.
    pub fn wrong_password_file(&self) -> PathBuf {
        let file = self.emulator.dir.path().join("wrong-password");
        let password = std::fs::read_to_string(&self.password_file).unwrap();
        write_password(&file, &format!("not-{password}"));
        file
    }

    /// `ipmitool -I lanplus -C 3 -H 127.0.0.1 -p PORT -U USER -f PASSWORD_FILE`, for the caller's arguments.
    pub fn command(&self) -> Command {
        ipmitool(self.port, &self.user, &self.password_file)
    }

    /// The same as `command`, as `user` with the password in `password_file` (a wrong one, say).
    pub fn command_as(&self, user: &str, password_file: &Path) -> Command {
        ipmitool(self.port, user, password_file)
    }

    /// Run `ipmitool … ARGS` and return its output, whether it succeeded or not.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("ipmitool runs")
    }

    /// Run `ipmitool … ARGS`; its standard output. Panics, with its output and the BMC's log, when it fails.
    pub fn ipmitool(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`ipmitool {}` failed ({}): {}{}\nthe BMC's log:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.emulator.log)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The power state as `ipmitool chassis power status` reads it: `on` or `off`.
    pub fn power(&self) -> String {
        let out = self.ipmitool(&["chassis", "power", "status"]);
        out.trim().strip_prefix("Chassis Power is ").unwrap_or_else(|| panic!("unexpected answer: {out}")).to_owned()
    }

    /// The boot override (pyghmi's name: `default`, `network`, `hd`, …), as the BMC last recorded it.
    pub fn boot(&self) -> String {
        self.state().bootdev
    }

    /// The BMC's state now (the last line of `state_file`).
    pub fn state(&self) -> IpmiState {
        self.events().pop().expect("fakebmc records its state at start")
    }

    /// Every state the BMC recorded, in order, the state at start first.
    pub fn events(&self) -> Vec<IpmiState> {
        let text = std::fs::read_to_string(&self.state_file).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a state line {l:?}: {e}"))).collect()
    }

    /// The BMC's output so far.
    pub fn log(&self) -> String {
        self.emulator.log()
    }
}

/// `ipmitool -I lanplus -C 3 -H 127.0.0.1 -p PORT -U USER -f PASSWORD_FILE`.
fn ipmitool(port: u16, user: &str, password_file: &Path) -> Command {
    let mut cmd = Command::new("ipmitool");
    cmd.args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-f"])
        .arg(password_file)
        .stdin(Stdio::null());
    cmd
}

/// A plain-HTTP listener on 127.0.0.1 that answers 204 to every request and hands over the JSON bodies: what the
/// emulators' notifications land on. Its URL.
pub async fn notifications() -> (String, tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body_at = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tokio::io::AsyncReadExt::read(&mut stream, &mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..body_at]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < body_at + length {
                    match tokio::io::AsyncReadExt::read(&mut stream, &mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tokio::io::AsyncWriteExt::write_all(
                    &mut stream,
                    b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                )
                .await;
                if head.starts_with("put ") {
                    let _ = tx.send(
                        serde_json::from_slice(&buf[body_at..body_at + length]).unwrap_or(serde_json::Value::Null),
                    );
                }
            });
        }
    });
    (url, rx)
}

/// Wait until a notification matching `pred` arrives (earlier ones are dropped).
pub async fn notified(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let found = tokio::time::timeout(POWER_CHANGE, async {
        while let Some(v) = rx.recv().await {
            if pred(&v) {
                return v;
            }
        }
        panic!("the notification listener stopped");
    });
    found.await.unwrap_or_else(|_| panic!("no notification that {what} within {POWER_CHANGE:?}"))
}
