//! The `sendan` binary as an operator uses it: `sendan server` with no flags and no config (the README's
//! first command), then the operator subcommands against it with their default server and token file.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sendan");

fn sendan(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SENDAN_SERVER")
        .env_remove("SENDAN_TOKEN")
        .env_remove("SENDAN_TOKEN_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn help_names_every_subcommand() {
    let (ok, out, _) = sendan(Path::new("."), &["--help"], None);
    assert!(ok);
    for cmd in ["server", "events", "nodes", "node", "audit", "cluster"] {
        assert!(out.contains(&format!("  {cmd} ")), "--help lacks {cmd}:\n{out}");
    }
    let (ok, out, _) = sendan(Path::new("."), &["server", "--help"], None);
    assert!(ok);
    for flag in [
        "--node-id",
        "--listen",
        "--data-dir",
        "--initial-cluster",
        "--cluster-secret-file",
        "--admin-token-file",
        "--config",
    ] {
        assert!(out.contains(flag), "server --help lacks {flag}");
    }
}

/// The embedded default: no flags, no config. It serves on 127.0.0.1:7770, keeps its data in
/// ./sendan-data, writes the admin token there with mode 0600 and says so; the CLI finds both by default.
#[test]
fn the_embedded_default_server_works_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .arg("server")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    while said.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => said.push(l),
            Err(_) => {
                let _ = server.kill();
                panic!("the server did not announce itself (is port 7770 taken?): {said:?}");
            }
        }
    }
    assert!(said[0].contains("serving on http://127.0.0.1:7770"), "{said:?}");
    assert!(said[1].contains("admin token in sendan-data/admin.token (created now, mode 0600)"), "{said:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sendan-data/admin.token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let result = std::panic::catch_unwind(|| {
        // Wait until the single member has elected itself.
        loop {
            let (ok, _, _) = sendan(dir.path(), &["nodes"], None);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the server never became usable");
            std::thread::sleep(Duration::from_millis(100)); // poll pacing
        }
        let events = r#"[{"type":"MachineDiscovered","machine":"m1"},{"type":"NodeCommissioned","node":"n1","machine":"m1","class":"compute"}]"#;
        let (ok, out, err) = sendan(dir.path(), &["events", "submit", "-"], Some(events));
        assert!(ok, "{err}");
        assert!(out.contains("SEQ") && out.lines().count() == 3, "{out}");
        let (ok, out, _) = sendan(dir.path(), &["nodes"], None);
        assert!(ok && out.contains("n1") && out.contains("commissioned"), "{out}");
        let (ok, _, err) =
            sendan(dir.path(), &["events", "submit", "-"], Some(r#"{"type":"NodeDrainRequested","node":"n1"}"#));
        assert!(!ok && err.contains("node n1 is `commissioned`; `NodeDrainRequested` needs `active`"), "{err}");
        let (ok, out, _) = sendan(dir.path(), &["--output", "json", "node", "show", "n1"], None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(ok && v["view"]["node"]["state"] == "commissioned" && v["history"].as_array().unwrap().len() == 1);
        let (ok, out, _) = sendan(dir.path(), &["audit", "verify"], None);
        assert!(ok && out.starts_with("ok: 2 events verified"), "{out}");
        let (ok, out, _) = sendan(dir.path(), &["cluster", "status"], None);
        assert!(ok && out.contains("leader"), "{out}");
        let (ok, out, _) = sendan(dir.path(), &["events", "list", "--type", "NodeCommissioned"], None);
        assert!(ok && out.lines().count() == 2, "{out}");
    });
    // SAFETY: kill(2) on our own child.
    unsafe { kill(server.id() as i32, 15) };
    let status = server.wait().unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    assert!(status.success(), "the server exits cleanly on SIGTERM: {status:?}");
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
