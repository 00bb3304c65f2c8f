//! The `sendan-agent` binary: the program that runs on each machine Sendan manages.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Sendan's agent for the machines it manages.
#[derive(Debug, Parser)]
#[command(name = "sendan-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print this machine's hardware facts (DMI, CPU, memory, disks, NICs, machine-id) as JSON.
    Facts(FactsArgs),
}

#[derive(Debug, Args)]
struct FactsArgs {
    /// Read /proc, /sys, /dev/disk/by-id and /etc/machine-id below DIR instead of below /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Facts(args) => facts(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with every cause, as people read it; `{:?}` would add a backtrace meant for developers.
            eprintln!("sendan-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn facts(args: &FactsArgs) -> anyhow::Result<()> {
    let facts = sendan_agents::facts::collect(&args.root)
        .with_context(|| format!("collecting hardware facts below `{}`", args.root.display()))?;
    let json = serde_json::to_string_pretty(&facts).context("encoding the facts as JSON")?;
    // Not `println!`, which panics when the reader has gone away (`sendan-agent facts | head`).
    writeln!(std::io::stdout().lock(), "{json}").context("writing the facts to stdout")
}
