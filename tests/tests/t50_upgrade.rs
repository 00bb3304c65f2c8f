//! Upgrade: the data directory a member of the release at commit 8028c4f wrote (`tests/fixtures/upgrade-8028c4f`,
//! 243 events of all 40 kinds of that release, record format 1, checkpoints without a schema fingerprint) is
//! opened by this build's `sendan server`. Each test states the property it checks.

use std::process::Command;

use sendan_tests::binary;
use sendan_tests::upgrade::{Reopened, fixture};
use serde_json::Value;

fn recorded(view: &str) -> Value {
    let path = fixture().join("views").join(view);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Where `new` does not answer what `old` did: every field the old release answered is there with the same
/// value (arrays element by element, in order); fields this release added are allowed.
fn differences(old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                match n.get(k) {
                    Some(nv) => differences(v, nv, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k} is gone (was {v})")),
                }
            }
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => {
            for (i, (ov, nv)) in o.iter().zip(n).enumerate() {
                differences(ov, nv, &format!("{at}[{i}]"), out);
            }
        }
        // A node's legal moves grow with the catalogue (this release adds cordons and drains with terms): every
        // move the old release allowed is still allowed, in the same order.
        (Value::Array(o), Value::Array(n))
            if at.ends_with(".allowed") && {
                let mut rest = n.iter();
                o.iter().all(|v| rest.any(|w| w == v))
            } => {}
        (Value::Array(o), Value::Array(n)) => out.push(format!("{at} has {} items, was {}", n.len(), o.len())),
        _ if old == new => {}
        _ => out.push(format!("{at} is {new}, was {old}")),
    }
}

/// The recorded views and the paths that answered them; the per-node and per-rollout ones from the file names.
fn views() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        ("verify.json", "/v1/audit/verify"),
        ("events.json", "/v1/events?after=0&limit=10000"),
        ("nodes.json", "/v1/nodes"),
        ("machines.json", "/v1/machines"),
        ("rollouts.json", "/v1/rollouts"),
        ("spec.json", "/v1/spec"),
    ]
    .into_iter()
    .map(|(f, p)| (f.to_owned(), p.to_owned()))
    .collect();
    let mut names: Vec<String> = std::fs::read_dir(fixture().join("views"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for f in names {
        let stem = f.trim_end_matches(".json");
        let path = if let Some(n) = stem.strip_prefix("node-") {
            format!("/v1/nodes/{n}")
        } else if let Some(n) = stem.strip_prefix("system-") {
            format!("/v1/nodes/{n}/system")
        } else if let Some(n) = stem.strip_prefix("history-") {
            format!("/v1/nodes/{n}/history?limit=10000")
        } else if let Some(n) = stem.strip_prefix("rollout-") {
            format!("/v1/rollouts/{n}")
        } else {
            continue;
        };
        out.push((f, path));
    }
    out
}

/// Property: this build opens a data directory of the 8028c4f release without changing it: the audit verifies
/// the same 243 events to the same head, nothing is appended, the checkpoints it cannot read (no schema
/// fingerprint) are refolded from the events and replaced (and it says so in its log), and every node, machine,
/// system, history, rollout, spec and event view answers what the old release answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_8028c4f_opens_with_the_same_head_and_views() {
    let old_verify = recorded("verify.json");
    let member = Reopened::start().await;

    let verify = member.get("/v1/audit/verify").await;
    assert_eq!(verify["verified"], 243, "{verify}");
    assert_eq!(verify["head"], old_verify["head"], "the hash head changed: {verify}");

    // The member's own seq and head are the old ones: the reopened controllers appended nothing.
    let cluster = member.get("/v1/cluster").await;
    let old_cluster = recorded("cluster.json");
    assert_eq!(cluster["members"][0]["seq"], old_cluster["members"][0]["seq"], "{cluster}");
    assert_eq!(cluster["members"][0]["head"], old_cluster["members"][0]["head"], "{cluster}");

    let mut diffs = Vec::new();
    let views = views();
    assert!(views.len() >= 30, "the fixture's views are missing: {views:?}");
    for (file, path) in &views {
        differences(&recorded(file), &member.get(path).await, &format!("GET {path} ({file})"), &mut diffs);
    }
    assert!(diffs.is_empty(), "the reopened fixture answers differently from 8028c4f:\n{}", diffs.join("\n"));

    // The events this release added a field to (`cause`) answer it as absent, never guessed.
    let events = member.get("/v1/events?after=0&limit=10000").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 243);
    assert!(events.iter().all(|e| e["cause"].is_null()), "a version-1 event answered a cause");

    assert!(member.log().contains("checkpoints of another schema"), "the refold was not logged:\n{}", member.log());
}

/// Property: after the first open, the member has written checkpoints of this build's schema, so a second open
/// reads them (no refold is logged) and still verifies to the same head, and `sendan audit verify` from the CLI
/// agrees with the HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_upgrade_reads_its_fresh_checkpoints_and_verifies_from_the_cli() {
    let head = recorded("verify.json")["head"].as_str().unwrap().to_owned();
    let mut member = Reopened::start().await;
    assert_eq!(member.get("/v1/audit/verify").await["head"], head.as_str());
    assert!(member.log().contains("checkpoints of another schema"), "{}", member.log());
    member.restart().await;
    assert!(
        !member.log().contains("checkpoints of another schema"),
        "the fresh checkpoints were not read:\n{}",
        member.log()
    );

    let out = Command::new(binary("sendan"))
        .args(["audit", "verify", "--server", &member.base])
        .arg("--token-file")
        .arg(member.data().join("admin.token"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sendan audit verify failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&head), "the CLI's verify does not name the head {head}: {stdout}");
    assert!(stdout.contains("243"), "{stdout}");
}
