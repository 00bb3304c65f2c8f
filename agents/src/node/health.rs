//! An instance's health check, as its service declares it: an HTTP GET that must answer 2xx or 3xx, a TCP
//! connection that must open, or a command that must exit 0 — each within the check's timeout, against the
//! agent's own address. Consecutive failures are counted by the agent; `unhealthyAfter` of them make the
//! instance unhealthy.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sendan_core::spec::HealthCheck;

/// Run `check` once against an instance listening on `ip` with `ports`; why it failed.
pub fn probe(
    check: &HealthCheck,
    ip: IpAddr,
    ports: &BTreeMap<String, u16>,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    let timeout = Duration::from_secs(u64::from(check.timeout_seconds.max(1)));
    if let Some(http) = &check.http {
        let port =
            http.port.resolve(ports).ok_or_else(|| format!("port {} is not one of the instance's", http.port))?;
        return http_get(SocketAddr::new(ip, port), &http.path, timeout);
    }
    if let Some(tcp) = &check.tcp {
        let port = tcp.port.resolve(ports).ok_or_else(|| format!("port {} is not one of the instance's", tcp.port))?;
        return TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout)
            .map(drop)
            .map_err(|e| format!("TCP {ip}:{port}: {e}"));
    }
    if let Some(cmd) = &check.exec {
        return exec(cmd, env, timeout);
    }
    Ok(())
}

fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let what = format!("GET http://{addr}{path}");
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{what}: {e}"))?;
    s.set_read_timeout(Some(timeout)).and_then(|_| s.set_write_timeout(Some(timeout))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: sendan-agent-node\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{what}: {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{what}: no HTTP status line"))?;
    if (200..400).contains(&status) { Ok(()) } else { Err(format!("{what}: status {status}")) }
}

fn exec(cmd: &[String], env: &BTreeMap<String, String>, timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = cmd.split_first() else { return Err("the check's command is empty".into()) };
    let mut child = Command::new(program)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("{program}: {s}")),
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program}: no answer within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)), // pacing while the check runs
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendan_core::spec::{HttpProbe, PortRef, TcpProbe};

    fn check() -> HealthCheck {
        HealthCheck { http: None, tcp: None, exec: None, interval_seconds: 1, timeout_seconds: 1, unhealthy_after: 1 }
    }

    #[test]
    fn tcp_and_http_probes_use_the_named_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ports = BTreeMap::from([("http".to_owned(), port)]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let tcp = HealthCheck { tcp: Some(TcpProbe { port: PortRef::Name("http".into()) }), ..check() };
        assert!(probe(&tcp, ip, &ports, &BTreeMap::new()).is_ok());
        // The TCP probe's connection is the first to arrive (and closed at once); the HTTP probe's the second.
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut c, _) = listener.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf);
                let _ = c.write_all(b"HTTP/1.0 503 Service Unavailable\r\n\r\n");
            }
        });
        let http = HealthCheck {
            http: Some(HttpProbe { port: PortRef::Name("http".into()), path: "/ready".into() }),
            ..check()
        };
        let err = probe(&http, ip, &ports, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("status 503"), "{err}");
        server.join().unwrap();
        let unknown = HealthCheck { tcp: Some(TcpProbe { port: PortRef::Name("admin".into()) }), ..check() };
        assert!(probe(&unknown, ip, &ports, &BTreeMap::new()).unwrap_err().contains("not one of"));
    }

    #[test]
    fn an_exec_probe_passes_on_exit_0() {
        let ok = HealthCheck { exec: Some(vec!["true".into()]), ..check() };
        assert!(probe(&ok, "127.0.0.1".parse().unwrap(), &BTreeMap::new(), &BTreeMap::new()).is_ok());
        let bad = HealthCheck { exec: Some(vec!["false".into()]), ..check() };
        assert!(probe(&bad, "127.0.0.1".parse().unwrap(), &BTreeMap::new(), &BTreeMap::new()).is_err());
    }
}
