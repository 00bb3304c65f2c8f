//! The `sendan-agent` command line, run as a separate process.

use std::path::Path;
use std::process::{Command, Output};

use sendan_core::facts::HardwareFacts;

fn sendan_agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sendan-agent")).args(args).output().expect("running sendan-agent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

#[test]
fn facts_prints_the_collected_facts_as_json() {
    // Given a fixture tree.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rack-server");
    // When.
    let output = sendan_agent(&["facts", "--root", root.to_str().unwrap()]);
    // Then the output is exactly what the library collects, pretty-printed.
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let printed: HardwareFacts = serde_json::from_slice(&output.stdout).expect("JSON facts on stdout");
    assert_eq!(printed, sendan_agents::facts::collect(&root).unwrap());
    assert!(text(&output.stdout).starts_with("{\n  \"machine_id\": "), "pretty JSON: {}", text(&output.stdout));
}

#[test]
fn facts_failure_names_the_file_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let output = sendan_agent(&["facts", "--root", dir.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let cpuinfo = dir.path().join("proc/cpuinfo");
    assert_eq!(
        text(&output.stderr),
        format!(
            "sendan-agent: collecting hardware facts below `{}`: cannot read `{}`: No such file or directory (os \
             error 2)\n",
            dir.path().display(),
            cpuinfo.display()
        )
    );
}

#[test]
fn help_lists_exactly_the_implemented_subcommands() {
    let output = sendan_agent(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(commands, ["facts", "install", "checkin", "nix", "node", "help"], "{help}");
    let facts_help = text(&sendan_agent(&["facts", "--help"]).stdout);
    assert!(facts_help.contains("--root <DIR>"), "{facts_help}");
    assert!(facts_help.contains("[default: /]"), "{facts_help}");
}
