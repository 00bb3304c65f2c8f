//! `sendan cluster status|add|remove`, `sendan audit verify` and `sendan tls init|issue`: the members, their
//! log, and their certificates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::output::{Table, dash};
use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the hash chain over the whole log of the member asked; exits 1 if it is broken.
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Every member's role, term and log positions.
    Status,
    /// Add a member (it must be running with `--initial-cluster-state existing`).
    Add { id: u64, addr: String },
    /// Remove a member.
    Remove { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Make a CA in DIR: `ca.pem` (give it to clients and members as --ca-file / --tls-ca-file) and
    /// `ca-key.pem` (mode 0600; keep it off the servers once the certificates are issued).
    Init { dir: PathBuf },
    /// Issue `DIR/NAME.pem` and `DIR/NAME-key.pem` (mode 0600), signed by DIR's CA, for the hosts clients and
    /// members reach it by.
    Issue {
        dir: PathBuf,
        name: String,
        /// A DNS name or IP address the certificate is valid for (repeat for each).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
}

/// `sendan audit verify`: exits 1 when the chain is broken.
pub async fn audit(client: &Client, cmd: &AuditCmd, json: bool) -> Result<ExitCode> {
    let AuditCmd::Verify = cmd;
    let v = client.verify().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if v.ok {
        println!("ok: {} events verified on member {}; head {}", v.verified, v.member, v.head);
    } else if let Some(b) = &v.broken {
        println!("BROKEN on member {}: {b} ({} events verified before it)", v.member, v.verified);
    }
    if !v.ok {
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(client: &Client, cmd: &ClusterCmd, json: bool) -> Result<ExitCode> {
    match cmd {
        ClusterCmd::Status => status(client, json).await?,
        ClusterCmd::Add { id, addr } => {
            client.add_member(*id, addr).await?;
            println!("member {id} ({addr}) added as a voter");
        }
        ClusterCmd::Remove { id } => {
            client.remove_member(*id).await?;
            println!("member {id} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(client: &Client, json: bool) -> Result<()> {
    let s = client.cluster().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        let mut t = Table::new(&["ID", "ADDR", "ROLE", "TERM", "LAST LOG", "COMMITTED", "APPLIED", "SEQ", "HEAD"]);
        for m in &s.members {
            t.row(vec![
                m.id.to_string(),
                m.addr.clone(),
                m.role.clone(),
                m.term.to_string(),
                dash(m.last_log_index),
                dash(m.committed_index),
                dash(m.applied_index),
                m.seq.to_string(),
                m.head.to_hex()[..12].to_owned(),
            ]);
        }
        print!("{}", t.render());
        println!("leader: {}   term: {}", dash(s.leader), s.term);
        for m in s.members.iter().filter(|m| m.error.is_some()) {
            eprintln!("member {}: {}", m.id, m.error.as_deref().unwrap_or_default());
        }
    }
    Ok(())
}

pub fn tls(cmd: &TlsCmd) -> Result<ExitCode> {
    match cmd {
        TlsCmd::Init { dir } => {
            let (cert, key) = crate::tls::init_ca(dir)?;
            println!("CA certificate: {} (for --ca-file and --tls-ca-file)", cert.display());
            println!("CA key:         {} (mode 0600)", key.display());
        }
        TlsCmd::Issue { dir, name, hosts } => {
            let (cert, key) = crate::tls::issue(dir, name, hosts)?;
            println!("certificate: {} (for --tls-cert-file), valid for {}", cert.display(), hosts.join(", "));
            println!("key:         {} (for --tls-key-file, mode 0600)", key.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
