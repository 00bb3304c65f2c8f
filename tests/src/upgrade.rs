//! The upgrade fixture (`tests/fixtures/upgrade-8028c4f`): a data directory of one member written by the
//! release at commit 8028c4f, reopened by this build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::procs::free_port;
use crate::{binary, http, wait_until};

/// The fixture's directory (`data/`, `views/`, its README).
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upgrade-8028c4f")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A member reopening a copy of the fixture's data directory, started exactly as the fixture's README says.
pub struct Reopened {
    dir: tempfile::TempDir,
    pub base: String,
    pub token: String,
    child: Option<Child>,
    /// How many times the member was started (each start logs to its own file).
    starts: u32,
}

impl Reopened {
    pub async fn start() -> Reopened {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture().join("data"), &dir.path().join("data"));
        let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap().trim().to_owned();
        let mut r = Reopened { dir, base: String::new(), token, child: None, starts: 0 };
        r.spawn().await;
        r
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(self.dir.path().join(format!("server-{}.log", self.starts))).unwrap();
        let child = Command::new(binary("sendan"))
            .args(["server", "--node-id", "1", "--listen", &listen])
            .arg("--data-dir")
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sendan server starts");
        self.child = Some(child);
        self.base = format!("http://{listen}");
        let client = http();
        let base = self.base.clone();
        wait_until("the reopened member is ready", Duration::from_secs(90), || async {
            let ready = client.get(format!("{base}/readyz")).send().await.ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
    }

    /// Stop the member with SIGTERM (a clean shutdown), wait for it, and start it again on the same data.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            const SIGTERM: i32 = 15;
            assert!(crate::procs::signal(child.id(), SIGTERM), "the member could not be sent SIGTERM");
            let exit = child.wait().unwrap();
            assert!(exit.success(), "the member exited with {exit} on SIGTERM:\n{}", self.log());
        }
        self.spawn().await;
    }

    /// `GET path` as the admin, checked against the API's contract; panics unless it succeeds.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = crate::contract::get(&self.base, &self.token, path).await;
        assert!((200..300).contains(&status), "GET {path}: {status} {body}");
        body
    }

    /// The log of the latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("server-{}.log", self.starts))).unwrap_or_default()
    }
}

impl Drop for Reopened {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
