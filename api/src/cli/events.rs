//! `sendan events submit|list|watch|types`: the log, as an operator reads and writes it.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use sendan_core::EventKind;
use sendan_core::wire::{ProposalIn, decode_submission};

use super::output::{Table, events_table};
use crate::client::{Client, EventFilter};

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// Submit events from a JSON file (one event object or an array), or `-` for stdin.
    /// Events without an `id` get a fresh one, so retries after a lost answer are safe.
    Submit {
        /// The JSON file, or `-` for stdin.
        file: PathBuf,
    },
    /// List events (paged audit query).
    List(ListArgs),
    /// Replay events after a cursor, then follow new ones as they are committed.
    Watch {
        /// Start after this seq (0 = from the beginning).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long)]
        node: Option<String>,
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// List the event types and who may emit them.
    Types,
}

#[derive(Args, Debug, Default)]
pub struct ListArgs {
    /// Only events after this seq.
    #[arg(long)]
    pub after: Option<u64>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only events about this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Only events of this type (such as NodeDrainRequested).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

impl ListArgs {
    fn filter(&self) -> EventFilter {
        EventFilter {
            after: self.after,
            limit: Some(self.limit),
            node: self.node.clone(),
            kind: self.kind.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

pub async fn run(client: &Client, cmd: &EventsCmd, json: bool) -> Result<ExitCode> {
    match cmd {
        EventsCmd::Submit { file } => submit(client, file, json).await?,
        EventsCmd::List(args) => list(client, args, json).await?,
        EventsCmd::Watch { after, node, kind } => watch(client, *after, node.as_deref(), kind.as_deref(), json).await?,
        EventsCmd::Types => types(),
    }
    Ok(ExitCode::SUCCESS)
}

async fn submit(client: &Client, file: &PathBuf, json: bool) -> Result<()> {
    let bytes = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading stdin")?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let mut events: Vec<ProposalIn> = decode_submission(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let resp = client.submit(&mut events, Duration::from_secs(30)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        let mut t = Table::new(&["SEQ", "ID", "HASH", "NOTE"]);
        for r in &resp.events {
            let note = if r.duplicate { "already applied" } else { "" };
            t.row(vec![r.seq.to_string(), r.id.to_string(), r.hash.to_hex()[..16].to_owned(), note.into()]);
        }
        print!("{}", t.render());
    }
    Ok(())
}

async fn list(client: &Client, args: &ListArgs, json: bool) -> Result<()> {
    let page = client.events(&args.filter()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page)?);
    } else {
        print!("{}", events_table(&page.events));
        if let Some(next) = page.next {
            eprintln!("(more: --after {next})");
        }
    }
    Ok(())
}

async fn watch(client: &Client, after: u64, node: Option<&str>, kind: Option<&str>, json: bool) -> Result<()> {
    let mut stream = Box::pin(client.watch(after, node, kind).await?);
    while let Some(e) = stream.next().await {
        let e = e?;
        if json {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            print!("{}", events_table(std::slice::from_ref(&e)).lines().nth(1).unwrap_or_default());
            println!();
        }
    }
    Ok(())
}

fn types() {
    let mut t = Table::new(&["TYPE", "CODE", "EMITTED BY"]);
    for k in EventKind::ALL {
        let e = k.emitters();
        use sendan_core::event::Emitters as E;
        let who: Vec<&str> =
            [(E::ADMIN, "admin"), (E::SYSTEM, "system"), (E::NODE, "node"), (E::BOOTSTRAP, "installer")]
                .into_iter()
                .filter(|(f, _)| e.contains(*f))
                .map(|(_, n)| n)
                .collect();
        t.row(vec![k.name().into(), k.code().to_string(), who.join(", ")]);
    }
    print!("{}", t.render());
}
